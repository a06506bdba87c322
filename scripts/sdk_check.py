#!/usr/bin/env python3
"""Runs the official Cerbos Python SDK against the real `bootstrap` binary.

The SDK (PyPI `cerbos`, `cerbos.sdk.client.CerbosClient`) speaks HTTP to a
local gateway written here with the standard library. The gateway turns each
HTTP request into an API Gateway event (HTTP API payload 2.0, then REST API
payload 1.0 with a `prod` stage), delivers it to `bootstrap` through a Lambda
Runtime API emulator, and turns the function's answer back into HTTP, as API
Gateway does. Everything listens on 127.0.0.1 only.

    python3 -m venv /tmp/sdk-venv && /tmp/sdk-venv/bin/pip install cerbos
    cargo build --release
    /tmp/sdk-venv/bin/python scripts/sdk_check.py \
        --bootstrap target/release/bootstrap --policies tests/fixtures/policies

Exits 0 when every decision matches, 1 on any mismatch, 2 when the setup
fails (the function does not start, the SDK is not installed, ...).
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNTIME_PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:verdict-sdk-check"
TEXT_TYPES = ("application/json", "text/")


class RuntimeApi:
    """The Lambda Runtime API: /next, /{id}/response, /{id}/error, /init/error."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self.outcomes: dict[str, tuple[str, dict, bytes]] = {}
        self.init_error: bytes | None = None
        self.next_calls = 0
        self.closed = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # the runtime's client keeps connections alive

            def log_message(self, *args) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        chunk = self.rfile.read(size + 2)
                        if size == 0:
                            return data
                        data += chunk[:size]
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    # A function exiting after /init/error may not read the body.
                    self.close_connection = True

            def do_GET(self) -> None:
                if self.path != RUNTIME_PREFIX + "/invocation/next":
                    self._send(404, b"")
                    return
                with api.cond:
                    api.next_calls += 1
                    api.cond.notify_all()
                    while not api.queue and not api.closed:
                        api.cond.wait(0.2)
                    if api.closed:
                        self.close_connection = True
                        return
                    request_id, event = api.queue.popleft()
                deadline = int(time.time() * 1000) + 60_000
                self._send(200, event, {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                })

            def do_POST(self) -> None:
                body = self._body()
                path = self.path[len(RUNTIME_PREFIX):] if self.path.startswith(RUNTIME_PREFIX) else ""
                with api.cond:
                    if path == "/init/error":
                        api.init_error = body
                    elif path.startswith("/invocation/") and path.endswith(("/response", "/error")):
                        request_id, kind = path[len("/invocation/"):].rsplit("/", 1)
                        api.outcomes[request_id] = (kind, dict(self.headers), body)
                    else:
                        self._send(404, b"")
                        return
                    api.cond.notify_all()
                self._send(202, b'{"status":"OK"}', {"Content-Type": "application/json"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def invoke(self, event: dict, timeout: float = 30.0) -> tuple[str, dict, bytes]:
        request_id = str(uuid.uuid4())
        with self.cond:
            self.queue.append((request_id, json.dumps(event).encode()))
            self.cond.notify_all()
            end = time.monotonic() + timeout
            while request_id not in self.outcomes:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer to invocation {request_id}")
                self.cond.wait(left)
            return self.outcomes.pop(request_id)

    def wait_ready(self, process: subprocess.Popen, timeout: float = 30.0) -> str | None:
        """None once the function asks for its first event, else why it never will."""
        end = time.monotonic() + timeout
        with self.cond:
            while self.next_calls == 0:
                if self.init_error is not None:
                    return "init error reported: " + self.init_error.decode(errors="replace")
                if process.poll() is not None:
                    return f"the function exited with status {process.returncode}"
                if time.monotonic() >= end:
                    return f"the function did not ask for an event within {timeout}s"
                self.cond.wait(0.1)
        return None

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


def http_api_event(method: str, path: str, query: str, headers: dict, body: bytes, host: str) -> dict:
    """An HTTP API (payload format 2.0) event on the $default stage."""
    now = time.time()
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "sdkcheck",
            "domainName": host,
            "domainPrefix": "sdkcheck",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    attach_body(event, headers, body)
    return event


def rest_api_event(method: str, path: str, query: str, headers: dict, body: bytes, host: str) -> dict:
    """A REST API (payload format 1.0) event on the `prod` stage."""
    now = time.time()
    params = dict(p.split("=", 1) if "=" in p else (p, "") for p in query.split("&") if p)
    event = {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": params or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in params.items()} or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": "/prod" + path,
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "sdkcheck",
            "requestTimeEpoch": int(now * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": headers.get("user-agent", "")},
            "domainName": host,
            "apiId": "sdkcheck",
        },
        "isBase64Encoded": False,
    }
    attach_body(event, headers, body)
    return event


def attach_body(event: dict, headers: dict, body: bytes) -> None:
    """Text bodies are passed as is; others base64-encoded, as the gateways do."""
    if not body:
        event["body"] = None
        return
    content_type = headers.get("content-type", "")
    if content_type.startswith(TEXT_TYPES):
        event["body"] = body.decode("utf-8")
    else:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True


class Gateway:
    """HTTP on 127.0.0.1 → gateway event → function → HTTP."""

    def __init__(self, runtime: RuntimeApi) -> None:
        self.format = "v2"
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def handle_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path, _, query = self.path.partition("?")
                headers: dict[str, str] = {}
                for name, value in self.headers.items():
                    name = name.lower()
                    headers[name] = f"{headers[name]},{value}" if name in headers else value
                host = headers.get("host", "127.0.0.1")
                build = http_api_event if gateway.format == "v2" else rest_api_event
                event = build(self.command, path, query, headers, body, host)
                try:
                    kind, _, answer = runtime.invoke(event)
                except TimeoutError:
                    self.reply(504, {"content-type": "application/json"}, b'{"message":"Endpoint request timed out"}')
                    return
                if kind != "response":
                    # What API Gateway answers when the function fails.
                    self.reply(502, {"content-type": "application/json"}, b'{"message":"Internal server error"}')
                    return
                response = json.loads(answer)
                out_headers = dict(response.get("headers") or {})
                for name, values in (response.get("multiValueHeaders") or {}).items():
                    out_headers[name] = ",".join(values)
                text = response.get("body") or ""
                data = base64.b64decode(text) if response.get("isBase64Encoded") else text.encode()
                self.reply(int(response["statusCode"]), out_headers, data)

            def reply(self, status: int, headers: dict, data: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_HEAD = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Function:
    """`bootstrap` started as Lambda starts it, stdout captured."""

    def __init__(self, binary: Path, runtime: RuntimeApi, task_root: Path, config: Path) -> None:
        env = {
            "AWS_LAMBDA_RUNTIME_API": runtime.address,
            "LAMBDA_TASK_ROOT": str(task_root),
            "LAMBDA_RUNTIME_DIR": str(task_root),
            "AWS_LAMBDA_FUNCTION_NAME": "verdict-sdk-check",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/verdict-sdk-check",
            "AWS_LAMBDA_LOG_STREAM_NAME": "sdk-check",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "_HANDLER": "bootstrap",
            "TZ": ":UTC",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "VERDICT_CONFIG": str(config),
        }
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(binary)], cwd=task_root, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.reader.join(timeout=5)


class Checks:
    """Counts expectations and prints one line per check."""

    def __init__(self) -> None:
        self.failures = 0
        self.total = 0

    def expect(self, name: str, got, want) -> None:
        self.total += 1
        if got == want:
            print(f"  ok    {name}")
        else:
            self.failures += 1
            print(f"  FAIL  {name}: got {got!r}, want {want!r}")


def run_sdk(url: str, checks: Checks) -> None:
    from cerbos.sdk.client import CerbosClient
    from cerbos.sdk.model import Principal, Resource, ResourceList

    alice = Principal("alice", roles={"editor"})
    vera = Principal("vera", roles={"viewer"})
    doc = Resource("1", "document", attr={"owner": "bob"})
    own = Resource("2", "document", attr={"owner": "alice"})
    with CerbosClient(url, timeout_secs=30) as client:
        checks.expect("is_healthy()", client.is_healthy(), True)
        for principal, action, resource, want in [
            (alice, "view", doc, True),
            (alice, "edit", doc, True),
            (alice, "delete", doc, False),
            (alice, "delete", own, True),
            (vera, "view", doc, True),
            (vera, "edit", doc, False),
            (vera, "delete", own, False),
        ]:
            checks.expect(
                f"is_allowed({action!r}, {principal.id}, document/{resource.id})",
                client.is_allowed(action, principal, resource),
                want,
            )
        checks.expect(
            "is_allowed on an unknown kind",
            client.is_allowed("view", alice, Resource("9", "invoice")),
            False,
        )

        response = client.check_resources(
            alice,
            ResourceList()
            .add(doc, {"view", "edit", "delete"})
            .add(own, {"delete"})
            .add(Resource("3", "document", attr={"owner": "carol"}), {"view", "archive"}),
            request_id="sdk-check-1",
        )
        checks.expect("check_resources status", response.status_code, 200)
        checks.expect("check_resources requestId", response.request_id, "sdk-check-1")
        if not response.failed():
            got = {
                (r.resource.id, action): r.is_allowed(action)
                for r in response.results
                for action in r.actions
            }
            checks.expect("check_resources decisions", got, {
                ("1", "view"): True,
                ("1", "edit"): True,
                ("1", "delete"): False,
                ("2", "delete"): True,
                ("3", "view"): True,
                ("3", "archive"): False,
            })

        # A bad request comes back in Cerbos's error shape, and is never an allow.
        invalid = client.check_resources(Principal("", roles={"editor"}), ResourceList().add(doc, {"view"}))
        checks.expect("invalid request status", invalid.status_code, 400)
        checks.expect("invalid request error code", invalid.status_msg.code if invalid.status_msg else None, 3)
        checks.expect(
            "is_allowed with an invalid principal",
            client.is_allowed("view", Principal("", roles={"editor"}), doc),
            False,
        )


def run_raw(url: str, checks: Checks) -> None:
    """Routes the SDK does not call: server_info, 404, 405."""

    def get(path: str, method: str = "GET") -> tuple[int, dict]:
        request = urllib.request.Request(url + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    status, info = get("/api/server_info")
    checks.expect("GET /api/server_info status", status, 200)
    checks.expect("server_info has version, commit, buildDate", sorted(info or {}), ["buildDate", "commit", "version"])
    checks.expect("unknown route", get("/api/nope"), (404, {"code": 5, "message": "Not Found"}))
    checks.expect("wrong method", get("/api/check/resources"), (405, {"code": 12, "message": "Method Not Allowed"}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", type=Path, default=REPO / "target/release/bootstrap",
                        help="the bootstrap binary (default: target/release/bootstrap)")
    parser.add_argument("--policies", type=Path, default=REPO / "tests/fixtures/policies",
                        help="policy folder with the `document` policy (default: tests/fixtures/policies)")
    parser.add_argument("--formats", default="v2,v1",
                        help="gateway event formats to run, comma-separated: v2 (HTTP API), v1 (REST API, prod stage)")
    args = parser.parse_args()

    try:
        import cerbos.sdk.client  # noqa: F401
    except ImportError:
        print("the Cerbos SDK is not installed: pip install cerbos", file=sys.stderr)
        return 2
    binary = args.bootstrap.resolve()
    if not os.access(binary, os.X_OK):
        print(f"{binary} is not an executable: build it with cargo build --release", file=sys.stderr)
        return 2

    runtime = RuntimeApi()
    gateway = Gateway(runtime)
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="verdict-sdk-check-") as root:
        task_root = Path(root)
        config = task_root / "config.yaml"
        config.write_text(
            "storage:\n  driver: disk\n  disk:\n    directory: "
            + json.dumps(str(args.policies.resolve())) + "\n"
        )
        function = Function(binary, runtime, task_root, config)
        problem = runtime.wait_ready(function.process)
        if problem is not None:
            function.stop()
            gateway.close()
            runtime.close()
            print(f"setup failed: {problem}", file=sys.stderr)
            print("function log:", *function.lines, sep="\n  ", file=sys.stderr)
            return 2
        try:
            for fmt in [f.strip() for f in args.formats.split(",") if f.strip()]:
                if fmt not in ("v1", "v2"):
                    print(f"unknown format {fmt!r}", file=sys.stderr)
                    return 2
                gateway.format = fmt
                label = "HTTP API (payload 2.0)" if fmt == "v2" else "REST API (payload 1.0, stage prod)"
                print(f"Cerbos Python SDK through {label} events:")
                run_sdk(gateway.url, checks)
                run_raw(gateway.url, checks)
                if function.process.poll() is not None or runtime.init_error is not None:
                    print("the function stopped", file=sys.stderr)
                    checks.failures += 1
                    break
        except Exception as err:  # noqa: BLE001 - any failure is reported with the function's log
            checks.total += 1
            checks.failures += 1
            print(f"  FAIL  unexpected error: {err!r}", file=sys.stderr)
        finally:
            function.stop()
            gateway.close()
            runtime.close()
        if checks.failures:
            print("function log:", *function.lines, sep="\n  ", file=sys.stderr)
    print(f"{checks.total - checks.failures}/{checks.total} checks passed")
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Verdict against the real Cerbos 0.55, side by side in one run.

For generated policy sets of N resource policies (scripts/gen_policies.py)
it measures:

- cold start to the first decision: Verdict's release `bootstrap` started
  under a Lambda Runtime API emulator on 127.0.0.1 (from local disk, and
  from a loopback S3 server: moto), against `cerbos server` started on the
  same folder and polled until it answers /api/check/resources;
- warm decision cost: Verdict per invocation through the emulator, Cerbos
  per request over one keep-alive loopback connection (p50/p99), for one
  resource x 3 actions and for a 10-resource batch;
- peak RSS (VmHWM) of each process after loading and answering.

It writes the table into BENCHMARKS.md between the bench-vs-cerbos markers.

    cargo build --release --locked
    python3 -m venv /tmp/bench && /tmp/bench/bin/pip install 'moto[server]'
    /tmp/bench/bin/python scripts/bench_vs_cerbos.py

Cerbos compiles conditions slowly (tens of seconds for 1,000 policies), so
its cold start is measured up to --cerbos-max policies.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import gen_policies  # noqa: E402
from sdk_check import RuntimeApi, http_api_event  # noqa: E402

MARK_START = "<!-- bench-vs-cerbos:start -->"
MARK_END = "<!-- bench-vs-cerbos:end -->"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def request_body(resources: int) -> dict:
    """A CheckResources request: 3 actions on each resource, conditions evaluated."""
    principal = {"id": "alice", "roles": ["user", "manager"],
                 "attr": {"department": "engineering", "tags": ["alpha", "beta"], "level": 4}}
    items = []
    for i in range(resources):
        items.append({
            "actions": ["view", "edit", "approve"],
            "resource": {"kind": gen_policies.kind_name(i), "id": f"doc-{i}", "attr": {
                "owner": "alice", "department": "engineering", "status": "published",
                "tags": ["beta"], "size": 10, "locked": False, "title": f"doc{i % 10} plan",
                "created_at": "2024-05-01T00:00:00Z", "region": "eu"}},
        })
    return {"requestId": "bench", "principal": principal, "resources": items}


def lambda_env(runtime: RuntimeApi, task_root: Path, config: Path, extra: dict) -> dict:
    env = {
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": "verdict-bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": "us-east-1",
        "RUST_LOG": "warn",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "VERDICT_CONFIG": str(config),
    }
    env.update(extra)
    return env


def verdict_run(binary: Path, config: Path, extra_env: dict, warm: int, batch: bool) -> dict:
    """One cold start, then `warm` invocations of each request shape."""
    runtime = RuntimeApi()
    event = http_api_event("POST", "/api/check/resources", "", {"content-type": "application/json"},
                           json.dumps(request_body(1)).encode(), "bench.local")
    # The task root must not be the policy folder: config files there would be read as policies.
    task_root = config.parent
    try:
        started = time.monotonic()
        process = subprocess.Popen([str(binary)], cwd=task_root, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env=lambda_env(runtime, task_root, config, extra_env))
        kind, _, body = runtime.invoke(event, timeout=120)
        cold = time.monotonic() - started
        if kind != "response" or b"EFFECT_ALLOW" not in body:
            raise RuntimeError(f"unexpected first answer ({kind}): {body[:300]!r}")
        result = {"cold_ms": cold * 1000}
        shapes = [("1x3", event)] if warm else []
        if batch and warm:
            shapes.append(("10x3", http_api_event(
                "POST", "/api/check/resources", "", {"content-type": "application/json"},
                json.dumps(request_body(10)).encode(), "bench.local")))
        for name, shape_event in shapes:
            timings = []
            for _ in range(warm):
                t = time.monotonic()
                runtime.invoke(shape_event)
                timings.append((time.monotonic() - t) * 1e6)
            timings.sort()
            result[f"warm_{name}_p50_us"] = timings[len(timings) // 2]
            result[f"warm_{name}_p99_us"] = timings[int(len(timings) * 0.99) - 1]
        result["rss_mb"] = peak_rss_mb(process.pid)
        process.kill()
        process.wait(timeout=10)
        return result
    finally:
        runtime.close()


def cerbos_run(binary: Path, policies: Path, warm: int, batch: bool) -> dict:
    port, grpc = free_port(), free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [str(binary), "server", "--set", "storage.driver=disk",
         "--set", f"storage.disk.directory={policies}",
         "--set", f"server.httpListenAddr=127.0.0.1:{port}",
         "--set", f"server.grpcListenAddr=127.0.0.1:{grpc}",
         "--set", "storage.disk.watchForChanges=false"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "CERBOS_NO_TELEMETRY": "1"})
    body1 = json.dumps(request_body(1)).encode()
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"cerbos exited with {process.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("POST", "/api/check/resources", body1, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                if response.status == 200:
                    break
            except OSError:
                time.sleep(0.002)
                continue
            finally:
                conn.close()
        cold = time.monotonic() - started
        if b"EFFECT_ALLOW" not in data:
            raise RuntimeError(f"unexpected Cerbos answer: {data[:300]!r}")
        result = {"cold_ms": cold * 1000}
        shapes = [("1x3", body1)]
        if batch:
            shapes.append(("10x3", json.dumps(request_body(10)).encode()))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for name, body in shapes:
            timings = []
            for _ in range(warm):
                t = time.monotonic()
                conn.request("POST", "/api/check/resources", body, {"Content-Type": "application/json"})
                conn.getresponse().read()
                timings.append((time.monotonic() - t) * 1e6)
            timings.sort()
            result[f"warm_{name}_p50_us"] = timings[len(timings) // 2]
            result[f"warm_{name}_p99_us"] = timings[int(len(timings) * 0.99) - 1]
        conn.close()
        result["rss_mb"] = peak_rss_mb(process.pid)
        return result
    finally:
        process.kill()
        process.wait(timeout=10)


class MotoServer:
    """moto's S3 server on a free loopback port (pip install 'moto[server]')."""

    def __init__(self) -> None:
        self.port = free_port()
        exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        self.process = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import boto3  # moto[server] installs it
        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                   aws_access_key_id="bench", aws_secret_access_key="bench")
        for _ in range(200):
            try:
                self.client.list_buckets()
                return
            except Exception:  # noqa: BLE001 - the server is still starting
                time.sleep(0.05)
        raise RuntimeError("moto_server did not start")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def upload(self, bucket: str, folder: Path, prefix: str) -> None:
        self.client.create_bucket(Bucket=bucket)
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in (".yaml", ".yml", ".json"):
                key = prefix + path.relative_to(folder).as_posix()
                self.client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", type=Path, default=REPO / "target/release/bootstrap")
    parser.add_argument("--cerbos", type=Path, default=os.environ.get("CERBOS_BIN"),
                        help="cerbos binary (default: $CERBOS_BIN, else npm install into a cache)")
    parser.add_argument("--sizes", default="10,100,1000,5000")
    parser.add_argument("--runs", type=int, default=5, help="cold starts per measurement")
    parser.add_argument("--warm", type=int, default=1000, help="warm requests per shape")
    parser.add_argument("--cerbos-max", type=int, default=1000,
                        help="largest set Cerbos is cold-started on")
    parser.add_argument("--no-s3", action="store_true", help="skip the loopback S3 runs")
    parser.add_argument("--write", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()

    cerbos = args.cerbos
    if cerbos is None:
        cache = Path.home() / ".cache/verdict-bench/npm"
        cerbos = cache / "node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64"
        if not cerbos.exists():
            subprocess.run(["npm", "install", "--silent", "--prefix", str(cache),
                            "@cerbos/cerbos-linux-x64@0.55.0"], check=True)
    work = Path(tempfile.mkdtemp(prefix="verdict-bench-"))
    moto = None if args.no_s3 else MotoServer()
    rows = []
    try:
        sets = [(int(n), False) for n in args.sizes.split(",")] + [(1000, True)]
        for count, plain in sets:
            label = f"{count} {'plain' if plain else 'with conditions'}"
            folder = work / f"{'plain' if plain else 'cond'}{count}"
            gen_policies.generate(count, str(folder), plain=plain)
            disk_config = work / f"{folder.name}.config.yaml"
            disk_config.write_text(f"storage:\n  driver: disk\n  disk:\n    directory: {folder}\n")
            print(f"== {label}", flush=True)
            verdict = [verdict_run(args.bootstrap, disk_config, {}, args.warm if i == 0 else 0,
                                   batch=True) for i in range(args.runs)]
            row = {"set": label, "verdict_disk_ms": median(verdict, "cold_ms"),
                   "verdict_rss_mb": verdict[0]["rss_mb"],
                   "verdict_1x3_p50_us": verdict[0]["warm_1x3_p50_us"],
                   "verdict_1x3_p99_us": verdict[0]["warm_1x3_p99_us"],
                   "verdict_10x3_p50_us": verdict[0]["warm_10x3_p50_us"]}
            if moto is not None:
                bucket = f"bench-{'plain' if plain else 'cond'}-{count}"
                moto.upload(bucket, folder, "policies/")
                s3_config = work / f"{folder.name}.config.s3.yaml"
                s3_config.write_text(
                    f"storage:\n  driver: blob\n  blob:\n    bucket: \"s3://{bucket}?region=us-east-1\"\n"
                    "    prefix: policies/\n")
                s3_env = {"AWS_ENDPOINT_URL_S3": moto.endpoint, "AWS_ACCESS_KEY_ID": "bench",
                          "AWS_SECRET_ACCESS_KEY": "bench"}
                s3_runs = [verdict_run(args.bootstrap, s3_config, s3_env, 0, batch=False)
                           for _ in range(args.runs)]
                row["verdict_s3_ms"] = median(s3_runs, "cold_ms")
            if count <= args.cerbos_max:
                runs = max(1, args.runs if count < 1000 or plain else min(args.runs, 3))
                cerbos_runs = [cerbos_run(cerbos, folder, args.warm if i == 0 else 5, batch=True)
                               for i in range(runs)]
                row.update({"cerbos_ms": median(cerbos_runs, "cold_ms"), "cerbos_runs": runs,
                            "cerbos_rss_mb": cerbos_runs[0]["rss_mb"],
                            "cerbos_1x3_p50_us": cerbos_runs[0]["warm_1x3_p50_us"],
                            "cerbos_1x3_p99_us": cerbos_runs[0]["warm_1x3_p99_us"],
                            "cerbos_10x3_p50_us": cerbos_runs[0]["warm_10x3_p50_us"]})
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        if moto is not None:
            moto.close()
        shutil.rmtree(work, ignore_errors=True)
    write_table(args.write, rows, args)
    return 0


def fmt(value, unit="", digits=1) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}{unit}"


def ratio(a, b) -> str:
    if a is None or b is None or a == 0:
        return "—"
    return f"1/{b / a:.0f}" if b >= a else f"{a / b:.1f}×"


def write_table(path: Path, rows: list[dict], args) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                if line.startswith("model name")), platform.processor())
    lines = [MARK_START, "",
             f"Run on {time.strftime('%Y-%m-%d')} — {os.cpu_count()} × {cpu}, Linux {platform.release()}. "
             f"Command: `python3 scripts/bench_vs_cerbos.py --sizes {args.sizes} --runs {args.runs} "
             f"--warm {args.warm} --cerbos-max {args.cerbos_max}`. Cold starts are medians of "
             f"{args.runs} runs (Cerbos at 1,000 policies with conditions: median of 3).", "",
             "| policy set | Verdict cold, disk | Verdict cold, loopback S3 | Cerbos cold, disk | ratio | "
             "Verdict peak RSS | Cerbos peak RSS | RSS ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['set']} | {fmt(r['verdict_disk_ms'], ' ms')} | {fmt(r.get('verdict_s3_ms'), ' ms')} | "
            f"{fmt(r.get('cerbos_ms'), ' ms')} | {ratio(r['verdict_disk_ms'], r.get('cerbos_ms'))} | "
            f"{fmt(r['verdict_rss_mb'], ' MB')} | {fmt(r.get('cerbos_rss_mb'), ' MB')} | "
            f"{ratio(r['verdict_rss_mb'], r.get('cerbos_rss_mb'))} |")
    lines += ["", "Warm decisions (one connection, sequential; Verdict through the Python Runtime API "
              "emulator, which adds its own overhead — the in-process handler time is in the criterion "
              "table):", "",
              "| policy set | Verdict 1×3 p50 / p99 | Cerbos 1×3 p50 / p99 | p50 ratio | "
              "Verdict 10×3 p50 | Cerbos 10×3 p50 |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['set']} | {fmt(r['verdict_1x3_p50_us'], ' µs', 0)} / {fmt(r['verdict_1x3_p99_us'], ' µs', 0)} | "
            f"{fmt(r.get('cerbos_1x3_p50_us'), ' µs', 0)} / {fmt(r.get('cerbos_1x3_p99_us'), ' µs', 0)} | "
            f"{ratio(r['verdict_1x3_p50_us'], r.get('cerbos_1x3_p50_us'))} | "
            f"{fmt(r['verdict_10x3_p50_us'], ' µs', 0)} | {fmt(r.get('cerbos_10x3_p50_us'), ' µs', 0)} |")
    lines += ["", MARK_END]
    block = "\n".join(lines)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        tail = rest.split(MARK_END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())

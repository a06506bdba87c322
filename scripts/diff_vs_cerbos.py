#!/usr/bin/env python3
"""Differential check: Verdict against the real Cerbos 0.55.

For each policy folder it starts `cerbos server` on a free 127.0.0.1 port,
builds a request corpus from the folder's own policies (plus Cerbos's
conformance inputs when given), sends every request to Cerbos over HTTP and
the same requests to one `bootstrap check --ndjson` process, and compares,
per resource and action: the effect, `meta` (matchedPolicy, matchedScope),
`effectiveDerivedRoles` (as a set), `outputs` (sorted) and
`validationErrors` (sorted). Requests that one side rejects and the other
answers are mismatches too.

    python3 scripts/diff_vs_cerbos.py \\
        --policies policies \\
        --conformance ../shared/conformance \\
        --generate 100

Suites:
  --policies DIR       the folder with default settings (repeatable)
  --conformance ROOT   ROOT/store four times: strict, lenientScopeSearch,
                       schema enforcement warn and reject, all with
                       globals {environment: test}; the corpus adds the
                       inputs of ROOT/engine*/**.yaml (read at run time)
                       and variations of them
  --generate N         a set written by scripts/gen_policies.py (repeatable)

The Cerbos binary is $CERBOS_BIN, else `cerbos` on PATH, else the copy in
the cache folder (--cache, default ~/.cache/verdict-diff), installed there
with `npm install --prefix CACHE @cerbos/cerbos-linux-x64@0.55.0` when
missing. Verdict is --bootstrap / $VERDICT_BOOTSTRAP, else
target/{release,debug}/bootstrap (--profile), built with `cargo build`
first unless --no-build.

The exit code is 1 when any mismatch is found (any category), 2 on a setup
failure, 0 otherwise. A category can be excused with --allow CATEGORY.
"""

import argparse
import base64
import concurrent.futures
import datetime
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with the machine image
    sys.exit("diff_vs_cerbos.py needs PyYAML (pip install pyyaml)")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen_policies  # noqa: E402

CERBOS_NPM_PACKAGE = "@cerbos/cerbos-linux-x64@0.55.0"
CERBOS_REL_PATH = "node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64"

CATEGORIES = [
    "rejection",  # one side answered, the other refused the request
    "shape",  # different number of results, or resource echo differs
    "effect",
    "matchedPolicy",
    "matchedScope",
    "effectiveDerivedRoles",
    "outputs",
    "validationErrors",
]

JWT_SECRET = b"verdict-diff-not-a-secret"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Locating the two programs


def find_cerbos(cache):
    env = os.environ.get("CERBOS_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise SystemExit(f"CERBOS_BIN={env} is not executable")
        return env
    on_path = shutil.which("cerbos")
    if on_path and cerbos_version(on_path).startswith("0.55."):
        return on_path
    cached = os.path.join(cache, CERBOS_REL_PATH)
    if os.access(cached, os.X_OK):
        return cached
    log(f"installing {CERBOS_NPM_PACKAGE} into {cache}")
    os.makedirs(cache, exist_ok=True)
    subprocess.run(
        ["npm", "install", "--no-save", "--no-audit", "--no-fund",
         "--prefix", cache, CERBOS_NPM_PACKAGE],
        check=True, stdout=sys.stderr)
    if not os.access(cached, os.X_OK):
        raise SystemExit(f"npm install did not produce {cached}")
    return cached


def cerbos_version(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.split("\n", 1)[0].strip()


def find_bootstrap(explicit, build, profile="release"):
    path = explicit or os.environ.get("VERDICT_BOOTSTRAP")
    if path:
        if not os.access(path, os.X_OK):
            raise SystemExit(f"bootstrap {path} is not executable")
        return path
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    path = os.path.join(target, "release" if profile == "release" else "debug", "bootstrap")
    if build:
        cmd = ["cargo", "build", "--bin", "bootstrap"]
        if profile == "release":
            cmd.insert(2, "--release")
        log(" ".join(cmd))
        subprocess.run(cmd, cwd=REPO, check=True, stdout=sys.stderr)
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{path} is missing: build it or pass --bootstrap")
    return path


# ---------------------------------------------------------------------------
# Suites: a policy folder with engine settings


class Suite:
    def __init__(self, name, directory, *, lenient=False, schema="none",
                 globals_=None, conformance=None):
        self.name = name
        self.directory = os.path.abspath(directory)
        self.lenient = lenient
        self.schema = schema
        self.globals = globals_ or {}
        # The conformance root whose engine inputs join the corpus.
        self.conformance = conformance

    def cerbos_flags(self):
        flags = [
            "--set", "storage.driver=disk",
            "--set", f"storage.disk.directory={self.directory}",
            "--set", "storage.disk.watchForChanges=false",
            "--set", "auxData.jwt.disableVerification=true",
            "--set", f"schema.enforcement={self.schema}",
        ]
        if self.lenient:
            flags += ["--set", "engine.lenientScopeSearch=true"]
        for key, value in sorted(self.globals.items()):
            flags += ["--set", f"engine.globals.{key}={value}"]
        return flags

    def verdict_config(self):
        config = {
            "storage": {"driver": "disk",
                        "disk": {"directory": self.directory}},
            "engine": {"lenientScopeSearch": self.lenient,
                       "globals": self.globals},
            "schema": {"enforcement": self.schema},
            "auxData": {"jwt": {"disableVerification": True}},
        }
        return yaml.safe_dump(config, sort_keys=True)


# ---------------------------------------------------------------------------
# Cerbos server


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CerbosServer:
    def __init__(self, binary, suite, workdir):
        self.binary = binary
        self.suite = suite
        self.workdir = workdir
        self.proc = None
        self.port = None
        self.log_path = os.path.join(workdir, f"cerbos-{suite.name}.log")

    def __enter__(self):
        for _ in range(5):
            self.port = free_port()
            grpc = free_port()
            cmd = [self.binary, "server",
                   "--set", f"server.httpListenAddr=127.0.0.1:{self.port}",
                   "--set", f"server.grpcListenAddr=127.0.0.1:{grpc}",
                   ] + self.suite.cerbos_flags()
            env = dict(os.environ, CERBOS_NO_TELEMETRY="1")
            logf = open(self.log_path, "w")
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
            logf.close()
            if self._wait_ready():
                return self
            self._stop()
        with open(self.log_path) as f:
            tail = f.read()[-4000:]
        raise SystemExit(f"cerbos server did not start for {self.suite.name}:\n{tail}")

    def _wait_ready(self):
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/_cerbos/health")
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                if resp.status == 200 and b"SERVING" in body:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def _stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc):
        self._stop()

    def check_all(self, bodies, threads=4):
        local = threading.local()

        def one(body):
            for attempt in range(3):
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=60)
                try:
                    conn.request("POST", "/api/check/resources", body=body,
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    return resp.status, json.loads(data)
                except (OSError, http.client.HTTPException, ValueError):
                    conn.close()
                    local.conn = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, bodies))


def verdict_check_all(bootstrap, suite, bodies, workdir):
    config_path = os.path.join(workdir, f"verdict-{suite.name}.yaml")
    with open(config_path, "w") as f:
        f.write(suite.verdict_config())
    proc = subprocess.run(
        [bootstrap, "check", "--config", config_path, "--ndjson", "-"],
        input="\n".join(bodies) + "\n", capture_output=True, text=True,
        env=dict(os.environ, RUST_LOG="error"), timeout=1800)
    lines = [line for line in proc.stdout.split("\n") if line.strip()]
    if len(lines) != len(bodies):
        raise SystemExit(
            f"bootstrap check answered {len(lines)} of {len(bodies)} requests "
            f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return [json.loads(line) for line in lines]


# ---------------------------------------------------------------------------
# Reading a policy folder into a vocabulary for the corpus


def policy_files(directory):
    """The files Cerbos reads as policies."""
    out = []
    for root, dirs, files in os.walk(directory):
        rel_root = os.path.relpath(root, directory)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and d != "testdata"
                         and not (rel_root == "." and d == "_schemas"))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if not name.endswith((".yaml", ".yml", ".json")):
                continue
            if re.search(r"_test\.(ya?ml|json)$", name):
                continue
            out.append(os.path.join(root, name))
    return out


def schema_files(directory):
    out = []
    base = os.path.join(directory, "_schemas")
    for root, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, f) for f in sorted(files)
                if f.endswith(".json") and not f.startswith(".")]
    return out


def strings_in(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings_in(v)


REF = r"(?:\b(R|P)|\brequest\.(resource|principal))\.attr\.([A-Za-z_]\w*)"
LIT = r"(\"[^\"]*\"|'[^']*'|-?\d+(?:\.\d+)?|true|false|null)"
CMP = r"(==|!=|<=|>=|<|>)"


def side_of(groups):
    short, long_ = groups[0], groups[1]
    if short:
        return short
    return "R" if long_ == "resource" else "P"


def parse_literal(text):
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if text[0] in "\"'":
        return text[1:-1]
    if "." in text:
        return float(text)
    return int(text)


class Vocab:
    """What a policy folder names: kinds, roles, actions, scopes, versions,
    principal ids and the attributes its conditions read."""

    def __init__(self, directory):
        self.kinds = set()
        self.kind_actions = {}  # kind -> set of action patterns
        self.other_kinds = set()  # literal kinds named by principal/role rules
        self.versions = {"default"}
        self.scopes = {""}
        self.kind_scopes = {}  # kind -> scopes with a resource policy
        self.roles = set()
        self.role_policy_roles = set()
        self.principal_ids = set()
        self.actions = set()
        self.attrs = {"R": {}, "P": {}}  # side -> name -> AttrInfo
        self.links = []
        self.string_pool = set()
        self.number_pool = set()
        self.schema_props = {"R": set(), "P": set()}
        for path in policy_files(directory):
            try:
                with open(path, encoding="utf-8") as f:
                    docs = list(yaml.safe_load_all(f))
            except (yaml.YAMLError, UnicodeDecodeError):
                continue
            for doc in docs:
                if isinstance(doc, dict):
                    self._policy(doc)
        for path in schema_files(directory):
            try:
                with open(path, encoding="utf-8") as f:
                    schema = json.load(f)
            except ValueError:
                continue
            side = "P" if "principal" in os.path.basename(path) else "R"
            for name, prop in (schema.get("properties") or {}).items():
                self.schema_props[side].add(name)
                info = self.attr(side, name)
                typ = prop.get("type") if isinstance(prop, dict) else None
                if isinstance(prop, dict) and prop.get("enum"):
                    info.values.update(json.dumps(v) for v in prop["enum"])
                if typ:
                    info.types.add(typ if isinstance(typ, str) else typ[0])

    def attr(self, side, name):
        info = self.attrs[side].get(name)
        if info is None:
            info = self.attrs[side][name] = AttrInfo()
        return info

    def _policy(self, doc):
        for kind_key in ("resourcePolicy", "principalPolicy", "rolePolicy"):
            p = doc.get(kind_key)
            if not isinstance(p, dict):
                continue
            if p.get("version"):
                self.versions.add(str(p["version"]))
            scope = p.get("scope") or ""
            self.scopes.add(scope)
            if kind_key == "resourcePolicy":
                kind = str(p.get("resource", ""))
                self.kinds.add(kind)
                self.kind_scopes.setdefault(kind, set()).add(scope)
                acts = self.kind_actions.setdefault(kind, set())
                for rule in p.get("rules") or []:
                    acts.update(rule.get("actions") or [])
                    self.roles.update(r for r in rule.get("roles") or [] if r != "*")
            elif kind_key == "principalPolicy":
                self.principal_ids.add(str(p.get("principal", "")))
                for rule in p.get("rules") or []:
                    res = str(rule.get("resource", ""))
                    if not any(c in res for c in "*?[{"):
                        self.other_kinds.add(res)
                    for a in rule.get("actions") or []:
                        self.actions.add(a.get("action", ""))
                        self.kind_actions.setdefault(res, set()).add(a.get("action", ""))
            else:
                self.role_policy_roles.add(str(p.get("role", "")))
                self.roles.update(p.get("parentRoles") or [])
                for rule in p.get("rules") or []:
                    res = str(rule.get("resource", ""))
                    if not any(c in res for c in "*?[{"):
                        self.other_kinds.add(res)
                    acts = rule.get("allowActions") or []
                    self.actions.update(acts)
                    self.kind_actions.setdefault(res, set()).update(acts)
        dr = doc.get("derivedRoles")
        if isinstance(dr, dict):
            for d in dr.get("definitions") or []:
                self.roles.update(r for r in d.get("parentRoles") or [] if r != "*")
        for text in strings_in(doc):
            self._expression(text)
        for acts in self.kind_actions.values():
            self.actions.update(acts)

    def _expression(self, text):
        for m in re.finditer(LIT, text):
            value = parse_literal(m.group(1))
            if isinstance(value, str) and 0 < len(value) <= 40:
                self.string_pool.add(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                self.number_pool.add(value)
        for m in re.finditer(REF, text):
            self.attr(side_of(m.groups()), m.group(3))
        for m in re.finditer(REF + r"\s*" + CMP + r"\s*" + LIT, text):
            info = self.attr(side_of(m.groups()), m.group(3))
            info.add_literal(m.group(4), parse_literal(m.group(5)))
        for m in re.finditer(LIT + r"\s*" + CMP + r"\s*" + REF, text):
            info = self.attr(side_of(m.groups()[2:]), m.group(5))
            info.add_literal(m.group(2), parse_literal(m.group(1)))
        for m in re.finditer(REF + r"\s+in\s+\[([^\]]*)\]", text):
            info = self.attr(side_of(m.groups()), m.group(3))
            for lit in re.finditer(LIT, m.group(4)):
                info.add_literal("==", parse_literal(lit.group(1)))
        for m in re.finditer(LIT + r"\s+in\s+" + REF, text):
            info = self.attr(side_of(m.groups()[1:]), m.group(4))
            info.list_items.add(json.dumps(parse_literal(m.group(1))))
        for m in re.finditer(REF + r"\s*(?:==|!=)\s*(?:P|request\.principal)\.id\b", text):
            self.attr(side_of(m.groups()), m.group(3)).owner = True
        for m in re.finditer(r"(?:P|request\.principal)\.id\s*(?:==|!=)\s*" + REF, text):
            self.attr(side_of(m.groups()), m.group(3)).owner = True
        for m in re.finditer(REF + r"\s*(?:==|!=|in)\s*" + REF, text):
            a = (side_of(m.groups()[:3]), m.group(3))
            b = (side_of(m.groups()[3:]), m.group(6))
            self.links.append((a, b))
        for m in re.finditer(REF + r"\.(startsWith|endsWith|contains)\(\"([^\"]*)\"\)", text):
            info = self.attr(side_of(m.groups()), m.group(3))
            info.affixes.add((m.group(4), m.group(5)))
        for m in re.finditer(r"timestamp\(" + REF + r"\)", text):
            self.attr(side_of(m.groups()), m.group(3)).timestamp = True
        for m in re.finditer(REF + r"\.(size|exists|all|filter|map|exists_one)\b", text):
            self.attr(side_of(m.groups()), m.group(3)).listy = True
        for m in re.finditer(r"(?:hasIntersection|intersect|except|isSubset)\(\s*" + REF, text):
            self.attr(side_of(m.groups()), m.group(3)).listy = True
        for m in re.finditer(REF + r"\.inIPAddrRange\(\"([^\"]*)\"\)", text):
            self.attr(side_of(m.groups()), m.group(3)).cidrs.add(m.group(4))


class AttrInfo:
    def __init__(self):
        self.values = set()  # JSON texts of plausible values
        self.list_items = set()
        self.affixes = set()
        self.cidrs = set()
        self.types = set()
        self.owner = False
        self.timestamp = False
        self.listy = False

    def add_literal(self, op, value):
        self.values.add(json.dumps(value))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for delta in (-1, 1):
                self.values.add(json.dumps(value + delta))


# ---------------------------------------------------------------------------
# The corpus

DEFAULT_IDS = ["john", "donald_duck", "daisy_duck", "bugs_bunny", "sally",
               "gen_auditor", "scrooge_mcduck"]
DEFAULT_ROLES = ["user", "employee", "manager", "admin", "acme_creator",
                 "acme_jr_admin", "acme_travel_agent", "acme_london_employee"]


def jwt_token(claims):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims, sort_keys=True).encode())
    signing = f"{header}.{payload}".encode()
    sig = b64(hmac.new(JWT_SECRET, signing, hashlib.sha256).digest())
    return f"{header}.{payload}.{sig}"


class Corpus:
    def __init__(self, vocab, rng, with_jwt=True):
        self.v = vocab
        self.rng = rng
        self.ids = sorted(set(DEFAULT_IDS) | vocab.principal_ids - {""})
        self.roles = sorted((vocab.roles | vocab.role_policy_roles | set(DEFAULT_ROLES)) - {""})
        self.kinds = sorted(vocab.kinds | vocab.other_kinds - {""})
        self.versions = sorted(vocab.versions)
        self.scopes = sorted(vocab.scopes)
        self.with_jwt = with_jwt
        exp = int(time.time()) + 7 * 24 * 3600
        self.jwt = jwt_token({
            "iss": "cerbos-test-suite", "aud": ["cerbos-jwt-tests"],
            "sub": "diff", "exp": exp, "customArray": ["A", "B", "C"],
            "customInt": 42, "customString": "foobar",
            "customMap": {"A": "AA", "B": "BB"}})
        self.counter = 0

    # -- attribute values

    def pick(self, seq):
        return self.rng.choice(list(seq))

    def timestamp_value(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        delta = datetime.timedelta(hours=self.rng.choice(
            [-24 * 400, -48, -24, -1, 1, 24, 24 * 30]))
        if self.rng.random() < 0.1:
            return "not-a-timestamp"
        return (now + delta).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")

    def good_value(self, info, principal_id):
        r = self.rng
        if info.owner and r.random() < 0.6:
            return principal_id
        if info.timestamp:
            return self.timestamp_value()
        if info.cidrs:
            cidr = self.pick(info.cidrs)
            base = cidr.split("/")[0]
            if r.random() < 0.7 and base.count(".") == 3:
                parts = base.split(".")
                parts[-1] = str(r.randint(1, 200))
                return ".".join(parts)
            return "192.0.2.1"
        if info.affixes:
            how, text = self.pick(sorted(info.affixes))
            tail = self.pick(["", "_x", "123"])
            if how == "startsWith":
                return text + tail
            if how == "endsWith":
                return tail + text
            return "a" + text + "b"
        if info.listy or info.list_items:
            pool = [json.loads(x) for x in info.list_items | info.values]
            pool += self.rng.sample(sorted(self.v.string_pool) or ["x"],
                                    min(3, len(self.v.string_pool) or 1))
            n = r.randint(0, 3)
            return list(dict.fromkeys(r.choice(pool) for _ in range(n)))
        if info.values:
            return json.loads(self.pick(sorted(info.values)))
        if "integer" in info.types or "number" in info.types:
            return r.randint(0, 100)
        if "boolean" in info.types:
            return r.random() < 0.5
        return self.other_value()

    def other_value(self):
        r = self.rng
        choice = r.random()
        if choice < 0.5 and self.v.string_pool:
            return self.pick(sorted(self.v.string_pool))
        if choice < 0.7:
            return r.choice([0, 1, 7, 42, 1000, -3, 2.5])
        if choice < 0.8:
            return r.random() < 0.5
        return self.pick(self.ids)

    def wrong_type(self, value):
        r = self.rng
        if isinstance(value, str):
            return r.choice([42, True, ["a"], {"k": "v"}])
        if isinstance(value, bool):
            return r.choice(["true", 1])
        if isinstance(value, (int, float)):
            return r.choice([str(value), [value], False])
        if isinstance(value, list):
            return r.choice(["a,b", 3, {"0": "a"}])
        return "surprise"

    def attrs(self, side, principal_id, other=None):
        out = {}
        for name, info in sorted(self.v.attrs[side].items()):
            roll = self.rng.random()
            if roll < 0.14:
                continue  # missing
            value = self.good_value(info, principal_id)
            if roll < 0.20:
                value = None
            elif roll < 0.27:
                value = self.wrong_type(value)
            elif roll < 0.37:
                value = self.other_value()
            out[name] = value
        if other is not None:
            for (sa, na), (sb, nb) in self.v.links:
                here, there = None, None
                if sa == side and sb != side:
                    here, there = na, nb
                elif sb == side and sa != side:
                    here, there = nb, na
                if here and there in other and self.rng.random() < 0.6:
                    out[here] = other[there]
        if self.rng.random() < 0.05:
            out["unrelated_attr"] = {"nested": [1, 2, {"x": None}]}
        return out

    # -- scopes, versions, actions

    def scope_variant(self, base_scopes):
        r = self.rng
        roll = r.random()
        existing = sorted(base_scopes) or [""]
        if roll < 0.45:
            return self.pick(existing)
        if roll < 0.60:
            return ""
        if roll < 0.75:
            s = self.pick(existing)
            return (s + "." if s else "") + r.choice(["deeper", "deeper.deepest", "x1"])
        if roll < 0.88:
            return r.choice(["nowhere", "acme.nowhere", "acme.hr.nowhere",
                             "zz.top", "acme.hr.uk.london.central"])
        if roll < 0.94:
            return "."
        if roll < 0.97:
            return "." + self.pick(existing)  # leading dot: rejected by Cerbos
        return r.choice(["a..b", "-bad", "ACME.Hr"])

    def version_variant(self):
        r = self.rng
        roll = r.random()
        if roll < 0.45:
            return ""
        if roll < 0.85:
            return self.pick(self.versions)
        return r.choice(["missing_version", "20210210", "v2", "staging"])

    def expand_action(self, pattern):
        r = self.rng
        if pattern in ("*", "**", ""):
            return r.choice(["anything", "view", "do:something"])
        if "*" in pattern or "?" in pattern:
            base = pattern.replace("**", "*")
            filled = base.replace("*", r.choice(["public", "x", "all"]), 1)
            filled = filled.replace("*", "y").replace("?", "q")
            return r.choice([filled, filled, pattern.split(":")[0],
                             filled + ":extra"])
        return pattern

    def actions_for(self, kind, count=None):
        r = self.rng
        pool = sorted(self.v.kind_actions.get(kind, set()) | set())
        if not pool or r.random() < 0.15:
            pool = pool + sorted(self.v.actions)
        n = count or r.randint(1, 5)
        acts = []
        for _ in range(n * 2):
            if len(acts) >= n:
                break
            roll = r.random()
            if roll < 0.06:
                a = r.choice(["unknown_action", "frobnicate", "view:secret:deep"])
            elif pool:
                a = self.expand_action(r.choice(pool))
            else:
                a = "view"
            if a and a not in acts:
                acts.append(a)
        return acts or ["view"]

    # -- requests

    def principal(self, roles=None, pid=None):
        r = self.rng
        pid = pid or self.pick(self.ids)
        if roles is None:
            n = r.choice([1, 1, 1, 2, 2, 3])
            roles = list(dict.fromkeys(r.choice(self.roles) for _ in range(n)))
            if r.random() < 0.05:
                roles.append("unknown_role")
        p = {"id": pid, "roles": roles, "attr": self.attrs("P", pid)}
        version = self.version_variant()
        if version:
            p["policyVersion"] = version
        scope = self.scope_variant(self.v.scopes)
        if scope:
            p["scope"] = scope
        return p

    def resource(self, principal, kind=None, scope=None, version=None):
        r = self.rng
        if kind is None:
            roll = r.random()
            if roll < 0.05 or not self.kinds:
                kind = r.choice(["unknown_kind", "res_9999", "leave-request"])
            else:
                kind = r.choice(self.kinds)
        res = {"kind": kind, "id": f"r{r.randint(1, 50)}",
               "attr": self.attrs("R", principal["id"], principal.get("attr"))}
        if version is None:
            version = self.version_variant()
            if r.random() < 0.5:
                version = principal.get("policyVersion", "")
        if version:
            res["policyVersion"] = version
        if scope is None:
            if r.random() < 0.35:
                scope = principal.get("scope", "")
            else:
                scope = self.scope_variant(self.v.kind_scopes.get(kind, self.v.scopes))
        if scope:
            res["scope"] = scope
        return res

    def request(self, principal, entries):
        self.counter += 1
        req = {"requestId": f"diff-{self.counter}", "includeMeta": True,
               "principal": principal, "resources": entries}
        if self.with_jwt and self.rng.random() < 0.15:
            req["auxData"] = {"jwt": {"token": self.jwt}}
        return req

    def random_requests(self, count):
        out = []
        for _ in range(count):
            p = self.principal()
            n = 1 if self.rng.random() < 0.8 else self.rng.randint(2, 4)
            entries = []
            for _ in range(n):
                res = self.resource(p)
                entries.append({"actions": self.actions_for(res["kind"]),
                                "resource": res})
            out.append(self.request(p, entries))
        return out

    def grid_requests(self):
        """Every role alone (and every principal id) against every kind at
        its own scopes, a deeper one and a missing one, batched by principal."""
        out = []
        combos = [([role], None) for role in self.roles]
        combos += [([self.pick(self.roles)], pid) for pid in self.ids]
        for roles, pid in combos:
            p = self.principal(roles=roles, pid=pid)
            p.pop("scope", None)
            p.pop("policyVersion", None)
            if self.rng.random() < 0.3:
                p["policyVersion"] = self.pick(self.versions)
            entries = []
            for kind in self.kinds + ["unknown_kind"]:
                scopes = sorted(self.v.kind_scopes.get(kind, {""}))
                deepest = max(scopes, key=len)
                variants = scopes + [(deepest + "." if deepest else "") + "deeper",
                                     "nowhere"]
                for scope in variants:
                    res = self.resource(p, kind=kind, scope=scope,
                                        version=p.get("policyVersion", ""))
                    acts = sorted(a for a in self.v.kind_actions.get(kind, set())
                                  if "*" not in a and "?" not in a)[:8]
                    acts = acts or self.actions_for(kind, 3)
                    entries.append({"actions": acts, "resource": res})
            for i in range(0, len(entries), 50):
                out.append(self.request(p, entries[i:i + 50]))
        return out

    def from_conformance(self, root, variants):
        """Cerbos's engine inputs as they are, and `variants` mutations of each."""
        out = []
        for path in sorted(conformance_case_files(root)):
            with open(path, encoding="utf-8") as f:
                case = yaml.safe_load(f) or {}
            for inp in case.get("inputs") or []:
                base = {"principal": inp.get("principal") or {},
                        "resource": inp.get("resource") or {},
                        "actions": list(inp.get("actions") or [])}
                out.append(self._conf_request(base))
                for _ in range(variants):
                    out.append(self._conf_request(self.mutate(base)))
        return out

    def _conf_request(self, base):
        p = json.loads(json.dumps(base["principal"]))
        res = json.loads(json.dumps(base["resource"]))
        res.setdefault("id", "x")
        return self.request(p, [{"actions": base["actions"], "resource": res}])

    def mutate(self, base):
        b = json.loads(json.dumps(base))
        p, res = b["principal"], b["resource"]
        what = self.rng.choice(["pversion", "rversion", "pscope", "rscope",
                                "roles", "addrole", "id", "dropattr",
                                "nullattr", "wrongattr", "actions", "kind"])
        if what == "pversion":
            p["policyVersion"] = self.version_variant()
        elif what == "rversion":
            res["policyVersion"] = self.version_variant()
        elif what == "pscope":
            p["scope"] = self.scope_variant(self.v.scopes)
        elif what == "rscope":
            res["scope"] = self.scope_variant(self.v.scopes)
        elif what == "roles":
            p["roles"] = [self.pick(self.roles)]
        elif what == "addrole":
            extra = self.pick(sorted(self.v.role_policy_roles) or self.roles)
            if extra not in p.get("roles", []):
                p.setdefault("roles", []).append(extra)
        elif what == "id":
            p["id"] = self.pick(self.ids)
        elif what in ("dropattr", "nullattr", "wrongattr"):
            target = self.rng.choice([p, res])
            attr = target.setdefault("attr", {})
            if attr:
                key = self.pick(sorted(attr))
                if what == "dropattr":
                    del attr[key]
                elif what == "nullattr":
                    attr[key] = None
                else:
                    attr[key] = self.wrong_type(attr[key])
        elif what == "actions":
            b["actions"] = self.actions_for(res.get("kind", ""))
        elif what == "kind":
            res["kind"] = self.pick(self.kinds + ["unknown_kind"])
        for d in (p, res):
            for k in ("policyVersion", "scope"):
                if k in d and not d[k]:
                    del d[k]
        return b


def conformance_case_files(root):
    out = []
    for entry in sorted(os.listdir(root)):
        if not entry.startswith("engine"):
            continue
        for dirpath, _, files in os.walk(os.path.join(root, entry)):
            out += [os.path.join(dirpath, f) for f in files
                    if f.endswith((".yaml", ".yml"))]
    return out


# ---------------------------------------------------------------------------
# Comparison

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_ts(text):
    m = TS_RE.match(text)
    if not m:
        return None
    core = text[:19]
    frac = m.group(1) or ""
    zone = m.group(2)
    dt = datetime.datetime.strptime(core, "%Y-%m-%dT%H:%M:%S")
    offset = datetime.timedelta(0)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    micro = float("0" + frac) if frac else 0.0
    return (dt - offset).replace(tzinfo=datetime.timezone.utc).timestamp() + micro


def same_value(a, b, tolerance):
    """JSON equality, except that two RFC 3339 timestamps in the same zone
    style within `tolerance` seconds are equal: `now()` differs between the
    two processes."""
    if isinstance(a, str) and isinstance(b, str):
        if a == b:
            return True
        ta, tb = parse_ts(a), parse_ts(b)
        if ta is None or tb is None:
            return False
        return a.endswith("Z") == b.endswith("Z") and abs(ta - tb) <= tolerance
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        # JSON numbers are compared by value: Cerbos prints 1e20 as
        # 100000000000000000000 where serde_json prints 1e20.
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y, tolerance) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k], tolerance) for k in a)
    return a == b


def output_key(o):
    return (o.get("src", ""), o.get("action", ""), json.dumps(o.get("val"), sort_keys=True))


def sorted_outputs(outputs):
    return sorted(outputs or [], key=output_key)


def validation_key(v):
    return (v.get("source", ""), v.get("path", ""), v.get("message", ""))


def normalize_validation(v):
    """Cerbos lists unexpected properties in Go map order, which varies
    from one call to the next: compare them as a set."""
    msg = v.get("message", "")
    m = re.match(r"^additionalProperties (.*) not allowed$", msg)
    if m:
        names = sorted(re.findall(r"'((?:[^']|'')*)'", m.group(1)))
        msg = "additionalProperties " + ", ".join(f"'{n}'" for n in names) + " not allowed"
    return {**v, "message": msg}


# Differences that are understood, waiting on a change outside the engine:
# a mismatch that disappears once the named normalisation is applied to both
# sides is counted under "known: NAME" and does not fail the run. Remove an
# entry as soon as its change lands, so the check guards it from then on.
KNOWN = {}

# Normalisations by KNOWN name, applied to both output lists.
KNOWN_NORMALISERS = {}


def known_outputs_difference(co, vo, tolerance):
    """The name of the known difference that explains two output lists, or None."""
    for name, fn in KNOWN_NORMALISERS.items():
        if same_value(sorted_outputs(fn(co)), sorted_outputs(fn(vo)), tolerance):
            return name
    for fn in KNOWN_NORMALISERS.values():
        co, vo = fn(co), fn(vo)
    if same_value(sorted_outputs(co), sorted_outputs(vo), tolerance):
        return "+".join(KNOWN_NORMALISERS)
    return None


class Stats:
    def __init__(self):
        self.requests = 0
        self.resources = 0
        self.decisions = 0
        self.both_rejected = 0
        self.mismatches = {c: 0 for c in CATEGORIES}
        self.known = {}
        self.allowed_effects = 0
        self.details = []

    def add(self, suite, category, request, detail, cerbos, verdict):
        self.mismatches[category] += 1
        self.details.append({"suite": suite, "category": category,
                             "detail": detail, "request": request,
                             "cerbos": cerbos, "verdict": verdict})


def compare(suite, request, cerbos, verdict, stats, tolerance):
    stats.requests += 1
    status, c = cerbos
    c_err = status != 200 or "results" not in c
    v_err = "results" not in verdict
    if c_err or v_err:
        if c_err and v_err:
            stats.both_rejected += 1
            return
        stats.add(suite, "rejection", request,
                  f"cerbos {'rejected' if c_err else 'answered'} (HTTP {status}), "
                  f"verdict {'rejected' if v_err else 'answered'}", c, verdict)
        return
    cres, vres = c["results"], verdict["results"]
    if len(cres) != len(vres):
        stats.add(suite, "shape", request,
                  f"{len(cres)} results from cerbos, {len(vres)} from verdict", c, verdict)
        return
    for i, (cr, vr) in enumerate(zip(cres, vres)):
        stats.resources += 1
        entry = request["resources"][i]
        where = f"resources[{i}] {entry['resource'].get('kind')}"

        def add(category, detail):
            stats.add(suite, category, {**request, "resources": [entry]},
                      f"{where}: {detail}", cr, vr)

        if cr.get("resource", {}).get("id") != vr.get("resource", {}).get("id"):
            add("shape", "resource echo differs")
        cacts, vacts = cr.get("actions", {}), vr.get("actions", {})
        cmeta = (cr.get("meta") or {}).get("actions", {})
        vmeta = (vr.get("meta") or {}).get("actions", {})
        for action in entry["actions"]:
            stats.decisions += 1
            ce, ve = cacts.get(action), vacts.get(action)
            if ce == "EFFECT_ALLOW":
                stats.allowed_effects += 1
            if ce != ve:
                add("effect", f"{action}: cerbos {ce}, verdict {ve}")
            cm, vm = cmeta.get(action, {}), vmeta.get(action, {})
            if cm.get("matchedPolicy", "") != vm.get("matchedPolicy", ""):
                add("matchedPolicy", f"{action}: cerbos {cm.get('matchedPolicy', '')!r}, "
                    f"verdict {vm.get('matchedPolicy', '')!r}")
            if cm.get("matchedScope", "") != vm.get("matchedScope", ""):
                add("matchedScope", f"{action}: cerbos {cm.get('matchedScope', '')!r}, "
                    f"verdict {vm.get('matchedScope', '')!r}")
        cd = set((cr.get("meta") or {}).get("effectiveDerivedRoles") or [])
        vd = set((vr.get("meta") or {}).get("effectiveDerivedRoles") or [])
        if cd != vd:
            add("effectiveDerivedRoles", f"cerbos {sorted(cd)}, verdict {sorted(vd)}")
        co, vo = sorted_outputs(cr.get("outputs")), sorted_outputs(vr.get("outputs"))
        if not same_value(co, vo, tolerance):
            known = known_outputs_difference(co, vo, tolerance)
            if known:
                stats.known[known] = stats.known.get(known, 0) + 1
            else:
                add("outputs", f"cerbos {json.dumps(co)}, verdict {json.dumps(vo)}")
        cv = sorted(map(normalize_validation, cr.get("validationErrors") or []),
                    key=validation_key)
        vv = sorted(map(normalize_validation, vr.get("validationErrors") or []),
                    key=validation_key)
        if cv != vv:
            add("validationErrors", f"cerbos {json.dumps(cv)}, verdict {json.dumps(vv)}")


# ---------------------------------------------------------------------------


def run_suite(suite, args, cerbos_bin, bootstrap, workdir, stats):
    rng = random.Random(f"{args.seed}:{suite.name}")
    vocab = Vocab(suite.directory)
    corpus = Corpus(vocab, rng)
    requests = []
    if suite.conformance:
        requests += corpus.from_conformance(suite.conformance, args.variants)
    requests += corpus.grid_requests()
    requests += corpus.random_requests(args.requests)
    bodies = [json.dumps(r, sort_keys=True) for r in requests]
    started = time.time()
    with CerbosServer(cerbos_bin, suite, workdir) as server:
        cerbos = server.check_all(bodies, threads=args.threads)
    t_cerbos = time.time() - started
    started = time.time()
    verdict = verdict_check_all(bootstrap, suite, bodies, workdir)
    t_verdict = time.time() - started
    before = dict(stats.mismatches)
    decisions_before = stats.decisions
    allows_before = stats.allowed_effects
    for req, c, v in zip(requests, cerbos, verdict):
        compare(suite.name, req, c, v, stats, args.time_tolerance)
    found = sum(stats.mismatches.values()) - sum(before.values())
    log(f"suite {suite.name}: {len(requests)} requests, "
        f"{stats.decisions - decisions_before} decisions "
        f"({stats.allowed_effects - allows_before} allowed), {found} mismatches "
        f"(cerbos {t_cerbos:.1f}s, verdict {t_verdict:.1f}s)")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Compare Verdict's decisions with the real Cerbos 0.55.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--policies", action="append", default=[], metavar="DIR",
                        help="policy folder to compare with default settings (repeatable)")
    parser.add_argument("--conformance", metavar="ROOT",
                        help="Cerbos conformance data root (with store/ and engine*/)")
    parser.add_argument("--conformance-modes", default="strict,lenient,warn,reject",
                        help="which settings to run ROOT/store with (default: %(default)s)")
    parser.add_argument("--generate", action="append", type=int, default=[], metavar="N",
                        help="also compare a generated set of N resource policies (repeatable)")
    parser.add_argument("--requests", type=int, default=1500,
                        help="random requests per suite, besides the grid (default %(default)s)")
    parser.add_argument("--variants", type=int, default=8,
                        help="mutations of each conformance input (default %(default)s)")
    parser.add_argument("--seed", default="verdict", help="corpus seed")
    parser.add_argument("--threads", type=int, default=4, help="HTTP client threads")
    parser.add_argument("--time-tolerance", type=float, default=300.0,
                        help="seconds two output timestamps may differ")
    parser.add_argument("--cerbos-bin", help="Cerbos binary (default: $CERBOS_BIN, PATH, cache)")
    parser.add_argument("--cache", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "verdict-diff"),
        help="where Cerbos is installed when not found (default %(default)s)")
    parser.add_argument("--bootstrap", help="Verdict binary (default: $VERDICT_BOOTSTRAP "
                        "or target/release/bootstrap)")
    parser.add_argument("--no-build", action="store_true",
                        help="do not run cargo build first")
    parser.add_argument("--profile", choices=["release", "debug"], default="release",
                        help="which build of bootstrap to use and build (default %(default)s; "
                        "debug avoids the long LTO build in CI)")
    parser.add_argument("--allow", action="append", default=[], choices=CATEGORIES,
                        help="report but do not fail on this category (repeatable)")
    parser.add_argument("--show", type=int, default=10, help="mismatches shown in detail")
    parser.add_argument("--report", metavar="FILE", help="write every mismatch as JSON")
    args = parser.parse_args(argv)

    suites = []
    for d in args.policies:
        if not os.path.isdir(d):
            parser.error(f"--policies {d}: no such folder")
        suites.append(Suite(os.path.basename(os.path.normpath(d)) or d, d))
    workdir = tempfile.mkdtemp(prefix="verdict-diff-")
    if args.conformance:
        store = os.path.join(args.conformance, "store")
        if not os.path.isdir(store):
            parser.error(f"--conformance {args.conformance}: no store/ folder")
        env = {"environment": "test"}
        modes = {
            "strict": dict(),
            "lenient": dict(lenient=True),
            "warn": dict(schema="warn"),
            "reject": dict(schema="reject"),
        }
        for mode in args.conformance_modes.split(","):
            mode = mode.strip()
            if mode not in modes:
                parser.error(f"unknown conformance mode {mode!r}")
            suites.append(Suite(f"conformance-{mode}", store, globals_=env,
                                conformance=args.conformance, **modes[mode]))
    for n in args.generate:
        out = os.path.join(workdir, f"generated-{n}")
        gen_policies.generate(n, out)
        suites.append(Suite(f"generated-{n}", out))
    if not suites:
        parser.error("nothing to compare: give --policies, --conformance or --generate")

    started = time.time()
    try:
        cerbos_bin = args.cerbos_bin or find_cerbos(args.cache)
        log(f"cerbos: {cerbos_bin} ({cerbos_version(cerbos_bin)})")
        bootstrap = find_bootstrap(args.bootstrap, not args.no_build and not args.bootstrap,
                                   args.profile)
        log(f"verdict: {bootstrap}")
        stats = Stats()
        for suite in suites:
            run_suite(suite, args, cerbos_bin, bootstrap, workdir, stats)
    except subprocess.CalledProcessError as err:
        log(f"setup failed: {err}")
        return 2
    except SystemExit as err:
        if isinstance(err.code, str):
            log(f"setup failed: {err.code}")
            return 2
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    total = sum(stats.mismatches.values())
    print(f"\n{stats.requests} requests, {stats.resources} resources, "
          f"{stats.decisions} action decisions compared "
          f"({stats.both_rejected} requests rejected by both) "
          f"in {time.time() - started:.0f}s")
    print(f"  ({stats.allowed_effects} of them EFFECT_ALLOW on the Cerbos side)")
    for category in CATEGORIES:
        note = " (allowed)" if category in args.allow else ""
        print(f"  {category:24} {stats.mismatches[category]} mismatches{note}")
    for name, count in sorted(stats.known.items()):
        reasons = "; ".join(KNOWN[n] for n in name.split("+"))
        print(f"  known: {name}: {count} resources (not failing: {reasons})")
    for d in stats.details[:args.show]:
        print(f"\n[{d['suite']}] {d['category']}: {d['detail']}")
        print(f"  request: {json.dumps(d['request'], sort_keys=True)}")
        print(f"  cerbos:  {json.dumps(d['cerbos'], sort_keys=True)}")
        print(f"  verdict: {json.dumps(d['verdict'], sort_keys=True)}")
    if args.report:
        with open(args.report, "w") as f:
            json.dump({"mismatches": stats.mismatches, "details": stats.details}, f, indent=1)
    failing = sum(n for c, n in stats.mismatches.items() if c not in args.allow)
    print(f"\n{'FAIL' if failing else 'OK'}: {total} mismatches "
          f"({failing} in failing categories)")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())

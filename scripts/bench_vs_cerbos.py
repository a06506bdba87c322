#!/usr/bin/env python3
"""Verdict against the real Cerbos 0.55, side by side in one run.

For generated policy sets of N resource policies (scripts/gen_policies.py:
derived roles, four CEL conditions each, a principal policy; and a plain
role-only set of 1,000) it measures, with the native probe in
examples/pdp_probe.rs so neither side is timed through a slow client:

- cold start to the first decision: Verdict's release `bootstrap` exec'd
  under the Runtime API emulator on 127.0.0.1, from local disk and from a
  loopback S3 server (examples/s3_server.rs: s3s + s3s-fs), against
  `cerbos server` exec'd on the same folder and polled until it answers
  /api/check/resources;
- warm decision cost: Verdict per invocation (the time the function holds
  the event, what Lambda bills), Cerbos per request over one keep-alive
  loopback connection, p50/p99, for 1 resource x 3 actions and a
  10-resource batch, measured after each of the first --warm-rounds
  starts of each PDP (Verdict and Cerbos started in turn) and reported as
  the median of those rounds;
- peak RSS (VmHWM) of each process after loading and answering;
- the stripped `bootstrap` size and its deployment zip size.

It writes the table into BENCHMARKS.md between the bench-vs-cerbos markers.

    cargo build --release --locked --bin bootstrap --example pdp_probe --example s3_server --example runtime_floor
    python3 scripts/bench_vs_cerbos.py

The Cerbos binary comes from npm (@cerbos/cerbos-linux-x64@0.55.0) unless
--cerbos or $CERBOS_BIN names one. Cerbos compiles conditions slowly (tens of
seconds for 1,000 policies), so its cold start is measured up to --cerbos-max
policies and with fewer runs at 1,000.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import gen_policies  # noqa: E402

MARK_START = "<!-- bench-vs-cerbos:start -->"
MARK_END = "<!-- bench-vs-cerbos:end -->"

S3_ACCESS_KEY = "verdict-bench"
S3_SECRET_KEY = "verdict-bench-secret"


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


def probe(args: list[str], cpu: str | None = None) -> dict:
    """Runs pdp_probe; with `cpu`, the probe and the PDP it starts share that one CPU."""
    if cpu is not None:
        args = ["taskset", "-c", cpu, *args]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class S3Server:
    """examples/s3_server.rs on a free loopback port, serving `root` (each folder a
    bucket) from memory; it stops when its stdin closes."""

    def __init__(self, binary: Path, root: Path) -> None:
        self.process = subprocess.Popen([str(binary), str(root), S3_ACCESS_KEY, S3_SECRET_KEY],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.endpoint = self.process.stdout.readline().strip()
        if not self.endpoint.startswith("http://"):
            raise RuntimeError("s3_server did not start")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


WARM_KEYS = ("warm_1x3_p50_us", "warm_1x3_p99_us", "cpu_1x3_us", "warm_10x3_p50_us")


def pinned_warm(report: dict) -> dict:
    """The warm figures of a one-vCPU probe run."""
    return {key: report.get(key) for key in WARM_KEYS}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def warm_medians(runs: list[dict]) -> dict:
    """Each warm figure's median over the runs that measured warm decisions."""
    return {key: statistics.median(values) if (values := [r[key] for r in runs if r.get(key) is not None])
            else None for key in WARM_KEYS}


def zip_size(binary: Path) -> int:
    """Size of the deployment package: `bootstrap` alone in a deflated zip."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "bootstrap.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            z.write(binary, "bootstrap")
        return archive.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", type=Path, default=REPO / "target/release/bootstrap")
    parser.add_argument("--examples", type=Path, default=REPO / "target/release/examples",
                        help="folder holding the built pdp_probe and s3_server")
    parser.add_argument("--cerbos", type=Path, default=os.environ.get("CERBOS_BIN"),
                        help="cerbos binary (default: $CERBOS_BIN, else npm install into a cache)")
    parser.add_argument("--sizes", default="10,100,1000,5000")
    parser.add_argument("--runs", type=int, default=5, help="cold starts per measurement")
    parser.add_argument("--warm", type=int, default=2000, help="warm requests per shape")
    parser.add_argument("--warm-rounds", type=int, default=3,
                        help="starts of each PDP per set that also measure warm decisions; "
                             "the table shows the median of their p50s")
    parser.add_argument("--cerbos-max", type=int, default=1000,
                        help="largest set Cerbos is cold-started on")
    parser.add_argument("--cerbos-slow-runs", type=int, default=3,
                        help="Cerbos cold starts for sets of 1,000 policies with conditions or more")
    parser.add_argument("--no-s3", action="store_true", help="skip the loopback S3 runs")
    parser.add_argument("--pin-cpu", default="0",
                        help="CPU for the one-vCPU warm pass (each PDP and its client on it); '' skips it")
    parser.add_argument("--pinned-cerbos-max", type=int, default=100,
                        help="largest set with conditions Cerbos is started on for the one-vCPU pass")
    parser.add_argument("--settle-ms", type=int, default=500,
                        help="idle time of each PDP between its first decision and the warm requests")
    parser.add_argument("--write", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    # Read by pdp_probe, which every measurement runs through.
    os.environ["PDP_PROBE_SETTLE_MS"] = str(args.settle_ms)

    pdp_probe = args.examples / "pdp_probe"
    floor_function = args.examples / "runtime_floor"
    for needed in (args.bootstrap, pdp_probe, args.examples / "s3_server", floor_function):
        if not needed.exists():
            sys.exit(f"{needed} is missing: cargo build --release --locked --bin bootstrap "
                     "--example pdp_probe --example s3_server --example runtime_floor")
    cerbos = args.cerbos
    if cerbos is None:
        cache = Path.home() / ".cache/verdict-bench/npm"
        cerbos = cache / "node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64"
        if not cerbos.exists():
            subprocess.run(["npm", "install", "--silent", "--prefix", str(cache),
                            "@cerbos/cerbos-linux-x64@0.55.0"], check=True)
    work = Path(tempfile.mkdtemp(prefix="verdict-bench-"))
    bodies = []
    for resources in (1, 10):
        body = work / f"request-{resources}.json"
        body.write_text(json.dumps(request_body(resources)))
        bodies.append(str(body))
    sets = [(int(n), False) for n in args.sizes.split(",")] + [(1000, True)]
    # Every set is written (and put in the S3 server's root) before the
    # server starts: it serves what its root held at start.
    s3_root = work / "s3"
    for count, plain in sets:
        name = f"{'plain' if plain else 'cond'}{count}"
        gen_policies.generate(count, str(work / name), plain=plain)
        shutil.copytree(work / name, s3_root / f"bench-{name}" / "policies")
    s3 = None if args.no_s3 else S3Server(args.examples / "s3_server", s3_root)
    rows = []
    try:
        for count, plain in sets:
            label = f"{count:,} {'plain' if plain else 'with conditions'}"
            folder = work / f"{'plain' if plain else 'cond'}{count}"
            disk_config = work / f"{folder.name}.config.yaml"
            disk_config.write_text(f"storage:\n  driver: disk\n  disk:\n    directory: {folder}\n")
            print(f"== {label}", flush=True)

            def verdict(config: Path, warm: int, env: list[str], cpu: str | None = None) -> dict:
                return probe([str(pdp_probe), "verdict", str(args.bootstrap), str(config),
                              *bodies, str(warm), *env], cpu)

            def cerbos_probe(warm: int, cpu: str | None = None) -> dict:
                return probe([str(pdp_probe), "cerbos", str(cerbos), str(folder), *bodies, str(warm)], cpu)

            cerbos_runs = 0
            if count <= args.cerbos_max:
                slow = count >= 1000 and not plain
                cerbos_runs = max(1, min(args.runs, args.cerbos_slow_runs) if slow else args.runs)
            # Verdict and Cerbos take turns, each start also measuring warm
            # decisions for the first --warm-rounds starts, so a disturbance
            # of the machine lands on both sides rather than on one.
            disk, ref = [], []
            for i in range(max(args.runs, cerbos_runs)):
                warm = args.warm if i < args.warm_rounds else 0
                if i < args.runs:
                    disk.append(verdict(disk_config, warm, []))
                if i < cerbos_runs:
                    ref.append(cerbos_probe(warm))
            verdict_warm = warm_medians(disk)
            row = {"set": label, "verdict_disk_ms": median(disk, "cold_ms"),
                   "verdict_rss_mb": disk[0]["rss_mb"],
                   "verdict_1x3_p50_us": verdict_warm["warm_1x3_p50_us"],
                   "verdict_1x3_p99_us": verdict_warm["warm_1x3_p99_us"],
                   "verdict_10x3_p50_us": verdict_warm["warm_10x3_p50_us"],
                   "verdict_1x3_cpu_us": verdict_warm["cpu_1x3_us"],
                   "verdict_1x3_p50_rounds": [r["warm_1x3_p50_us"] for r in disk if "warm_1x3_p50_us" in r]}
            if s3 is not None:
                bucket = f"bench-{folder.name}"
                s3_config = work / f"{folder.name}.config.s3.yaml"
                s3_config.write_text(
                    f"storage:\n  driver: blob\n  blob:\n    bucket: \"s3://{bucket}?region=us-east-1\"\n"
                    "    prefix: policies/\n")
                s3_env = [f"AWS_ENDPOINT_URL_S3={s3.endpoint}", f"AWS_ACCESS_KEY_ID={S3_ACCESS_KEY}",
                          f"AWS_SECRET_ACCESS_KEY={S3_SECRET_KEY}"]
                from_s3 = [verdict(s3_config, 0, s3_env) for _ in range(args.runs)]
                row["verdict_s3_ms"] = median(from_s3, "cold_ms")
                row["verdict_s3_list_ms"] = statistics.median(r["phases"].get("list_ms", 0) for r in from_s3)
                row["verdict_s3_fetch_ms"] = statistics.median(r["phases"].get("fetch_ms", 0) for r in from_s3)
            if ref:
                cerbos_warm = warm_medians(ref)
                row.update({"cerbos_ms": median(ref, "cold_ms"), "cerbos_runs": cerbos_runs,
                            "cerbos_rss_mb": ref[0]["rss_mb"],
                            "cerbos_1x3_p50_us": cerbos_warm["warm_1x3_p50_us"],
                            "cerbos_1x3_p99_us": cerbos_warm["warm_1x3_p99_us"],
                            "cerbos_10x3_p50_us": cerbos_warm["warm_10x3_p50_us"],
                            "cerbos_1x3_p50_rounds": [r["warm_1x3_p50_us"] for r in ref
                                                      if "warm_1x3_p50_us" in r]})
            if args.pin_cpu:
                row["pinned"] = pinned_warm(verdict(disk_config, args.warm, [], args.pin_cpu))
                if count <= args.pinned_cerbos_max or (plain and count <= args.cerbos_max):
                    row["pinned_cerbos"] = pinned_warm(cerbos_probe(args.warm, args.pin_cpu))
            print(json.dumps(row), flush=True)
            rows.append(row)
        # The same emulator and event around a function that does no work:
        # what any warm invocation costs before a policy is looked at.
        floor_config = work / f"cond{sets[0][0]}.config.yaml"
        for loop, label in (("lambda_runtime", "no work, `lambda_runtime` loop"),
                            ("verdict", "no work, Verdict's loop")):
            floor_args = [str(pdp_probe), "verdict", str(floor_function), str(floor_config), *bodies,
                          str(args.warm), f"FLOOR_LOOP={loop}"]
            floor = probe(floor_args)
            row = {"set": label, "floor": True,
                   "verdict_1x3_p50_us": floor["warm_1x3_p50_us"],
                   "verdict_1x3_p99_us": floor["warm_1x3_p99_us"],
                   "verdict_10x3_p50_us": floor["warm_10x3_p50_us"],
                   "verdict_1x3_cpu_us": floor.get("cpu_1x3_us")}
            if args.pin_cpu:
                row["pinned"] = pinned_warm(probe(floor_args, args.pin_cpu))
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        if s3 is not None:
            s3.close()
        shutil.rmtree(work, ignore_errors=True)
    sizes = {"binary": args.bootstrap.stat().st_size, "zip": zip_size(args.bootstrap)}
    print(json.dumps(sizes), flush=True)
    write_table(args.write, rows, sizes, args)
    return 0


def fmt(value, unit="", digits=1) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}{unit}"


def ratio(a, b) -> str:
    """Verdict / Cerbos as 1/N; one decimal below 10 so that 1/3.9 never reads as 1/4."""
    if a is None or b is None or a == 0:
        return "—"
    if b < a:
        return f"{a / b:.1f}×"
    return f"1/{b / a:.1f}" if b / a < 10 else f"1/{b / a:.0f}"


def warm_figures(row: dict) -> dict:
    """Verdict's warm figures of a main-pass row, keyed as a probe reports them."""
    return {"warm_1x3_p50_us": row["verdict_1x3_p50_us"], "warm_1x3_p99_us": row["verdict_1x3_p99_us"],
            "cpu_1x3_us": row.get("verdict_1x3_cpu_us"), "warm_10x3_p50_us": row["verdict_10x3_p50_us"]}


def cerbos_figures(row: dict) -> dict:
    """Cerbos's warm figures of a main-pass row, if Cerbos ran on that set."""
    if "cerbos_1x3_p50_us" not in row:
        return {}
    return {"warm_1x3_p50_us": row["cerbos_1x3_p50_us"], "warm_1x3_p99_us": row["cerbos_1x3_p99_us"],
            "warm_10x3_p50_us": row["cerbos_10x3_p50_us"]}


def warm_table(entries: list[tuple[dict, dict, dict]]) -> list[str]:
    """Markdown rows for (row, Verdict figures, Cerbos figures); "no work" rows are
    compared with the lowest Cerbos 1×3 p50 among the entries."""
    best = min((c["warm_1x3_p50_us"] for _, _, c in entries if c), default=None)
    lines = ["| policy set | Verdict 1×3 p50 / p99 | Verdict 1×3 CPU | Cerbos 1×3 p50 / p99 | "
             "p50 ratio | Verdict 10×3 p50 | Cerbos 10×3 p50 | p50 ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r, v, c in entries:
        c_1x3 = best if r.get("floor") else c.get("warm_1x3_p50_us")
        lines.append(
            f"| {r['set']} | {fmt(v['warm_1x3_p50_us'], ' µs', 0)} / {fmt(v['warm_1x3_p99_us'], ' µs', 0)} | "
            f"{fmt(v.get('cpu_1x3_us'), ' µs', 0)} | "
            f"{fmt(c.get('warm_1x3_p50_us'), ' µs', 0)} / {fmt(c.get('warm_1x3_p99_us'), ' µs', 0)} | "
            f"{ratio(v['warm_1x3_p50_us'], c_1x3)} | {fmt(v['warm_10x3_p50_us'], ' µs', 0)} | "
            f"{fmt(c.get('warm_10x3_p50_us'), ' µs', 0)} | "
            f"{ratio(v['warm_10x3_p50_us'], c.get('warm_10x3_p50_us'))} |")
    return lines


def write_table(path: Path, rows: list[dict], sizes: dict, args) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                if line.startswith("model name")), platform.processor())
    cerbos_runs = sorted({r["cerbos_runs"] for r in rows if "cerbos_runs" in r})
    lines = [MARK_START, "",
             f"Run on {time.strftime('%Y-%m-%d')} — {os.cpu_count()} × {cpu}, Linux {platform.release()}. "
             f"Command: `python3 scripts/bench_vs_cerbos.py --sizes {args.sizes} --runs {args.runs} "
             f"--warm {args.warm} --warm-rounds {args.warm_rounds} --cerbos-max {args.cerbos_max}"
             f"{'' if args.settle_ms == 500 else f' --settle-ms {args.settle_ms}'}`. "
             "Verdict and Cerbos are started in turn on each set. Cold starts are medians of "
             f"{args.runs} runs (Cerbos: {' or '.join(map(str, cerbos_runs)) or '—'} runs, see "
             "--cerbos-slow-runs); exec to first decision. Ratios are Verdict / Cerbos from this run.", "",
             "| policy set | Verdict cold, disk | Verdict cold, loopback S3 (list / fetch) | Cerbos cold, disk | ratio | "
             "Verdict peak RSS | Cerbos peak RSS | RSS ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if not r.get("floor")):
        s3_split = (f" ({fmt(r['verdict_s3_list_ms'], '', 0)} / {fmt(r['verdict_s3_fetch_ms'], '', 0)})"
                    if "verdict_s3_list_ms" in r else "")
        lines.append(
            f"| {r['set']} | {fmt(r['verdict_disk_ms'], ' ms')} | {fmt(r.get('verdict_s3_ms'), ' ms')}{s3_split} | "
            f"{fmt(r.get('cerbos_ms'), ' ms')} | {ratio(r['verdict_disk_ms'], r.get('cerbos_ms'))} | "
            f"{fmt(r['verdict_rss_mb'], ' MB')} | {fmt(r.get('cerbos_rss_mb'), ' MB')} | "
            f"{ratio(r['verdict_rss_mb'], r.get('cerbos_rss_mb'))} |")
    lines += ["", f"Warm decisions, {args.warm} sequential requests per shape after each of the first "
              f"{args.warm_rounds} starts of each PDP (so Verdict's and Cerbos's rounds alternate), "
              f"each PDP idle for {args.settle_ms} ms between its first decision and the first warm "
              "request (\"Settling before the warm requests\" below); "
              "each figure is the median of those rounds' p50s (or p99s). Verdict: the time the "
              "function holds each event under the Runtime API emulator (Lambda's billed duration). "
              "Verdict CPU is the function's CPU time per invocation (/proc schedstat), Runtime API "
              "HTTP included. Cerbos: one `POST /api/check/resources` round trip on a keep-alive "
              "loopback connection. The two \"no work\" rows are `examples/runtime_floor.rs` under "
              "the same emulator and events: a function that answers without deserializing the "
              "event or deciding anything, so its time is the floor under any warm invocation; "
              "their ratios are against the lowest Cerbos 1×3 p50 of this run.", ""]
    lines += warm_table([(r, warm_figures(r), cerbos_figures(r)) for r in rows])
    pinned = [r for r in rows if "pinned" in r]
    if pinned:
        lines += ["", f"The same warm measurement with each PDP and its client on one CPU "
                  f"(`taskset -c {args.pin_cpu}` around the probe, which starts the PDP): a Lambda "
                  "function below 1,769 MB has less than one vCPU, and on one CPU a request's "
                  "hand-offs between client and server are context switches rather than "
                  "wake-ups of another, idle vCPU. Cerbos runs on the sets up to "
                  f"{args.pinned_cerbos_max:,} policies with conditions and the plain set; the "
                  "\"no work\" rows are compared with the lowest Cerbos 1×3 p50 of this pass.", ""]
        lines += warm_table([(r, r["pinned"], r.get("pinned_cerbos", {})) for r in pinned])
    lines += ["", f"Release `bootstrap` (stripped): {sizes['binary'] / 2**20:.1f} MiB; "
              f"deployment zip (deflate -9): {sizes['zip'] / 2**20:.1f} MiB.", "", MARK_END]
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

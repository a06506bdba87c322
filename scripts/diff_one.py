#!/usr/bin/env python3
"""Send a few CheckResources requests to both Cerbos and Verdict and print
the two answers, for investigating one mismatch.

    python3 scripts/diff_one.py --policies DIR REQUEST.json [...]
    echo '{"principal": ..., "resources": [...]}' | python3 scripts/diff_one.py --policies DIR -

Each argument is a file holding one request (or one per line), or `-` for
standard input. Settings as in diff_vs_cerbos.py: --lenient, --schema,
--global KEY=VALUE. Cerbos and Verdict are found as diff_vs_cerbos.py finds
them (CERBOS_BIN, VERDICT_BOOTSTRAP, --no-build).
"""

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diff_vs_cerbos as dv  # noqa: E402


def read_requests(sources):
    out = []
    for src in sources:
        text = sys.stdin.read() if src == "-" else open(src, encoding="utf-8").read()
        text = text.strip()
        try:
            out.append(json.loads(text))
        except ValueError:
            out += [json.loads(line) for line in text.splitlines() if line.strip()]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", required=True)
    parser.add_argument("--lenient", action="store_true")
    parser.add_argument("--schema", default="none", choices=["none", "warn", "reject"])
    parser.add_argument("--global", dest="globals_", action="append", default=[],
                        metavar="KEY=VALUE")
    parser.add_argument("--bootstrap")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~/.cache"),
                                                        "verdict-diff"))
    parser.add_argument("requests", nargs="+")
    args = parser.parse_args()
    requests = read_requests(args.requests)
    for r in requests:
        r.setdefault("includeMeta", True)
    suite = dv.Suite("one", args.policies, lenient=args.lenient, schema=args.schema,
                     globals_=dict(g.split("=", 1) for g in args.globals_))
    cerbos_bin = dv.find_cerbos(args.cache)
    bootstrap = dv.find_bootstrap(args.bootstrap, not args.no_build and not args.bootstrap)
    bodies = [json.dumps(r) for r in requests]
    with tempfile.TemporaryDirectory() as work:
        with dv.CerbosServer(cerbos_bin, suite, work) as server:
            cerbos = server.check_all(bodies, threads=1)
        verdict = dv.verdict_check_all(bootstrap, suite, bodies, work)
    for req, (status, c), v in zip(requests, cerbos, verdict):
        for part in (c, v):
            part.pop("cerbosCallId", None)
            part.pop("requestId", None)
        same = json.dumps(c, sort_keys=True) == json.dumps(v, sort_keys=True)
        print("request:", json.dumps(req, sort_keys=True))
        print(f"cerbos ({status}):", json.dumps(c, sort_keys=True, indent=1))
        print("verdict:", "(same)" if same else json.dumps(v, sort_keys=True, indent=1))
        print()


if __name__ == "__main__":
    main()

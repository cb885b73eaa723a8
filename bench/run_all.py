#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs the six benchmarks one after another (what `make bench` does).

usage: python3 bench/run_all.py --build-dir BUILD [--size ci|full] [--json FILE] [ONLY...]

Each benchmark prints its own table; this only sequences them (they must not
overlap: they share the two cores they measure) and exits 1 if any run broke.
The bench_mapping and bench_loadgen targets must be built first
(`cmake --build BUILD --target bench_mapping bench_loadgen`).
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = ("intake", "mapping", "e2e", "economy", "quota", "memory")


def main():
    ap = argparse.ArgumentParser(description="run every ferry benchmark")
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--size", choices=("ci", "full"), default="full")
    ap.add_argument("--json", metavar="FILE", help="append every benchmark's figures to FILE")
    ap.add_argument("only", nargs="*", help="a subset, e.g. intake memory")
    args = ap.parse_args()
    unknown = [x for x in args.only if x not in ORDER]
    if unknown:
        ap.error("unknown benchmark(s) %s; choose from %s" % (unknown, ", ".join(ORDER)))
    failed = []
    for name in args.only or ORDER:
        cmd = [sys.executable, os.path.join(HERE, "bench_%s.py" % name), "--size", args.size,
               "--build-dir", args.build_dir]
        if args.json:
            cmd += ["--json", args.json]
        if name == "mapping":
            cmd.append("--callgrind")
        t0 = time.monotonic()
        rc = subprocess.call(cmd)
        sys.stdout.write("bench %s: exit %d, %.0f s\n" % (name, rc, time.monotonic() - t0))
        sys.stdout.flush()
        if rc != 0:
            failed.append(name)
    if failed:
        sys.stderr.write("benchmarks that broke: %s\n" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark 6, mapping: records per second that one Lua state maps.

Runs bench_mapping (bench/bench_mapping.c, linked against ferry_core) with
customer_to_contact on its full_customer fixture and an order mapping on a
v2 order with three lines: the shipped mappings/order_to_sales_order when it exists,
else the bench-only bench/mappings/order_to_customer_order (no shipped
mapping reads orders yet). Both are compiled into one mapping set in one
state. "map" is ferry_mapping_set_run alone; "job" adds what the pipeline
does per job around it (parse the payload text, build ctx, serialise the
intents). With --callgrind, also the instructions per record under
valgrind's callgrind (repeatable on a noisy machine).

Sizes: ci 0.3 s per measurement, full 3 s (env FERRY_BENCH_MAPPING_SECONDS).
Target (issue 7): >= 100,000 mapped records/s.
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

TARGET = 100000


def mapping_bin(args):
    path = os.environ.get("FERRY_BENCH_MAPPING_BIN")
    if not path and args.build_dir:
        path = os.path.join(os.path.abspath(args.build_dir), "bench", "bench_mapping")
    if not path or not os.access(path, os.X_OK):
        raise bl.BenchError("bench_mapping not found (%s): build it with "
                            "`cmake --build BUILD --target bench_mapping`" % path)
    return path


def cases():
    """[(label, mapping dir, fixture, shipped?)]"""
    out = [("customer -> contact", os.path.join(bl.REPO, "mappings", "customer_to_contact"),
            os.path.join(bl.REPO, "mappings", "customer_to_contact", "fixtures",
                         "full_customer.in.json"), True)]
    shipped = None
    # The shipped order -> sales document mapping (issue 5), when it exists.
    d = os.path.join(bl.REPO, "mappings", "order_to_sales_order")
    fixtures = sorted(glob.glob(os.path.join(d, "fixtures", "*.in.json")))
    if os.path.exists(os.path.join(d, "mapping.lua")) and fixtures:
        pick = [f for f in fixtures if os.path.basename(f) == "registered_order.in.json"]
        shipped = (d, (pick or fixtures)[0])
    if shipped:
        out.append(("order -> sales document", shipped[0], shipped[1], True))
    else:
        out.append(("order -> CustomerOrder (bench-only)",
                    os.path.join(bl.HERE, "mappings", "order_to_customer_order"),
                    os.path.join(bl.HERE, "fixtures", "order.json"), False))
    return out


def floor_case(the_cases):
    """The bench-only hand-written order mapping on the shipped order's fixture, or None."""
    for label, d, fx, shipped in the_cases:
        if shipped and os.path.basename(d) == "order_to_sales_order":
            return ("order -> sales document, by hand (floor)",
                    os.path.join(bl.HERE, "mappings", "order_floor"), fx, False)
    return None


def run_bench(binary, budget, the_cases, valgrind=None):
    cmd = [binary, os.path.join(bl.REPO, "lua"), budget]
    for _, d, fx, _ in the_cases:
        cmd += [d, fx]
    if valgrind:
        cmd = valgrind + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise bl.BenchError("bench_mapping exited %d: %s" % (proc.returncode,
                                                            proc.stderr.strip()[-2000:]))
    line = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if not line:
        raise bl.BenchError("bench_mapping printed no result: %r" % proc.stdout[-500:])
    return json.loads(line[-1])


def callgrind_per_record(binary, the_cases, records):
    """Ir inside ferry_mapping_set_run per call, per case (one case per run)."""
    out = []
    for case in the_cases:
        with tempfile.TemporaryDirectory(prefix="ferry-bench-cg-") as tmp:
            cg = os.path.join(tmp, "cg.out")
            run_bench(binary, "x%d" % records, [case],
                      valgrind=["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg,
                                "--toggle-collect=ferry_mapping_set_run"])
            total = callgrind_total(cg)
        # warm-up (records/10 + 1) + map (records) + job (records) calls.
        calls = records // 10 + 1 + 2 * records
        out.append(total / calls)
    return out


def callgrind_total(path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = re.match(r"^(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
    raise bl.BenchError("no totals in %s" % path)


def main():
    ap = bl.arg_parser(__doc__.split("\n")[0])
    ap.add_argument("--callgrind", action="store_true",
                    help="also count instructions per record under callgrind")
    args = ap.parse_args()
    bl.setup_env(args)
    seconds = bl.knob("MAPPING_SECONDS", 0.3, 3.0, args, float)
    binary = mapping_bin(args)
    the_cases = cases()
    res = run_bench(binary, "%g" % seconds, the_cases)

    t = bl.Table("ferry benchmark 6: mapping throughput (one Lua state, both mappings loaded)",
                 args)
    for (label, d, fx, shipped), c in zip(the_cases, res["cases"]):
        if c["intents"] < 1:
            raise bl.BenchError("%s produced no intent" % label)
        key = c["object"]
        t.row("%s: map only" % label, "%s rec/s" % bl.fmt_int(c["map_per_s"]),
              ">= 100,000 rec/s" + ("" if c["map_per_s"] >= TARGET else "  (below target)"))
        t.row("%s: + parse payload, dump intents" % label,
              "%s rec/s" % bl.fmt_int(c["job_per_s"]), "what a worker pays per job")
        t.figure("%s_map_per_s" % key, round(c["map_per_s"]))
        t.figure("%s_job_per_s" % key, round(c["job_per_s"]))
        t.figure("%s_us_per_record" % key, round(1e6 / c["map_per_s"], 2))
        if not shipped:
            t.note("no shipped mapping reads orders yet: the order figure uses the bench-only "
                   "bench/mappings/order_to_customer_order (status table, ISO date, 3 item lines)")
        t.note("%s: %s on %s (%d-byte record)" % (label, os.path.relpath(d, bl.REPO),
                                                 os.path.relpath(fx, bl.REPO), c["record_bytes"]))
    mixed = res.get("mixed", {})
    if mixed.get("map_n"):
        t.row("alternating customer / order: map only", "%s rec/s" % bl.fmt_int(mixed["map_per_s"]),
              "")
        t.figure("mixed_map_per_s", round(mixed["map_per_s"]))
    if args.callgrind or os.environ.get("FERRY_BENCH_CALLGRIND") == "1":
        if bl.sanitized() or not bl.which("valgrind"):
            t.note("callgrind not run: %s" % ("sanitizer build" if bl.sanitized()
                                                else "valgrind is not installed"))
        else:
            per = callgrind_per_record(binary, the_cases, 2000 if args.size == "full" else 200)
            for (label, _, _, _), c, ir in zip(the_cases, res["cases"], per):
                t.row("%s: instructions per record" % label, bl.fmt_int(ir),
                      "callgrind, inside ferry_mapping_set_run")
                t.figure("%s_ir_per_record" % c["object"], round(ir))
    floor = floor_case(the_cases)
    if floor:
        # In a state of its own, so that the figures above stay those of the
        # shipped mappings loaded together.
        f = run_bench(binary, "%g" % seconds, [floor])["cases"][0]
        t.row("%s: map only" % floor[0], "%s rec/s" % bl.fmt_int(f["map_per_s"]),
              "the host's share of an order (no target)")
        t.figure("order_floor_map_per_s", round(f["map_per_s"]))
        if args.callgrind or os.environ.get("FERRY_BENCH_CALLGRIND") == "1":
            if not bl.sanitized() and bl.which("valgrind"):
                ir = callgrind_per_record(binary, [floor], 2000 if args.size == "full" else 200)[0]
                t.row("%s: instructions per record" % floor[0], bl.fmt_int(ir),
                      "callgrind, inside ferry_mapping_set_run")
                t.figure("order_floor_ir_per_record", round(ir))
        t.note("%s: bench/mappings/order_floor, the same sales order by hand (no rules, no "
               "checks, lines by ferry.rows): what is left when a mapping does nothing more"
               % floor[0])
    t.note("measured for %.1f s each after a warm-up; one thread" % seconds)
    t.print()


if __name__ == "__main__":
    bl.run_main(main)

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark 5, memory: ferry's RSS idle and during a large order backfill.

Idle: `ferry run` with both connectors and the shipped mapping, no traffic;
VmRSS once it answers /healthz and again after a second of idling.

Backfill: `ferry sync --since 2000-01-01` over N orders that the store
simulator generates on the fly (bench/order_source.py: a million stored
orders would not fit the simulator), read by a test-only mapping whose
filter drops every order (SAP is not involved; no shipped mapping reads
orders yet), with order_details_in_poll = false (with details each order
costs two more requests to the Python simulator). VmRSS is sampled every
100 ms; the table gives the curve at tenths of the run, the peak (VmHWM) and
the growth over the second half, which is what "flat" means: a backfill that
kept records, jobs or pages in memory would grow with N.

Sizes: ci N=20,000; full N=1,000,000 (env FERRY_BENCH_ORDERS).
Target (issue 7): RSS flat and <= 64 MB during the 1M-order backfill.
"""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from order_source import OrderSourceSim  # noqa: E402

LIMIT_KB = 64 * 1024


def idle_rss(args):
    stack = bl.make_stack(name="memory-idle", keep=args.keep, workers=4)
    try:
        stack.start()
        first = bl.status_kb(stack.proc.pid, "VmRSS")
        time.sleep(1.0)   # idling is what is measured here, not a wait for something
        later = bl.status_kb(stack.proc.pid, "VmRSS")
        rc = stack.stop()
        if rc != 0:
            stack.fail("ferry run exited %d" % rc)
    finally:
        bl.close_stack(stack, args.keep)
    if not first or not later:
        raise bl.BenchError("no RSS reading of the idle daemon")
    return first, later


def backfill(args, n):
    mapdir, names = bl.probe_mappings(["order"])
    stack = bl.make_stack(name="memory", keep=args.keep, workers=4, bc_class=OrderSourceSim,
                          mapping_dir=mapdir, enabled=names,
                          bc_extra="order_details_in_poll = false")
    try:
        stack.bc.generate_orders(n)

        def queued():
            rows = stack.query("SELECT max(id) AS n FROM jobs")
            return rows[0]["n"] or 0 if rows else 0

        proc = stack.spawn(["sync", "-c", stack.config_path, "--since", "2000-01-01"])
        sampler = bl.Sampler(proc.pid, 0.1, progress=queued).start()
        t0 = time.monotonic()
        try:
            out, _ = proc.communicate(timeout=max(600, n / 200.0))
        except Exception:
            proc.kill()
            proc.communicate()
            raise
        took = time.monotonic() - t0
        samples = sampler.stop()
        if proc.returncode != 0:
            stack.fail("ferry sync --since exited %d: %s" % (proc.returncode, out))
        done = stack.done_jobs("bigcommerce:order:%")
        pages = stack.bc.pages_served
        db_bytes = sum(os.path.getsize(stack.db_path + sfx) for sfx in ("", "-wal")
                       if os.path.exists(stack.db_path + sfx))
    finally:
        bl.close_stack(stack, args.keep)
        shutil.rmtree(mapdir, ignore_errors=True)
    if done != n:
        raise bl.BenchError("%d of %d orders became finished jobs" % (done, n))
    if len(samples) < 2:
        raise bl.BenchError("fewer than two RSS samples were taken")
    return {"orders": n, "seconds": took, "samples": samples, "hwm": sampler.hwm,
            "pages": pages, "db_bytes": db_bytes}


def at_fraction(samples, f):
    t_end = samples[-1][0]
    for s in samples:
        if s[0] >= f * t_end:
            return s
    return samples[-1]


def main():
    ap = bl.arg_parser(__doc__.split("\n")[0])
    ap.add_argument("--csv", metavar="FILE", help="write every RSS sample to FILE")
    args = ap.parse_args()
    bl.setup_env(args)
    n = bl.knob("ORDERS", 20000, 1000000, args)

    first, later = idle_rss(args)
    r = backfill(args, n)
    s = r["samples"]
    t = bl.Table("ferry benchmark 5: memory (RSS of the ferry process)", args)
    t.row("idle `ferry run`: RSS at start / after 1 s", "%.1f / %.1f MB" % (first / 1024.0,
                                                                          later / 1024.0), "")
    t.row("backfill: orders, duration", "%s in %.0f s" % (bl.fmt_int(n), r["seconds"]),
          "%s orders/s, %d pages of 250" % (bl.fmt_int(n / r["seconds"]), r["pages"]))
    rss = [x[1] for x in s]
    peak = max(rss)
    half = [x[1] for x in s if x[0] >= s[-1][0] / 2]
    growth = (max(half) - half[0]) if half else 0
    t.row("backfill: peak RSS (VmHWM)", "%.1f MB" % ((r["hwm"] or peak) / 1024.0),
          "<= 64 MB" + ("" if (r["hwm"] or peak) <= LIMIT_KB else "  (above target)"))
    t.row("backfill: RSS growth over the second half", "%+.1f MB" % (growth / 1024.0),
          "flat: ~0 (rises with N if something is kept)")
    for f in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        x = at_fraction(s, f)
        t.row("  RSS at %3.0f %% of the run" % (f * 100), "%.1f MB" % (x[1] / 1024.0),
              "%.0f s, %s jobs queued" % (x[0], bl.fmt_int(x[2])))
    t.row("state database after the backfill", "%.0f MB" % (r["db_bytes"] / 1e6),
          "jobs, payloads and audit rows on disk, not in memory")
    t.figure("idle_rss_kb", later)
    t.figure("peak_rss_kb", r["hwm"] or peak)
    t.figure("second_half_growth_kb", growth)
    t.figure("orders", n)
    t.figure("orders_per_s", round(n / r["seconds"]))
    t.figure("curve_kb", [[round(x[0], 1), x[1]] for x in s[::max(1, len(s) // 50)]])
    if args.csv:
        with open(args.csv, "w", encoding="utf-8") as fh:
            fh.write("seconds,rss_kb,jobs_queued\n")
            for x in s:
                fh.write("%.2f,%d,%d\n" % x)
    if bl.sanitized():
        t.note("sanitizer build: RSS includes shadow memory and quarantine; not comparable")
    t.note("orders generated by bench/order_source.py; test-only mapping drops them; "
           "order_details_in_poll = false; workers 4; %d RSS samples, every 100 ms" % len(s))
    t.print()


if __name__ == "__main__":
    bl.run_main(main)

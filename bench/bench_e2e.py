#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark 2, end to end: events per second from webhook to SAP write.

Both simulators run with zero added latency. N customers are seeded in the
BigCommerce simulator (without webhooks), then N store/customer/created
webhooks are posted to the real `ferry run` over 4 keep-alive connections;
each one is fetched, mapped, looked up by e-mail in SAP and created there.
The clock runs from the first POST until SAP holds N new contacts and every
job is done.

Engine CPU per event: user+sys of the ferry process (/proc/<pid>/stat) over
the same span, divided by N. The simulators are Python in this process and
on the same two cores; their CPU is reported too, because on this machine
they, not the engine, bound the events per second.

Instructions per event (repeatable on a noisy machine): `ferry sync --once`
under `valgrind --tool=callgrind` over M seeded customers, minus the same
command over none (start-up, plugin load, SAP $metadata), divided by M;
broken down by the library the instructions ran in. Skipped (and said so)
without valgrind or on a sanitizer build.

Sizes: ci N=200, M=40; full N=5,000, M=200 (env FERRY_BENCH_E2E_EVENTS,
FERRY_BENCH_E2E_CALLGRIND). Target (issue 7): <= 500,000 instructions of
engine work per synced event.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from harness import WEBHOOK_SECRET  # noqa: E402

TARGET_IR = 500000
CONNS = 4


def post_webhooks(port, ids, conns=CONNS):
    """Posts one store/customer/created per id over `conns` connections; returns 200 count."""
    ok = [0]
    lock = threading.Lock()
    errors = []

    def worker(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for cid in chunk:
                body = json.dumps({"scope": "store/customer/created", "store_id": "1000001",
                                   "data": {"type": "customer", "id": cid},
                                   "hash": "%040x" % (0xe2e00000 + cid),
                                   "created_at": int(time.time()),
                                   "producer": "stores/teststore"}).encode()
                conn.request("POST", "/webhooks/bigcommerce", body,
                             {"Content-Type": "application/json", "X-Ferry-Secret": WEBHOOK_SECRET})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    with lock:
                        ok[0] += 1
                else:
                    errors.append(resp.status)
        except OSError as exc:
            errors.append(str(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(ids[i::conns],)) for i in range(conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise bl.BenchError("webhooks refused: %s" % errors[:5])
    return ok[0]


def webhook_run(args, n):
    stack = bl.make_stack(name="e2e", keep=args.keep, workers=4)
    try:
        ids = stack.bc.seed(n)
        stack.start()
        pid = stack.proc.pid
        before = len(stack.sap_contacts())
        own0 = os.times()
        cpu0 = bl.cpu_seconds(pid)
        t0 = time.monotonic()
        acked = post_webhooks(stack.port, ids)
        t_acked = time.monotonic()
        if acked != n:
            raise bl.BenchError("%d of %d webhooks acknowledged" % (acked, n))

        def done():
            if not stack.running():
                stack.fail("ferry run exited during the benchmark")
            if len(stack.sap_contacts()) - before < n:
                return False
            c = stack.job_counts()
            return c[0] == 0 and c[1] == 0
        bl.wait(done, 120 + n * 0.1, "%d contacts in SAP" % n, stack, period=0.01)
        t1 = time.monotonic()
        cpu1 = bl.cpu_seconds(pid)
        own1 = os.times()
        dead = stack.count("SELECT count(*) FROM jobs WHERE state = 3")
        stats = stack.sap_stats()
        rc = stack.stop()
        if rc != 0:
            stack.fail("ferry run exited %d" % rc)
    finally:
        bl.close_stack(stack, args.keep)
    if dead:
        raise bl.BenchError("%d job(s) dead-lettered" % dead)
    sims = (own1.user - own0.user) + (own1.system - own0.system)
    return {"events": n, "seconds": t1 - t0, "intake_seconds": t_acked - t0,
            "ferry_cpu": cpu1 - cpu0, "sim_cpu": sims, "sap": stats}


# -- callgrind ---------------------------------------------------------------------

def callgrind_sync(args, m):
    """Runs `ferry sync --once` under callgrind over m customers; returns (total, per component)."""
    stack = bl.make_stack(name="e2e-cg", keep=args.keep, workers=2)
    try:
        if m:
            stack.bc.seed(m)
        with tempfile.TemporaryDirectory(prefix="ferry-bench-cg-") as tmp:
            out = os.path.join(tmp, "callgrind.out")
            proc = subprocess.run(
                ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                 stack.bin, "sync", "-c", stack.config_path, "--once"],
                cwd=stack.workdir, env=stack.env(), stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=1200)
            if proc.returncode != 0:
                raise bl.BenchError("ferry sync --once under callgrind exited %d: %s"
                                    % (proc.returncode, proc.stderr[-2000:]))
            files = [os.path.join(tmp, f) for f in os.listdir(tmp) if f.startswith("callgrind")]
            keep = os.environ.get("FERRY_BENCH_E2E_CALLGRIND_KEEP")
            if keep:   # a directory: keep the profiles for callgrind_annotate
                os.makedirs(keep, exist_ok=True)
                for f in files:
                    shutil.copy(f, os.path.join(keep, "%s.%d" % (os.path.basename(f), m)))
            total, per = 0, {}
            for f in files:   # one file per process; threads are in the same one
                t, p = bl.parse_callgrind(f)
                total += t
                for k, v in p.items():
                    per[bl.component(k)] = per.get(bl.component(k), 0) + v
        created = len(stack.sap_contacts())
    finally:
        bl.close_stack(stack, args.keep)
    if created < m:
        raise bl.BenchError("callgrind run created %d of %d contacts" % (created, m))
    return total, per


def main():
    ap = bl.arg_parser(__doc__.split("\n")[0])
    args = ap.parse_args()
    bl.setup_env(args)
    n = bl.knob("E2E_EVENTS", 200, 5000, args)
    m = bl.knob("E2E_CALLGRIND", 40, 200, args)

    r = webhook_run(args, n)
    t = bl.Table("ferry benchmark 2: end to end, webhook -> SAP contact (zero-latency simulators)",
                 args)
    rate = r["events"] / r["seconds"]
    cpu_ev = r["ferry_cpu"] / r["events"]
    t.row("events", bl.fmt_int(r["events"]), "store/customer/created, distinct customers")
    t.row("events/s, first POST to last SAP write", bl.fmt_float(rate), "")
    t.row("ferry CPU per event (user+sys)", "%.0f us" % (cpu_ev * 1e6),
          "engine-bound ceiling ~%s events/s per core" % bl.fmt_int(1 / cpu_ev if cpu_ev else 0))
    t.row("simulators' CPU per event (Python)", "%.0f us" % (r["sim_cpu"] / r["events"] * 1e6),
          "the bottleneck on this machine")
    sap = r["sap"]
    t.row("SAP requests per event", "%.2f" % (sum(v for k, v in sap.items()
                                                   if k in ("GET", "POST", "PATCH", "HEAD"))
                                               / float(n)),
          "GET %d, POST %d" % (sap.get("GET", 0), sap.get("POST", 0)))
    t.figure("events", n)
    t.figure("events_per_s", round(rate, 1))
    t.figure("ferry_cpu_us_per_event", round(cpu_ev * 1e6, 1))
    t.figure("sim_cpu_us_per_event", round(r["sim_cpu"] / n * 1e6, 1))

    if bl.sanitized():
        t.note("callgrind not run: sanitizer build (valgrind cannot run ASan binaries)")
    elif not bl.which("valgrind"):
        t.note("callgrind not run: valgrind is not installed (Debian package valgrind)")
    else:
        base, base_per = callgrind_sync(args, 0)
        total, per = callgrind_sync(args, m)
        ir = (total - base) / float(m)
        t.row("instructions per synced event (callgrind)", bl.fmt_int(ir),
              "<= 500,000" + ("" if ir <= TARGET_IR else "  (above target)"))
        t.row("  start-up alone (sync --once over nothing)", bl.fmt_int(base), "subtracted")
        t.figure("ir_per_event", round(ir))
        t.figure("ir_startup", base)
        parts = []
        for comp in sorted(per, key=lambda k: -(per[k] - base_per.get(k, 0))):
            d = (per[comp] - base_per.get(comp, 0)) / float(m)
            if d > ir * 0.01:
                parts.append((comp, d))
        for comp, d in parts:
            t.row("  in %s" % comp, bl.fmt_int(d), "%.0f %%" % (100.0 * d / ir))
            t.figure("ir_" + re.sub(r"[^a-z0-9]+", "_", comp.lower()).strip("_"), round(d))
        t.note("callgrind: `ferry sync --once` over %d seeded customers (poll, lookup by e-mail, "
               "$batch create), minus the same over none" % m)
    t.note("workers 4; simulators in the benchmark's Python process; webhooks over %d "
           "keep-alive connections" % CONNS)
    t.print()


if __name__ == "__main__":
    bl.run_main(main)

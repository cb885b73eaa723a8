#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark 1, webhook intake: durable acknowledgements per second.

The real `ferry run` receives valid BigCommerce webhooks (store/customer/
updated with the secret header, a hash of their own per request so nothing
is deduplicated) from wrk and bench/intake.lua at 1, 8 and 64 connections;
each level gets a fresh daemon and database. Every 200 counted is a job row
committed with synchronous=FULL before the answer.

Intake only: the BigCommerce connector points at a local socket that accepts
connections and never answers, so both workers hang on their first fetch and
the scheduler has no free worker to dispatch to; what is measured is the
listener, verify + decode, and the group-committing inbox. (Processing is
benchmark 2.)

fsyncs per acknowledgement: the daemon logs at exit "intake: N webhook(s)
acknowledged in M commit(s) (largest K)", each commit one fsync of the WAL
(synchronous=FULL), so M/N is fsyncs per webhook. With --strace (and at
size full), one more pass under `strace -f -c -e trace=fsync,fdatasync`
counts the real syscalls, WAL checkpoints included.

When wrk is not installed, bench/loadgen.c (built as bench_loadgen) sends the
same requests and the table says so.

Instructions per acknowledgement (repeatable on a noisy machine, where the
acks/s above are not): with --callgrind (env FERRY_BENCH_CALLGRIND=1) one more
daemon runs under `valgrind --tool=callgrind --instr-atstart=no
--separate-threads=yes`; instrumentation is switched on with
`callgrind_control` only for the load (8 connections), so start-up and
shutdown are not counted, and the count is split between the event loop
thread (HTTP, verify, decode, answer) and the other threads (the group
commit), and by library. With one request in flight per connection a commit
still holds about four webhooks under callgrind, as at 8 connections at full
speed; the commits per ack of the pass are printed with it, because the
commit's share per ack depends on them.

Sizes: ci 1 s per level, full 10 s (env FERRY_BENCH_INTAKE_SECONDS).
Target (issue 7): >= 20,000 acknowledged webhooks/s on 2 cores.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from harness import WEBHOOK_SECRET  # noqa: E402

TARGET = 20000
LEVELS = (1, 8, 64)


class Blackhole:
    """A listening socket nobody accepts on: connects succeed, answers never come.
    Closing it resets the queued connections, which ends the hung fetches."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.sock.getsockname()[1]

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def load_tool(args):
    wrk = bl.which("wrk")
    if wrk and not args.loadgen:
        return "wrk", wrk
    path = os.environ.get("FERRY_BENCH_LOADGEN_BIN")
    if not path and args.build_dir:
        path = os.path.join(os.path.abspath(args.build_dir), "bench", "bench_loadgen")
    if not path or not os.access(path, os.X_OK):
        raise bl.BenchError("neither wrk nor bench_loadgen is available (install wrk, or build "
                            "the bench_loadgen target)")
    return "loadgen", path


def run_load(tool, port, conns, seconds, tag):
    kind, path = tool
    url = "http://127.0.0.1:%d/webhooks/bigcommerce" % port
    if kind == "wrk":
        cmd = [path, "-t1", "-c%d" % conns, "-d%ds" % max(1, int(round(seconds))),
               "--timeout", "10s", "-s", os.path.join(bl.HERE, "intake.lua"), url, "--",
               WEBHOOK_SECRET, str(tag)]
    else:
        cmd = [path, "127.0.0.1", str(port), "/webhooks/bigcommerce", WEBHOOK_SECRET,
               str(conns), "%g" % seconds, str(tag)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    found = re.findall(r"^FERRY_BENCH_JSON (\{.*\})$", proc.stdout, re.M)
    if proc.returncode != 0 or not found:
        raise bl.BenchError("%s exited %d without a result: %s %s" % (
            kind, proc.returncode, proc.stdout[-1000:], proc.stderr[-1000:]))
    return json.loads(found[-1])


def one_level(args, tool, conns, seconds, strace_out=None):
    hole = Blackhole()
    stack = bl.make_stack(name="intake", keep=args.keep, workers=2, bc_api_base=hole.url,
                          http="timeout = 600",
                          retry="max_attempts = 5, base_delay = 600, max_delay = 600")
    tracer = None
    try:
        stack.start()
        pid = stack.proc.pid
        if strace_out:
            tracer = subprocess.Popen(["strace", "-f", "-c", "-q", "-e", "trace=fsync,fdatasync",
                                       "-o", strace_out, "-p", str(pid)],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            bl._track(tracer)
            time.sleep(0.5)   # strace needs a moment to attach to every thread
        cpu0 = bl.cpu_seconds(pid)
        res = run_load(tool, stack.port, conns, seconds, conns)
        cpu1 = bl.cpu_seconds(pid)
        if tracer is not None:
            tracer.send_signal(2)   # SIGINT: detach and write the summary
            tracer.wait(timeout=30)
        jobs = stack.count("SELECT count(*) FROM jobs")
        stack.proc.send_signal(15)
        hole.close()   # the hung fetches fail now, so the drain ends
        rc = stack.proc.wait(timeout=60)
        if rc != 0:
            stack.fail("ferry run exited %d" % rc)
        line = stack.intake_line()
    finally:
        hole.close()
        bl.close_stack(stack, args.keep)
    ok = res["requests"] - res["status_errors"]
    if ok <= 0:
        raise bl.BenchError("no webhook was acknowledged at %d connection(s): %s" % (conns, res))
    if jobs < ok:
        raise bl.BenchError("%d acknowledgements but only %d job rows" % (ok, jobs))
    if line is None:
        raise bl.BenchError("the daemon did not log its intake summary")
    acked, commits, largest = line
    if acked < ok:
        raise bl.BenchError("daemon acknowledged %d, the load tool counted %d" % (acked, ok))
    res.update(ok=ok, jobs=jobs, acked=acked, commits=commits, largest=largest,
               cpu=cpu1 - cpu0)
    return res


CALLGRIND_CONNS = 8


def callgrind_control(pid, *args):
    proc = subprocess.run(["callgrind_control"] + list(args) + [str(pid)], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        raise bl.BenchError("callgrind_control %s failed: %s %s" % (
            " ".join(args), proc.stdout[-500:], proc.stderr[-500:]))


def callgrind_level(args, tool, seconds):
    """Instructions per acknowledged webhook under callgrind, counted during the load only."""
    hole = Blackhole()
    stack = bl.make_stack(name="intake-cg", keep=args.keep, workers=2, bc_api_base=hole.url,
                          http="timeout = 600",
                          retry="max_attempts = 5, base_delay = 600, max_delay = 600")
    with tempfile.TemporaryDirectory(prefix="ferry-bench-intake-cg-") as tmp:
        wrapper = os.path.join(tmp, "ferry-under-callgrind")
        with open(wrapper, "w", encoding="utf-8") as fh:
            fh.write("#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no "
                     "--separate-threads=yes --callgrind-out-file=%s/cg.out '%s' \"$@\"\n"
                     % (tmp, stack.bin))
        os.chmod(wrapper, 0o755)
        stack.bin = wrapper
        try:
            stack.start(timeout=180)
            pid = stack.proc.pid
            callgrind_control(pid, "--instr=on")
            res = run_load(tool, stack.port, CALLGRIND_CONNS, seconds, 900 + CALLGRIND_CONNS)
            callgrind_control(pid, "--instr=off")
            jobs = stack.count("SELECT count(*) FROM jobs")
            callgrind_control(pid, "--dump=intake")
            stack.proc.send_signal(15)
            hole.close()
            rc = stack.proc.wait(timeout=300)
            if rc != 0:
                stack.fail("ferry run under callgrind exited %d" % rc)
            line = stack.intake_line()
        finally:
            hole.close()
            bl.close_stack(stack, args.keep)
        ok = res["requests"] - res["status_errors"]
        if ok <= 0 or line is None:
            raise bl.BenchError("callgrind pass: nothing acknowledged (%s)" % res)
        # The dump named "intake" has one file per thread; the main thread is the loop.
        loop, other, per = 0, 0, {}
        for f in sorted(os.listdir(tmp)):
            if not f.startswith("cg.out") or not re.search(r"\.\d+-\d+$", f):
                continue
            path = os.path.join(tmp, f)
            with open(path, encoding="utf-8", errors="replace") as fh:
                head = fh.read(4096)
            if "intake" not in head:
                continue   # the final dump at exit, taken with collection off
            if args.keep:
                shutil.copy(path, stack.workdir)   # for callgrind_annotate
            total, p = bl.parse_callgrind(path)
            if f.endswith("-01"):
                loop += total
            else:
                other += total
            for k, v in p.items():
                per[bl.component(k)] = per.get(bl.component(k), 0) + v
    acked, commits, largest = line
    return {"ok": ok, "jobs": jobs, "acked": acked, "commits": commits,
            "largest": largest, "loop": loop, "other": other, "per": per}


def strace_fsyncs(path):
    calls = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 5 and parts[-1] in ("fsync", "fdatasync"):
                    calls += int(parts[3]) if parts[3].isdigit() else 0
    except OSError:
        return None
    return calls


def main():
    ap = bl.arg_parser(__doc__.split("\n")[0])
    ap.add_argument("--loadgen", action="store_true", help="use bench_loadgen even if wrk exists")
    ap.add_argument("--levels", default=",".join(str(c) for c in LEVELS),
                    help="connection counts to measure, comma-separated (default %(default)s; "
                         "empty: none, e.g. with --callgrind alone)")
    ap.add_argument("--callgrind", action="store_true",
                    help="one more pass under callgrind: instructions per acknowledged webhook")
    ap.add_argument("--strace", action="store_true",
                    help="one more pass at 64 connections under strace to count fsync calls")
    args = ap.parse_args()
    bl.setup_env(args)
    seconds = bl.knob("INTAKE_SECONDS", 1, 10, args, float)
    tool = load_tool(args)

    t = bl.Table("ferry benchmark 1: webhook intake (durable acknowledgements)", args)
    best = 0
    for conns in [int(c) for c in args.levels.split(",") if c.strip()]:
        r = one_level(args, tool, conns, seconds)
        rate = r["ok"] / (r["duration_us"] / 1e6)
        best = max(best, rate)
        per_commit = r["commits"] / float(r["acked"])
        t.row("%d connection(s): acks/s" % conns, bl.fmt_int(rate),
              ">= 20,000/s" + ("" if rate >= TARGET else "  (below target)"))
        t.row("%d connection(s): latency p50 / p99 / p99.9" % conns,
              "%.2f / %.2f / %.2f ms" % (r["p50_us"] / 1e3, r["p99_us"] / 1e3,
                                         r["p999_us"] / 1e3), "max %.1f ms" % (r["max_us"] / 1e3))
        t.row("%d connection(s): fsyncs (commits) per ack" % conns, "%.3f" % per_commit,
              "%s acks in %s commits, largest %d" % (bl.fmt_int(r["acked"]),
                                                    bl.fmt_int(r["commits"]), r["largest"]))
        t.row("%d connection(s): ferry CPU per ack" % conns,
              "%.1f us" % (r["cpu"] / r["acked"] * 1e6) if r["acked"] else "-",
              "user+sys of the daemon / acks")
        errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
        if r["status_errors"] or errors:
            t.row("%d connection(s): non-2xx / socket errors" % conns,
                  "%d / %d" % (r["status_errors"], errors), "")
        for k in ("ok", "p50_us", "p99_us", "p999_us", "commits", "acked"):
            t.figure("c%d_%s" % (conns, k), r[k])
        t.figure("c%d_acks_per_s" % conns, round(rate))
        t.figure("c%d_commits_per_ack" % conns, round(per_commit, 4))
    if (args.strace or args.size == "full") and bl.which("strace") and not bl.sanitized():
        with tempfile.TemporaryDirectory(prefix="ferry-bench-strace-") as tmp:
            out = os.path.join(tmp, "strace.txt")
            r = one_level(args, tool, 64, min(seconds, 5), strace_out=out)
            calls = strace_fsyncs(out)
        if calls:
            t.row("64 connections under strace: fsync+fdatasync per ack",
                  "%.3f" % (calls / float(r["acked"])),
                  "%s calls for %s acks (WAL commits and checkpoints; strace slows intake)"
                  % (bl.fmt_int(calls), bl.fmt_int(r["acked"])))
            t.figure("strace_fsyncs_per_ack", round(calls / float(r["acked"]), 4))
    if args.callgrind or os.environ.get("FERRY_BENCH_CALLGRIND") == "1":
        if bl.sanitized() or not (bl.which("valgrind") and bl.which("callgrind_control")):
            t.note("callgrind not run: %s" % ("sanitizer build" if bl.sanitized()
                                              else "valgrind is not installed"))
        else:
            r = callgrind_level(args, tool, max(seconds, 5))
            ir = (r["loop"] + r["other"]) / float(r["ok"])
            t.row("instructions per ack (callgrind, %d connections)" % CALLGRIND_CONNS,
                  bl.fmt_int(ir), "%s acks, %.3f commits per ack under callgrind"
                  % (bl.fmt_int(r["ok"]), r["commits"] / float(r["acked"])))
            t.row("  on the event loop thread", bl.fmt_int(r["loop"] / float(r["ok"])),
                  "HTTP, verify, decode, job text, answer")
            t.row("  on the other threads", bl.fmt_int(r["other"] / float(r["ok"])),
                  "group commit: job, audit and scope rows, WAL")
            for comp in sorted(r["per"], key=lambda k: -r["per"][k]):
                d = r["per"][comp] / float(r["ok"])
                if d > ir * 0.02:
                    t.row("  in %s" % comp, bl.fmt_int(d), "%.0f %%" % (100.0 * d / ir))
                    t.figure("cg_ir_" + re.sub(r"[^a-z0-9]+", "_", comp.lower()).strip("_"),
                             round(d))
            t.figure("cg_ir_per_ack", round(ir))
            t.figure("cg_ir_loop_per_ack", round(r["loop"] / float(r["ok"])))
            t.figure("cg_ir_other_per_ack", round(r["other"] / float(r["ok"])))
            t.figure("cg_commits_per_ack", round(r["commits"] / float(r["acked"]), 4))
    t.figure("best_acks_per_s", round(best))
    t.note("load: %s, 1 thread, %g s per level, keep-alive, one request in flight per connection"
           % (tool[0], seconds))
    if tool[0] != "wrk":
        t.note("wrk is not installed: bench/loadgen.c (one epoll thread, exact percentiles) "
               "sent the load instead")
    t.note("workers parked on a source that never answers: intake alone is measured; the load "
           "generator shares the machine's cores with the daemon")
    t.print()


if __name__ == "__main__":
    bl.run_main(main)

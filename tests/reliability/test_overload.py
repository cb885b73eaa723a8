#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Overload: webhooks as fast as the listener takes them, from a small C
client (ferry_flood, flood.c: pthreads, one keep-alive connection per
thread, each webhook sent once with its own hash). Every acknowledged (2xx)
webhook must be a job; none may be acknowledged and lost.

Two phases:
1. FERRY_OVERLOAD_COUNT webhooks (default 10,000; the issue's run: 50,000)
   over FERRY_OVERLOAD_THREADS connections (default 32) against a running
   daemon: the acknowledged rate, refusals and group-commit batch sizes
   are reported; every acknowledged one has exactly one job.
2. A fifth as many again, or more so that they take ~1.5 s at phase 1's
   rate, and SIGKILL while they arrive: every webhook
   acknowledged before the kill is a job after it (the 200 is only sent once
   the group commit is on disk, synchronous=FULL).

The jobs themselves run meanwhile (the customers do not exist, so each is
one BigCommerce read and done): intake is measured under load, not idle.
"""

import os
import random
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relcommon as rc  # noqa: E402
from harness import FerryTestCase, main  # noqa: E402

COUNT = rc.env_int("FERRY_OVERLOAD_COUNT", 10000)
THREADS = int(os.environ.get("FERRY_OVERLOAD_THREADS") or 32)
SCOPE = "store/customer/updated"


def flood_bin():
    path = os.environ.get("FERRY_FLOOD_BIN")
    if not path or not os.access(path, os.X_OK):
        raise AssertionError("FERRY_FLOOD_BIN (the ferry_flood client built by "
                             "tests/reliability/CMakeLists.txt) is not set or not executable: %r"
                             % path)
    return path


class OverloadTest(FerryTestCase):
    def setUp(self):
        self.stack = rc.RelStack(name="overload", workers=2)
        self.addCleanup(self.stack.close)

    def flood(self, count, tag, id_base):
        out = os.path.join(self.stack.workdir, "flood-%s.txt" % tag)
        proc = subprocess.Popen(
            [flood_bin(), "--port", str(self.stack.fixed_port), "--count", str(count),
             "--threads", str(THREADS), "--secret", self.stack.secrets["webhook_secret"],
             "--out", out, "--tag", tag, "--id-base", str(id_base)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return proc, out

    @staticmethod
    def statuses(path):
        with open(path, encoding="ascii") as fh:
            return [int(line.split()[1]) for line in fh]

    @staticmethod
    def key(tag, i):
        return "bigcommerce:%s:%s%032x" % (SCOPE, tag, i)

    def job_keys(self):
        rows = self.stack.query_retry("SELECT dedupe_key, COUNT(*) AS n FROM jobs"
                                      " WHERE dedupe_key IS NOT NULL GROUP BY dedupe_key")
        return {r["dedupe_key"]: r["n"] for r in rows}

    def test_flood_then_flood_and_kill(self):
        s = self.stack
        s.start()

        # Phase 1: as fast as it goes.
        proc, out = self.flood(COUNT, "0000f100", 1)
        try:
            summary, _ = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        summary = summary.decode(errors="replace").strip()
        print("\nphase 1: " + summary, flush=True)
        self.assertEqual(proc.returncode, 0, summary)
        st = self.statuses(out)
        acked = [i for i, x in enumerate(st) if 200 <= x < 300]
        refused = sum(1 for x in st if x == 503)
        unanswered = sum(1 for x in st if x == 0)
        other = len(st) - len(acked) - refused - unanswered
        self.assertEqual(other, 0, "statuses other than 2xx/503/none: %s"
                         % sorted(set(st) - {200, 503, 0}))
        self.assertTrue(s.running(), "the daemon died under load")
        self.assertEqual(s.healthz(), 200)
        keys = self.job_keys()
        lost = [i for i in acked if self.key("0000f100", i) not in keys]
        self.assertEqual(lost[:10], [], "%d acknowledged webhooks have no job" % len(lost))
        doubled = [k for k, n in keys.items() if n > 1]
        self.assertEqual(doubled[:10], [], "webhooks queued twice")
        m = re.search(r"in ([\d.]+) s over", summary)
        seconds = float(m.group(1)) if m else 0.0
        # A clean stop logs the intake's group-commit figures.
        self.assertEqual(s.stop(), 0)
        commits = re.findall(r"intake: (\d+) webhook\(s\) acknowledged in (\d+) commit\(s\)"
                             r" \(largest (\d+)\)", s.log_tail(10 ** 6))
        s.start()

        # Phase 2: SIGKILL while a flood is arriving. The flood must outlast
        # the poll below that decides when to kill: sized for ~1.5 s at
        # phase 1's rate (a fifth of phase 1 took 0.1 s once intake got
        # faster, and the kill came after the last answer).
        rate = len(acked) / seconds if seconds > 0 else 0.0
        n2 = min(max(500, COUNT // 5, int(rate * 1.5)), 4 * COUNT)
        proc, out2 = self.flood(n2, "0000f200", 10 ** 7)
        try:
            # Kill once a random share of the flood has been answered.
            target = random.uniform(0.2, 0.8) * n2
            rc.wait_until(lambda: len(s.query_retry(
                "SELECT 1 FROM jobs WHERE dedupe_key LIKE ? LIMIT ?",
                ("bigcommerce:%s:0000f200%%" % SCOPE, int(target)))) >= int(target),
                120, "part of the second flood to be stored", interval=0.02)
            s.kill()
            summary2, _ = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        summary2 = summary2.decode(errors="replace").strip()
        print("phase 2 (SIGKILL during the flood): " + summary2, flush=True)
        st2 = self.statuses(out2)
        acked2 = [i for i, x in enumerate(st2) if 200 <= x < 300]
        self.assertGreater(len(acked2), 0)
        self.assertLess(len(acked2), n2, "the kill came after the whole flood: proves nothing")
        keys = self.job_keys()
        lost2 = [i for i in acked2 if self.key("0000f200", i) not in keys]
        self.assertEqual(lost2[:10], [], "%d webhooks acknowledged before SIGKILL have no job"
                         % len(lost2))
        stored2 = sum(1 for k in keys if k.startswith("bigcommerce:%s:0000f200" % SCOPE))

        # The next daemon starts on the same state and carries on.
        s.start()
        self.assertEqual(s.stop(), 0)
        values = {"count": COUNT, "threads": THREADS, "acked": len(acked), "refused_503": refused,
                  "unanswered": unanswered, "seconds": seconds,
                  "acked_per_s": round(len(acked) / seconds) if seconds else None,
                  "lost": len(lost), "kill_phase_sent": n2, "kill_phase_acked": len(acked2),
                  "kill_phase_stored": stored2, "kill_phase_lost": len(lost2)}
        if commits:
            values["phase1_commits"] = int(commits[-1][1])
            values["phase1_largest_batch"] = int(commits[-1][2])
        rc.figures("overload", values)


if __name__ == "__main__":
    main()

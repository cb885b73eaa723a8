#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SIGTERM while jobs are queued loses nothing: the daemon exits 0, and after
a restart the queue drains to exactly one contact per customer."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DONE, PENDING, RUNNING, FerryTestCase, customer, main  # noqa: E402

COUNT = 300


class SigtermRestartTest(FerryTestCase):
    # Slow SAP down a little so that jobs are still queued at SIGTERM.
    stack_options = {"sap_latency_ms": 15}

    def test_sigterm_then_restart(self):
        s = self.stack
        s.start()
        s.register_hook()
        custs = s.create_customers([customer(n, "term") for n in range(1, COUNT + 1)])
        expected = set(c["email"].lower() for c in custs)
        dl = s.wait_deliveries(COUNT, timeout=120)
        bad = [d for d in dl if d["status"] != 200]
        self.assertEqual(bad, [], "every webhook must be acknowledged before SIGTERM")

        counts = s.job_counts()
        print("\njobs at SIGTERM: %d pending, %d running, %d done"
              % (counts[PENDING], counts[RUNNING], counts[DONE]))
        t0 = time.monotonic()
        rc = s.stop(signal.SIGTERM, timeout=60)
        print("ferry exited %s %.2f s after SIGTERM" % (rc, time.monotonic() - t0))
        self.assertEqual(rc, 0)
        after = s.job_counts()
        self.assertEqual(after[RUNNING], 0, "a clean stop leaves no job running: %s" % after)
        print("jobs after exit: %s; contacts so far: %d" % (after, len(s.sap_contacts())))

        s.start()
        s.wait_drained(total=COUNT, timeout=180)
        jobs = s.jobs()
        self.assertEqual(len(jobs), COUNT)
        self.assertEqual([j for j in jobs if j["state"] != DONE], [],
                         "every job done; dead: %s" % s.dead_jobs_text())
        contacts = s.sap_contacts()
        emails = [c["Email"] for c in contacts]
        self.assertEqual(len(emails) - len(set(emails)), 0, "duplicate contacts")
        self.assertEqual(set(emails), expected)
        self.assertEqual(len(contacts), COUNT)
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    main()

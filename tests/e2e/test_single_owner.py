#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One engine owns a state database: while `ferry run` holds it, a `ferry
sync --once` on the same database refuses to start (it would otherwise take
back the daemon's running jobs as if they had crashed), and once the daemon
has stopped the same sync runs."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, main  # noqa: E402


class SingleOwnerTest(FerryTestCase):
    def test_second_engine_refused_while_daemon_runs(self):
        s = self.stack
        s.start()
        rc, _ = s.sync_once(timeout=60)
        self.assertEqual(rc, 1, "sync must refuse a database the daemon holds")
        with open(s.log_path, encoding="utf-8", errors="replace") as f:
            self.assertIn("in use by another ferry", f.read())
        self.assertTrue(s.healthz(), "the daemon keeps running")
        self.assertEqual(s.stop(), 0)
        rc, _ = s.sync_once(timeout=60)
        self.assertEqual(rc, 0, "after the daemon stopped, sync runs")


if __name__ == "__main__":
    main()

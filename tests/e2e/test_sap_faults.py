#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SAP Sales Cloud failures through the real daemon and connector: a 429
with Retry-After and a 503 are retried until the contact exists; a 403
that is not the CSRF check (missing authorisation) is dead-lettered at once
with SAP's message; a CSRF token the tenant no longer accepts is renewed
with a fresh session and the write goes through."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, main  # noqa: E402


class SapFaultsTest(FerryTestCase):
    def create_one(self, email):
        s = self.stack
        s.create_customers([{"email": email, "first_name": "Ada", "last_name": "Lovelace"}])

    def test_429_with_retry_after_converges(self):
        s = self.stack
        s.sap.faults.add({"method": "POST", "path": "ContactCollection", "status": 429,
                          "message": "Rate limit exceeded", "headers": [["Retry-After", "1"]]})
        s.start()
        s.register_hook()
        self.create_one("rate@example.com")
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 60, "the contact after a 429")
        stats = s.sap_stats()
        self.assertEqual(stats.get("429"), 1, stats)
        self.assertEqual(stats.get("POST"), 2, stats)
        self.assertEqual(s.stop(), 0)

    def test_503_is_retried(self):
        s = self.stack
        s.sap.faults.add({"method": "POST", "path": "ContactCollection", "status": 503,
                          "message": "Service unavailable", "times": 2})
        s.start()
        s.register_hook()
        self.create_one("busy@example.com")
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 60, "the contact after two 503s")
        self.assertEqual(s.sap_stats().get("503"), 2)
        self.assertEqual(s.stop(), 0)

    def test_403_permission_is_dead_lettered_with_sap_message(self):
        s = self.stack
        s.sap.faults.add({"method": "POST", "path": "ContactCollection", "status": 403,
                          "message": "No authorization to access ContactCollection",
                          "times": 10})
        s.start()
        s.register_hook()
        self.create_one("denied@example.com")
        s.wait_for(lambda: "No authorization to access ContactCollection" in s.dead_jobs_text(),
                   60, "the job dead-lettered with SAP's message")
        # Not retried: one POST, and no CSRF renewal for a permission error.
        stats = s.sap_stats()
        self.assertEqual(stats.get("POST"), 1, stats)
        self.assertEqual(stats.get("csrf_fetch"), 1, stats)
        self.assertEqual(s.sap_contacts(), [])
        self.assertEqual(s.stop(), 0)

    def test_stale_csrf_token_is_renewed(self):
        s = self.stack
        s.start()
        s.register_hook()
        self.create_one("first@example.com")
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 60, "the first contact")
        s.wait_drained()
        s.sap.expire_csrf()
        s.sap.reset_stats()
        self.create_one("second@example.com")
        s.wait_for(lambda: len(s.sap_contacts()) == 2, 60, "the second contact")
        stats = s.sap_stats()
        self.assertEqual(stats.get("403"), 1, stats)
        self.assertGreaterEqual(stats.get("csrf_fetch", 0), 1, stats)
        self.assertEqual(stats.get("POST"), 2, stats)
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    main()

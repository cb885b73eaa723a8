#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`ferry sync --once` catches up without webhooks: 2,500 customers seeded
in the store become 2,500 distinct contacts; a second run writes nothing."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, main  # noqa: E402
from simcore import http_request  # noqa: E402

COUNT = 2500


class SyncOnceTest(FerryTestCase):
    def test_bulk_then_idempotent(self):
        s = self.stack
        r = http_request(s.bc.base_url + "/__sim/seed", "POST", {"count": COUNT})
        self.assertEqual(r.json()["count"], COUNT)
        expected = set(c["email"].lower() for c in
                       http_request(s.bc.base_url + "/__sim/customers").json()["customers"])
        self.assertEqual(len(expected), COUNT)

        t0 = time.monotonic()
        rc, out = s.sync_once(timeout=240)
        first = time.monotonic() - t0
        self.assertEqual(rc, 0, "first sync exited %d: %s\n%s" % (rc, out, s.log_tail()))
        contacts = s.sap_contacts()
        emails = [c["Email"] for c in contacts]
        self.assertEqual(len(contacts), COUNT)
        self.assertEqual(len(set(emails)), COUNT, "duplicate contacts")
        self.assertEqual(set(emails), expected)
        stats1 = s.sap_stats()

        s.sap.reset_stats()
        t0 = time.monotonic()
        rc, out = s.sync_once(timeout=240)
        second = time.monotonic() - t0
        self.assertEqual(rc, 0, "second sync exited %d: %s" % (rc, out))
        stats2 = s.sap_stats()
        self.assertEqual(stats2.get("POST", 0), 0, stats2)
        self.assertEqual(stats2.get("PATCH", 0), 0, stats2)
        self.assertEqual(len(s.sap_contacts()), COUNT)
        print("\nsync --once: first run %.2f s (SAP %s), second run %.2f s (SAP %s)"
              % (first, stats1, second, stats2))


if __name__ == "__main__":
    main()

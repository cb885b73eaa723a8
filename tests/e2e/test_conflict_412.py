#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A CRM user edits the contact between two syncs: ferry's PATCH carries the
ETag it last saw, SAP answers 412, the connector re-reads and applies the
change once more. The user's edit to another field survives, because ferry
sends only the fields that changed at the source."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, main  # noqa: E402


class Conflict412Test(FerryTestCase):
    def test_stale_etag_is_reread_and_retried_once(self):
        s = self.stack
        s.start()
        s.register_hook()
        (c,) = s.create_customers([{"email": "ruth@example.com", "first_name": "Ruth",
                                    "last_name": "Miller", "phone": "555-0100"}])
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 30, "the contact")
        s.wait_drained(total=1)
        (contact,) = s.sap_contacts()
        s.sap.modify(contact["ObjectID"], {"JobTitle": "Buyer"})
        s.sap.reset_stats()

        s.update_customer(c["id"], last_name="Miller-Jones")
        s.wait_drained(total=2)
        (after,) = s.sap_contacts()
        self.assertEqual(after["LastName"], "Miller-Jones")
        self.assertEqual(after["JobTitle"], "Buyer", "the CRM user's edit is kept")
        stats = s.sap_stats()
        self.assertEqual(stats.get("412"), 1, stats)
        self.assertEqual(stats.get("PATCH"), 2, stats)
        self.assertEqual(stats.get("POST", 0), 0, stats)
        patches = [r for r in s.sap_requests() if r["method"] == "PATCH"]
        self.assertEqual([p["body"] for p in patches], [{"LastName": "Miller-Jones"}] * 2)
        self.assertNotEqual(patches[0]["headers"].get("if-match"),
                            patches[1]["headers"].get("if-match"))
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    main()

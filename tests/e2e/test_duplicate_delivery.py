#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""BigCommerce may deliver the same webhook more than once; the daemon must
acknowledge every copy and still create exactly one job and one contact."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DONE, FerryTestCase, main  # noqa: E402


class DuplicateDeliveryTest(FerryTestCase):
    def test_same_hash_twice_more(self):
        s = self.stack
        s.start()
        s.register_hook()
        s.create_customers([{"email": "dup@example.com", "first_name": "Dee",
                             "last_name": "Upli", "phone": "555-0199"}])
        s.wait_deliveries(1)
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 30, "the contact to be created")
        s.wait_drained(total=1)
        s.bc.redeliver(0, times=2)
        dl = s.wait_deliveries(3)
        self.assertEqual([d["redelivery_of"] for d in dl], [None, 0, 0])
        self.assertEqual(dl[1]["body"], dl[0]["body"])
        self.assertEqual([d["status"] for d in dl], [200, 200, 200], dl)
        s.wait_drained(total=1)
        self.assertEqual(len(s.sap_contacts()), 1)
        jobs = s.jobs()
        self.assertEqual(len(jobs), 1, jobs)
        self.assertEqual(jobs[0]["state"], DONE)
        self.assertEqual(s.sap_stats().get("POST"), 1)


if __name__ == "__main__":
    main()

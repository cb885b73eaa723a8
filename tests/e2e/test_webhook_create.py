#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A customer registered in BigCommerce becomes a SAP contact through a real
webhook: the store's hook calls the daemon, which fetches the customer,
maps it and creates the contact."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DONE, FerryTestCase, main  # noqa: E402


class WebhookCreateTest(FerryTestCase):
    def test_customer_created_becomes_contact(self):
        s = self.stack
        s.start()
        hook = s.register_hook()
        self.assertTrue(hook["is_active"])
        s.create_customers([{"email": "Jane.Smith@Example.com", "first_name": "Jane",
                                       "last_name": "Smith", "phone": "555-123-4567",
                                       "company": "Acme"}])
        dl = s.wait_deliveries(1)
        self.assertEqual(dl[0]["status"], 200, "webhook answer: %s" % dl[0])
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 30, "one SAP contact")
        s.wait_drained(total=1)
        (contact,) = s.sap_contacts()
        self.assertEqual(contact["FirstName"], "Jane")
        self.assertEqual(contact["LastName"], "Smith")
        self.assertEqual(contact["Email"], "jane.smith@example.com")
        self.assertEqual(contact["Phone"], "555-123-4567")
        jobs = s.jobs()
        self.assertEqual(len(jobs), 1, jobs)
        self.assertEqual(jobs[0]["state"], DONE, jobs[0])
        self.assertEqual(s.sap_stats().get("POST"), 1)
        status = s.status_json()
        self.assertEqual(status["jobs"]["done"], 1, status)
        self.assertEqual(status["jobs"]["pending"], 0, status)
        self.assertEqual(status["jobs"]["dead"], 0, status)
        self.assertEqual(s.stop(), 0, "ferry run must exit 0 on SIGTERM")


if __name__ == "__main__":
    main()

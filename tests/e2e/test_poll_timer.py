#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Polling is the guarantee behind webhooks: customers created while no hook
is registered (a deactivated hook, an import) reach SAP through the daemon's
timed delta poll, and a later poll over unchanged data writes nothing."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, customer, main  # noqa: E402


class PollTimerTest(FerryTestCase):
    stack_options = {"poll_interval": 1}

    def test_timed_poll_catches_changes_without_webhooks(self):
        s = self.stack
        s.start()
        s.create_customers([customer(n, "polled") for n in range(1, 21)])
        self.assertEqual(s.deliveries(), [], "no hook is registered")
        s.wait_for(lambda: len(s.sap_contacts()) == 20, 30, "20 contacts from the poll")
        s.wait_drained(total=20)
        first = s.sap_stats()
        # Polled records are backfill: their creates share $batch round trips.
        self.assertGreaterEqual(first.get("batch", 0), 1, first)
        self.assertLess(first.get("POST", 0), 20, first)
        # A change made now is picked up by a later poll; nothing else is rewritten.
        s.update_customer(3, last_name="Changed")
        s.wait_for(lambda: any(c["LastName"] == "Changed" for c in s.sap_contacts()), 30,
                   "the change from the next poll")
        stats = s.sap_stats()
        self.assertEqual(stats.get("POST", 0), first.get("POST", 0), "no new create")
        self.assertEqual(stats.get("PATCH", 0), 1)
        contacts = s.sap_contacts()
        self.assertEqual(len(contacts), 20)
        self.assertEqual(len({c["Email"] for c in contacts}), 20)
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A webhook lost while the hook was inactive is repaired by the daemon's
timed poll and counted (issue 3): `webhook_missed_total:bigcommerce:customer`
in `ferry status --json` counts the customer whose change only the poll saw,
and not the one whose change did arrive by webhook.

The core judges a polled change only once it is two minutes old
(FERRY_WEBHOOK_GRACE_MS in core/src/pipeline.h). Instead of waiting, the
simulator backdates `date_modified` (/__sim/backdate) to five minutes ago,
after the events happened:
- customer A existed before (synced by a first backfill, `ferry sync --since`), was
  changed while the hook was inactive, so no webhook was delivered;
- customer B was created while the hook was active, and its webhook arrived
  (a realtime job exists from after its change time).
The first daemon runs without timed polls, so that no poll moves the cursor
past the backdated changes; then it is restarted with poll.interval = 1.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, main  # noqa: E402

COUNTER = "webhook_missed_total:bigcommerce:customer"
REALTIME, BACKFILL = 0, 2


class BcMissedWebhookTest(FerryTestCase):
    def counters(self):
        return self.stack.status_json().get("counters") or {}

    def test_inactive_hook_change_repaired_by_poll_and_counted(self):
        s = self.stack
        # Phase 0: A exists in the store since an hour ago and is synced by a poll.
        (a_id,) = s.bc.seed(1)
        s.bc.backdate([a_id], int(time.time()) - 3600)
        # A backfill (--since): a regular first poll would itself count A as
        # missed, since no webhook ever announced it.
        rc, out = s.cli("sync", "-c", s.config_path, "--since", "2000-01-01", timeout=60)
        self.assertEqual(rc, 0, out)
        self.assertEqual(len(s.sap_contacts()), 1)
        a_email = s.sap_contacts()[0]["Email"]

        # Phase 1: webhooks only (poll.interval 0: no timed poll).
        s.start()
        hook = s.register_hook("store/customer/*")
        (b,) = s.create_customers([{"email": "webhook.b@example.com", "first_name": "Bea",
                                    "last_name": "Hooked"}])
        dl = s.wait_deliveries(1)
        self.assertEqual(dl[0]["status"], 200, dl[0])
        s.wait_for(lambda: len(s.sap_contacts()) == 2, 30, "B's contact")
        s.wait_drained()

        # The store deactivates the hook; A changes and no webhook is sent.
        r = s.bc_call("PUT", "/hooks/%d" % hook["id"], {"is_active": False})
        self.assertEqual(r.status, 200, r.body)
        s.update_customer(a_id, last_name="ChangedWhileInactive")
        self.assertEqual(len(s.deliveries()), 1, s.deliveries())
        self.assertEqual(s.stop(), 0)

        # Both changes are now five minutes old, older than the judging grace.
        five_min_ago = int(time.time()) - 300
        self.assertEqual(sorted(s.bc.backdate([a_id, b["id"]], five_min_ago)),
                         sorted([a_id, b["id"]]))
        self.assertNotIn(COUNTER, self.counters())

        # Phase 2: the daemon with a timed poll every second repairs A.
        s.poll_interval = 1
        s.write_config()
        s.start()

        def a_repaired():
            for c in s.sap_contacts():
                if c["Email"] == a_email and c["LastName"] == "ChangedWhileInactive":
                    return True
            return False

        s.wait_for(a_repaired, 30, "the timed poll to bring A's change to SAP")
        s.wait_for(lambda: self.counters().get(COUNTER) == 1, 30,
                   "%s to be 1 (A only)" % COUNTER)
        last = s.query("SELECT origin FROM jobs WHERE job_key = ? ORDER BY id DESC LIMIT 1",
                       ("bigcommerce:customer:%d" % a_id,))
        self.assertEqual(last[0]["origin"], BACKFILL, "A's repair must come from the poll")
        b_jobs = s.query("SELECT origin FROM jobs WHERE job_key = ? ORDER BY id",
                         ("bigcommerce:customer:%d" % b["id"],))
        self.assertIn(REALTIME, [j["origin"] for j in b_jobs], b_jobs)

        # Later polls see the same changes again (inclusive cursor): no recount.
        def polls_logged():
            return len(re.findall(r"poll of bigcommerce customer", s.log_tail(100000)))
        seen = polls_logged()
        s.wait_for(lambda: polls_logged() >= seen + 2, 30, "two more timed polls")
        s.wait_drained()
        self.assertEqual(self.counters().get(COUNTER), 1, self.counters())
        self.assertEqual(len(s.sap_contacts()), 2)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Priority lanes: while a long backfill is being worked off, a webhook for
a new customer is processed ahead of it (real-time before backfill), so the
new contact reaches SAP while backfill jobs are still waiting."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PENDING, FerryTestCase, main  # noqa: E402
from simcore import http_request  # noqa: E402


class PriorityLanesTest(FerryTestCase):
    # A slower SAP keeps the backfill busy long enough to watch it.
    stack_options = {"sap_latency_ms": 5, "poll_interval": 1}

    def pending_backfill(self):
        return self.stack.query("SELECT count(*) AS n FROM jobs WHERE state = ? AND origin = 2",
                                (PENDING,))[0]["n"]

    def queued_backfill(self):
        return self.stack.query("SELECT count(*) AS n FROM jobs WHERE origin = 2")[0]["n"]

    def test_webhook_overtakes_backfill(self):
        s = self.stack
        r = http_request(s.bc.base_url + "/__sim/seed", method="POST", body={"count": 1500})
        self.assertEqual(r.status, 200)
        s.start()
        s.register_hook()
        # The whole seed queued first: a customer created while the poll
        # still pages would be listed by it too, and its webhook job would
        # rightly wait behind that backfill job of the same record.
        s.wait_for(lambda: self.queued_backfill() >= 1500 and self.pending_backfill() > 500, 60,
                   "the backfill to be queued")
        s.create_customers([{"email": "vip@example.com", "first_name": "Very",
                             "last_name": "Important"}])
        s.wait_for(lambda: any(c["Email"] == "vip@example.com" for c in s.sap_contacts()), 30,
                   "the webhook's contact")
        left = self.pending_backfill()
        print("backfill jobs still pending when the webhook's contact arrived: %d" % left)
        self.assertGreater(left, 0, "the webhook had to wait for the whole backfill")
        # And from the job rows, which a slow check above cannot blur:
        # backfill jobs ended after the webhook's job.
        after = s.query("SELECT count(*) AS n FROM jobs WHERE origin = 2 AND (state = ? OR "
                        "updated_at > (SELECT max(updated_at) FROM jobs WHERE origin = 0))",
                        (PENDING,))[0]["n"]
        self.assertGreater(after, 0, "every backfill job ended before the webhook's")
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The delta poll is the safety net for lost webhooks, so it must not lose
records itself. Read by page number over a list sorted by date_modified, a
poll that spans several pages loses one: when a record already read on
page 1 changes during the poll, it moves to the end, every later record
moves up one place, and the first record of page 2 is never read. The
cursor then moves past it, so no later poll sees it either, unless it
changes again.

The BigCommerce connector pages by key instead: the next page starts at
the last date_modified read, inclusive, skipping the ids already reported
at that instant (plugins/bigcommerce/bigcommerce_keyset.h). Here the first
customer changes right after page 1 is answered, and every customer must
still be read. The same shape of problem applies to any offset-based
paging over a mutable order (SAP's $skiptoken is an offset in the
simulator); see docs/reliability.md."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relcommon as rc  # noqa: E402
from bigcommerce_sim import BigCommerceSim  # noqa: E402
from harness import FerryTestCase, main  # noqa: E402

CUSTOMERS = 30
PAGE = 10


class ChangeDuringPoll(BigCommerceSim):
    """Right after answering the first page of a poll, the first customer
    (already on that page) changes, as a shopper editing a profile would."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.changed = None

    def _list_customers(self, h, query, rl):
        q = dict(query)
        out = super()._list_customers(h, query, rl)
        with self.lock:
            if self.changed is None and q.get("page", "1") == "1" and "sort" in q:
                self.changed = min(self.customers)
                self.customers[self.changed]["last_name"] = "ChangedDuringPoll"
                self.customers[self.changed]["date_modified"] = self.tick()
        return out


class PollPagingTest(FerryTestCase):
    def setUp(self):
        self.stack = rc.RelStack(name="poll-paging", bc_factory=ChangeDuringPoll,
                                 bc_extra="page_limit = %d" % PAGE)
        self.addCleanup(self.stack.close)

    def test_change_during_a_multi_page_poll_hides_no_record(self):
        s = self.stack
        s.bc.seed(CUSTOMERS)
        code, out = s.sync_once()
        self.assertEqual(code, 0, out)
        self.assertIsNotNone(s.bc.changed, "the poll never asked for page 1")
        polled = set(int(j["job_key"].rsplit(":", 1)[1]) for j in s.jobs())
        missing = sorted(set(s.bc.customers) - polled)
        self.assertEqual(missing, [], "customers the poll never read")
        self.assertEqual(len(s.sap_contacts()), CUSTOMERS)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Retention through the real daemon, with an age of 3 seconds: a backlog
of old audit rows and old done jobs (FERRY_OPS_PRUNE_ROWS, default 20,000
audit rows and half as many jobs) is pruned in bounded steps while webhooks
keep arriving, and every webhook is still acknowledged promptly (the
largest acknowledgement time is printed and must stay under 2 s); done
jobs keep a stub payload (source, object, id, event) a replay can still
use, and lose the record; rows younger than the age stay until they are
old enough, then go too."""

import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import WEBHOOK_SECRET, FerryTestCase, main  # noqa: E402
from ops_harness import OpsStack  # noqa: E402

ROWS = int(os.environ.get("FERRY_OPS_PRUNE_ROWS", "20000"))
AGE_S = 3
BATCH = 2000
DAY_MS = 86400 * 1000


class OpsRetentionTest(FerryTestCase):
    def setUp(self):
        self.stack = OpsStack(
            name="ops_retention", admin=False,
            extra="  retention = { audit_days = %r, jobs_days = %r, batch = %d, interval = 0.2 },"
            % (AGE_S / 86400, AGE_S / 86400, BATCH))
        self.addCleanup(self.stack.close)

    def fill_backlog(self):
        old = int(time.time() * 1000) - 10 * DAY_MS
        payload = json.dumps({"source": "bigcommerce", "object": "customer", "id": "1",
                              "event": "updated",
                              "record": {"id": 1, "email": "old.person@example.com"}})
        conn = sqlite3.connect(self.stack.db_path, timeout=10)
        try:
            with conn:
                conn.executemany(
                    "INSERT INTO audit (job_id, correlation_id, connector, step, detail, at)"
                    " VALUES (NULL, ?, 'bigcommerce', 'http', 'old row', ?)",
                    (("old%06d" % i, old + i) for i in range(ROWS)))
                conn.executemany(
                    "INSERT INTO jobs (job_key, kind, payload, correlation_id, state, attempts,"
                    " next_attempt_at, created_at, updated_at, lane, origin)"
                    " VALUES (?, 'sync', ?, ?, 2, 1, ?, ?, ?, 2, 2)",
                    (("bigcommerce:customer:old%d" % i, payload, "oldjob%06d" % i, old, old, old)
                     for i in range(ROWS // 2)))
        finally:
            conn.close()

    def count(self, sql, args=()):
        return self.stack.query(sql, args)[0]["n"]

    def test_backlog_pruned_without_stalling_intake(self):
        s = self.stack
        s.start()        # creates the schema
        self.assertEqual(s.stop(), 0)
        self.fill_backlog()
        cutoff_old = int(time.time() * 1000) - DAY_MS
        t0 = time.monotonic()
        s.start()

        # Webhooks while the backlog is pruned: each is acknowledged quickly.
        # (The customers do not exist: each job ends "no longer exists".)
        acks = []
        for i in range(40):
            body = {"scope": "store/customer/updated", "store_id": "1000001",
                    "data": {"type": "customer", "id": 900000 + i},
                    "hash": "%040x" % (0xfeed0000 + i), "created_at": int(time.time()),
                    "producer": "stores/teststore"}
            t = time.monotonic()
            status, answer = s.post_webhook(body, {"X-Ferry-Secret": WEBHOOK_SECRET})
            acks.append(time.monotonic() - t)
            self.assertEqual(status, 200, answer)
            time.sleep(0.02)   # spread over the pruning, as real deliveries are

        old_audit = "SELECT COUNT(*) AS n FROM audit WHERE at < ?"
        old_jobs = ("SELECT COUNT(*) AS n FROM jobs WHERE state = 2 AND pruned = 0"
                    " AND updated_at < ?")
        s.wait_for(lambda: self.count(old_audit, (cutoff_old,)) == 0
                   and self.count(old_jobs, (cutoff_old,)) == 0, 120,
                   "the backlog to be pruned")
        took = time.monotonic() - t0
        sys.stderr.write("retention: %d audit rows + %d job payloads pruned in %.1f s "
                         "(batch %d); webhook acks during it: max %.0f ms, mean %.0f ms\n"
                         % (ROWS, ROWS // 2, took, BATCH, max(acks) * 1000,
                            sum(acks) / len(acks) * 1000))
        self.assertLess(max(acks), 2.0, "a webhook waited %.2f s during pruning" % max(acks))

        stub = s.query("SELECT payload FROM jobs WHERE correlation_id = 'oldjob000007'")[0]
        self.assertEqual(json.loads(stub["payload"]),
                         {"source": "bigcommerce", "object": "customer", "id": "1",
                          "event": "updated", "pruned": True})

        # Young rows stay until they are AGE_S old, then go as well.
        s.wait_drained(total=ROWS // 2 + 40)
        body = {"scope": "store/customer/updated", "store_id": "1000001",
                "data": {"type": "customer", "id": 999999}, "hash": "%040x" % 0xbeef,
                "created_at": int(time.time()), "producer": "stores/teststore"}
        sent = int(time.time() * 1000)
        self.assertEqual(s.post_webhook(body, {"X-Ferry-Secret": WEBHOOK_SECRET})[0], 200)
        s.wait_drained(total=ROWS // 2 + 41)
        young = self.count("SELECT COUNT(*) AS n FROM audit WHERE at >= ?", (sent,))
        if int(time.time() * 1000) - sent < (AGE_S - 1) * 1000:
            self.assertGreater(young, 0, "rows younger than the retention age were pruned")
        s.wait_for(lambda: self.count("SELECT COUNT(*) AS n FROM audit") == 0, 60,
                   "the young rows to age out")
        s.wait_for(lambda: self.count("SELECT COUNT(*) AS n FROM jobs WHERE pruned = 0") == 0, 60,
                   "every done job's payload to be stubbed")
        self.assertIn("retention: pruned", s.log_text())
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    main()

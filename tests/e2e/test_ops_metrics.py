#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The admin listener against known activity: /healthz, /readyz and
/metrics on their own port. Customers that exist before the start arrive
through the first delta poll, later ones through webhooks, one SAP write is
throttled (429) once; the scrape must parse as Prometheus text and every
value must match what happened: deliveries acknowledged, jobs by state and
outcome, retries, 429s, HTTP calls by class (against the SAP simulator's own
request count), latency histograms, poll records and lag, webhook silence,
queue depth, and zero-valued echo/conflict counters. /readyz turns 503 while
SAP's last answer is a 503 and back to 200 after the next success."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, customer, main  # noqa: E402
from ops_harness import OpsStack, total, value  # noqa: E402

POLLED = 4
HOOKED = 3


class OpsMetricsTest(FerryTestCase):
    def setUp(self):
        # A poll at start (the interval is long: exactly one poll in this test).
        self.stack = OpsStack(name="ops_metrics", poll_interval=3600)
        self.addCleanup(self.stack.close)

    def test_scrape_matches_activity(self):
        s = self.stack
        s.create_customers([customer(i, "polled") for i in range(POLLED)])
        s.start()
        self.assertEqual(s.admin_get("/healthz")[0], 200)
        self.assertEqual(s.admin_get("/nope")[0], 404)
        # The webhook port serves no metrics: the admin listener is separate.
        self.assertNotEqual(s.admin_port, s.port)
        s.wait_drained(total=POLLED)

        s.sap.faults.add({"method": "POST", "path": "ContactCollection", "status": 429,
                          "message": "Rate limit exceeded", "headers": [["Retry-After", "0"]]})
        s.register_hook()
        s.create_customers([customer(i, "hooked") for i in range(HOOKED)])
        s.wait_deliveries(HOOKED)
        s.wait_drained(total=POLLED + HOOKED)
        s.wait_for(lambda: len(s.sap_contacts()) == POLLED + HOOKED, 30, "every contact")

        m = s.scrape()
        bc = {"connector": "bigcommerce"}
        sap = {"connector": "sap_sales"}
        self.assertEqual(value(m, "ferry_webhooks_received_total", **bc), HOOKED)
        self.assertEqual(value(m, "ferry_webhook_events_total", result="queued", **bc), HOOKED)
        self.assertEqual(value(m, "ferry_webhook_events_total", result="duplicate", **bc), 0)
        self.assertEqual(value(m, "ferry_jobs", state="done"), POLLED + HOOKED)
        for st in ("pending", "running", "dead"):
            self.assertEqual(value(m, "ferry_jobs", state=st), 0, st)
        for lane in ("realtime", "retry", "backfill"):
            self.assertEqual(value(m, "ferry_queue_depth", lane=lane), 0, lane)
        self.assertEqual(value(m, "ferry_oldest_pending_age_seconds"), 0)
        self.assertEqual(value(m, "ferry_dead_letters_open"), 0)
        obj = dict(bc, object="customer")
        self.assertEqual(value(m, "ferry_jobs_processed_total", outcome="done", **obj),
                         POLLED + HOOKED)
        self.assertEqual(value(m, "ferry_jobs_processed_total", outcome="retry", **obj), 1)
        self.assertEqual(value(m, "ferry_job_retries_total", **obj), 1)
        self.assertEqual(value(m, "ferry_job_latency_seconds_count", **obj), POLLED + HOOKED)
        self.assertEqual(value(m, "ferry_http_throttled_total", **sap), 1)
        self.assertEqual(value(m, "ferry_http_throttled_total", **bc), 0)
        self.assertEqual(value(m, "ferry_http_requests_total", **dict(sap, **{"class": "4xx"})), 1)
        # Every request SAP saw came from the daemon; the metrics count all of them.
        self.assertEqual(total(m, "ferry_http_requests_total", **sap), len(s.sap_requests()))
        self.assertEqual(value(m, "ferry_http_request_duration_seconds_count", **sap),
                         len(s.sap_requests()))
        # The poll listed the records that existed at the start, and left a cursor.
        self.assertEqual(value(m, "ferry_poll_records_total", **obj), POLLED)
        self.assertEqual(value(m, "ferry_polls_total", result="ok", **obj), 1)
        lag = value(m, "ferry_poll_lag_seconds", **obj)
        self.assertIsNotNone(lag, "poll lag per cursor")
        self.assertTrue(0 <= lag < 600, lag)
        silence = value(m, "ferry_webhook_silence_seconds", scope="store/customer/created", **bc)
        self.assertIsNotNone(silence)
        self.assertTrue(0 <= silence < 60, silence)
        for c in (bc, sap):
            self.assertEqual(value(m, "ferry_echo_suppressed_total", **c), 0)
            self.assertEqual(value(m, "ferry_conflicts_total", **c), 0)
        self.assertEqual(value(m, "ferry_ready"), 1)
        self.assertEqual(value(m, "ferry_build_info", version="0.1.0"), 1)

        status, doc = s.readyz()
        self.assertEqual(status, 200, doc)
        self.assertTrue(doc["ready"])
        for check in ("database", "plugins", "mappings", "connectors", "draining"):
            self.assertTrue(doc["checks"][check]["ok"], (check, doc))

        # SAP fails: readiness says so, naming the connector; then it recovers.
        # Every call on contacts fails four times: each retry waits longer
        # (0.05 s doubling), the last wait long enough for polling to see it.
        s.sap.faults.add({"path": "ContactCollection", "status": 503,
                          "message": "Service unavailable", "times": 4,
                          "headers": [["Retry-After", "0"]]})
        s.create_customers([customer(100, "flaky")])

        def not_ready():
            st, d = s.readyz()
            conns = d["checks"]["connectors"]["connectors"]
            return st == 503 and not conns["sap_sales"]["ok"] and conns["bigcommerce"]["ok"]
        s.wait_for(not_ready, 30, "/readyz to report sap_sales failing")
        s.wait_drained(total=POLLED + HOOKED + 1)
        s.wait_for(lambda: s.readyz()[0] == 200, 30, "/readyz to recover after a success")
        m = s.scrape()
        self.assertEqual(value(m, "ferry_http_requests_total", **dict(sap, **{"class": "5xx"})), 4)
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    main()

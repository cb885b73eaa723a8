#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""BigCommerce connector end to end (issue 3): an address webhook re-syncs
the customer's contact; a scope the connector does not handle is answered
2xx and queues nothing; a delta sync against a small quota window spends
the quota without collecting more than one 429."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DONE, WEBHOOK_SECRET, FerryTestCase, Stack, main  # noqa: E402
from simcore import http_request  # noqa: E402

BC_SECRET_LINE = '                    webhook_secret = env("FERRY_TEST_WEBHOOK_SECRET") },'


class BcStack(Stack):
    """The harness stack with extra bigcommerce connector keys."""

    bc_extra = ""

    def write_config(self):
        super().write_config()
        if not self.bc_extra:
            return
        with open(self.config_path, encoding="utf-8") as fh:
            text = fh.read()
        if BC_SECRET_LINE not in text:
            raise AssertionError("harness config changed shape; update BcStack")
        text = text.replace(BC_SECRET_LINE, '                    webhook_secret = env('
                            '"FERRY_TEST_WEBHOOK_SECRET"), %s },' % self.bc_extra)
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write(text)


class BcEventsTest(FerryTestCase):
    def test_address_webhook_resyncs_contact(self):
        s = self.stack
        s.start()
        s.register_hook("store/customer/*")
        (cust,) = s.create_customers([{
            "email": "addr.change@example.com", "first_name": "Ada", "last_name": "Byron",
            "addresses": [{"first_name": "Ada", "last_name": "Byron", "address1": "1 Main St",
                           "city": "Austin", "state_or_province": "Texas",
                           "postal_code": "78751", "country_code": "US",
                           "address_type": "commercial"}]}])
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 30, "the contact")
        s.wait_drained(total=1)
        self.assertEqual(s.sap_contacts()[0]["BusinessAddressCity"], "Austin")
        aid = http_request(s.bc.v3_url + "/customers/addresses?customer_id:in=%d" % cust["id"],
                           headers={"X-Auth-Token": s.bc.token}).json()["data"][0]["id"]

        # Address changes fire store/customer/address/updated only, never customer/updated.
        s.bc.upsert_address(cust["id"], aid, city="Dallas")
        dl = s.wait_deliveries(2)
        self.assertEqual(dl[-1]["scope"], "store/customer/address/updated")
        self.assertEqual(dl[-1]["status"], 200, dl[-1])
        s.wait_for(lambda: s.sap_contacts()[0]["BusinessAddressCity"] == "Dallas", 30,
                   "the contact's city to follow the address")
        s.wait_drained(total=2)
        jobs = s.jobs()
        self.assertEqual([j["state"] for j in jobs], [DONE, DONE], jobs)
        self.assertEqual(len(set(j["job_key"] for j in jobs)), 1, jobs)   # same customer
        self.assertEqual(len(s.sap_contacts()), 1)

    def test_unknown_scope_acknowledged_nothing_queued(self):
        s = self.stack
        s.start()
        body = {"scope": "store/sku/inventory/updated", "store_id": "1000001",
                "data": {"type": "sku", "id": 7}, "hash": "a" * 40,
                "created_at": int(time.time()), "producer": "stores/teststore"}
        status, _ = s.post_webhook(body, {"X-Ferry-Secret": WEBHOOK_SECRET})
        self.assertTrue(200 <= status < 300, status)
        # Give the daemon time to (wrongly) queue something: another, known event after it.
        s.register_hook("store/customer/created")
        s.create_customers([{"email": "after@example.com", "first_name": "A", "last_name": "B"}])
        s.wait_drained(total=1)
        jobs = s.jobs()
        self.assertEqual(len(jobs), 1, jobs)
        self.assertIn("customer", jobs[0]["job_key"])
        self.assertIn("ignoring scope store/sku/inventory/updated", s.log_tail(400))


class BcQuotaTest(FerryTestCase):
    COUNT = 3000

    def setUp(self):
        self.stack = BcStack.__new__(BcStack)
        self.stack.bc_extra = "page_limit = 10, ratelimit_fallback_ms = 500"
        Stack.__init__(self.stack, name="bc_quota", workers=4)
        self.addCleanup(self.stack.close)

    def test_sync_spends_quota_with_at_most_one_429(self):
        s = self.stack
        s.bc.seed(self.COUNT)
        # 40 requests per 500 ms: the 300 pages need about eight windows.
        http_request(s.bc.base_url + "/__sim/config", "POST", {"quota": 40, "window_ms": 500})
        http_request(s.bc.base_url + "/__sim/reset_stats", "POST", {})
        t0 = time.monotonic()
        rc, out = s.sync_once(timeout=240)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "sync exited %d: %s" % (rc, out))
        stats = http_request(s.bc.base_url + "/__sim/stats").json()
        requests = sum(n for k, n in stats["requests"].items() if "/customers" in k)
        print("\nquota-limited sync: %d customers, %d BigCommerce requests, %d x 429, %.2f s"
              % (self.COUNT, requests, stats["limited"], took))
        # Under a sanitizer every request is several times slower and a 500 ms
        # window is only a few requests wide, so one more boundary race is
        # tolerated there; the quota rule itself is asserted by the plain build
        # (and at 150 per window by test_bc_backfill).
        allowed = 2 if os.environ.get("FERRY_SANITIZED") == "1" else 1
        self.assertLessEqual(stats["limited"], allowed, stats)
        self.assertGreaterEqual(requests, self.COUNT // 10)
        self.assertEqual(len(s.sap_contacts()), self.COUNT)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Bad webhook input gets a clear JSON error and never reaches the queue:
wrong or missing secret (401), malformed JSON (400), an oversized body
(413). Afterwards the daemon is healthy and a valid webhook still works."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import WEBHOOK_SECRET, FerryTestCase, main  # noqa: E402

VALID = {"scope": "store/customer/created", "store_id": "1000001",
         "data": {"type": "customer", "id": 1},
         "hash": "0123456789abcdef0123456789abcdef01234567",
         "created_at": 1561479335, "producer": "stores/teststore"}


class BadInputTest(FerryTestCase):
    def assert_json_error(self, status, body, expected, what):
        self.assertEqual(status, expected, "%s: got %d %r" % (what, status, body[:300]))
        try:
            parsed = json.loads(body.decode("utf-8"))
        except ValueError:
            self.fail("%s: error body is not JSON: %r" % (what, body[:300]))
        self.assertIsInstance(parsed, dict, what)

    def test_rejections_then_alive(self):
        s = self.stack
        s.start()
        status, body = s.post_webhook(VALID, {"X-Ferry-Secret": "not-the-secret"})
        self.assert_json_error(status, body, 401, "wrong secret")
        status, body = s.post_webhook(VALID)
        self.assert_json_error(status, body, 401, "missing secret")
        status, body = s.post_webhook(b'{"scope": "store/customer/created", "data": {',
                                      {"X-Ferry-Secret": WEBHOOK_SECRET})
        self.assert_json_error(status, body, 400, "malformed JSON")
        big = dict(VALID)
        big["padding"] = "x" * (2 * 1024 * 1024)
        status, body = s.post_webhook(json.dumps(big).encode(),
                                      {"X-Ferry-Secret": WEBHOOK_SECRET})
        self.assert_json_error(status, body, 413, "2 MiB body")

        self.assertEqual(s.jobs(), [], "rejected input must not create jobs")
        self.assertEqual(s.healthz(), 200)
        self.assertTrue(s.running(), "daemon died after bad input")

        s.register_hook()
        s.create_customers([{"email": "after@example.com", "first_name": "Still",
                             "last_name": "Alive", "phone": "555-0142"}])
        dl = s.wait_deliveries(1)
        self.assertEqual(dl[0]["status"], 200, dl[0])
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 30, "the contact after bad input")
        s.wait_drained(total=1)
        self.assertEqual(s.sap_contacts()[0]["Email"], "after@example.com")
        self.assertEqual(len(s.jobs()), 1)


if __name__ == "__main__":
    main()

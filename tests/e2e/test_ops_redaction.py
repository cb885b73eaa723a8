#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One redaction layer, checked on every sink. With privacy = { mask =
{"email"}, hash = {"phone"}, emails = "mask" }, a customer's e-mail address
and phone number, and every configured secret (the BigCommerce token, the
webhook secret, the SAP password), must appear in none of: the daemon's log
(at debug level), the audit trail (URLs, request and response bodies,
details), dead-letter reasons (SAP's rejection quotes the address), the CLI
(`ferry explain` with bodies and payloads, `ferry log --bodies`, `ferry
status`, `ferry check`), and the metrics. Masked values read "[MASKED]";
hashed ones read "hash:<16 hex>", the same token wherever the same phone
number appeared (so rows stay comparable)."""

import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BC_TOKEN, SAP_PASSWORD, WEBHOOK_SECRET, FerryTestCase,  # noqa: E402
                     main)
from ops_harness import OpsStack  # noqa: E402

HOOK_EMAIL = "ada.secret@example.com"
HOOK_PHONE = "555-867-5309"
POLL_EMAIL = "poll.person@example.com"
POLL_PHONE = "555-000-1111"
FORBIDDEN = [HOOK_EMAIL, "ada.secret%40example.com", HOOK_PHONE, POLL_EMAIL,
             "poll.person%40example.com", POLL_PHONE, BC_TOKEN, WEBHOOK_SECRET, SAP_PASSWORD]


def phone_token(phone):
    return "hash:" + hashlib.sha256(phone.lower().encode()).hexdigest()[:16]


class OpsRedactionTest(FerryTestCase):
    def setUp(self):
        self.stack = OpsStack(
            name="ops_redaction", log_level="debug", poll_interval=3600,
            extra='  privacy = { mask = { "email" }, hash = { "phone" }, emails = "mask" },')
        self.addCleanup(self.stack.close)

    def assert_clean(self, where, text):
        low = text.lower()
        for bad in FORBIDDEN:
            self.assertNotIn(bad.lower(), low, "%s leaks %r" % (where, bad))

    def test_no_sink_leaks(self):
        s = self.stack
        # One customer arrives through the first poll (its record rides in
        # the job's payload), one through a webhook and is rejected by SAP.
        (polled,) = s.create_customers([{"email": POLL_EMAIL, "first_name": "Polly",
                                         "last_name": "Person", "phone": POLL_PHONE}])
        s.start()
        s.wait_drained(total=1)
        s.sap.faults.add({"method": "POST", "path": "ContactCollection", "status": 400,
                          "message": "Email %s is invalid" % HOOK_EMAIL, "times": 100})
        s.register_hook()
        (hooked,) = s.create_customers([{"email": HOOK_EMAIL, "first_name": "Ada",
                                         "last_name": "Secret", "phone": HOOK_PHONE}])
        s.wait_drained(total=2)
        _, _, metrics = s.admin_get("/metrics")
        self.assertEqual(s.stop(), 0)

        # The log, at debug level.
        log = s.log_text()
        self.assert_clean("the log", log)
        self.assertIn("job dead-lettered", log)
        self.assertIn("[MASKED] is invalid", log)

        # The audit trail: every text column of every row.
        rows = s.query("SELECT url, request, response, detail FROM audit")
        text = "\n".join(str(v) for r in rows for v in r.values() if v)
        self.assert_clean("the audit trail", text)
        self.assertIn('"Email":"[MASKED]"', text.replace(" ", ""))
        self.assertIn("Email%20eq%20%27[MASKED]%27", text)   # the lookup's OData filter
        # The same phone hashes to the same token in the BigCommerce answer
        # and in the SAP request body.
        self.assertGreaterEqual(text.count(phone_token(HOOK_PHONE)), 2, text)
        self.assertGreaterEqual(text.count(phone_token(POLL_PHONE)), 2, text)
        self.assertIn("[REDACTED]", text)   # credential headers

        # Dead-letter reasons.
        (dead,) = s.query("SELECT last_error FROM jobs WHERE state = 3")
        self.assert_clean("the dead letter", dead["last_error"])
        self.assertIn("Email [MASKED] is invalid", dead["last_error"])

        # CLI output.
        cfg = s.config_path
        for args in (["explain", "-c", cfg, "bigcommerce:customer:%d" % hooked["id"], "--bodies"],
                     ["explain", "-c", cfg, "bigcommerce:customer:%d" % polled["id"], "--json",
                      "--bodies"],
                     ["log", "-c", cfg, "--since", "2020-01-01", "--bodies"],
                     ["log", "-c", cfg, "--since", "2020-01-01", "--json", "--bodies"],
                     ["status", "-c", cfg],
                     ["status", "-c", cfg, "--json"]):
            rc, out = s.cli(*args, timeout=60)
            self.assertEqual(rc, 0, (args, out))
            self.assert_clean("ferry " + " ".join(args[:1] + args[3:]), out)
        rc, out = s.cli("explain", "-c", cfg, "bigcommerce:customer:%d" % polled["id"], "--json")
        payload = json.loads(out)["stories"][0]["jobs"][0]["payload"]
        self.assertEqual(payload["record"]["email"], "[MASKED]")
        self.assertEqual(payload["record"]["phone"], phone_token(POLL_PHONE))
        rc, out = s.cli("check", "-c", cfg, timeout=60)
        self.assert_clean("ferry check", out)

        # The metrics scraped while running.
        self.assert_clean("the metrics", metrics)
        self.assertIn("ferry_jobs", metrics)


if __name__ == "__main__":
    main()

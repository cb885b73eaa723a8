#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The daemon reports a webhook scope that has gone quiet: with
webhooks.silence_alert set, a scope that delivered once and then stayed
silent for longer is warned about once (naming the scope and pointing at
`ferry webhooks`), and `ferry status` shows the last delivery per scope."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, main  # noqa: E402


class SilenceAlertTest(FerryTestCase):
    stack_options = {"webhooks_extra": "silence_alert = 1"}

    def log_text(self):
        with open(self.stack.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def test_silent_scope_is_reported_once(self):
        s = self.stack
        s.start()
        s.register_hook()
        s.create_customers([{"email": "q@example.com", "first_name": "Q", "last_name": "Uiet"}])
        s.wait_drained(total=1)
        status = s.status_json()
        scopes = {w["scope"]: w for w in status.get("webhooks", [])}
        self.assertIn("store/customer/created", scopes, status)
        self.assertEqual(scopes["store/customer/created"]["count"], 1)
        s.wait_for(lambda: "no store/customer/created webhook for" in self.log_text(), 30,
                   "the silence warning")
        self.assertIn("ferry webhooks", self.log_text())
        # Reported once per silence, not at every check: another scope's
        # warning comes at least one check later, and by then the first scope
        # has still been reported once only.
        (cust,) = [c for c in s.bc_call("GET", "/customers").json()["data"]]
        s.update_customer(cust["id"], last_name="Uieter")
        s.wait_for(lambda: "no store/customer/updated webhook for" in self.log_text(), 30,
                   "the second scope's silence warning")
        self.assertEqual(self.log_text().count("no store/customer/created webhook for"), 1)
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`ferry check --online`: one cheap authenticated call per connector (the
first page of changes since now of an object the mappings use) and the
webhook registrations the mappings need. With good credentials every
connector passes and a missing registration fails until `ferry webhooks
--apply` creates it; with a wrong SAP password or BigCommerce token that
connector fails as "credentials refused", each exactly one request to the
simulator, and the wrong secret appears nowhere in the output."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, main  # noqa: E402
from ops_harness import OpsStack  # noqa: E402

PUBLIC = "https://ferry.example.com"


class WrongSecretStack(OpsStack):
    overrides = {}

    def env(self):
        env = super().env()
        env.update(self.overrides)
        return env


class OpsCheckOnlineTest(FerryTestCase):
    def setUp(self):
        self.stack = WrongSecretStack(name="ops_check_online", admin=False,
                                      webhooks_extra='public_url = "%s"' % PUBLIC)
        self.addCleanup(self.stack.close)

    def check(self, *extra):
        return self.stack.cli("check", "-c", self.stack.config_path, "--online", *extra,
                              timeout=60)

    def lines(self, out, what):
        return [l for l in out.splitlines() if l.split()[1:2] == [what]]

    def test_online_check(self):
        s = self.stack
        rc, out = self.check()
        self.assertEqual(rc, 1, out)   # no webhook registration yet
        online = self.lines(out, "online")
        self.assertEqual(len(online), 2, out)
        self.assertTrue(all(l.startswith("ok ") for l in online), out)
        self.assertIn("bigcommerce: credentials accepted (list changes of customer since now", out)
        self.assertIn("sap_sales: credentials accepted", out)
        hooks = self.lines(out, "webhook")
        self.assertTrue(hooks and all(l.startswith("FAIL") and "missing" in l for l in hooks), out)
        self.assertIn("ferry webhooks --apply", out)

        rc, out = s.cli("webhooks", "-c", s.config_path, "--apply", timeout=60)
        self.assertEqual(rc, 0, out)
        rc, out = self.check("--json")
        self.assertEqual(rc, 0, out)
        doc = json.loads(out)
        self.assertTrue(doc["ok"])
        kinds = {c["check"] for c in doc["checks"]}
        self.assertTrue({"config", "plugin", "online", "webhook"} <= kinds, kinds)

        # A wrong SAP password: refused, with one request, and never echoed.
        before = len(s.sap_requests())
        s.overrides = {"FERRY_TEST_SAP_PASSWORD": "wrong-pw-4d9e"}
        rc, out = self.check()
        self.assertEqual(rc, 1, out)
        (sap,) = [l for l in self.lines(out, "online") if "sap_sales" in l]
        self.assertTrue(sap.startswith("FAIL"), out)
        self.assertIn("credentials refused (EAUTH)", sap)
        self.assertNotIn("wrong-pw-4d9e", out)
        self.assertNotIn("wrong-pw-4d9e", s.log_text())
        probes = [r for r in s.sap_requests()[before:] if "$metadata" not in r.get("path", "")]
        self.assertLessEqual(len(probes), 2, probes)   # the probe (and nothing that writes)
        (bc,) = [l for l in self.lines(out, "online") if "bigcommerce" in l]
        self.assertTrue(bc.startswith("ok "), out)

        # A wrong BigCommerce token: that connector fails instead.
        s.overrides = {"FERRY_TEST_BC_TOKEN": "wrong-token-77"}
        rc, out = self.check()
        self.assertEqual(rc, 1, out)
        (bc,) = [l for l in self.lines(out, "online") if "bigcommerce" in l]
        self.assertTrue(bc.startswith("FAIL") and "credentials refused" in bc, out)
        self.assertNotIn("wrong-token-77", out)


if __name__ == "__main__":
    main()

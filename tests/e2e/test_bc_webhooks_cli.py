#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`ferry webhooks -c CONFIG [--apply] [--json]` against the BigCommerce
simulator (issue 3): the scopes the enabled mappings need are reported
missing (exit 1); --apply creates them with the shared-secret header (exit
0); a hook the store deactivated is reported inactive (exit 1) and --apply
reactivates it (exit 0). No daemon runs: the command talks to /v3/hooks only.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import WEBHOOK_SECRET, FerryTestCase, Stack, main  # noqa: E402

PUBLIC_URL = "https://ferry.example.test"
DESTINATION = PUBLIC_URL + "/webhooks/bigcommerce"
WEBHOOKS_LINE = " max_body = 1048576, coalesce_window = 1 },"


class PublicUrlStack(Stack):
    """The harness stack with webhooks.public_url set."""

    public_url = PUBLIC_URL

    def write_config(self):
        super().write_config()
        if self.public_url is None:
            return
        with open(self.config_path, encoding="utf-8") as fh:
            text = fh.read()
        if WEBHOOKS_LINE not in text:
            raise AssertionError("harness config changed shape; update PublicUrlStack")
        text = text.replace(WEBHOOKS_LINE, ' max_body = 1048576, coalesce_window = 1, public_url = "%s" },'
                            % self.public_url)
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write(text)


class BcWebhooksCliTest(FerryTestCase):
    def setUp(self):
        self.stack = PublicUrlStack(name="bc_webhooks_cli")
        self.addCleanup(self.stack.close)

    def webhooks(self, *extra):
        return self.stack.cli("webhooks", "-c", self.stack.config_path, *extra, timeout=60)

    def report(self, *extra):
        rc, out = self.webhooks("--json", *extra)
        try:
            doc = json.loads(out)
        except ValueError:
            self.fail("ferry webhooks --json printed no JSON (exit %d): %r" % (rc, out))
        self.assertIn("bigcommerce", doc, doc)
        return rc, {row["scope"]: row for row in doc["bigcommerce"]}

    def sim_hooks(self):
        with self.stack.bc.lock:
            return {h["scope"]: dict(h) for h in self.stack.bc.hooks.values()}

    def test_missing_created_deactivated_reactivated(self):
        s = self.stack
        # 1. Nothing registered: every needed scope is missing; text output names them.
        rc, text = self.webhooks()
        self.assertEqual(rc, 1, text)
        self.assertIn("bigcommerce -> " + DESTINATION, text)
        rc, rows = self.report()
        self.assertEqual(rc, 1, rows)
        for scope in ("store/customer/created", "store/customer/updated",
                      "store/customer/address/updated"):
            self.assertIn(scope, rows)
        self.assertEqual({r["state"] for r in rows.values()}, {"missing"}, rows)
        self.assertIn("missing", text)
        self.assertEqual(self.sim_hooks(), {}, "the report alone must not create hooks")
        needed = set(rows)

        # 2. --apply creates each one, active, with the secret header, at public_url.
        rc, rows = self.report("--apply")
        self.assertEqual(rc, 0, rows)
        self.assertEqual({r["state"] for r in rows.values()}, {"created"}, rows)
        hooks = self.sim_hooks()
        self.assertEqual(set(hooks), needed)
        for scope, hook in hooks.items():
            self.assertTrue(hook["is_active"], hook)
            self.assertEqual(hook["destination"], DESTINATION, hook)
            self.assertEqual(hook["headers"], {"X-Ferry-Secret": WEBHOOK_SECRET}, hook)
        # The secret crossed the wire but must not be printed.
        _, text = self.webhooks()
        self.assertNotIn(WEBHOOK_SECRET, text)

        # 3. Nothing left to do: all ok, exit 0, no new hooks.
        rc, rows = self.report()
        self.assertEqual(rc, 0, rows)
        self.assertEqual({r["state"] for r in rows.values()}, {"ok"}, rows)
        self.assertEqual(len(s.bc.hooks), len(needed))

        # 4. The store deactivates one (as after failed deliveries).
        victim = hooks["store/customer/updated"]
        r = s.bc_call("PUT", "/hooks/%d" % victim["id"], {"is_active": False})
        self.assertEqual(r.status, 200, r.body)
        rc, rows = self.report()
        self.assertEqual(rc, 1, rows)
        self.assertEqual(rows["store/customer/updated"]["state"], "inactive", rows)
        self.assertEqual(str(rows["store/customer/updated"]["id"]), str(victim["id"]))
        others = {sc: r["state"] for sc, r in rows.items() if sc != "store/customer/updated"}
        self.assertEqual(set(others.values()), {"ok"}, others)

        # 5. --apply reactivates that very hook (no second registration).
        rc, rows = self.report("--apply")
        self.assertEqual(rc, 0, rows)
        self.assertEqual(rows["store/customer/updated"]["state"], "reactivated", rows)
        hooks = self.sim_hooks()
        self.assertEqual(len(s.bc.hooks), len(needed))
        self.assertEqual(hooks["store/customer/updated"]["id"], victim["id"])
        self.assertTrue(hooks["store/customer/updated"]["is_active"])
        self.assertEqual(hooks["store/customer/updated"]["headers"],
                         {"X-Ferry-Secret": WEBHOOK_SECRET})
        rc, rows = self.report()
        self.assertEqual((rc, {r["state"] for r in rows.values()}), (0, {"ok"}), rows)


class BcWebhooksCliNoUrlTest(FerryTestCase):
    def setUp(self):
        self.stack = PublicUrlStack.__new__(PublicUrlStack)
        self.stack.public_url = None
        Stack.__init__(self.stack, name="bc_webhooks_cli_nourl")
        self.addCleanup(self.stack.close)

    def test_without_public_url_refuses(self):
        s = self.stack
        rc, out = s.cli("webhooks", "-c", s.config_path, "--apply", timeout=60)
        self.assertEqual(rc, 1, out)
        self.assertIn("public_url", s.log_tail(5))
        with s.bc.lock:
            self.assertEqual(s.bc.hooks, {})


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Quota state for operators: after a sync, `ferry status` shows the remote
quota the BigCommerce connector last saw (requests left, the window's limit,
time to the reset), as reported through the host's quota function."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, main  # noqa: E402
from simcore import http_request  # noqa: E402


class QuotaStatusTest(FerryTestCase):
    def test_status_shows_the_last_seen_quota(self):
        s = self.stack
        http_request(s.bc.base_url + "/__sim/config", "POST", {"quota": 500, "window_ms": 30000})
        http_request(s.bc.base_url + "/__sim/seed", "POST", {"count": 30})
        rc, out = s.sync_once(timeout=120)
        self.assertEqual(rc, 0, out)
        status = s.status_json()
        quota = {q["instance"] + "/" + q["key"]: q["value"] for q in status.get("quota", [])}
        self.assertIn("bigcommerce/quota:store", quota, status)
        q = quota["bigcommerce/quota:store"]
        self.assertEqual(q["limit"], 500)
        self.assertLess(q["remaining"], 500)
        self.assertGreaterEqual(q["remaining"], 0)
        rc, text = s.cli("status", "-c", s.config_path, timeout=30)
        self.assertEqual(rc, 0)
        self.assertIn("quota (as last reported)", text)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""BigCommerce backfill under a quota (issue 3): `ferry sync --since
2000-01-01` over 10,000 customers and 20,000 orders, with the store quota at
150 requests per window.

The window is 1.5 s instead of the real 30 s so the test stays within about
three minutes; the governor's logic does not depend on the window length (it
waits for the reset the store reports, whatever it is).

Choices, so that the figures measure the BigCommerce side:
- Customers and orders are read by two test-only mappings (written to a
  temporary directory) whose filters drop every record: no shipped mapping
  reads orders yet, and the SAP side is not what this test measures (the
  Python SAP simulator's e-mail lookups make 10,000 contact creates take
  minutes on their own; SAP writes are covered by test_sync_once). Every
  record is still listed, queued as a job, loaded by a worker and mapped.
- `order_details_in_poll = false`: with details each order costs two more
  requests (products, shipping addresses), 40,000 requests = 400 windows,
  far beyond a test's time; the listing itself is what a backfill streams.
- `page_limit = 50` instead of 250, so that the 600 list requests span
  several quota windows and the governor really has to wait.

Written to the test log: BigCommerce requests, 429s, duration, and the ferry
process's peak RSS (VmHWM) against its RSS once the first page was stored.
Asserted: at most one 429; every customer and every order a finished job; peak RSS minus that early RSS < 64 MiB. A backfill that held
the store in memory (30,000 records as jansson objects) would exceed that
several times over.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DONE, FerryTestCase, Stack, _track, main  # noqa: E402
from simcore import http_request  # noqa: E402

CUSTOMERS = 10000
ORDERS = 20000
QUOTA, WINDOW_MS = 150, 1500
RSS_GROWTH_LIMIT_KB = 64 * 1024

PROBE = """-- test-only (tests/e2e/test_bc_backfill.py): reads every %(object)s, writes nothing
return {
  description = "BigCommerce %(object)s, read for the backfill test only",
  source = { "bigcommerce", "%(object)s" },
  target = { "sap_sales", "ContactCollection" },
  key    = "id",
  fields = { LastName = "%(field)s" },
  filter = function(record, ctx) return false end,
}
"""
PROBES = {"customer_probe": {"object": "customer", "field": "last_name"},
          "order_probe": {"object": "order", "field": "billing_address.last_name"}}

BC_SECRET = '                    webhook_secret = env("FERRY_TEST_WEBHOOK_SECRET") },'
ENABLED = 'enabled = { "customer_to_contact" } },'


class BackfillStack(Stack):
    """The harness stack with the probe mappings and the backfill's connector keys."""

    def write_config(self):
        super().write_config()
        with open(self.config_path, encoding="utf-8") as fh:
            text = fh.read()
        for old, new in (
                (BC_SECRET, '                    webhook_secret = env("FERRY_TEST_WEBHOOK_SECRET"),'
                            ' page_limit = 50, order_details_in_poll = false },'),
                (ENABLED, 'enabled = { "customer_probe", "order_probe" } },')):
            if old not in text:
                raise AssertionError("harness config changed shape (%r); update this test" % old)
            text = text.replace(old, new)
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write(text)


def status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class BcBackfillTest(FerryTestCase):
    def setUp(self):
        self.mapdir = tempfile.mkdtemp(prefix="ferry-bc-backfill-mappings-")
        self.addCleanup(shutil.rmtree, self.mapdir, True)
        for name, fill in PROBES.items():
            os.makedirs(os.path.join(self.mapdir, name))
            with open(os.path.join(self.mapdir, name, "mapping.lua"), "w",
                      encoding="utf-8") as fh:
                fh.write(PROBE % fill)
        self.stack = BackfillStack(name="bc_backfill", workers=4, mapping_dir=self.mapdir)
        self.addCleanup(self.stack.close)

    def test_backfill_streams_under_quota(self):
        s = self.stack
        s.bc.seed(CUSTOMERS)
        s.bc.seed_orders(ORDERS)
        http_request(s.bc.base_url + "/__sim/config", "POST", {"quota": QUOTA,
                                                               "window_ms": WINDOW_MS})
        http_request(s.bc.base_url + "/__sim/reset_stats", "POST", {})

        log = open(s.log_path, "ab")
        log.write(b"=== ferry sync --since 2000-01-01 (backfill test)\n")
        log.flush()
        t0 = time.monotonic()
        proc = _track(subprocess.Popen(
            [s.bin, "sync", "-c", s.config_path, "--since", "2000-01-01"], cwd=s.workdir,
            env=s.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log))
        log.close()
        samples = {"early": None, "hwm": None, "rss_max": 0}
        stop = threading.Event()

        def sample():
            # The early reference is the RSS once the first page is committed
            # (start-up, plugins, mappings and one page in memory).
            while not stop.is_set() and proc.poll() is None:
                hwm = status_kb(proc.pid, "VmHWM")
                rss = status_kb(proc.pid, "VmRSS")
                if hwm is not None:
                    samples["hwm"] = hwm
                if rss is not None:
                    samples["rss_max"] = max(samples["rss_max"], rss)
                    if samples["early"] is None and _jobs_exist(s):
                        samples["early"] = rss
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            out, _ = proc.communicate(timeout=270)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            s.fail("ferry sync --since did not finish within 270 s")
        took = time.monotonic() - t0
        stop.set()
        sampler.join()
        self.assertEqual(proc.returncode, 0, "sync exited %d: %s" % (proc.returncode, out))

        stats = http_request(s.bc.base_url + "/__sim/stats").json()
        requests = sum(n for k, n in stats["requests"].items() if "/__sim/" not in k)
        customer_pages = sum(n for k, n in stats["requests"].items() if "/v3/customers" in k)
        order_pages = sum(n for k, n in stats["requests"].items() if k.endswith("/v2/orders"))
        early, hwm = samples["early"], samples["hwm"]
        print("\nbackfill: %d customers + %d orders, quota %d per %d ms: %d BigCommerce requests "
              "(%d customer pages, %d order pages), %d x 429, %.1f s; ferry RSS %s KiB once the "
              "first page was stored, peak (VmHWM) %s KiB, growth %s KiB (limit %d KiB)"
              % (CUSTOMERS, ORDERS, QUOTA, WINDOW_MS, requests, customer_pages, order_pages,
                 stats["limited"], took, early, hwm,
                 (hwm - early) if early and hwm else "?", RSS_GROWTH_LIMIT_KB))
        sys.stdout.flush()

        self.assertLessEqual(stats["limited"], 1, stats)
        self.assertGreaterEqual(customer_pages, CUSTOMERS // 50)
        self.assertGreaterEqual(order_pages, ORDERS // 50)
        # 600 requests at 150 per 1.5 s cannot take less than three full windows.
        self.assertGreaterEqual(took, 3 * WINDOW_MS / 1000.0)
        for obj, want in (("customer", CUSTOMERS), ("order", ORDERS)):
            done = s.query("SELECT count(*) AS n FROM jobs WHERE state = ? AND job_key LIKE ?",
                           (DONE, "bigcommerce:%s:%%" % obj))[0]["n"]
            self.assertEqual(done, want, obj)
        self.assertEqual(s.sap_stats().get("POST", 0), 0, "the probes must write nothing")
        self.assertIsNotNone(early, "no RSS sample was taken after the first page")
        self.assertIsNotNone(hwm, "no VmHWM sample was taken")
        if os.environ.get("FERRY_SANITIZED") == "1":
            print("RSS bound not asserted: sanitizer build (growth %d KiB)" % (hwm - early))
            return
        self.assertLess(hwm - early, RSS_GROWTH_LIMIT_KB,
                        "ferry's RSS grew by %d KiB during the backfill" % (hwm - early))


def _jobs_exist(stack):
    try:
        return bool(stack.query("SELECT 1 FROM jobs LIMIT 1"))
    except Exception:   # table not created yet, or locked: not yet
        return False


if __name__ == "__main__":
    main()

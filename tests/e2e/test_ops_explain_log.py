#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`ferry explain` and `ferry log` on a record with a real history: a SAP
contact with the customer's e-mail exists already (so the first job matches
it by the mapping's lookup rule and, the values being equal, links it
without a write), the customer's
name changes (an update), then only the phone changes (a field SAP owns, so
the system-of-record rule writes nothing). explain must tell that story in
order: links, each job with how it arrived, its mapping hash, requests with
status, the match rule, the system-of-record skip, and outcomes; from the
SAP side too. log must return exactly one job's rows for its correlation ID,
and rows by date."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, main  # noqa: E402
from ops_harness import OpsStack  # noqa: E402


class OpsExplainLogTest(FerryTestCase):
    def setUp(self):
        # Two updates of one customer carry the same webhook hash; without a
        # dedupe window each still becomes a job of its own.
        self.stack = OpsStack(name="ops_explain", admin=False, webhooks_extra="dedupe_window = 0")
        self.addCleanup(self.stack.close)

    def cli(self, *args):
        return self.stack.cli(args[0], "-c", self.stack.config_path, *args[1:], timeout=60)

    def test_record_story_and_audit_log(self):
        s = self.stack
        existing = s.sap._create({"FirstName": "Grace", "LastName": "Hopper",
                                  "Email": "grace@example.com"}, "CRM_USER")
        sap_id = existing["ObjectID"]
        s.start()
        s.register_hook()
        (cust,) = s.create_customers([{"email": "Grace@Example.com", "first_name": "Grace",
                                       "last_name": "Hopper", "phone": "555-0100"}])
        s.wait_drained(total=1)
        s.update_customer(cust["id"], last_name="Hopper-Murray")
        s.wait_drained(total=2)
        s.update_customer(cust["id"], phone="555-0199")
        s.wait_drained(total=3)
        self.assertEqual(s.stop(), 0)
        jobs = s.query("SELECT id, correlation_id, mapping_hash, state FROM jobs ORDER BY id")
        self.assertEqual([j["state"] for j in jobs], [2, 2, 2], jobs)
        key = "bigcommerce:customer:%d" % cust["id"]

        rc, out = self.cli("explain", key)
        self.assertEqual(rc, 0, out)
        self.assertTrue(out.startswith(key + "\n"), out)
        self.assertIn("%s -> sap_sales:ContactCollection:%s" % (key, sap_id), out)
        # One block per job, oldest first, each with how it came and which rules ran.
        pos = [out.index("job %d " % j["id"]) for j in jobs]
        self.assertEqual(pos, sorted(pos), out)
        blocks = [out[p:q] for p, q in zip(pos, pos[1:] + [len(out)])]
        for j, block in zip(jobs, blocks):
            self.assertIn("webhook", block)
            self.assertIn("mapping %s" % j["mapping_hash"][:12], block)
            self.assertIn("correlation %s" % j["correlation_id"], block)
            self.assertIn("outcome: done", block)
            self.assertIn("intake", block)
            self.assertRegex(block, r"http\s+bigcommerce\s+GET \S+/customers\S*\s+200")
        self.assertIn("created (store/customer/created)", blocks[0])
        self.assertIn("matched by Email", blocks[0])
        self.assertIn("[match rule]", blocks[0])
        # The match found the same values: linked, nothing written, no create.
        self.assertNotRegex(blocks[0], r"http\s+sap_sales\s+(POST|PATCH)")
        self.assertIn("updated (store/customer/updated)", blocks[1])
        self.assertRegex(blocks[1], r"PATCH \S+ContactCollection\S*\s+20[04]")
        self.assertIn("no change in fields the source owns", blocks[2])
        self.assertIn("[system of record]", blocks[2])
        self.assertNotIn("PATCH", blocks[2])

        rc, out = self.cli("explain", key, "--json")
        self.assertEqual(rc, 0, out)
        doc = json.loads(out)
        (story,) = doc["stories"]
        self.assertEqual([j["id"] for j in story["jobs"]], [j["id"] for j in jobs])
        self.assertEqual(story["jobs"][0]["mapping_hash"], jobs[0]["mapping_hash"])
        self.assertEqual(story["jobs"][0]["state_name"], "done")
        steps = [r["step"] for r in story["jobs"][0]["audit"]]
        self.assertEqual(steps[0], "intake")
        self.assertIn("match", steps)
        self.assertNotIn("request", story["jobs"][0]["audit"][1])  # bodies only with --bodies
        rc, out = self.cli("explain", key, "--json", "--bodies")
        http = [r for r in json.loads(out)["stories"][0]["jobs"][0]["audit"] if r["step"] == "http"]
        self.assertTrue(all("request" in r for r in http), http)

        # From the target's side: the story of the source linked to it.
        rc, out = self.cli("explain", "sap_sales:ContactCollection:%s" % sap_id)
        self.assertEqual(rc, 0, out)
        self.assertIn("is linked from:", out)
        self.assertIn(key + "\n", out)

        rc, out = self.cli("explain", "bigcommerce:customer:999999")
        self.assertEqual(rc, 1, out)
        rc, out = self.cli("explain", "not-a-key")
        self.assertEqual(rc, 2, out)

        # ferry log: one job's rows by correlation, and rows by date.
        corr = jobs[0]["correlation_id"]
        # (A correlation ID follows the delivery key: redeliveries share it.)
        same = {j["id"] for j in jobs if j["correlation_id"] == corr}
        rc, out = self.cli("log", "--correlation", corr, "--json")
        self.assertEqual(rc, 0, out)
        rows = json.loads(out)["audit"]
        self.assertGreaterEqual(len(rows), 3, rows)
        self.assertEqual({r["correlation_id"] for r in rows}, {corr})
        self.assertEqual({r["job_id"] for r in rows}, same)
        # The stored rows, and each webhook job's intake step, which its job row holds.
        db_rows = s.query("SELECT COUNT(*) AS n FROM audit WHERE correlation_id = ?", (corr,))
        hooked = s.query("SELECT COUNT(*) AS n FROM jobs WHERE correlation_id = ? AND origin = 0",
                         (corr,))
        self.assertEqual(len(rows), db_rows[0]["n"] + hooked[0]["n"])
        self.assertEqual(rows[0]["step"], "intake")
        rc, out = self.cli("log", "--correlation", corr)
        self.assertEqual(rc, 0, out)
        self.assertEqual(len(out.strip().splitlines()), len(rows), out)
        self.assertTrue(all(("job %d" % jobs[0]["id"]) in line for line in out.splitlines()), out)
        rc, out = self.cli("log", "--since", "2020-01-01", "--json")
        every = (s.query("SELECT COUNT(*) AS n FROM audit")[0]["n"]
                 + s.query("SELECT COUNT(*) AS n FROM jobs WHERE origin = 0")[0]["n"])
        self.assertEqual(len(json.loads(out)["audit"]), every)
        rc, out = self.cli("log", "--since", "2999-01-01")
        self.assertEqual((rc, out), (0, "(no audit rows)\n"))
        rc, out = self.cli("log", "--since", "2020-01-01", "--limit", "2")
        self.assertIn("(stopped at --limit 2)", out)
        rc, out = self.cli("log")
        self.assertEqual(rc, 2, out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`ferry plan` against real (simulated) systems: per record and per field it
shows create, update (old -> new), no change, a field the target owns, and a
conflict with an edit made in the CRM since the last sync, and it writes
nothing: no SAP write, no link, no audit row."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FerryTestCase, main  # noqa: E402


class PlanTest(FerryTestCase):
    def plan(self, *args):
        rc, out = self.stack.cli("plan", "-c", self.stack.config_path, "--json", *args,
                                 timeout=60)
        self.assertEqual(rc, 0, out)
        return json.loads(out)["plan"]

    def counts(self):
        s = self.stack
        return (s.query("SELECT count(*) AS n FROM audit")[0]["n"],
                s.query("SELECT count(*) AS n FROM links")[0]["n"])

    def test_plan_reports_and_writes_nothing(self):
        s = self.stack
        s.start()
        s.register_hook()
        (a,) = s.create_customers([{"email": "ann@example.com", "first_name": "Ann",
                                    "last_name": "Lee", "phone": "555-0001"}])
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 30, "the contact")
        s.wait_drained(total=1)
        self.assertEqual(s.stop(), 0)

        # Changes at the source while nothing syncs (the daemon is stopped).
        s.update_customer(a["id"], last_name="Lee-Smith", phone="555-9999")
        (b,) = s.create_customers([{"email": "bo@example.com", "first_name": "Bo",
                                    "last_name": "Ng"}])
        s.sap.reset_stats()
        before = self.counts()

        (e,) = self.plan("--object", "customer", "--id", str(a["id"]))
        self.assertEqual(e["action"], "update")
        self.assertEqual(e["matched_by"], "link")
        fields = {f["field"]: f for f in e["fields"]}
        self.assertEqual(fields["LastName"]["action"], "change")
        self.assertEqual(fields["LastName"]["old"], "Lee")
        self.assertEqual(fields["LastName"]["new"], "Lee-Smith")
        self.assertEqual(fields["Phone"]["action"], "kept (target owns it)")
        self.assertEqual(fields["FirstName"]["action"], "no change")

        (e,) = self.plan("--object", "customer", "--id", str(b["id"]))
        self.assertEqual(e["action"], "create")
        self.assertEqual({f["field"]: f["action"] for f in e["fields"]}["LastName"], "set")

        # A CRM user edits the same field: the plan calls it a conflict.
        (contact,) = s.sap_contacts()
        s.sap.modify(contact["ObjectID"], {"LastName": "Lee (VIP)"})
        (e,) = self.plan("--object", "customer", "--id", str(a["id"]))
        self.assertEqual(e["action"], "conflict")
        self.assertEqual({f["field"]: f["action"] for f in e["fields"]}["LastName"], "conflict")

        # --since lists changed records through the source connector.
        entries = self.plan("--since", "2000-01-01", "--limit", "10")
        self.assertEqual(len(entries), 2)
        rc, text = s.cli("plan", "-c", s.config_path, "--object", "customer", "--id",
                         str(a["id"]), timeout=60)
        self.assertEqual(rc, 0)
        self.assertIn('"Lee" -> "Lee-Smith"', text)

        stats = s.sap_stats()
        self.assertEqual(stats.get("POST", 0) + stats.get("PATCH", 0), 0, stats)
        self.assertEqual(self.counts(), before, "plan wrote audit rows or links")


if __name__ == "__main__":
    main()

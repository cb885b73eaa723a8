#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Dead letters and replays through the real daemon and CLI: a rejected
write is dead-lettered with SAP's message and listed by `ferry dlq list`;
`ferry dlq retry` queues it again and the running daemon finishes it; a
later successful job for the same record supersedes an older dead letter on
its own; `ferry dlq drop` closes one; `ferry replay` runs an event again
without writing an unchanged record."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DONE, FerryTestCase, main  # noqa: E402

REJECT = {"method": "POST", "path": "ContactCollection", "status": 400,
          "message": "Property Email has an invalid value", "times": 1000}


class DlqReplayTest(FerryTestCase):
    def dlq(self, *args):
        rc, out = self.stack.cli("dlq", "-c", self.stack.config_path, *args, timeout=60)
        return rc, out

    def dead(self):
        rc, out = self.dlq("list", "--json")
        self.assertEqual(rc, 0, out)
        return json.loads(out)["dead_letters"]

    def test_dead_letters_retry_supersede_drop_and_replay(self):
        s = self.stack
        s.sap.faults.add(dict(REJECT))
        s.start()
        s.register_hook()
        (a,) = s.create_customers([{"email": "a@example.com", "first_name": "A", "last_name": "One"}])
        s.wait_for(lambda: len(self.dead()) == 1, 60, "the first dead letter")
        (d,) = self.dead()
        self.assertIn("Property Email has an invalid value", d["last_error"])
        rc, out = self.dlq("show", str(d["id"]))
        self.assertEqual(rc, 0, out)
        self.assertIn("POST", out)

        # Retry after the cause is gone: the daemon picks the job up by itself.
        s.sap.faults.clear()
        rc, out = self.dlq("retry", str(d["id"]))
        self.assertEqual(rc, 0, out)
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 60, "the retried contact")
        s.wait_drained()
        self.assertEqual(self.dead(), [])

        # A later success for the same record supersedes its older dead letter.
        s.sap.faults.add(dict(REJECT))
        (b,) = s.create_customers([{"email": "b@example.com", "first_name": "B", "last_name": "Two"}])
        s.wait_for(lambda: len(self.dead()) == 1, 60, "the second dead letter")
        s.sap.faults.clear()
        s.update_customer(b["id"], last_name="Two-Again")
        s.wait_for(lambda: len(s.sap_contacts()) == 2, 60, "the second contact")
        s.wait_drained()
        self.assertEqual(self.dead(), [], "superseded by the later job")

        # Drop closes a dead letter without running it.
        s.sap.faults.add(dict(REJECT))
        s.create_customers([{"email": "c@example.com", "first_name": "C", "last_name": "Three"}])
        s.wait_for(lambda: len(self.dead()) == 1, 60, "the third dead letter")
        (d3,) = self.dead()
        rc, out = self.dlq("drop", str(d3["id"]))
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.dead(), [])
        s.sap.faults.clear()

        # Replay of a finished job: the record is read again and, unchanged, not written.
        done = [j for j in s.jobs() if j["state"] == DONE]
        s.sap.reset_stats()
        rc, out = s.cli("replay", "-c", s.config_path, "--id", str(done[0]["id"]), timeout=60)
        self.assertEqual(rc, 0, out)
        self.assertIn("1 job(s) queued", out)
        s.wait_drained()
        stats = s.sap_stats()
        self.assertEqual(stats.get("POST", 0) + stats.get("PATCH", 0), 0, stats)
        rc, out = s.cli("replay", "-c", s.config_path, "--id", "999999", timeout=60)
        self.assertEqual(rc, 1)
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    main()

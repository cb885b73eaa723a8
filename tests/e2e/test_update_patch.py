#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A change in BigCommerce reaches SAP as a minimal PATCH: only the changed
field, guarded by the ETag that the create returned, and no second POST."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DONE, FerryTestCase, main  # noqa: E402


class UpdatePatchTest(FerryTestCase):
    def test_last_name_change_is_one_patch(self):
        s = self.stack
        s.start()
        s.register_hook()
        (cust,) = s.create_customers([{"email": "paul@example.com", "first_name": "Paul",
                                       "last_name": "Before", "phone": "555-0100"}])
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 30, "the contact to be created")
        s.wait_drained(total=1)
        posts = [r for r in s.sap_requests() if r["method"] == "POST" and r["status"] == 201]
        self.assertEqual(len(posts), 1, posts)
        post_etag = posts[0]["response_etag"]
        self.assertTrue(post_etag)
        mark = len(s.sap_requests())

        s.update_customer(cust["id"], last_name="After")
        s.wait_for(lambda: s.sap_contacts()[0]["LastName"] == "After", 30,
                   "the contact's LastName to become 'After'")
        s.wait_drained(total=2)
        new = s.sap_requests()[mark:]
        patches = [r for r in new if r["method"] == "PATCH"]
        self.assertEqual(len(patches), 1, patches)
        self.assertEqual(patches[0]["body"], {"LastName": "After"})
        self.assertEqual(patches[0]["headers"].get("if-match"), post_etag)
        self.assertEqual(patches[0]["status"], 204)
        self.assertEqual([r for r in new if r["method"] == "POST"], [])
        self.assertEqual(len(s.sap_contacts()), 1)
        self.assertTrue(all(j["state"] == DONE for j in s.jobs()), s.jobs())


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SIGHUP reloads mappings atomically: a broken mapping is reported and the
running set stays in force; a good one takes effect for the next job."""

import os
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO, FerryTestCase, main  # noqa: E402

MAPPINGS = tempfile.mkdtemp(prefix="ferry-sighup-mappings-")


class SighupReloadTest(FerryTestCase):
    # The file watch would reload on its own; this test proves the signal.
    stack_options = {"mapping_dir": MAPPINGS, "mappings_extra": "watch = false"}

    def mapping_file(self):
        return os.path.join(MAPPINGS, "customer_to_contact", "mapping.lua")

    def log_text(self):
        with open(self.stack.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def test_reload_keeps_old_set_on_error_and_swaps_on_success(self):
        s = self.stack
        with open(self.mapping_file(), encoding="utf-8") as f:
            original = f.read()
        s.start()
        s.register_hook()

        with open(self.mapping_file(), "w", encoding="utf-8") as f:
            f.write("return { source = ")  # a syntax error
        s.proc.send_signal(signal.SIGHUP)
        s.wait_for(lambda: "mappings not reloaded (SIGHUP)" in self.log_text(), 30,
                   "the reload error")
        self.assertNotIn("watching", self.log_text())
        s.create_customers([{"email": "a@example.com", "first_name": "A", "last_name": "One"}])
        s.wait_drained(total=1)
        (first,) = s.sap_contacts()
        self.assertIsNone(first.get("JobTitle"), "the old mapping set stayed in force")

        changed = original.replace("fields = {", "fields = {\n    JobTitle = map.const \"Web customer\",", 1)
        self.assertNotEqual(changed, original, "the mapping has a fields table to extend")
        with open(self.mapping_file(), "w", encoding="utf-8") as f:
            f.write(changed)
        s.proc.send_signal(signal.SIGHUP)
        s.wait_for(lambda: "mappings reloaded" in self.log_text(), 30, "the reload")
        s.create_customers([{"email": "b@example.com", "first_name": "B", "last_name": "Two"}])
        s.wait_drained(total=2)
        second = [c for c in s.sap_contacts() if c["Email"] == "b@example.com"][0]
        self.assertEqual(second.get("JobTitle"), "Web customer")
        self.assertEqual(s.stop(), 0)


def setUpModule():
    shutil.rmtree(MAPPINGS)
    shutil.copytree(os.path.join(REPO, "mappings"), MAPPINGS)


def tearDownModule():
    shutil.rmtree(MAPPINGS, ignore_errors=True)


if __name__ == "__main__":
    main()

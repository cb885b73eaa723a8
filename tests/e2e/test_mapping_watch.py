#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Saving a mapping file reloads the set (mappings.watch, on by default):
a broken save is reported and the running set stays in force; a good save
takes effect for the next job, without a signal. A burst of saves gives one
reload, and files other than scripts do not trigger one."""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO, FerryTestCase, main  # noqa: E402

MAPPINGS = tempfile.mkdtemp(prefix="ferry-watch-mappings-")


class MappingWatchTest(FerryTestCase):
    stack_options = {"mapping_dir": MAPPINGS}

    def mapping_file(self):
        return os.path.join(MAPPINGS, "customer_to_contact", "mapping.lua")

    def log_text(self):
        with open(self.stack.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def save(self, text):
        # The way editors save: a temporary file renamed over the original.
        tmp = self.mapping_file() + ".tmp~"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.rename(tmp, self.mapping_file())

    def test_saving_a_mapping_reloads_it(self):
        s = self.stack
        with open(self.mapping_file(), encoding="utf-8") as f:
            original = f.read()
        s.start()
        s.register_hook()
        s.wait_for(lambda: "watching" in self.log_text(), 30, "the watch to start")

        # Not a script: no reload.
        with open(os.path.join(MAPPINGS, "customer_to_contact", "notes.txt"), "w") as f:
            f.write("a note\n")

        self.save("return { source = ")  # a syntax error
        s.wait_for(lambda: "mappings not reloaded (file change)" in self.log_text(), 30,
                   "the reload error")
        s.create_customers([{"email": "a@example.com", "first_name": "A", "last_name": "One"}])
        s.wait_drained(total=1)
        (first,) = s.sap_contacts()
        self.assertIsNone(first.get("JobTitle"), "the old mapping set stayed in force")

        changed = original.replace("fields = {", "fields = {\n    JobTitle = map.const \"Web customer\",", 1)
        self.assertNotEqual(changed, original, "the mapping has a fields table to extend")
        for _ in range(5):  # a burst of saves
            self.save(changed)
        s.wait_for(lambda: "mappings reloaded (file change)" in self.log_text(), 30, "the reload")
        s.create_customers([{"email": "b@example.com", "first_name": "B", "last_name": "Two"}])
        s.wait_drained(total=2)
        second = [c for c in s.sap_contacts() if c["Email"] == "b@example.com"][0]
        self.assertEqual(second.get("JobTitle"), "Web customer")
        self.assertEqual(s.stop(), 0)
        log = self.log_text()
        self.assertEqual(log.count("mappings reloaded (file change)"), 1, "one reload per burst")
        self.assertEqual(log.count("mappings not reloaded (file change)"), 1,
                         "the note file triggered no reload")


def setUpModule():
    shutil.rmtree(MAPPINGS)
    shutil.copytree(os.path.join(REPO, "mappings"), MAPPINGS)


def tearDownModule():
    shutil.rmtree(MAPPINGS, ignore_errors=True)


if __name__ == "__main__":
    main()

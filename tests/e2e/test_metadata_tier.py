#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Metadata tier: every property every shipped mapping writes must exist and
be writable in a real tenant's $metadata (C4C.edmx under FERRY_SPECS), as
`ferry check` sees it offline. Skipped, saying so, when the specs are absent.
A deliberately wrong mapping shows that the check names file, line and
property."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("FERRY_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
SKIP = 77


def edmx_path():
    specs = os.environ.get("FERRY_SPECS") or os.path.join(REPO, "..", "shared", "specs")
    path = os.path.join(specs, "sap", "c4c-odata-v2", "C4C.edmx")
    return path if os.path.isfile(path) else None


def write_config(workdir, mapping_dir, mappings, edmx):
    enabled = ", ".join('"%s"' % m for m in mappings)
    text = """return {
  state = { path = "%s/ferry.db" },
  mappings = { dir = "%s", lua_path = "%s/lua", enabled = { %s } },
  connectors = {
    bigcommerce = { store_hash = "s1", access_token = env("T"), webhook_secret = env("T") },
    sap_sales = { username = "U", password = env("T"), metadata_file = "%s" },
  },
}
""" % (workdir, mapping_dir, REPO, enabled, edmx)
    path = os.path.join(workdir, "ferry.lua")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def check(config):
    env = dict(os.environ, T="secret-value-1")
    proc = subprocess.run([os.environ["FERRY_BIN"], "check", "-c", config, "--json"], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def main():
    if not os.environ.get("FERRY_BIN"):
        print("FERRY_BIN is not set: run through ctest")
        return 1
    edmx = edmx_path()
    if not edmx:
        print("SKIP: no C4C.edmx under FERRY_SPECS; the metadata tier needs the vendor's file")
        return SKIP
    work = tempfile.mkdtemp(prefix="ferry-metadata-tier-")
    try:
        shipped = sorted(d for d in os.listdir(os.path.join(REPO, "mappings"))
                         if os.path.isfile(os.path.join(REPO, "mappings", d, "mapping.lua")))
        config = write_config(work, os.path.join(REPO, "mappings"), shipped, edmx)
        rc, out, err = check(config)
        doc = json.loads(out)
        described = [c for c in doc["checks"] if c["check"] == "describe" and c["ok"]]
        if rc != 0 or not doc["ok"] or not described:
            print("shipped mappings fail the metadata check:\n%s\n%s" % (out, err))
            return 1
        print("ok: %d shipped mapping(s) checked against %s" % (len(shipped), edmx))

        # The check must be able to fail: a read-only and an unknown property.
        bad_dir = os.path.join(work, "mappings")
        os.makedirs(os.path.join(bad_dir, "bad"))
        with open(os.path.join(bad_dir, "bad", "mapping.lua"), "w", encoding="utf-8") as f:
            f.write('return {\n'
                    '  source = { "bigcommerce", "customer" },\n'
                    '  target = { "sap_sales", "ContactCollection" },\n'
                    '  fields = {\n'
                    '    LastName = "last_name",\n'
                    '    ExternalID = "id",\n'
                    '    NoSuchField = "email",\n'
                    '  },\n'
                    '}\n')
        config = write_config(work, bad_dir, ["bad"], edmx)
        rc, out, err = check(config)
        doc = json.loads(out)
        problems = [c["detail"] for c in doc["checks"] if not c["ok"]]
        text = "\n".join(problems)
        if rc != 1 or "mapping.lua:6: ExternalID of ContactCollection is read-only" not in text \
                or "mapping.lua:7: NoSuchField is not a property of ContactCollection" not in text:
            print("the metadata check did not flag the bad mapping as expected:\n%s\n%s"
                  % (out, err))
            return 1
        print("ok: a read-only and an unknown property are refused with file and line")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

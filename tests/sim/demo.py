#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`make demo`: a short story told by the real daemon against the two
simulators, printed step by step.

Three customers register in the (simulated) BigCommerce store, one changes
her phone, one changes his name, and a webhook arrives twice. ferry turns
that into SAP Sales Cloud (simulated) contacts; the demo prints what the CRM
holds, how many requests it took, and where to look in the state database.
Everything the demo starts is stopped again, also on Ctrl-C or an error;
its files stay in demo-run/ (git-ignored) for inspection.

  python3 tests/sim/demo.py --build-dir build
"""

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))

from harness import Stack  # noqa: E402

PEOPLE = [
    {"email": "ada.lovelace@example.com", "first_name": "Ada", "last_name": "Lovelace",
     "phone": "+44 20 7946 0001", "company": "Analytical Engines Ltd"},
    {"email": "Grace.Hopper@Example.com", "first_name": "Grace", "last_name": "Hopper",
     "phone": "+1 202 555 0147", "company": "COBOL Inc"},
    {"email": "alan.turing@example.com", "first_name": "Alan", "last_name": "Turing",
     "phone": "+44 161 496 0003", "company": "Bletchley Park"},
]


def say(text=""):
    print(text, flush=True)


def step(n, text):
    say()
    say("== %d. %s" % (n, text))


def sap_delta(stack, before):
    now = stack.sap_stats()
    parts = []
    for key in ("GET", "POST", "PATCH", "csrf_fetch", "403", "412"):
        d = now.get(key, 0) - before.get(key, 0)
        if d:
            parts.append("%s %d" % (key, d))
    return ", ".join(parts) or "none"


def show_writes(stack, mark):
    writes = [r for r in stack.sap_requests()[mark:] if r["method"] in ("POST", "PATCH")]
    for r in writes:
        say("   SAP %s %s%s -> %d  body %s" % (
            r["method"], r["path"].rsplit("/", 1)[-1],
            "  If-Match " + r["headers"]["if-match"] if r["headers"].get("if-match") else "",
            r["status"], json.dumps(r.get("body"))))
    if not writes:
        # Say why, in the daemon's own words (its last audit row).
        try:
            rows = stack.query("SELECT step, detail FROM audit ORDER BY id DESC LIMIT 1")
        except sqlite3.Error:
            rows = []
        reason = ("%s: %s" % (rows[0]["step"], rows[0]["detail"])) if rows else "no change"
        say("   no SAP write; ferry's audit says: %s" % reason)


def table(contacts):
    cols = ["ContactID", "Name", "Email", "Phone", "etag"]
    rows = [[c["ContactID"], c["Name"] or "", c["Email"] or "", c["Phone"] or "",
             c["__metadata"]["etag"]] for c in contacts]
    widths = [max(len(cols[i]), *(len(r[i]) for r in rows)) if rows else len(cols[i])
              for i in range(len(cols))]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    say(("   " + line).rstrip())
    say("   " + "  ".join("-" * w for w in widths))
    for r in rows:
        say(("   " + "  ".join(v.ljust(w) for v, w in zip(r, widths))).rstrip())


def story(stack):
    step(1, "Starting ferry run (config %s)" % stack.config_path)
    stack.start()
    say("   listening on %s, webhook URL %s" % (stack.base_url, stack.webhook_url))
    hook = stack.register_hook()
    say("   BigCommerce hook %d registered: %s -> %s (with the X-Ferry-Secret header)"
        % (hook["id"], hook["scope"], hook["destination"]))

    step(2, "Three customers register in the store")
    before, mark = stack.sap_stats(), len(stack.sap_requests())
    custs = stack.create_customers(PEOPLE)
    for c in custs:
        say("   BigCommerce customer %d: %s %s <%s>" % (c["id"], c["first_name"],
                                                       c["last_name"], c["email"]))
    stack.wait_deliveries(3)
    stack.wait_drained(total=3)
    show_writes(stack, mark)
    say("   SAP requests: %s" % sap_delta(stack, before))

    step(3, "Grace changes her phone number in the shop (the mapping lets SAP own Phone)")
    before, mark = stack.sap_stats(), len(stack.sap_requests())
    stack.update_customer(custs[1]["id"], phone="+1 202 555 0199")
    stack.wait_deliveries(4)
    stack.wait_drained(total=4)
    show_writes(stack, mark)
    say("   SAP requests: %s" % sap_delta(stack, before))

    step(4, "Alan changes his name")
    before, mark = stack.sap_stats(), len(stack.sap_requests())
    stack.update_customer(custs[2]["id"], first_name="Alan Mathison")
    stack.wait_deliveries(5)
    stack.wait_drained(total=5)
    show_writes(stack, mark)
    say("   SAP requests: %s" % sap_delta(stack, before))

    step(5, "BigCommerce delivers Ada's webhook a second time")
    before = stack.sap_stats()
    stack.bc.redeliver(0, times=1)
    dl = stack.wait_deliveries(6)
    say("   duplicate delivery answered %s; jobs in the queue: %d (unchanged)"
        % (dl[-1]["status"], len(stack.jobs())))
    stack.wait_drained(total=5)
    say("   SAP requests: %s" % sap_delta(stack, before))

    step(6, "What the CRM holds now")
    table(stack.sap_contacts())
    stats = stack.sap_stats()
    say()
    say("   SAP requests in total: " + ", ".join("%s %d" % kv for kv in sorted(stats.items())))

    step(7, "Where to look")
    rel = os.path.relpath(stack.db_path, os.getcwd())
    try:
        n_audit = stack.query("SELECT COUNT(*) AS n FROM audit")[0]["n"]
    except sqlite3.Error as exc:
        n_audit = "? (%s)" % exc
    say("   state DB:   %s  (%d jobs, %s audit rows)" % (rel, len(stack.jobs()), n_audit))
    say("   daemon log: %s" % os.path.relpath(stack.log_path, os.getcwd()))
    say("   try:        sqlite3 %s \"SELECT id, job_id, step, method, url, status FROM audit"
        " ORDER BY id;\"" % rel)
    say("               sqlite3 %s \"SELECT id, job_key, kind, state, attempts FROM jobs;\"" % rel)
    rc, out = stack.cli("status", "-c", stack.config_path, "--json", timeout=30)
    say("   ferry status -c %s --json  (exit %d)" % (os.path.relpath(stack.config_path), rc))
    for line in out.strip().splitlines():
        say(("   " + line).rstrip())

    step(8, "Stopping ferry (SIGTERM)")
    rc = stack.stop()
    say("   ferry exited with status %s" % rc)
    return rc == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--run-dir", default=os.path.join(REPO, "demo-run"))
    args = ap.parse_args()
    build = os.path.abspath(args.build_dir)
    ferry = os.path.join(build, "ferry")
    plugins = os.path.join(build, "plugins")
    if not os.access(ferry, os.X_OK):
        say("demo: %s is missing; run `make build` first" % ferry)
        return 1
    if os.path.isdir(args.run_dir):
        shutil.rmtree(args.run_dir)
    stack = None
    ok = False
    t0 = time.monotonic()
    try:
        stack = Stack(name="demo", workdir=args.run_dir, ferry=ferry, plugin_dir=plugins,
                      keep_workdir=True)
        say("ferry demo: BigCommerce simulator at %s, SAP Sales Cloud simulator at %s"
            % (stack.bc.base_url, stack.sap.service_root))
        ok = story(stack)
    except KeyboardInterrupt:
        say("\ninterrupted; stopping everything")
    except AssertionError as exc:
        say("\ndemo failed: %s" % exc)
    finally:
        if stack is not None:
            stack.close()
    say()
    say("done in %.1f s; files kept in %s" % (time.monotonic() - t0,
                                               os.path.relpath(args.run_dir, os.getcwd())))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

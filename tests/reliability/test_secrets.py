#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Secrets never leave the process: a full scenario with distinctive secret
values, then every place ferry writes is searched for them.

Secrets: the BigCommerce access token, webhook secret and client secret
(the key of webhook signatures), the SAP password (Basic phase), the SAP
OAuth client secret and SAML assertion (OAuth phase), every bearer token the
SAP simulator issued, and the Base64 forms in which the Basic credentials
travel ("user:password", "client_id:client_secret").

Scenario, with the log at trace level: webhooks (good, signed with the
client secret, and refused ones with a wrong secret), contacts created and
updated, SAP failures that are retried (503, a stale CSRF token, a revoked
bearer token) and ones that are dead-lettered (403 with SAP's message, 400
validation), a restart in OAuth mode, then the CLI: status, dlq list/show,
replay --dry-run, plugins, check, webhooks (each also with --json).

Searched: the daemon's log (which also holds every CLI's stderr), each CLI's
stdout, every column of every audit row, the jobs table (payloads and dead
letters), and the raw bytes of the state database and its WAL. Expected: 0
occurrences of each.
"""

import base64
import hashlib
import hmac
import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relcommon as rc  # noqa: E402
from bigcommerce_sim import BigCommerceSim  # noqa: E402
from harness import FerryTestCase, main  # noqa: E402

SECRETS = {
    "bc_token": "bcTok-9f8e7d6c5b4a3921-SECRET",
    "webhook_secret": "whSec-1a2b3c4d5e6f7081-SECRET",
    "sap_user": "FERRY_TECH",
    "sap_password": "sapPw-0f1e2d3c4b5a6978-SECRET",
    "ENV:FERRY_TEST_BC_CLIENT_SECRET": "bcCli-77aa88bb99cc00dd-SECRET",
    "ENV:FERRY_TEST_SAP_CLIENT_SECRET": "sapCs-5e5e6f6f7a7a8b8b-SECRET",
}
CLIENT_ID = "ferry-client"
ASSERTION = "PHNhbWw6QXNzZXJ0aW9uIGlkPSJhc3NlcnQtU0VDUkVULTQ0NTUiPg"  # base64url, distinctive
PUBLIC_URL = "https://ferry.example.test/webhooks/bigcommerce"


def read_bytes(path):
    with open(path, "rb") as fh:
        return fh.read()


class TokenRecordingSap(rc.FastLookupSapSim):
    """Remembers every bearer token it issues, revoked ones included."""

    def __init__(self, **kw):
        super().__init__(client_id=CLIENT_ID,
                         client_secret=SECRETS["ENV:FERRY_TEST_SAP_CLIENT_SECRET"], **kw)
        self.issued = []

    def _oauth_token(self, h, method, entry):
        status, headers, payload = super()._oauth_token(h, method, entry)
        if status == 200:
            with self.lock:
                self.issued.append(payload["access_token"])
        return status, headers, payload


class SecretsTest(FerryTestCase):
    def setUp(self):
        self.stack = rc.RelStack(
            name="secrets", log_level="trace", secrets=SECRETS,
            bc_factory=BigCommerceSim, sap_factory=TokenRecordingSap,
            bc_extra='client_secret = env("FERRY_TEST_BC_CLIENT_SECRET"), signature = "if-present"',
            webhooks_extra='public_url = "%s"' % PUBLIC_URL)
        self.addCleanup(self.stack.close)
        self.outputs = []

    def cli(self, *args):
        s = self.stack
        code, out = s.cli(*(args[:1] + ("-c", s.config_path) + args[1:]), timeout=120)
        self.outputs.append(("ferry %s (exit %d)" % (" ".join(args), code), out))
        return code, out

    def signed_webhook(self, cid):
        """A delivery signed the Standard Webhooks way with the client secret."""
        s = self.stack
        body = json.dumps({"scope": "store/customer/updated", "store_id": "1000001",
                           "data": {"type": "customer", "id": cid},
                           "hash": hashlib.sha1(b"signed-%d" % cid).hexdigest(),
                           "created_at": int(time.time()), "producer": "stores/teststore"})
        wid, ts = "msg_%d" % cid, str(int(time.time()))
        key = SECRETS["ENV:FERRY_TEST_BC_CLIENT_SECRET"].encode()
        sig = base64.b64encode(hmac.new(key, ("%s.%s.%s" % (wid, ts, body)).encode(),
                                        hashlib.sha256).digest()).decode()
        return s.post_webhook(body.encode(), {"X-Ferry-Secret": SECRETS["webhook_secret"],
                                              "webhook-id": wid, "webhook-timestamp": ts,
                                              "webhook-signature": "v1,%s" % sig})

    def test_no_secret_anywhere(self):
        s = self.stack
        s.start()
        s.register_hook("store/customer/*")

        # Basic phase: creates, an update, a signed and two refused webhooks,
        # retried failures and dead letters.
        s.sap.faults.add({"method": "POST", "path": "ContactCollection", "status": 503,
                          "message": "Service unavailable", "times": 1})
        made = s.create_customers([rc.make_customer(n, "secret") for n in range(1, 6)])
        s.wait_for(lambda: len(s.sap_contacts()) == 5, 60, "five contacts")
        s.sap.expire_csrf()
        s.update_customer(made[0]["id"], last_name="Renamed")
        status, body = self.signed_webhook(made[1]["id"])
        self.assertEqual(status, 200, body)
        for wrong in ("not-the-secret", SECRETS["webhook_secret"][:-1]):
            status, _ = s.post_webhook(b"{}", {"X-Ferry-Secret": wrong})
            self.assertEqual(status, 401)
        s.sap.faults.add({"method": "POST", "path": "ContactCollection", "status": 403,
                          "message": "No authorization to access ContactCollection", "times": 1})
        s.sap.faults.add({"method": "POST", "path": "ContactCollection", "status": 400,
                          "message": "Property Email has an invalid value", "times": 1})
        s.create_customers([rc.make_customer(n, "secret") for n in range(6, 8)])
        s.wait_for(lambda: len([j for j in s.jobs() if j["state"] == rc.DEAD]) == 2, 60,
                   "two dead letters")
        s.wait_drained(timeout=60)
        self.assertEqual(s.stop(), 0)

        # OAuth phase (SAML bearer grant): the token is revoked once under way.
        assertion_path = os.path.join(s.workdir, "assertion.b64")
        with open(assertion_path, "w", encoding="ascii") as fh:
            fh.write(ASSERTION)
        s.sap_extra = ('auth = "oauth", token_url = "%s", client_id = "%s",'
                       ' client_secret = env("FERRY_TEST_SAP_CLIENT_SECRET"),'
                       ' assertion_file = "%s"'
                       % (s.sap.base_url + "/sap/bc/sec/oauth2/token", CLIENT_ID, assertion_path))
        s.write_config()
        s.start()
        s.create_customers([rc.make_customer(n, "secret") for n in range(8, 10)])
        s.wait_for(lambda: len(s.sap_contacts()) == 7, 60, "the OAuth phase's contacts")
        s.sap.revoke_tokens()
        s.update_customer(made[2]["id"], last_name="AfterRevoke")
        s.wait_for(lambda: any(c["LastName"] == "AfterRevoke" for c in s.sap_contacts()), 60,
                   "the update after a revoked token")
        s.wait_drained(timeout=60)
        self.assertGreaterEqual(len(s.sap.issued), 2, "the token was not renewed")

        # The CLI, while the daemon runs and after.
        dead = [j["id"] for j in s.jobs() if j["state"] == rc.DEAD]
        self.assertEqual(len(dead), 2)
        for args in (("status",), ("status", "--json"), ("dlq", "list"), ("dlq", "list", "--json"),
                     ("replay", "--since", "2000-01-01", "--dry-run")):
            code, _ = self.cli(*args)
            self.assertEqual(code, 0, args)
        for job in dead:
            self.assertEqual(self.cli("dlq", "show", str(job))[0], 0)
            self.assertEqual(self.cli("dlq", "show", str(job), "--json")[0], 0)
        self.assertEqual(s.stop(), 0)
        for args in (("plugins",), ("plugins", "--json"), ("check",), ("check", "--json"),
                     ("webhooks",), ("webhooks", "--json")):
            code, _ = self.cli(*args)
            self.assertIn(code, (0, 1), args)   # webhooks may report a difference: exit 1

        # The search.
        needles = {k: v for k, v in SECRETS.items() if k != "sap_user"}
        needles["basic(user:password)"] = base64.b64encode(
            ("%s:%s" % (SECRETS["sap_user"], SECRETS["sap_password"])).encode()).decode()
        needles["basic(client_id:client_secret)"] = base64.b64encode(
            ("%s:%s" % (CLIENT_ID, SECRETS["ENV:FERRY_TEST_SAP_CLIENT_SECRET"])).encode()).decode()
        needles["saml assertion"] = ASSERTION
        for i, tok in enumerate(s.sap.issued):
            needles["bearer token %d" % i] = tok
        places = {"daemon and CLI log": read_bytes(s.log_path)}
        for what, out in self.outputs:
            places["stdout of " + what] = out.encode()
        conn = sqlite3.connect("file:%s?mode=ro" % s.db_path, uri=True)
        try:
            for table in ("audit", "jobs", "links", "plugin_kv", "cursors", "counters",
                          "webhook_seen"):
                rows = conn.execute("SELECT * FROM %s" % table).fetchall()
                places["table " + table] = "\n".join(
                    "\t".join("" if v is None else str(v) for v in r) for r in rows).encode()
            audit_rows = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        finally:
            conn.close()
        for suffix in ("", "-wal"):
            path = s.db_path + suffix
            if os.path.exists(path):
                places["raw file ferry.db%s" % suffix] = read_bytes(path)
        found = []
        for pname, blob in places.items():
            for nname, needle in needles.items():
                n = blob.count(needle.encode())
                if n:
                    found.append("%s: %d x %s" % (pname, n, nname))
        print("\nsearched %d places (%d audit rows, %d CLI outputs) for %d secrets"
              % (len(places), audit_rows, len(self.outputs), len(needles)))
        self.assertEqual(found, [], "secrets found")
        # Sanity: the search does find what is there (a customer's e-mail, not a secret).
        self.assertIn(b"secret000001@example.com", places["table audit"])
        rc.figures("secrets", {"places": len(places), "secrets": len(needles),
                               "audit_rows": audit_rows, "cli_outputs": len(self.outputs),
                               "bearer_tokens": len(s.sap.issued), "occurrences": len(found)})


if __name__ == "__main__":
    main()

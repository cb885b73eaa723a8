#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Self-tests of the SAP Sales Cloud (C4C) simulator: the end-to-end tests
trust it to behave like the real c4codataapi, so the quirks the connector
must handle are pinned here (Basic auth, CSRF bound to the session cookie,
d.results wrapping, string __count, __next/$skiptoken paging over 2,500
contacts, ETag format and 412, read-only properties, $filter errors, the
CLI mode). When FERRY_SPECS holds the tenant EDMX, the simulator's
property flags are cross-checked against it."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from http.cookiejar import CookieJar
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sap_sales_sim import CONTACT_PROPS, SapSalesSim  # noqa: E402
from simcore import http_request  # noqa: E402

USER, PASSWORD = "FERRY_TECH", "pw-123"
ETAG_RE = re.compile(r"^W/\"datetimeoffset'\d{4}-\d\d-\d\dT\d\d%3A\d\d%3A\d\d\.\d{7}Z'\"$")


class Client:
    """A minimal C4C client: Basic auth, a cookie jar, a CSRF token."""

    def __init__(self, root, user=USER, password=PASSWORD):
        self.root = root
        self.auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.token = None

    def call(self, method, path, body=None, headers=None, token=True):
        url = path if path.startswith("http") else self.root + path
        hdrs = {"Authorization": self.auth, "Accept": "application/json"}
        if token and self.token and method != "GET":
            hdrs["x-csrf-token"] = self.token
        hdrs.update(headers or {})
        data = None
        if isinstance(body, bytes):
            data = body
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(url, data=data, method=method)
        for k, v in hdrs.items():
            req.add_header(k, v)
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def fetch_token(self):
        status, headers, _ = self.call("GET", "", headers={"x-csrf-token": "fetch"})
        assert status == 200, status
        self.token = headers["x-csrf-token"]
        return self.token

    def create(self, **fields):
        status, headers, body = self.call("POST", "ContactCollection", fields)
        assert status == 201, (status, body)
        return headers, json.loads(body)["d"]["results"]


class SapSimTest(unittest.TestCase):
    def setUp(self):
        self.sim = SapSalesSim(user=USER, password=PASSWORD).start()
        self.addCleanup(self.sim.stop)
        self.c = Client(self.sim.service_root)

    def test_basic_auth_required(self):
        for client in (Client(self.sim.service_root, password="wrong"),
                       Client(self.sim.service_root, user="OTHER")):
            status, headers, body = client.call("GET", "ContactCollection?$format=json")
            self.assertEqual(status, 401)
            self.assertIn("Basic", headers["WWW-Authenticate"])
            err = json.loads(body)["error"]
            self.assertEqual(err["code"], "")
            self.assertEqual(err["message"]["lang"], "en")
            self.assertTrue(err["message"]["value"])
        r = http_request(self.sim.service_root + "ContactCollection?$format=json")
        self.assertEqual(r.status, 401)

    def test_csrf_required_valid_and_expired(self):
        status, headers, body = self.c.call("POST", "ContactCollection", {"LastName": "X"})
        self.assertEqual(status, 403)
        self.assertEqual(headers["x-csrf-token"], "Required")
        self.assertIn("CSRF token validation failed", json.loads(body)["error"]["message"]["value"])
        token = self.c.fetch_token()
        self.assertNotEqual(token, "Required")
        names = sorted(c.name for c in self.c.jar)
        self.assertEqual(names, ["SAP_SESSIONID_SIM_100", "sap-XSRF_SIM_100"])
        self.assertEqual(self.c.fetch_token(), token, "same session, same token")
        status, _, _ = self.c.call("POST", "ContactCollection", {"LastName": "X"})
        self.assertEqual(status, 201)
        # the token is bound to the session: another session cannot use it
        other = Client(self.sim.service_root)
        other.fetch_token()
        other.token = token
        self.assertEqual(other.call("POST", "ContactCollection", {"LastName": "Y"})[0], 403)
        # a token without any cookie is refused too
        bare = Client(self.sim.service_root)
        bare.token = token
        self.assertEqual(bare.call("POST", "ContactCollection", {"LastName": "Y"})[0], 403)
        http_request(self.sim.base_url + "/__sim/expire_csrf", "POST", {})
        status, headers, _ = self.c.call("POST", "ContactCollection", {"LastName": "Z"})
        self.assertEqual(status, 403)
        self.assertEqual(headers["x-csrf-token"], "Required")
        self.c.fetch_token()
        self.assertEqual(self.c.call("POST", "ContactCollection", {"LastName": "Z"})[0], 201)
        stats = http_request(self.sim.base_url + "/__sim/stats").json()
        self.assertEqual(stats["403"], 4)
        self.assertEqual(stats["csrf_fetch"], 4)
        self.assertEqual(stats["POST"], 6)

    def test_create_and_read_one(self):
        self.c.fetch_token()
        headers, ent = self.c.create(FirstName="Jane", LastName="Smith",
                                     Email="jane@example.com", Phone="+1 555 123")
        self.assertRegex(ent["ObjectID"], r"^[0-9A-F]{32}$")
        self.assertRegex(ent["ContactID"], r"^\d+$")
        self.assertEqual(ent["__metadata"]["type"], "c4codata.Contact")
        self.assertEqual(ent["__metadata"]["uri"],
                         "%sContactCollection('%s')" % (self.sim.service_root, ent["ObjectID"]))
        self.assertRegex(ent["__metadata"]["etag"], ETAG_RE)
        self.assertEqual(headers["etag"], ent["__metadata"]["etag"])
        self.assertEqual(headers["location"], ent["__metadata"]["uri"])
        self.assertRegex(ent["ETag"], r"^/Date\(\d+\)/$")
        self.assertRegex(ent["EntityLastChangedOn"], r"^/Date\(\d+\)/$")
        self.assertRegex(ent["CreationOn"], r"^/Date\(\d+\)/$")
        self.assertEqual(ent["Name"], "Jane Smith")
        status, h2, body = self.c.call("GET", "ContactCollection('%s')?$format=json"
                                       % ent["ObjectID"])
        self.assertEqual(status, 200)
        self.assertIn(b"\\/Date(", body, "raw JSON escapes the slashes like C4C")
        one = json.loads(body)["d"]["results"]
        self.assertEqual(one["Email"], "jane@example.com")
        self.assertEqual(h2["etag"], ent["__metadata"]["etag"])
        status, _, body = self.c.call("GET", "ContactCollection('00163E0000000000000000000000FFFF')"
                                             "?$format=json")
        self.assertEqual(status, 404)
        self.assertIn("error", json.loads(body))
        second = self.c.create(LastName="Two")[1]
        self.assertEqual(int(second["ContactID"]), int(ent["ContactID"]) + 1)

    def test_create_validation(self):
        self.c.fetch_token()
        for body, needle in (({"FirstName": "NoLast"}, "LastName"),
                             ({"LastName": ""}, "LastName"),
                             ({"LastName": "X", "ObjectID": "ABC"}, "ObjectID is read-only"),
                             ({"LastName": "X", "ExternalID": "bc:1"}, "ExternalID is read-only"),
                             ({"LastName": "X", "ETag": "/Date(1)/"}, "ETag is read-only"),
                             ({"LastName": "X", "Bogus": "1"}, "Bogus"),
                             ({"LastName": "X" * 41}, "maximum length")):
            status, _, resp = self.c.call("POST", "ContactCollection", body)
            self.assertEqual(status, 400, body)
            self.assertIn(needle, json.loads(resp)["error"]["message"]["value"])
        self.assertEqual(self.sim.all_contacts(), [])

    def test_patch_etag_and_412(self):
        self.c.fetch_token()
        headers, ent = self.c.create(FirstName="A", LastName="B", Email="a@example.com")
        oid, tag0 = ent["ObjectID"], headers["etag"]
        url = "ContactCollection('%s')" % oid
        status, h, body = self.c.call("PATCH", url, {"LastName": "C"}, {"If-Match": tag0})
        self.assertEqual(status, 204)
        self.assertEqual(body, b"")
        tag1 = h["etag"]
        self.assertRegex(tag1, ETAG_RE)
        self.assertNotEqual(tag1, tag0)
        status, _, body = self.c.call("PATCH", url, {"LastName": "D"}, {"If-Match": tag0})
        self.assertEqual(status, 412)
        self.assertIn("error", json.loads(body))
        # a CRM user edits the contact: our etag goes stale
        r = http_request(self.sim.base_url + "/__sim/modify", "POST",
                         {"ObjectID": oid, "fields": {"Phone": "999"}})
        self.assertEqual(r.status, 200)
        self.assertEqual(self.c.call("PATCH", url, {"FirstName": "Q"}, {"If-Match": tag1})[0], 412)
        # without If-Match the last writer wins
        self.assertEqual(self.c.call("PATCH", url, {"FirstName": "Q"})[0], 204)
        self.assertEqual(self.c.call("PATCH", url, {"ContactID": "1"})[0], 400)
        self.assertEqual(self.c.call("PATCH", url, {"ContactID": ent["ContactID"]})[0], 204)
        self.assertEqual(self.c.call("PATCH", url, {"LastName": None})[0], 400)
        self.assertEqual(self.c.call("PATCH", "ContactCollection('NOPE')", {"FirstName": "x"})[0],
                         404)
        final = self.sim.all_contacts()[0]
        self.assertEqual((final["FirstName"], final["LastName"], final["Phone"]),
                         ("Q", "C", "999"))
        stats = http_request(self.sim.base_url + "/__sim/stats").json()
        self.assertEqual(stats["412"], 2)
        self.assertEqual(stats["PATCH"], 8)
        log = http_request(self.sim.base_url + "/__sim/requests").json()["requests"]
        patches = [e for e in log if e["method"] == "PATCH"]
        self.assertEqual(patches[0]["body"], {"LastName": "C"})
        self.assertEqual(patches[0]["headers"]["if-match"], tag0)
        self.assertEqual(patches[0]["response_etag"], tag1)
        self.assertEqual(log[1]["method"], "POST")
        self.assertEqual(log[1]["response_etag"], tag0)
        self.assertEqual(log[0]["headers"]["authorization"], "<redacted>")

    def test_filter(self):
        self.c.fetch_token()
        self.c.create(FirstName="Ann", LastName="O'Neil", Email="ann@example.com")
        self.c.create(FirstName="Bob", LastName="Smith", Email="bob@example.com")
        self.c.create(FirstName="Ann", LastName="Smith", Email="ann2@example.com")

        def q(flt, extra=""):
            status, _, body = self.c.call(
                "GET", "ContactCollection?$format=json&$filter=%s%s" % (quote(flt), extra))
            return status, json.loads(body)

        status, body = q("Email eq 'bob@example.com'")
        self.assertEqual(status, 200)
        self.assertEqual([e["FirstName"] for e in body["d"]["results"]], ["Bob"])
        self.assertEqual(q("LastName eq 'O''Neil'")[1]["d"]["results"][0]["FirstName"], "Ann")
        self.assertEqual(len(q("FirstName eq 'Ann' and LastName eq 'Smith'")[1]["d"]["results"]), 1)
        self.assertEqual(len(q("Email eq 'ann@example.com' or Email eq 'bob@example.com'")[1]
                             ["d"]["results"]), 2)
        self.assertEqual(len(q("Email eq 'nobody@example.com'")[1]["d"]["results"]), 0)
        self.assertEqual(q("Bogus eq 'x'")[0], 400)
        self.assertEqual(q("ETag eq 'x'")[0], 400)
        self.assertEqual(q("Email eq 'x' or FirstName eq 'y'")[0], 400)
        self.assertEqual(q("Email eq")[0], 400)
        status, body = q("LastName eq 'Smith'", "&$inlinecount=allpages")
        self.assertEqual(body["d"]["__count"], "2")
        self.assertNotIn("__next", body["d"])
        status, body = q("EntityLastChangedOn ge datetimeoffset'2000-01-01T00:00:00Z'")
        self.assertEqual(len(body["d"]["results"]), 3)
        # no JSON requested: the real default, an Atom feed
        status, headers, body = self.c.call("GET", "ContactCollection", headers={"Accept": "*/*"})
        self.assertEqual(status, 200)
        self.assertIn("atom+xml", headers["Content-Type"])
        self.assertIn(b"<m:properties>", body)

    def test_server_paging_over_2500(self):
        r = http_request(self.sim.base_url + "/__sim/contacts", "POST", {"contacts": [
            {"LastName": "L%04d" % i, "Email": "c%04d@example.com" % i} for i in range(2500)]})
        self.assertEqual(r.status, 200)
        url = "ContactCollection?$format=json&$inlinecount=allpages"
        emails, pages = [], 0
        while url:
            status, _, body = self.c.call("GET", url)
            self.assertEqual(status, 200)
            d = json.loads(body)["d"]
            self.assertEqual(d["__count"], "2500")
            emails += [e["Email"] for e in d["results"]]
            pages += 1
            url = d.get("__next")
            if url:
                self.assertTrue(url.startswith(self.sim.service_root + "ContactCollection?"))
                self.assertIn("$skiptoken=", url)
        self.assertEqual(pages, 3)
        self.assertEqual(len(emails), 2500)
        self.assertEqual(len(set(emails)), 2500)
        status, _, body = self.c.call("GET", "ContactCollection?$format=json&$top=10&$skip=2495")
        self.assertEqual(len(json.loads(body)["d"]["results"]), 5)
        status, _, body = self.c.call("GET", "ContactCollection?$format=json&$top=1500")
        d = json.loads(body)["d"]
        self.assertEqual(len(d["results"]), 1000)
        status, _, body = self.c.call("GET", d["__next"])
        d2 = json.loads(body)["d"]
        self.assertEqual(len(d2["results"]), 500)
        self.assertNotIn("__next", d2)

    def test_metadata_and_service_document(self):
        status, _, body = self.c.call("GET", "$metadata")
        self.assertEqual(status, 200)
        self.assertIn(b'<EntityType Name="Contact">', body)
        status, _, body = self.c.call("GET", "")
        self.assertIn("ContactCollection", json.loads(body)["d"]["EntitySets"])

    def test_property_flags_match_tenant_edmx(self):
        specs = os.environ.get("FERRY_SPECS") or os.path.join(HERE, "..", "..", "..", "shared",
                                                              "specs")
        path = os.path.join(specs, "sap", "c4c-odata-v2", "C4C.edmx")
        if not os.path.exists(path):
            self.skipTest("no EDMX at %s" % path)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        m = re.search(r'<EntityType Name="Contact">(.*?)</EntityType>', text, re.S)
        real = {}
        for attrs in re.findall(r"<Property ([^>]*)/>", m.group(1)):
            a = dict(re.findall(r'([\w:]+)="([^"]*)"', attrs))
            real[a["Name"]] = a
        for name, typ, creatable, updatable, filterable, maxlen in CONTACT_PROPS:
            self.assertIn(name, real)
            a = real[name]
            self.assertEqual(a["Type"], typ, name)
            self.assertEqual(a.get("sap:creatable", "true") == "true", creatable, name)
            self.assertEqual(a.get("sap:updatable", "true") == "true", updatable, name)
            self.assertEqual(a.get("sap:filterable", "true") == "true", filterable, name)
            if maxlen:
                self.assertEqual(int(a["MaxLength"]), maxlen, name)


class GenericSetsTest(unittest.TestCase):
    """Every entity set the connector uses, driven by the served $metadata."""

    def setUp(self):
        self.sim = SapSalesSim(user=USER, password=PASSWORD).start()
        self.addCleanup(self.sim.stop)
        self.c = Client(self.sim.service_root)
        self.c.fetch_token()

    def test_entity_sets_from_metadata(self):
        for name in ("CorporateAccountCollection", "IndividualCustomerCollection",
                     "LeadCollection", "OpportunityCollection", "TasksCollection",
                     "PhoneCallCollection", "AppointmentCollection", "CustomerOrderCollection",
                     "SalesQuoteCollection", "ObjectIdentifierMappingCollection",
                     "EmployeeCollection", "OpportunityTextCollectionCollection"):
            status, _, body = self.c.call("GET", name + "?$format=json")
            self.assertEqual(status, 200, (name, body))
            self.assertEqual(json.loads(body)["d"]["results"], [])

    def test_opportunity_create_patch_read_only_and_etag(self):
        st, hdrs, body = self.c.call("POST", "OpportunityCollection", {
            "Name": "Deal", "ProspectPartyID": "1001", "MainEmployeeResponsiblePartyID": "8000"})
        self.assertEqual(st, 201, body)
        ent = json.loads(body)["d"]["results"]        # single entity wrapped in results
        oid = ent["ObjectID"]
        self.assertRegex(hdrs["etag"], ETAG_RE)
        self.assertRegex(ent["EntityLastChangedOn"], r"^/Date\(\d+\)/$")
        st, _, body = self.c.call("POST", "OpportunityCollection", {
            "Name": "D", "ProspectPartyID": "1", "MainEmployeeResponsiblePartyID": "2",
            "ExternalID": "x"})
        self.assertEqual(st, 400)
        self.assertIn("read-only", json.loads(body)["error"]["message"]["value"])
        st, _, body = self.c.call("POST", "OpportunityCollection", {"Name": "D"})
        self.assertEqual(st, 400)                     # mandatory parties missing
        path = "OpportunityCollection('%s')" % oid
        st, _, _ = self.c.call("PATCH", path, {"ExternalID": "bc:1"},
                               headers={"If-Match": hdrs["etag"]})
        self.assertEqual(st, 204)
        st, _, _ = self.c.call("PATCH", path, {"Name": "x"}, headers={"If-Match": hdrs["etag"]})
        self.assertEqual(st, 412)
        st, _, body = self.c.call("PATCH", path, {"ApprovalStatusCode": "3"})
        self.assertEqual(st, 400)
        st, _, body = self.c.call("GET", path + "?$format=json")
        self.assertEqual(json.loads(body)["d"]["results"]["ExternalID"], "bc:1")

    def test_deep_insert_and_expand(self):
        st, _, body = self.c.call("POST", "CustomerOrderCollection", {
            "BuyerPartyID": "1001", "BuyerID": "bc-100",
            "CustomerOrderItem": [{"ProductID": "P1", "Quantity": "2"},
                                  {"ProductID": "P2", "Quantity": "1"}]})
        self.assertEqual(st, 201, body)
        oid = json.loads(body)["d"]["results"]["ObjectID"]
        items = self.sim.entities("CustomerOrderItemCollection")
        self.assertEqual([i["ParentObjectID"] for i in items], [oid, oid])
        st, _, body = self.c.call("GET", "CustomerOrderCollection?$format=json"
                                         "&$expand=CustomerOrderItem")
        got = json.loads(body)["d"]["results"][0]["CustomerOrderItem"]["results"]
        self.assertEqual(len(got), 2)

    def test_delta_filter_paging_and_expand_page(self):
        for i in range(105):
            self.sim.seed("LeadCollection", {"Name": "L%03d" % i})
        st, _, body = self.c.call("GET", "LeadCollection?$format=json&$filter=" + quote(
            "EntityLastChangedOn ge datetimeoffset'2000-01-01T00:00:00Z' and "
            "EntityLastChangedOn le datetimeoffset'2999-01-01T00:00:00Z'")
            + "&$orderby=EntityLastChangedOn&$expand=LeadTextCollection")
        d = json.loads(body)["d"]
        self.assertEqual(st, 200, body)
        self.assertEqual(len(d["results"]), 100)      # 100 rows with $expand
        self.assertIn("$skiptoken=100", d["__next"])
        st, _, body = self.c.call("GET", d["__next"])
        self.assertEqual(len(json.loads(body)["d"]["results"]), 5)
        st, _, _ = self.c.call("GET", "LeadCollection?$format=json&$filter=" + quote(
            "ETag eq datetimeoffset'2000-01-01T00:00:00Z'"))
        self.assertEqual(st, 400)                     # not filterable

    def test_atom_entry_feed_and_error(self):
        ent = self.sim.seed("TasksCollection", {"Subject": "Call back"})
        st, hdrs, body = self.c.call("GET", "TasksCollection('%s')" % ent["ObjectID"],
                                     headers={"Accept": "application/atom+xml"})
        self.assertEqual(st, 200)
        self.assertIn(b"<d:Subject>Call back</d:Subject>", body)
        self.assertIn(b'm:type="Edm.DateTimeOffset"', body)
        st, _, body = self.c.call("GET", "TasksCollection('nope')",
                                  headers={"Accept": "application/xml"})
        self.assertEqual(st, 404)
        self.assertIn(b"<error", body)

    def test_batch_changesets_fail_alone(self):
        b = "batch_t"
        def op(method, path, body):
            data = json.dumps(body)
            return ("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                    "\r\n%s %s HTTP/1.1\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n\r\n%s\r\n" % (method, path, len(data), data))
        def cs(n, *ops):
            out = "--%s\r\nContent-Type: multipart/mixed; boundary=cs%d\r\n\r\n" % (b, n)
            for o in ops:
                out += "--cs%d\r\n%s" % (n, o)
            return out + "--cs%d--\r\n" % n
        payload = (cs(0, op("POST", "ContactCollection", {"LastName": "Ok"}))
                   + cs(1, op("POST", "ContactCollection", {"LastName": "Rolled back"}),
                        op("POST", "ContactCollection", {"FirstName": "no last name"}))
                   + "--%s--\r\n" % b)
        st, hdrs, body = self.c.call("POST", "$batch", payload.encode(), headers={
            "Content-Type": "multipart/mixed; boundary=%s" % b})
        text = body.decode()
        self.assertEqual(st, 202, text)
        self.assertIn("HTTP/1.1 201 Created", text)
        self.assertIn("HTTP/1.1 400 Bad Request", text)
        self.assertEqual([c["LastName"] for c in self.sim.all_contacts()], ["Ok"])

    def test_no_response_payload_answers_by_headers(self):
        """odata-no-response-payload: true (facts section 3): 201 with location and etag only."""
        self.c.fetch_token()
        st, hdrs, body = self.c.call("POST", "ContactCollection", {"LastName": "Quiet"},
                                     headers={"odata-no-response-payload": "true"})
        self.assertEqual(st, 201)
        self.assertEqual(body, b"")
        ent = self.sim.all_contacts()[0]
        self.assertEqual(hdrs["location"], ent["__metadata"]["uri"])
        self.assertEqual(hdrs["etag"], ent["__metadata"]["etag"])
        b = "batch_q"
        data = json.dumps({"LastName": "Quiet too"})
        payload = ("--%s\r\nContent-Type: multipart/mixed; boundary=cs0\r\n\r\n--cs0\r\n"
                   "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
                   "POST ContactCollection HTTP/1.1\r\nodata-no-response-payload: true\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s\r\n"
                   "--cs0--\r\n--%s--\r\n" % (b, len(data), data, b))
        st, _, body = self.c.call("POST", "$batch", payload.encode(), headers={
            "Content-Type": "multipart/mixed; boundary=%s" % b})
        text = body.decode()
        self.assertEqual(st, 202, text)
        second = self.sim.all_contacts()[1]
        self.assertIn("HTTP/1.1 201 Created", text)
        self.assertIn("location: %s" % second["__metadata"]["uri"], text)
        self.assertIn("etag: %s" % second["__metadata"]["etag"], text)
        self.assertNotIn('"ObjectID"', text)

    def test_oauth_token_and_bearer(self):
        cred = base64.b64encode(b"ferry-client:client-secret").decode()
        r = http_request(self.sim.base_url + "/sap/bc/sec/oauth2/token", "POST",
                         "grant_type=client_credentials",
                         {"Authorization": "Basic " + cred,
                          "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 200, r.body)
        tok = r.json()["access_token"]
        r = http_request(self.sim.service_root + "LeadCollection?$format=json",
                         headers={"Authorization": "Bearer " + tok})
        self.assertEqual(r.status, 200)
        self.sim.revoke_tokens()
        r = http_request(self.sim.service_root + "LeadCollection?$format=json",
                         headers={"Authorization": "Bearer " + tok})
        self.assertEqual(r.status, 401)
        r = http_request(self.sim.base_url + "/sap/bc/sec/oauth2/token", "POST",
                         "grant_type=client_credentials", {"Authorization": "Basic eDp5"})
        self.assertEqual(r.status, 401)

    def test_faults_retry_after_and_stale_csrf(self):
        self.sim.faults.add({"path": "LeadCollection", "status": 429, "message": "slow down",
                             "headers": [["Retry-After", "2"]]})
        st, hdrs, _ = self.c.call("GET", "LeadCollection?$format=json")
        self.assertEqual((st, hdrs["Retry-After"]), (429, "2"))
        self.sim.faults.add({"method": "POST", "path": "ContactCollection",
                             "action": "expire_csrf"})
        st, hdrs, _ = self.c.call("POST", "ContactCollection", {"LastName": "X"})
        self.assertEqual((st, hdrs["x-csrf-token"]), (403, "Required"))


class CliTest(unittest.TestCase):
    def test_cli_port_file_and_sigterm(self):
        with tempfile.TemporaryDirectory() as tmp:
            pf = os.path.join(tmp, "port")
            proc = subprocess.Popen([sys.executable, os.path.join(HERE, "sap_sales_sim.py"),
                                     "--port", "0", "--port-file", pf, "--password", "P"],
                                    stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 15
                while not os.path.exists(pf):
                    self.assertIsNone(proc.poll(), "simulator exited early")
                    self.assertLess(time.monotonic(), deadline, "no port file")
                    time.sleep(0.02)
                with open(pf, encoding="ascii") as fh:
                    port = int(fh.read())
                c = Client("http://127.0.0.1:%d/sap/c4c/odata/v1/c4codataapi/" % port,
                           password="P")
                c.fetch_token()
                self.assertEqual(c.call("POST", "ContactCollection", {"LastName": "X"})[0], 201)
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(timeout=15), 0)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stderr.close()


if __name__ == "__main__":
    unittest.main()

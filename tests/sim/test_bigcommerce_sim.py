#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Self-tests of the BigCommerce simulator: the end-to-end tests trust it to
answer like the real API, so its shapes and behaviours are pinned here
(envelopes, paging meta, filters, auth and rate-limit answers, batch limits,
webhooks with their payload and hash, redelivery, seeding, the CLI mode)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bigcommerce_sim import BigCommerceSim  # noqa: E402
from simcore import http_request  # noqa: E402

TOKEN = "test-token-123"


class Receiver:
    """A webhook destination that records what it gets and answers `status`."""

    def __init__(self, status=200):
        self.status = status
        self.got = []
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with outer.lock:
                    outer.got.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body, "path": self.path})
                    status = outer.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()
        self.url = "http://127.0.0.1:%d/webhooks/bigcommerce" % self.srv.server_address[1]

    def close(self):
        self.srv.shutdown()
        self.thread.join()
        self.srv.server_close()


class BigCommerceSimTest(unittest.TestCase):
    def setUp(self):
        self.sim = BigCommerceSim(token=TOKEN, store_hash="abc123", store_id="1025646").start()
        self.addCleanup(self.sim.stop)
        self.api = self.sim.v3_url
        self.auth = {"X-Auth-Token": TOKEN, "Accept": "application/json"}

    def call(self, method, path, body=None, headers=None):
        hdrs = dict(self.auth)
        hdrs.update(headers or {})
        return http_request(self.api + path, method, body, hdrs)

    def create(self, *customers):
        r = self.call("POST", "/customers", list(customers))
        self.assertEqual(r.status, 200, r.body)
        return r.json()["data"]

    def test_create_returns_full_customer_shape(self):
        data = self.create({"email": "jane@example.com", "first_name": "Jane",
                            "last_name": "Smith", "phone": "555-123-4567", "company": "Acme",
                            "addresses": [{"first_name": "Jane", "last_name": "Smith",
                                           "address1": "1 Main St", "city": "Austin",
                                           "state_or_province": "Texas", "postal_code": "78751",
                                           "country_code": "US"}]})
        self.assertEqual(len(data), 1)
        c = data[0]
        for field in ("id", "email", "first_name", "last_name", "company", "phone", "notes",
                      "tax_exempt_category", "customer_group_id", "registration_ip_address",
                      "date_created", "date_modified", "address_count", "attribute_count",
                      "authentication", "accepts_product_review_abandoned_cart_emails",
                      "origin_channel_id", "channel_ids"):
            self.assertIn(field, c)
        self.assertNotIn("addresses", c)
        self.assertRegex(c["date_modified"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(c["authentication"], {"force_password_reset": False})
        self.assertEqual(c["address_count"], 1)
        r = self.call("GET", "/customers?id:in=%d&include=addresses" % c["id"])
        self.assertEqual(r.json()["data"][0]["addresses"][0]["city"], "Austin")
        self.assertEqual(r.json()["data"][0]["addresses"][0]["customer_id"], c["id"])

    def test_create_validation_errors(self):
        r = self.call("POST", "/customers", [{"email": "x@example.com", "first_name": "X"}])
        self.assertEqual(r.status, 422)
        err = r.json()
        self.assertEqual(err["status"], 422)
        self.assertIn("title", err)
        self.assertIn("type", err)
        self.assertIn("0.last_name", err["errors"])
        self.create({"email": "dup@example.com", "first_name": "A", "last_name": "B"})
        r = self.call("POST", "/customers", [{"email": "DUP@example.com", "first_name": "A",
                                              "last_name": "B"}])
        self.assertEqual(r.status, 422)
        self.assertIn("0.email", r.json()["errors"])
        many = [{"email": "m%d@example.com" % i, "first_name": "M", "last_name": "N"}
                for i in range(11)]
        self.assertEqual(self.call("POST", "/customers", many).status, 413)
        self.assertEqual(self.call("POST", "/customers", b"{nope",
                                   {"Content-Type": "application/json"}).status, 400)
        # nothing half-created
        r = self.call("GET", "/customers")
        self.assertEqual(r.json()["meta"]["pagination"]["total"], 1)

    def test_auth_and_rate_limit_headers(self):
        r = http_request(self.api + "/customers", headers={"X-Auth-Token": "wrong"})
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json()["status"], 401)
        r = http_request(self.api + "/customers")
        self.assertEqual(r.status, 401)
        r = self.call("GET", "/customers")
        self.assertEqual(r.status, 200)
        for hdr in ("X-Rate-Limit-Time-Window-Ms", "X-Rate-Limit-Time-Reset-Ms",
                    "X-Rate-Limit-Requests-Quota", "X-Rate-Limit-Requests-Left"):
            self.assertIsNotNone(r.header(hdr), hdr)

    def test_rate_limit_429(self):
        self.sim.quota = 3
        statuses = [self.call("GET", "/customers").status for _ in range(4)]
        self.assertEqual(statuses, [200, 200, 200, 429])
        r = self.call("GET", "/customers")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.header("X-Rate-Limit-Requests-Left"), "0")
        self.assertGreater(int(r.header("X-Rate-Limit-Time-Reset-Ms")), 0)
        self.sim.window_ms = 0   # every request now opens a fresh window
        self.assertEqual(self.call("GET", "/customers").status, 200)

    def test_paging_filters_and_sort(self):
        ids = self.sim.seed(120)
        self.assertEqual(len(ids), 120)
        r = self.call("GET", "/customers?limit=50&page=1&sort=date_modified:asc")
        body = r.json()
        p = body["meta"]["pagination"]
        self.assertEqual((p["total"], p["count"], p["per_page"], p["current_page"],
                          p["total_pages"]), (120, 50, 50, 1, 3))
        self.assertEqual(p["links"]["current"], "?page=1&limit=50")
        self.assertEqual(p["links"]["next"], "?page=2&limit=50")
        self.assertNotIn("previous", p["links"])
        self.assertIn("cursor_pagination", body["meta"])
        r3 = self.call("GET", "/customers?limit=50&page=3&sort=date_modified:asc").json()
        self.assertEqual(r3["meta"]["pagination"]["count"], 20)
        self.assertNotIn("next", r3["meta"]["pagination"]["links"])
        self.assertNotIn("cursor_pagination", r3["meta"])
        seen = []
        for page in (1, 2, 3):
            seen += [c["id"] for c in self.call(
                "GET", "/customers?limit=50&page=%d&sort=date_modified:asc" % page).json()["data"]]
        self.assertEqual(seen, ids)
        self.assertEqual(self.call("GET", "/customers?limit=251").status, 413)
        self.assertEqual(self.call("GET", "/customers?limit=250").status, 200)
        r = self.call("GET", "/customers?email:in=customer0007@example.com,customer0009@example.com")
        self.assertEqual(sorted(c["email"] for c in r.json()["data"]),
                         ["customer0007@example.com", "customer0009@example.com"])
        r = self.call("GET", "/customers?id:in=%d,%d" % (ids[0], ids[5]))
        self.assertEqual([c["id"] for c in r.json()["data"]], [ids[0], ids[5]])
        desc = self.call("GET", "/customers?limit=5&sort=date_modified:desc").json()["data"]
        self.assertEqual(desc[0]["id"], ids[-1])

    def test_date_modified_min_is_inclusive_and_strictly_ordered(self):
        a, b = self.create({"email": "a@example.com", "first_name": "A", "last_name": "A"},
                           {"email": "b@example.com", "first_name": "B", "last_name": "B"})
        self.assertLess(a["date_modified"], b["date_modified"])
        r = self.call("GET", "/customers?date_modified:min=%s" % b["date_modified"])
        self.assertEqual([c["id"] for c in r.json()["data"]], [b["id"]])
        self.sim.touch([a["id"]])
        r = self.call("GET", "/customers?date_modified:min=%s&sort=date_modified:asc"
                      % b["date_modified"])
        self.assertEqual([c["id"] for c in r.json()["data"]], [b["id"], a["id"]])
        r = self.call("GET", "/customers?date_modified:min=not-a-date")
        self.assertEqual(r.status, 422)

    def test_update(self):
        (c,) = self.create({"email": "u@example.com", "first_name": "U", "last_name": "Old"})
        r = self.call("PUT", "/customers", [{"id": c["id"], "last_name": "New"}])
        self.assertEqual(r.status, 200, r.body)
        d = r.json()["data"][0]
        self.assertEqual(d["last_name"], "New")
        self.assertGreater(d["date_modified"], c["date_modified"])
        self.assertEqual(r.json()["meta"], {})
        r = self.call("PUT", "/customers", [{"id": 999999, "last_name": "X"}])
        self.assertEqual(r.status, 422)
        r = self.call("PUT", "/customers", [{"last_name": "X"}])
        self.assertEqual(r.status, 422)

    def test_update_takes_what_customer_put_allows(self):
        (c,) = self.create({"email": "Mixed.Case@example.com", "first_name": "M",
                            "last_name": "C", "origin_channel_id": 1})
        before = dict(self.sim.stats)
        # customer_Put's own example: form fields and the (unchanged) origin channel.
        r = self.call("PUT", "/customers", [{"id": c["id"], "phone": "555-0101",
                                             "customer_group_id": 2, "origin_channel_id": 1,
                                             "form_fields": [{"name": "size", "value": "L"}]}])
        self.assertEqual(r.status, 200, r.body)
        d = r.json()["data"][0]
        self.assertEqual((d["phone"], d["customer_group_id"]), ("555-0101", 2))
        r = self.call("GET", "/customers?id:in=%d&include=formfields" % c["id"])
        self.assertEqual(r.json()["data"][0]["form_fields"], [{"name": "size", "value": "L"}])
        r = self.call("PUT", "/customers", [{"id": c["id"], "origin_channel_id": 2}])
        self.assertEqual(r.status, 422)
        self.assertIn("0.origin_channel_id", r.json()["errors"])
        r = self.call("PUT", "/customers", [{"id": c["id"], "addresses": []}])
        self.assertEqual(r.status, 422)
        r = self.call("PUT", "/customers", [{"id": c["id"], "date_modified": "x"}])
        self.assertEqual(r.status, 422)
        # A PUT that changes nothing still moves date_modified.
        r = self.call("PUT", "/customers", [{"id": c["id"]}])
        self.assertGreater(r.json()["data"][0]["date_modified"], d["date_modified"])
        # email:in matches without regard to case, as e-mail addresses do.
        r = self.call("GET", "/customers?email:in=mixed.case%40example.com")
        self.assertEqual([x["id"] for x in r.json()["data"]], [c["id"]])
        self.assertEqual(self.sim.stats["PUT /stores/abc123/v3/customers"]
                         - before.get("PUT /stores/abc123/v3/customers", 0), 5)
        self.assertEqual(self.sim.stats["POST /stores/abc123/v3/customers"], 1)

    def test_hooks_and_webhook_delivery(self):
        rcv = Receiver()
        self.addCleanup(rcv.close)
        r = self.call("POST", "/hooks", {"scope": "store/customer/*", "destination": rcv.url,
                                         "is_active": True,
                                         "headers": {"X-Ferry-Secret": "s3cret"}})
        self.assertEqual(r.status, 200, r.body)
        hook = r.json()["data"]
        for field in ("id", "client_id", "store_hash", "scope", "destination", "is_active",
                      "headers", "created_at", "updated_at"):
            self.assertIn(field, hook)
        self.assertEqual(r.json()["meta"], {})
        self.assertEqual(self.call("GET", "/hooks").json()["data"][0]["id"], hook["id"])
        self.assertEqual(self.call("POST", "/hooks", {"scope": "x"}).status, 422)
        (c,) = self.create({"email": "w@example.com", "first_name": "W", "last_name": "H"})
        self.call("PUT", "/customers", [{"id": c["id"], "phone": "1"}])
        self.assertTrue(self.sim.wait_deliveries(2, timeout=10))
        self.assertEqual(len(rcv.got), 2)
        first = json.loads(rcv.got[0]["body"])
        self.assertEqual(first["scope"], "store/customer/created")
        self.assertEqual(first["store_id"], "1025646")
        self.assertEqual(first["data"], {"type": "customer", "id": c["id"]})
        self.assertEqual(first["producer"], "stores/abc123")
        self.assertIsInstance(first["created_at"], int)
        self.assertRegex(first["hash"], r"^[0-9a-f]{40}$")
        self.assertEqual(first["hash"],
                         hashlib.sha1(json.dumps(first["data"]).encode()).hexdigest())
        self.assertEqual(rcv.got[0]["headers"]["x-ferry-secret"], "s3cret")
        self.assertIn("application/json", rcv.got[0]["headers"]["content-type"])
        self.assertEqual(json.loads(rcv.got[1]["body"])["scope"], "store/customer/updated")
        # redelivery is byte-identical
        r = http_request(self.sim.base_url + "/__sim/redeliver", "POST", {"index": 0, "times": 2})
        self.assertEqual(r.status, 200)
        self.assertTrue(self.sim.wait_deliveries(4, timeout=10))
        self.assertEqual(rcv.got[2]["body"], rcv.got[0]["body"])
        self.assertEqual(rcv.got[3]["body"], rcv.got[0]["body"])
        dl = http_request(self.sim.base_url + "/__sim/deliveries").json()["deliveries"]
        self.assertEqual([d["status"] for d in dl], [200, 200, 200, 200])
        self.assertEqual(dl[2]["redelivery_of"], 0)
        # seeding never fires hooks
        self.sim.seed(3)
        self.assertTrue(self.sim.wait_deliveries(4, timeout=10))
        self.assertEqual(len(self.sim.public_deliveries()), 4)

    def test_scope_filter_inactive_hook_and_failed_delivery(self):
        rcv = Receiver(status=500)
        self.addCleanup(rcv.close)
        self.call("POST", "/hooks", {"scope": "store/customer/updated", "destination": rcv.url})
        self.call("POST", "/hooks", {"scope": "store/customer/created", "destination": rcv.url,
                                     "is_active": False})
        self.sim.delivery_retries = 1
        self.sim.delivery_retry_delay = 0.01
        (c,) = self.create({"email": "f@example.com", "first_name": "F", "last_name": "F"})
        self.call("PUT", "/customers", [{"id": c["id"], "first_name": "G"}])
        self.assertTrue(self.sim.wait_deliveries(1, timeout=10))
        dl = self.sim.public_deliveries()
        self.assertEqual(len(dl), 1)
        self.assertEqual(dl[0]["scope"], "store/customer/updated")
        self.assertEqual(dl[0]["status"], 500)
        self.assertEqual(dl[0]["attempts"], 2)

    def test_controls_seed_touch_stats(self):
        r = http_request(self.sim.base_url + "/__sim/seed", "POST", {"count": 5})
        self.assertEqual(r.json()["count"], 5)
        custs = http_request(self.sim.base_url + "/__sim/customers").json()["customers"]
        self.assertEqual(custs[0]["email"], "customer0001@example.com")
        self.assertEqual(len(set(c["date_modified"] for c in custs)), 5)
        before = custs[0]["date_modified"]
        r = http_request(self.sim.base_url + "/__sim/touch", "POST", {"ids": [custs[0]["id"]]})
        self.assertEqual(r.json()["touched"], [custs[0]["id"]])
        after = http_request(self.sim.base_url + "/__sim/customers").json()["customers"][0]
        self.assertGreater(after["date_modified"], before)
        self.assertEqual(after["last_name"], custs[0]["last_name"])
        self.call("GET", "/customers")
        stats = http_request(self.sim.base_url + "/__sim/stats").json()["requests"]
        self.assertEqual(stats["GET /stores/abc123/v3/customers"], 1)

    def test_fault_injection(self):
        http_request(self.sim.base_url + "/__sim/faults", "POST",
                     {"method": "GET", "path": "/customers", "status": 503, "times": 1})
        self.assertEqual(self.call("GET", "/customers").status, 503)
        self.assertEqual(self.call("GET", "/customers").status, 200)

    # -- objects added for issue 3 -------------------------------------------------

    def v2(self, path):
        return http_request("%s/stores/abc123/v2%s" % (self.sim.base_url, path), headers=self.auth)

    def b2b(self, path, headers=None):
        hdrs = {"X-Auth-Token": TOKEN, "X-Store-Hash": "abc123"}
        hdrs.update(headers or {})
        return http_request(self.sim.base_url + "/api/v3/io" + path, headers=hdrs)

    def test_v2_orders_rfc2822_money_strings_and_204(self):
        (c,) = self.create({"email": "o@example.com", "first_name": "O", "last_name": "P"})
        ids = self.sim.seed_orders(3, [c["id"]])
        guest = self.sim.add_order(customer_id=0, status_id=0, fire=False)
        r = self.v2("/orders?sort=date_modified&limit=2&page=1")
        self.assertEqual(r.status, 200)
        page = r.json()
        self.assertIsInstance(page, list)
        self.assertEqual([o["id"] for o in page], ids[:2])
        self.assertRegex(page[0]["date_modified"], r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} "
                                                   r"\d{2}:\d{2}:\d{2} \+0000$")
        self.assertRegex(page[0]["total_inc_tax"], r"^\d+\.\d{4}$")
        self.assertEqual(page[0]["products"]["resource"], "/orders/%d/products" % ids[0])
        r = self.v2("/orders?sort=date_modified&limit=2&page=3")
        self.assertEqual((r.status, r.body), (204, b""))
        since = page[1]["date_modified"]
        r = self.v2("/orders?min_date_modified=%s&sort=date_modified" % since.replace(
            " ", "%20").replace(",", "%2C").replace("+", "%2B"))
        self.assertEqual([o["id"] for o in r.json()], ids[1:] + [guest])
        o = self.v2("/orders/%d" % guest).json()
        self.assertEqual((o["customer_id"], o["status_id"]), (0, 0))
        self.assertTrue(o["billing_address"]["email"].startswith("guest"))
        self.assertEqual(len(self.v2("/orders/%d/products" % guest).json()), 1)
        self.assertEqual(self.v2("/orders/%d/products?page=2" % guest).status, 204)
        r = self.v2("/orders/99999")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()[0]["status"], 404)

    def test_bounds_a_keyset_poll_reads_one_second_with(self):
        """The filters the connector reads one crowded second with: both date
        bounds on customers, orders and products, min_id on orders, and
        minModified/maxModified on B2B companies."""
        ids = self.sim.seed(4)
        self.sim.backdate(ids[1:3], 1715681100)
        r = self.call("GET", "/customers?date_modified:min=2024-05-14T10:05:00Z"
                             "&date_modified:max=2024-05-14T10:05:00Z&sort=date_modified:asc")
        self.assertEqual([c["id"] for c in r.json()["data"]], ids[1:3])
        self.assertEqual(r.json()["meta"]["pagination"]["total"], 2)
        oids = self.sim.seed_orders(4)
        with self.sim.lock:
            for oid in oids[:3]:
                self.sim.orders[oid]["date_modified"] = 1715681100
        rfc = "Tue%2C%2014%20May%202024%2010:05:00%20%2B0000"
        r = self.v2("/orders?min_date_modified=%s&max_date_modified=%s&sort=id&limit=2&page=1"
                    "&min_id=%d" % (rfc, rfc, oids[0] + 1))
        self.assertEqual([o["id"] for o in r.json()], oids[1:3])
        r = self.v2("/orders?max_id=%d&sort=id" % oids[1])
        self.assertEqual([o["id"] for o in r.json()], oids[:2])
        self.assertEqual(self.v2("/orders?min_id=x").status, 400)
        p1 = self.sim.add_product("A", "A-1", 10.0)
        self.sim.add_product("B", "B-1", 11.0)
        with self.sim.lock:
            self.sim.products[p1]["date_modified"] = 1715681100
        r = self.call("GET", "/catalog/products?date_modified:max=2024-05-14T10:05:00Z")
        self.assertEqual([p["id"] for p in r.json()["data"]], [p1])
        self.assertEqual(self.call("GET", "/catalog/products?date_modified:max=x").status, 422)
        a = self.sim.upsert_company()
        b = self.sim.upsert_company()
        self.sim.upsert_company()
        with self.sim.lock:
            self.sim.companies[a]["updatedAt"] = 1715681099
            self.sim.companies[b]["updatedAt"] = 1715681100
        # user.yaml: "later than" minModified, "earlier than" maxModified.
        r = self.b2b("/companies?minModified=1715681099&maxModified=1715681101&sortBy=updatedAt"
                     "&orderBy=ASC").json()
        self.assertEqual([c["companyId"] for c in r["data"]], [b])
        self.assertEqual(r["meta"]["pagination"]["totalCount"], 1)

    def test_v2_orders_count_by_customer_and_id(self):
        (c,) = self.create({"email": "n@example.com", "first_name": "N", "last_name": "Q"})
        ids = self.sim.seed_orders(3, [c["id"]])
        self.sim.add_order(customer_id=0, fire=False)
        r = self.v2("/orders/count?customer_id=%d&max_id=%d" % (c["id"], ids[2] - 1))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["count"], 2)
        self.assertIsInstance(r.json()["statuses"], list)
        self.assertEqual(self.v2("/orders/count").json()["count"], 4)
        self.assertEqual(self.v2("/orders/count?max_id=x").status, 400)

    def test_refunds_carts_addresses_and_events(self):
        rcv = Receiver()
        self.addCleanup(rcv.close)
        for scope in ("store/order/*", "store/cart/abandoned", "store/customer/address/*"):
            self.assertEqual(self.call("POST", "/hooks", {"scope": scope, "destination": rcv.url,
                                                          "headers": {"X-S": "v"}}).status, 200)
        (c,) = self.create({"email": "r@example.com", "first_name": "R", "last_name": "S"})
        oid = self.sim.add_order(customer_id=c["id"])
        self.sim.set_order_status(oid, 2)
        rid = self.sim.add_refund(oid, 10.5)
        cart_id, token = self.sim.abandon_cart(c["id"], "r@example.com")
        aid = self.sim.upsert_address(c["id"])
        self.assertTrue(self.sim.wait_deliveries(6))
        scopes = [json.loads(g["body"])["scope"] for g in rcv.got]
        self.assertEqual(sorted(scopes), sorted([
            "store/order/created", "store/order/updated", "store/order/statusUpdated",
            "store/order/refund/created", "store/cart/abandoned",
            "store/customer/address/created"]))
        by = {json.loads(g["body"])["scope"]: json.loads(g["body"])["data"] for g in rcv.got}
        self.assertEqual(by["store/order/statusUpdated"]["status"],
                         {"previous_status_id": 11, "new_status_id": 2})
        self.assertEqual(by["store/order/refund/created"]["refund"], {"refund_id": rid})
        self.assertEqual(by["store/cart/abandoned"], {"type": "cart", "id": cart_id,
                                                      "token": token})
        self.assertEqual(by["store/customer/address/created"],
                         {"type": "customer", "id": aid, "address": {"customer_id": c["id"]}})
        r = self.call("GET", "/orders/%d/payment_actions/refunds" % oid).json()
        self.assertEqual(r["data"][0]["total_amount"], 10.5)
        self.assertRegex(r["data"][0]["created"], r"\+00:00$")
        r = self.call("GET", "/orders/payment_actions/refunds?created:min=2000-01-01T00:00:00Z")
        self.assertEqual(len(r.json()["data"]), 1)
        self.assertEqual(self.call("GET", "/abandoned-carts/" + token).json()["data"],
                         {"cart_id": cart_id})
        self.assertEqual(self.call("GET", "/carts/" + cart_id).json()["data"]["email"],
                         "r@example.com")
        r = self.call("GET", "/customers/addresses?id:in=%d" % aid).json()
        self.assertEqual(r["data"][0]["customer_id"], c["id"])

    def test_b2b_envelope_paging_quota(self):
        co = self.sim.upsert_company()
        self.sim.upsert_company(companyName="Second")
        self.sim.upsert_company(co, companyStatus="3")
        uid = self.sim.upsert_company_user(co, 5)
        r = self.b2b("/companies?sortBy=updatedAt&orderBy=ASC&isIncludeExtraFields=1&limit=1")
        self.assertEqual(r.status, 200)
        body = r.json()
        self.assertEqual(body["meta"]["pagination"], {"limit": 1, "offset": 0, "totalCount": 2})
        self.assertIn("extraFields", body["data"][0])
        self.assertIsNotNone(r.header("X-Requests-Remaining"))
        self.assertIsNotNone(r.header("X-Request-Window-Resets-After"))
        last = self.b2b("/companies?sortBy=updatedAt&orderBy=ASC&limit=1&offset=1").json()
        self.assertEqual(last["data"][0]["companyId"], co)
        self.assertEqual(last["data"][0]["companyStatus"], "3")
        self.assertEqual(self.b2b("/users/%d" % uid).json()["data"]["customerId"], 5)
        self.assertEqual(self.b2b("/users/1").status, 404)
        self.assertEqual(self.b2b("/companies", {"X-Store-Hash": "other"}).status, 500)
        self.sim.b2b_quota = 0
        self.assertEqual(self.b2b("/companies").status, 429)
        self.assertEqual(self.sim.b2b_limited, 1)

    def test_hooks_paging_and_reactivation(self):
        for i in range(3):
            self.call("POST", "/hooks", {"scope": "store/order/created",
                                         "destination": "https://x%d.example/h" % i})
        r = self.call("GET", "/hooks?page=2&limit=2").json()
        self.assertEqual(len(r["data"]), 1)
        self.assertEqual(r["meta"]["pagination"]["total_pages"], 2)
        hid = r["data"][0]["id"]
        self.assertEqual(self.call("PUT", "/hooks/%d" % hid, {"is_active": False}).status, 200)
        self.assertEqual(len(self.call("GET", "/hooks?is_active=false").json()["data"]), 1)
        self.assertEqual(self.call("PUT", "/hooks/%d" % hid, {}).status, 422)


class CliTest(unittest.TestCase):
    def test_cli_port_file_and_sigterm(self):
        with tempfile.TemporaryDirectory() as tmp:
            pf = os.path.join(tmp, "port")
            proc = subprocess.Popen([sys.executable, os.path.join(HERE, "bigcommerce_sim.py"),
                                     "--port", "0", "--port-file", pf, "--token", "T"],
                                    stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 15
                while not os.path.exists(pf):
                    self.assertIsNone(proc.poll(), "simulator exited early")
                    self.assertLess(time.monotonic(), deadline, "no port file")
                    time.sleep(0.02)
                with open(pf, encoding="ascii") as fh:
                    port = int(fh.read())
                r = http_request("http://127.0.0.1:%d/stores/teststore/v3/customers" % port,
                                 headers={"X-Auth-Token": "T"})
                self.assertEqual(r.status, 200)
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(timeout=15), 0)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stderr.close()


if __name__ == "__main__":
    unittest.main()

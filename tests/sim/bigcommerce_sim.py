#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stateful BigCommerce store on loopback: v3 customers and addresses, v2
orders with products and shipping addresses, v3 refunds, carts and
abandoned carts, catalog products, B2B Edition companies, users and
addresses, v3 hooks and a webhook sender, with the wire shapes of the real
API.

It exists so that the daemon's real BigCommerce connector can be driven end
to end without a store: the connector cannot tell this server from
api.bigcommerce.com except by its address. Shapes follow
reference/customers.v3.yml and reference/webhooks.v3.yml of the vendor specs
(envelopes, pagination meta, v3 error bodies, rate-limit headers, webhook
payloads with their sha1 `hash`).

Time: date_created/date_modified come from a simulator clock that advances
at least one second per modification, so `date_modified` strictly orders
changes even when a test makes many in the same wall-clock second (the real
API has one-second resolution, and a delta poll keyed on it needs ordering).

Quotas: the store API and the B2B API each count requests per window
(`quota` per `window_ms`, `b2b_quota` per `b2b_window_ms`) and answer 429
with the reset headers when a window is used up; `limited` counts those.

Test controls live under /__sim/ (deliveries, redeliver, seed, seed_orders,
touch, backdate, stats, faults, config, and the store events: order, order_status,
refund, abandon_cart, address, company, company_user, company_address);
they need no auth and are never rate limited.

Usage as a program:
  python3 tests/sim/bigcommerce_sim.py --port 0 --port-file F --token T
"""

import base64
import calendar
import email.utils
import hashlib
import json
import os
import queue
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qsl, urlsplit, urlencode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simcore import SimBase, SimHandler, base_arg_parser, json_body, run_cli  # noqa: E402

ERROR_TYPE = "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes"
MAX_LIMIT = 250
MAX_BATCH = 10

# Fields a client may set on POST / change on PUT (read-only ones are refused):
# customer_Post and customer_Put of customers.v3.yml. Sub-resources are POST
# only; origin_channel_id is in customer_Put but "immutable", so a PUT may
# repeat it, not change it.
WRITABLE = {
    "email": str, "first_name": str, "last_name": str, "company": str, "phone": str,
    "notes": str, "tax_exempt_category": str, "customer_group_id": int,
    "accepts_product_review_abandoned_cart_emails": bool, "channel_ids": (list, type(None)),
    "authentication": dict, "store_credit_amounts": list, "form_fields": list,
}
POST_ONLY = {"origin_channel_id": int, "addresses": list, "attributes": list,
             "trigger_account_created_notification": bool}
READ_ONLY = {"date_created", "date_modified", "registration_ip_address", "address_count",
             "attribute_count"}
STATUS_NAMES = ["Incomplete", "Pending", "Shipped", "Partially Shipped", "Refunded", "Cancelled",
                "Declined", "Awaiting Payment", "Awaiting Pickup", "Awaiting Shipment",
                "Completed", "Awaiting Fulfillment", "Manual Verification Required", "Disputed",
                "Partially Refunded"]
MAX_LEN = {"email": 255, "first_name": 100, "last_name": 100, "company": 255, "phone": 50,
           "tax_exempt_category": 255}


def rfc2822(ts):
    """v2 order dates: RFC 2822, always UTC, "+0000" (facts 5.2)."""
    return email.utils.formatdate(ts, usegmt=False).replace("-0000", "+0000")


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$")


def parse_iso(text):
    """Parses the date forms BigCommerce accepts in filters; None if invalid."""
    m = _ISO_RE.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, tz = m.groups()
    ts = calendar.timegm((int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0)))
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        ts -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return ts


def v3_error(status, title, errors=None):
    body = {"status": status, "title": title, "type": ERROR_TYPE}
    if errors is not None:
        body["errors"] = errors
    return body


def scope_matches(pattern, scope):
    if pattern == scope:
        return True
    if pattern.endswith("/*"):
        return scope.startswith(pattern[:-1])
    return False


class BigCommerceHandler(SimHandler):
    def do_GET(self):  # noqa: N802
        self.server.sim.dispatch(self, "GET")

    def do_POST(self):  # noqa: N802
        self.server.sim.dispatch(self, "POST")

    def do_PUT(self):  # noqa: N802
        self.server.sim.dispatch(self, "PUT")

    def do_DELETE(self):  # noqa: N802
        self.server.sim.dispatch(self, "DELETE")


class BigCommerceSim(SimBase):
    handler_class = BigCommerceHandler
    name = "bigcommerce-sim"

    def __init__(self, token="sim-token", store_hash="teststore", store_id="1000001",
                 client_id="ferrysimclient0000000000000000", quota=1000000, window_ms=30000,
                 b2b_quota=1000000, b2b_window_ms=60000,
                 delivery_retries=0, delivery_retry_delay=0.2, delivery_timeout=10.0, **kw):
        super().__init__(**kw)
        self.token = token
        self.store_hash = store_hash
        self.store_id = str(store_id)
        self.client_id = client_id
        self.quota = quota
        self.window_ms = window_ms
        self.delivery_retries = delivery_retries
        self.delivery_retry_delay = delivery_retry_delay
        self.delivery_timeout = delivery_timeout
        self.lock = threading.RLock()
        self.customers = {}          # id -> customer dict (without `addresses`)
        self.addresses = {}          # customer id -> list of address dicts
        self.next_id = 1
        self.next_address_id = 1
        self.seeded = 0
        self.hooks = {}
        self.next_hook_id = 18048287
        self.clock = 0
        self.stats = {}
        self.window_start = time.monotonic()
        self.window_used = 0
        self.limited = 0
        self.b2b_quota = b2b_quota
        self.b2b_window_ms = b2b_window_ms
        self.b2b_window_start = time.monotonic()
        self.b2b_window_used = 0
        self.b2b_limited = 0
        self.orders = {}             # id -> order (dates as Unix seconds)
        self.order_products = {}     # order id -> [line]
        self.order_shipping = {}     # order id -> [shipping address]
        self.next_order_id = 100
        self.refunds = {}            # refund id -> refund
        self.next_refund_id = 1
        self.carts = {}              # cart id -> cart
        self.cart_tokens = {}        # token -> cart id
        self.products = {}           # id -> product
        self.companies = {}          # id -> company
        self.company_users = {}      # id -> user
        self.company_addresses = {}  # id -> address
        self.next_b2b_id = 1000
        self.deliveries = []
        self.delivery_cond = threading.Condition(self.lock)
        self._outbox = queue.Queue()
        self._sender = None
        self._stopping = threading.Event()

    # -- lifecycle --------------------------------------------------------

    def on_start(self):
        self._sender = threading.Thread(target=self._send_loop, name="bc-sim-webhooks")
        self._sender.start()

    def on_stop(self):
        # Queued deliveries are abandoned (recorded as such), not sent, so
        # that stopping never waits on a destination that is already gone.
        self._stopping.set()
        self._outbox.put(None)
        self._sender.join()

    @property
    def api_base(self):
        """What the connector's api_base config should be."""
        return self.base_url

    @property
    def v3_url(self):
        return "%s/stores/%s/v3" % (self.base_url, self.store_hash)

    # -- clock ------------------------------------------------------------

    def tick(self):
        """Next modification time: never earlier than now, always > the last."""
        with self.lock:
            self.clock = max(int(time.time()), self.clock + 1)
            return self.clock

    # -- rate limit -------------------------------------------------------

    def _rate_b2b(self):
        """B2B Edition's own quota and header names (facts 3)."""
        with self.lock:
            now = time.monotonic()
            elapsed_ms = (now - self.b2b_window_start) * 1000.0
            if elapsed_ms >= self.b2b_window_ms:
                self.b2b_window_start = now
                self.b2b_window_used = 0
                elapsed_ms = 0.0
            allowed = self.b2b_window_used < self.b2b_quota
            if allowed:
                self.b2b_window_used += 1
            else:
                self.b2b_limited += 1
            left = max(0, self.b2b_quota - self.b2b_window_used)
            reset_s = max(0.001, (self.b2b_window_ms - elapsed_ms) / 1000.0)
        return allowed, [
            ("X-Requests-Allocated", "%d times/%d s" % (self.b2b_quota,
                                                        self.b2b_window_ms // 1000)),
            ("X-Requests-Remaining", str(left)),
            ("X-Request-Window-Resets-After", "%.3f" % reset_s),
            ("X-Requests-Window-Length", str(self.b2b_window_ms // 1000)),
        ]

    def _rate(self):
        """Consumes one request; returns (allowed, headers)."""
        with self.lock:
            now = time.monotonic()
            elapsed_ms = (now - self.window_start) * 1000.0
            if elapsed_ms >= self.window_ms:
                self.window_start = now
                self.window_used = 0
                elapsed_ms = 0.0
            allowed = self.window_used < self.quota
            if allowed:
                self.window_used += 1
            else:
                self.limited += 1
            left = max(0, self.quota - self.window_used)
            reset_ms = max(1, int(self.window_ms - elapsed_ms))
        headers = [
            ("X-Rate-Limit-Time-Window-Ms", str(self.window_ms)),
            ("X-Rate-Limit-Time-Reset-Ms", str(reset_ms)),
            ("X-Rate-Limit-Requests-Quota", str(self.quota)),
            ("X-Rate-Limit-Requests-Left", str(left)),
        ]
        if not allowed:
            headers.append(("X-Retry-After", str(max(1, (reset_ms + 999) // 1000))))
        return allowed, headers

    # -- routing ----------------------------------------------------------

    def dispatch(self, h, method):
        parts = urlsplit(h.path)
        path = parts.path
        query = parse_qsl(parts.query, keep_blank_values=True)
        with self.lock:
            key = "%s %s" % (method, path)
            self.stats[key] = self.stats.get(key, 0) + 1
        if path.startswith("/__sim/"):
            return self._control(h, method, path, query)
        if path.startswith("/api/v3/io/"):
            return self._b2b(h, method, path[len("/api/v3/io"):], query)
        allowed, rl = self._rate()
        fault = self.faults.take(method, path)
        if fault:
            if fault["delay_ms"]:
                time.sleep(fault["delay_ms"] / 1000.0)
            if fault["status"]:
                return h.send_json(fault["status"], v3_error(fault["status"], fault.get(
                    "title", "Injected failure")), rl)
        if h.headers.get("X-Auth-Token") != self.token:
            return h.send_json(401, v3_error(
                401, "The request was not authorized. Check the X-Auth-Token header."), rl)
        if not allowed:
            return h.send_json(429, v3_error(
                429, "Too many requests; the rate limit for this store was reached."), rl)
        m = re.match(r"^/stores/([^/]+)/(v2|v3)(/.*)?$", path)
        if not m:
            return h.send_json(404, v3_error(404, "The requested resource was not found."), rl)
        if m.group(1) != self.store_hash:
            return h.send_json(403, v3_error(403, "You don't have a required scope to access "
                                                  "the endpoint"), rl)
        sub = (m.group(3) or "").rstrip("/")
        if m.group(2) == "v2":
            return self._v2(h, method, sub, dict(query), rl)
        q = dict(query)
        if method == "GET":
            if sub == "/customers/addresses":
                return self._list_addresses(h, q, rl)
            if sub == "/orders/payment_actions/refunds":
                return self._list_refunds(h, q, None, rl)
            rm = re.match(r"^/orders/(\d+)/payment_actions/refunds$", sub)
            if rm:
                return self._list_refunds(h, q, int(rm.group(1)), rl)
            cm = re.match(r"^/carts/([0-9a-fA-F-]+)$", sub)
            if cm:
                with self.lock:
                    cart = self.carts.get(cm.group(1))
                    cart = json.loads(json.dumps(cart)) if cart else None
                if cart is None:
                    return h.send_json(404, v3_error(404, "Cart not found"), rl)
                return h.send_json(200, {"data": cart, "meta": {}}, rl)
            am = re.match(r"^/abandoned-carts/([0-9a-fA-F]+)$", sub)
            if am:
                with self.lock:
                    cid = self.cart_tokens.get(am.group(1))
                if cid is None:
                    return h.send_json(404, v3_error(404, "Abandoned cart not found"), rl)
                return h.send_json(200, {"data": {"cart_id": cid}, "meta": {}}, rl)
            if sub == "/catalog/products":
                return self._list_products(h, q, rl)
            pm = re.match(r"^/catalog/products/(\d+)$", sub)
            if pm:
                with self.lock:
                    prod = self.products.get(int(pm.group(1)))
                    prod = self._render_product(prod) if prod else None
                if prod is None:
                    return h.send_json(404, v3_error(404, "Product not found"), rl)
                return h.send_json(200, {"data": prod, "meta": {}}, rl)
        if sub == "/customers":
            if method == "GET":
                return self._list_customers(h, query, rl)
            if method == "POST":
                return self._create_customers(h, rl)
            if method == "PUT":
                return self._update_customers(h, rl)
            if method == "DELETE":
                return self._delete_customers(h, query, rl)
        elif sub == "/hooks":
            if method == "GET":
                return self._list_hooks(h, q, rl)
            if method == "POST":
                return self._create_hook(h, rl)
        else:
            hm = re.match(r"^/hooks/(\d+)$", sub)
            if hm:
                return self._one_hook(h, method, int(hm.group(1)), rl)
        return h.send_json(404, v3_error(404, "The requested resource was not found."), rl)

    # -- customers --------------------------------------------------------

    def _render(self, cust, includes):
        out = dict(cust)
        out["date_created"] = iso(cust["date_created"])
        out["date_modified"] = iso(cust["date_modified"])
        out["authentication"] = dict(cust["authentication"])
        out["address_count"] = len(self.addresses.get(cust["id"], []))
        if "addresses" in includes:
            out["addresses"] = [dict(a) for a in self.addresses.get(cust["id"], [])][:10]
        out.pop("store_credit_amounts", None)
        out.pop("form_fields", None)
        if "storecredit" in includes:
            out["store_credit_amounts"] = [dict(x) for x in
                                           cust.get("store_credit_amounts") or [{"amount": 0}]]
        if "attributes" in includes:
            out["attributes"] = []
        if "formfields" in includes:
            out["form_fields"] = [dict(x) for x in cust.get("form_fields") or []]
        return out

    def _list_customers(self, h, query, rl):
        q = {}
        for k, v in query:
            q[k] = v
        try:
            page = int(q.get("page", "1"))
            limit = int(q.get("limit", "50"))
        except ValueError:
            return h.send_json(422, v3_error(422, "Invalid paging parameter"), rl)
        if limit > MAX_LIMIT:
            return h.send_json(413, v3_error(
                413, "The limit parameter may not exceed %d." % MAX_LIMIT), rl)
        if page < 1 or limit < 1:
            return h.send_json(422, v3_error(422, "page and limit must be positive"), rl)
        includes = set(x for x in q.get("include", "").split(",") if x)
        with self.lock:
            rows = list(self.customers.values())
            if "id:in" in q:
                try:
                    ids = set(int(x) for x in q["id:in"].split(",") if x.strip())
                except ValueError:
                    return h.send_json(422, v3_error(422, "id:in must be integers"), rl)
                rows = [c for c in rows if c["id"] in ids]
            if "email:in" in q:
                emails = set(x.strip().lower() for x in q["email:in"].split(","))
                rows = [c for c in rows if c["email"].lower() in emails]
            if "name:in" in q:
                names = set(x.strip().lower() for x in q["name:in"].split(","))
                rows = [c for c in rows
                        if ("%s %s" % (c["first_name"], c["last_name"])).lower() in names]
            for fld in ("date_modified", "date_created"):
                for suffix, op in (("", "eq"), (":min", "ge"), (":max", "le")):
                    if fld + suffix not in q:
                        continue
                    bound = parse_iso(q[fld + suffix])
                    if bound is None:
                        return h.send_json(422, v3_error(
                            422, "Invalid date for %s%s" % (fld, suffix)), rl)
                    if op == "eq":
                        rows = [c for c in rows if c[fld] == bound]
                    elif op == "ge":
                        rows = [c for c in rows if c[fld] >= bound]
                    else:
                        rows = [c for c in rows if c[fld] <= bound]
            sort = q.get("sort", "id:asc")
            field, _, direction = sort.partition(":")
            if field not in ("id", "date_created", "date_modified", "last_name"):
                return h.send_json(422, v3_error(422, "Invalid sort field %s" % field), rl)
            rows.sort(key=lambda c: (c[field], c["id"]), reverse=(direction == "desc"))
            total = len(rows)
            total_pages = (total + limit - 1) // limit if total else 0
            chunk = rows[(page - 1) * limit:page * limit]
            data = [self._render(c, includes) for c in chunk]
        links = {"current": "?page=%d&limit=%d" % (page, limit)}
        if page > 1:
            links["previous"] = "?page=%d&limit=%d" % (page - 1, limit)
        if page < total_pages:
            links["next"] = "?page=%d&limit=%d" % (page + 1, limit)
        meta = {"pagination": {"total": total, "count": len(data), "per_page": limit,
                               "current_page": page, "total_pages": total_pages,
                               "links": links}}
        if page == 1 and data:
            start = base64.b64encode(b"id:%d" % data[0]["id"]).decode()
            end = base64.b64encode(b"id:%d" % data[-1]["id"]).decode()
            cp = {"count": len(data), "per_page": limit, "start_cursor": start,
                  "end_cursor": end, "links": {}}
            if total > len(data):
                cp["links"]["next"] = "?" + urlencode({"limit": limit, "after": end})
            meta["cursor_pagination"] = cp
        return h.send_json(200, {"data": data, "meta": meta}, rl)

    def _check_fields(self, idx, item, allowed, errors):
        for k, v in item.items():
            if k == "id":
                continue
            if k in READ_ONLY:
                errors["%d.%s" % (idx, k)] = "%s is a read-only field" % k
                continue
            typ = allowed.get(k)
            if typ is None:
                continue   # unknown fields are ignored, as the real API does
            if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
                errors["%d.%s" % (idx, k)] = "%s has the wrong type" % k
            elif isinstance(v, str) and k in MAX_LEN and len(v) > MAX_LEN[k]:
                errors["%d.%s" % (idx, k)] = "%s is longer than %d" % (k, MAX_LEN[k])

    def _create_customers(self, h, rl, fire=True):
        body, err = json_body(h)
        if err:
            return h.send_json(400, v3_error(400, "Input is invalid: " + err), rl)
        if not isinstance(body, list):
            return h.send_json(422, v3_error(422, "The request body must be an array"), rl)
        if len(body) > MAX_BATCH:
            return h.send_json(413, v3_error(
                413, "The request payload is too large. The maximum number of items "
                     "allowed in the array is %d." % MAX_BATCH), rl)
        errors = {}
        allowed = dict(WRITABLE)
        allowed.update(POST_ONLY)
        with self.lock:
            seen = set(c["email"].lower() for c in self.customers.values())
            for i, item in enumerate(body):
                if not isinstance(item, dict):
                    errors[str(i)] = "item must be an object"
                    continue
                for req in ("email", "first_name", "last_name"):
                    v = item.get(req)
                    if not isinstance(v, str) or not v.strip():
                        errors["%d.%s" % (i, req)] = "error.path.missing"
                self._check_fields(i, item, allowed, errors)
                email = item.get("email")
                if isinstance(email, str) and email.strip():
                    if "@" not in email:
                        errors["%d.email" % i] = "email is not a valid address"
                    elif email.lower() in seen:
                        errors["%d.email" % i] = ("The email address %s is already in use"
                                                  % email)
                    seen.add(email.lower())
            if errors:
                return h.send_json(422, v3_error(422, "Create customers failed.", errors), rl)
            created = [self._insert(item) for item in body]
            data = [self._render(c, set()) for c in created]
        if fire:
            for c in created:
                self._fire("store/customer/created", c["id"])
        return h.send_json(200, {"data": data, "meta": {}}, rl)

    def _insert(self, item, ts=None):
        """Adds one customer; caller holds the lock and validated `item`."""
        ts = ts if ts is not None else self.tick()
        cid = self.next_id
        self.next_id += 1
        auth = item.get("authentication") or {}
        cust = {
            "id": cid,
            "email": item["email"],
            "first_name": item["first_name"],
            "last_name": item["last_name"],
            "company": item.get("company", ""),
            "phone": item.get("phone", ""),
            "notes": item.get("notes", ""),
            "tax_exempt_category": item.get("tax_exempt_category", ""),
            "customer_group_id": item.get("customer_group_id", 0),
            "registration_ip_address": "",
            "date_created": ts,
            "date_modified": ts,
            "address_count": 0,
            "attribute_count": len(item.get("attributes") or []),
            "authentication": {"force_password_reset": bool(auth.get("force_password_reset"))},
            "accepts_product_review_abandoned_cart_emails":
                item.get("accepts_product_review_abandoned_cart_emails", False),
            "origin_channel_id": item.get("origin_channel_id", 1),
            "channel_ids": item.get("channel_ids", None),
            "store_credit_amounts": list(item.get("store_credit_amounts") or []),
            "form_fields": list(item.get("form_fields") or []),
        }
        self.customers[cid] = cust
        addrs = []
        for a in item.get("addresses") or []:
            addr = dict(a)
            addr["id"] = self.next_address_id
            addr["customer_id"] = cid
            addr.setdefault("country", addr.get("country_code", ""))
            self.next_address_id += 1
            addrs.append(addr)
        self.addresses[cid] = addrs
        return cust

    def _update_customers(self, h, rl):
        body, err = json_body(h)
        if err:
            return h.send_json(400, v3_error(400, "Input is invalid: " + err), rl)
        if not isinstance(body, list):
            return h.send_json(422, v3_error(422, "The request body must be an array"), rl)
        if len(body) > MAX_BATCH:
            return h.send_json(413, v3_error(
                413, "The request payload is too large. The maximum number of items "
                     "allowed in the array is %d." % MAX_BATCH), rl)
        errors = {}
        with self.lock:
            for i, item in enumerate(body):
                if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                    errors["%d.id" % i] = "error.path.missing"
                    continue
                if item["id"] not in self.customers:
                    errors["%d.id" % i] = "customer %s does not exist" % item["id"]
                    continue
                for k in POST_ONLY:
                    if k == "origin_channel_id" and item.get(k) == self.customers[
                            item["id"]]["origin_channel_id"]:
                        continue
                    if k in item:
                        errors["%d.%s" % (i, k)] = "%s cannot be changed here" % k
                self._check_fields(i, item, WRITABLE, errors)
                email = item.get("email")
                if isinstance(email, str):
                    for c in self.customers.values():
                        if c["id"] != item["id"] and c["email"].lower() == email.lower():
                            errors["%d.email" % i] = ("The email address %s is already in use"
                                                      % email)
                for req in ("email", "first_name", "last_name"):
                    if req in item and (not isinstance(item[req], str) or not item[req].strip()):
                        errors["%d.%s" % (i, req)] = "%s may not be empty" % req
            if errors:
                return h.send_json(422, v3_error(422, "Update customers failed.", errors), rl)
            updated = []
            for item in body:
                cust = self.customers[item["id"]]
                for k, v in item.items():
                    if k == "authentication":
                        cust["authentication"]["force_password_reset"] = bool(
                            v.get("force_password_reset",
                                  cust["authentication"]["force_password_reset"]))
                    elif k in WRITABLE:
                        cust[k] = v
                # Whether a PUT that changes nothing moves date_modified is not
                # documented; it does here, the case a delta poll must survive.
                cust["date_modified"] = self.tick()
                updated.append(cust)
            data = [self._render(c, set()) for c in updated]
        for c in updated:
            self._fire("store/customer/updated", c["id"])
        return h.send_json(200, {"data": data, "meta": {}}, rl)

    def _delete_customers(self, h, query, rl):
        ids = [v for k, v in query if k == "id:in"]
        if ids:
            with self.lock:
                for x in ids[0].split(","):
                    if x.strip().isdigit() and int(x) in self.customers:
                        del self.customers[int(x)]
                        self.addresses.pop(int(x), None)
                        self._fire("store/customer/deleted", int(x))
        return h.send_raw(204, b"", rl)

    # -- hooks ------------------------------------------------------------

    def _list_hooks(self, h, q, rl):
        try:
            page = int(q.get("page", "1"))
            limit = int(q.get("limit", "50"))
        except ValueError:
            return h.send_json(422, v3_error(422, "Invalid paging parameter"), rl)
        with self.lock:
            rows = [dict(x) for x in sorted(self.hooks.values(), key=lambda x: x["id"])]
        if "is_active" in q:
            want = q["is_active"] == "true"
            rows = [x for x in rows if x["is_active"] == want]
        if "scope" in q:
            rows = [x for x in rows if x["scope"] == q["scope"]]
        if "destination" in q:
            rows = [x for x in rows if x["destination"] == q["destination"]]
        data, meta = self._paginate(rows, page, limit)
        return h.send_json(200, {"data": data, "meta": meta}, rl)

    @staticmethod
    def _paginate(rows, page, limit):
        total = len(rows)
        total_pages = (total + limit - 1) // limit if total else 0
        data = rows[(page - 1) * limit:page * limit]
        links = {"current": "?page=%d&limit=%d" % (page, limit)}
        if page < total_pages:
            links["next"] = "?page=%d&limit=%d" % (page + 1, limit)
        return data, {"pagination": {"total": total, "count": len(data), "per_page": limit,
                                     "current_page": page, "total_pages": total_pages,
                                     "links": links}}

    def _validate_hook(self, body, partial):
        errors = {}
        if not isinstance(body, dict):
            return {"body": "must be an object"}
        for k in ("scope", "destination"):
            if k in body:
                if not isinstance(body[k], str) or not body[k]:
                    errors[k] = "error.path.invalid"
            elif not partial:
                errors[k] = "error.path.missing"
        dest = body.get("destination")
        if isinstance(dest, str) and not re.match(r"^https?://", dest):
            errors["destination"] = "destination must be an http(s) URL"
        if "headers" in body and body["headers"] is not None:
            hd = body["headers"]
            if not isinstance(hd, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in hd.items()):
                errors["headers"] = "headers must map strings to strings"
        if "is_active" in body and not isinstance(body["is_active"], bool):
            errors["is_active"] = "is_active must be a boolean"
        if partial and not any(k in body for k in
                               ("scope", "destination", "is_active", "headers")):
            errors["body"] = "Update webhook request should not be empty"
        return errors

    def _create_hook(self, h, rl):
        body, err = json_body(h)
        if err:
            return h.send_json(400, v3_error(400, "Input is invalid: " + err), rl)
        errors = self._validate_hook(body, partial=False)
        if errors:
            return h.send_json(422, v3_error(422, "JSON data is missing or invalid", errors), rl)
        now = int(time.time())
        with self.lock:
            hook = {"id": self.next_hook_id, "client_id": self.client_id,
                    "store_hash": self.store_hash, "scope": body["scope"],
                    "destination": body["destination"],
                    "is_active": body.get("is_active", True),
                    "headers": dict(body.get("headers") or {}),
                    "created_at": now, "updated_at": now}
            self.next_hook_id += 1
            self.hooks[hook["id"]] = hook
            out = dict(hook)
        return h.send_json(200, {"data": out, "meta": {}}, rl)

    def _one_hook(self, h, method, hook_id, rl):
        with self.lock:
            hook = self.hooks.get(hook_id)
        if hook is None:
            return h.send_json(404, v3_error(404, "Webhook not found"), rl)
        if method == "GET":
            return h.send_json(200, {"data": dict(hook), "meta": {}}, rl)
        if method == "DELETE":
            with self.lock:
                self.hooks.pop(hook_id, None)
            return h.send_json(200, {"data": dict(hook), "meta": {}}, rl)
        if method == "PUT":
            body, err = json_body(h)
            if err:
                return h.send_json(400, v3_error(400, "Input is invalid: " + err), rl)
            errors = self._validate_hook(body, partial=True)
            if errors:
                return h.send_json(422, v3_error(422, "JSON data is missing or invalid",
                                                 errors), rl)
            with self.lock:
                for k in ("scope", "destination", "is_active", "headers"):
                    if k in body:
                        hook[k] = body[k]
                hook["updated_at"] = int(time.time())
                out = dict(hook)
            return h.send_json(200, {"data": out, "meta": {}}, rl)
        return h.send_json(405, v3_error(405, "Method not allowed"), rl)

    # -- webhook delivery -------------------------------------------------

    def _fire(self, scope, cid):
        self.fire(scope, {"type": "customer", "id": cid})

    def fire(self, scope, data):
        """Sends `scope` with `data` to every active hook whose scope matches."""
        payload = {
            "scope": scope,
            "store_id": self.store_id,
            "data": data,
            "hash": hashlib.sha1(json.dumps(data).encode("utf-8")).hexdigest(),
            "created_at": int(time.time()),
            "producer": "stores/%s" % self.store_hash,
        }
        with self.lock:
            hooks = [dict(x) for x in sorted(self.hooks.values(), key=lambda x: x["id"])
                     if x["is_active"] and scope_matches(x["scope"], scope)]
            for hook in hooks:
                self._enqueue(hook["id"], hook["destination"], hook["headers"], payload,
                              json.dumps(payload).encode("utf-8"), None)

    def _enqueue(self, hook_id, destination, headers, payload, body, redelivery_of):
        """Records a delivery and queues it; caller holds the lock."""
        d = {"index": len(self.deliveries), "hook_id": hook_id, "scope": payload["scope"],
             "destination": destination, "headers": dict(headers), "payload": payload,
             "body": body, "status": None, "error": None, "attempts": 0,
             "redelivery_of": redelivery_of, "done": False}
        self.deliveries.append(d)
        self._outbox.put(d["index"])
        return d["index"]

    def _post_once(self, d):
        req = urllib.request.Request(d["destination"], data=d["body"], method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("User-Agent", "BigCommerce-Webhooks-Sim/1")
        for k, v in d["headers"].items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.delivery_timeout) as resp:
                resp.read()
                return resp.status, None
        except urllib.error.HTTPError as exc:
            try:
                exc.read()
            except OSError:
                pass
            return exc.code, "HTTP %d" % exc.code
        except (OSError, ValueError) as exc:
            return 0, str(exc)

    def _send_loop(self):
        while True:
            idx = self._outbox.get()
            if idx is None:
                return
            with self.lock:
                d = self.deliveries[idx]
            for attempt in range(self.delivery_retries + 1):
                if self._stopping.is_set():
                    with self.lock:
                        d["error"] = d["error"] or "simulator stopped before delivery"
                    break
                status, error = self._post_once(d)
                with self.lock:
                    d["attempts"] += 1
                    d["status"] = status
                    d["error"] = error
                if 200 <= status < 300:
                    break
                if attempt < self.delivery_retries:
                    self._stopping.wait(self.delivery_retry_delay)
            self.log("delivery %d %s -> %s %s" % (idx, d["scope"], d["status"], d["error"]))
            with self.lock:
                d["done"] = True
                self.delivery_cond.notify_all()

    def public_deliveries(self):
        with self.lock:
            out = []
            for d in self.deliveries:
                x = {k: v for k, v in d.items() if k != "body"}
                x["body"] = d["body"].decode("utf-8")
                out.append(x)
            return out

    def wait_deliveries(self, count, timeout=30.0):
        """Blocks until at least `count` deliveries finished; returns whether they did."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                finished = sum(1 for d in self.deliveries if d["done"])
                if finished >= count and all(d["done"] for d in self.deliveries):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.delivery_cond.wait(min(left, 0.1))

    def redeliver(self, index, times=1):
        with self.lock:
            if not 0 <= index < len(self.deliveries):
                raise IndexError(index)
            src = self.deliveries[index]
            return [self._enqueue(src["hook_id"], src["destination"], src["headers"],
                                  src["payload"], src["body"], index) for _ in range(times)]

    # -- v2 orders --------------------------------------------------------

    def _v2_error(self, h, status, message, rl):
        return h.send_json(status, [{"status": status, "message": message}], rl)

    def _render_order(self, o):
        out = dict(o)
        out["date_created"] = rfc2822(o["date_created"])
        out["date_modified"] = rfc2822(o["date_modified"])
        base = "%s/stores/%s/v2/orders/%d" % (self.base_url, self.store_hash, o["id"])
        out["products"] = {"url": base + "/products",
                           "resource": "/orders/%d/products" % o["id"]}
        out["shipping_addresses"] = {"url": base + "/shipping_addresses",
                                     "resource": "/orders/%d/shipping_addresses" % o["id"]}
        out["coupons"] = {"url": base + "/coupons", "resource": "/orders/%d/coupons" % o["id"]}
        return out

    @staticmethod
    def _parse_v2_date(text):
        try:
            return int(email.utils.parsedate_to_datetime(text).timestamp())
        except (TypeError, ValueError, IndexError):
            return parse_iso(text)

    def _v2(self, h, method, sub, q, rl):
        if method != "GET":
            return self._v2_error(h, 405, "Method not allowed", rl)
        try:
            page = int(q.get("page", "1"))
            limit = int(q.get("limit", "50"))
        except ValueError:
            return self._v2_error(h, 400, "Invalid paging parameter", rl)
        if limit > MAX_LIMIT or page < 1 or limit < 1:
            return self._v2_error(h, 400, "Invalid paging parameter", rl)
        if sub == "/orders/count":
            # Only the filters ferry sends; the answer has the spec's shape
            # (ordersCount_Full: statuses per status id, and count).
            with self.lock:
                rows = list(self.orders.values())
            try:
                for name, keep in (("customer_id", lambda o, v: o["customer_id"] == v),
                                   ("min_id", lambda o, v: o["id"] >= v),
                                   ("max_id", lambda o, v: o["id"] <= v)):
                    if name in q:
                        v = int(q[name])
                        rows = [o for o in rows if keep(o, v)]
            except ValueError:
                return self._v2_error(h, 400, "The filter is invalid.", rl)
            statuses = {}
            for o in rows:
                statuses[o["status_id"]] = statuses.get(o["status_id"], 0) + 1
            return h.send_json(200, {
                "statuses": [{"id": k, "count": n} for k, n in sorted(statuses.items())],
                "count": len(rows)}, rl)
        if sub == "/orders":
            with self.lock:
                rows = list(self.orders.values())
            for name, field, op in (("min_date_modified", "date_modified", "ge"),
                                    ("max_date_modified", "date_modified", "le"),
                                    ("min_date_created", "date_created", "ge"),
                                    ("max_date_created", "date_created", "le")):
                if name in q:
                    bound = self._parse_v2_date(q[name])
                    if bound is None:
                        return self._v2_error(h, 400, "The field '%s' is invalid." % name, rl)
                    rows = [o for o in rows if (o[field] >= bound if op == "ge"
                                                else o[field] <= bound)]
            try:
                # "The minimum/maximum order ID" (orders.v2.oas2.yml): inclusive.
                if "min_id" in q:
                    rows = [o for o in rows if o["id"] >= int(q["min_id"])]
                if "max_id" in q:
                    rows = [o for o in rows if o["id"] <= int(q["max_id"])]
            except ValueError:
                return self._v2_error(h, 400, "The filter is invalid.", rl)
            if "status_id" in q:
                rows = [o for o in rows if str(o["status_id"]) == q["status_id"]]
            if "customer_id" in q:
                rows = [o for o in rows if str(o["customer_id"]) == q["customer_id"]]
            field, _, direction = q.get("sort", "id").partition(":")
            if field not in ("id", "customer_id", "date_created", "date_modified", "status_id"):
                return self._v2_error(h, 400, "Invalid sort field", rl)
            rows.sort(key=lambda o: (o[field], o["id"]), reverse=(direction == "desc"))
            chunk = rows[(page - 1) * limit:page * limit]
            if not chunk:
                return h.send_raw(204, b"", rl)   # v2: past the end or no match (facts 5.4)
            with self.lock:
                data = [self._render_order(o) for o in chunk]
            return h.send_json(200, data, rl)
        m = re.match(r"^/orders/(\d+)(?:/(products|shipping_addresses))?$", sub)
        if m:
            oid = int(m.group(1))
            with self.lock:
                order = self.orders.get(oid)
                if order is None:
                    return self._v2_error(h, 404, "The requested resource was not found.", rl)
                if not m.group(2):
                    return h.send_json(200, self._render_order(order), rl)
                src = self.order_products if m.group(2) == "products" else self.order_shipping
                rows = [dict(x) for x in src.get(oid, [])]
            chunk = rows[(page - 1) * limit:page * limit]
            if not chunk:
                return h.send_raw(204, b"", rl)
            return h.send_json(200, chunk, rl)
        return self._v2_error(h, 404, "The requested resource was not found.", rl)

    def add_order(self, customer_id=0, status_id=11, email_addr=None, products=None, ts=None,
                  fire=True):
        """Creates an order (shapes of orders.v2.oas2.yml); returns its id."""
        with self.lock:
            ts = ts if ts is not None else self.tick()
            oid = self.next_order_id
            self.next_order_id += 1
            cust = self.customers.get(customer_id) if customer_id else None
            email_addr = email_addr or (cust["email"] if cust else "guest%d@example.com" % oid)
            lines = products or [{"product_id": 77, "name": "Fog Linen Chambray Towel",
                                  "sku": "SLCTBS", "price": "49.0000", "quantity": 2}]
            total = sum(float(x["price"]) * x["quantity"] for x in lines)
            self.orders[oid] = {
                "id": oid, "customer_id": customer_id, "date_created": ts, "date_modified": ts,
                "date_shipped": "", "status_id": status_id, "status": STATUS_NAMES[status_id],
                "custom_status": STATUS_NAMES[status_id],
                "subtotal_ex_tax": "%.4f" % total, "subtotal_inc_tax": "%.4f" % total,
                "total_ex_tax": "%.4f" % total, "total_inc_tax": "%.4f" % total,
                "total_tax": "0.0000", "refunded_amount": "0.0000", "items_total": len(lines),
                "items_shipped": 0, "payment_method": "Credit Card", "payment_status": "captured",
                "currency_code": "USD", "default_currency_code": "USD", "channel_id": 1,
                "is_deleted": False, "order_source": "www", "cart_id": "",
                "billing_address": {"first_name": cust["first_name"] if cust else "Guest",
                                    "last_name": cust["last_name"] if cust else "Shopper",
                                    "company": "", "street_1": "1 Main St", "street_2": "",
                                    "city": "Austin", "state": "Texas", "zip": "78751",
                                    "country": "United States", "country_iso2": "US",
                                    "phone": "", "email": email_addr, "form_fields": []},
                "shipping_address_count": 1,
            }
            self.order_products[oid] = [
                {"id": 1000 * oid + i, "order_id": oid, "product_id": x["product_id"],
                 "variant_id": 0, "order_address_id": oid, "name": x["name"], "sku": x["sku"],
                 "type": "physical", "base_price": x["price"], "price_ex_tax": x["price"],
                 "price_inc_tax": x["price"], "price_tax": "0.0000",
                 "base_total": "%.4f" % (float(x["price"]) * x["quantity"]),
                 "total_inc_tax": "%.4f" % (float(x["price"]) * x["quantity"]),
                 "quantity": x["quantity"], "quantity_shipped": 0, "quantity_refunded": 0,
                 "is_refunded": False, "refund_amount": "0.0000", "product_options": [],
                 "applied_discounts": []}
                for i, x in enumerate(lines)]
            self.order_shipping[oid] = [
                {"id": oid, "order_id": oid, "first_name": "Jane", "last_name": "Smith",
                 "company": "", "street_1": "1 Main St", "street_2": "", "city": "Austin",
                 "state": "Texas", "zip": "78751", "country": "United States",
                 "country_iso2": "US", "phone": "", "email": email_addr,
                 "shipping_method": "Flat Rate", "items_total": len(lines), "items_shipped": 0,
                 "base_cost": "10.0000", "cost_ex_tax": "10.0000", "cost_inc_tax": "10.0000",
                 "cost_tax": "0.0000", "shipping_zone_id": 1,
                 "shipping_zone_name": "United States", "form_fields": []}]
        if fire:
            self.fire("store/order/created", {"type": "order", "id": oid})
        return oid

    def set_order_status(self, oid, status_id):
        with self.lock:
            order = self.orders[oid]
            prev = order["status_id"]
            order["status_id"] = status_id
            order["status"] = order["custom_status"] = STATUS_NAMES[status_id]
            order["date_modified"] = self.tick()
        # A status change fires both (facts 8.2).
        self.fire("store/order/updated", {"type": "order", "id": oid})
        self.fire("store/order/statusUpdated", {"type": "order", "id": oid, "status": {
            "previous_status_id": prev, "new_status_id": status_id}})

    def seed_orders(self, count, customer_ids=None):
        """Bulk orders without webhooks, dated in the recent past (one per second)."""
        ids = []
        with self.lock:
            now = int(time.time())
            start = max(now - count, self.clock + 1)
            cids = customer_ids or [c for c in sorted(self.customers)] or [0]
            for i in range(count):
                ids.append(self.add_order(customer_id=cids[i % len(cids)], ts=start + i,
                                          fire=False))
            self.clock = max(self.clock, start + count - 1)
        return ids

    # -- refunds (v3) -------------------------------------------------------

    def add_refund(self, oid, amount=20.83):
        with self.lock:
            rid = self.next_refund_id
            self.next_refund_id += 1
            ts = self.tick()
            self.refunds[rid] = {
                "id": rid, "order_id": oid, "user_id": 0,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts)),
                "_created": ts, "reason": "", "total_amount": amount, "total_tax": 0.0,
                "uses_merchant_override_values": False,
                "items": [{"item_type": "ORDER", "item_id": oid, "reason": "", "quantity": 1,
                           "requested_amount": amount, "adjustments": []}],
                "payments": [{"id": rid, "provider_id": "braintree", "amount": amount,
                              "offline": False, "is_declined": False, "declined_message": ""}]}
            order = self.orders.get(oid)
            if order:
                order["refunded_amount"] = "%.4f" % (float(order["refunded_amount"]) + amount)
                order["date_modified"] = ts
        self.fire("store/order/refund/created", {"type": "order", "id": oid,
                                                 "refund": {"refund_id": rid}})
        return rid

    def _list_refunds(self, h, q, oid, rl):
        with self.lock:
            rows = sorted(self.refunds.values(), key=lambda r: r["id"])
        if oid is not None:
            rows = [r for r in rows if r["order_id"] == oid]
        if "created:min" in q:
            bound = parse_iso(q["created:min"])
            if bound is None:
                return h.send_json(422, v3_error(422, "created:min must be RFC 3339"), rl)
            rows = [r for r in rows if r["_created"] >= bound]
        if "order_id:in" in q:
            want = set(int(x) for x in q["order_id:in"].split(",") if x.isdigit())
            rows = [r for r in rows if r["order_id"] in want]
        page = int(q.get("page", "1"))
        limit = int(q.get("limit", "50"))
        data = [{k: v for k, v in r.items() if not k.startswith("_")}
                for r in rows[(page - 1) * limit:page * limit]]
        return h.send_json(200, {"data": data, "meta": {}}, rl)

    # -- carts ----------------------------------------------------------------

    def abandon_cart(self, customer_id=0, email_addr="shopper@example.com"):
        import uuid
        with self.lock:
            cid = str(uuid.uuid4())
            token = uuid.uuid4().hex
            ts = iso(self.tick())
            self.carts[cid] = {
                "id": cid, "customer_id": customer_id, "channel_id": 1, "email": email_addr,
                "currency": {"code": "USD"}, "tax_included": False, "base_amount": 98.0,
                "discount_amount": 0, "manual_discount_amount": 0, "cart_amount": 98.0,
                "coupons": [], "discounts": [],
                "line_items": {"physical_items": [{
                    "id": "b1b1b1b1-0000-4000-8000-000000000001", "parent_id": None,
                    "variant_id": 358, "product_id": 77, "sku": "SLCTBS",
                    "name": "Fog Linen Chambray Towel", "quantity": 2, "is_taxable": True,
                    "list_price": 49, "sale_price": 49, "extended_list_price": 98,
                    "extended_sale_price": 98, "options": []}],
                    "digital_items": [], "gift_certificates": [], "custom_items": []},
                "created_time": ts, "updated_time": ts, "locale": "en", "version": 1}
            self.cart_tokens[token] = cid
        self.fire("store/cart/abandoned", {"type": "cart", "id": cid, "token": token})
        return cid, token

    # -- customer addresses ---------------------------------------------------

    def _list_addresses(self, h, q, rl):
        with self.lock:
            rows = [dict(a) for cid in sorted(self.addresses) for a in self.addresses[cid]]
        if "id:in" in q:
            want = set(int(x) for x in q["id:in"].split(",") if x.isdigit())
            rows = [a for a in rows if a["id"] in want]
        if "customer_id:in" in q:
            want = set(int(x) for x in q["customer_id:in"].split(",") if x.isdigit())
            rows = [a for a in rows if a["customer_id"] in want]
        if "formfields" in q.get("include", ""):
            for a in rows:
                a.setdefault("form_fields", [])
        data, meta = self._paginate(rows, int(q.get("page", "1")), int(q.get("limit", "50")))
        return h.send_json(200, {"data": data, "meta": meta}, rl)

    def upsert_address(self, customer_id, address_id=None, **fields):
        """Adds or changes an address; fires store/customer/address/*, not customer/updated."""
        with self.lock:
            addrs = self.addresses.setdefault(customer_id, [])
            if address_id is None:
                address_id = self.next_address_id
                self.next_address_id += 1
                addr = {"id": address_id, "customer_id": customer_id, "first_name": "Jane",
                        "last_name": "Smith", "company": "", "address1": "1 Main St",
                        "address2": "", "city": "Austin", "state_or_province": "Texas",
                        "postal_code": "78751", "country_code": "US",
                        "country": "United States", "phone": "",
                        "address_type": "residential"}
                addrs.append(addr)
                scope = "store/customer/address/created"
            else:
                addr = next(a for a in addrs if a["id"] == address_id)
                scope = "store/customer/address/updated"
            addr.update(fields)
        self.fire(scope, {"type": "customer", "id": address_id,
                          "address": {"customer_id": customer_id}})
        return address_id

    # -- products ---------------------------------------------------------------

    def _render_product(self, p):
        out = dict(p)
        out["date_modified"] = iso(p["date_modified"])
        return out

    def add_product(self, name, sku, price):
        with self.lock:
            pid = 77 + len(self.products)
            self.products[pid] = {"id": pid, "name": name, "sku": sku, "price": price,
                                  "type": "physical", "date_modified": self.tick()}
        self.fire("store/product/created", {"type": "product", "id": pid})
        return pid

    def _list_products(self, h, q, rl):
        with self.lock:
            rows = sorted(self.products.values(), key=lambda p: (p["date_modified"], p["id"]))
        for name, keep in (("date_modified:min", lambda p, b: p["date_modified"] >= b),
                           ("date_modified:max", lambda p, b: p["date_modified"] <= b)):
            if name in q:
                bound = parse_iso(q[name])
                if bound is None:
                    return h.send_json(422, v3_error(422, "Invalid date for %s" % name), rl)
                rows = [p for p in rows if keep(p, bound)]
        data, meta = self._paginate([self._render_product(p) for p in rows],
                                    int(q.get("page", "1")), int(q.get("limit", "50")))
        return h.send_json(200, {"data": data, "meta": meta}, rl)

    # -- B2B Edition --------------------------------------------------------------

    def _b2b_send(self, h, status, data, rl, message="SUCCESS", pagination=None):
        meta = {"message": message}
        if pagination is not None:
            meta["pagination"] = pagination
        return h.send_json(status, {"code": status, "data": data, "meta": meta}, rl)

    def _b2b(self, h, method, sub, query):
        allowed, rl = self._rate_b2b()
        if (h.headers.get("X-Auth-Token") != self.token or
                h.headers.get("X-Store-Hash") != self.store_hash):
            # Facts 9.1: a wrong or missing store hash is a server error, not a 401.
            code = 401 if h.headers.get("X-Auth-Token") != self.token else 500
            return self._b2b_send(h, code, {"errMsg": "invalid token or store hash"}, rl,
                                  "Unauthorized" if code == 401 else "Internal Server Error")
        if not allowed:
            return self._b2b_send(h, 429, {"errMsg": "Too many requests"}, rl,
                                  "Too Many Requests")
        if method != "GET":
            return self._b2b_send(h, 405, {"errMsg": "method not allowed"}, rl, "Error")
        q = dict(query)
        kinds = {"/companies": (self.companies, "companyId"), "/users": (self.company_users, "id"),
                 "/addresses": (self.company_addresses, "addressId")}
        m = re.match(r"^(/companies|/users|/addresses)(?:/(\d+))?$", sub)
        if not m:
            return self._b2b_send(h, 404, {"errMsg": "not found"}, rl, "Not Found")
        store, key = kinds[m.group(1)]
        with self.lock:
            if m.group(2):
                rec = store.get(int(m.group(2)))
                if rec is None:
                    return self._b2b_send(h, 404, {"errMsg": "%s not found" % sub}, rl,
                                          "Not Found")
                return self._b2b_send(h, 200, dict(rec), rl)
            rows = [dict(r) for r in store.values()]
        try:
            limit = int(q.get("limit", "10"))
            offset = int(q.get("offset", "0"))
            min_mod = int(q["minModified"]) if "minModified" in q else None
            max_mod = int(q["maxModified"]) if "maxModified" in q else None
        except ValueError:
            return self._b2b_send(h, 400, {"errMsg": "bad parameter"}, rl, "Parameter Error")
        # user.yaml's wording for both bounds: "later than" / "earlier than".
        if min_mod is not None:
            rows = [r for r in rows if r["updatedAt"] > min_mod]
        if max_mod is not None:
            rows = [r for r in rows if r["updatedAt"] < max_mod]
        if q.get("sortBy", "updatedAt") == "updatedAt" and m.group(1) == "/companies":
            rows.sort(key=lambda r: (r["updatedAt"], r[key]),
                      reverse=q.get("orderBy", "DESC") == "DESC")
        else:
            rows.sort(key=lambda r: r[key])
        if q.get("isIncludeExtraFields") != "1":
            for r in rows:
                r.pop("extraFields", None)
        return self._b2b_send(h, 200, rows[offset:offset + limit], rl,
                              pagination={"limit": limit, "offset": offset,
                                          "totalCount": len(rows)})

    def upsert_company(self, company_id=None, **fields):
        with self.lock:
            ts = self.tick()
            if company_id is None:
                company_id = self.next_b2b_id
                self.next_b2b_id += 1
                self.companies[company_id] = {
                    "companyId": company_id, "companyName": "Company %d" % company_id,
                    "companyEmail": "info%d@example.com" % company_id,
                    "companyPhone": "555-0100", "companyStatus": "1", "bcGroupId": 0,
                    "bcGroupName": "", "catalogId": None, "parentCompany": {"id": None,
                                                                              "name": None},
                    "priceListAssign": [], "uuid": "", "createdAt": ts,
                    "extraFields": [{"fieldName": "Customer Tax Code", "fieldValue": "G",
                                     "labelName": "Tax code", "isRequired": False,
                                     "dataType": "text", "fieldType": 0}]}
                scope = "store/company/created"
            else:
                scope = "store/company/updated"
            rec = self.companies[company_id]
            status_changed = "companyStatus" in fields and fields["companyStatus"] != rec[
                "companyStatus"]
            rec.update(fields)
            rec["updatedAt"] = ts
        self.fire(scope, {"company_id": company_id})
        if status_changed and scope.endswith("updated"):
            self.fire("store/company/statusUpdated", {"company_id": company_id})
        return company_id

    def upsert_company_user(self, company_id, customer_id, user_id=None, **fields):
        with self.lock:
            ts = self.tick()
            if user_id is None:
                user_id = self.next_b2b_id
                self.next_b2b_id += 1
                cust = self.customers.get(customer_id, {})
                self.company_users[user_id] = {
                    "id": user_id, "customerId": customer_id, "companyId": company_id,
                    "firstName": cust.get("first_name", "Buyer"),
                    "lastName": cust.get("last_name", "One"),
                    "email": cust.get("email", "buyer%d@example.com" % user_id),
                    "phoneNumber": "", "role": 1, "companyRoleId": 2,
                    "companyRoleName": "Senior Buyer", "uuid": "", "extraFields": [],
                    "channelList": [{"channelId": 1, "channelName": "Default", "iconUrl": ""}],
                    "createdAt": ts}
                scope = "store/company/user/created"
            else:
                scope = "store/company/user/updated"
            self.company_users[user_id].update(fields)
            self.company_users[user_id]["updatedAt"] = ts
        self.fire(scope, {"company_id": company_id, "user_id": user_id})
        return user_id

    def upsert_company_address(self, company_id, address_id=None, **fields):
        with self.lock:
            ts = self.tick()
            if address_id is None:
                address_id = self.next_b2b_id
                self.next_b2b_id += 1
                self.company_addresses[address_id] = {
                    "addressId": address_id, "companyId": company_id, "firstName": "Marie",
                    "lastName": "Curie", "phoneNumber": "512-200-1234",
                    "addressLine1": "512 Bluebonnet Lane", "addressLine2": "", "city": "Austin",
                    "stateName": "Texas", "countryName": "United States", "countryCode": "US",
                    "zipCode": "78704", "isBilling": True, "isShipping": True,
                    "isDefaultBilling": True, "isDefaultShipping": True, "externalId": "",
                    "extraFields": [], "createdAt": ts}
                scope = "store/company/address/created"
            else:
                scope = "store/company/address/updated"
            self.company_addresses[address_id].update(fields)
            self.company_addresses[address_id]["updatedAt"] = ts
        self.fire(scope, {"company_id": company_id, "address_id": address_id})
        return address_id

    # -- direct helpers for in-process tests ------------------------------

    def seed(self, count):
        """Creates `count` customers without webhooks, dated in the recent past."""
        with self.lock:
            now = int(time.time())
            start = max(now - count, self.clock + 1)
            ids = []
            for i in range(count):
                self.seeded += 1
                n = self.seeded
                ts = start + i
                item = {"email": "customer%04d@example.com" % n,
                        "first_name": "First%04d" % n, "last_name": "Last%04d" % n,
                        "phone": "+1 555 %07d" % n, "company": "Company %04d" % n}
                ids.append(self._insert(item, ts)["id"])
            self.clock = max(self.clock, start + count - 1)
            return ids

    def touch(self, ids):
        with self.lock:
            done = []
            for cid in ids:
                if cid in self.customers:
                    self.customers[cid]["date_modified"] = self.tick()
                    done.append(cid)
            return done

    def backdate(self, ids, ts):
        """Sets customers' date_modified to `ts` (Unix s), as if they had changed
        then; date_created follows when it would be later. No webhook fires."""
        with self.lock:
            done = []
            for cid in ids:
                cust = self.customers.get(cid)
                if cust is not None:
                    cust["date_modified"] = int(ts)
                    cust["date_created"] = min(cust["date_created"], int(ts))
                    done.append(cid)
            return done

    # -- /__sim/ controls --------------------------------------------------

    def _control(self, h, method, path, query):
        q = dict(query)
        if method == "GET" and path == "/__sim/deliveries":
            return h.send_json(200, {"deliveries": self.public_deliveries()})
        if method == "GET" and path == "/__sim/stats":
            with self.lock:
                return h.send_json(200, {"requests": dict(self.stats), "limited": self.limited,
                                         "b2b_limited": self.b2b_limited})
        if method == "GET" and path == "/__sim/customers":
            with self.lock:
                data = [self._render(c, {"addresses"}) for c in
                        sorted(self.customers.values(), key=lambda c: c["id"])]
            return h.send_json(200, {"customers": data})
        if method == "GET" and path == "/__sim/hooks":
            with self.lock:
                return h.send_json(200, {"hooks": [dict(x) for x in self.hooks.values()]})
        if method != "POST":
            return h.send_json(404, {"error": "unknown control %s %s" % (method, path)})
        body = {}
        if h.headers.get("Content-Length") not in (None, "0"):
            body, err = json_body(h)
            if err or not isinstance(body, dict):
                return h.send_json(400, {"error": err or "body must be an object"})
        if path == "/__sim/deliveries/wait":
            ok = self.wait_deliveries(int(body.get("count", 0)),
                                      float(body.get("timeout", q.get("timeout", 30))))
            return h.send_json(200 if ok else 408, {"ok": ok,
                                                    "deliveries": self.public_deliveries()})
        if path == "/__sim/redeliver":
            try:
                idx = self.redeliver(int(body.get("index", 0)), int(body.get("times", 1)))
            except IndexError:
                return h.send_json(404, {"error": "no such delivery"})
            return h.send_json(200, {"queued": idx})
        if path == "/__sim/seed":
            ids = self.seed(int(body.get("count", 0)))
            return h.send_json(200, {"ids": ids, "count": len(ids)})
        if path == "/__sim/seed_orders":
            ids = self.seed_orders(int(body.get("count", 0)))
            return h.send_json(200, {"ids": ids, "count": len(ids)})
        if path == "/__sim/order":
            oid = self.add_order(customer_id=int(body.get("customer_id", 0)),
                                 status_id=int(body.get("status_id", 11)),
                                 email_addr=body.get("email"))
            return h.send_json(200, {"id": oid})
        if path == "/__sim/order_status":
            self.set_order_status(int(body["id"]), int(body["status_id"]))
            return h.send_json(200, {"ok": True})
        if path == "/__sim/refund":
            return h.send_json(200, {"id": self.add_refund(int(body["order_id"]),
                                                           float(body.get("amount", 20.83)))})
        if path == "/__sim/abandon_cart":
            cid, token = self.abandon_cart(int(body.get("customer_id", 0)),
                                           body.get("email", "shopper@example.com"))
            return h.send_json(200, {"id": cid, "token": token})
        if path == "/__sim/address":
            extra = {k: v for k, v in body.items() if k not in ("customer_id", "address_id")}
            aid = self.upsert_address(int(body["customer_id"]), body.get("address_id"), **extra)
            return h.send_json(200, {"id": aid})
        if path == "/__sim/company":
            extra = {k: v for k, v in body.items() if k != "company_id"}
            return h.send_json(200, {"id": self.upsert_company(body.get("company_id"), **extra)})
        if path == "/__sim/fire":
            self.fire(body["scope"], body.get("data", {}))
            return h.send_json(200, {"ok": True})
        if path == "/__sim/touch":
            return h.send_json(200, {"touched": self.touch([int(x) for x in body.get("ids", [])])})
        if path == "/__sim/backdate":
            return h.send_json(200, {"backdated": self.backdate(
                [int(x) for x in body.get("ids", [])], int(body.get("date_modified", 0)))})
        if path == "/__sim/reset_stats":
            with self.lock:
                self.stats = {}
                self.limited = 0
                self.b2b_limited = 0
            return h.send_json(200, {"ok": True})
        if path == "/__sim/faults":
            if body.get("clear"):
                self.faults.clear()
                return h.send_json(200, {"ok": True})
            return h.send_json(200, {"rule": self.faults.add(body)})
        if path == "/__sim/config":
            with self.lock:
                for k in ("quota", "window_ms", "delivery_retries", "b2b_quota",
                          "b2b_window_ms"):
                    if k in body:
                        setattr(self, k, int(body[k]))
                if "window_ms" in body or "quota" in body:
                    self.window_start = time.monotonic()
                    self.window_used = 0
                if "delivery_retry_delay" in body:
                    self.delivery_retry_delay = float(body["delivery_retry_delay"])
            return h.send_json(200, {"ok": True})
        return h.send_json(404, {"error": "unknown control %s %s" % (method, path)})


def main(argv=None):
    ap = base_arg_parser("BigCommerce store simulator")
    ap.add_argument("--token", default="sim-token", help="the X-Auth-Token to accept")
    ap.add_argument("--store-hash", default="teststore")
    ap.add_argument("--store-id", default="1000001")
    ap.add_argument("--quota", type=int, default=1000000, help="requests per window")
    ap.add_argument("--window-ms", type=int, default=30000)
    ap.add_argument("--b2b-quota", type=int, default=1000000)
    ap.add_argument("--b2b-window-ms", type=int, default=60000)
    ap.add_argument("--delivery-retries", type=int, default=0)
    args = ap.parse_args(argv)
    sim = BigCommerceSim(token=args.token, store_hash=args.store_hash, store_id=args.store_id,
                         quota=args.quota, window_ms=args.window_ms,
                         b2b_quota=args.b2b_quota, b2b_window_ms=args.b2b_window_ms,
                         delivery_retries=args.delivery_retries, host=args.host,
                         port=args.port, verbose=args.verbose, log_path=args.log_file)
    return run_cli(sim, args.port_file)


if __name__ == "__main__":
    sys.exit(main())

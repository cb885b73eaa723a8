#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stateful BigCommerce store on loopback: v3 customers, v3 hooks and a
webhook sender, with the wire shapes of the real API.

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

Test controls live under /__sim/ (deliveries, redeliver, seed, touch, stats,
faults); they need no auth and are never rate limited.

Usage as a program:
  python3 tests/sim/bigcommerce_sim.py --port 0 --port-file F --token T
"""

import base64
import calendar
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

# Fields a client may set on POST / change on PUT (read-only ones are refused).
WRITABLE = {
    "email": str, "first_name": str, "last_name": str, "company": str, "phone": str,
    "notes": str, "tax_exempt_category": str, "customer_group_id": int,
    "accepts_product_review_abandoned_cart_emails": bool, "channel_ids": (list, type(None)),
    "authentication": dict,
}
POST_ONLY = {"origin_channel_id": int, "addresses": list, "attributes": list,
             "trigger_account_created_notification": bool, "store_credit_amounts": list,
             "form_fields": list}
READ_ONLY = {"date_created", "date_modified", "registration_ip_address", "address_count",
             "attribute_count"}
MAX_LEN = {"email": 255, "first_name": 100, "last_name": 100, "company": 255, "phone": 50,
           "tax_exempt_category": 255}


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
        prefix = "/stores/%s/v3" % self.store_hash
        m = re.match(r"^/stores/([^/]+)/v3(/.*)?$", path)
        if not m:
            return h.send_json(404, v3_error(404, "The requested resource was not found."), rl)
        if m.group(1) != self.store_hash:
            return h.send_json(403, v3_error(403, "You don't have a required scope to access "
                                                  "the endpoint"), rl)
        sub = path[len(prefix):].rstrip("/")
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
                return self._list_hooks(h, rl)
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
        if "storecredit" in includes:
            out["store_credit_amounts"] = [{"amount": 0}]
        if "attributes" in includes:
            out["attributes"] = []
        if "formfields" in includes:
            out["form_fields"] = []
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

    def _list_hooks(self, h, rl):
        with self.lock:
            data = [dict(x) for x in sorted(self.hooks.values(), key=lambda x: x["id"])]
        meta = {"pagination": {"total": len(data), "count": len(data), "per_page": 50,
                               "current_page": 1, "total_pages": 1 if data else 0,
                               "links": {"current": "?page=1&limit=50"}}}
        return h.send_json(200, {"data": data, "meta": meta}, rl)

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
        data = {"type": "customer", "id": cid}
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

    # -- /__sim/ controls --------------------------------------------------

    def _control(self, h, method, path, query):
        q = dict(query)
        if method == "GET" and path == "/__sim/deliveries":
            return h.send_json(200, {"deliveries": self.public_deliveries()})
        if method == "GET" and path == "/__sim/stats":
            with self.lock:
                return h.send_json(200, {"requests": dict(self.stats)})
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
        if path == "/__sim/touch":
            return h.send_json(200, {"touched": self.touch([int(x) for x in body.get("ids", [])])})
        if path == "/__sim/reset_stats":
            with self.lock:
                self.stats = {}
            return h.send_json(200, {"ok": True})
        if path == "/__sim/faults":
            if body.get("clear"):
                self.faults.clear()
                return h.send_json(200, {"ok": True})
            return h.send_json(200, {"rule": self.faults.add(body)})
        if path == "/__sim/config":
            with self.lock:
                for k in ("quota", "window_ms", "delivery_retries"):
                    if k in body:
                        setattr(self, k, int(body[k]))
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
    ap.add_argument("--delivery-retries", type=int, default=0)
    args = ap.parse_args(argv)
    sim = BigCommerceSim(token=args.token, store_hash=args.store_hash, store_id=args.store_id,
                         quota=args.quota, window_ms=args.window_ms,
                         delivery_retries=args.delivery_retries, host=args.host,
                         port=args.port, verbose=args.verbose, log_path=args.log_file)
    return run_cli(sim, args.port_file)


if __name__ == "__main__":
    sys.exit(main())

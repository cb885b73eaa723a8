# SPDX-License-Identifier: MIT
"""A BigCommerce store simulator whose v2 orders are generated, not stored.

tests/sim/bigcommerce_sim.py keeps every order as Python dicts (order, lines,
shipping address): a million of them would take gigabytes and minutes to
seed. For the memory benchmark (bench/bench_memory.py) this subclass serves
`count` orders that exist only as arithmetic: order i has id FIRST_ID + i and
was created and last modified at start + i seconds (one per second, as
seed_orders dates them), a guest billing address, status 11 (Awaiting
Fulfillment) and one line. GET /v2/orders with min/max_date_modified,
sort=date_modified, limit and page, GET /v2/orders/<id> and its products and
shipping_addresses answer with the wire shapes of the real simulator;
everything else (customers, quota, hooks, controls) is the real simulator.
"""

import email.utils
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "sim"))
from bigcommerce_sim import MAX_LIMIT, BigCommerceSim, rfc2822  # noqa: E402

FIRST_ID = 100


class OrderSourceSim(BigCommerceSim):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.gen_count = 0
        self.gen_start = 0
        self.pages_served = 0

    def generate_orders(self, count):
        """From now on, `count` orders exist, dated one per second up to now."""
        with self.lock:
            now = int(time.time())
            self.gen_count = count
            self.gen_start = max(now - count, self.clock + 1)
            self.clock = max(self.clock, self.gen_start + count - 1)

    def _order(self, i):
        oid = FIRST_ID + i
        ts = self.gen_start + i
        base = "%s/stores/%s/v2/orders/%d" % (self.base_url, self.store_hash, oid)
        email_addr = "guest%d@example.com" % oid
        return {
            "id": oid, "customer_id": 0, "date_created": rfc2822(ts),
            "date_modified": rfc2822(ts), "date_shipped": "", "status_id": 11,
            "status": "Awaiting Fulfillment", "custom_status": "Awaiting Fulfillment",
            "subtotal_ex_tax": "98.0000", "subtotal_inc_tax": "98.0000",
            "total_ex_tax": "98.0000", "total_inc_tax": "98.0000", "total_tax": "0.0000",
            "refunded_amount": "0.0000", "items_total": 1, "items_shipped": 0,
            "payment_method": "Credit Card", "payment_status": "captured",
            "currency_code": "USD", "default_currency_code": "USD", "channel_id": 1,
            "is_deleted": False, "order_source": "www", "cart_id": "",
            "billing_address": {"first_name": "Guest", "last_name": "Shopper%d" % oid,
                                "company": "", "street_1": "1 Main St", "street_2": "",
                                "city": "Austin", "state": "Texas", "zip": "78751",
                                "country": "United States", "country_iso2": "US", "phone": "",
                                "email": email_addr, "form_fields": []},
            "shipping_address_count": 1,
            "products": {"url": base + "/products", "resource": "/orders/%d/products" % oid},
            "shipping_addresses": {"url": base + "/shipping_addresses",
                                   "resource": "/orders/%d/shipping_addresses" % oid},
            "coupons": {"url": base + "/coupons", "resource": "/orders/%d/coupons" % oid},
        }

    @staticmethod
    def _v2_ts(text):
        try:
            return int(email.utils.parsedate_to_datetime(text).timestamp())
        except (TypeError, ValueError, IndexError):
            from bigcommerce_sim import parse_iso
            return parse_iso(text)

    def _v2(self, h, method, sub, q, rl):
        if not self.gen_count or method != "GET" or not sub.startswith("/orders"):
            return super()._v2(h, method, sub, q, rl)
        try:
            page = int(q.get("page", "1"))
            limit = int(q.get("limit", "50"))
        except ValueError:
            return self._v2_error(h, 400, "Invalid paging parameter", rl)
        if limit > MAX_LIMIT or page < 1 or limit < 1:
            return self._v2_error(h, 400, "Invalid paging parameter", rl)
        if sub == "/orders":
            lo, hi = 0, self.gen_count
            for name in ("min_date_modified", "min_date_created"):
                if name in q:
                    bound = self._v2_ts(q[name])
                    if bound is None:
                        return self._v2_error(h, 400, "The field '%s' is invalid." % name, rl)
                    lo = max(lo, bound - self.gen_start)
            for name in ("max_date_modified", "max_date_created"):
                if name in q:
                    bound = self._v2_ts(q[name])
                    if bound is None:
                        return self._v2_error(h, 400, "The field '%s' is invalid." % name, rl)
                    hi = min(hi, bound - self.gen_start + 1)
            field, _, direction = q.get("sort", "id").partition(":")
            if direction == "desc":
                return self._v2_error(h, 400, "descending order is not generated", rl)
            first = max(lo, 0) + (page - 1) * limit
            last = min(hi, first + limit)
            if first >= last:
                return h.send_raw(204, b"", rl)   # v2: past the end (facts 5.4)
            with self.lock:
                self.pages_served += 1
            return h.send_json(200, [self._order(i) for i in range(first, last)], rl)
        parts = sub.split("/")
        # /orders/<id>[/products|/shipping_addresses]
        if len(parts) >= 3 and parts[2].isdigit():
            i = int(parts[2]) - FIRST_ID
            if not 0 <= i < self.gen_count:
                return self._v2_error(h, 404, "The requested resource was not found.", rl)
            order = self._order(i)
            if len(parts) == 3:
                return h.send_json(200, order, rl)
            if page > 1:
                return h.send_raw(204, b"", rl)
            if parts[3] == "products":
                return h.send_json(200, [{
                    "id": 1000 * order["id"], "order_id": order["id"], "product_id": 77,
                    "variant_id": 0, "order_address_id": order["id"],
                    "name": "Fog Linen Chambray Towel", "sku": "SLCTBS", "type": "physical",
                    "base_price": "49.0000", "price_ex_tax": "49.0000",
                    "price_inc_tax": "49.0000", "price_tax": "0.0000",
                    "base_total": "98.0000", "total_inc_tax": "98.0000", "quantity": 2,
                    "quantity_shipped": 0, "quantity_refunded": 0, "is_refunded": False,
                    "refund_amount": "0.0000", "product_options": [],
                    "applied_discounts": []}], rl)
            if parts[3] == "shipping_addresses":
                addr = dict(order["billing_address"])
                addr.update({"id": order["id"], "order_id": order["id"],
                             "shipping_method": "Flat Rate", "items_total": 1,
                             "items_shipped": 0, "base_cost": "10.0000"})
                return h.send_json(200, [addr], rl)
        return super()._v2(h, method, sub, q, rl)

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Commerce events -> CRM activities end to end (issue 5): the shipped
registration_to_task, refund_to_task and order_to_activities mappings, with
their default settings, in the real daemon against both simulators.

- A registration makes one follow-up task (subject naming the person, due
  48 hours after the registration), next to the contact customer_to_contact
  makes from the same webhook. The webhook delivered twice more (a
  redelivery with the same hash, which intake deduplicates, and one with
  another hash, which runs the job again) still leaves exactly one task:
  the second job finds the task by its link and writes nothing.
- A refund makes one task with the amount and the reason; the
  "Partially Refunded" status BigCommerce sends for the same refund makes
  no second task (status 14 is not in the default status table).
- An order placed by a buyer whose history is unknown makes no call and,
  below the repeat-order threshold, no task; shipping it makes a task.
- A customer's first order (the connector counts the earlier ones) makes a
  welcome call; the same customer's second, small order makes nothing.

Needs C4C.edmx (the simulator then serves the real TasksCollection);
skipped (77) without it.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DEAD, DONE, REPO, FerryTestCase, Stack, main  # noqa: E402

SKIP = 77
ENABLED = 'enabled = { "customer_to_contact" }'
SERVICE = "/sap/c4c/odata/v1/c4codataapi/"


def edmx_present():
    specs = os.environ.get("FERRY_SPECS") or os.path.join(REPO, "..", "shared", "specs")
    return os.path.isfile(os.path.join(specs, "sap", "c4c-odata-v2", "C4C.edmx"))


class EventsStack(Stack):
    enabled = ("customer_to_contact", "registration_to_task", "order_to_activities",
               "refund_to_task")

    def write_config(self):
        super().write_config()
        with open(self.config_path, encoding="utf-8") as fh:
            text = fh.read()
        if ENABLED not in text:
            raise AssertionError("harness config changed shape; update EventsStack")
        text = text.replace(ENABLED, "enabled = { %s }" % ", ".join(
            '"%s"' % m for m in self.enabled))
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write(text)


def refund(s, oid, items):
    """A refund of 49.00 with a reason on order `oid`, announced by its webhook."""
    with s.bc.lock:
        rid = s.bc.next_refund_id
        s.bc.next_refund_id += 1
        s.bc.refunds[rid] = {
            "id": rid, "order_id": oid, "user_id": 0, "created": "2024-06-16T16:44:15+00:00",
            "_created": 1718556255, "reason": "Towel arrived torn", "total_amount": 49.0,
            "total_tax": 0.0, "uses_merchant_override_values": False, "items": items,
            "payments": [{"id": rid, "provider_id": "braintree", "amount": 49.0,
                          "offline": False, "is_declined": False, "declined_message": ""}]}
    s.bc.fire("store/order/refund/created", {"type": "order", "id": oid,
                                             "refund": {"refund_id": rid}})


class FlowEventsTest(FerryTestCase):
    def setUp(self):
        if not edmx_present():
            self.skipTest("no C4C.edmx under FERRY_SPECS")
        self.stack = EventsStack(name=self.id().split(".")[-1])
        self.addCleanup(self.stack.close)

    def tasks(self):
        return self.stack.sap.entities("TasksCollection")

    def posts(self, entity_set):
        return [r for r in self.stack.sap_requests()
                if r["method"] == "POST" and r["path"] == SERVICE + entity_set]

    def assert_all_done(self):
        jobs = self.stack.jobs()
        dead = [j for j in jobs if j["state"] == DEAD]
        self.assertEqual(dead, [], self.stack.dead_jobs_text())
        self.assertEqual([j["state"] for j in jobs], [DONE] * len(jobs), jobs)

    def test_registration_task_once_despite_redelivery(self):
        s = self.stack
        s.start()
        s.register_hook("store/customer/*")
        (cust,) = s.create_customers([{"email": "Marta.Keller@example.com", "first_name": "Marta",
                                       "last_name": "Keller", "company": "Keller Werkzeuge GmbH"}])
        s.wait_for(lambda: len(self.tasks()) == 1 and len(s.sap_contacts()) == 1, 30,
                   "the follow-up task and the contact")
        s.wait_deliveries(1)
        s.wait_drained(total=1)

        (task,) = self.tasks()
        self.assertEqual(task["Subject"], "Follow up on a new registration: Marta Keller "
                                          "<marta.keller@example.com>, Keller Werkzeuge GmbH")
        registered = s.bc.customers[cust["id"]]["date_created"]
        self.assertEqual(task["DueDateTime"], "/Date(%d)/" % ((registered + 48 * 3600) * 1000))

        # The same delivery twice more: intake drops it as a duplicate.
        s.bc.redeliver(0, times=2)
        s.wait_deliveries(3)
        # The same event under another hash: a second job runs and finds the link.
        s.bc.fire("store/customer/created", {"type": "customer", "id": cust["id"],
                                             "redelivered": True})
        s.wait_deliveries(4)
        s.wait_drained(total=2)
        self.assert_all_done()
        self.assertEqual(len(self.tasks()), 1, self.tasks())
        self.assertEqual(len(self.posts("TasksCollection")), 1)
        self.assertEqual(len(s.sap_contacts()), 1)
        skips = s.query("SELECT detail FROM audit WHERE step = 'skip' AND detail LIKE "
                        "'TasksCollection %'")
        self.assertTrue(any("unchanged since the last sync" in r["detail"] for r in skips), skips)

    def test_refund_task_and_order_status(self):
        s = self.stack
        s.start()
        s.register_hook("store/order/*")
        oid = s.bc.add_order(customer_id=0, email_addr="jonas.weber@example.org")
        s.wait_deliveries(1)
        s.wait_drained(total=1)
        self.assertEqual(self.tasks(), [])           # history unknown, 98.00 < 1000: no task
        self.assertEqual(s.sap.entities("PhoneCallCollection"), [])

        # A refund with a reason, as BigCommerce reports it (facts 6).
        refund(s, oid, items=[{"item_type": "PRODUCT", "item_id": 1000 * oid, "reason": "damaged",
                               "quantity": 1, "requested_amount": 49, "adjustments": []}])
        # BigCommerce follows a partial refund with status 14 for the same order.
        s.bc.set_order_status(oid, 14)
        s.wait_for(lambda: len(self.tasks()) == 1, 30, "the refund task")
        s.wait_deliveries(4)
        s.wait_drained(total=4)
        self.assert_all_done()
        (task,) = self.tasks()
        # The status BigCommerce sent with the refund is part of the same task.
        self.assertEqual(task["Subject"], "Refund of 49.00 on order %d (now Partially Refunded): "
                                          "Towel arrived torn; 1 x order line %d (damaged)"
                         % (oid, 1000 * oid))
        self.assertEqual(task["DueDateTime"], "/Date(%d)/" % ((1718556255 + 24 * 3600) * 1000))

        s.bc.set_order_status(oid, 2)
        s.wait_for(lambda: len(self.tasks()) == 2, 30, "the shipped task")
        # Answered deliveries are committed jobs; the second store/order/updated
        # repeats the first one's hash (its data is just the order id), so
        # intake counts it as a duplicate: 5 jobs for 6 deliveries.
        s.wait_deliveries(6)
        s.wait_drained(total=5)
        self.assert_all_done()
        subjects = sorted(t["Subject"] for t in self.tasks())
        self.assertIn("Order %d shipped: check that it arrived and ask for a review" % oid,
                      subjects)
        self.assertEqual(len(self.posts("TasksCollection")), 2)
        self.assertEqual(s.sap.entities("PhoneCallCollection"), [])

    def test_registration_found_by_the_poll_still_gets_its_task(self):
        """A customer whose created webhook never came is read by the poll as
        `updated`; registered moments before, it is still new and gets its
        task. A backfill's years-old customer gets none."""
        s = self.stack
        (new, old) = s.create_customers([
            {"email": "lena.ott@example.com", "first_name": "Lena", "last_name": "Ott"},
            {"email": "old.timer@example.com", "first_name": "Old", "last_name": "Timer"}])
        with s.bc.lock:
            s.bc.customers[old["id"]]["date_created"] -= 3 * 365 * 24 * 3600
        rc, out = s.sync_once()
        self.assertEqual(rc, 0, out)
        self.assert_all_done()
        (task,) = self.tasks()
        self.assertIn("Lena Ott <lena.ott@example.com>", task["Subject"])
        self.assertEqual(len(s.sap_contacts()), 2)
        # Read again by a later poll: the task is found by its link, not made twice.
        s.update_customer(new["id"], last_name="Ott-Berg")
        rc, out = s.sync_once()
        self.assertEqual(rc, 0, out)
        self.assertEqual(len(self.tasks()), 1)

    def test_refund_and_its_status_change_are_one_task(self):
        """With a task configured for status 14, a partial refund still makes
        one task: refund/created and the statusUpdated it causes share the
        order's group, and each sees the other (ctx.group_events)."""
        self.stack.close()
        self.stack = EventsStack(
            name="refund_group",
            mappings_extra='settings = { order_to_activities = { status_tasks = {'
                           ' ["14"] = { subject = "Order {id} partially refunded: call {buyer}" }'
                           ' } } }')
        self.addCleanup(self.stack.close)
        s = self.stack
        s.start()
        s.register_hook("store/order/*")
        oid = s.bc.add_order(customer_id=0, email_addr="jonas.weber@example.org")
        s.wait_deliveries(1)
        s.wait_drained(total=1)
        refund(s, oid, items=[])
        s.bc.set_order_status(oid, 14)
        s.wait_deliveries(4)
        s.wait_drained(total=4)
        self.assert_all_done()
        (task,) = self.tasks()
        self.assertEqual(task["Subject"], "Refund of 49.00 on order %d (now Partially Refunded): "
                                          "Towel arrived torn" % oid)
        # The status change alone (no refund in its group) still makes its task.
        s.bc.set_order_status(oid, 11)
        s.bc.set_order_status(oid, 14)
        s.wait_for(lambda: len(self.tasks()) == 2, 30, "the status-14 task")
        self.assertIn("Order %d partially refunded" % oid,
                      sorted(t["Subject"] for t in self.tasks())[0])

    def test_first_order_call_then_no_call_for_the_repeat(self):
        s = self.stack
        s.start()
        s.register_hook("store/order/*")
        # The connector counts the buyer's earlier orders (orders/count) when
        # it reads the order: 0 -> a welcome call; 1 -> a repeat order, and
        # 98.00 is below the repeat-order threshold, so nothing.
        first = s.bc.add_order(customer_id=7, email_addr="marta.keller@example.org")
        s.wait_deliveries(1)
        s.wait_drained(total=1)
        self.assert_all_done()
        (call,) = s.sap.entities("PhoneCallCollection")
        self.assertIn("Welcome call: first order %d" % first, call["Subject"])
        with s.bc.lock:
            counts = sum(n for k, n in s.bc.stats.items() if k.endswith("/v2/orders/count"))
        self.assertEqual(counts, 1)

        s.bc.add_order(customer_id=7, email_addr="marta.keller@example.org")
        s.wait_deliveries(2)
        s.wait_drained(total=2)
        self.assert_all_done()
        self.assertEqual(len(s.sap.entities("PhoneCallCollection")), 1)
        self.assertEqual(self.tasks(), [])


if __name__ == "__main__":
    if not edmx_present():
        print("SKIP: no C4C.edmx under FERRY_SPECS; the activity flows need SAP's TasksCollection")
        sys.exit(SKIP)
    main()

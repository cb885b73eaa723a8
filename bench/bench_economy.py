#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark 3, API economy: what a scripted story costs in vendor requests.

The real `ferry run` with the shipped customer_to_contact mapping, hooks
registered at the BigCommerce simulator for customers, orders and refunds,
and this story, each step drained before the next:

  registrations   K customers created (store/customer/created)
  updates         half of them change a mapped field (first_name)
  no-op updates   the other half change an unmapped field (notes)
  orders          K/2 orders placed, one status change, one refund (no shipped
                  mapping reads orders or refunds yet: what they cost is the
                  price of events nobody maps)
  duplicates      one delivery sent again 3 times (same hash)
  replays         `ferry replay --id` for every registration job
  backfill        the daemon stopped, B more customers seeded without
                  webhooks, `ferry sync --since 2000-01-01` (poll.batch_size
                  25: SAP writes go in $batch), which also re-reads the K
                  already synced

Per step: BigCommerce GETs per event, SAP writes per changed record, SAP
writes for unchanged records (must be 0), SAP requests per record.

Sizes: ci K=10, B=50; full K=100, B=1,000 (env FERRY_BENCH_ECONOMY_K,
FERRY_BENCH_ECONOMY_BACKFILL). Target (issue 7): 0 writes for unchanged records.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from harness import customer  # noqa: E402

WRITE_METHODS = ("POST", "PATCH", "MERGE", "PUT", "DELETE")


class Counter:
    """Deltas of both simulators' request logs between two points of the story."""

    def __init__(self, stack):
        self.stack = stack
        self.mark()

    def mark(self):
        with self.stack.bc.lock:
            self.bc0 = dict(self.stack.bc.stats)
        with self.stack.sap.lock:
            self.sap0 = len(self.stack.sap.requests)
            self.sapstat0 = dict(self.stack.sap.stats)

    def take(self):
        with self.stack.bc.lock:
            bc1 = dict(self.stack.bc.stats)
        with self.stack.sap.lock:
            reqs = list(self.stack.sap.requests[self.sap0:])
            sapstat1 = dict(self.stack.sap.stats)
        bc = {k: bc1.get(k, 0) - self.bc0.get(k, 0) for k in bc1}
        gets = sum(n for k, n in bc.items() if k.startswith("GET ") and "/__sim/" not in k
                   and "/hooks" not in k)
        sap_requests = len(reqs)
        batches = sum(1 for r in reqs if r["path"].endswith("$batch"))
        direct_writes = sum(1 for r in reqs if r["method"] in WRITE_METHODS
                            and not r["path"].endswith("$batch"))
        batched = sum(sapstat1.get("batch_" + m, 0) - self.sapstat0.get("batch_" + m, 0)
                      for m in WRITE_METHODS)
        lookups = sum(1 for r in reqs if r["method"] == "GET" and "$filter" in (r["query"] or ""))
        self.mark()
        return {"bc_gets": gets, "bc": {k: v for k, v in bc.items() if v},
                "sap_requests": sap_requests, "sap_writes": direct_writes + batched,
                "sap_batches": batches, "sap_batched_writes": batched, "sap_lookups": lookups}


def drain(stack, deliveries=None):
    if deliveries is not None:
        stack.wait_deliveries(deliveries, timeout=120)
    stack.wait_drained(timeout=120)


def main():
    ap = bl.arg_parser(__doc__.split("\n")[0])
    args = ap.parse_args()
    bl.setup_env(args)
    k = bl.knob("ECONOMY_K", 10, 100, args)
    b = bl.knob("ECONOMY_BACKFILL", 50, 1000, args)
    half = max(1, k // 2)

    stack = bl.make_stack(name="economy", keep=args.keep, workers=2)
    t = bl.Table("ferry benchmark 3: API economy of a scripted story", args)
    try:
        stack.start()
        for scope in ("store/customer/*", "store/order/*"):
            stack.register_hook(scope)
        c = Counter(stack)
        n_deliv = 0

        # registrations
        made = stack.create_customers([customer(i, "econ") for i in range(k)])
        ids = [x["id"] for x in made]
        n_deliv += k
        drain(stack, n_deliv)
        reg = c.take()
        if len(stack.sap_contacts()) < k:
            raise bl.BenchError("%d registrations made %d contacts" % (k, len(stack.sap_contacts())))

        # updates of a mapped field
        for cid in ids[:half]:
            stack.update_customer(cid, first_name="Changed%d" % cid)
        n_deliv += half
        drain(stack, n_deliv)
        upd = c.take()

        # updates that change nothing the mapping reads
        rest = ids[half:] or ids[:1]
        for cid in rest:
            stack.update_customer(cid, notes="called on %d" % cid)
        n_deliv += len(rest)
        drain(stack, n_deliv)
        noop = c.take()

        # orders, a status change, a refund
        oids = [stack.bc.add_order(customer_id=cid) for cid in ids[:half]]
        stack.bc.set_order_status(oids[0], 2)
        stack.bc.add_refund(oids[0])
        n_order_events = len(oids) + 2 + 1
        n_deliv += n_order_events
        drain(stack, n_deliv)
        orders = c.take()

        # duplicate deliveries of the first registration
        stack.bc.redeliver(0, 3)
        n_deliv += 3
        drain(stack, n_deliv)
        dup = c.take()
        dup_jobs = stack.count("SELECT count(*) FROM jobs")

        # replays of every registration job
        reg_jobs = [r["id"] for r in stack.query(
            "SELECT id FROM jobs WHERE job_key LIKE 'bigcommerce:customer:%' ORDER BY id LIMIT ?",
            (k,))]
        for jid in reg_jobs:
            rc, out = stack.cli("replay", "-c", stack.config_path, "--id", str(jid), timeout=60)
            if rc != 0:
                raise bl.BenchError("ferry replay --id %d exited %d: %s" % (jid, rc, out))
        bl.wait(lambda: stack.count("SELECT count(*) FROM jobs") >= dup_jobs + len(reg_jobs),
                60, "the replayed jobs to be queued", stack)
        drain(stack)
        rep = c.take()

        rc = stack.stop()
        if rc != 0:
            stack.fail("ferry run exited %d" % rc)

        # backfill with $batch writes
        stack.bc.seed(b)
        c.mark()
        rc, out = stack.cli("sync", "-c", stack.config_path, "--since", "2000-01-01",
                            timeout=600)
        if rc != 0:
            raise bl.BenchError("ferry sync --since exited %d: %s" % (rc, out))
        back = c.take()
        contacts = len(stack.sap_contacts())
        dead = stack.count("SELECT count(*) FROM jobs WHERE state = 3")
    finally:
        bl.close_stack(stack, args.keep)
    if contacts < k + b:
        raise bl.BenchError("%d contacts after the backfill, expected %d" % (contacts, k + b))
    if dead:
        raise bl.BenchError("%d job(s) dead-lettered" % dead)

    def per(x, n):
        return "%.2f" % (x / float(n)) if n else "-"

    t.row("registrations: BigCommerce GETs per event", per(reg["bc_gets"], k), "%d events" % k)
    t.row("registrations: SAP writes per new record", per(reg["sap_writes"], k),
          "lookups %d" % reg["sap_lookups"])
    t.row("registrations: SAP requests per record", per(reg["sap_requests"], k),
          "lookup by e-mail + create (+ CSRF token fetches)")
    t.row("updates (mapped field): BigCommerce GETs per event", per(upd["bc_gets"], half), "")
    t.row("updates (mapped field): SAP writes per changed record", per(upd["sap_writes"], half),
          "1 = one PATCH of the changed field")
    t.row("no-op updates (unmapped field): SAP writes", str(noop["sap_writes"]),
          "must be 0 (%d events, %d BigCommerce GETs)" % (len(rest), noop["bc_gets"]))
    t.row("orders, status change, refund: BigCommerce GETs per event",
          per(orders["bc_gets"], n_order_events),
          "%d events no mapping reads; SAP requests %d" % (n_order_events,
                                                         orders["sap_requests"]))
    t.row("duplicate deliveries: BigCommerce GETs / SAP writes",
          "%d / %d" % (dup["bc_gets"], dup["sap_writes"]), "3 redeliveries, must be 0 / 0")
    t.row("replays: BigCommerce GETs per replayed job", per(rep["bc_gets"], len(reg_jobs)),
          "%d replays" % len(reg_jobs))
    t.row("replays: SAP writes (unchanged records)", str(rep["sap_writes"]), "must be 0")
    t.row("backfill: SAP requests per new record", per(back["sap_requests"], b),
          "%d new + %d known; %d $batch, %d lookups" % (b, k, back["sap_batches"],
                                                     back["sap_lookups"]))
    t.row("backfill: SAP writes per new record", per(back["sap_writes"], b),
          "all inside $batch: %d" % back["sap_batched_writes"])
    t.row("backfill: BigCommerce GETs per record", per(back["bc_gets"], b + k),
          "list pages only (records carry the full customer)")
    unchanged = noop["sap_writes"] + dup["sap_writes"] + rep["sap_writes"]
    t.row("writes for unchanged records (all steps)", str(unchanged),
          "target 0" + ("" if unchanged == 0 else "  (MISSED)"))
    t.figure("registration_bc_gets_per_event", round(reg["bc_gets"] / float(k), 3))
    t.figure("registration_sap_requests_per_record", round(reg["sap_requests"] / float(k), 3))
    t.figure("update_sap_writes_per_changed", round(upd["sap_writes"] / float(half), 3))
    t.figure("order_bc_gets_per_event", round(orders["bc_gets"] / float(n_order_events), 3))
    t.figure("unchanged_writes", unchanged)
    t.figure("backfill_sap_requests_per_record", round(back["sap_requests"] / float(b), 3))
    t.figure("replay_bc_gets_per_job", round(rep["bc_gets"] / float(len(reg_jobs)), 3))
    shapes = {}
    for key, n in orders["bc"].items():
        shape = re.sub(r"/\d+", "/{id}", key.replace("/stores/teststore", ""))
        shapes[shape] = shapes.get(shape, 0) + n
    t.note("BigCommerce requests of the order step: %s" % ", ".join(
        "%s x%d" % (key, n) for key, n in sorted(shapes.items())))
    t.note("only customer_to_contact ships; orders and refunds are read and mapped to nothing")
    t.print()


if __name__ == "__main__":
    bl.run_main(main)

# SPDX-License-Identifier: MIT
"""Shared pieces of the reliability suites (tests/reliability/): a stack
whose webhook port survives restarts, simulators with the extra behaviour
these suites need (several webhook senders, fast e-mail lookups,
probabilistic faults), and the one check they all end with: every
BigCommerce customer is exactly one SAP contact holding the customer's
current values.

Everything builds on tests/e2e/harness.py and the simulators in tests/sim/
without changing them: behaviour is added by subclassing, so the e2e tier
keeps testing the simulators exactly as they are.

Sizes come from environment variables (FERRY_CRASH_*, FERRY_FAULT_*,
FERRY_OVERLOAD_*) with CI defaults; a sanitizer build (FERRY_SANITIZED=1)
halves the defaults, never an explicit value. Each suite prints one line
"RELIABILITY-FIGURES <json>" with what it measured.
"""

import json
import os
import random
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "sim"))

import harness  # noqa: E402
from harness import (BC_TOKEN, SAP_PASSWORD, SAP_USER, STORE_HASH, WEBHOOK_SECRET,  # noqa: E402
                     Stack, free_port, lua_str)
from bigcommerce_sim import BigCommerceSim, v3_error  # noqa: E402
from sap_sales_sim import SapSalesSim  # noqa: E402

PENDING, RUNNING, DONE, DEAD = 0, 1, 2, 3
SANITIZED = os.environ.get("FERRY_SANITIZED") == "1"


def env_int(name, default):
    """An integer knob; a sanitizer build halves the default (not an explicit value)."""
    raw = os.environ.get(name)
    if raw:
        return int(raw)
    return max(1, default // 2) if SANITIZED else default


def env_float(name, default):
    raw = os.environ.get(name)
    return float(raw) if raw else default


def figures(name, values):
    """The line docs/reliability.md's figures are collected from."""
    values = dict(values)
    values["suite"] = name
    values["sanitized"] = SANITIZED
    print("RELIABILITY-FIGURES %s" % json.dumps(values, sort_keys=True), flush=True)


def wait_until(predicate, timeout, what, interval=0.1, on_timeout=None):
    """Polls `predicate` until it is truthy; AssertionError naming `what` after `timeout`.

    A longer interval than the harness's 20 ms: the predicates here read
    thousands of simulator records under the GIL that the simulators need."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = on_timeout() if on_timeout else ""
            raise AssertionError("timed out after %.0f s waiting for %s%s" % (timeout, what, extra))
        time.sleep(interval)


# -- simulators -----------------------------------------------------------------------------


def quiet_resets(server):
    """A killed daemon resets its keep-alive connections to the simulators;
    socketserver would print a traceback for each. Other errors still print."""
    default = server.handle_error

    def handle_error(request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        default(request, client_address)

    server.handle_error = handle_error


class MultiSenderBigCommerceSim(BigCommerceSim):
    """The BigCommerce simulator with several webhook sender threads.

    The stock simulator delivers one webhook at a time; a real store has
    many deliveries in flight, and with one sender a daemon restart stalls
    the whole stream behind one retrying delivery. The senders share the
    simulator's outbox, so ordering between deliveries is not kept, as at
    BigCommerce."""

    def __init__(self, senders=4, **kw):
        super().__init__(**kw)
        self.senders = senders
        self._senders = []

    def on_start(self):
        quiet_resets(self._server)
        for i in range(self.senders):
            t = threading.Thread(target=self._send_loop, name="bc-sim-webhooks-%d" % i)
            t.start()
            self._senders.append(t)

    def on_stop(self):
        self._stopping.set()
        for _ in self._senders:
            self._outbox.put(None)
        for t in self._senders:
            t.join()

    def delivery_summary(self):
        """Counts over the deliveries, without copying them (cheap enough to poll)."""
        with self.lock:
            total = len(self.deliveries)
            done = sum(1 for d in self.deliveries if d["done"])
            acked = sum(1 for d in self.deliveries if d["done"] and 200 <= (d["status"] or 0) < 300)
            attempts = sum(d["attempts"] for d in self.deliveries)
        return {"total": total, "done": done, "acked": acked, "gave_up": done - acked,
                "attempts": attempts}

    def acked_dedupe_keys(self, instance="bigcommerce"):
        """The daemon's dedupe key of every delivery that was acknowledged."""
        with self.lock:
            return set("%s:%s:%s" % (instance, d["scope"], d["payload"]["hash"])
                       for d in self.deliveries
                       if d["done"] and 200 <= (d["status"] or 0) < 300)


class FastLookupSapSim(SapSalesSim):
    """The SAP simulator with `Email eq '...'` answered by a plain scan.

    The stock simulator evaluates every $filter through its expression tree,
    which makes the e-mail lookup before each create cost O(contacts) tree
    walks; with 10,000 contacts that, not ferry, dominates a crash run.
    Only that one exact filter shape is short-circuited; the answer is the
    same rows in the same order."""

    _EMAIL_EQ = re.compile(r"^Email eq '((?:[^']|'')*)'$")

    def on_start(self):
        quiet_resets(self._server)

    def _select_rows(self, query):
        flt = query.get("$filter")
        m = self._EMAIL_EQ.match(flt) if flt else None
        if not m or query.get("$orderby"):
            return super()._select_rows(query)
        want = m.group(1).replace("''", "'")
        with self.lock:
            return [self.contacts[o] for o in self.order if self.contacts[o].get("Email") == want]


def reset_connection(h):
    """Ends the client's connection with a TCP reset instead of an answer.

    SO_LINGER 0 makes close() send RST; the socket is closed here (its read
    file first, which holds a reference) because socketserver would
    otherwise shut the write side down first and the client would see a
    clean EOF instead of a reset."""
    h.close_connection = True
    try:
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.rfile.close()
        h.connection.close()
    except OSError:
        pass


def from_ferry(h):
    """Faults are for the daemon; the test's own calls (urllib) pass untouched."""
    return (h.headers.get("User-Agent") or "").startswith("ferry/")


class FaultPlan:
    """Picks, per request, whether and how to fail, from weights that sum to `rate`.

    Thread-safe and seeded, so that a run's sequence of faults is reproducible
    for a given order of requests. Counts what it injected."""

    def __init__(self, rate, kinds, seed):
        self.rate = rate
        self.kinds = kinds                      # [(name, weight)], weights relative
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {}
        self.requests = 0
        self.enabled = True

    def pick(self):
        with self.lock:
            self.requests += 1
            if not self.enabled or self.rng.random() >= self.rate:
                return None
            total = sum(w for _, w in self.kinds)
            x = self.rng.random() * total
            for name, w in self.kinds:
                x -= w
                if x < 0:
                    self.counts[name] = self.counts.get(name, 0) + 1
                    return name
            name = self.kinds[-1][0]
            self.counts[name] = self.counts.get(name, 0) + 1
            return name

    def choice(self, seq):
        with self.lock:
            return self.rng.choice(seq)



class FaultyBigCommerceSim(MultiSenderBigCommerceSim):
    """BigCommerce with probabilistic faults on the store API (not on /__sim/).

    Kinds: 5xx (500, 502, 503 with v3 error bodies), 429 with the reset
    headers the store sends when a window is used up, a slow answer (the
    answer arrives after the connector's timeout) and a connection reset
    before any answer."""

    KINDS = [("5xx", 6), ("429", 5), ("slow", 3), ("reset", 6)]

    def __init__(self, fault_rate=0.2, fault_seed=1, slow_s=1.3, **kw):
        super().__init__(**kw)
        self.plan = FaultPlan(fault_rate, self.KINDS, fault_seed)
        self.slow_s = slow_s

    @property
    def fault_counts(self):
        return dict(self.plan.counts)

    @property
    def fault_requests(self):
        return self.plan.requests

    def dispatch(self, h, method):
        if h.path.startswith("/__sim/") or not from_ferry(h):
            return super().dispatch(h, method)
        kind = self.plan.pick()
        if kind == "5xx":
            status = self.plan.choice([500, 502, 503])
            return h.send_json(status, v3_error(status, "Injected failure"))
        if kind == "429":
            return h.send_json(429, v3_error(429, "Too many requests (injected)"), [
                ("X-Rate-Limit-Time-Window-Ms", "30000"),
                ("X-Rate-Limit-Time-Reset-Ms", "300"),
                ("X-Rate-Limit-Requests-Quota", "150"),
                ("X-Rate-Limit-Requests-Left", "0"),
                ("X-Retry-After", "1")])
        if kind in ("slow", "reset"):
            # slow: the connector has given up by the time an answer could
            # leave, so none is sent (writing to its closed socket would only
            # fill the test log with tracebacks).
            h.read_body()
            if kind == "slow":
                time.sleep(self.slow_s)
            return reset_connection(h)
        return super().dispatch(h, method)


class FaultySapSim(FastLookupSapSim):
    """SAP with probabilistic faults on the OData service (not on /__sim/).

    Kinds: 5xx (500, 503), 429 with Retry-After, a slow answer (processed,
    then no answer before the connector's timeout: for a write, an unknown
    outcome), a connection reset (before processing for reads; after
    processing for writes, again an unknown outcome), a stale CSRF token on
    writes (the session is forgotten, so the write gets 403 Required and the
    connector fetches a new token) and 412 on updates (a CRM user changes
    the contact just before ferry's PATCH arrives; at most once per contact,
    as a real conflict would be: the connector re-reads and applies once
    more, and a record edited under it twice in a row is parked for a person
    by design). Reads and writes each fail at `fault_rate`; an update
    conflicts at half that rate on top.

    No conflict is injected on a contact whose update answer this simulator
    swallowed: ferry's own lost PATCH already makes its next PATCH fail with
    412, and a real edit on top of that parks the job today (see
    test_faults.test_conflict_after_a_lost_update_answer, a known gap)."""

    READ_KINDS = [("5xx", 5), ("429", 4), ("slow", 2), ("reset", 4)]
    WRITE_KINDS = READ_KINDS + [("csrf", 4)]
    KINDS = WRITE_KINDS + [("412", 0)]

    def __init__(self, fault_rate=0.2, fault_seed=2, slow_s=1.3, **kw):
        super().__init__(**kw)
        self.plan = FaultPlan(fault_rate, self.READ_KINDS, fault_seed)
        self.write_plan = FaultPlan(fault_rate, self.WRITE_KINDS, fault_seed + 1)
        self.conflict_plan = FaultPlan(fault_rate / 2, [("412", 1)], fault_seed + 2)
        self.slow_s = slow_s
        self.conflicted = set()
        self.lost_answer = set()

    @property
    def fault_counts(self):
        out = {}
        for p in (self.plan, self.write_plan, self.conflict_plan):
            for k, v in p.counts.items():
                out[k] = out.get(k, 0) + v
        return out

    @property
    def fault_requests(self):
        return self.plan.requests + self.write_plan.requests

    def _maybe_conflict(self, method, path, headers):
        """A CRM user's edit just before an update with If-Match, for one
        update in ten: the update then meets 412. Direct PATCHes and PATCHes
        inside a $batch alike, since ferry sends an update either way."""
        m = re.search(r"ContactCollection\('([^']*)'\)$", path)
        oid = m.group(1) if m else None
        if method != "PATCH" or not headers.get("If-Match") or not oid:
            return False
        with self.lock:
            fresh = (oid in self.contacts and oid not in self.conflicted
                     and oid not in self.lost_answer)
            if not fresh or not self.conflict_plan.pick():
                return False
            self.conflicted.add(oid)
            self.modify(oid, {"JobTitle": "Edited in the CRM"})
        return True

    def before_batch_part(self, method, path, headers):
        self._maybe_conflict(method, path, headers)

    def dispatch(self, h, method):
        path = h.path.split("?", 1)[0]
        if path.startswith("/__sim/") or path.endswith("$metadata") or not from_ferry(h):
            return super().dispatch(h, method)
        write = method in ("POST", "PATCH", "PUT", "MERGE")
        if self._maybe_conflict(method, path, h.headers):
            return super().dispatch(h, method)
        kind = (self.write_plan if write else self.plan).pick()
        if kind == "csrf":
            self.expire_csrf()
            return super().dispatch(h, method)
        if kind == "5xx":
            status = self.plan.choice([500, 503])
            return self._answer_error(h, status, [])
        if kind == "429":
            return self._answer_error(h, 429, [("Retry-After", "1")])
        if kind == "reset":
            if write:
                self._swallow(h, method)
            else:
                h.read_body()
            return reset_connection(h)
        if kind == "slow":
            if write:
                self._swallow(h, method)
            else:
                h.read_body()
            time.sleep(self.slow_s)
            return reset_connection(h)
        return super().dispatch(h, method)

    def _answer_error(self, h, status, headers):
        h.read_body()
        body = json.dumps({"error": {"code": "", "message": {
            "lang": "en", "value": "Injected failure %d" % status}}}).encode()
        hdrs = [("dataserviceversion", "2.0")] + headers
        return h.send_raw(status, body, hdrs, "application/json")

    def _swallow(self, h, method):
        """Processes the request fully but throws the answer away."""
        m = re.search(r"ContactCollection\('([^']*)'\)$", h.path.split("?", 1)[0])
        if m:
            with self.lock:
                self.lost_answer.add(m.group(1))
        real = h.send_raw
        h.send_raw = lambda *a, **k: None
        try:
            super().dispatch(h, method)
        finally:
            h.send_raw = real


# -- the stack ------------------------------------------------------------------------------


class RelStack(Stack):
    """harness.Stack with what the reliability suites need on top:

    - a fixed webhook port, so that deliveries queued before a kill reach the
      restarted daemon;
    - simulator classes of the suite's choosing (replacing the stock ones);
    - config knobs the harness does not expose (retry policy, poll page size,
      connector timeouts, mappings, log level, secrets);
    - spawn() + kill() for start-up crashes."""

    def __init__(self, name="rel", bc_factory=None, sap_factory=None, retry=None,
                 bc_extra="", sap_extra="", mappings=("customer_to_contact",),
                 fixed_port=True, secrets=None, **kw):
        self.retry = retry or {"max_attempts": 5, "base_delay": 0.05, "max_delay": 1}
        self.bc_extra = bc_extra
        self.sap_extra = sap_extra
        self.mappings = list(mappings)
        self.fixed_port = free_port() if fixed_port else 0
        self.secrets = dict(secrets or {"bc_token": BC_TOKEN, "webhook_secret": WEBHOOK_SECRET,
                                        "sap_user": SAP_USER, "sap_password": SAP_PASSWORD})
        self.kills = 0
        super().__init__(name=name, **kw)
        if secrets:
            # The stock simulators were built with the harness's credentials.
            bc_factory = bc_factory or BigCommerceSim
            sap_factory = sap_factory or SapSalesSim
        try:
            if bc_factory or sap_factory:
                if bc_factory:
                    self.bc.stop()
                    self.bc = None
                    self.bc = bc_factory(token=self.secrets["bc_token"], store_hash=STORE_HASH,
                                         log_path=os.path.join(self.workdir, "bc-sim.log")).start()
                if sap_factory:
                    self.sap.stop()
                    self.sap = None
                    self.sap = sap_factory(user=self.secrets["sap_user"],
                                           password=self.secrets["sap_password"],
                                           log_path=os.path.join(self.workdir,
                                                                 "sap-sim.log")).start()
                self.write_config()
        except BaseException:
            self.close()
            raise

    def write_config(self):
        r = self.retry
        lines = [
            "-- written by tests/reliability/relcommon.py",
            "return {",
            "  state = { path = %s }," % lua_str(self.db_path),
            "  workers = %d," % self.workers,
            "  log = { level = %s }," % lua_str(self.log_level),
        ]
        if self.plugin_dir:
            lines.append("  plugins = { dir = %s }," % lua_str(self.plugin_dir))
        lines += [
            "  mappings = { dir = %s, lua_path = %s, enabled = { %s } },"
            % (lua_str(self.mapping_dir), lua_str(os.path.join(harness.REPO, "lua")),
               ", ".join(lua_str(m) for m in self.mappings)),
            "  webhooks = { address = \"127.0.0.1\", port = %d, port_file = %s,"
            " max_body = 1048576%s }," % (self.fixed_port, lua_str(self.port_file),
                                          ", " + self.webhooks_extra if self.webhooks_extra
                                          else ""),
            "  poll = { interval = %s }," % self.poll_interval,
            "  retry = { max_attempts = %d, base_delay = %s, max_delay = %s },"
            % (r["max_attempts"], r["base_delay"], r["max_delay"]),
            "  connectors = {",
            "    bigcommerce = { store_hash = %s, access_token = env(\"FERRY_TEST_BC_TOKEN\"),"
            % lua_str(STORE_HASH),
            "                    api_base = %s," % lua_str(self.bc.api_base),
            "                    webhook_secret = env(\"FERRY_TEST_WEBHOOK_SECRET\")%s },"
            % ((", " + self.bc_extra) if self.bc_extra else ""),
            "    sap_sales = { service_root = %s," % lua_str(self.sap.service_root),
            "                  %s },"
            % (self.sap_extra or ("username = %s, password = env(\"FERRY_TEST_SAP_PASSWORD\")"
                                  % lua_str(self.secrets["sap_user"]))),
            "  },",
            "}",
        ]
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")

    def env(self):
        env = super().env()
        env["FERRY_TEST_BC_TOKEN"] = self.secrets["bc_token"]
        env["FERRY_TEST_WEBHOOK_SECRET"] = self.secrets["webhook_secret"]
        env["FERRY_TEST_SAP_PASSWORD"] = self.secrets["sap_password"]
        for k, v in self.secrets.items():
            if k.startswith("ENV:"):
                env[k[4:]] = v
        return env

    @property
    def webhook_url(self):
        port = self.fixed_port or self.port
        return "http://127.0.0.1:%d/webhooks/bigcommerce" % port

    def bc_call(self, method, path, body=None):
        return harness.http_request(self.bc.v3_url + path, method, body,
                                    {"X-Auth-Token": self.secrets["bc_token"],
                                     "Accept": "application/json"})

    def register_hook(self, scope="store/customer/*", secret=None):
        return super().register_hook(scope, secret or self.secrets["webhook_secret"])

    def kill(self):
        """SIGKILL, the way a crash or the OOM killer ends the daemon."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1

    def spawn(self):
        """Starts `ferry run` without waiting for it to listen."""
        log = open(self.log_path, "ab")
        try:
            log.write(("=== ferry run -c %s (%s, spawn)\n" % (self.config_path,
                                                            time.strftime("%X"))).encode())
            log.flush()
            self.proc = harness._track(subprocess.Popen(
                [self.bin, "run", "-c", self.config_path], cwd=self.workdir, env=self.env(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log))
        finally:
            log.close()

    def query_retry(self, sql, args=(), timeout=30.0):
        """A read that waits out a writer holding the lock."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.query(sql, args)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def job_states(self):
        rows = self.query_retry("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        out = {PENDING: 0, RUNNING: 0, DONE: 0, DEAD: 0}
        for r in rows:
            out[r["state"]] = r["n"]
        return out


# -- customers and the exactly-once check ---------------------------------------------------


def make_customer(n, tag):
    return {"email": "%s%06d@example.com" % (tag, n), "first_name": "Given%06d" % n,
            "last_name": "Family%06d" % n, "phone": "+1 555 %07d" % n}


def bc_customers(stack):
    with stack.bc.lock:
        return {cid: dict(c) for cid, c in stack.bc.customers.items()}


def expected_contacts(stack):
    """What SAP must hold: one contact per customer, as the shipped mapping writes it."""
    out = {}
    for cid, c in bc_customers(stack).items():
        out[c["email"].strip().lower()] = {"id": cid, "FirstName": c["first_name"].strip(),
                                           "LastName": c["last_name"].strip()}
    return out


def compare(stack):
    """(missing, duplicates, stale, unexpected) between BigCommerce and SAP, by e-mail."""
    want = expected_contacts(stack)
    by_email = {}
    for c in stack.sap_contacts():
        by_email.setdefault(c["Email"], []).append(c)
    missing = sorted(e for e in want if e not in by_email)
    duplicates = sorted(e for e, cs in by_email.items() if len(cs) > 1)
    unexpected = sorted(e for e in by_email if e not in want)
    stale = sorted(e for e, w in want.items() if e in by_email and len(by_email[e]) == 1
                   and (by_email[e][0]["FirstName"], by_email[e][0]["LastName"])
                   != (w["FirstName"], w["LastName"]))
    return missing, duplicates, stale, unexpected


def wait_converged(stack, timeout, what):
    """Waits until SAP matches BigCommerce and the queue is empty.

    A duplicate contact never goes away by itself, so the first one fails
    the wait at once instead of at the deadline."""
    def done():
        missing, duplicates, stale, unexpected = compare(stack)
        if duplicates:
            raise AssertionError("duplicate contacts while waiting for %s: %s%s"
                                 % (what, duplicates[:5], describe_difference(stack)))
        if missing or stale or unexpected:
            return False
        states = stack.job_states()
        return states[PENDING] == 0 and states[RUNNING] == 0
    wait_until(done, timeout, what, interval=0.5, on_timeout=lambda: describe_difference(stack))


def describe_difference(stack):
    missing, duplicates, stale, unexpected = compare(stack)
    return ("\nmissing %d %s\nduplicates %d %s\nstale %d %s\nunexpected %d %s\njobs %s"
            % (len(missing), missing[:5], len(duplicates), duplicates[:5], len(stale), stale[:5],
               len(unexpected), unexpected[:5], stack.job_states()))


def check_links(test, stack):
    """Every customer has one link, to a distinct contact that carries its e-mail."""
    links = stack.query_retry(
        "SELECT src_id, dst_id FROM links WHERE src_system = 'bigcommerce'"
        " AND src_object = 'customer' AND dst_object = 'ContactCollection'")
    by_src = {}
    for row in links:
        by_src.setdefault(row["src_id"], []).append(row["dst_id"])
    contacts = {c["ObjectID"]: c["Email"] for c in stack.sap_contacts()}
    customers = bc_customers(stack)
    bad = []
    for cid, c in customers.items():
        dsts = by_src.get(str(cid), [])
        if len(dsts) != 1 or contacts.get(dsts[0]) != c["email"].strip().lower():
            bad.append((cid, dsts))
    test.assertEqual(bad[:10], [], "customers without exactly one correct link (%d)" % len(bad))
    dst_ids = [d[0] for d in by_src.values() if d]
    test.assertEqual(len(dst_ids), len(set(dst_ids)), "two customers linked to one contact")


def audit_count(stack, where, args=()):
    rows = stack.query_retry("SELECT COUNT(*) AS n FROM audit WHERE " + where, args)
    return rows[0]["n"]

# SPDX-License-Identifier: MIT
"""End-to-end harness: the real ferry daemon against the two simulators.

One `Stack` per test: both simulators run in this process on loopback; the
harness writes a Lua config into a temporary directory, starts `ferry run`
(or `ferry sync --once`) as a subprocess with the secrets in its
environment and its stderr in a log file, and offers waits with deadlines
that poll every 20 ms and, when they expire, fail with the daemon's log tail.
Every process the harness starts is killed on the way out, whatever happens
(try/finally through Stack.close, plus atexit and a SIGTERM handler for the
case where ctest's timeout kills the test).

Contract with the daemon (see the issue): FERRY_BIN is the executable,
FERRY_PLUGIN_DIR holds the connector .so files, FERRY_SOURCE_DIR is the repo
(mappings/, lua/). The state DB is read here in read-only mode.
"""

import atexit
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("FERRY_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(os.path.abspath(os.path.join(HERE, "..")), "sim"))

from bigcommerce_sim import BigCommerceSim  # noqa: E402
from sap_sales_sim import SapSalesSim  # noqa: E402
from simcore import http_request  # noqa: E402

BC_TOKEN = "bc-test-token-5f1e"
WEBHOOK_SECRET = "whsec-test-8c21d0"
SAP_USER = "FERRY_TECH"
SAP_PASSWORD = "sap-test-pw-77a3"
STORE_HASH = "teststore"

PENDING, RUNNING, DONE, DEAD = 0, 1, 2, 3
POLL = 0.02

_live_procs = []
_live_lock = threading.Lock()


def _kill_all():
    with _live_lock:
        procs = list(_live_procs)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_all)


def ephemeral_low():
    """The lowest port the kernel hands out for port 0 and outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A loopback port that was free a moment ago (the daemon binds it with
    SO_REUSEADDR), below the kernel's ephemeral range: a port from that range
    can be taken, between this check and the daemon's bind, by any outgoing
    connection of a test running beside this one (seen as "Address already in
    use" in a CI run)."""
    high = ephemeral_low()
    for _ in range(200):
        port = random.randrange(10000, high)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free loopback port below %d" % high)


def _on_sigterm(signum, frame):
    # Turn ctest's SIGTERM into a normal exit so atexit kills our children.
    raise SystemExit(128 + signum)


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _on_sigterm)


def _track(proc):
    with _live_lock:
        _live_procs.append(proc)
    return proc


def ferry_bin(explicit=None):
    """The ferry executable, or an AssertionError saying how to provide it."""
    path = explicit or os.environ.get("FERRY_BIN")
    if not path:
        raise AssertionError(
            "FERRY_BIN is not set: these end-to-end tests need the ferry executable. "
            "Run them through ctest (make test) or export FERRY_BIN=build/ferry "
            "FERRY_PLUGIN_DIR=build/plugins FERRY_SOURCE_DIR=$PWD")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise AssertionError("FERRY_BIN=%s is not an executable file (build it first)" % path)
    return os.path.abspath(path)


def lua_str(text):
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 32:
            out.append("\\%03d" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class DeadlineError(AssertionError):
    pass


class Stack:
    """Both simulators, a config, and at most one running daemon."""

    def __init__(self, name="e2e", workdir=None, ferry=None, plugin_dir=None, workers=2,
                 sap_latency_ms=0, log_level="info", keep_workdir=False, poll_interval=0,
                 mapping_dir=None, webhooks_extra="", mappings_extra=""):
        self.bin = ferry_bin(ferry)
        self.plugin_dir = plugin_dir or os.environ.get("FERRY_PLUGIN_DIR")
        if workdir:
            os.makedirs(workdir, exist_ok=True)
            self.workdir = os.path.abspath(workdir)
        else:
            self.workdir = tempfile.mkdtemp(prefix="ferry-%s-" % name)
        self.keep_workdir = keep_workdir
        self.workers = workers
        self.log_level = log_level
        self.poll_interval = poll_interval
        self.webhooks_extra = webhooks_extra
        self.mappings_extra = mappings_extra
        self.mapping_dir = mapping_dir or os.path.join(REPO, "mappings")
        self.config_path = os.path.join(self.workdir, "ferry.lua")
        self.db_path = os.path.join(self.workdir, "ferry.db")
        self.port_file = os.path.join(self.workdir, "ferry.port")
        self.log_path = os.path.join(self.workdir, "ferry.log")
        self.proc = None
        self.port = None
        self.bc = None
        self.sap = None
        try:
            self.bc = BigCommerceSim(token=BC_TOKEN, store_hash=STORE_HASH,
                                     log_path=os.path.join(self.workdir, "bc-sim.log")).start()
            self.sap = SapSalesSim(user=SAP_USER, password=SAP_PASSWORD,
                                   latency_ms=sap_latency_ms,
                                   log_path=os.path.join(self.workdir, "sap-sim.log")).start()
            self.write_config()
        except BaseException:
            self.close()
            raise

    # -- config and environment ---------------------------------------------

    def write_config(self):
        lines = [
            "-- written by tests/e2e/harness.py",
            "return {",
            "  state = { path = %s }," % lua_str(self.db_path),
            "  workers = %d," % self.workers,
            "  log = { level = %s }," % lua_str(self.log_level),
        ]
        if self.plugin_dir:
            lines.append("  plugins = { dir = %s }," % lua_str(self.plugin_dir))
        lines += [
            "  mappings = { dir = %s, lua_path = %s, enabled = { \"customer_to_contact\" }%s },"
            % (lua_str(self.mapping_dir), lua_str(os.path.join(REPO, "lua")),
               ", " + self.mappings_extra if self.mappings_extra else ""),
            "  webhooks = { address = \"127.0.0.1\", port = 0, port_file = %s,"
            " max_body = 1048576, coalesce_window = 1%s }," % (lua_str(self.port_file),
                                          ", " + self.webhooks_extra if self.webhooks_extra
                                          else ""),
            "  poll = { interval = %d }," % self.poll_interval,
            "  retry = { max_attempts = 5, base_delay = 0.05, max_delay = 1 },",
            "  connectors = {",
            "    bigcommerce = { store_hash = %s, access_token = env(\"FERRY_TEST_BC_TOKEN\"),"
            % lua_str(STORE_HASH),
            "                    api_base = %s," % lua_str(self.bc.api_base),
            "                    webhook_secret = env(\"FERRY_TEST_WEBHOOK_SECRET\") },",
            "    sap_sales = { service_root = %s," % lua_str(self.sap.service_root),
            "                  username = %s, password = env(\"FERRY_TEST_SAP_PASSWORD\") },"
            % lua_str(SAP_USER),
            "  },",
            "}",
        ]
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")

    def env(self):
        env = dict(os.environ)
        env["FERRY_TEST_BC_TOKEN"] = BC_TOKEN
        env["FERRY_TEST_WEBHOOK_SECRET"] = WEBHOOK_SECRET
        env["FERRY_TEST_SAP_PASSWORD"] = SAP_PASSWORD
        env["FERRY_SOURCE_DIR"] = REPO
        if self.plugin_dir:
            env["FERRY_PLUGIN_DIR"] = self.plugin_dir
        return env

    # -- the daemon -----------------------------------------------------------

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                tail = fh.readlines()[-lines:]
        except OSError:
            return "(no daemon log at %s)" % self.log_path
        return "".join(tail)

    def fail(self, message):
        raise DeadlineError("%s\n--- ferry log tail (%s) ---\n%s--- end of log ---"
                            % (message, self.log_path, self.log_tail()))

    def start(self, timeout=30.0):
        """Starts `ferry run`, waits for its port file and /healthz."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("daemon already running")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        log = open(self.log_path, "ab")
        try:
            log.write(("=== ferry run -c %s (%s)\n" % (self.config_path, time.strftime("%X")))
                      .encode())
            log.flush()
            self.proc = _track(subprocess.Popen(
                [self.bin, "run", "-c", self.config_path], cwd=self.workdir, env=self.env(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log))
        finally:
            log.close()
        self.port = None

        def ready():
            if self.proc.poll() is not None:
                self.fail("ferry run exited with status %s before listening" % self.proc.returncode)
            try:
                with open(self.port_file, encoding="ascii") as fh:
                    text = fh.read()
            except OSError:
                return False
            if not text.endswith("\n"):
                return False
            self.port = int(text.strip())
            return True

        self.wait_for(ready, timeout, "ferry to write its port file")
        self.wait_for(lambda: self.healthz() == 200, timeout, "GET /healthz to answer 200")
        return self.proc

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Signals the daemon and waits for it; returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.fail("ferry did not exit within %.0f s of signal %d" % (timeout, sig))
        return self.proc.returncode

    def cli(self, *args, timeout=240.0):
        """Runs `ferry <args>`; stdout captured, stderr appended to the log."""
        log = open(self.log_path, "ab")
        try:
            log.write(("=== ferry %s (%s)\n" % (" ".join(args), time.strftime("%X"))).encode())
            log.flush()
            proc = _track(subprocess.Popen([self.bin] + list(args), cwd=self.workdir,
                                           env=self.env(), stdin=subprocess.DEVNULL,
                                           stdout=subprocess.PIPE, stderr=log))
        finally:
            log.close()
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            self.fail("ferry %s did not finish within %.0f s" % (" ".join(args), timeout))
        return proc.returncode, out.decode("utf-8", "replace")

    def sync_once(self, timeout=240.0):
        return self.cli("sync", "-c", self.config_path, "--once", timeout=timeout)

    def status_json(self):
        rc, out = self.cli("status", "-c", self.config_path, "--json", timeout=30)
        if rc != 0:
            self.fail("ferry status --json exited %d: %s" % (rc, out))
        try:
            return json.loads(out)
        except ValueError:
            self.fail("ferry status --json printed no JSON: %r" % out)

    # -- HTTP toward the daemon ------------------------------------------------

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def webhook_url(self):
        return self.base_url + "/webhooks/bigcommerce"

    def healthz(self):
        try:
            return http_request(self.base_url + "/healthz", timeout=5).status
        except OSError:
            return None

    def post_webhook(self, body, headers=None, timeout=30.0):
        """POSTs raw bytes to the webhook endpoint; returns (status, body bytes).

        http.client rather than urllib: an oversized body may be answered
        (413) and the connection closed before we finish sending, and the
        answer must still be read."""
        if not isinstance(body, bytes):
            body = json.dumps(body).encode("utf-8")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.putrequest("POST", "/webhooks/bigcommerce")
            hdrs = {"Content-Type": "application/json", "Content-Length": str(len(body))}
            hdrs.update(headers or {})
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders()
            try:
                conn.send(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    # -- BigCommerce side ---------------------------------------------------

    def bc_call(self, method, path, body=None):
        return http_request(self.bc.v3_url + path, method, body,
                            {"X-Auth-Token": BC_TOKEN, "Accept": "application/json"})

    def register_hook(self, scope="store/customer/*", secret=WEBHOOK_SECRET):
        r = self.bc_call("POST", "/hooks", {"scope": scope, "destination": self.webhook_url,
                                            "is_active": True,
                                            "headers": {"X-Ferry-Secret": secret}})
        if r.status != 200:
            raise AssertionError("hook registration failed: %d %r" % (r.status, r.body))
        return r.json()["data"]

    def create_customers(self, customers):
        out = []
        for i in range(0, len(customers), 10):
            r = self.bc_call("POST", "/customers", customers[i:i + 10])
            if r.status != 200:
                raise AssertionError("customer create failed: %d %r" % (r.status, r.body))
            out += r.json()["data"]
        return out

    def update_customer(self, cid, **changes):
        item = dict(changes)
        item["id"] = cid
        r = self.bc_call("PUT", "/customers", [item])
        if r.status != 200:
            raise AssertionError("customer update failed: %d %r" % (r.status, r.body))
        return r.json()["data"][0]

    def deliveries(self):
        return self.bc.public_deliveries()

    def wait_deliveries(self, count, timeout=30.0):
        """Waits until `count` webhook deliveries were attempted and finished."""
        def done():
            dl = self.bc.public_deliveries()
            return len(dl) >= count and all(d["done"] for d in dl)
        self.wait_for(done, timeout, "%d webhook deliveries to finish" % count)
        return self.bc.public_deliveries()

    # -- SAP side ----------------------------------------------------------------

    def sap_contacts(self):
        return self.sap.all_contacts()

    def sap_requests(self):
        with self.sap.lock:
            return list(self.sap.requests)

    def sap_stats(self):
        with self.sap.lock:
            return dict(self.sap.stats)

    # -- state DB ----------------------------------------------------------------

    def query(self, sql, args=()):
        """Rows from the state DB (read-only); [] while it does not exist yet."""
        if not os.path.exists(self.db_path):
            return []
        conn = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True, timeout=5)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, args).fetchall()]
        finally:
            conn.close()

    def jobs(self):
        try:
            return self.query("SELECT id, dedupe_key, job_key, kind, state, attempts, last_error"
                              " FROM jobs ORDER BY id")
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise

    def job_counts(self):
        counts = {PENDING: 0, RUNNING: 0, DONE: 0, DEAD: 0}
        for j in self.jobs():
            counts[j["state"]] = counts.get(j["state"], 0) + 1
        return counts

    def wait_drained(self, total=None, timeout=60.0, daemon=True):
        """Waits until no job is pending or running (and `total` jobs exist)."""
        def drained():
            if daemon and not self.running():
                self.fail("ferry exited (status %s) while jobs were outstanding"
                          % (self.proc.returncode if self.proc else None))
            try:
                c = self.job_counts()
            except sqlite3.OperationalError:
                return False   # a writer holds the lock; look again
            n = sum(c.values())
            return c[PENDING] == 0 and c[RUNNING] == 0 and (total is None or n >= total)
        what = "the queue to drain" + (" with %d jobs" % total if total is not None else "")
        self.wait_for(drained, timeout, what)
        return self.job_counts()

    def dead_jobs_text(self):
        rows = [j for j in self.jobs() if j["state"] == DEAD]
        return "\n".join("job %d %s: %s" % (j["id"], j["job_key"], j["last_error"]) for j in rows)

    # -- waiting -------------------------------------------------------------------

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                extra = ""
                try:
                    extra = "\njob counts: %s\n%s" % (self.job_counts(), self.dead_jobs_text())
                except sqlite3.Error:
                    pass
                self.fail("timed out after %.0f s waiting for %s%s" % (timeout, what, extra))
            time.sleep(POLL)

    # -- teardown ------------------------------------------------------------------

    def close(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            if self.bc is not None:
                self.bc.stop()
            if self.sap is not None:
                self.sap.stop()

    def remove_workdir(self):
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class FerryTestCase(unittest.TestCase):
    """Gives each test a Stack; on failure prints the daemon log and keeps the dir."""

    stack_options = {}

    def setUp(self):
        self.stack = Stack(name=self.id().split(".")[-1], **self.stack_options)
        self.addCleanup(self.stack.close)

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        super().run(result)
        stack = getattr(self, "stack", None)
        if stack is None:
            return result
        if len(result.failures) + len(result.errors) > before:
            sys.stderr.write("\n--- %s failed; work dir kept: %s\n--- ferry log tail ---\n%s\n"
                             % (self.id(), stack.workdir, stack.log_tail(120)))
        else:
            stack.remove_workdir()
        return result


def main():
    """unittest.main that always exits non-zero on failure and kills children."""
    try:
        unittest.main(verbosity=2)
    finally:
        _kill_all()


def customer(n, prefix="person"):
    return {"email": "%s%04d@example.com" % (prefix, n), "first_name": "Given%04d" % n,
            "last_name": "Family%04d" % n, "phone": "+1 555 01%05d" % n}


__all__ = ["Stack", "FerryTestCase", "main", "customer", "WEBHOOK_SECRET", "PENDING", "RUNNING",
           "DONE", "DEAD"]

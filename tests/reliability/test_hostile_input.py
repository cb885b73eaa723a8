#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile webhook input, over raw sockets: malformed and truncated JSON,
wrong types, huge numbers, deep nesting, invalid UTF-8, 10 MiB bodies,
missing, duplicate and malformed headers, broken framing, and slowloris
clients. Each gets a clear 4xx or a closed connection (never a 2xx, never
a 5xx, never silence), nothing is queued, and the daemon stays up and keeps
accepting good webhooks meanwhile.

tests/e2e/test_bad_input.py covers the first few (wrong secret, one
malformed body, a 2 MiB body); this goes through the rest of the list.

Where the answer comes from matters for the assertion: errors ferry itself
decides (secret, JSON, payload shape, size up to twice webhooks.max_body)
are JSON bodies; framing errors are h2o's (text/plain, then the connection
closes). Both are accepted as "clear"; a JSON body is required where ferry
answers.
"""

import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relcommon as rc  # noqa: E402
from harness import FerryTestCase, main  # noqa: E402

VALID = {"scope": "store/customer/created", "store_id": "1000001",
         "data": {"type": "customer", "id": 1},
         "hash": "0123456789abcdef0123456789abcdef01234567",
         "created_at": 1561479335, "producer": "stores/teststore"}
# The listener's whole-request deadline (core/src/listener.c REQUEST_TIMEOUT_MS) plus slack.
SLOW_CUTOFF_S = 10.0
SLOW_SLACK_S = 5.0


def payload(**changes):
    p = json.loads(json.dumps(VALID))
    for k, v in changes.items():
        if v is KeyError:
            p.pop(k, None)
        else:
            p[k] = v
    return json.dumps(p).encode()


def with_data(**changes):
    d = dict(VALID["data"])
    for k, v in changes.items():
        if v is KeyError:
            d.pop(k, None)
        else:
            d[k] = v
    return payload(data=d)


def raw_text_with(old, new):
    """The valid payload with one piece of its JSON text replaced (for what json.dumps cannot
    produce: invalid numbers, escapes, bytes)."""
    text = json.dumps(VALID).encode()
    if old not in text:
        raise AssertionError("%r not in the payload" % old)
    return text.replace(old, new, 1)


class Exchange:
    """One raw request on its own connection: what came back and how it ended."""

    def __init__(self, port, data, timeout=15.0, send_gap=None):
        self.status = None
        self.head = b""
        self.body = b""
        self.closed = False   # the server closed (FIN or RST) without a complete answer
        self.timed_out = False
        conn = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            try:
                conn.sendall(data)
            except OSError:
                self.closed = True   # refused mid-body (e.g. over the size limit)
            buf = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    self.timed_out = True
                    break
                except OSError:
                    self.closed = True
                    break
                if not chunk:
                    self.closed = True
                    break
                buf += chunk
                if b"\r\n\r\n" in buf:
                    head, _, body = buf.partition(b"\r\n\r\n")
                    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    if m and len(body) >= int(m.group(1)):
                        break
        finally:
            conn.close()
        if buf.startswith(b"HTTP/1."):
            head, _, body = buf.partition(b"\r\n\r\n")
            self.head, self.body = head, body
            self.status = int(head.split(b" ", 2)[1])

    @property
    def json_body(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:
            return None

    def describe(self):
        if self.status is not None:
            return "%d %r" % (self.status, self.body[:120])
        return "no answer (%s)" % ("timed out" if self.timed_out else "closed")


def request(body, headers=None, secret=True, method="POST", path="/webhooks/bigcommerce",
            framing="length"):
    """Raw HTTP/1.1 request bytes."""
    hdrs = [("Host", "127.0.0.1"), ("Content-Type", "application/json")]
    if secret:
        hdrs.append(("X-Ferry-Secret", rc.WEBHOOK_SECRET))
    hdrs += headers or []
    if framing == "length":
        hdrs.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        hdrs.append(("Transfer-Encoding", "chunked"))
        chunks = b""
        for i in range(0, len(body), 1 << 16):
            part = body[i:i + (1 << 16)]
            chunks += b"%x\r\n" % len(part) + part + b"\r\n"
        body = chunks + b"0\r\n\r\n"
    head = "%s %s HTTP/1.1\r\n" % (method, path)
    raw = head.encode() + b"".join(k.encode() + b": " + v.encode() + b"\r\n" for k, v in hdrs)
    return raw + b"\r\n" + body


def cases():
    """(name, request bytes, expectation): "json4xx" = a 4xx with a JSON body from ferry,
    a specific status, or "4xx/close" for framing errors answered by h2o."""
    out = []
    add = out.append
    valid = json.dumps(VALID).encode()

    # Malformed and truncated JSON.
    for name, body in (("empty body", b""), ("lone brace", b"{"), ("not JSON", b"nul"),
                       ("unclosed array", b"[1,2"), ("extra brace", b"{}}"),
                       ("trailing garbage", valid + b" trailing"),
                       ("single quotes", valid.replace(b'"', b"'")),
                       ("comment", b"/* x */" + valid), ("BOM", b"\xef\xbb\xbf" + valid)):
        add(("malformed: " + name, request(body), 400))
    for cut in sorted(set([1, 2, 10, 25, 50, len(valid) // 2, len(valid) - 2, len(valid) - 1])):
        add(("truncated at %d/%d" % (cut, len(valid)), request(valid[:cut]), 400))

    # Wrong types and shapes.
    for name, body in (
            ("scope number", payload(scope=5)), ("scope array", payload(scope=[])),
            ("scope null", payload(scope=None)), ("scope empty", payload(scope="")),
            ("scope 300 bytes", payload(scope="store/customer/" + "x" * 300)),
            ("scope missing", payload(scope=KeyError)),
            ("hash number", payload(hash=5)), ("hash empty", payload(hash="")),
            ("hash 200 bytes", payload(hash="f" * 200)), ("hash missing", payload(hash=KeyError)),
            ("data string", payload(data="1")), ("data array", payload(data=[1])),
            ("data null", payload(data=None)), ("data missing", payload(data=KeyError)),
            ("id string", with_data(id="1")), ("id float", with_data(id=1.5)),
            ("id negative", with_data(id=-3)), ("id zero", with_data(id=0)),
            ("id true", with_data(id=True)), ("id null", with_data(id=None)),
            ("id missing", with_data(id=KeyError)), ("store_id object", payload(store_id={})),
            ("top-level array", json.dumps([VALID]).encode()),
            ("top-level string", b'"store/customer/created"'), ("top-level number", b"42")):
        add(("type: " + name, request(body), 400))

    # Huge numbers: beyond double and beyond int64.
    for name, lit in (("id 1e400", b"1e400"), ("id -1e400", b"-1e400"),
                      ("id 2^63", b"9223372036854775808"),
                      ("id 30 digits", b"123456789012345678901234567890"),
                      ("id 1e18 as a real", b"1e18")):
        add(("number: " + name, request(raw_text_with(b'"id": 1', b'"id": ' + lit)), 400))
    add(("number: created_at 1e999", request(raw_text_with(b"1561479335", b"1e999")), 400))

    # Deep nesting beyond any parser's limit.
    for name, body in (
            ("arrays 100k", b'{"scope":"store/customer/created","hash":"h","data":'
             + b"[" * 100000 + b"]" * 100000 + b"}"),
            ("objects 5k", b'{"scope":"store/customer/created","hash":"h","data":'
             + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}"),
            ("unclosed 1M", b"[" * (1 << 20))):
        add(("nesting: " + name, request(body), 400))

    # Invalid UTF-8 and forbidden code points.
    for name, bad in (("0xff byte", b"\xff"), ("overlong slash", b"\xc0\xaf"),
                      ("UTF-16 surrogate", b"\xed\xa0\x80"), ("cut sequence", b"\xe2\x82"),
                      ("5-byte form", b"\xf8\x88\x80\x80\x80"),
                      ("lone surrogate escape", b"\\ud800"), ("NUL escape", b"\\u0000")):
        add(("utf-8: " + name + " in scope",
             request(raw_text_with(b"store/customer/created", b"store/customer/" + bad)), 400))
    add(("utf-8: invalid in a key", request(raw_text_with(b'"producer"', b'"prod\xffucer"')), 400))

    # Size: just over max_body (1 MiB here) is ferry's JSON 413; 10 MiB is
    # refused by h2o before the body is read (413 or a close).
    over = payload(pad="x" * (1024 * 1024))
    add(("size: 1 MiB + a little", request(over), 413))
    ten = payload(pad="x" * (10 * 1024 * 1024))
    add(("size: 10 MiB, Content-Length", request(ten), "413/close"))
    add(("size: 10 MiB, chunked", request(ten, framing="chunked"), "413/close"))

    # Headers: missing, wrong, duplicated, malformed.
    add(("header: no secret", request(valid, secret=False), 401))
    add(("header: wrong secret", request(valid, secret=False,
                                         headers=[("X-Ferry-Secret", "not-it")]), 401))
    add(("header: empty secret", request(valid, secret=False,
                                         headers=[("X-Ferry-Secret", "")]), 401))
    add(("header: two wrong secrets", request(valid, secret=False, headers=[
        ("X-Ferry-Secret", "one"), ("X-Ferry-Secret", "two")]), 401))
    add(("header: no Content-Length and no body framing",
         request(valid, framing=None), "4xx/close"))
    for v in ("abc", "-5", "99999999999999999999", "1 2"):
        add(("header: Content-Length %r" % v,
             request(valid, framing=None, headers=[("Content-Length", v)]), "4xx/close"))
    add(("header: line without a colon", request(valid)[:-len(valid) - 2]
         + b"Broken header line\r\n\r\n" + valid, "4xx/close"))
    add(("header: NUL in a value", request(valid, headers=[("X-Note", "a\x00b")]), "4xx/close"))
    add(("header: 300 headers", request(valid, headers=[("X-H%d" % i, "v")
                                                        for i in range(300)]), "4xx/close"))
    add(("framing: bad chunk size", request(b"", framing=None, headers=[
        ("Transfer-Encoding", "chunked")]) + b"zz\r\nabc\r\n0\r\n\r\n", "4xx/close"))
    add(("framing: HTTP/2.0 request line",
         request(valid).replace(b"HTTP/1.1", b"HTTP/2.0", 1), "4xx/close"))
    add(("framing: TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
         "4xx/close"))

    # Routes and methods.
    add(("route: GET", request(b"", method="GET"), 405))
    add(("route: PUT", request(valid, method="PUT"), 405))
    add(("route: unknown instance", request(valid, path="/webhooks/nosuch"), 404))
    add(("route: dot segments", request(valid, path="/webhooks/../../etc/passwd"), 404))
    add(("route: NUL in path", request(valid, path="/webhooks/big%00commerce"), 404))
    return out


class HostileInputTest(FerryTestCase):
    def setUp(self):
        self.stack = rc.RelStack(name="hostile")
        self.addCleanup(self.stack.close)

    def check(self, name, ex, expect):
        what = "%s: got %s" % (name, ex.describe())
        self.assertFalse(ex.timed_out, what + " (the daemon neither answered nor closed)")
        if ex.status is None:
            self.assertIn(expect, ("4xx/close", "413/close"), what)
            return "close"
        self.assertTrue(400 <= ex.status < 500, what)
        if expect == "413/close":
            self.assertEqual(ex.status, 413, what)
        elif isinstance(expect, int):
            self.assertEqual(ex.status, expect, what)
            body = ex.json_body
            self.assertIsInstance(body, dict, what + " (ferry's answers are JSON)")
            self.assertIn("error", body, what)
        return "%d%s" % (ex.status, "" if ex.json_body is not None else " (h2o)")

    def assert_alive_and_empty(self):
        s = self.stack
        self.assertTrue(s.running(), "the daemon died")
        self.assertEqual(s.healthz(), 200)
        self.assertEqual(s.jobs(), [], "hostile input must not create jobs")

    def good_webhook_works(self, cid=1):
        s = self.stack
        t0 = time.monotonic()
        body = json.dumps(dict(VALID, data={"type": "customer", "id": cid},
                               hash="%040x" % cid)).encode()
        ex = Exchange(s.fixed_port, request(body))
        self.assertEqual(ex.status, 200, ex.describe())
        return time.monotonic() - t0

    def test_malformed_input_is_refused(self):
        s = self.stack
        s.start()
        seen = {}
        for name, data, expect in cases():
            ex = Exchange(s.fixed_port, data)
            seen[name] = self.check(name, ex, expect)
            self.assertTrue(s.running(), "daemon died after %s" % name)
        for name in sorted(seen):
            print("  %-52s %s" % (name, seen[name]))
        self.assert_alive_and_empty()
        self.good_webhook_works()
        s.wait_for(lambda: len(s.jobs()) == 1, 10, "the good webhook's job")
        self.assertEqual(s.stop(), 0)
        rc.figures("hostile_input", {"cases": len(seen),
                                     "closed": sum(1 for v in seen.values() if v == "close"),
                                     "h2o_answers": sum(1 for v in seen.values() if "h2o" in v)})

    def test_unknown_scope_is_acknowledged_but_not_queued(self):
        s = self.stack
        s.start()
        ex = Exchange(s.fixed_port, request(payload(scope="store/unheard/of")))
        self.assertEqual(ex.status, 200, ex.describe())
        self.assertEqual(ex.json_body.get("status"), "ignored", ex.describe())
        self.assert_alive_and_empty()
        self.assertEqual(s.stop(), 0)

    def test_duplicate_secret_header_is_refused(self):
        """A header that must appear once, twice, is ambiguous (RFC 9110 5.3):
        whichever copy a proxy or the connector reads, refuse the delivery."""
        s = self.stack
        s.start()
        valid = json.dumps(VALID).encode()
        for order in ((rc.WEBHOOK_SECRET, "wrong"), ("wrong", rc.WEBHOOK_SECRET)):
            ex = Exchange(s.fixed_port, request(valid, secret=False, headers=[
                ("X-Ferry-Secret", order[0]), ("X-Ferry-Secret", order[1])]))
            self.assertEqual(ex.status, 401, "secret header twice %s: %s"
                             % (("(good, wrong)" if order[0] == rc.WEBHOOK_SECRET
                                 else "(wrong, good)"), ex.describe()))
        self.assert_alive_and_empty()
        self.assertEqual(s.stop(), 0)

    def test_slowloris_is_cut_off(self):
        s = self.stack
        s.start()
        results = {}
        lock = threading.Lock()
        stop = threading.Event()

        def slow(name, prefix, trickle):
            """Sends `prefix`, then one byte of `trickle` every 0.5 s until the server hangs up."""
            t0 = time.monotonic()
            conn = socket.create_connection(("127.0.0.1", s.fixed_port), timeout=2)
            outcome = "still open"
            try:
                conn.sendall(prefix)
                for b in trickle:
                    if stop.wait(0.5):
                        break
                    try:
                        conn.sendall(bytes([b]))
                        conn.settimeout(0.001)
                        conn.recv(4096)   # an answer (408) or EOF: the server gave up on us
                        outcome = "closed"
                        break
                    except socket.timeout:
                        pass
                    except OSError:
                        outcome = "closed"
                        break
                    finally:
                        conn.settimeout(2)
            finally:
                conn.close()
            with lock:
                results[name] = (outcome, time.monotonic() - t0)

        valid = json.dumps(VALID).encode()
        full = request(valid)
        head_end = full.index(b"\r\n\r\n") + 4
        threads = []
        for i in range(10):
            threads.append(threading.Thread(target=slow, args=(
                "slow headers %d" % i, b"POST /webhooks/bigcommerce HTTP/1.1\r\n",
                b"X-Slow: " + b"a" * 200)))
        for i in range(10):
            threads.append(threading.Thread(target=slow, args=(
                "slow body %d" % i, full[:head_end], valid)))
        idle = [socket.create_connection(("127.0.0.1", s.fixed_port)) for _ in range(100)]
        try:
            for t in threads:
                t.start()
            # Meanwhile, good deliveries are answered promptly.
            worst = 0.0
            t_end = time.monotonic() + SLOW_CUTOFF_S
            n = 0
            while time.monotonic() < t_end:
                n += 1
                worst = max(worst, self.good_webhook_works(cid=n))
            deadline = time.monotonic() + SLOW_SLACK_S + SLOW_CUTOFF_S
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            stop.set()
            for t in threads:
                t.join()
        finally:
            stop.set()
            for c in idle:
                c.close()
        for name in sorted(results):
            outcome, secs = results[name]
            print("  %-16s %s after %.1f s" % (name, outcome, secs))
            self.assertEqual(outcome, "closed", "%s: the server kept a slow client %s"
                             % (name, outcome))
            self.assertLess(secs, SLOW_CUTOFF_S + SLOW_SLACK_S, name)
        self.assertLess(worst, 2.0, "good deliveries were held up by slow clients")
        self.assertTrue(s.running())
        # Only the good deliveries were queued.
        s.wait_for(lambda: len(s.jobs()) == n, 10, "the good deliveries' jobs")
        self.assertEqual(s.stop(), 0)
        rc.figures("slowloris", {"slow_clients": len(results), "idle_connections": len(idle),
                                 "good_deliveries": n, "worst_good_s": round(worst, 3),
                                 "cut_off_after_s": round(max(v[1] for v in results.values()),
                                                          1)})


if __name__ == "__main__":
    main()

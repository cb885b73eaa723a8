# SPDX-License-Identifier: MIT
"""Plumbing shared by the vendor simulators (BigCommerce, SAP Sales Cloud).

Both simulators are small HTTP/1.1 servers on loopback that must behave like
the real services closely enough that the daemon's real connectors run
against them unchanged. What they share lives here: a threading server that
can be stopped without leaking handler threads even while clients keep
connections alive (libcurl reuses connections, so a plain server_close()
would wait forever on idle keep-alive sockets), request-body reading that
copes with chunked uploads and Expect: 100-continue, fault injection, and
the command-line runner that writes the bound port to a file and exits
cleanly on SIGTERM.

Standard library only, so the tests need nothing beyond python3.
"""

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SimServer(ThreadingHTTPServer):
    """Threading server that remembers its open connections.

    Handler threads are non-daemon and joined on close; open sockets are shut
    down first so that threads blocked on an idle keep-alive connection wake.
    """

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, addr, handler, sim):
        self.sim = sim
        self._conns = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def get_request(self):
        conn, addr = super().get_request()
        # Without this, a keep-alive client (libcurl) waits for the delayed
        # ACK between our header and body segments: ~40 ms per request.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr

    def process_request_thread(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def close_connections(self):
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class SimHandler(BaseHTTPRequestHandler):
    """Base request handler: keep-alive, quiet logging, body helpers."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate small writes; with Nagle on, each
    # keep-alive response would wait for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server_version = "ferry-sim/1"
    sys_version = ""

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
        self.server.sim.log("%s %s" % (self.address_string(), fmt % args))

    def parse_request(self):  # noqa: D401 (stdlib name)
        # One handler object serves every request of a keep-alive connection:
        # forget the previous request's body before reading this one.
        self._body = None
        return super().parse_request()

    def read_body(self):
        """The raw request body; handles Content-Length and chunked uploads."""
        if getattr(self, "_body", None) is not None:
            return self._body
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until the blank line
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
            body = b"".join(parts)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
        self._body = body
        return body

    def send_raw(self, status, body=b"", headers=None, content_type="application/json"):
        # An unread request body would be parsed as the next request on this
        # keep-alive connection, so drain it even when answering early.
        self.read_body()
        self.send_response(status)
        sent_ct = False
        for name, value in (headers or []):
            if name.lower() == "content-type":
                sent_ct = True
            self.send_header(name, value)
        if body and not sent_ct and content_type:
            self.send_header("Content-Type", content_type)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        # Headers and body leave in one write (one segment for small answers).
        self._headers_buffer.append(b"\r\n")
        if body and status not in (204, 304) and self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()
        self.wfile.flush()

    def send_json(self, status, obj, headers=None):
        body = json.dumps(obj).encode("utf-8")
        self.send_raw(status, body, headers, "application/json; charset=utf-8")


def json_body(handler):
    """Parses the request body as JSON; returns (value, error-text)."""
    raw = handler.read_body()
    if not raw:
        return None, "request body is empty"
    try:
        return json.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError) as exc:
        return None, "malformed JSON: %s" % exc


class Response:
    """What http_request() returns: status, headers (case-insensitive), body."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name):
        return self.headers.get(name)

    def header_all(self, name):
        return self.headers.get_all(name) or []


def http_request(url, method="GET", body=None, headers=None, timeout=30.0):
    """One HTTP request with urllib; never raises for HTTP error statuses.

    `body` may be bytes/str (sent as is) or any other value (sent as JSON).
    """
    import urllib.error
    import urllib.request
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method)
    for k, v in hdrs.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        try:
            payload = exc.read()
        except OSError:
            payload = b""
        return Response(exc.code, exc.headers, payload)


class Faults:
    """One-shot or counted injected failures, matched on method + path part."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []

    def add(self, rule):
        rule = dict(rule)
        rule.setdefault("method", "")
        rule.setdefault("path", "")
        rule.setdefault("status", 500)
        rule.setdefault("times", 1)
        rule.setdefault("delay_ms", 0)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self):
        with self._lock:
            self._rules = []

    def take(self, method, path):
        with self._lock:
            for rule in self._rules:
                if rule["method"] and rule["method"].upper() != method:
                    continue
                if rule["path"] and rule["path"] not in path:
                    continue
                if rule["times"] <= 0:
                    continue
                rule["times"] -= 1
                return dict(rule)
        return None


class SimBase:
    """start()/stop() lifecycle shared by both simulators."""

    handler_class = SimHandler
    name = "sim"

    def __init__(self, host="127.0.0.1", port=0, verbose=False, log_path=None):
        self.host = host
        self._want_port = port
        self.verbose = verbose
        self.log_path = log_path
        self._log_lock = threading.Lock()
        self._server = None
        self._thread = None
        self.faults = Faults()

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def base_url(self):
        return "http://%s:%d" % (self.host, self.port)

    def log(self, text):
        if not self.verbose and not self.log_path:
            return
        line = "%s %s: %s\n" % (time.strftime("%H:%M:%S"), self.name, text)
        with self._log_lock:
            if self.log_path:
                with open(self.log_path, "a", encoding="utf-8") as fh:
                    fh.write(line)
            if self.verbose:
                sys.stderr.write(line)

    def start(self):
        self._server = SimServer((self.host, self._want_port), self.handler_class, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="%s-http" % self.name)
        self._thread.start()
        self.on_start()
        return self

    def stop(self):
        if self._server is None:
            return
        self.on_stop()
        self._server.shutdown()
        self._thread.join()
        self._server.close_connections()
        self._server.server_close()
        self._server = None

    def on_start(self):
        pass

    def on_stop(self):
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def write_port_file(path, port):
    """Writes the port atomically so a reader never sees a partial number."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write("%d\n" % port)
    os.replace(tmp, path)


def base_arg_parser(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    ap.add_argument("--log-file", help="append request log lines to this file")
    return ap


def run_cli(sim, port_file):
    """Serves until SIGTERM/SIGINT, then shuts down and returns 0."""
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sim.start()
    if port_file:
        write_port_file(port_file, sim.port)
    sys.stderr.write("%s listening on %s\n" % (sim.name, sim.base_url))
    sys.stderr.flush()
    while not stop.wait(0.2):
        pass
    sim.stop()
    return 0

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The webhook listener serving TLS itself, with a self-signed certificate
made for this test (openssl CLI): the BigCommerce simulator delivers to an
https:// destination and trusts exactly that certificate; a client that
does not trust it, and a plain-HTTP client, get no answer; the header
limits answer 431; the idle timeout (1 s here, 10 s by default) closes a
connection that never starts its handshake and a kept-alive one that goes
quiet; and SIGTERM stops the daemon promptly even while a client holds a
connection in the middle of its handshake (idle timeout 30 s then)."""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import WEBHOOK_SECRET, FerryTestCase, main  # noqa: E402
from ops_harness import OpsStack, https_context  # noqa: E402


def make_cert(workdir):
    cert = os.path.join(workdir, "tls-cert.pem")
    key = os.path.join(workdir, "tls-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o600)
    return cert, key


class TlsStack(OpsStack):
    """Talks HTTPS to the webhook port, trusting only the test certificate."""

    cert = None

    @property
    def base_url(self):
        return "https://127.0.0.1:%d" % self.port

    def connection(self, timeout=10.0):
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=https_context(self.cert))

    def healthz(self):
        try:
            conn = self.connection(5)
            try:
                conn.request("GET", "/healthz")
                return conn.getresponse().status
            finally:
                conn.close()
        except OSError:
            return None


def closed_within(sock, seconds):
    """Seconds until the peer closes `sock` (reads return b''), or None."""
    sock.settimeout(seconds)
    start = time.monotonic()
    try:
        while sock.recv(4096):
            pass
    except (socket.timeout, TimeoutError):
        return None
    except (ConnectionResetError, ssl.SSLError):
        pass
    return time.monotonic() - start


class OpsTlsTest(FerryTestCase):
    def setUp(self):
        if not shutil.which("openssl"):
            sys.stderr.write("SKIP: the openssl command is needed to make a test certificate\n")
            raise SystemExit(77)
        self.stack = TlsStack(name="ops_tls", admin=False)
        self.addCleanup(self.stack.close)
        self.stack.cert, self.key = make_cert(self.stack.workdir)
        self.set_listener(idle=1)
        # The simulator's urllib delivery trusts what SSL_CERT_FILE names.
        self.saved_cert_file = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = self.stack.cert
        self.addCleanup(self.restore_env)

    def restore_env(self):
        if self.saved_cert_file is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = self.saved_cert_file

    def set_listener(self, idle):
        self.stack.webhooks_extra = (
            'tls = { cert = "%s", key = "%s" }, max_headers = 20, max_header_bytes = 4096, '
            'idle_timeout = %d' % (self.stack.cert, self.key, idle))
        self.stack.write_config()

    def test_tls_listener_limits_and_timeouts(self):
        s = self.stack
        s.start()
        self.assertIn("(TLS)", s.log_text())

        # A real delivery over TLS, end to end.
        hook = s.register_hook()
        self.assertTrue(hook["destination"].startswith("https://"), hook)
        s.create_customers([{"email": "tls@example.com", "first_name": "Tee", "last_name": "Ls"}])
        (d,) = s.wait_deliveries(1)
        self.assertEqual(d["status"], 200, d)
        s.wait_drained(total=1)
        self.assertEqual(len(s.sap_contacts()), 1)

        # A client that does not trust the certificate gets no HTTP at all.
        # (No trust anchors at all: SSL_CERT_FILE points at ours for the sim.)
        strict = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
            with self.assertRaises(ssl.SSLCertVerificationError):
                strict.wrap_socket(raw, server_hostname="127.0.0.1").close()
        # Nor does plain HTTP.
        plain = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        with self.assertRaises((http.client.HTTPException, ConnectionError)):
            plain.request("GET", "/healthz")
            plain.getresponse()
        plain.close()

        # Header limits: 431 with a JSON reason, before any route runs.
        conn = s.connection()
        conn.putrequest("POST", "/webhooks/bigcommerce")
        for i in range(25):
            conn.putheader("X-Filler-%d" % i, "x")
        conn.putheader("Content-Length", "2")
        conn.endheaders(b"{}")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 431)
        self.assertEqual(json.loads(resp.read())["error"], "headers_too_large")
        conn.close()
        conn = s.connection()
        conn.request("GET", "/healthz", headers={"X-Big": "y" * 5000})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 431)
        self.assertIn("bytes of headers", json.loads(resp.read())["message"])
        conn.close()
        # Within the limits the same endpoint still answers (the secret header counts too).
        conn = s.connection()
        conn.request("GET", "/healthz", headers={"X-Ferry-Secret": WEBHOOK_SECRET})
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()

        # Idle timeout (1 s): a connection that never starts its handshake...
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
            took = closed_within(raw, 8)
        self.assertIsNotNone(took, "a silent connection was never closed")
        self.assertLess(took, 5, "closed after %.1f s; the idle timeout is 1 s" % took)
        # ... and a kept-alive one that goes quiet after a request.
        ctx = https_context(s.cert)
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
            tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            first = tls.recv(4096)
            self.assertTrue(first.startswith(b"HTTP/1.1 200"), first)
            took = closed_within(tls, 8)
            tls.close()
        self.assertIsNotNone(took, "an idle keep-alive connection was never closed")
        self.assertLess(took, 5, "closed after %.1f s; the idle timeout is 1 s" % took)
        self.assertEqual(s.stop(), 0)

        # SIGTERM while a client sits in the handshake (idle timeout 30 s):
        # the daemon closes it itself instead of waiting it out.
        self.set_listener(idle=30)
        s.start()
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        try:
            t0 = time.monotonic()
            self.assertEqual(s.stop(timeout=10), 0)
            self.assertLess(time.monotonic() - t0, 10)
        finally:
            raw.close()


if __name__ == "__main__":
    main()

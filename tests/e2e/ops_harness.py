# SPDX-License-Identifier: MIT
"""Helpers for the operations tests (tests/e2e/test_ops_*.py).

OpsStack is the harness's Stack with extra configuration sections (admin
listener, privacy, retention, webhook TLS) spliced into the Lua config it
writes, the admin listener's port file, and a Prometheus text parser that
also checks the exposition format, so that a scrape that a Prometheus
server would reject fails the test.
"""

import http.client
import json
import os
import re
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


class ExpositionError(AssertionError):
    pass


def parse_prometheus(text):
    """{(name, ((label, value), ...)): float} from a text exposition.

    Checks what a scraper relies on: every sample belongs to a family
    announced by # HELP and # TYPE before it, label syntax, numeric values,
    histogram buckets cumulative and ending in +Inf equal to _count."""
    if not text.endswith("\n"):
        raise ExpositionError("exposition does not end with a newline")
    types = {}
    helps = set()
    samples = {}
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            helps.add(line.split(" ", 3)[2])
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram"):
                raise ExpositionError("line %d: bad TYPE line %r" % (n, line))
            if parts[2] in types:
                raise ExpositionError("line %d: family %s announced twice" % (n, parts[2]))
            types[parts[2]] = parts[3]
            continue
        if line.startswith("#") or not line:
            raise ExpositionError("line %d: unexpected %r" % (n, line))
        m = SAMPLE.match(line)
        if not m:
            raise ExpositionError("line %d: not a sample: %r" % (n, line))
        name, labels_text, value = m.group(1), m.group(2), m.group(3)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
        if family not in types or family not in helps:
            raise ExpositionError("line %d: sample %s before its HELP/TYPE" % (n, name))
        labels = []
        if labels_text:
            pos = 0
            while pos < len(labels_text):
                lm = LABEL.match(labels_text, pos)
                if not lm:
                    raise ExpositionError("line %d: bad labels %r" % (n, labels_text))
                labels.append((lm.group(1), lm.group(2).replace('\\"', '"')
                               .replace("\\n", "\n").replace("\\\\", "\\")))
                pos = lm.end()
        try:
            v = float(value)
        except ValueError:
            raise ExpositionError("line %d: value %r is not a number" % (n, value))
        key = (name, tuple(sorted(labels)))
        if key in samples:
            raise ExpositionError("line %d: duplicate sample %r" % (n, key))
        samples[key] = v
    # Histograms: cumulative buckets, +Inf == _count.
    for family, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (name, labels), v in samples.items():
            if name == family + "_bucket":
                rest = tuple(l for l in labels if l[0] != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((float("inf") if le == "+Inf" else float(le),
                                                    v))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [c for _, c in buckets]
            if counts != sorted(counts):
                raise ExpositionError("%s%r: buckets not cumulative" % (family, rest))
            if buckets[-1][0] != float("inf"):
                raise ExpositionError("%s%r: no +Inf bucket" % (family, rest))
            if samples.get((family + "_count", rest)) != buckets[-1][1]:
                raise ExpositionError("%s%r: _count differs from the +Inf bucket" % (family, rest))
    return samples, types


def value(samples, name, **labels):
    """A sample's value, or None."""
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples, name, **labels):
    """Sum of a family's samples whose labels include the given ones."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


class OpsStack(Stack):
    """A Stack whose config carries extra top-level sections (Lua text)."""

    def __init__(self, extra="", admin=True, **kw):
        self.extra = extra
        self.admin = admin
        self.admin_port = None
        super().__init__(**kw)

    @property
    def admin_port_file(self):
        return os.path.join(self.workdir, "admin.port")

    def write_config(self):
        super().write_config()
        sections = []
        if self.admin:
            sections.append('  admin = { address = "127.0.0.1", port = 0, port_file = "%s" },'
                            % self.admin_port_file)
        if self.extra:
            sections.append(self.extra)
        with open(self.config_path, encoding="utf-8") as fh:
            text = fh.read()
        text = text.replace("return {\n", "return {\n" + "\n".join(sections) + "\n", 1)
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write(text)

    def start(self, timeout=30.0):
        if os.path.exists(self.admin_port_file):
            os.unlink(self.admin_port_file)
        proc = super().start(timeout)
        if self.admin:
            def ready():
                try:
                    with open(self.admin_port_file, encoding="ascii") as fh:
                        text = fh.read()
                except OSError:
                    return False
                if not text.endswith("\n"):
                    return False
                self.admin_port = int(text)
                return True
            self.wait_for(ready, timeout, "the admin port file")
        return proc

    def admin_get(self, path, timeout=30.0):
        """(status, content type, body text) of GET path on the admin listener."""
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type"), resp.read().decode("utf-8")
        finally:
            conn.close()

    def scrape(self):
        status, ctype, body = self.admin_get("/metrics")
        if status != 200:
            self.fail("GET /metrics answered %d: %s" % (status, body))
        if not ctype.startswith("text/plain; version=0.0.4"):
            self.fail("GET /metrics content type %r" % ctype)
        return parse_prometheus(body)[0]

    def readyz(self):
        status, _, body = self.admin_get("/readyz")
        return status, json.loads(body)

    def log_text(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()


def https_context(cert_path):
    """A client context that trusts exactly the test's self-signed certificate."""
    ctx = ssl.create_default_context(cafile=cert_path)
    ctx.check_hostname = True
    return ctx


def wait_until(predicate, timeout, what, stack):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            stack.fail("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.02)

# SPDX-License-Identifier: MIT
"""Plumbing shared by the benchmarks under bench/ (issue 7).

Each benchmark is a program that starts the simulators and the real ferry
(through tests/e2e/harness.py), measures one thing, and prints one table
headed by the machine's core count and the commit. This module holds what
they share: the command line (--size ci|full, --build-dir), a Stack whose
configuration every benchmark can shape, /proc readings (CPU time, RSS),
the test-only "probe" mappings that read a source object and write nothing,
and the table printer.

A benchmark is not a pass/fail test on its figures; it fails (exit 1) only
when the run itself broke: the daemon died, no event arrived, a count that
must match did not. That is what the `bench` CTest label checks.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("FERRY_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))

import harness  # noqa: E402
from harness import (BC_TOKEN, SAP_USER, STORE_HASH, Stack, _track,  # noqa: E402,F401
                     lua_str)
from simcore import http_request  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


class BenchError(Exception):
    """The run itself broke (not a figure that missed its target)."""


# -- command line and environment ---------------------------------------------

def arg_parser(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--size", choices=("ci", "full"),
                    default=os.environ.get("FERRY_BENCH_SIZE", "ci"),
                    help="ci: the smallest run that still proves the path (CTest); "
                         "full: the figures for docs/performance.md (env FERRY_BENCH_SIZE)")
    ap.add_argument("--build-dir", default=os.environ.get("FERRY_BUILD_DIR"),
                    help="where ferry and plugins/ were built, unless FERRY_BIN and "
                         "FERRY_PLUGIN_DIR are set (as CTest does)")
    ap.add_argument("--json", metavar="FILE",
                    help="also append the figures as one JSON line to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    return ap


def setup_env(args):
    """Fills FERRY_BIN / FERRY_PLUGIN_DIR from --build-dir when CTest did not."""
    if args.build_dir:
        bdir = os.path.abspath(args.build_dir)
        os.environ.setdefault("FERRY_BIN", os.path.join(bdir, "ferry"))
        os.environ.setdefault("FERRY_PLUGIN_DIR", os.path.join(bdir, "plugins"))
    os.environ.setdefault("FERRY_SOURCE_DIR", REPO)
    if not os.environ.get("FERRY_BIN"):
        raise BenchError("FERRY_BIN is not set: pass --build-dir BUILD (or run through ctest)")


def knob(name, ci, full, args, cast=int):
    """A size knob: env FERRY_BENCH_<name> wins, else the --size default."""
    raw = os.environ.get("FERRY_BENCH_" + name)
    if raw not in (None, ""):
        return cast(raw)
    return ci if args.size == "ci" else full


def sanitized():
    return os.environ.get("FERRY_SANITIZED") == "1"


def commit():
    try:
        out = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        text = out.stdout.strip()
        if out.returncode == 0 and text:
            dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain",
                                    "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10)
            return text + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def cores():
    try:
        out = subprocess.run(["nproc"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip().isdigit():
            return int(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return os.cpu_count() or 0


def build_type():
    """What the measured binary is, as far as the figures depend on it."""
    return "ASan+UBSan build: figures are not representative" if sanitized() else "optimised build"


# -- the table ------------------------------------------------------------------

class Table:
    """One benchmark's result: rows of (what, figure, target or note)."""

    def __init__(self, title, args):
        self.title = title
        self.size = args.size
        self.rows = []
        self.notes = []
        self.figures = {}
        self.json_path = args.json

    def row(self, what, value, note=""):
        self.rows.append((what, value, note))

    def note(self, text):
        self.notes.append(text)

    def figure(self, key, value):
        """A machine-readable figure, for --json."""
        self.figures[key] = value
        return value

    def print(self, out=sys.stdout):
        head = [self.title,
                "machine: %d cores (nproc), commit %s, size %s, %s"
                % (cores(), commit(), self.size, build_type())]
        w0 = max([len(r[0]) for r in self.rows] + [10])
        w1 = max([len(str(r[1])) for r in self.rows] + [6])
        bar = "=" * max(len(head[0]), len(head[1]), w0 + w1 + 30)
        lines = ["", bar] + head + ["-" * len(bar)]
        lines.append("%-*s  %*s  %s" % (w0, "measure", w1, "figure", "target / note"))
        for what, value, note in self.rows:
            lines.append("%-*s  %*s  %s" % (w0, what, w1, value, note))
        if self.notes:
            lines.append("-" * len(bar))
            lines += ["* " + n for n in self.notes]
        lines.append(bar)
        out.write("\n".join(lines) + "\n")
        out.flush()
        if self.json_path:
            rec = {"bench": self.title, "cores": cores(), "commit": commit(),
                   "size": self.size, "sanitized": sanitized(), "at": int(time.time()),
                   "figures": self.figures}
            with open(self.json_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")


def run_main(body):
    """Runs body(); exit 0 on success, 1 with a traceback when the run broke."""
    code = 1
    try:
        body()
        code = 0
    except BenchError as exc:
        sys.stderr.write("bench: the run broke: %s\n" % exc)
    except harness.DeadlineError as exc:
        sys.stderr.write("bench: the run broke: %s\n" % exc)
    except Exception:  # noqa: BLE001 - any other failure also means a broken run
        traceback.print_exc()
    finally:
        harness._kill_all()
    sys.stdout.flush()
    sys.exit(code)


# -- /proc ------------------------------------------------------------------------

def cpu_seconds(pid):
    """user + system CPU seconds of a live process (all its threads)."""
    with open("/proc/%d/stat" % pid, encoding="ascii") as fh:
        text = fh.read()
    fields = text[text.rindex(")") + 2:].split()
    # After the command: state is field 3, utime 14, stime 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / float(CLK_TCK)


def status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class Sampler:
    """Samples a process's RSS (and a caller's progress count) every `period` s."""

    def __init__(self, pid, period=0.1, progress=None):
        self.pid = pid
        self.period = period
        self.progress = progress
        self.samples = []          # (seconds since start, rss KiB, progress)
        self.hwm = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
        self.t0 = time.monotonic()

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        last_progress = 0
        while not self._stop.is_set():
            rss = status_kb(self.pid, "VmRSS")
            if rss is None:
                break
            hwm = status_kb(self.pid, "VmHWM")
            if hwm is not None:
                self.hwm = hwm
            if self.progress is not None:
                try:
                    last_progress = self.progress()
                except Exception:  # noqa: BLE001 - a locked DB: keep the last count
                    pass
            self.samples.append((time.monotonic() - self.t0, rss, last_progress))
            self._stop.wait(self.period)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.samples


# -- a configurable stack ------------------------------------------------------------

PROBE = """-- bench-only (bench/benchlib.py): reads every %(object)s, writes nothing
return {
  description = "BigCommerce %(object)s, read for a benchmark only",
  source = { "bigcommerce", "%(object)s" },
  target = { "sap_sales", "ContactCollection" },
  key    = "id",
  fields = { LastName = "%(field)s" },
  filter = function(record, ctx) return false end,
}
"""
PROBE_FIELDS = {"customer": "last_name", "order": "billing_address.last_name"}


def probe_mappings(objects):
    """A temporary mapping dir with `<object>_probe` mappings whose filter drops
    everything: every record is listed, queued, loaded and mapped, SAP sees none.
    Returns (dir, names); the caller removes dir."""
    d = tempfile.mkdtemp(prefix="ferry-bench-mappings-")
    names = []
    for obj in objects:
        name = "%s_probe" % obj
        os.makedirs(os.path.join(d, name))
        with open(os.path.join(d, name, "mapping.lua"), "w", encoding="utf-8") as fh:
            fh.write(PROBE % {"object": obj, "field": PROBE_FIELDS[obj]})
        names.append(name)
    return d, names


class BenchStack(Stack):
    """harness.Stack with the knobs the benchmarks turn.

    bc_extra / sap_extra: more connector keys (Lua source text);
    bc_api_base: where the BigCommerce connector sends requests (default the
    simulator); enabled: mapping names; retry / http / poll: Lua table bodies.
    A BigCommerceSim subclass (bench/order_source.py) comes in through
    make_stack(bc_class=...).
    """

    def __init__(self, name="bench", enabled=("customer_to_contact",), bc_extra="",
                 sap_extra="", bc_api_base=None, retry="max_attempts = 5, base_delay = 0.05,"
                 " max_delay = 1", http="", poll_extra="", **kw):
        self.enabled = list(enabled)
        self.bc_extra = bc_extra
        self.sap_extra = sap_extra
        self.bc_api_base = bc_api_base
        self.retry = retry
        self.http = http
        self.poll_extra = poll_extra
        super().__init__(name=name, **kw)

    def write_config(self):
        lines = [
            "-- written by bench/benchlib.py",
            "return {",
            "  state = { path = %s }," % lua_str(self.db_path),
            "  workers = %d," % self.workers,
            "  log = { level = %s }," % lua_str(self.log_level),
        ]
        if self.plugin_dir:
            lines.append("  plugins = { dir = %s }," % lua_str(self.plugin_dir))
        lines += [
            "  mappings = { dir = %s, lua_path = %s, enabled = { %s } },"
            % (lua_str(self.mapping_dir), lua_str(os.path.join(REPO, "lua")),
               ", ".join(lua_str(x) for x in self.enabled)),
            "  webhooks = { address = \"127.0.0.1\", port = 0, port_file = %s,"
            " max_body = 1048576%s }," % (lua_str(self.port_file),
                                          ", " + self.webhooks_extra if self.webhooks_extra
                                          else ""),
            "  poll = { interval = %d%s }," % (self.poll_interval,
                                               ", " + self.poll_extra if self.poll_extra else ""),
            "  retry = { %s }," % self.retry,
        ]
        if self.http:
            lines.append("  http = { %s }," % self.http)
        lines += [
            "  connectors = {",
            "    bigcommerce = { store_hash = %s, access_token = env(\"FERRY_TEST_BC_TOKEN\"),"
            % lua_str(STORE_HASH),
            "                    api_base = %s," % lua_str(self.bc_api_base or self.bc.api_base),
            "                    webhook_secret = env(\"FERRY_TEST_WEBHOOK_SECRET\")%s },"
            % ((", " + self.bc_extra) if self.bc_extra else ""),
            "    sap_sales = { service_root = %s," % lua_str(self.sap.service_root),
            "                  username = %s, password = env(\"FERRY_TEST_SAP_PASSWORD\")%s },"
            % (lua_str(SAP_USER), (", " + self.sap_extra) if self.sap_extra else ""),
            "  },",
            "}",
        ]
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")

    def count(self, sql, args=()):
        rows = self.query(sql, args)
        return list(rows[0].values())[0] if rows else 0

    def done_jobs(self, like="%"):
        return self.count("SELECT count(*) FROM jobs WHERE state = 2 AND job_key LIKE ?", (like,))

    def spawn(self, args, log_note=None, stdout=subprocess.PIPE):
        """Starts `ferry <args>` (stderr to the daemon log); the caller waits."""
        log = open(self.log_path, "ab")
        try:
            log.write(("=== ferry %s (%s)%s\n" % (" ".join(args), time.strftime("%X"),
                                                  " " + log_note if log_note else "")).encode())
            log.flush()
            return _track(subprocess.Popen([self.bin] + list(args), cwd=self.workdir,
                                           env=self.env(), stdin=subprocess.DEVNULL,
                                           stdout=stdout, stderr=log))
        finally:
            log.close()

    def intake_line(self):
        """(acknowledged, commits, largest) from the daemon's exit log line, or None."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            return None
        found = re.findall(r"intake: (\d+) webhook\(s\) acknowledged in (\d+) commit\(s\)"
                           r" \(largest (\d+)\)", text)
        if not found:
            return None
        return tuple(int(x) for x in found[-1])


# -- callgrind output ---------------------------------------------------------------

def parse_callgrind(path):
    """(total Ir, {object file: self Ir}) from a callgrind output file."""
    names = {}
    per_ob = {}
    total = None
    ob = "?"
    skip_next = False
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
            elif line.startswith("ob="):
                ob = _ob_name(names, line[3:].strip())
            elif line.startswith("cob="):
                _ob_name(names, line[4:].strip())   # may define a name used later
            elif line.startswith("calls="):
                skip_next = True   # the next cost line is the callee's inclusive cost
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    per_ob[ob] = per_ob.get(ob, 0) + int(parts[1])
    return total if total is not None else sum(per_ob.values()), per_ob


def _ob_name(names, text):
    """Callgrind name compression: "(id) name" defines an id, "(id)" refers to it."""
    m = re.match(r"^\((\d+)\)(?:\s+(.*))?$", text)
    if not m:
        return text
    if m.group(2):
        names[m.group(1)] = m.group(2)
    return names.get(m.group(1), text)


def component(ob):
    base = os.path.basename(ob)
    for pat, label in (("libsqlite3", "SQLite"), ("libcurl", "libcurl"), ("liblua", "Lua VM"),
                       ("libjansson", "jansson"), ("libxml2", "libxml2"),
                       ("libcrypto", "OpenSSL crypto"), ("libssl", "OpenSSL TLS"),
                       ("libmimalloc", "mimalloc (malloc)"),
                       ("libc.so", "libc (string, stdio, ...)"),
                       ("ld-linux", "dynamic loader"),
                       ("libuv", "libuv"), ("libh2o", "h2o"), ("libz", "zlib"),
                       ("libnghttp2", "nghttp2"), ("bigcommerce.so", "bigcommerce plugin"),
                       ("sap_sales.so", "sap_sales plugin"), ("vgpreload", "valgrind preload")):
        if pat in base:
            return label
    if base == "ferry":
        return "ferry core"
    return base


def make_stack(keep=False, **kw):
    """A BenchStack; with bc_class, the harness builds that simulator instead
    (it looks BigCommerceSim up in its own module when the stack starts)."""
    bc_class = kw.pop("bc_class", None)
    if bc_class is None:
        return BenchStack(keep_workdir=keep, **kw)
    original = harness.BigCommerceSim
    harness.BigCommerceSim = bc_class
    try:
        return BenchStack(keep_workdir=keep, **kw)
    finally:
        harness.BigCommerceSim = original


def close_stack(stack, keep=False):
    stack.close()
    if keep:
        sys.stderr.write("bench: work dir kept: %s\n" % stack.workdir)
    else:
        stack.remove_workdir()


def sim_stats(stack):
    """BigCommerce simulator counters: {"METHOD path": n}, limited."""
    with stack.bc.lock:
        return dict(stack.bc.stats), stack.bc.limited


def bc_requests(stats, match=None):
    return sum(n for k, n in stats.items() if "/__sim/" not in k and (match is None or match(k)))


def wait(predicate, timeout, what, stack=None, period=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            if stack is not None:
                stack.fail("timed out after %.0f s waiting for %s" % (timeout, what))
            raise BenchError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(period)


def stop_process(proc, timeout=60.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def which(name):
    return shutil.which(name)


def fmt_int(n):
    return "{:,}".format(int(round(n)))


def fmt_float(x, digits=1):
    return "{:,.{}f}".format(x, digits)

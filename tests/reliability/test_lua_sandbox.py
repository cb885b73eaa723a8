#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Lua sandbox through the real daemon: a mapping whose field function
runs an attack chosen by the customer's first name (io, os.execute,
package.loadlib, require of a C module, binary chunks, string.dump,
string.rep and table-growth memory bombs, infinite loops (also inside
pcall), unbounded recursion, a pathological pattern, __gc finalizers,
coroutine, debug, collectgarbage, dofile, an error value that is not a
string) or, in the second test, a write into a library every mapping shares
(string, its metatable, table, math, utf8, ferry, a required module).
Customers with attacks and plain customers arrive interleaved by webhook on
one worker, so every job after an attack runs in the Lua state the attack
ran in.

Asserted: each attack's job is dead-lettered with the mapping's file and the
attack's line (file only for memory exhaustion, which has no line), no
attack has an effect outside the state (a marker file os.execute would
create does not exist), the daemon stays up, and every plain customer that
came after an attack is mapped correctly, with the libraries intact.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relcommon as rc  # noqa: E402
from harness import FerryTestCase, main  # noqa: E402

# mappings.time_limit for the daemon under test (the default, set here so that the probes
# below do not depend on it): the loops run until the guard stops them, and the memory
# bombs must reach the 64 MiB cap well before it, also on a sanitizer build (filling a
# table to 64 MiB takes longer than 50 ms).
TIME_LIMIT_MS = 1000

# name -> (Lua expression run by the probe, expected message; "@LINE" = the probe's line,
# "@FILE" = the file only)
PROBES = {
    "io": ('io.open("/etc/passwd"):read("a")', "@LINE: attempt to index a nil value (global 'io')"),
    "os": ('os.execute("touch " .. MARKER)', "@LINE: attempt to index a nil value (global 'os')"),
    "loadlib": ('package.loadlib("libc.so.6", "system")',
                "@LINE: attempt to index a nil value (global 'package')"),
    "require_c": ('require("lpeg")', "@LINE: module 'lpeg' not found"),
    "require_path": ('require("../../etc/passwd")', "@LINE: "),
    "bytecode": ('assert(load("\\27LuaT\\0\\25\\147\\13\\10\\26\\10", "x", "b"))',
                 "@LINE: attempt to load a binary chunk"),
    "dump": ("string.dump(function() end)", "@LINE: attempt to call a nil value (field 'dump')"),
    "rep": ('string.rep("x", 1 << 30)', "@FILE: memory limit exceeded"),
    "rep_sep": ('("x"):rep(1e10)', "@LINE: resulting string too large"),
    "grow": ("(function() local t = {} for i = 1, 1e9 do t[i] = i end end)()",
             "@FILE: memory limit exceeded"),
    "gsub_bomb": ('(function() local s = string.rep("x", 1 << 20) return s:gsub("x", s) end)()',
                  "@FILE: memory limit exceeded"),
    "loop": ("(function() while true do end end)()",
             "@LINE: time limit exceeded (%d ms per call)" % TIME_LIMIT_MS),
    "pcall_loop": ("(function() while true do pcall(function() while true do end end) end end)()",
                   "@LINE: time limit exceeded (%d ms per call)" % TIME_LIMIT_MS),
    "recursion": ("(function() local function f(n) return f(n + 1) + 1 end return f(1) end)()",
                  "@LINE: stack overflow"),
    "pattern": ('string.find(string.rep("a", 5000), string.rep("a-", 12) .. "b")',
                "@LINE: pattern with 12 repetitions is too costly"),
    "gc": ("setmetatable({}, {__gc = function() end})",
           "@LINE: __gc metamethods are not allowed"),
    "coroutine": ("coroutine.create(print)",
                  "@LINE: attempt to index a nil value (global 'coroutine')"),
    "debug": ("debug.getregistry()", "@LINE: attempt to index a nil value (global 'debug')"),
    "collect": ('collectgarbage("count")',
                "@LINE: attempt to call a nil value (global 'collectgarbage')"),
    "dofile": ('dofile("/etc/passwd")', "@LINE: attempt to call a nil value (global 'dofile')"),
    "error_table": ("error({})", "@LINE: error object is a table value"),
}
# Writes that, if they succeeded, would change every later job of every mapping on the
# worker (see test_library_poisoning): the mapping calls string.lower and :upper() per job.
POISONS = {
    "poison_lower": ('(function() string.lower = function() return "poisoned@example.com" end '
                     'end)()', "@LINE: cannot assign to string.lower"),
    "poison_meta": ('(function() getmetatable("").__index.upper = function() return "POISONED" '
                    'end end)()', "@LINE: cannot assign to string.upper"),
    "poison_rawset": ('rawset(string, "lower", function() return "poisoned@example.com" end)',
                      "@LINE: cannot assign to string.lower"),
    "poison_table": ('table.insert(table, print)', "@LINE: cannot assign to table[1]"),
    "poison_math": ("(function() math.floor = nil end)()", "@LINE: cannot assign to math.floor"),
    "poison_utf8": ("(function() utf8.len = nil end)()", "@LINE: cannot assign to utf8.len"),
    "poison_ferry": ("(function() ferry.null = 0 end)()", "@LINE: cannot assign to ferry.null"),
    "poison_module": ("(function() map.lookup = nil end)()",
                      "@LINE: cannot assign to ferry.map.lookup"),
}

MAPPING = """-- written by tests/reliability/test_lua_sandbox.py
local map = require "ferry.map"
local MARKER = %(marker)s
local probes = {}
%(probes)s
return {
  description = "sandbox probes: the first name chooses an attack",
  source = { "bigcommerce", "customer", on = { "created", "updated" } },
  target = { "sap_sales", "ContactCollection" },
  key    = "id",
  match  = { "link", map.lookup("Email", function(r) return string.lower(r.email) end) },
  fields = {
    -- Library calls at run time, so that a poisoned library would show.
    FirstName = function(r)
      local probe = probes[r.first_name]
      if probe then probe() end
      return r.first_name
    end,
    LastName  = function(r) return r.last_name:upper() end,
    Email     = function(r) return string.lower(r.email) end,
  },
}
"""


class SandboxStack(rc.RelStack):
    """The stock stack with mappings.time_limit set to TIME_LIMIT_MS."""

    def write_config(self):
        super().write_config()
        with open(self.config_path, encoding="utf-8") as fh:
            text = fh.read()
        if "  mappings = { " not in text:
            raise AssertionError("relcommon's config has no mappings line to extend")
        text = text.replace("  mappings = { ", "  mappings = { time_limit = %g, "
                            % (TIME_LIMIT_MS / 1000.0), 1)
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write(text)


class LuaSandboxTest(FerryTestCase):
    def setUp(self):
        self.mapdir = tempfile.mkdtemp(prefix="ferry-sandbox-maps-")
        self.addCleanup(shutil.rmtree, self.mapdir, True)
        self.marker = os.path.join(self.mapdir, "os-execute-ran")
        self.path = os.path.join(self.mapdir, "sandbox_probe", "mapping.lua")
        os.makedirs(os.path.dirname(self.path))
        lines = []
        for name, (expr, _) in sorted(PROBES.items()):
            lines.append("probes[%s] = function() return %s end -- probe:%s"
                         % (rc.lua_str(name), expr, name))
        for name, (expr, _) in sorted(POISONS.items()):
            lines.append("probes[%s] = function() return %s end -- probe:%s"
                         % (rc.lua_str(name), expr, name))
        with open(self.path, "w", encoding="utf-8") as fh:
            fh.write(MAPPING % {"marker": rc.lua_str(self.marker), "probes": "\n".join(lines)})
        # One worker: every job runs in the Lua state the attacks before it ran in.
        self.stack = SandboxStack(name="sandbox", workers=1, mapping_dir=self.mapdir,
                                  mappings=("sandbox_probe",))
        self.addCleanup(self.stack.close)

    def line_of(self, name):
        with open(self.path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.rstrip().endswith("-- probe:%s" % name):
                    return n
        raise AssertionError("probe %s not in the mapping" % name)

    def run_customers(self, names):
        """Creates one customer per name (in order) and waits until every job finished."""
        s = self.stack
        s.start()
        s.register_hook("store/customer/created")
        customers = [{"email": "Sandbox%03d@Example.com" % i, "first_name": name,
                      "last_name": "case%03d" % i} for i, name in enumerate(names)]
        made = s.create_customers(customers)
        s.wait_drained(total=len(names), timeout=240)
        return made

    def run_attacks(self, probes):
        """Runs each probe between plain customers; asserts every probe was dead-lettered
        with its file:line and every plain customer mapped correctly. Returns
        (dead letters, plain customers mapped)."""
        s = self.stack
        names = []
        for name in sorted(probes):
            names += ["plain", name]
        names.append("plain")
        made = self.run_customers(names)
        jobs = {j["job_key"]: j for j in s.jobs()}
        rel = os.path.join("sandbox_probe", "mapping.lua")
        report = []
        for c, name in zip(made, names):
            job = jobs["bigcommerce:customer:%d" % c["id"]]
            if name == "plain":
                self.assertEqual(job["state"], rc.DONE, job)
                continue
            expect = probes[name][1].replace("@LINE", "%s:%d" % (rel, self.line_of(name)))
            expect = expect.replace("@FILE", rel)
            self.assertEqual(job["state"], rc.DEAD, "%s was not stopped: %s" % (name, job))
            self.assertIn(expect, job["last_error"] or "", "%s: dead letter without the file"
                          " and line expected" % name)
            report.append("  %-14s %s" % (name, job["last_error"]))
        print("\n" + "\n".join(report))
        self.assertTrue(s.running())
        self.assertEqual(s.healthz(), 200)
        # Every plain customer, before and after each attack, is a correct contact:
        # Email through string.lower, LastName through :upper().
        want = {c["email"].lower(): c for c, n in zip(made, names) if n == "plain"}
        got = {c["Email"]: c for c in s.sap_contacts()}
        self.assertEqual(sorted(got), sorted(want), "an attack changed later contacts")
        for email, c in want.items():
            self.assertEqual(got[email]["LastName"], c["last_name"].upper(), email)
        return report, want

    def test_attacks_are_stopped_and_dead_lettered(self):
        s = self.stack
        report, want = self.run_attacks(PROBES)
        self.assertFalse(os.path.exists(self.marker), "os.execute ran")
        status = s.status_json()
        self.assertEqual(s.stop(), 0)
        rc.figures("lua_sandbox", {"attacks": len(PROBES), "dead_lettered": len(report),
                                   "plain_mapped": len(want),
                                   "status_jobs": status.get("jobs")})

    def test_library_poisoning_does_not_leak_into_later_jobs(self):
        """Globals are per mapping, and the library tables behind them (string,
        table, math, utf8, ferry, the string metatable, required modules) are
        shared by every mapping and every job of a worker's Lua state, so they
        are read-only: a mapping (or a record that drives it) that assigns
        string.lower is dead-lettered with its file:line, and every later job
        computes what it would have computed anyway."""
        s = self.stack
        report, want = self.run_attacks(POISONS)
        self.assertEqual(s.stop(), 0)
        rc.figures("lua_sandbox_poisoning", {"writes": len(POISONS), "dead_lettered": len(report),
                                             "plain_mapped": len(want)})


if __name__ == "__main__":
    main()

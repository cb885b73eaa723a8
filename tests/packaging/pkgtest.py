# SPDX-License-Identifier: MIT
"""Shared helpers for the packaging tests: the build's facts from CTest's
environment, subprocesses with a deadline, a scratch directory, and the skip
convention (exit 77 when a tool the test needs is missing)."""

import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit("%s is not set: run this test through ctest (it passes the build's paths)" % name)
    return value


def need_tool(name):
    path = shutil.which(name)
    if not path:
        print("SKIP: %s is not installed" % name)
        sys.exit(SKIP)
    return path


def run(args, timeout=60, check=True, **kw):
    """Runs args; returns (rc, stdout, stderr) as text. check: rc must be 0."""
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          check=False, **kw)
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise AssertionError("%s exited %d\n--- stdout\n%s\n--- stderr\n%s"
                             % (" ".join(args), proc.returncode, out, err))
    return proc.returncode, out, err


class Scratch:
    """A temporary directory removed on exit (kept when FERRY_KEEP_SCRATCH is set)."""

    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix="ferry-%s-" % name)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if os.environ.get("FERRY_KEEP_SCRATCH"):
            print("scratch kept in %s" % self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


def built_plugins():
    """Names of the connectors this build produced (<name>.so in the build's plugin dir)."""
    d = env("FERRY_PLUGIN_DIR")
    return sorted(f[:-3] for f in os.listdir(d) if f.endswith(".so")) if os.path.isdir(d) else []

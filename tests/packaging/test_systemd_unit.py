#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The systemd units ferry ships: examples/systemd/ferry.service, the copy the
build installs (ExecStart in its own prefix) and the one `ferry init` writes.
Each must run `ferry run -c` as a non-root user with the hardening options and
the reload/stop behaviour the daemon supports, and `ferry init` must not drift
from the example. When systemd-analyze is present, each also passes
`systemd-analyze verify` without a single warning."""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pkgtest import Scratch, env, run  # noqa: E402

REQUIRED = {
    ("Service", "ExecReload"): "/bin/kill -HUP $MAINPID",
    ("Service", "NoNewPrivileges"): "yes",
    ("Service", "ProtectSystem"): "strict",
    ("Service", "ProtectHome"): "yes",
    ("Service", "PrivateTmp"): "yes",
    ("Service", "KillSignal"): "SIGTERM",
    ("Install", "WantedBy"): "multi-user.target",
}


def parse(path):
    """{(section, key): [values]} of a unit file."""
    keys = {}
    section = None
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            m = re.match(r"^\[(\w+)\]$", line)
            if m:
                section = m.group(1)
                continue
            k, sep, v = line.partition("=")
            assert sep and section, "%s: not a unit line: %r" % (path, line)
            keys.setdefault((section, k.strip()), []).append(v.strip())
    return keys


def check(path, state_dir="/var/lib/ferry"):
    u = parse(path)
    for key, want in REQUIRED.items():
        assert u.get(key) == [want], "%s: %s=%s, want %s" % (path, key[1], u.get(key), want)
    assert u.get(("Service", "Type")) in (["simple"], ["notify"]), path
    user = u.get(("Service", "User"), [""])[0]
    assert user and user not in ("root", "0"), "%s: must run as a non-root user" % path
    assert state_dir in u.get(("Service", "ReadWritePaths"), [""])[0].split(), path
    assert u.get(("Service", "EnvironmentFile")), "%s: secrets come from an EnvironmentFile" % path
    start = u.get(("Service", "ExecStart"), [""])[0]
    assert re.match(r"^/\S*/ferry run -c /\S+\.lua$", start), "%s: ExecStart=%s" % (path, start)
    return u


def verify(path, ferry):
    """systemd-analyze verify on a copy whose ExecStart names an existing binary."""
    tool = shutil.which("systemd-analyze")
    if not tool:
        print("note: systemd-analyze not installed; checked the keys only")
        return
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    text = re.sub(r"^ExecStart=\S+/ferry ", "ExecStart=%s " % ferry, text, flags=re.M)
    with Scratch("unit") as tmp:
        copy = os.path.join(tmp, "ferry.service")
        with open(copy, "w", encoding="utf-8") as fh:
            fh.write(text)
        # --man=no: the man page is not installed on the build machine.
        rc, out, err = run([tool, "verify", "--man=no", copy], check=False, timeout=60)
        assert rc == 0 and not err.strip(), "%s: systemd-analyze verify:\n%s%s" % (path, out, err)


def main():
    ferry = env("FERRY_BIN")
    example = os.path.join(env("FERRY_SOURCE_DIR"), "examples", "systemd", "ferry.service")
    installed = os.path.join(env("FERRY_BUILD_DIR"), "systemd", "ferry.service")
    ex = check(example)
    assert ex[("Service", "ExecStart")] == ["/usr/bin/ferry run -c /etc/ferry/ferry.lua"], ex
    inst = check(installed)
    assert inst[("Service", "ExecStart")][0].startswith(env("FERRY_INSTALL_FULL_BINDIR") + "/ferry ")
    verify(example, ferry)
    verify(installed, ferry)

    with Scratch("init-unit") as tmp:
        deploy = os.path.join(tmp, "etc-ferry")
        run([ferry, "init", deploy])
        mine = check(os.path.join(deploy, "ferry.service"))
        assert mine[("Service", "ExecStart")] == [
            "%s/ferry run -c %s/ferry.lua" % (env("FERRY_INSTALL_FULL_BINDIR"), deploy)]
        # Same directives as the example, so the two cannot drift apart.
        assert set(mine) == set(ex), "init unit differs from the example: %s" % (
            set(mine) ^ set(ex))
        verify(os.path.join(deploy, "ferry.service"), ferry)
    print("ok: example, installed and ferry-init units")


if __name__ == "__main__":
    main()

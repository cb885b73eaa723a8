#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ferry(1), generated at build time from `ferry --help`, renders without
warnings (groff -man, and man -l when present) and carries every command's
own --help text, so the page and the binary cannot disagree."""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pkgtest import SKIP, env, run  # noqa: E402


def main():
    page = env("FERRY_MAN_PAGE")
    ferry = env("FERRY_BIN")
    assert os.path.isfile(page), "%s was not generated" % page
    groff = shutil.which("groff")
    man = shutil.which("man")
    if not groff and not man:
        print("SKIP: neither groff nor man is installed")
        sys.exit(SKIP)
    if groff:
        # -ww: every warning; -z: only parse. Any diagnostic means bad roff.
        rc, _, err = run([groff, "-man", "-Tutf8", "-ww", "-z", page], check=False)
        assert rc == 0 and not err.strip(), "groff: %s" % err
        _, text, _ = run([groff, "-man", "-Tutf8", "-P-c", page])
    else:
        _, text, _ = run([man, "-l", "-Tutf8", page], env=dict(os.environ, MANWIDTH="100"))
    if man:
        rc, _, err = run([man, "-l", page], check=False, env=dict(os.environ, MANPAGER="cat",
                                                                    PAGER="cat"))
        assert rc == 0, "man -l: %s" % err
    # Hyphens and spacing may be set differently by the renderer: compare words.
    flat = " ".join(re.sub("\u2010|\u2011|\u2212", "-", text).split())
    _, top, _ = run([ferry, "--help"])
    commands = re.findall(r"^  (\S+)\s", top.split("commands:", 1)[1], flags=re.M)
    assert "init" in commands and "run" in commands, commands
    _, version, _ = run([ferry, "--version"])
    assert version.split()[1] in flat, "version missing"
    for name in commands:
        _, own, _ = run([ferry, name, "--help"])
        for line in own.splitlines():
            words = " ".join(line.split())
            if words:
                assert words in flat, "ferry %s --help line missing from ferry(1): %r" % (
                    name, words)
    print("ok: ferry(1) renders and carries %d commands' --help" % len(commands))


if __name__ == "__main__":
    main()

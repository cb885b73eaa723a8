#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The malloc the build was configured with (FERRY_ALLOCATOR) is the one the
daemon and its libraries call. mimalloc replaces malloc only because the
executable names it ahead of libc; a change of link order would silently
bring glibc's malloc back, and with it a fifth of the instructions per
synced event (docs/performance.md, "Sixth round"). The dynamic linker's own
trace (LD_DEBUG=bindings) says where each library's `malloc` went."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pkgtest import env, run  # noqa: E402

# Libraries that allocate on every job: JSON, state, mapping scripts, HTTP.
# Lua is part of the executable when linked from its static archive
# (FERRY_LUA_STATIC), and then the executable's own calls are Lua's.
USERS = ("libjansson", "libsqlite3", "liblua5.4", "libcurl")


def linked_dynamically(ferry, lib):
    _, out, _ = run(["ldd", ferry])
    return any(os.path.basename(line.split()[0]).startswith(lib)
               for line in out.splitlines() if line.strip())


def malloc_bindings(ferry):
    """{(library, symbol): library that defines it} for malloc, realloc and
    free, every symbol bound at start (LD_BIND_NOW) rather than at first call."""
    _, _, err = run([ferry, "--version"],
                    env=dict(os.environ, LD_DEBUG="bindings", LD_BIND_NOW="1"))
    out = {}
    for line in err.splitlines():
        m = re.search(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: "
                      r"normal symbol `(malloc|realloc|free)'", line)
        if m:
            out[(os.path.basename(m.group(1)), m.group(3))] = os.path.basename(m.group(2))
    return out


def main():
    ferry = env("FERRY_BIN")
    allocator = env("FERRY_ALLOCATOR")
    bindings = malloc_bindings(ferry)
    assert bindings, "LD_DEBUG printed no binding of malloc, realloc or free"
    if "address" in os.environ.get("FERRY_SANITIZERS", "").split(","):
        want = "libasan"  # AddressSanitizer's own malloc, whatever was configured
    else:
        want = "libmimalloc" if allocator == "mimalloc" else "libc."
    users = [lib for lib in USERS if lib != "liblua5.4" or linked_dynamically(ferry, lib)]
    if "liblua5.4" not in users:
        users.append(os.path.basename(ferry))
    for lib in users:
        found = [(key, to) for key, to in bindings.items() if key[0].startswith(lib)]
        assert found, "%s binds none of malloc, realloc, free: %s" % (lib, bindings)
        for (user, sym), to in found:
            assert to.startswith(want), "%s: %s from %s, not %s" % (user, sym, to, want)
    print("malloc, realloc and free of %s: %s" % (", ".join(users), want))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`cpack -G DEB` from the build tree makes a package whose metadata names
ferry and this version; unpacked into a scratch root with `dpkg-deb -x` (no
root, nothing installed on the machine) its ferry runs, reports the version,
and keeps its plugins and shipped files exactly where the binary's compiled-in
defaults look for them; the packaged plugins load with the packaged binary."""

import glob
import json
import os
import shutil
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pkgtest import Scratch, built_plugins, env, need_tool, run  # noqa: E402


def under(root, absolute):
    return os.path.join(root, absolute.lstrip("/"))


def main():
    dpkg_deb = need_tool("dpkg-deb")
    cpack = env("CPACK_COMMAND")
    build = env("FERRY_BUILD_DIR")
    version = env("FERRY_VERSION")
    bindir = env("FERRY_INSTALL_FULL_BINDIR")
    plugindir = env("FERRY_INSTALL_FULL_LIBDIR") + "/ferry/plugins"
    sharedir = env("FERRY_INSTALL_FULL_DATADIR") + "/ferry"
    with Scratch("deb") as tmp:
        run([cpack, "-G", "DEB", "--config", os.path.join(build, "CPackConfig.cmake"),
             "-B", os.path.join(tmp, "pkg")], cwd=build, timeout=100)
        debs = glob.glob(os.path.join(tmp, "pkg", "*.deb"))
        assert len(debs) == 1, debs
        deb = debs[0]

        _, info, _ = run([dpkg_deb, "-f", deb, "Package", "Version", "Depends"])
        fields = dict(line.split(": ", 1) for line in info.strip().splitlines())
        assert fields["Package"] == "ferry", fields
        assert fields["Version"] == version, fields
        assert "adduser" in fields.get("Depends", ""), fields
        # The allocator is a shared library the binary needs at start
        # (dpkg-shlibdeps finds it, when installed, like the others).
        if os.environ.get("FERRY_ALLOCATOR") == "mimalloc" and shutil.which("dpkg-shlibdeps"):
            assert "libmimalloc" in fields.get("Depends", ""), fields

        # The maintainer script: present, executable, valid shell.
        control = os.path.join(tmp, "control")
        run([dpkg_deb, "-e", deb, control])
        postinst = os.path.join(control, "postinst")
        assert os.stat(postinst).st_mode & stat.S_IXUSR, "postinst is not executable"
        run(["sh", "-n", postinst])

        root = os.path.join(tmp, "root")
        run([dpkg_deb, "-x", deb, root])
        ferry = under(root, bindir + "/ferry")
        _, out, _ = run([ferry, "--version"])
        assert out.strip() == "ferry " + version, out

        # Where the binary looks by default (its own help says) is where the package put things.
        _, init_help, _ = run([ferry, "init", "--help"], env={"PATH": os.environ["PATH"]})
        assert plugindir in init_help and sharedir in init_help, init_help
        for p in built_plugins():
            assert os.path.isfile(under(root, "%s/%s.so" % (plugindir, p))), p
        for rel in ("mappings/customer_to_contact/mapping.lua", "lua/ferry/map.lua",
                    "lua/ferry/engine.lua"):
            assert os.path.isfile(under(root, sharedir + "/" + rel)), rel
        assert os.path.isfile(under(root, env("FERRY_INSTALL_FULL_LIBDIR")
                                    + "/pkgconfig/ferry-plugin.pc"))
        unit_path = under(root, env("FERRY_INSTALL_PREFIX") + "/lib/systemd/system/ferry.service")
        with open(unit_path) as fh:
            unit = fh.read()
        assert "\nExecStart=%s/ferry run -c " % bindir in unit, unit

        # The packaged plugins load with the packaged binary: a starter deployment
        # from the packaged share dir, checked by `ferry plugins`.
        run_env = dict(os.environ, FERRY_PLUGIN_DIR=under(root, plugindir),
                       FERRY_SOURCE_DIR=under(root, sharedir))
        deploy = os.path.join(tmp, "etc-ferry")
        run([ferry, "init", deploy], env=run_env)
        with open(os.path.join(deploy, "ferry.env")) as fh:
            for line in fh:
                name = line.strip().lstrip("#").split("=", 1)[0]
                if name.startswith("FERRY_"):
                    run_env[name] = "secret-" + name
        _, out, _ = run([ferry, "plugins", "-c", os.path.join(deploy, "ferry.lua"), "--json"],
                        env=run_env)
        loaded = sorted(c["plugin"] for c in json.loads(out)["connectors"])
        assert loaded == built_plugins(), (loaded, built_plugins())
    print("ok: %s builds, unpacks and runs; layout matches the compiled-in defaults"
          % os.path.basename(deb))


if __name__ == "__main__":
    main()

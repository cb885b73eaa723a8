#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`cmake --install` into a scratch prefix lays out the binary, plugins,
mappings, lua/, man page, unit and plugin SDK; examples/plugin_skeleton,
copied out of the tree, configures and builds against that SDK through
pkg-config alone; the installed ferry loads it (`ferry plugins`) and syncs a
record from one `files` instance to another (`ferry sync --once`)."""

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pkgtest import Scratch, built_plugins, env, need_tool, run  # noqa: E402

LUA_STR = json.dumps  # a JSON string literal is a valid Lua string for plain paths


def check_layout(prefix):
    libdir = os.path.join(prefix, env("FERRY_INSTALL_LIBDIR"))
    datadir = os.path.join(prefix, env("FERRY_INSTALL_DATADIR"), "ferry")
    expected = [
        os.path.join(prefix, env("FERRY_INSTALL_BINDIR"), "ferry"),
        os.path.join(prefix, env("FERRY_INSTALL_INCLUDEDIR"), "ferry", "plugin.h"),
        os.path.join(prefix, env("FERRY_INSTALL_INCLUDEDIR"), "ferry", "error.h"),
        os.path.join(libdir, "pkgconfig", "ferry-plugin.pc"),
        os.path.join(datadir, "lua", "ferry", "map.lua"),
        os.path.join(datadir, "lua", "ferry", "engine.lua"),
        os.path.join(prefix, "lib", "systemd", "system", "ferry.service"),
    ]
    src_mappings = os.path.join(env("FERRY_SOURCE_DIR"), "mappings")
    for flow in os.listdir(src_mappings):
        if os.path.isfile(os.path.join(src_mappings, flow, "mapping.lua")):
            expected.append(os.path.join(datadir, "mappings", flow, "mapping.lua"))
    if os.environ.get("FERRY_MAN_PAGE"):
        expected.append(os.path.join(prefix, env("FERRY_INSTALL_MANDIR"), "man1", "ferry.1"))
    for p in built_plugins():
        expected.append(os.path.join(libdir, "ferry", "plugins", p + ".so"))
    missing = [p for p in expected if not os.path.isfile(p)]
    assert not missing, "not installed: %s" % missing
    assert os.access(expected[0], os.X_OK), "ferry is not executable"
    return libdir, datadir


def main():
    need_tool("pkg-config")
    need_tool("cc")
    cmake = env("CMAKE_COMMAND")
    with Scratch("sdk") as tmp:
        prefix = os.path.join(tmp, "prefix")
        run([cmake, "--install", env("FERRY_BUILD_DIR"), "--prefix", prefix], timeout=60)
        libdir, datadir = check_layout(prefix)
        ferry = os.path.join(prefix, env("FERRY_INSTALL_BINDIR"), "ferry")
        _, out, _ = run([ferry, "--version"])
        assert out.strip() == "ferry " + env("FERRY_VERSION"), out

        # The SDK as pkg-config sees it, relocated to the scratch prefix.
        pc_env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
        _, cflags, _ = run(["pkg-config", "--cflags", "ferry-plugin"], env=pc_env)
        incdir = os.path.join(prefix, env("FERRY_INSTALL_INCLUDEDIR"))
        flags = [f[2:] for f in cflags.split() if f.startswith("-I")]
        assert any(os.path.realpath(f) == os.path.realpath(incdir) for f in flags), cflags
        _, libs, _ = run(["pkg-config", "--libs", "ferry-plugin"], env=pc_env)
        assert "-ljansson" in libs.split(), "Requires: jansson missing: %s" % libs
        _, plugindir, _ = run(["pkg-config", "--variable=plugindir", "ferry-plugin"], env=pc_env)
        assert os.path.realpath(plugindir.strip()) == os.path.realpath(
            os.path.join(libdir, "ferry", "plugins")), plugindir

        # Out of tree: a copy, as an integrator starts one, so no repo header can leak in.
        skel_src = os.path.join(tmp, "files-connector")
        skel_build = os.path.join(tmp, "files-build")
        shutil.copytree(os.path.join(env("FERRY_SOURCE_DIR"), "examples", "plugin_skeleton"),
                        skel_src)
        run([cmake, "-S", skel_src, "-B", skel_build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
             "-DCMAKE_C_FLAGS=-Werror"], env=pc_env, timeout=60)
        run([cmake, "--build", skel_build], env=pc_env, timeout=60)
        assert os.path.isfile(os.path.join(skel_build, "files.so"))

        work = os.path.join(tmp, "deploy")
        src_dir = os.path.join(work, "in")
        dst_dir = os.path.join(work, "out")
        os.makedirs(os.path.join(src_dir, "contact"))
        os.makedirs(os.path.join(work, "mappings", "contacts"))
        with open(os.path.join(work, "mappings", "contacts", "mapping.lua"), "w") as fh:
            fh.write('local map = require "ferry.map"\n'
                     'return {\n'
                     '  source = { "src", "contact" },\n'
                     '  target = { "dst", "contact" },\n'
                     '  match  = { "link", map.lookup("Email", map.lower(map.trim "email")) },\n'
                     '  fields = { Name = map.trim "name", Email = map.lower(map.trim "email") },\n'
                     '}\n')
        config = os.path.join(work, "ferry.lua")
        with open(config, "w") as fh:
            fh.write("return {\n"
                     "  state = { path = \"state.db\" },\n"
                     "  workers = 2,\n"
                     "  mappings = { dir = \"mappings\", lua_path = %s, enabled = { \"contacts\" } },\n"
                     "  webhooks = { address = \"127.0.0.1\", port = 0 },\n"
                     "  poll = { interval = 0 },\n"
                     "  retry = { max_attempts = 2, base_delay = 0.05, max_delay = 0.1 },\n"
                     "  connectors = {\n"
                     "    src = { plugin = \"files\", dir = %s },\n"
                     "    dst = { plugin = \"files\", dir = %s },\n"
                     "  },\n"
                     "}\n" % (LUA_STR(os.path.join(datadir, "lua")), LUA_STR(src_dir),
                              LUA_STR(dst_dir)))
        run_env = dict(os.environ, FERRY_PLUGIN_DIR=skel_build)

        _, out, _ = run([ferry, "plugins", "-c", config, "--json"], env=run_env)
        listed = {c["instance"]: c for c in json.loads(out)["connectors"]}
        assert set(listed) == {"src", "dst"}, out
        for c in listed.values():
            assert c["plugin"] == "files" and c["version"] == "0.1.0", c

        # 7 is new in the target; 8 is found there by e-mail (lookup), so it is updated in place.
        os.makedirs(os.path.join(dst_dir, "contact"))
        with open(os.path.join(dst_dir, "contact", "existing.json"), "w") as fh:
            json.dump({"Name": "Old Name", "Email": "alan@example.org", "Kept": True}, fh)
        with open(os.path.join(src_dir, "contact", "7.json"), "w") as fh:
            json.dump({"name": "  Ada Lovelace ", "email": "ADA@Example.org"}, fh)
        with open(os.path.join(src_dir, "contact", "8.json"), "w") as fh:
            json.dump({"name": "Alan Turing", "email": "Alan@example.org"}, fh)
        rc, out, err = run([ferry, "sync", "-c", config, "--once"], env=run_env, check=False)
        assert rc == 0, "sync exited %d\n%s\n%s" % (rc, out, err)
        written = sorted(os.listdir(os.path.join(dst_dir, "contact")))
        assert len(written) == 2 and "existing.json" in written, written
        with open(os.path.join(dst_dir, "contact", "existing.json")) as fh:
            record = json.load(fh)
        assert record == {"Name": "Alan Turing", "Email": "alan@example.org", "Kept": True}, record
        written.remove("existing.json")
        with open(os.path.join(dst_dir, "contact", written[0])) as fh:
            record = json.load(fh)
        assert record == {"Name": "Ada Lovelace", "Email": "ada@example.org"}, record
        written = sorted(os.listdir(os.path.join(dst_dir, "contact")))

        # Linked now: a second pass changes nothing, an edit updates the same file.
        run([ferry, "sync", "-c", config, "--once"], env=run_env)
        assert sorted(os.listdir(os.path.join(dst_dir, "contact"))) == written
        with open(os.path.join(src_dir, "contact", "7.json"), "w") as fh:
            json.dump({"name": "Ada King", "email": "ada@example.org", "note": "x"}, fh)
        os.utime(os.path.join(src_dir, "contact", "7.json"))
        run([ferry, "sync", "-c", config, "--once"], env=run_env)
        assert sorted(os.listdir(os.path.join(dst_dir, "contact"))) == written
        ada = [w for w in written if w != "existing.json"][0]
        with open(os.path.join(dst_dir, "contact", ada)) as fh:
            record = json.load(fh)
        assert record == {"Name": "Ada King", "Email": "ada@example.org"}, record
    print("ok: installed layout, SDK via pkg-config, out-of-tree connector built, loaded, synced")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`ferry sync --since DATE` shows its progress: on a terminal (a pty here)
a block per polled object redrawn in place (escape sequences) with records
listed and processed, rate, ETA once the listing is complete, quota waits,
and a final "done:" line; without a terminal, periodic log lines with the
same figures. The last figures must equal what happened: every customer
listed and processed."""

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import FerryTestCase, customer, main  # noqa: E402
from ops_harness import OpsStack  # noqa: E402

N = 300


class OpsSyncProgressTest(FerryTestCase):
    def setUp(self):
        # SAP latency so that the sync spans several progress ticks: batched
        # lookups and $batch creates make a few requests for all N records, so
        # each must take long enough for a tick to see the listing complete
        # (the ETA frame) while records are still being written.
        self.stack = OpsStack(name="ops_sync_progress", admin=False, sap_latency_ms=40)
        self.addCleanup(self.stack.close)

    def test_progress_without_a_terminal(self):
        s = self.stack
        s.create_customers([customer(i, "prog") for i in range(N)])
        rc, _ = s.cli("sync", "-c", s.config_path, "--since", "2020-01-01",
                      "--progress-interval", "0.1", timeout=120)
        self.assertEqual(rc, 0, s.log_tail())
        lines = []
        with open(s.log_path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("{"):
                    msg = json.loads(line)["msg"]
                    if msg.startswith("sync progress: "):
                        lines.append(msg[len("sync progress: "):])
        per_object = [l for l in lines if l.startswith("bigcommerce customer: ")]
        self.assertGreaterEqual(len(per_object), 2, lines)
        self.assertTrue(per_object[-1].startswith(
            "bigcommerce customer: %d listed, %d processed, " % (N, N)), per_object[-1])
        # Before the end, a frame that was not complete yet.
        self.assertTrue(any(not l.startswith("bigcommerce customer: %d listed, %d processed"
                                             % (N, N)) for l in per_object), per_object)
        self.assertTrue(any("elapsed" in l and "quota wait(s)" in l for l in lines), lines)

    def test_progress_on_a_terminal(self):
        s = self.stack
        s.create_customers([customer(i, "tty") for i in range(N)])
        master, slave = pty.openpty()
        proc = harness._track(subprocess.Popen(
            [s.bin, "sync", "-c", s.config_path, "--since", "2020-01-01",
             "--progress-interval", "0.1", "--log-format", "text"],
            cwd=s.workdir, env=s.env(), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave))
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.5)
                if not ready:
                    if proc.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:   # EIO: the child closed its end
                    break
                if not chunk:
                    break
                out += chunk
            self.assertEqual(proc.wait(timeout=30), 0, out.decode(errors="replace"))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        text = out.decode("utf-8", errors="replace")
        self.assertIn("\x1b[K", text, "no line was redrawn: %r" % text[-2000:])
        frames = re.findall(r"bigcommerce customer: (\d+) listed( so far)?, (\d+) processed", text)
        self.assertGreaterEqual(len(frames), 2, text[-2000:])
        listed, _, processed = frames[-1]
        self.assertEqual((int(listed), int(processed)), (N, N), text[-2000:])
        self.assertRegex(text, r"\x1b\[Kdone: \d+:\d\d elapsed, 0 quota wait\(s\)")
        self.assertIn("ETA", text)
        # Text log lines for a person, not JSON, on the terminal.
        self.assertRegex(text, r"\d\dZ info  ferry [0-9.]+ started")


if __name__ == "__main__":
    main()

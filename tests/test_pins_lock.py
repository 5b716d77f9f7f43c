"""Issue 16, part 7: the pins file is read, changed and written back under the key lock, so the pins
that several processes record at the same moment are all kept (threads: tests/test_fetch_concurrency.py).

Real processes and a real pins file; no Hub call (``HF_HUB_OFFLINE=1`` with explicit commit shas,
which ``pin_revision`` records without asking the Hub).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hubselect

ROOT = Path(hubselect.__file__).resolve().parent.parent  # what child processes import
PROCESSES, PINS_EACH = 4, 30

PIN = r"""
import sys, time
from pathlib import Path
from hubselect.data.hub import pin_revision

pins, ready, me, n, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
(ready / str(me)).touch()
while len(list(ready.iterdir())) < count:  # every process starts pinning at the same moment
    time.sleep(0.002)
for i in range(n):
    pin_revision(f"owner{me}/set-{i}", f"{me:02d}{i:038d}", pins_path=pins)
"""


def test_pins_recorded_by_several_processes_at_once_are_all_kept(tmp_path):
    pins, ready = tmp_path / "hub-pins.json", tmp_path / "ready"
    ready.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", PIN, str(pins), str(ready), str(me), str(PINS_EACH),
                               str(PROCESSES)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me in range(PROCESSES)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * PROCESSES, [err[-800:] for _, err in outs]
    expected = {f"owner{me}/set-{i}": f"{me:02d}{i:038d}" for me in range(PROCESSES) for i in range(PINS_EACH)}
    recorded = json.loads(pins.read_text())
    assert len(recorded) == len(expected), f"{len(expected) - len(recorded)} of {len(expected)} pins were lost"
    assert recorded == expected

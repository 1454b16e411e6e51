"""Scratch folders: a live owner's folder survives the collector, a killed owner's is removed once old."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

from pipeline.scratch import ScratchDir, collect_stale_scratch

OWNER = """
import sys, time
from pipeline.scratch import ScratchDir
scratch = ScratchDir("crisp-train-", sys.argv[1])
print(scratch.name, flush=True)
time.sleep(60)
"""


def test_a_live_owner_keeps_its_folder_and_a_killed_ones_is_collected(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        folder = owner.stdout.readline().strip()
        assert os.path.isdir(folder)
        assert collect_stale_scratch(str(tmp_path), grace=timedelta(0)) == []  # its owner holds the lock
        owner.send_signal(signal.SIGKILL)  # no cleanup runs
        owner.wait(timeout=10)
        assert os.path.isdir(folder)
        assert collect_stale_scratch(str(tmp_path), grace=timedelta(hours=1)) == []  # too young
        assert collect_stale_scratch(str(tmp_path), grace=timedelta(0)) == [folder]
        assert not os.path.exists(folder)
    finally:
        owner.kill()


def test_only_scratch_prefixes_are_touched_and_cleanup_removes_the_folder(tmp_path):
    output = tmp_path / "crisp-demo-keep"  # a command's output folder: never collected
    output.mkdir()
    leftover = tmp_path / "crisp-dedup-abc"  # a merge file of a killed run: no lock, judged by age
    leftover.write_bytes(b"x")
    old = time.time() - 7200
    for path in (output, leftover):
        os.utime(path, (old, old))
    assert collect_stale_scratch(str(tmp_path)) == [str(leftover)]
    assert output.exists()
    with ScratchDir("crisp-shard-", str(tmp_path)) as scratch:
        assert scratch.path.is_dir()
    assert not scratch.path.exists()

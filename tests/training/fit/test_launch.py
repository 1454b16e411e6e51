"""Launch: the training command runs as its own process group; a failure carries its output tail, and a
killed or timed-out caller leaves no process of the group behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from training.fit.launch import TrainingFailed, run_training

# A stand-in for DDP: a parent that starts a child "rank", prints both pids, then works forever.
RANKS = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("pids", __import__("os").getpid(), child.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as fh:  # a zombie waiting for its reaper is gone too
        return fh.read().split(") ")[1].startswith("Z")


def test_output_streams_and_a_failure_raises_with_its_tail(tmp_path):
    lines = []
    script = "import sys; print('step 1'); print('boom', file=sys.stderr); sys.exit(3)"
    with pytest.raises(TrainingFailed, match=r"(?s)exited with 3.*step 1.*boom"):
        run_training([sys.executable, "-c", script], dict(os.environ), tmp_path, lines.append)
    assert lines == ["step 1", "boom"]
    assert run_training([sys.executable, "-c", "print('ok')"], dict(os.environ), tmp_path, lines.append) == 0


def test_a_timeout_ends_every_process_of_the_group(tmp_path):
    lines = []
    with pytest.raises(TrainingFailed, match="ran past its 3 s timeout"):
        run_training([sys.executable, "-c", RANKS], dict(os.environ), tmp_path, lines.append, timeout_s=3)
    parent, child = (int(p) for p in lines[0].split()[1:])
    assert _gone(parent) and _gone(child)


CALLER = """
import os, sys
from training.fit.launch import run_training
run_training([sys.executable, "-c", sys.argv[1]], dict(os.environ), ".", lambda line: print(line, flush=True))
"""


def test_a_killed_caller_takes_the_training_group_down(tmp_path):
    """As when Airflow kills the task: SIGTERM to the caller only; the ranks must not outlive it."""
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, RANKS], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    parent, child = (int(p) for p in caller.stdout.readline().split()[1:])
    caller.send_signal(signal.SIGTERM)
    assert caller.wait(timeout=60) != 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (_gone(parent) and _gone(child)):
        time.sleep(0.1)
    assert _gone(parent) and _gone(child)

"""Launch: run a training command as a process tree of its own, and never let it outlive its caller.

In: a command (`python -m training.train --config ...`), its environment and working folder, an optional
timeout, and a callback for each output line. Out: the exit code (0 = trained) and the last output
lines; `TrainingFailed` (with that tail) when it exits non-zero or times out.

Why a process group: `training.train` with DDP starts one process per device, and an Airflow task that
is killed (a timeout, a cleared run, the worker going down) only signals its own process. The command
runs in a new session, and a SIGTERM or SIGINT to the caller, a timeout or any exception while it runs
terminates the whole group (SIGTERM, then SIGKILL after a grace period), so no DDP rank keeps a GPU or
a checkpoint file busy. This is the local launcher, the default; on Kubernetes the same command runs
as the Indexed Job of infra/k8s/train-job.yaml, whose pods the cluster reaps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

from schemas.errors import CrispError

GRACE_S = 30.0  # between SIGTERM and SIGKILL: long enough for rank 0 to finish a checkpoint write


class TrainingFailed(CrispError):
    """The training process exited non-zero or ran out of time; the message ends with its output tail."""


def run_training(
    command: Sequence[str],
    env: dict[str, str],
    cwd: Path | str,
    on_line: Callable[[str], None] = lambda line: None,
    timeout_s: float | None = None,
    tail_lines: int = 40,
) -> int:
    """Run `command` in its own process group (see the module docstring); 0, else TrainingFailed."""
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    tail: list[str] = []
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        _terminate(process)

    timer = threading.Timer(timeout_s, on_timeout) if timeout_s else None
    with _terminate_on_signals(process):
        try:
            if timer is not None:
                timer.start()
            assert process.stdout is not None
            for line in process.stdout:
                on_line(line.rstrip())
                tail = (tail + [line])[-tail_lines:]
            code = process.wait()
        finally:
            if timer is not None:
                timer.cancel()
            _terminate(process)  # a no-op after a clean exit; kills the rest of the group otherwise
    if code != 0:
        why = f"ran past its {timeout_s:g} s timeout" if timed_out.is_set() else f"exited with {code}"
        raise TrainingFailed(f"training {why}:\n{''.join(tail)}")
    return code


def _terminate(process: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """SIGTERM the process's whole group, then SIGKILL what is left after `grace_s`."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            process.poll()  # reap the leader so its group can empty
            time.sleep(0.1)


@contextmanager
def _terminate_on_signals(process: subprocess.Popen):
    """While the training runs, SIGTERM / SIGINT to this process end the training's group first."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; `finally` above still cleans up
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def stop(signum, frame):
        _terminate(process)
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        else:
            raise SystemExit(128 + signum)

    for sig in previous:
        signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

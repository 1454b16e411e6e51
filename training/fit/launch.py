"""Launch: run a training command as a process tree of its own, and never let it outlive its caller.

In: a TrainConfig (`run_local`: written to a private YAML, run as `python -m training.fit.train`) or any
command with its environment and working folder (`run_training`), a callback for each output line and an
optional timeout. Out: 0 when it exited 0; `TrainingFailed` (with the output tail) when it exits non-zero
or times out. training/fit/launcher.py picks this launcher (the default) or the Kubernetes one.

Why a process group: `training.fit.train` with DDP starts one process per device, and an Airflow task that
is killed (a timeout, a cleared run, the worker going down) only signals its own process. The command
runs in a new session, and a SIGTERM or SIGINT to the caller, a timeout or any exception while it runs
terminates the whole group (SIGTERM, then SIGKILL after a grace period), so no DDP rank keeps a GPU or
a checkpoint file busy. On Kubernetes (training/fit/launch_k8s.py) the same training runs as an Indexed Job
on GPU nodes, and the same events delete the Job, whose pods the cluster then stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

from schemas.errors import CrispError

GRACE_S = 30.0  # between SIGTERM and SIGKILL: long enough for rank 0 to finish a checkpoint write


REPO = Path(__file__).resolve().parents[2]


class TrainingFailed(CrispError):
    """The training process exited non-zero or ran out of time; the message ends with its output tail."""


def run_local(
    config, on_line: Callable[[str], None] = lambda line: None, timeout_s: float | None = None
) -> int:
    """Train `config` (a TrainConfig) as `python -m training.fit.train` in its own process group on this
    machine; 0, else TrainingFailed."""
    env = dict(os.environ)
    devices = config.trainer.devices if isinstance(config.trainer.devices, int) else 1
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // devices)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix=f"crisp-{config.task}-train-") as tmp:
        path = Path(tmp) / "train.yaml"  # may hold S3 keys: private to this run, deleted after
        path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
        path.chmod(0o600)
        command = [sys.executable, "-m", "training.fit.train", "--config", str(path)]
        return run_training(command, env, REPO, on_line, timeout_s)


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
    with terminate_on_signals(lambda: _terminate(process)):
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
def terminate_on_signals(stop: Callable[[], None]):
    """While the training runs, SIGTERM / SIGINT to this process call `stop` (end the training) first."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; `finally` above still cleans up
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum, frame):
        stop()
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        else:
            raise SystemExit(128 + signum)

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

"""Scratch: local temp folders that say whether their owner is still alive, and the collector of the dead.

In: a name prefix (`crisp-shard-`, `crisp-train-`...) and an optional parent folder (default: the system
temp dir). Out: `ScratchDir`, a folder whose owner holds an exclusive `flock` on its `.lock` file for its
whole life, and `collect_stale_scratch`, which deletes the scratch entries (`SCRATCH_PREFIXES`, never
a demo's or a command's output folder) of the temp dir that are older than a grace period and whose lock
nobody holds.

Why a lock and not an age: a killed run (OOM, `kill -9`, a node drain) never runs its cleanup, but a
training scratch folder can rightly sit unchanged for hours. The kernel drops a dead process's locks, so
"can I take the lock?" is exactly "is the owner gone?", on this host. Entries without a lock file (an
older Crisp, a temp file of the dedup index) are judged by age alone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

# scratch only: shards being written, a training run's staging, the dedup index's merge files
SCRATCH_PREFIXES = ("crisp-shard-", "crisp-train-", "crisp-dedup-")
LOCK_NAME = ".lock"
GRACE = timedelta(hours=1)
log = logging.getLogger(__name__)


class ScratchDir:
    """A temp folder `<dir>/<prefix>XXXX` locked by this process until `cleanup()` (or the `with` exit)."""

    def __init__(self, prefix: str, dir: str | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
        self.name = str(self.path)
        self._lock = os.open(self.path / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)

    def cleanup(self) -> None:
        if self._lock >= 0:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._lock)
            self._lock = -1

    def __enter__(self) -> ScratchDir:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


def collect_stale_scratch(dir: str | None = None, grace: timedelta = GRACE) -> list[str]:
    """Delete scratch entries under `dir` older than `grace` whose owner is gone; return their paths."""
    removed = []
    cutoff = time.time() - grace.total_seconds()
    for entry in Path(dir or tempfile.gettempdir()).iterdir():
        if not entry.name.startswith(SCRATCH_PREFIXES):
            continue
        try:
            if entry.lstat().st_mtime > cutoff or not _owner_gone(entry):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:  # its owner (or another collector) removed it meanwhile
            continue
        removed.append(str(entry))
    if removed:
        log.info("removed %d scratch entr(ies) left by killed runs, e.g. %s", len(removed), removed[0])
    return removed


def _owner_gone(entry: Path) -> bool:
    lock_path = entry / LOCK_NAME
    if not entry.is_dir() or not lock_path.exists():
        return True
    handle = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(handle)  # releases the lock if it was taken
    return True

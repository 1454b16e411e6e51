"""Write training checkpoints to any storage URI and read them back safely.

In: a `Storage` for the run's output root, the lineage of the run (`crisp_meta`). Out: Lightning
callbacks that keep `checkpoints/last.ckpt` (every N steps and at the end of training) and
`checkpoints/best.ckpt` (highest value of the task's monitor: `val/psnr_y` for SR) on that storage, each with a JSON sidecar
(`last.json`, `best.json`: URI, step, epoch, score); `load_checkpoint(uri)` returns a checkpoint dict
loaded with `torch.load(weights_only=True)`; `fetch_checkpoint` downloads one for resuming.

Why stage locally and upload: Lightning's fsspec paths cannot carry storage options (an S3 endpoint,
keys) through `ModelCheckpoint` and `TorchCheckpointIO`, and a partially uploaded object must never be
mistaken for a checkpoint. So `ModelCheckpoint` writes into a local staging folder, and global rank 0
uploads the finished file with `Storage.upload` (one PUT on S3, an atomic rename locally), under a
fixed name. Best-score tracking survives a resume even though the staging folder changes.

Every checkpoint carries `crisp_meta`: {"model": {"arch", "scale", "arch_kwargs"}, "data_manifest_hash",
"recipe", "schema_version", "code_version", "pair_partitions", "init_from"} (plain data only), and `ema_state_dict`
next to SRModule's own `ema` entry (`CrispCheckpointIO`, passed to the Trainer as a plugin).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import subprocess
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from pipeline.storage import Storage

CHECKPOINT_DIR = "checkpoints"
MONITOR = "val/psnr_y"


def code_version() -> str:
    """`git describe --always --dirty --tags` of the source tree, else the installed package version."""
    repo = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        try:
            return importlib.metadata.version("crisp")
        except importlib.metadata.PackageNotFoundError:
            return "unknown"


def crisp_meta(model: dict[str, Any], data: dict[str, Any], code: str, task: str = "sr") -> dict[str, Any]:
    """The lineage dict every checkpoint carries; `data` is the task's data module `describe()`."""
    return {
        "task": task,
        "model": {
            "arch": model["arch"],
            "scale": int(model["scale"]) if model.get("scale") is not None else None,  # None: not an upscaler
            "arch_kwargs": dict(model["arch_options"]),
        },
        "data_manifest_hash": data["data_manifest_hash"],
        "recipe": data["recipe"],
        "schema_version": data["schema_version"],
        "code_version": code,
        "pair_partitions": list(data["pair_partitions"]),
        "init_from": model.get("init_from"),  # None unless fine-tuned from another checkpoint (a GAN's twin)
    }


class CrispCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint writer, adding `crisp_meta` and `ema_state_dict` to every checkpoint.

    A CheckpointIO sees the finished dict after every hook (callbacks run before the module's
    `on_save_checkpoint`, which adds SRModule's `ema`), so the EMA weights can be aliased, not copied:
    `ema_state_dict` holds the same tensor objects as `ema["weights"]`, and torch.save stores them once.
    """

    def __init__(self, meta: dict[str, Any]) -> None:
        super().__init__()
        self.meta = json.loads(json.dumps(meta))  # plain data only, detached from the caller

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        extra: dict[str, Any] = {"crisp_meta": self.meta}
        ema = checkpoint.get("ema")
        if isinstance(ema, dict) and "weights" in ema:
            extra["ema_state_dict"] = ema["weights"]
        super().save_checkpoint({**checkpoint, **extra}, path, storage_options)


class StorageCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that uploads each finished file to `checkpoints/<name>.ckpt` on `storage`.

    Only Lightning's public API is used, so an upgrade cannot silently stop the uploads: every save goes
    through `trainer.save_checkpoint`, which calls each callback's `on_save_checkpoint` while it builds
    the dict and returns once the file is written (and all ranks passed its barrier). So around each of
    ModelCheckpoint's public saving hooks, a save seen by `on_save_checkpoint` means the staged file is
    finished, and global rank 0 uploads it. Nothing else saves inside those hooks (callbacks run one at a
    time), so another callback's save is never mistaken for this one's.
    """

    def __init__(self, storage: Storage, name: str, staging_dir: str | None = None, **kwargs: Any) -> None:
        if kwargs.get("save_weights_only"):
            # resuming needs the optimizer and loop state, and Lightning skips the callbacks'
            # on_save_checkpoint for weights-only saves, which is how a finished save is noticed here
            raise ValueError("StorageCheckpoint writes full checkpoints: save_weights_only is not supported")
        self.storage, self.name = storage, name
        staging = staging_dir or tempfile.mkdtemp(prefix=f"crisp-ckpt-{name}-")
        super().__init__(dirpath=staging, filename=name, enable_version_counter=False, **kwargs)
        self._saves_seen = 0  # checkpoints dumped by any trainer.save_checkpoint (on_save_checkpoint)
        self._published_step: int | None = None  # global_step of this callback's last finished save

    @property
    def remote_rel(self) -> str:
        return f"{CHECKPOINT_DIR}/{self.name}.ckpt"

    @property
    def staged_path(self) -> str:
        """The one local file this callback writes (fixed name, no version counter, no metrics in it)."""
        return self.format_checkpoint_name({})

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        self._saves_seen += 1

    @contextlib.contextmanager
    def _publishing(self, trainer: pl.Trainer) -> Iterator[None]:
        """Publish the staged file when the wrapped ModelCheckpoint hook saved one."""
        before = self._saves_seen
        yield
        if self._saves_seen != before:
            self._publish(trainer)

    def _publish(self, trainer: pl.Trainer) -> None:
        self._published_step = trainer.global_step
        if not trainer.is_global_zero:
            return
        self.storage.upload(self.staged_path, self.remote_rel)
        score = self.best_model_score if self.monitor else None
        sidecar = {
            "uri": self.storage.uri(self.remote_rel),
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "monitor": self.monitor,
            "score": float(score) if score is not None else None,
        }
        self.storage.write_bytes(f"{CHECKPOINT_DIR}/{self.name}.json", json.dumps(sidecar, indent=1).encode())

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        with self._publishing(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with self._publishing(trainer):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with self._publishing(trainer):
            super().on_validation_end(trainer, pl_module)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        with self._publishing(trainer):
            super().on_exception(trainer, pl_module, exception)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with self._publishing(trainer):
            super().on_train_end(trainer, pl_module)
        # Step-triggered saves miss the final steps when max_steps is not a multiple of the interval.
        if self.monitor is None and self._published_step != trainer.global_step:
            with self._publishing(trainer):
                trainer.save_checkpoint(self.staged_path)
            if trainer.is_global_zero:  # as ModelCheckpoint does after its own saves
                for logger in trainer.loggers:
                    logger.after_save_checkpoint(weakref.proxy(self))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # The staging folder is new on every start; keep best-score tracking across resumes anyway.
        super().load_state_dict({**state_dict, "dirpath": self.dirpath})


def checkpoint_callbacks(
    storage: Storage, every_n_steps: int, staging_root: str | Path | None = None, monitor: str = MONITOR
) -> tuple[StorageCheckpoint, StorageCheckpoint]:
    """(last, best): `last` every `every_n_steps` and at the end, `best` (highest `monitor`) after each
    validation."""
    staging = {name: str(Path(staging_root) / name) if staging_root else None for name in ("last", "best")}
    last = StorageCheckpoint(
        storage, "last", staging["last"], monitor=None, save_top_k=1, every_n_train_steps=every_n_steps
    )
    best = StorageCheckpoint(storage, "best", staging["best"], monitor=monitor, mode="max", save_top_k=1)
    return last, best


def load_checkpoint(uri: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a checkpoint from any storage URI (or local path) with `torch.load(weights_only=True)`."""
    parent, _, name = uri.rstrip("/").rpartition("/")
    data = Storage(parent or ".", dict(storage_options or {})).read_bytes(name)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def fetch_checkpoint(storage: Storage, name: str, local_dir: str | Path) -> Path | None:
    """Download `checkpoints/<name>.ckpt` to `local_dir`; None when the run has none yet."""
    rel = f"{CHECKPOINT_DIR}/{name}.ckpt"
    if not storage.exists(rel):
        return None
    target = Path(local_dir) / f"{name}.ckpt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(storage.read_bytes(rel))
    return target

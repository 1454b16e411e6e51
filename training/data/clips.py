"""Serve synthetic clips to Lightning: frame windows in, the centre frame's HR out.

In: a `ClipDataConfig` (the Crisp root with committed `pairs/synthetic_clips_x4/<date>` partitions, which of
them, the window of frames, LR crop and batch size, loader workers, seed, splits). Out: `ClipDataModule`,
whose `train_dataloader()` yields {"lr": B x 3*window x crop x crop float [0, 1] (the window's LR frames
stacked along the channels, oldest first), "hr": B x 3 x 4crop x 4crop (the centre frame's HR),
"key": [sample_id]} and whose `val_dataloader()` yields whole-frame windows centred on each clip's middle
frame, one at a time: exactly what `SRModule` trains and scores (PSNR-Y / SSIM-Y of the centre frame).

- Read through the manifests only (training/data/samples.py: `read_verified` index, ranged member reads);
  rows sorted by sample_id; `describe()` has SR's lineage keys.
- A training sample: a window of `window` consecutive frames at a random place in the clip, a random
  aligned crop, a horizontal flip and a time reversal or not, all from default_rng([seed, epoch, sample]).
  Sample order from default_rng([seed, epoch]); DDP: rank r takes every world-th sample (GroupPlan with
  groups of one), so batches depend on neither world size nor workers, and resume mid-epoch exactly.
- `window=1` serves the centre frame alone: the single-frame twin trains on the same clips.
- `prealigned` (a model that takes its window aligned, FrameFusion align="flow"): the window's whole LR
  frames are aligned on the centre (pipeline/video/align.py) before the crop, as every server aligns them.
  An aligned window depends only on its clip and its first frame, so each loader process keeps up to
  `align_cache_windows` of them (`AlignedWindows`): the flow runs once per window, not once per epoch.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cached_property
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from pydantic import Field
from torch.utils.data import Dataset

from pipeline.storage import Storage
from pipeline.tile_codec import decode_tile
from pipeline.video.align import align_window
from pipeline.video.clips import CLIPS, SCALE, unstack_frames
from schemas.clip_samples import CLIP_SAMPLE_SCHEMA, MEMBERS
from training.data.catalog import DataError
from training.data.dataset import to_tensor
from training.data.samples import (
    GroupPlan,
    MemberReader,
    PlannedBatches,
    SampleCatalog,
    SampleDataConfig,
    load_sample_catalog,
)

SPANS = tuple((f"{m}_offset", f"{m}_size") for m in MEMBERS)
COLUMNS = (
    "sample_id", "image_id", "split", "frames", "side", "params", "shard", *(c for span in SPANS for c in span)
)  # fmt: skip
SCHEMA_KEY = CLIP_SAMPLE_SCHEMA.metadata[b"crisp.schema"].decode()


class ClipDataConfig(SampleDataConfig):
    """Which clip partitions to train on and how to batch them. `window` None = the model's `frames`."""

    recipe: Literal["synthetic_clips_x4"] = CLIPS
    window: int | None = Field(default=None, ge=1)
    crop: int = Field(default=24, ge=8)  # LR px
    batch_size: int = Field(default=16, ge=1)
    val_max_samples: int | None = Field(default=64, ge=1)
    align_cache_windows: int = Field(default=8192, ge=0)  # aligned windows kept per loader process; 0: none


def load_clip_catalog(storage: Storage, partitions: list[str] | str) -> SampleCatalog:
    return load_sample_catalog(storage, CLIPS, partitions, COLUMNS, SCHEMA_KEY, ("sample_id",))


def decode_clip(members: list[bytes], frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR frames, LR frames) of one clip's members: frames x H x W x 3 uint8 each."""
    hr, lr = (unstack_frames(decode_tile(blob), frames) for blob in members)
    return hr, lr


class AlignedWindows:
    """The window's LR frames (window x h x w x 3) as the model takes them: aligned on the centre when
    `prealigned`, remembered by (row, first frame) for up to `capacity` windows (least recently used out)."""

    def __init__(self, prealigned: bool, capacity: int) -> None:
        self.prealigned, self.capacity = prealigned, capacity
        self.windows: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def __call__(self, row: int, start: int, lr: np.ndarray) -> np.ndarray:
        if not self.prealigned:
            return lr
        key = (row, start)
        if key in self.windows:
            self.windows.move_to_end(key)
            return self.windows[key]
        aligned = np.stack(align_window(lr))
        if self.capacity:
            self.windows[key] = aligned
            if len(self.windows) > self.capacity:
                self.windows.popitem(last=False)
        return aligned


def window_tensors(lr: np.ndarray, hr_centre: np.ndarray) -> dict[str, torch.Tensor]:
    """{"lr": 3*window x h x w (frames stacked, oldest first), "hr": 3 x H x W} of one window."""
    return {"lr": torch.cat([to_tensor(frame) for frame in lr]), "hr": to_tensor(hr_centre)}


class WindowBatches(Dataset):
    """Training batch `(epoch, index)` of one rank: `batch_size` random windows, crops and flips."""

    def __init__(self, reader: MemberReader, rows: list[int], frames: list[int], plan: GroupPlan, rank: int,
                 window: int, crop: int, aligned: AlignedWindows) -> None:  # fmt: skip
        self.reader, self.rows, self.frames, self.plan, self.rank = reader, rows, frames, plan, rank
        self.window, self.crop, self.aligned = window, crop, aligned

    def __len__(self) -> int:
        return self.plan.batches_per_rank

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        epoch, index = item
        numbers = self.plan.rank_groups(epoch, self.rank)[index].tolist()
        rows = [self.rows[n] for n in numbers]
        windows = []
        for number, row, members in zip(numbers, rows, self.reader.read_members(rows), strict=True):
            rng = np.random.default_rng([self.plan.seed, epoch, number])
            hr, lr = decode_clip(members, self.frames[row])
            start = int(rng.integers(0, len(lr) - self.window + 1))
            y, x = (int(v) for v in rng.integers(0, lr.shape[1] - self.crop + 1, 2))
            lr = self.aligned(row, start, lr[start : start + self.window])
            lr = lr[:, y : y + self.crop, x : x + self.crop]
            centre = hr[
                start + self.window // 2,
                SCALE * y : SCALE * (y + self.crop),
                SCALE * x : SCALE * (x + self.crop),
            ]
            if rng.integers(0, 2):
                lr, centre = lr[:, :, ::-1], centre[:, ::-1]
            if rng.integers(0, 2):
                lr = lr[::-1]
            windows.append(window_tensors(lr, centre))
        batch: dict[str, Any] = {k: torch.stack([w[k] for w in windows]) for k in ("lr", "hr")}
        batch["key"] = [self.reader.keys[r] for r in rows]
        return batch


class CentreWindows(Dataset):
    """Validation: each clip's window around its middle frame, whole frames, every world-th clip per rank."""

    def __init__(self, reader: MemberReader, rows: list[int], frames: list[int], window: int, rank: int,
                 world: int, aligned: AlignedWindows) -> None:  # fmt: skip
        self.reader, self.rows, self.frames, self.window = reader, rows[rank::world], frames, window
        self.aligned = aligned

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: int) -> dict[str, Any]:
        row = self.rows[item]
        (members,) = self.reader.read_members([row])
        hr, lr = decode_clip(members, self.frames[row])
        start = len(lr) // 2 - self.window // 2
        return {
            **window_tensors(self.aligned(row, start, lr[start : start + self.window]), hr[len(hr) // 2]),
            "key": self.reader.keys[row],
        }


class ClipDataModule(PlannedBatches, pl.LightningDataModule):
    def __init__(self, config: ClipDataConfig | dict[str, Any], window: int = 1, prealigned: bool = False) -> None:
        super().__init__()
        self.config = config if isinstance(config, ClipDataConfig) else ClipDataConfig.model_validate(config)
        self.window, self.prealigned = self.config.window or window, prealigned
        self.init_position()

    @cached_property
    def catalog(self) -> SampleCatalog:
        cfg = self.config
        return load_clip_catalog(Storage(cfg.root, dict(cfg.storage_options)), cfg.partitions)

    def _split_rows(self, split: str) -> list[int]:
        rows = [r for r, name in enumerate(self.catalog.rows["split"].to_pylist()) if name == split]
        if not rows:
            raise DataError(f"split {split!r} is empty in {CLIPS} partitions {self.catalog.partitions}")
        return rows

    def _fits(self, rows: list[int]) -> list[int]:
        frames, sides = self.catalog.rows["frames"].to_pylist(), self.catalog.rows["side"].to_pylist()
        return [r for r in rows if frames[r] >= self.window and sides[r] // SCALE >= self.config.crop]

    def _plan(self, samples: int, world: int) -> GroupPlan:
        return GroupPlan(samples, world, self.config.batch_size, 1, self.config.seed)

    def check(self, world_size: int = 1) -> dict[str, Any]:
        """Validate the data for `world_size` ranks; return a summary. Raises DataError."""
        cfg = self.config
        train = self._fits(self._split_rows(cfg.train_split))
        val = self._fits(self._split_rows(cfg.val_split))[: cfg.val_max_samples]
        need = cfg.batch_size * world_size
        if len(train) < need:
            raise DataError(
                f"{len(train)} {cfg.train_split!r} clips of >= {self.window} frames and >= {cfg.crop} LR px, fewer "
                f"than data.batch_size x ranks = {need}: lower data.batch_size or data.crop, or add partitions"
            )
        return {"train_samples": len(train), "batches_per_epoch": self._plan(len(train), world_size).batches_per_rank,
                "val_samples": len(val), "window": self.window, **self.describe()}  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """Lineage for checkpoints, the keys of SRDataModule.describe()."""
        cat = self.catalog
        return {"recipe": CLIPS, "pair_partitions": list(cat.partitions),
                "data_manifest_hash": cat.manifest_hash, "schema_version": cat.schema_version}  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        rank, world = self.rank_world()
        reader = MemberReader(self.catalog.rows, self.config.root, self.config.storage_options, SPANS)
        frames = self.catalog.rows["frames"].to_pylist()
        aligned = AlignedWindows(self.prealigned, self.config.align_cache_windows)  # shared by train and val
        if stage in (None, "fit") and self.train_set is None:
            self.check(world)
            rows = self._fits(self._split_rows(self.config.train_split))
            plan = self._plan(len(rows), world)
            self.train_set = WindowBatches(
                reader, rows, frames, plan, rank, self.window, self.config.crop, aligned
            )
        if self.val_set is None:
            rows = self._fits(self._split_rows(self.config.val_split))[: self.config.val_max_samples]
            self.val_set = CentreWindows(reader, rows, frames, self.window, rank, world, aligned)

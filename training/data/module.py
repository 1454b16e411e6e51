"""Serve training and validation batches of LR/HR pairs to Lightning, resumable mid-epoch.

In: a `DataConfig` (where the pairs are, which recipe and partitions, patch/batch sizes, loader workers,
seed, val split, benchmark folders), the model's scale and the damage levels it reads (a conditioned
restorer's `arch_options.levels`). Out: `SRDataModule`, whose `train_dataloader()` yields
{"lr": B x 3 x p x p, "hr": B x 3 x ps x ps, "key": [pair_id], with levels "level": B x L float} (uint8:
`on_after_batch_transfer` makes them float [0, 1] on the device, so loader workers ship a quarter of the
bytes) and whose
`val_dataloader()` is a dict {"val": whole val tiles, "<benchmark>": whole images, ...} with batch 1.

- `check()` (also run by `setup`) loads the pair catalog and raises `DataError` for an unknown recipe,
  a recipe/scale mismatch, an empty or uncommitted dataset, or too few pairs for one batch per rank
  and worker, so a bad configuration fails before any process group or model is built.
- DDP: rank and world size come from the attached trainer; train shares are disjoint and equal
  (training/data/sampler.py), validation items are split every world-th without padding, so the
  module's summed metrics equal a single-process evaluation. Build the Trainer with
  `use_distributed_sampler=False` (train.py does), or Lightning would re-shard the loaders.
- Resume: the module counts the training batches actually handed to `training_step` (in
  `on_after_batch_transfer`, after Lightning's one-batch prefetch), and `state_dict()` saves
  (epoch, batches, samples consumed) into every checkpoint. `load_state_dict()` makes the next
  `iter()` of the train loader start at that batch of that epoch, under the same `EpochPlan`.
- Loader workers are persistent (started once, not every epoch): each epoch's `iter()` hands them the
  new epoch and start batch through the stream's shared-memory cursor (training/data/dataset.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import date
from functools import cached_property
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch.utils.data import DataLoader

from pipeline.storage import Storage
from training.archs.levels import check_levels, normalize
from training.data.catalog import DataError, PairCatalog, keep_learned_quality, load_catalog
from training.data.dataset import (
    BenchmarkImages,
    PairReader,
    TrainPairStream,
    WholeTiles,
    as_float,
    benchmark_images,
)
from training.data.sampler import EpochPlan, LoaderPosition, ResumableLoader, block_bounds


class DataConfig(BaseModel):
    """Which pairs to train on and how to batch them. Defaults suit x4 training from a local root."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: str = "file://./data"  # the Crisp root holding pairs/<recipe>/<partition>
    storage_options: dict[str, Any] = Field(default_factory=dict)  # fsspec options (S3 endpoint, keys)
    recipe: str = "bicubic_x4"
    partitions: list[str] | Literal["all"] = "all"
    patch_size: int = Field(default=48, ge=4)  # LR patch side; the HR patch is patch_size * scale
    batch_size: int = Field(default=16, ge=1)
    workers: int = Field(default=2, ge=0)  # loader processes per rank (0 = read in the training process)
    read_threads: int = Field(default=8, ge=1)  # concurrent range reads per loader process
    # threads decoding + augmenting per loader process; None: this node's cores divided among the loader
    # processes of its ranks (more only contend: 8 threads cost a third of the rate on 2 cores)
    decode_threads: int | None = Field(default=None, ge=1)
    block_size: int = Field(default=16, ge=1)  # consecutive pairs of a shard fetched in one ranged read
    shuffle_window: int = Field(default=16, ge=1)  # blocks whose pairs are shuffled together
    seed: int = 0
    train_split: str = "train"
    val_split: str = "val"
    val_max_pairs: int | None = Field(default=128, ge=1)  # evenly spaced subset of the val split
    val_workers: int = Field(default=0, ge=0)
    benchmarks: dict[str, str] = Field(default_factory=dict)  # name -> folder of HR images (Set5, Set14)
    # Train only on pairs whose LR, bicubic-upsampled, scores at most this PSNR-Y against the HR (the
    # pair label): near-lossless pairs (smooth backgrounds, gradients) teach an SR model nothing. None
    # keeps all. Validation and benchmarks are never filtered.
    max_label_psnr_y: float | None = Field(default=None, gt=0)
    # Train only on pairs whose source photo the learned quality model (crisp-quality, scored at ingest
    # into the image index) scored at least this, 0-5; unscored photos are left out. None keeps all.
    # Validation and benchmarks are never filtered.
    min_quality: float | None = Field(default=None, ge=0, le=5)
    # For a restorer that reads damage levels (model.arch_options.levels, training/archs/levels.py): the
    # chance that a training sample's level is hidden, so the model also restores blind (crawled photos
    # carry no known sigma). Validation and benchmarks always run blind, as the gates and exports do.
    level_dropout: float = Field(default=0.25, ge=0, le=1)

    @field_validator("partitions", mode="before")
    @classmethod
    def _dates_as_names(cls, value: Any) -> Any:
        # YAML reads an unquoted 2026-11-20 as a date; partitions are named by its ISO form.
        if isinstance(value, list | tuple):
            return [v.isoformat() if isinstance(v, date) else v for v in value]
        return value


class _EpochLoader(DataLoader):
    """A DataLoader that tells its owner before each `iter()`, i.e. before its workers start or resume."""

    def __init__(self, *args: Any, before_iter: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._before_iter = before_iter

    def __iter__(self) -> Iterator[Any]:
        self._before_iter()
        return super().__iter__()


def _spread(rows: pa.Table, limit: int | None) -> pa.Table:
    if limit is None or rows.num_rows <= limit:
        return rows
    return rows.take(pa.array(np.unique(np.linspace(0, rows.num_rows - 1, limit).round().astype(np.int64))))


class SRDataModule(ResumableLoader, pl.LightningDataModule):
    def __init__(
        self, config: DataConfig | dict[str, Any], scale: int, levels: tuple[str, ...] | list[str] = ()
    ) -> None:
        super().__init__()
        self.config = config if isinstance(config, DataConfig) else DataConfig.model_validate(config)
        self.scale, self.levels = scale, check_levels(levels)
        # Benchmark ranks may legitimately hold no image (Set5 over 8 GPUs).
        self.allow_zero_length_dataloader_with_multiple_devices = True
        self.position = LoaderPosition()
        self._resume: dict[str, int] | None = None
        self.train_set: TrainPairStream | None = None
        self.val_sets: dict[str, Any] = {}

    # --- checks --------------------------------------------------------------------------------
    @cached_property
    def catalog(self) -> PairCatalog:
        cfg = self.config
        storage = Storage(cfg.root, dict(cfg.storage_options))
        return load_catalog(storage, cfg.recipe, cfg.partitions, self.scale)

    def _train_rows(self) -> pa.Table:
        rows = self.catalog.split(self.config.train_split)
        patch = self.config.patch_size
        big = pc.and_(pc.greater_equal(rows["lr_width"], patch), pc.greater_equal(rows["lr_height"], patch))
        fitting = rows.filter(big)
        if fitting.num_rows == 0:
            raise DataError(
                f"no {self.config.train_split!r} pairs with LR tiles of at least {patch}px in "
                f"{self.catalog.partitions} ({rows.num_rows} smaller ones): lower data.patch_size"
            )
        ceiling = self.config.max_label_psnr_y
        if ceiling is not None:
            informative = fitting.filter(pc.less_equal(fitting["psnr_y"], ceiling))
            if informative.num_rows == 0:
                raise DataError(
                    f"all {fitting.num_rows} {self.config.train_split!r} pairs score above "
                    f"data.max_label_psnr_y={ceiling} dB for bicubic: raise it or unset it"
                )
            fitting = informative
        floor = self.config.min_quality
        if floor is not None:
            storage = Storage(self.config.root, dict(self.config.storage_options))
            good = keep_learned_quality(fitting, storage, floor)
            if good.num_rows == 0:
                raise DataError(
                    f"no {self.config.train_split!r} pair comes from a photo with a learned quality score of "
                    f"at least data.min_quality={floor}: lower it or unset it"
                )
            fitting = good
        # Storage order, so a block of consecutive samples is one contiguous byte span of one shard.
        return fitting.sort_by([("shard_path", "ascending"), ("hr_offset", "ascending")])

    def _plan(self, train: pa.Table, world_size: int) -> EpochPlan:
        cfg = self.config
        bounds = block_bounds(train["shard_path"].to_numpy(zero_copy_only=False), cfg.block_size)
        return EpochPlan(
            bounds, world_size, max(cfg.workers, 1), cfg.batch_size, cfg.seed, cfg.shuffle_window
        )

    def check(self, world_size: int = 1) -> dict[str, Any]:
        """Validate data and plan for `world_size` ranks; return a summary. Raises DataError."""
        cfg = self.config
        train = self._train_rows()
        try:
            self._plan(train, world_size)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        val = self.catalog.split(cfg.val_split).num_rows
        if val == 0 and not cfg.benchmarks:
            raise DataError(
                f"no validation data: split {cfg.val_split!r} is empty in {self.catalog.partitions} and "
                "data.benchmarks is empty; add a benchmark folder or partitions with a val split"
            )
        for name, folder in cfg.benchmarks.items():
            try:
                benchmark_images(folder, self.scale)
            except ValueError as exc:
                raise DataError(f"benchmark {name!r}: {exc}") from None
        return {
            "train_pairs": train.num_rows,
            "val_pairs": min(val, cfg.val_max_pairs or val),
            **self.describe(),
        }

    def describe(self) -> dict[str, Any]:
        """Lineage for checkpoints: recipe, partitions, manifest hash, pair schema version."""
        cat = self.catalog
        return {
            "recipe": cat.recipe,
            "pair_partitions": list(cat.partitions),
            "data_manifest_hash": cat.manifest_hash,
            "schema_version": cat.schema_version,
        }

    # --- Lightning hooks -----------------------------------------------------------------------
    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def setup(self, stage: str | None = None) -> None:
        cfg = self.config
        rank, world = self._rank_world()
        if stage in (None, "fit") and self.train_set is None:
            train = self._train_rows()
            plan = self._plan(train, world)
            reader = PairReader(train, cfg.root, cfg.storage_options)
            levels = None
            if self.levels:  # the recorded damage of each pair (schemas/pairs.py columns), normalized
                levels = np.stack([normalize(n, train[n].to_numpy()) for n in self.levels], axis=1)
            self.train_set = TrainPairStream(
                reader,
                plan,
                rank,
                self.scale,
                cfg.patch_size,
                cfg.read_threads,
                self._decode_threads(),
                levels,
                cfg.level_dropout,
            )
        if not self.val_sets:
            val = _spread(self.catalog.split(cfg.val_split), cfg.val_max_pairs)
            if val.num_rows:
                self.val_sets["val"] = WholeTiles(PairReader(val, cfg.root, cfg.storage_options), rank, world)
            for name, folder in cfg.benchmarks.items():
                self.val_sets[name] = BenchmarkImages(benchmark_images(folder, self.scale), rank, world)
            if not self.val_sets:
                raise DataError(
                    f"no validation data: split {cfg.val_split!r} is empty and no benchmarks are set"
                )

    def _decode_threads(self) -> int:
        if self.config.decode_threads is not None:
            return self.config.decode_threads
        # the loader processes of every rank on this node (torchrun's LOCAL_WORLD_SIZE) share its cores
        processes = max(1, self.config.workers) * int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return max(1, len(os.sched_getaffinity(0)) // processes)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        cfg = self.config
        return _EpochLoader(
            self.train_set,
            batch_size=cfg.batch_size,
            num_workers=cfg.workers,
            persistent_workers=cfg.workers > 0,
            before_iter=self._begin_epoch,
        )

    def val_dataloader(self) -> dict[str, DataLoader]:
        if not self.val_sets:
            self.setup("validate")
        workers = self.config.val_workers
        return {name: DataLoader(ds, batch_size=1, num_workers=workers) for name, ds in self.val_sets.items()}

    def _begin_epoch(self) -> None:
        assert self.train_set is not None
        epoch = self.trainer.current_epoch if self.trainer is not None else self.position.epoch
        start = 0
        if self._resume is not None and self._resume["epoch"] == epoch:
            start = min(self._resume["batches"], self.train_set.plan.batches_per_rank)
        self._resume = None
        self.train_set.epoch, self.train_set.start_batch = epoch, start
        self.position = LoaderPosition(epoch=epoch, batches=start)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training:
            self.position.batches += 1
        return as_float(batch)

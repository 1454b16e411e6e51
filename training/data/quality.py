"""Serve the quality grid to Lightning: batches of whole ranking groups for training, canvases for validation.

In: a `QualityDataConfig` (the Crisp root with committed `pairs/quality_grid/<date>` partitions, which
of them, crop and batch geometry, loader workers, seed, splits). Out: `QualityDataModule`, whose
`train_dataloader()` yields {"image": B x 3 x crop x crop float [0, 1], "target": B float32,
"group": B int64, "key": [sample_id]} with B = groups_per_batch * samples_per_group, and whose
`val_dataloader()` yields whole canvases one at a time, with "family" names as well.

- Read through the manifests only (`read_verified` checks the index's sha256); rows sorted by (group_id,
  sample_id); members are range-read from the shards and PNG-decoded. `describe()` has SR's lineage keys.
- A training batch: `groups_per_batch` groups x `samples_per_group` members drawn without replacement,
  every member of a group cut at the SAME place and flipped alike (the rank loss compares one content
  across distortions). The place: of CROP_CANDIDATES random ones on a 16-px lattice (the JPEG block
  phase serving sees on whole canvases), the one with the highest luma std in the first member, so white
  studio background is not all the model sees. Groups smaller than the crop or with fewer members are
  left out (check() counts them).
- Randomness: group order from default_rng([seed, epoch]); a group's members, place and flip from
  default_rng([seed, epoch, group]): batches depend on neither world size nor workers. DDP: rank r takes
  every world-th group of that order (disjoint shares), train groups // (groups_per_batch * world)
  batches each; the Trainer must use use_distributed_sampler=False. Validation: every member of the
  first `val_max_groups` val groups (by group_id), every world-th per rank, no padding.
- Mid-epoch resume: batch (epoch, index) is a pure function of its position, so `load_state_dict()`
  makes the loader start at the saved batch (counted in `on_after_batch_transfer`, after Lightning's
  prefetch), guarded by training/data/sampler.py's LoaderPosition / check_resumable.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch.utils.data import DataLoader, Dataset, Sampler

from pipeline.commit import PartitionNotCommittedError, committed_partitions, read_manifest, read_verified
from pipeline.storage import Storage
from pipeline.tile_codec import decode_tile
from schemas.quality_samples import QUALITY_SAMPLE_SCHEMA
from training.data.catalog import INDEX_NAME, DataError, manifest_hash
from training.data.dataset import to_tensor
from training.data.sampler import LoaderPosition, ResumableLoader

RECIPE = "quality_grid"
COLUMNS = ("sample_id", "group_id", "split", "family", "target", "width", "height", "shard", "offset", "size")
CROP_CANDIDATES = 4  # random crop places per group; the busiest (luma std) wins
CROP_LATTICE = 16  # crop offsets are multiples of this: the JPEG block/MCU phase of the whole canvas
SCHEMA_KEY = QUALITY_SAMPLE_SCHEMA.metadata[b"crisp.schema"].decode()  # the manifests' schema_versions key
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class QualityDataConfig(BaseModel):
    """Which quality-grid partitions to train on and how to batch them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: str = "file://./data"  # the Crisp root holding pairs/quality_grid/<partition>
    storage_options: dict[str, Any] = Field(default_factory=dict)
    recipe: Literal["quality_grid"] = RECIPE
    partitions: list[str] | Literal["all"] = "all"
    crop: int = Field(default=224, ge=32, multiple_of=8)  # a multiple of 8 keeps a flip on the JPEG grid
    groups_per_batch: int = Field(default=4, ge=1)
    samples_per_group: int = Field(default=8, ge=2)  # >= 2: the rank loss needs pairs
    workers: int = Field(default=2, ge=0)
    seed: int = 0
    train_split: str = "train"
    val_split: str = "val"
    val_max_groups: int | None = Field(default=64, ge=1)
    val_workers: int = Field(default=0, ge=0)

    @field_validator("partitions", mode="before")
    @classmethod
    def _dates_as_names(cls, value: Any) -> Any:
        # YAML reads an unquoted 2026-11-20 as a date; partitions are named by its ISO form.
        if isinstance(value, list | tuple):
            return [v.isoformat() if isinstance(v, date) else v for v in value]
        return value


@dataclass(frozen=True)
class QualityCatalog:
    partitions: list[str]
    rows: pa.Table  # COLUMNS + shard_path, sorted by (group_id, sample_id)
    manifest_hash: str
    schema_version: int | None

    def groups(self, split: str) -> dict[str, list[int]]:
        """group_id -> row numbers of its members, for one split (in row order)."""
        found: dict[str, list[int]] = {}
        for row, (group, name) in enumerate(zip(self.rows["group_id"].to_pylist(),
                                                self.rows["split"].to_pylist(), strict=True)):  # fmt: skip
            if name == split:
                found.setdefault(group, []).append(row)
        return found


def load_quality_catalog(storage: Storage, partitions: list[str] | str) -> QualityCatalog:
    """Manifests and indexes of `pairs/quality_grid` for `partitions` ("all": every committed one)."""
    dataset = f"pairs/{RECIPE}"
    names = committed_partitions(storage, dataset) if partitions == "all" else sorted(set(partitions))
    if partitions != "all" and not names:
        raise DataError('data.partitions is empty: list partition dates or use "all"')
    if not names:
        raise DataError(f"no committed partitions under {storage.uri(dataset)}: run `crisp pairs --recipe "
                        f"{RECIPE}` first, or point data.root at the storage that holds them")  # fmt: skip
    manifests, tables = [], []
    for name in names:
        try:
            manifest = read_manifest(storage, dataset, name)
        except PartitionNotCommittedError as exc:
            raise DataError(f"{exc}; committed ones: {committed_partitions(storage, dataset)}") from None
        table = pq.read_table(io.BytesIO(read_verified(storage, manifest, INDEX_NAME)))
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise DataError(
                f"{storage.uri(f'{dataset}/{name}')}/{INDEX_NAME} lacks {missing}: not a quality grid"
            )
        paths = {f.name: f"{dataset}/{name}/{f.path}" for f in manifest.files}
        unknown = sorted(set(table["shard"].to_pylist()) - set(paths))
        if unknown:
            raise DataError(
                f"{storage.uri(f'{dataset}/{name}')} indexes shards not in its manifest: {unknown[:3]}"
            )
        table = table.select(list(COLUMNS))
        manifests.append(manifest)
        tables.append(
            table.append_column("shard_path", pa.array([paths[s] for s in table["shard"].to_pylist()]))
        )
    rows = pa.concat_tables(tables).sort_by([("group_id", "ascending"), ("sample_id", "ascending")])
    versions = {m.schema_versions.get(SCHEMA_KEY) for m in manifests}
    return QualityCatalog(
        names, rows, manifest_hash(manifests), versions.pop() if len(versions) == 1 else None
    )


class MemberReader:
    """Range-reads and decodes grid members by catalog row; picklable, storage opened per process."""

    def __init__(self, rows: pa.Table, root: str, options: dict[str, Any]) -> None:
        self.root, self.options = root, dict(options)
        self.keys = rows["sample_id"].to_pylist()
        self.families = rows["family"].to_pylist()
        self.targets = rows["target"].to_numpy().astype(np.float32)
        self.paths = rows["shard_path"].to_pylist()
        self.spans = np.stack([rows["offset"].to_numpy(), rows["size"].to_numpy()], axis=1).astype(np.int64)
        self._storage: Storage | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_storage": None, "_pid": -1}

    def read(self, rows: list[int]) -> list[np.ndarray]:
        """uint8 H x W x 3 canvases of `rows`, one concurrent ranged read per shard."""
        if self._storage is None or self._pid != os.getpid():  # fsspec clients are not fork-safe
            self._storage, self._pid = Storage(self.root, self.options), os.getpid()
        blobs: dict[int, bytes] = {}
        for path in sorted({self.paths[r] for r in rows}):
            mine = [r for r in rows if self.paths[r] == path]
            spans = [(int(self.spans[r, 0]), int(self.spans[r, 1])) for r in mine]
            blobs.update(zip(mine, self._storage.read_ranges(path, spans), strict=True))
        return [decode_tile(blobs[r]) for r in rows]


def busiest_crop(image: np.ndarray, crop: int, rng: np.random.Generator) -> tuple[int, int]:
    """(y, x) on the crop lattice, of CROP_CANDIDATES random ones, whose crop has the highest luma std."""
    height, width = image.shape[:2]
    ys = rng.integers(0, (height - crop) // CROP_LATTICE + 1, CROP_CANDIDATES) * CROP_LATTICE
    xs = rng.integers(0, (width - crop) // CROP_LATTICE + 1, CROP_CANDIDATES) * CROP_LATTICE
    luma = image.astype(np.float32) @ LUMA
    spread = [float(luma[y : y + crop, x : x + crop].std()) for y, x in zip(ys, xs, strict=True)]
    best = int(np.argmax(spread))
    return int(ys[best]), int(xs[best])


@dataclass(frozen=True)
class GroupPlan:
    """Which groups each rank trains on per epoch; `fingerprint()` guards a mid-epoch resume."""

    groups: int
    world_size: int
    groups_per_batch: int
    samples_per_group: int
    seed: int

    @property
    def batches_per_rank(self) -> int:
        return self.groups // (self.groups_per_batch * self.world_size)

    @property
    def batch_size(self) -> int:
        return self.groups_per_batch * self.samples_per_group

    def fingerprint(self) -> dict[str, int]:
        return {"groups": self.groups, "world_size": self.world_size, "groups_per_batch": self.groups_per_batch,
                "samples_per_group": self.samples_per_group, "seed": self.seed}  # fmt: skip

    def rank_groups(self, epoch: int, rank: int) -> np.ndarray:
        """batches_per_rank x groups_per_batch group numbers of `rank` in `epoch`, in training order."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.groups)
        keep = self.batches_per_rank * self.groups_per_batch
        return order[rank :: self.world_size][:keep].reshape(self.batches_per_rank, self.groups_per_batch)


class GroupBatches(Dataset):
    """Training batch `(epoch, index)` of one rank: whole batches, so loader workers never split a group."""

    def __init__(self, reader: MemberReader, members: list[list[int]], plan: GroupPlan, rank: int, crop: int):
        self.reader, self.members, self.plan, self.rank, self.crop = reader, members, plan, rank, crop

    def __len__(self) -> int:
        return self.plan.batches_per_rank

    def group_sample(self, epoch: int, group: int) -> tuple[list[int], list[np.ndarray]]:
        rng = np.random.default_rng([self.plan.seed, epoch, group])
        members = self.members[group]
        rows = [members[i] for i in rng.choice(len(members), self.plan.samples_per_group, replace=False)]
        images = self.reader.read(rows)
        y, x = busiest_crop(images[0], self.crop, rng)
        flip = bool(rng.integers(0, 2))
        crops = [img[y : y + self.crop, x : x + self.crop] for img in images]
        return rows, [c[:, ::-1] if flip else c for c in crops]

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        epoch, index = item
        groups = self.plan.rank_groups(epoch, self.rank)[index]
        rows, images, group_of = [], [], []
        for group in groups.tolist():
            group_rows, crops = self.group_sample(epoch, group)
            rows += group_rows
            images += crops
            group_of += [group] * len(group_rows)
        return {
            "image": torch.stack([to_tensor(img) for img in images]),
            "target": torch.from_numpy(self.reader.targets[rows]),
            "group": torch.tensor(group_of, dtype=torch.int64),
            "key": [self.reader.keys[r] for r in rows],
        }


class EpochBatchOrder(Sampler):
    """Yields (epoch, batch) for the epoch `begin()` names (at its first batch), in order."""

    def __init__(self, batches: int, begin: Callable[[], tuple[int, int]]) -> None:
        self.batches, self.begin = batches, begin

    def __len__(self) -> int:
        return self.batches  # the full epoch, also when it resumes part way (as SR's loader counts)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, start = self.begin()
        return ((epoch, index) for index in range(start, self.batches))


class WholeCanvases(Dataset):
    """Validation: whole canvases of the given rows, every world-th one for this rank, no augmentation."""

    def __init__(self, reader: MemberReader, rows: list[int], groups: list[int], rank: int, world: int):
        self.reader, self.rows, self.groups = reader, rows[rank::world], groups[rank::world]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: int) -> dict[str, Any]:
        row = self.rows[item]
        (image,) = self.reader.read([row])
        return {"image": to_tensor(image), "target": torch.tensor(self.reader.targets[row]),
                "group": torch.tensor(self.groups[item], dtype=torch.int64),
                "family": self.reader.families[row], "key": self.reader.keys[row]}  # fmt: skip


class QualityDataModule(ResumableLoader, pl.LightningDataModule):
    def __init__(self, config: QualityDataConfig | dict[str, Any], model_cfg: Any = None) -> None:
        super().__init__()
        self.config = (
            config if isinstance(config, QualityDataConfig) else QualityDataConfig.model_validate(config)
        )
        self.model_cfg = model_cfg  # the task interface passes it; the grid's batches do not depend on it
        self.allow_zero_length_dataloader_with_multiple_devices = True  # a rank may hold no val canvas
        self.position = LoaderPosition()
        self._resume: dict[str, int] | None = None
        self.train_set: GroupBatches | None = None
        self.val_set: WholeCanvases | None = None

    @cached_property
    def catalog(self) -> QualityCatalog:
        cfg = self.config
        return load_quality_catalog(Storage(cfg.root, dict(cfg.storage_options)), cfg.partitions)

    def _reader(self) -> MemberReader:
        return MemberReader(self.catalog.rows, self.config.root, self.config.storage_options)

    def _train_members(self) -> list[list[int]]:
        """Member rows of each usable train group (big enough for the crop, enough members), by group_id."""
        cfg, rows = self.config, self.catalog.rows
        groups = self.catalog.groups(cfg.train_split)
        if not groups:
            raise DataError(
                f"split {cfg.train_split!r} is empty in {RECIPE} partitions {self.catalog.partitions}"
            )
        short = np.minimum(rows["width"].to_numpy(), rows["height"].to_numpy())
        return [
            m
            for _, m in sorted(groups.items())
            if len(m) >= cfg.samples_per_group and short[m[0]] >= cfg.crop
        ]

    def _val_members(self) -> tuple[list[int], list[int]]:
        cfg = self.config
        groups = sorted(self.catalog.groups(cfg.val_split).items())[: cfg.val_max_groups]
        if not groups:
            raise DataError(
                f"split {cfg.val_split!r} is empty in {RECIPE} partitions {self.catalog.partitions}"
            )
        rows = [r for _, members in groups for r in members]
        return rows, [number for number, (_, members) in enumerate(groups) for _ in members]

    def _plan(self, groups: int, world: int) -> GroupPlan:
        cfg = self.config
        return GroupPlan(groups, world, cfg.groups_per_batch, cfg.samples_per_group, cfg.seed)

    def check(self, world_size: int = 1) -> dict[str, Any]:
        """Validate the data for `world_size` ranks; return a summary. Raises DataError."""
        cfg = self.config
        train, (val_rows, _) = self._train_members(), self._val_members()
        total = len(self.catalog.groups(cfg.train_split))
        need = cfg.groups_per_batch * world_size
        if len(train) < need:
            raise DataError(
                f"{len(train)} of {total} {cfg.train_split!r} groups have >= {cfg.samples_per_group} members and "
                f"canvases of >= {cfg.crop} px, fewer than data.groups_per_batch x ranks = {need}: lower "
                "data.groups_per_batch, data.samples_per_group or data.crop, or add partitions"
            )
        return {"train_groups": len(train), "train_groups_left_out": total - len(train),
                "batches_per_epoch": self._plan(len(train), world_size).batches_per_rank,
                "val_samples": len(val_rows), **self.describe()}  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """Lineage for checkpoints, the keys of SRDataModule.describe()."""
        cat = self.catalog
        return {"recipe": RECIPE, "pair_partitions": list(cat.partitions),
                "data_manifest_hash": cat.manifest_hash, "schema_version": cat.schema_version}  # fmt: skip

    # --- Lightning hooks -----------------------------------------------------------------------
    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def setup(self, stage: str | None = None) -> None:
        rank, world = self._rank_world()
        if stage in (None, "fit") and self.train_set is None:
            members = self._train_members()
            self.check(world)
            self.train_set = GroupBatches(
                self._reader(), members, self._plan(len(members), world), rank, self.config.crop
            )
        if self.val_set is None:
            rows, groups = self._val_members()
            self.val_set = WholeCanvases(self._reader(), rows, groups, rank, world)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None
        order = EpochBatchOrder(len(self.train_set), self._begin_epoch)
        return DataLoader(self.train_set, sampler=order, batch_size=None, num_workers=self.config.workers)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            self.setup("validate")
        return DataLoader(self.val_set, batch_size=1, num_workers=self.config.val_workers)

    def _begin_epoch(self) -> tuple[int, int]:
        assert self.train_set is not None
        epoch = self.trainer.current_epoch if self.trainer is not None else self.position.epoch
        start = 0
        if self._resume is not None and self._resume["epoch"] == epoch:
            start = min(self._resume["batches"], len(self.train_set))
        self._resume = None
        self.position = LoaderPosition(epoch=epoch, batches=start)
        return epoch, start

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training:
            self.position.batches += 1
        return batch

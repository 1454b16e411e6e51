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
  prefetch), guarded by training/data/sampler.py's LoaderPosition / check_resumable. The catalog, member
  reads, group plan and these hooks are training/data/samples.py's, shared with the matte loader.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import pyarrow as pa
import torch
from pydantic import Field
from torch.utils.data import Dataset

from pipeline.pairs.grid import canvas_version
from pipeline.storage import Storage
from pipeline.tile_codec import decode_tile
from schemas.quality_samples import QUALITY_SAMPLE_SCHEMA
from training.data.catalog import DataError
from training.data.dataset import to_tensor
from training.data.samples import (
    GroupPlan,
    PlannedBatches,
    SampleCatalog,
    SampleDataConfig,
    load_sample_catalog,
)
from training.data.samples import MemberReader as SampleMemberReader

RECIPE = "quality_grid"
COLUMNS = ("sample_id", "group_id", "split", "family", "target", "width", "height", "grid_version", "shard",
           "offset", "size")  # fmt: skip
CROP_CANDIDATES = 4  # random crop places per group; the busiest (luma std) wins
CROP_LATTICE = 16  # crop offsets are multiples of this: the JPEG block/MCU phase of the whole canvas
SCHEMA_KEY = QUALITY_SAMPLE_SCHEMA.metadata[b"crisp.schema"].decode()  # the manifests' schema_versions key
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class QualityDataConfig(SampleDataConfig):
    """Which quality-grid partitions to train on and how to batch them."""

    recipe: Literal["quality_grid"] = RECIPE
    crop: int = Field(default=224, ge=32, multiple_of=8)  # a multiple of 8 keeps a flip on the JPEG grid
    groups_per_batch: int = Field(default=4, ge=1)
    samples_per_group: int = Field(default=8, ge=2)  # >= 2: the rank loss needs pairs
    val_max_groups: int | None = Field(default=64, ge=1)


QualityCatalog = SampleCatalog  # groups(split) by group_id: the reference image


def load_quality_catalog(storage: Storage, partitions: list[str] | str) -> SampleCatalog:
    """Manifests and indexes of `pairs/quality_grid` for `partitions` ("all": every committed one), rows
    sorted by (group_id, sample_id)."""
    return load_sample_catalog(storage, RECIPE, partitions, COLUMNS, SCHEMA_KEY, ("group_id", "sample_id"))


def grid_canvas(rows: pa.Table, chosen: Sequence[int]) -> tuple[int, int]:
    """(canvas long side, canvas version) of the catalog rows `chosen`: what a model trained or judged on
    them must be served at (its ONNX records both). DataError when they mix sizes or versions."""
    taken = rows.take(pa.array(list(chosen), pa.int64()))
    sides = {max(w, h) for w, h in zip(taken["width"].to_pylist(), taken["height"].to_pylist(), strict=True)}
    versions = {canvas_version(v) for v in taken["grid_version"].to_pylist()}
    if len(sides) != 1 or len(versions) != 1:
        raise DataError(
            f"the quality grid rows mix canvas long sides {sorted(sides)} or canvas versions "
            f"{sorted(versions)}; judge a model on partitions of one quality_grid config and grid version"
        )
    return sides.pop(), versions.pop()


class MemberReader(SampleMemberReader):
    """The grid's one PNG member per sample, decoded; with each row's family and target."""

    def __init__(self, rows: pa.Table, root: str, options: dict[str, Any]) -> None:
        super().__init__(rows, root, options)
        self.families = rows["family"].to_pylist()
        self.targets = rows["target"].to_numpy().astype(np.float32)

    def read(self, rows: list[int]) -> list[np.ndarray]:
        """uint8 H x W x 3 canvases of `rows`, one concurrent ranged read per shard."""
        return [decode_tile(member) for (member,) in self.read_members(rows)]


def busiest_crop(image: np.ndarray, crop: int, rng: np.random.Generator) -> tuple[int, int]:
    """(y, x) on the crop lattice, of CROP_CANDIDATES random ones, whose crop has the highest luma std."""
    height, width = image.shape[:2]
    ys = rng.integers(0, (height - crop) // CROP_LATTICE + 1, CROP_CANDIDATES) * CROP_LATTICE
    xs = rng.integers(0, (width - crop) // CROP_LATTICE + 1, CROP_CANDIDATES) * CROP_LATTICE
    luma = image.astype(np.float32) @ LUMA
    spread = [float(luma[y : y + crop, x : x + crop].std()) for y, x in zip(ys, xs, strict=True)]
    best = int(np.argmax(spread))
    return int(ys[best]), int(xs[best])


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


class QualityDataModule(PlannedBatches, pl.LightningDataModule):
    def __init__(self, config: QualityDataConfig | dict[str, Any], model_cfg: Any = None) -> None:
        super().__init__()
        self.config = (
            config if isinstance(config, QualityDataConfig) else QualityDataConfig.model_validate(config)
        )
        self.model_cfg = model_cfg  # the task interface passes it; the grid's batches do not depend on it
        self.init_position()

    @cached_property
    def catalog(self) -> SampleCatalog:
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

    # --- Lightning hooks (the loaders, resume and batch counting are PlannedBatches') ---------------
    def setup(self, stage: str | None = None) -> None:
        rank, world = self.rank_world()
        if stage in (None, "fit") and self.train_set is None:
            members = self._train_members()
            self.check(world)
            self.train_set = GroupBatches(
                self._reader(), members, self._plan(len(members), world), rank, self.config.crop
            )
        if self.val_set is None:
            rows, groups = self._val_members()
            self.val_set = WholeCanvases(self._reader(), rows, groups, rank, world)

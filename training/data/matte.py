"""Serve matte composites to Lightning: random crops for training, whole canvases for validation.

In: a `MatteDataConfig` (the Crisp root with committed `pairs/matte_composites/<date>` partitions, which of
them, crop and batch size, loader workers, seed, splits). Out: `MatteDataModule`, whose `train_dataloader()`
yields {"image", "fg", "bg": B x 3 x crop x crop float [0, 1], "alpha": B x 1 x crop x crop float [0, 1],
"key": [sample_id]}, and whose `val_dataloader()` yields whole canvases one at a time, with their
"background" kind as well.

- Read through the manifests only (training/data/samples.py: `read_verified` index, ranged member reads);
  rows sorted by sample_id; `describe()` has SR's lineage keys.
- A training batch: `batch_size` samples; each cut at a random place and flipped or not, from
  default_rng([seed, epoch, sample]); the four members of a sample alike. Sample order from
  default_rng([seed, epoch]); DDP: rank r takes every world-th sample (samples.py's GroupPlan with groups
  of one), so batches depend on neither world size nor workers, and resume mid-epoch exactly.
- Validation: the first `val_max_samples` val samples (by sample_id), every world-th per rank, no padding.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from pydantic import Field
from torch.utils.data import Dataset

from pipeline.storage import Storage
from pipeline.tile_codec import decode_mask, decode_tile
from schemas.matte_samples import MATTE_SAMPLE_SCHEMA, MEMBERS
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

RECIPE = "matte_composites"
SPANS = tuple((f"{m}_offset", f"{m}_size") for m in MEMBERS)
COLUMNS = (
    "sample_id",
    "image_id",
    "split",
    "background",
    "side",
    "shard",
    *(c for span in SPANS for c in span),
)
SCHEMA_KEY = MATTE_SAMPLE_SCHEMA.metadata[b"crisp.schema"].decode()


class MatteDataConfig(SampleDataConfig):
    """Which matte-composite partitions to train on and how to batch them."""

    recipe: Literal["matte_composites"] = RECIPE
    crop: int = Field(default=192, ge=32, multiple_of=16)
    batch_size: int = Field(default=8, ge=1)
    val_max_samples: int | None = Field(default=64, ge=1)


def load_matte_catalog(storage: Storage, partitions: list[str] | str) -> SampleCatalog:
    return load_sample_catalog(storage, RECIPE, partitions, COLUMNS, SCHEMA_KEY, ("sample_id",))


def matte_reader(catalog: SampleCatalog, root: str, options: dict[str, Any]) -> MemberReader:
    return MemberReader(catalog.rows, root, options, SPANS)


def decode_sample(members: list[bytes]) -> dict[str, np.ndarray]:
    """{"image", "alpha", "fg", "bg"} arrays of one sample's members (alpha uint8 H x W, others RGB)."""
    return {
        m: decode_mask(b) if m == "alpha" else decode_tile(b) for m, b in zip(MEMBERS, members, strict=True)
    }


def sample_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    out = {m: to_tensor(arrays[m]) for m in ("image", "fg", "bg")}
    out["alpha"] = torch.from_numpy(np.ascontiguousarray(arrays["alpha"], dtype=np.float32) / 255.0)[None]
    return out


class CompositeBatches(Dataset):
    """Training batch `(epoch, index)` of one rank: `batch_size` random crops, each sample's members alike."""

    def __init__(self, reader: MemberReader, rows: list[int], plan: GroupPlan, rank: int, crop: int) -> None:
        self.reader, self.rows, self.plan, self.rank, self.crop = reader, rows, plan, rank, crop

    def __len__(self) -> int:
        return self.plan.batches_per_rank

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        epoch, index = item
        numbers = self.plan.rank_groups(epoch, self.rank)[index].tolist()
        rows = [self.rows[n] for n in numbers]
        crops = []
        for number, members in zip(numbers, self.reader.read_members(rows), strict=True):
            rng = np.random.default_rng([self.plan.seed, epoch, number])
            arrays = decode_sample(members)
            side = arrays["alpha"].shape[0]
            y, x = (int(v) for v in rng.integers(0, side - self.crop + 1, 2))
            flip = bool(rng.integers(0, 2))
            cut = {k: v[y : y + self.crop, x : x + self.crop] for k, v in arrays.items()}
            crops.append(sample_tensors({k: v[:, ::-1] if flip else v for k, v in cut.items()}))
        batch: dict[str, Any] = {k: torch.stack([c[k] for c in crops]) for k in crops[0]}
        batch["key"] = [self.reader.keys[r] for r in rows]
        return batch


class WholeComposites(Dataset):
    """Validation: whole canvases of the given rows, every world-th one for this rank, no augmentation."""

    def __init__(
        self, reader: MemberReader, rows: list[int], kinds: list[str], rank: int, world: int
    ) -> None:
        self.reader, self.rows, self.kinds = reader, rows[rank::world], kinds

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: int) -> dict[str, Any]:
        row = self.rows[item]
        (members,) = self.reader.read_members([row])
        return {**sample_tensors(decode_sample(members)), "key": self.reader.keys[row],
                "background": self.kinds[row]}  # fmt: skip


class MatteDataModule(PlannedBatches, pl.LightningDataModule):
    def __init__(self, config: MatteDataConfig | dict[str, Any], model_cfg: Any = None) -> None:
        super().__init__()
        self.config = (
            config if isinstance(config, MatteDataConfig) else MatteDataConfig.model_validate(config)
        )
        self.model_cfg = model_cfg  # the task interface passes it; batches do not depend on it
        self.init_position()

    @cached_property
    def catalog(self) -> SampleCatalog:
        cfg = self.config
        return load_matte_catalog(Storage(cfg.root, dict(cfg.storage_options)), cfg.partitions)

    def _split_rows(self, split: str) -> list[int]:
        rows = [r for r, name in enumerate(self.catalog.rows["split"].to_pylist()) if name == split]
        if not rows:
            raise DataError(f"split {split!r} is empty in {RECIPE} partitions {self.catalog.partitions}")
        return rows

    def _train_rows(self) -> list[int]:
        sides = self.catalog.rows["side"].to_pylist()
        return [r for r in self._split_rows(self.config.train_split) if sides[r] >= self.config.crop]

    def _plan(self, samples: int, world: int) -> GroupPlan:
        cfg = self.config
        return GroupPlan(samples, world, cfg.batch_size, 1, cfg.seed)

    def check(self, world_size: int = 1) -> dict[str, Any]:
        """Validate the data for `world_size` ranks; return a summary. Raises DataError."""
        cfg = self.config
        train, val = self._train_rows(), self._split_rows(cfg.val_split)[: cfg.val_max_samples]
        need = cfg.batch_size * world_size
        if len(train) < need:
            raise DataError(
                f"{len(train)} {cfg.train_split!r} composites of >= {cfg.crop} px, fewer than data.batch_size x "
                f"ranks = {need}: lower data.batch_size or data.crop, or add partitions"
            )
        return {"train_samples": len(train), "batches_per_epoch": self._plan(len(train), world_size).batches_per_rank,
                "val_samples": len(val), **self.describe()}  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """Lineage for checkpoints, the keys of SRDataModule.describe()."""
        cat = self.catalog
        return {"recipe": RECIPE, "pair_partitions": list(cat.partitions),
                "data_manifest_hash": cat.manifest_hash, "schema_version": cat.schema_version}  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        rank, world = self.rank_world()
        reader = matte_reader(self.catalog, self.config.root, self.config.storage_options)
        if stage in (None, "fit") and self.train_set is None:
            self.check(world)
            rows = self._train_rows()
            self.train_set = CompositeBatches(
                reader, rows, self._plan(len(rows), world), rank, self.config.crop
            )
        if self.val_set is None:
            rows = self._split_rows(self.config.val_split)[: self.config.val_max_samples]
            kinds = self.catalog.rows["background"].to_pylist()
            self.val_set = WholeComposites(reader, rows, kinds, rank, world)

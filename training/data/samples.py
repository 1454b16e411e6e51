"""What every non-pair sample loader shares: the catalog of committed sample partitions, ranged member reads,
the per-epoch batch plan, and the Lightning hooks of a resumable, DDP-exact loader.

In: a `Storage` at the Crisp root, a sample family (`quality_grid`, `matte_composites`), the partitions to
use (dates, or "all"), the contract columns and the member spans a loader reads. Out:
- `load_sample_catalog`: a `SampleCatalog` (manifests read through `read_verified`, index rows with their
  shard paths, sorted by the given keys, the data manifest hash and schema version), or DataError naming
  what is missing and the fix;
- `MemberReader`: picklable; `read_members(rows)` range-reads the members of catalog rows (one concurrent
  ranged read per shard), storage opened once per process;
- `GroupPlan`: which groups (a quality grid's references; a matte sample is a group of one) each rank
  trains on in an epoch, a pure function of (seed, epoch), so batches depend on neither world size nor
  loader workers; `EpochBatchOrder`: the (epoch, batch) sampler;
- `PlannedBatches`: the LightningDataModule hooks around them: the epoch's first batch from a saved
  position (mid-epoch resume through training/data/sampler.py's LoaderPosition / check_resumable), a batch
  counted after Lightning's prefetch, whole-batch items (`batch_size=None`), no distributed sampler;
- `SampleDataConfig`: the `data` fields every such loader's config starts from (root, partitions, loader
  workers, seed, splits), each task's config adding its recipe, crops and batching.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch.utils.data import DataLoader, Sampler

from pipeline.commit import PartitionNotCommittedError, committed_partitions, read_manifest, read_verified
from pipeline.storage import Storage
from training.data.catalog import INDEX_NAME, DataError, manifest_hash
from training.data.sampler import LoaderPosition, ResumableLoader


class SampleDataConfig(BaseModel):
    """Which sample partitions under which root, the loader's processes, the seed and the splits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: str = "file://./data"  # the Crisp root holding pairs/<family>/<partition>
    storage_options: dict[str, Any] = Field(default_factory=dict)
    partitions: list[str] | Literal["all"] = "all"
    workers: int = Field(default=2, ge=0)
    seed: int = 0
    train_split: str = "train"
    val_split: str = "val"
    val_workers: int = Field(default=0, ge=0)

    @field_validator("partitions", mode="before")
    @classmethod
    def _dates_as_names(cls, value: Any) -> Any:
        # YAML reads an unquoted 2026-11-20 as a date; partitions are named by its ISO form.
        if isinstance(value, list | tuple):
            return [v.isoformat() if isinstance(v, date) else v for v in value]
        return value


@dataclass(frozen=True)
class SampleCatalog:
    partitions: list[str]
    rows: pa.Table  # the contract columns + shard_path, sorted
    manifest_hash: str
    schema_version: int | None

    def groups(self, split: str, column: str = "group_id") -> dict[str, list[int]]:
        """Group key -> row numbers of its members, for one split (in row order)."""
        found: dict[str, list[int]] = {}
        for row, (group, name) in enumerate(zip(self.rows[column].to_pylist(),
                                                self.rows["split"].to_pylist(), strict=True)):  # fmt: skip
            if name == split:
                found.setdefault(group, []).append(row)
        return found


def load_sample_catalog(
    storage: Storage, recipe: str, partitions: list[str] | str, columns: Sequence[str], schema_key: str,
    sort_by: Sequence[str],
) -> SampleCatalog:  # fmt: skip
    """Manifests and indexes of `pairs/<recipe>` for `partitions` ("all": every committed one)."""
    dataset = f"pairs/{recipe}"
    names = committed_partitions(storage, dataset) if partitions == "all" else sorted(set(partitions))
    if partitions != "all" and not names:
        raise DataError('data.partitions is empty: list partition dates or use "all"')
    if not names:
        raise DataError(f"no committed partitions under {storage.uri(dataset)}: run `crisp pairs --recipe "
                        f"{recipe}` first, or point data.root at the storage that holds them")  # fmt: skip
    manifests, tables = [], []
    for name in names:
        try:
            manifest = read_manifest(storage, dataset, name)
        except PartitionNotCommittedError as exc:
            raise DataError(f"{exc}; committed ones: {committed_partitions(storage, dataset)}") from None
        table = pq.read_table(io.BytesIO(read_verified(storage, manifest, INDEX_NAME)))
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise DataError(
                f"{storage.uri(f'{dataset}/{name}')}/{INDEX_NAME} lacks {missing}: not {recipe} samples"
            )
        paths = {f.name: f"{dataset}/{name}/{f.path}" for f in manifest.files}
        unknown = sorted(set(table["shard"].to_pylist()) - set(paths))
        if unknown:
            raise DataError(
                f"{storage.uri(f'{dataset}/{name}')} indexes shards not in its manifest: {unknown[:3]}"
            )
        table = table.select(list(columns))
        manifests.append(manifest)
        tables.append(
            table.append_column("shard_path", pa.array([paths[s] for s in table["shard"].to_pylist()]))
        )
    rows = pa.concat_tables(tables).sort_by([(key, "ascending") for key in sort_by])
    versions = {m.schema_versions.get(schema_key) for m in manifests}
    return SampleCatalog(
        names, rows, manifest_hash(manifests), versions.pop() if len(versions) == 1 else None
    )


class MemberReader:
    """Range-reads sample members by catalog row; picklable, storage opened per process. `spans` names the
    (offset, size) columns of each member a sample has, in the order `read_members` returns them."""

    def __init__(
        self, rows: pa.Table, root: str, options: dict[str, Any],
        spans: Sequence[tuple[str, str]] = (("offset", "size"),),
    ) -> None:  # fmt: skip
        self.root, self.options = root, dict(options)
        self.keys = rows["sample_id"].to_pylist()
        self.paths = rows["shard_path"].to_pylist()
        self.spans = [
            np.stack([rows[o].to_numpy(), rows[s].to_numpy()], axis=1).astype(np.int64) for o, s in spans
        ]
        self._storage: Storage | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_storage": None, "_pid": -1}

    def read_members(self, rows: list[int]) -> list[list[bytes]]:
        """For each row, its members' bytes (one list per row, in `spans` order)."""
        if self._storage is None or self._pid != os.getpid():  # fsspec clients are not fork-safe
            self._storage, self._pid = Storage(self.root, self.options), os.getpid()
        blobs: dict[tuple[int, int], bytes] = {}
        for path in sorted({self.paths[r] for r in rows}):
            wanted = [(r, m) for r in rows if self.paths[r] == path for m in range(len(self.spans))]
            ranges = [(int(self.spans[m][r, 0]), int(self.spans[m][r, 1])) for r, m in wanted]
            blobs.update(zip(wanted, self._storage.read_ranges(path, ranges), strict=True))
        return [[blobs[(r, m)] for m in range(len(self.spans))] for r in rows]


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


class EpochBatchOrder(Sampler):
    """Yields (epoch, batch) for the epoch `begin()` names (at its first batch), in order."""

    def __init__(self, batches: int, begin: Callable[[], tuple[int, int]]) -> None:
        self.batches, self.begin = batches, begin

    def __len__(self) -> int:
        return self.batches  # the full epoch, also when it resumes part way (as SR's loader counts)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, start = self.begin()
        return ((epoch, index) for index in range(start, self.batches))


class PlannedBatches(ResumableLoader):
    """Mixin for a LightningDataModule whose `train_set` (a Dataset of whole batches indexed by (epoch,
    batch), with a `plan`) and `val_set` are built by `setup`; `config` has workers and val_workers."""

    config: Any
    val_set: Any

    def init_position(self) -> None:
        self.allow_zero_length_dataloader_with_multiple_devices = True  # a rank may hold no val sample
        self.position = LoaderPosition()
        self._resume = None
        self.train_set = None
        self.val_set = None

    def rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        order = EpochBatchOrder(len(self.train_set), self._begin_epoch)
        # persistent workers: a per-process memo (the clip loader's aligned windows) outlives an epoch
        return DataLoader(self.train_set, sampler=order, batch_size=None, num_workers=self.config.workers,
                          persistent_workers=self.config.workers > 0)  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            self.setup("validate")
        return DataLoader(self.val_set, batch_size=1, num_workers=self.config.val_workers)

    def _begin_epoch(self) -> tuple[int, int]:
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

"""Plan an epoch: which samples each DDP rank and loader worker reads, in which order, in which batches.

In: the training samples grouped into blocks (consecutive samples of one shard, so a block is one
ranged read), world size, loader workers per rank, batch size, seed and shuffle window (`EpochPlan`);
an epoch, a rank, a worker and the batch the epoch resumes at. Out: sample indices per batch.

Per epoch (all randomness from `numpy.random.default_rng([seed, epoch, ...])`, identical everywhere):
1. the blocks are permuted, and the samples in that order are cut into `world_size * workers` runs of
   ``num_samples // slots`` (slot = rank, role); a block at a cut is read by the two slots it straddles,
   each keeping its own samples;
2. each slot's blocks are grouped into windows of `window` blocks and the samples of a window are
   shuffled together (the shuffle buffer of WebDataset / LitData, but reproducible);
3. every slot keeps the same number of full batches, ``num_samples // slots // batch_size``, so the epoch
   length never changes and fewer than `batch_size` samples per slot wait for another epoch (dealing
   whole blocks round-robin, as before, left up to a block per slot more: a tenth of a small epoch).
The shares of ranks and workers are disjoint and equal; ranks never pad.
`block_size = 1` turns this into a plain global shuffle with one ranged read per sample.

Order: batch j of a rank comes from role j mod workers, as batch j // workers of that role: exactly the
round-robin in which a PyTorch DataLoader collects batches from its workers. Resuming at batch `start`,
worker w takes role (w + start) mod workers from its next batch on, so the DataLoader, which always asks
worker 0 first, continues the uninterrupted sequence batch for batch.

`LoaderPosition` is the resumable state (epoch, batches consumed in it); `check_resumable` refuses to
continue under a plan that would give different batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def block_bounds(groups: Sequence[int] | np.ndarray, block_size: int) -> tuple[int, ...]:
    """Bounds of blocks of at most `block_size` consecutive samples that never span two groups (shards)."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    groups = np.asarray(groups)
    bounds = [0]
    for i in range(1, len(groups) + 1):
        if i == len(groups) or groups[i] != groups[i - 1] or i - bounds[-1] == block_size:
            bounds.append(i)
    return tuple(bounds) if len(groups) else (0,)


@dataclass(frozen=True)
class Window:
    blocks: np.ndarray  # block ids whose samples make up the window
    samples: np.ndarray  # the window's samples, shuffled


@dataclass(frozen=True)
class EpochPlan:
    bounds: tuple[int, ...]  # block k holds samples bounds[k] .. bounds[k + 1] - 1
    world_size: int = 1
    workers: int = 1  # 0 loader workers count as 1: the main process is the only producer
    batch_size: int = 16
    seed: int = 0
    window: int = 8  # blocks shuffled together

    def __post_init__(self) -> None:
        for name in ("world_size", "workers", "batch_size", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"EpochPlan.{name} must be >= 1, got {getattr(self, name)}")
        if self.batches_per_slot == 0:
            raise ValueError(
                f"{self.num_samples} training samples in {self.num_blocks} blocks cannot fill one batch for each "
                f"of {self.world_size} ranks x {self.workers} loader workers at batch size {self.batch_size}; "
                "lower data.batch_size, data.workers or data.block_size, or add pair partitions"
            )

    @property
    def num_samples(self) -> int:
        return self.bounds[-1]

    @property
    def num_blocks(self) -> int:
        return len(self.bounds) - 1

    @property
    def slots(self) -> int:
        return self.world_size * self.workers

    @property
    def batches_per_slot(self) -> int:
        return self.num_samples // self.slots // self.batch_size

    @property
    def batches_per_rank(self) -> int:
        return self.batches_per_slot * self.workers

    @property
    def samples_per_rank(self) -> int:
        return self.batches_per_rank * self.batch_size

    def fingerprint(self) -> dict[str, int | str]:
        digest = hashlib.sha256(np.asarray(self.bounds, dtype=np.int64).tobytes()).hexdigest()[:16]
        return {
            "num_samples": self.num_samples,
            "blocks": digest,
            "world_size": self.world_size,
            "workers": self.workers,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "window": self.window,
            "dealing": "cut",  # plans of earlier releases dealt whole blocks round-robin
        }

    def slot_windows(self, epoch: int, slot: int) -> list[Window]:
        """The windows of `slot` in `epoch`, in reading order (before the equal-length cut)."""
        if not 0 <= slot < self.slots:
            raise ValueError(f"slot {slot} is outside {self.slots} rank x worker slots")
        bounds = np.asarray(self.bounds)
        blocks = np.random.default_rng([self.seed, epoch]).permutation(self.num_blocks)
        sizes = bounds[blocks + 1] - bounds[blocks]
        ends = np.cumsum(sizes)  # where each block ends in the permuted run of samples
        starts = ends - sizes
        share = self.num_samples // self.slots
        lo, hi = slot * share, (slot + 1) * share
        mine = np.flatnonzero((ends > lo) & (starts < hi))
        windows = []
        for number, first in enumerate(range(0, len(mine), self.window)):
            chosen = mine[first : first + self.window]
            samples = np.concatenate(
                [
                    np.arange(max(starts[i], lo), min(ends[i], hi)) - starts[i] + bounds[blocks[i]]
                    for i in chosen
                ]
            )
            order = np.random.default_rng([self.seed, epoch, slot, number]).permutation(len(samples))
            windows.append(Window(blocks=blocks[chosen], samples=samples[order]))
        return windows

    def slot_samples(self, epoch: int, slot: int) -> np.ndarray:
        """The `batches_per_slot * batch_size` samples `slot` reads in `epoch`, in order."""
        windows = self.slot_windows(epoch, slot)
        return np.concatenate([w.samples for w in windows])[: self.batches_per_slot * self.batch_size]

    def rank_batches(self, epoch: int, rank: int) -> np.ndarray:
        """batches_per_rank x batch_size sample indices of `rank`, in the order the rank trains on them."""
        if not 0 <= rank < self.world_size:
            raise ValueError(f"rank {rank} is outside world size {self.world_size}")
        per_role = [
            self.slot_samples(epoch, rank * self.workers + role).reshape(
                self.batches_per_slot, self.batch_size
            )
            for role in range(self.workers)
        ]
        return np.stack([per_role[j % self.workers][j // self.workers] for j in range(self.batches_per_rank)])

    def worker_role(self, worker: int, start: int = 0) -> tuple[int, int]:
        """(role, first batch of that role) for loader `worker` when the epoch resumes at rank batch `start`."""
        if not 0 <= worker < self.workers:
            raise ValueError(f"worker {worker} is outside {self.workers} loader workers")
        if not 0 <= start <= self.batches_per_rank:
            raise ValueError(f"resume batch {start} is outside 0..{self.batches_per_rank}")
        role = (worker + start) % self.workers
        return role, max(0, -(-(start - role) // self.workers))  # batches of `role` before `start`


@dataclass
class LoaderPosition:
    """Where a rank's training loader stands: `batches` of `epoch` have been trained on."""

    epoch: int = 0
    batches: int = 0

    def state_dict(self, plan: EpochPlan) -> dict[str, int | str]:
        return {
            "epoch": self.epoch,
            "batches": self.batches,
            "samples_consumed": self.batches * plan.batch_size,
            **{f"plan_{k}": v for k, v in plan.fingerprint().items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, int | str]) -> LoaderPosition:
        return cls(epoch=int(state["epoch"]), batches=int(state["batches"]))


def check_resumable(state: dict[str, int | str], plan: EpochPlan) -> None:
    """ValueError naming each difference when `plan` would not continue the saved loader sequence."""
    saved = {k[len("plan_") :]: v for k, v in state.items() if k.startswith("plan_")}
    diffs = [f"{k}: saved {saved.get(k)} now {v}" for k, v in plan.fingerprint().items() if saved.get(k) != v]
    if diffs:
        raise ValueError(
            "cannot resume the training loader mid-epoch under a different plan ("
            + "; ".join(diffs)
            + "): resume with the same data, seed, batch/block size, loader workers and devices, or start anew"
        )


class ResumableLoader:
    """Mixin for a LightningDataModule whose `train_set.plan` is an `EpochPlan` and whose `position` is a
    `LoaderPosition`: the loader position goes into every checkpoint and comes back from it (the next
    train `iter()` starts at the saved batch, `_resume`), refused under a different plan."""

    train_set: Any
    position: LoaderPosition
    _resume: dict[str, int] | None

    def state_dict(self) -> dict[str, int | str]:
        return {} if self.train_set is None else self.position.state_dict(self.train_set.plan)

    def load_state_dict(self, state_dict: dict[str, int | str]) -> None:
        if not state_dict:
            return
        if self.train_set is None:
            self.setup("fit")
        check_resumable(state_dict, self.train_set.plan)
        self._resume = {"epoch": int(state_dict["epoch"]), "batches": int(state_dict["batches"])}
        self.position = LoaderPosition.from_state(state_dict)

"""Read LR/HR training pairs from shards on any storage URI and turn them into tensors.

In: a `PairCatalog` table (rows with shard_path, hr/lr offsets and sizes), a storage root and options,
an `EpochPlan` and the rank; for benchmarks, a folder of HR images and the scale.
Out: samples {"lr": 3 x p x p uint8, "hr": 3 x ps x ps uint8, "key": pair_id, and with `levels` (an array
of normalized damage levels per row, training/archs/levels.py) "level": float32 per level, each hidden as
`UNKNOWN` with probability `level_dropout`} for training (`as_float` makes
them float [0, 1] after the batch left the loader: a quarter of the bytes cross the worker -> trainer
shared memory and the host -> device copy); whole tiles / whole images (no augmentation, float [0, 1]) for
validation.

Reading: ranged reads straight from the pair shards, no conversion step. `ShardWriter` writes a pair's
members next to each other and pairs one after another, so consecutive samples of a shard (a block,
`data.block_size` pairs) come back with one ranged read of their byte span. Training reads whole
blocks (fewer, larger requests: object stores charge and wait per request, and moto's test server
even copies the whole object per ranged GET); validation reads one pair per request. Each loader
worker keeps a thread pool (`read_threads`) that fetches the next window of blocks while the current
one is decoded by `decode_threads` threads (decoding is CPU work: loader processes already use the
cores, and more threads than cores only contend). The measured comparisons (thread counts; per-pair
reads, block reads, whole-shard streaming; local and moto S3) are in docs/training.md.

Augmentation is a pure function of (seed, epoch, sample index): a random LR crop of `patch` pixels,
the HR crop at the same place times `scale`, then one of the 8 flips/90-degree rotations, then which
levels are hidden. The worker id never enters the random state, so the same sample looks the same with
any worker count.

Storage clients are created lazily in each process (fsspec's S3 client is not fork-safe).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from pipeline.degrade.bicubic import bicubic_downscale
from pipeline.sr_metrics import modcrop
from pipeline.storage import Storage
from pipeline.tile_codec import decode_tile
from training.archs.levels import UNKNOWN
from training.data.sampler import EpochPlan

IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float 3xHxW in [0, 1] (a copy: decoded arrays are read-only views)."""
    return to_uint8_tensor(img).float().div_(255.0)


def to_uint8_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> uint8 3xHxW (a copy, a view of it permuted: collate stacks it contiguously)."""
    return torch.from_numpy(np.array(img, order="C")).permute(2, 0, 1)


def as_float(batch: dict[str, Any]) -> dict[str, Any]:
    """`batch` with its uint8 tensors as float in [0, 1] (exactly `to_tensor`'s values), the rest as is."""
    return {k: v.float().div_(255.0) if torch.is_tensor(v) and v.dtype == torch.uint8 else v
            for k, v in batch.items()}  # fmt: skip


def augment(lr: np.ndarray, hr: np.ndarray, scale: int, patch: int, rng: np.random.Generator):
    """Aligned random crop (LR `patch`, HR `patch * scale`) plus a random flip/transpose (8 symmetries)."""
    height, width = lr.shape[:2]
    if height < patch or width < patch:
        raise ValueError(f"LR tile {height}x{width} is smaller than the {patch}px training patch")
    y, x = int(rng.integers(0, height - patch + 1)), int(rng.integers(0, width - patch + 1))
    flip_h, flip_v, transpose = (bool(b) for b in rng.integers(0, 2, size=3))
    lr = lr[y : y + patch, x : x + patch]
    hr = hr[y * scale : (y + patch) * scale, x * scale : (x + patch) * scale]
    if flip_h:
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    if flip_v:
        lr, hr = lr[::-1], hr[::-1]
    if transpose:
        lr, hr = lr.transpose(1, 0, 2), hr.transpose(1, 0, 2)
    return lr, hr


class PairReader:
    """Fetches and decodes pairs by ranged reads; picklable, storage opened per process.

    `read(i)` fetches one pair (one read covering its HR and LR members); `fetch_block(lo, hi)` fetches
    samples lo..hi-1, consecutive members of one shard, in one read, and `decode(i, block)` cuts a pair
    out of such a block.
    """

    def __init__(self, rows: pa.Table, root: str, options: dict[str, Any]) -> None:
        self.root, self.options = root, dict(options)
        self.keys = rows["pair_id"].to_pylist()
        paths = rows["shard_path"].to_pylist()
        self.shard_names = sorted(set(paths))
        lookup = {name: i for i, name in enumerate(self.shard_names)}
        self.shard = np.array([lookup[p] for p in paths], dtype=np.int64)
        self.hr = np.stack([rows["hr_offset"].to_numpy(), rows["hr_size"].to_numpy()], axis=1).astype(
            np.int64
        )
        self.lr = np.stack([rows["lr_offset"].to_numpy(), rows["lr_size"].to_numpy()], axis=1).astype(
            np.int64
        )
        self._storage: Storage | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_storage": None, "_pid": -1}

    @property
    def storage(self) -> Storage:
        if self._storage is None or self._pid != os.getpid():
            self._storage, self._pid = Storage(self.root, self.options), os.getpid()
        return self._storage

    def fetch_block(self, lo: int, hi: int) -> tuple[int, bytes]:
        """(offset of the first byte, bytes) spanning the members of samples lo..hi-1 of one shard."""
        shards = set(self.shard[lo:hi].tolist())
        if len(shards) != 1:
            raise ValueError(f"samples {lo}..{hi - 1} span {len(shards)} shards; a block must lie in one")
        begin = int(min(self.hr[lo:hi, 0].min(), self.lr[lo:hi, 0].min()))
        end = int(max((self.hr[lo:hi].sum(axis=1)).max(), (self.lr[lo:hi].sum(axis=1)).max()))
        return begin, self.storage.read_range(self.shard_names[shards.pop()], begin, end - begin)

    def decode(self, index: int, block: tuple[int, bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(lr, hr) uint8 arrays of sample `index`, cut out of a fetched `block`."""
        base, blob = block
        (hr_off, hr_size), (lr_off, lr_size) = self.hr[index] - (base, 0), self.lr[index] - (base, 0)
        return decode_tile(blob[lr_off : lr_off + lr_size]), decode_tile(blob[hr_off : hr_off + hr_size])

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(lr, hr) uint8 arrays of sample `index` (one ranged read)."""
        return self.decode(index, self.fetch_block(index, index + 1))


class TrainPairStream(IterableDataset):
    """One rank's training samples for the current epoch, read block by block by its loader workers.

    The owner sets `epoch` and `start_batch` before each `iter(loader)`. They live in a shared-memory
    tensor, so persistent loader workers (started once, holding their copy of this object) read the new
    values when the next epoch's `iter()` resumes them. Each worker reads its role's windows
    (training/data/sampler.py): the blocks of the next window are fetched by the thread pool while the
    current one is decoded, so storage latency stays hidden.
    """

    def __init__(
        self,
        reader: PairReader,
        plan: EpochPlan,
        rank: int,
        scale: int,
        patch: int,
        read_threads: int = 8,
        decode_threads: int = 1,
        levels: np.ndarray | None = None,
        level_dropout: float = 0.0,
    ) -> None:
        self.reader, self.plan, self.rank = reader, plan, rank
        self.scale, self.patch = scale, patch
        self.read_threads, self.decode_threads = read_threads, decode_threads
        self.levels, self.level_dropout = levels, level_dropout
        self._cursor = torch.zeros(2, dtype=torch.int64).share_memory_()  # (epoch, start batch)

    @property
    def epoch(self) -> int:
        return int(self._cursor[0])

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._cursor[0] = value

    @property
    def start_batch(self) -> int:
        return int(self._cursor[1])

    @start_batch.setter
    def start_batch(self, value: int) -> None:
        self._cursor[1] = value

    def __len__(self) -> int:
        return self.plan.samples_per_rank

    def augmented(self, index: int, block: tuple[int, bytes], epoch: int) -> dict[str, Any]:
        lr, hr = self.reader.decode(index, block)
        rng = np.random.default_rng([self.plan.seed, epoch, index])
        lr, hr = augment(lr, hr, self.scale, self.patch, rng)
        sample = {"lr": to_uint8_tensor(lr), "hr": to_uint8_tensor(hr), "key": self.reader.keys[index]}
        if self.levels is not None:  # drawn after the crop, so the crops match an unconditioned run's
            hidden = rng.random(self.levels.shape[1]) < self.level_dropout
            told = np.where(hidden, UNKNOWN, self.levels[index]).astype(np.float32)
            sample["level"] = torch.from_numpy(told)
        return sample

    def _windows(self, worker: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(blocks to fetch, samples to yield) per window, from this worker's resume point on."""
        plan = self.plan
        role, first = plan.worker_role(worker, self.start_batch)
        skip, keep = first * plan.batch_size, plan.batches_per_slot * plan.batch_size
        out, position = [], 0
        for window in plan.slot_windows(self.epoch, self.rank * plan.workers + role):
            lo, hi = max(skip, position), min(keep, position + len(window.samples))
            if lo < hi:
                samples = window.samples[lo - position : hi - position]
                blocks = np.unique(np.searchsorted(plan.bounds, samples, side="right") - 1)
                out.append((blocks, samples))
            position += len(window.samples)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        if workers != self.plan.workers:
            raise RuntimeError(
                f"loader runs {workers} workers but the epoch plan was made for {self.plan.workers}"
            )
        epoch, bounds, reader = self.epoch, self.plan.bounds, self.reader
        windows = self._windows(worker)
        lookahead = 2 * self.plan.batch_size
        with (
            ThreadPoolExecutor(max(1, self.read_threads)) as reads,
            ThreadPoolExecutor(max(1, self.decode_threads)) as decodes,
        ):

            def fetch(blocks: np.ndarray) -> dict[int, Any]:
                return {int(b): reads.submit(reader.fetch_block, bounds[b], bounds[b + 1]) for b in blocks}

            upcoming = fetch(windows[0][0]) if windows else {}
            for number, (_, samples) in enumerate(windows):
                current = upcoming
                upcoming = fetch(windows[number + 1][0]) if number + 1 < len(windows) else {}
                owner = np.searchsorted(bounds, samples, side="right") - 1
                # each sample waits for its own block only, not the whole window: an epoch's first batch
                # comes after one ranged read
                if self.decode_threads <= 1:  # in this thread: a pool of one only adds hand-offs
                    for index, block in zip(samples.tolist(), owner.tolist(), strict=True):
                        yield self.augmented(index, current[block].result(), epoch)
                    continue
                pending: deque = deque()
                for index, block in zip(samples.tolist(), owner.tolist(), strict=True):
                    pending.append(decodes.submit(self.augmented, index, current[block].result(), epoch))
                    if len(pending) >= lookahead:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()


class WholeTiles(Dataset):
    """Validation pairs: whole LR/HR tiles, no augmentation; this rank's every world-th row."""

    def __init__(self, reader: PairReader, rank: int = 0, world_size: int = 1) -> None:
        self.reader = reader
        self.indices = list(range(rank, len(reader), world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict[str, Any]:
        index = self.indices[item]
        lr, hr = self.reader.read(index)
        return {"lr": to_tensor(lr), "hr": to_tensor(hr), "key": self.reader.keys[index]}


def benchmark_images(folder: str | Path, scale: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, LR, HR) for each HR image in `folder`: modcropped HR, Pillow-bicubic LR (bicubic_xS recipe).

    Single-channel images are replicated to RGB here, because the training metric scores RGB; the
    authoritative benchmark numbers (training/gates/evaluate.py) score them on raw values instead.
    """
    folder = Path(folder)
    paths = (
        sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    )
    if not paths:
        raise ValueError(f"no HR images ({', '.join(IMAGE_SUFFIXES)}) in benchmark folder {folder}")
    out = []
    for path in paths:
        with Image.open(path) as img:
            hr = np.ascontiguousarray(modcrop(np.asarray(img.convert("RGB")), scale))
        out.append((path.stem, bicubic_downscale(hr, scale), hr))
    return out


class BenchmarkImages(Dataset):
    """Whole benchmark images prepared by `benchmark_images`; this rank's every world-th image."""

    def __init__(self, images: list[tuple[str, np.ndarray, np.ndarray]], rank: int = 0, world_size: int = 1):
        self.images = images[rank::world_size]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: int) -> dict[str, Any]:
        name, lr, hr = self.images[item]
        return {"lr": to_tensor(lr), "hr": to_tensor(hr), "key": name}

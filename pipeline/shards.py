"""Shard I/O: WebDataset-compatible uncompressed tar shards with byte offsets for single range reads.

In (writing): samples as (key, {extension: bytes}); a target shard size; a sink that receives each
finished shard's local path and its name (`shards/000000.tar`), e.g. `PartitionWriter.upload`; the sink
may move the file away (`move=True`), else the writer deletes it.
Out: per sample, where each member's data sits (`SampleLocation`: shard name, offset, size per extension),
which goes into the Parquet index. In (reading): a `Storage`, a shard path and an offset/size: one ranged
read returns the member's bytes; `iter_tar` streams a whole shard sequentially.

Tars are byte-deterministic (fixed mtime/uid/mode, USTAR headers), so the same samples in the same order
give the same shard bytes on every run and worker count. Keys must not contain '.', since WebDataset
splits a member name into key and extension at the first dot.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from pipeline.scratch import ScratchDir
from pipeline.storage import Storage

_BLOCK = 512


@dataclass(frozen=True)
class SampleLocation:
    key: str
    shard: str  # role name inside the attempt, e.g. shards/000003.tar
    members: dict[str, tuple[int, int]]  # extension -> (offset of data in the tar, size)


@dataclass
class ShardWriter:
    """Appends samples to the current tar; rolls to a new shard once `target_bytes` is reached."""

    sink: Callable[[str, str], object]  # (local_path, shard_name) -> anything
    target_bytes: int = 256 * 1024 * 1024
    prefix: str = "shards"
    workdir: str | None = None
    locations: list[SampleLocation] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.target_bytes <= 0:
            raise ValueError(f"shard target_bytes must be positive, got {self.target_bytes}")
        self._index = 0
        self._tar: tarfile.TarFile | None = None
        self._tmpdir = ScratchDir("crisp-shard-", self.workdir)  # a killed run's is collected later
        self.shard_names: list[str] = []

    def _open(self) -> None:
        self._name = f"{self.prefix}/{self._index:06d}.tar"
        self._path = os.path.join(self._tmpdir.name, f"{self._index:06d}.tar")
        # copybufsize: each member goes out in one write, not in 16 KiB chunks
        self._tar = tarfile.open(  # noqa: SIM115 - closed per shard
            self._path, "w", format=tarfile.USTAR_FORMAT, copybufsize=1 << 22
        )

    def add(self, key: str, members: Mapping[str, bytes]) -> SampleLocation:
        if not key or "." in key or "/" in key:
            raise ValueError(f"shard sample key {key!r} must be non-empty and contain no '.' or '/'")
        if self._tar is None:
            self._open()
        assert self._tar is not None
        placed: dict[str, tuple[int, int]] = {}
        for ext in sorted(members):
            data = members[ext]
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
            info.uname = info.gname = ""
            header_at = self._tar.offset
            self._tar.addfile(info, io.BytesIO(data))
            placed[ext] = (header_at + _BLOCK, len(data))
        location = SampleLocation(key=key, shard=self._name, members=placed)
        self.locations.append(location)
        if self._tar.offset >= self.target_bytes:
            self._finish_shard()
        return location

    def _finish_shard(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        self.sink(self._path, self._name)
        self.shard_names.append(self._name)
        with contextlib.suppress(FileNotFoundError):  # a sink may have moved the file into storage
            os.remove(self._path)
        self._tar = None
        self._index += 1

    def close(self) -> list[SampleLocation]:
        """Flush the last shard; return every sample's location."""
        self._finish_shard()
        self._tmpdir.cleanup()
        return self.locations

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._tmpdir.cleanup()


def read_member(storage: Storage, shard_path: str, offset: int, size: int) -> bytes:
    """One member's bytes with a single range read (shard_path relative to the storage root)."""
    return storage.read_range(shard_path, offset, size)


def iter_tar(data: bytes) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Stream (key, {ext: bytes}) samples from a whole shard's bytes, grouping consecutive members."""
    key, sample = None, {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            base = os.path.basename(member.name)
            k, _, ext = base.partition(".")
            if key is not None and k != key:
                yield key, sample
                sample = {}
            key = k
            extracted = tar.extractfile(member)
            sample[ext] = extracted.read() if extracted else b""
    if key is not None:
        yield key, sample

"""Partition commit protocol: write files under an attempt, then publish them with one manifest write.

In: a `Storage`, a dataset name (`images`, `pairs/bicubic_x4`, ...) and a partition name (`2026-11-21`).
Out: a committed `Manifest`, or readers' errors naming what is missing or wrong; `read_verified` returns
one committed file's bytes after checking them against the size and sha256 its manifest records
(`ChecksumMismatch` otherwise), the one way readers read a committed file whole.

Layout: `<dataset>/<partition>/attempts/<attempt_id>/...` holds an attempt's files; `<dataset>/<partition>/
_manifest.json` is written last, in one atomic object write, and lists only that attempt's files. Readers
trust only the manifest, so a crash before it leaves the previous state visible and unchanged, and two
concurrent commits cannot mix: each manifest names the files of exactly one attempt. The manifest is
swapped with a compare-and-swap (`Storage.swap_bytes`), so a writer that passes the manifest it started
from (`based_on`) and finds another one committed meanwhile is told so (`SupersededError`) instead of
both reporting success. `history/<attempt_id>.json` keeps every committed manifest. A rerun whose content
digest equals the committed one is a no-op. Attempts no manifest references are garbage-collected once
older than a grace period (so a concurrent writer's in-flight attempt is not deleted under it).

Quality evidence: a gate that returns a `schemas.validation.Validation` has it written into the attempt
as `validation.json` before the manifest, so the manifest lists and checksums it; it is left out of the
content digest (it holds timestamps). A gate that raises `GateError` blocks the commit: the attempt is
moved whole to `<dataset>/<partition>/quarantine/<attempt_id>/` with its `validation.json`, the error
names that folder, and the committed manifest is untouched. Garbage collection never touches
`quarantine/`: blocked attempts are kept until someone deletes them (there is no automatic cleanup).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.storage import Storage
from schemas.errors import CrispError
from schemas.expectations import GateError
from schemas.manifest import MANIFEST_NAME, Manifest, ManifestFile, content_digest
from schemas.validation import QUARANTINE_DIR, VALIDATION_NAME, Validation

log = logging.getLogger(__name__)


class PartitionNotCommittedError(FileNotFoundError):
    """The partition has no manifest: it was never committed (or only crashed attempts exist)."""


class ManifestError(RuntimeError):
    """A committed file is missing, has the wrong size or the wrong checksum."""


class ChecksumMismatch(CrispError, ManifestError):
    """A committed file's bytes are not the ones its manifest recorded (size or sha256): it was changed or
    corrupted after the commit. The message names the partition, the file and both digests."""


def partition_dir(dataset: str, partition: str) -> str:
    for part, what in ((dataset, "dataset"), (partition, "partition")):
        if not part or part.startswith("/") or ".." in part.split("/"):
            raise ValueError(f"invalid {what} name {part!r}")
    return f"{dataset}/{partition}"


def new_attempt_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8]


def _attempt_time(attempt_id: str) -> datetime | None:
    try:
        return datetime.strptime(attempt_id.split("-")[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


class SupersededError(CrispError):
    """Another attempt of the partition was committed while this one was being written: this one was
    discarded and the partition keeps the other (the message names it)."""


UNCHECKED = object()  # `commit(based_on=...)` default: publish whatever is committed meanwhile


class PartitionWriter:
    """Collects an attempt's files; `commit()` publishes them. Use one writer per attempt."""

    def __init__(self, storage: Storage, dataset: str, partition: str, run_id: str | None = None):
        self.storage = storage
        self.dataset = dataset
        self.partition = partition
        self.base = partition_dir(dataset, partition)
        self.attempt_id = new_attempt_id()
        self.run_id = run_id or self.attempt_id
        self.files: dict[str, ManifestFile] = {}

    def _record(self, name: str, size: int, sha256: str) -> ManifestFile:
        if name in self.files:
            raise ValueError(f"{name!r} was already written in attempt {self.attempt_id}")
        entry = ManifestFile(path=f"attempts/{self.attempt_id}/{name}", name=name, size=size, sha256=sha256)
        self.files[name] = entry
        return entry

    def write(self, name: str, data: bytes) -> ManifestFile:
        entry = self._record(name, len(data), hashlib.sha256(data).hexdigest())
        self.storage.write_bytes(f"{self.base}/{entry.path}", data)
        return entry

    def upload(self, name: str, local_path: str, move: bool = False) -> ManifestFile:
        """Hash a local file and publish it as this attempt's `name` (`move`: see `Storage.upload`)."""
        digest, size = hashlib.sha256(), 0
        with open(local_path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
        entry = self._record(name, size, digest.hexdigest())
        self.storage.upload(local_path, f"{self.base}/{entry.path}", move=move)
        return entry

    def attempt_path(self, name: str) -> str:
        """Storage path (relative to the root) where a file of this attempt named `name` lives."""
        return f"{self.base}/attempts/{self.attempt_id}/{name}".rstrip("/")

    def adopt(self, name: str, size: int, sha256: str) -> ManifestFile:
        """Register a file another process already wrote at `attempt_path(name)` (e.g. a Dask worker).

        `commit()` still checks its size in storage before publishing it."""
        return self._record(name, size, sha256)

    def abort(self) -> None:
        self.storage.delete(f"{self.base}/attempts/{self.attempt_id}", recursive=True)

    def quarantine_path(self) -> str:
        """Storage path where this attempt is kept when its gate fails."""
        return f"{self.base}/{QUARANTINE_DIR}/{self.attempt_id}"

    def quarantine(self, error: GateError) -> str | None:
        """Move the blocked attempt, with its evidence as validation.json, to `quarantine_path()`; the
        error then names it. Returns the path, or None when storage failed (the attempt is deleted then)."""
        evidence = self._stamp(error.validation or Validation.of_failures(error.failures))
        error.validation = evidence
        try:
            self.storage.write_bytes(self.attempt_path(VALIDATION_NAME), evidence.to_json())
            self.storage.move(f"{self.base}/attempts/{self.attempt_id}", self.quarantine_path())
        except Exception as exc:  # the gate's verdict is the error to report; keep it
            log.warning("could not quarantine %s: %s", self.attempt_path(""), exc)
            self.abort()
            return None
        command = (
            f"crisp data-docs --dataset {self.dataset} --date {self.partition} --attempt {self.attempt_id}"
        )
        error.quarantined(self.storage.uri(self.quarantine_path()), f" (report: {command})")
        return self.quarantine_path()

    def _stamp(self, evidence: Validation) -> Validation:
        return evidence.model_copy(
            update={"dataset": self.dataset, "partition": self.partition, "attempt_id": self.attempt_id}
        )

    def commit(
        self,
        counts: dict[str, int],
        schema_versions: dict[str, int],
        extra: dict[str, Any] | None = None,
        content_key: Any = None,
        gate: Callable[[Manifest], Validation | None] | None = None,
        gc_grace: timedelta = timedelta(hours=1),
        based_on: Manifest | None | object = UNCHECKED,
    ) -> Manifest:
        """Verify the attempt's files, run `gate` (raises to block; may return its evidence, stored as
        validation.json), swap the manifest, collect garbage. A `GateError` quarantines the attempt.

        Returns the committed manifest; when the committed partition already holds the same content,
        the new attempt is discarded and the existing manifest is returned unchanged. `based_on` is the
        manifest the caller read when it started (None: none was committed): if another attempt was
        committed since, or commits between the check and the swap, this one is discarded and
        `SupersededError` names the winner, so of two concurrent commits exactly one reports success.
        """
        files = sorted(self.files.values(), key=lambda f: f.name)
        for f in files:  # the data must be durable before anything points at it
            actual = self.storage.size(f"{self.base}/{f.path}")
            if actual != f.size:
                raise ManifestError(f"{self.base}/{f.path}: wrote {f.size} bytes but storage holds {actual}")
        manifest = Manifest(
            dataset=self.dataset,
            partition=self.partition,
            attempt_id=self.attempt_id,
            run_id=self.run_id,
            created_at=datetime.now(UTC),
            files=files,
            counts=counts,
            schema_versions=schema_versions,
            content_digest=content_digest(_content(files), counts, content_key),
            extra=extra or {},
        )
        if gate is not None:
            try:
                evidence = gate(manifest)
            except GateError as exc:
                self.quarantine(exc)
                raise
            except BaseException:
                self.abort()
                raise
            if evidence is not None:  # listed and checksummed, outside the digest: `content` is unchanged
                self.write(VALIDATION_NAME, self._stamp(evidence).to_json())
                files = sorted(self.files.values(), key=lambda f: f.name)
                manifest = manifest.model_copy(update={"files": files})
        rel = f"{self.base}/{MANIFEST_NAME}"
        while True:  # without `based_on`, a swap lost to another writer is simply tried again over it
            current_bytes = self.storage.read_bytes_or_none(rel)
            current = Manifest.from_json(current_bytes) if current_bytes is not None else None
            if current is not None and current.content_digest == manifest.content_digest:
                self.abort()
                return current
            if based_on is not UNCHECKED and _attempt(current) != _attempt(based_on):
                self.abort()
                raise SupersededError(self._superseded_message(current))
            if self.storage.swap_bytes(rel, manifest.to_json(), current_bytes):
                break
        self.storage.write_bytes(f"{self.base}/history/{self.attempt_id}.json", manifest.to_json())
        collect_garbage(self.storage, self.dataset, self.partition, grace=gc_grace)
        return manifest

    def _superseded_message(self, winner: Manifest | None) -> str:
        who = (
            f"attempt {winner.attempt_id} (run {winner.run_id}, committed {winner.created_at:%Y-%m-%d %H:%M:%S} UTC)"
            if winner is not None
            else "another run, which removed the manifest"
        )
        return (
            f"{self.dataset}/{self.partition}: attempt {self.attempt_id} was not committed: it was superseded "
            f"by {who}, committed while this run worked; the partition keeps that attempt. Rerun to build on it."
        )


def _content(files: list[ManifestFile]) -> list[ManifestFile]:
    """The files the content digest covers: all but the gate's evidence (it has timestamps)."""
    return [f for f in files if f.name != VALIDATION_NAME]


def _attempt(manifest: Manifest | None) -> str | None:
    return manifest.attempt_id if manifest is not None else None


def read_manifest_or_none(storage: Storage, dataset: str, partition: str) -> Manifest | None:
    try:
        data = storage.read_bytes(f"{partition_dir(dataset, partition)}/{MANIFEST_NAME}")
    except FileNotFoundError:
        return None
    return Manifest.from_json(data)


def read_manifest(storage: Storage, dataset: str, partition: str) -> Manifest:
    manifest = read_manifest_or_none(storage, dataset, partition)
    if manifest is None:
        raise PartitionNotCommittedError(
            f"partition {dataset}/{partition} is not committed under {storage.root} "
            f"(no {MANIFEST_NAME}); run the stage that produces it first"
        )
    return manifest


def check_bytes(data: bytes, partition: str, name: str, uri: str, size: int, sha256: str) -> bytes:
    """`data` when it has the `size` and `sha256` the manifest of `partition` records for file `name`;
    else `ChecksumMismatch` naming the partition, the file (role name and URI) and both digests."""
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != size or actual != sha256:
        raise ChecksumMismatch(
            f"checksum mismatch in partition {partition}: {name} ({uri}) does not match its manifest: "
            f"expected sha256 {sha256} ({size} bytes), got {actual} ({len(data)} bytes); the file was "
            "changed or corrupted after the commit: rerun the stage that wrote the partition"
        )
    return data


def read_verified(storage: Storage, manifest: Manifest, name: str) -> bytes:
    """All bytes of the manifest's file with role name `name`, checked against its size and sha256.

    Every reader that reads a committed file whole goes through here (indexes, ledgers, whole shards);
    KeyError names the partition when it has no such file, `ChecksumMismatch` when the bytes differ."""
    entry = manifest.file(name)
    rel = f"{partition_dir(manifest.dataset, manifest.partition)}/{entry.path}"
    where = f"{manifest.dataset}/{manifest.partition}"
    return check_bytes(storage.read_bytes(rel), where, entry.name, storage.uri(rel), entry.size, entry.sha256)


def verify(storage: Storage, manifest: Manifest, checksums: bool = False) -> None:
    """Check every listed file exists with its size (and sha256 when `checksums`: reads every file)."""
    base = partition_dir(manifest.dataset, manifest.partition)
    for f in manifest.files:
        rel = f"{base}/{f.path}"
        if not storage.exists(rel):
            raise ManifestError(f"{storage.uri(rel)} is listed in the manifest but missing")
        size = storage.size(rel)
        if size != f.size:
            raise ManifestError(f"{storage.uri(rel)} has {size} bytes, the manifest says {f.size}")
        if checksums:
            read_verified(storage, manifest, f.name)


def committed_partitions(storage: Storage, dataset: str) -> list[str]:
    """Names of partitions of `dataset` that have a manifest, sorted."""
    return [p for p in storage.list_dirs(dataset) if storage.exists(f"{dataset}/{p}/{MANIFEST_NAME}")]


def collect_garbage(storage: Storage, dataset: str, partition: str, grace: timedelta) -> list[str]:
    """Delete attempts the manifest does not reference and that are older than `grace` (and temp files of
    interrupted local writes, as old); return the attempt ids. Quarantined attempts are kept."""
    base = partition_dir(dataset, partition)
    current = read_manifest_or_none(storage, dataset, partition)
    keep = current.attempt_id if current else None
    cutoff = datetime.now(UTC) - grace
    removed = []
    for attempt in storage.list_dirs(f"{base}/attempts"):
        started = _attempt_time(attempt)
        if attempt != keep and started is not None and started <= cutoff:
            storage.delete(f"{base}/attempts/{attempt}", recursive=True)
            removed.append(attempt)
    # a local write killed between its temp file and the rename leaves `<name>.tmp-<hex>` behind
    for rel in storage.list(base) + storage.list(f"{base}/history"):
        if ".tmp-" in rel.rsplit("/", 1)[-1] and storage.modified(rel) <= cutoff:
            storage.delete(rel)
    return removed

"""Reference image sets on the storage root: push a folder once, read it back verified wherever a gate runs.

In: a `Storage`, a set name (`Set5`) and a local folder of images (`push`); or a set reference from the
settings (`gates.sr.benchmarks.<name>`) and a local work folder (`materialize`). Out: `push` writes
`reference/<name>/files/<file>` and then `reference/<name>/_manifest.json` (every file's size and sha256,
the set's digest) last, so a half-pushed set is never visible, and returns the `ReferenceManifest`;
`materialize` returns a local folder holding the set, every file checked against the manifest;
`read_files` returns the same files' bytes by name, with the same checks, without a local copy.

A reference is an fsspec URI (`s3://bucket/crisp/reference/Set5`), an absolute local folder (read in
place, as tests and laptops do), or a path relative to the storage root (`reference/Set5`, the default,
so a deployment needs nothing beside its root). A missing or incomplete set raises `ReferenceSetError`
naming the setting to fix and the command that pushes it: a gate never passes on an empty set.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from pipeline.storage import Storage
from schemas.errors import InputError

logger = logging.getLogger(__name__)

PREFIX = "reference"
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


class ReferenceSetError(InputError, ValueError):
    """A reference set is missing, empty or does not match its manifest; the message says how to fix it."""


class ReferenceFile(BaseModel):
    name: str
    size: int
    sha256: str


class ReferenceManifest(BaseModel):
    name: str
    files: list[ReferenceFile]
    digest: str  # sha256 over the sorted "name sha256" lines: the set's identity
    source: str = ""
    created_at: str = ""


def _digest(files: list[ReferenceFile]) -> str:
    lines = "\n".join(f"{f.name} {f.sha256}" for f in sorted(files, key=lambda f: f.name))
    return hashlib.sha256(lines.encode()).hexdigest()


def push(storage: Storage, name: str, folder: Path) -> ReferenceManifest:
    """Copy the images of `folder` to `reference/<name>/` on `storage`; the manifest is written last."""
    folder = Path(folder)
    if not name or "/" in name or name.startswith("."):
        raise ReferenceSetError(f"reference set name {name!r} must be one plain folder name, e.g. Set5")
    paths = (
        sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    )
    if not paths:
        raise ReferenceSetError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): nothing to push")
    files = []
    for path in paths:
        data = path.read_bytes()
        storage.write_bytes(f"{PREFIX}/{name}/files/{path.name}", data)
        files.append(ReferenceFile(name=path.name, size=len(data), sha256=hashlib.sha256(data).hexdigest()))
    manifest = ReferenceManifest(
        name=name,
        files=files,
        digest=_digest(files),
        source=str(folder.resolve()),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    storage.write_bytes(f"{PREFIX}/{name}/_manifest.json", manifest.model_dump_json(indent=1).encode())
    logger.info("pushed reference set %s: %d files to %s", name, len(files), storage.uri(f"{PREFIX}/{name}"))
    return manifest


def list_sets(storage: Storage) -> list[ReferenceManifest]:
    """Every pushed reference set on `storage` (only those whose manifest exists)."""
    sets = []
    for name in storage.list_dirs(PREFIX):
        if storage.exists(f"{PREFIX}/{name}/_manifest.json"):
            sets.append(
                ReferenceManifest.model_validate_json(storage.read_bytes(f"{PREFIX}/{name}/_manifest.json"))
            )
    return sets


def _set_storage(reference: str, storage: Storage | None, setting: str) -> Storage:
    if "://" in reference:
        return Storage(
            reference,
            storage.options if storage is not None and reference.startswith(f"{storage.scheme}://") else {},
        )
    if storage is None:
        raise ReferenceSetError(
            f"{setting}={reference!r} is relative to the storage root, but no storage was given"
        )
    return storage.child(reference)


def _fix(name: str, setting: str) -> str:
    return f"set {setting} or push the set with `crisp reference push DIR --name {name}`"


def _is_local_folder(reference: str) -> bool:
    return "://" not in reference and Path(reference).is_absolute()


def _local_images(name: str, folder: Path, setting: str) -> list[Path]:
    paths = (
        sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    )
    if not paths:
        raise ReferenceSetError(
            f"benchmark {name!r}: {folder} is missing or holds no images; {_fix(name, setting)}"
        )
    return paths


def read_files(name: str, reference: str | Path, storage: Storage | None, setting: str) -> dict[str, bytes]:
    """File name -> bytes of reference set `name`: an absolute local folder's images as they are, else the
    pushed set's files, each checked against its manifest (ReferenceSetError names what to fix)."""
    text = str(reference)
    fix = _fix(name, setting)
    if _is_local_folder(text):
        return {p.name: p.read_bytes() for p in _local_images(name, Path(text), setting)}
    source = _set_storage(text, storage, setting)
    if not source.exists("_manifest.json"):
        raise ReferenceSetError(
            f"benchmark {name!r}: no reference set at {source.uri()} (no _manifest.json); {fix}"
        )
    manifest = ReferenceManifest.model_validate_json(source.read_bytes("_manifest.json"))
    if not manifest.files:
        raise ReferenceSetError(f"benchmark {name!r}: the reference set at {source.uri()} is empty; {fix}")
    files = {}
    for entry in manifest.files:
        data = source.read_bytes(f"files/{entry.name}")
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise ReferenceSetError(
                f"benchmark {name!r}: {source.uri(f'files/{entry.name}')} does not match its manifest "
                f"(sha256 {hashlib.sha256(data).hexdigest()[:12]}..., expected {entry.sha256[:12]}...); push it again"
            )
        files[entry.name] = data
    logger.debug("reference set %s (%s) read from %s", name, manifest.digest[:12], source.uri())
    return files


def materialize(name: str, reference: str | Path, storage: Storage | None, work: Path, setting: str) -> Path:
    """A local folder holding reference set `name`: an absolute local folder as it is, else the pushed
    set copied into `work` and checked file by file against its manifest."""
    if _is_local_folder(str(reference)):
        _local_images(name, Path(reference), setting)
        return Path(reference)
    target = Path(work) / name
    target.mkdir(parents=True, exist_ok=True)
    for file_name, data in read_files(name, reference, storage, setting).items():
        (target / file_name).write_bytes(data)
    return target

"""Partition manifest: the single object that makes a partition visible.

Lists every file of one attempt (path relative to the partition folder, size, sha256), the row counts,
the schema versions of the records inside, the run and attempt ids and free-form lineage (`extra`).
`content_digest` hashes what the partition holds (file checksums + counts), not when or by whom it was
written, so a rerun that produces the same data is recognised as a no-op.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

VERSION = 1
MANIFEST_NAME = "_manifest.json"


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str  # relative to the partition folder, e.g. attempts/<id>/shards/000000.tar
    name: str  # role-stable name inside the attempt, e.g. shards/000000.tar
    size: int
    sha256: str


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    manifest_version: int = VERSION
    dataset: str
    partition: str
    attempt_id: str
    run_id: str
    created_at: datetime
    files: list[ManifestFile]
    counts: dict[str, int]
    schema_versions: dict[str, int]
    content_digest: str
    extra: dict[str, Any] = {}

    def file(self, name: str) -> ManifestFile:
        """The file whose role name is `name` (e.g. 'index.parquet'); KeyError names the partition."""
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(f"{self.dataset}/{self.partition} (attempt {self.attempt_id}) has no file {name!r}")

    def files_under(self, prefix: str) -> list[ManifestFile]:
        return [f for f in self.files if f.name.startswith(prefix)]

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        return cls.model_validate_json(data)


def content_digest(files: list[ManifestFile], counts: dict[str, int], extra_key: Any = None) -> str:
    """Digest of the partition's content: (name, size, sha256) of each file, the counts, and a content key."""
    payload = {
        "files": sorted((f.name, f.size, f.sha256) for f in files),
        "counts": dict(sorted(counts.items())),
        "key": extra_key,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

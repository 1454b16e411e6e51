"""Object storage: one small API over fsspec URIs (`file://`, `s3://`, `memory://`).

In: a root URI plus storage options (S3 endpoint and keys). Out: a `Storage` that reads, writes,
range-reads, lists and deletes paths relative to that root, with errors that name the URI and the fix.
Every stage goes through this module, so a folder on a laptop and an S3 bucket behave the same.
Writes of a single object are atomic on every backend: S3 PUTs are, and local files are written to
a temporary name and renamed. `swap_bytes` is the compare-and-swap the commit protocol needs: a
conditional PUT (If-Match / If-None-Match) on S3, the same check under an exclusive lock locally.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import posixpath
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import fsspec

from schemas.errors import CrispError

SUPPORTED_SCHEMES = ("file", "s3", "memory")


class StorageError(CrispError, RuntimeError):
    """A storage operation failed; the message names the URI and what to do."""


def normalize_root(uri: str) -> str:
    """Return `uri` as a canonical root (scheme://path, no trailing slash); plain paths become file://."""
    if not isinstance(uri, str) or not uri.strip():
        raise StorageError(
            "storage root is empty: set CRISP_ROOT or `root:` in the config, e.g. file://./data"
        )
    uri = uri.strip()
    if "://" not in uri:
        return "file://" + os.path.abspath(uri)
    scheme, _, rest = uri.partition("://")
    if scheme not in SUPPORTED_SCHEMES:
        raise StorageError(
            f"unsupported storage URI {uri!r}: scheme {scheme!r} is not one of {', '.join(SUPPORTED_SCHEMES)}"
        )
    if scheme == "file":
        return "file://" + os.path.abspath(rest or ".")
    bucket = rest.split("/", 1)[0]
    if not bucket:
        raise StorageError(f"malformed storage URI {uri!r}: expected {scheme}://bucket/prefix")
    return f"{scheme}://{rest.rstrip('/')}"


def s3_options_from_env() -> dict[str, Any]:
    """S3 options from the settings' variables CRISP_S3__ENDPOINT_URL / CRISP_S3__KEY / CRISP_S3__SECRET
    (else AWS_ENDPOINT_URL and boto's own AWS_* lookup), for a Storage given no options."""
    opts: dict[str, Any] = {}
    endpoint = os.environ.get("CRISP_S3__ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["client_kwargs"] = {"endpoint_url": endpoint}
    key = os.environ.get("CRISP_S3__KEY")
    secret = os.environ.get("CRISP_S3__SECRET")
    if key and secret:
        opts["key"], opts["secret"] = key, secret
    return opts


@dataclass
class Storage:
    """Paths under `root`; `options` are passed to fsspec (s3fs: key, secret, client_kwargs...)."""

    root: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = normalize_root(self.root)
        self.scheme = urlparse(self.root).scheme
        if self.scheme == "s3" and not self.options:
            self.options = s3_options_from_env()
        try:  # the filesystem and the root's path in it, as fsspec itself resolves a URL (public API)
            self.fs, self._base = fsspec.url_to_fs(self.root, **self.options)
        except Exception as exc:  # bad options are a configuration error
            raise StorageError(f"cannot open storage {self.root}: {exc}") from exc

    # -- paths ---------------------------------------------------------------------------------
    def uri(self, rel: str = "") -> str:
        rel = rel.strip("/")
        return f"{self.root}/{rel}" if rel else self.root

    def _path(self, rel: str) -> str:
        rel = rel.strip("/")
        if ".." in rel.split("/"):
            raise StorageError(f"path {rel!r} escapes the storage root {self.root}")
        return posixpath.join(self._base, rel) if rel else self._base

    def child(self, rel: str) -> Storage:
        """A Storage rooted at a sub-path, sharing options."""
        return Storage(self.uri(rel), dict(self.options))

    # -- reading -------------------------------------------------------------------------------
    def _call(self, what: str, rel: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except (StorageError, ValueError):
            raise
        except Exception as exc:
            hint = ""
            if self.scheme == "s3":
                hint = (
                    " (check the S3 endpoint, credentials and bucket: CRISP_S3__ENDPOINT_URL, "
                    "CRISP_S3__KEY, CRISP_S3__SECRET)"
                )
            raise StorageError(f"{what} {self.uri(rel)} failed: {type(exc).__name__}: {exc}{hint}") from exc

    def read_bytes(self, rel: str) -> bytes:
        return self._call("reading", rel, self.fs.cat_file, self._path(rel))

    def open_read(self, rel: str):
        """A binary file object reading the object in blocks (for streaming readers such as feeds)."""
        return self._call("opening", rel, self.fs.open, self._path(rel), "rb")

    def read_range(self, rel: str, offset: int, size: int) -> bytes:
        """Exactly `size` bytes at `offset`: one ranged GET on S3, one seek+read locally."""
        data = self._call(
            "range-reading", rel, self.fs.cat_file, self._path(rel), start=offset, end=offset + size
        )
        if len(data) != size:
            raise StorageError(
                f"short read from {self.uri(rel)}: wanted {size} bytes at {offset}, got {len(data)}"
            )
        return data

    def read_ranges(self, rel: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """The bytes of each (offset, size) range of one object: concurrent ranged GETs on S3."""
        wanted = [(offset, size) for offset, size in ranges if size > 0]
        if len(wanted) < len(ranges):  # an empty range reads nothing (S3 would answer the whole object)
            found = iter(self.read_ranges(rel, wanted))
            return [next(found) if size > 0 else b"" for _, size in ranges]
        if not ranges:
            return []
        starts = [offset for offset, _ in ranges]
        ends = [offset + size for offset, size in ranges]
        path = self._path(rel)
        blocks = self._call(
            "range-reading", rel, self.fs.cat_ranges, [path] * len(ranges), starts, ends, on_error="raise"
        )
        for block, (offset, size) in zip(blocks, ranges, strict=True):
            if len(block) != size:
                raise StorageError(
                    f"short read from {self.uri(rel)}: wanted {size} bytes at {offset}, got {len(block)}"
                )
        return blocks

    def exists(self, rel: str) -> bool:
        return bool(self._call("checking", rel, self.fs.exists, self._path(rel)))

    def size(self, rel: str) -> int:
        return int(self._call("stat of", rel, self.fs.size, self._path(rel)))

    def modified(self, rel: str) -> datetime:
        """When the object was last written (UTC)."""
        when = self._call("stat of", rel, self.fs.modified, self._path(rel))
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    def list(self, rel: str = "", recursive: bool = False) -> list[str]:
        """Relative paths of files under `rel` (sorted). Missing folder -> empty list."""
        base = self._path(rel)
        try:
            if recursive:
                found = self.fs.find(base)
            else:
                found = [i["name"] for i in self.fs.ls(base, detail=True) if i["type"] == "file"]
        except FileNotFoundError:
            return []
        prefix = self._base.rstrip("/") + "/"
        return sorted(p[len(prefix) :] if p.startswith(prefix) else p for p in found)

    def list_dirs(self, rel: str = "") -> list[str]:
        """Names of immediate sub-folders of `rel`."""
        try:
            infos = self.fs.ls(self._path(rel), detail=True)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(i["name"].rstrip("/")) for i in infos if i["type"] == "directory")

    # -- writing -------------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write one object atomically (readers see the old object or the new one, never a part)."""
        path = self._path(rel)
        if self.scheme == "file":
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            return
        self._call("writing", rel, self.fs.pipe_file, path, data)

    def swap_bytes(self, rel: str, data: bytes, expected: bytes | None) -> bool:
        """Write `data` at `rel` only while the object still holds `expected` (None: does not exist);
        False, with nothing written, when another writer changed it first."""
        path = self._path(rel)
        if self.scheme == "file":
            os.makedirs(os.path.dirname(path), exist_ok=True)
            folder = os.open(os.path.dirname(path), os.O_RDONLY)
            try:
                fcntl.flock(folder, fcntl.LOCK_EX)  # every swapper of this folder waits here
                if self.read_bytes_or_none(rel) != expected:
                    return False
                self.write_bytes(rel, data)
                return True
            finally:
                os.close(folder)  # releases the lock
        if self.scheme != "s3":
            if self.read_bytes_or_none(rel) != expected:
                return False
            self.write_bytes(rel, data)
            return True
        condition = {"IfNoneMatch": "*"}
        if expected is not None:
            self.fs.invalidate_cache(path)
            try:
                etag = self._call("stat of", rel, self.fs.info, path)["ETag"]
            except FileNotFoundError:
                return False
            # the ETag is of the bytes compared only if it did not change while they were read
            if self.read_bytes_or_none(rel) != expected or self.fs.info(path, refresh=True)["ETag"] != etag:
                return False
            condition = {"IfMatch": etag}
        try:
            self.fs.pipe_file(path, data, **condition)
        except (FileExistsError, OSError) as exc:
            if "pre-condition" in str(exc) or isinstance(exc, FileExistsError):
                return False
            raise StorageError(f"writing {self.uri(rel)} failed: {type(exc).__name__}: {exc}") from exc
        return True

    def read_bytes_or_none(self, rel: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        try:
            return self.read_bytes(rel)
        except FileNotFoundError:
            return None

    def upload(self, local_path: str, rel: str, move: bool = False) -> None:
        """Publish a local file at `rel` atomically, streamed (used for large shards).

        With `move` the local file is consumed: on file:// it is synced and renamed into place when both
        sit on one filesystem, so a shard is written to disk once instead of twice."""
        if self.scheme == "file":
            path = self._path(rel)
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            if move and os.stat(local_path).st_dev == os.stat(folder).st_dev:
                with open(local_path, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(local_path, path)
                return
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with open(local_path, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, path)
        else:
            self._call("uploading to", rel, self.fs.put_file, local_path, self._path(rel))
        if move:
            os.remove(local_path)

    def move(self, rel: str, to: str) -> None:
        """Move the folder (or file) at `rel` to `to`, which must not exist: one rename locally; on S3 each
        object is copied, then the source deleted (a reader may see `to` partly copied meanwhile)."""
        if self.scheme == "file":
            target = self._path(to)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self._call("moving", rel, os.rename, self._path(rel), target)
            self.fs.invalidate_cache()
            return
        source = rel.strip("/")
        found = self.list(source, recursive=True)
        if not found:
            raise FileNotFoundError(f"nothing to move at {self.uri(rel)}")
        for name in found:
            copy = to.strip("/") + name[len(source) :]
            self._call("copying", name, self.fs.copy, self._path(name), self._path(copy))
        self.delete(source, recursive=True)

    def delete(self, rel: str, recursive: bool = False) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(rel), recursive=recursive)
        if self.scheme == "file" and recursive:
            self.fs.invalidate_cache()


def read_uri(uri: str, options: Any = None) -> bytes:
    """All bytes of a local path or fsspec URI (a checkpoint, a verdict): the one whole-object reader for
    URIs outside a `Storage` root. Raises FileNotFoundError / OSError as fsspec does."""
    with fsspec.open(str(uri), "rb", **dict(options or {})) as handle:
        return handle.read()

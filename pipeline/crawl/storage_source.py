"""Storage sources: read an image object named by a `file://` or `s3://` URI through fsspec.

In: the URI, fsspec storage options (credentials, an S3 endpoint) and a byte limit. Out: a triple
(reason, detail, bytes): reason is None with the object's bytes, or `source_not_found` (missing, a
folder, or unreadable for permissions), `too_large`, or `connection_error` (any other storage I/O
error, retryable). Blocking; the fetch module runs it in a worker thread.
"""

from __future__ import annotations

from typing import Any

import fsspec

from schemas.reasons import Reason

STORAGE_SCHEMES = frozenset({"file", "s3"})


def read_storage_object(
    uri: str, storage_options: dict[str, Any], max_bytes: int
) -> tuple[Reason | None, str, bytes | None]:
    """Read at most `max_bytes` of the object at `uri`; failures come back as a reason, not raised."""
    try:
        filesystem, path = fsspec.core.url_to_fs(uri, **storage_options)
        # One ranged read: a byte past the limit is enough to know the object is too large.
        data = filesystem.cat_file(path, start=0, end=max_bytes + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
        return Reason.SOURCE_NOT_FOUND, f"no object at {uri}: {type(error).__name__}", None
    except PermissionError as error:
        return Reason.SOURCE_NOT_FOUND, f"cannot read {uri}: permission denied ({error})", None
    except ValueError as error:
        return Reason.FEED_BAD_URL, f"bad storage URI {uri}: {error}", None
    except Exception as error:  # OSError, and botocore's endpoint/credential errors, which are not OSError
        return Reason.CONNECTION_ERROR, f"storage error reading {uri}: {type(error).__name__}: {error}", None
    if len(data) > max_bytes:
        return Reason.TOO_LARGE, f"object is larger than max_body_bytes {max_bytes}", None
    return None, "ok", data

"""Feed: read one catalog feed (CSV, TSV, JSONL or Parquet, optionally gzip) into rows to fetch and rejects.

In: a feed URI (`file://`, `s3://`, `memory://` or a bare local path) and storage options. Out: a `Feed`
with one `FeedRow` per usable row and one `FeedReject` (reason code + detail) per unusable one, in feed
order; together they are the partition's inputs, each with a `row_key` "<feed file name>:<row number>"
(data rows counted from 1, header and blank lines not counted).

Columns are matched case-insensitively, and these aliases are accepted (the first present wins, any other
column is carried through as JSON in `extra`):

    product_id  <- product_id, sku, product_sku, item_id
    image_url   <- image_url, url, image, image_link, img_url
    category    <- category, product_category
    title       <- title, product_name, name

Row rules: an empty product_id or image_url -> feed_missing_field; a URL that does not parse (no scheme,
no host, control characters) -> feed_bad_url, or an unsupported scheme -> unsupported_scheme; a row that
cannot be read (wrong number of CSV fields, invalid UTF-8, a JSONL line that is not a JSON object) ->
feed_bad_row. A feed that cannot be read at all (missing, unknown format, no product_id / image_url column)
raises `FeedError` naming the feed and what is missing.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.crawl import parse_source_url
from pipeline.storage import Storage, StorageError
from schemas.errors import InputError
from schemas.feed import REQUIRED_COLUMNS
from schemas.reasons import Reason

ALIASES: dict[str, tuple[str, ...]] = {
    "product_id": ("product_id", "sku", "product_sku", "item_id"),
    "image_url": ("image_url", "url", "image", "image_link", "img_url"),
    "category": ("category", "product_category"),
    "title": ("title", "product_name", "name"),
}
FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class FeedError(InputError, ValueError):
    """The feed as a whole cannot be read; the message names the feed and the fix."""


@dataclass(frozen=True)
class FeedRow:
    row_key: str
    product_id: str
    image_url: str
    category: str | None = None
    title: str | None = None
    extra: str | None = None  # JSON object of the other columns


@dataclass(frozen=True)
class FeedReject:
    row_key: str
    product_id: str | None
    url: str | None
    reason: str
    detail: str


@dataclass(frozen=True)
class Feed:
    uri: str
    format: str
    rows: list[FeedRow]
    rejects: list[FeedReject]
    columns: dict[str, str]  # canonical name -> the feed's column it was read from

    @property
    def inputs(self) -> int:
        return len(self.rows) + len(self.rejects)


def read_feed(uri: str, storage_options: dict[str, Any] | None = None) -> Feed:
    """Read and validate the feed at `uri` (see the module docstring)."""
    data, name = _read_bytes(uri, storage_options)
    stem = name[:-3] if name.lower().endswith(".gz") else name
    suffix = "." + stem.rsplit(".", 1)[-1].lower() if "." in stem else ""
    kind = FORMATS.get(suffix)
    if kind is None:
        raise FeedError(
            f"feed {uri}: unknown format {suffix or '(no extension)'!r}; use one of {', '.join(FORMATS)}"
        )
    if name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise FeedError(f"feed {uri}: not a valid gzip file ({exc})") from None
    if kind == "parquet":
        header, records = _parquet_records(uri, data)
    elif kind == "jsonl":
        header, records = _jsonl_records(data)
    else:
        header, records = _csv_records(uri, data, "\t" if kind == "tsv" else ",")
    columns = _map_columns(uri, header)
    rows: list[FeedRow] = []
    rejects: list[FeedReject] = []
    for number, (values, problem) in enumerate(records, start=1):
        outcome = _row(f"{name}:{number}", values, problem, columns)
        (rows if isinstance(outcome, FeedRow) else rejects).append(outcome)
    return Feed(uri=uri, format=kind, rows=rows, rejects=rejects, columns=columns)


def _read_bytes(uri: str, storage_options: dict[str, Any] | None) -> tuple[bytes, str]:
    if not isinstance(uri, str) or not uri.strip():
        raise FeedError("feed URI is empty: pass --feed file:///path/feed.csv (or s3://bucket/feed.csv)")
    uri = uri.strip()
    scheme, sep, rest = uri.partition("://") if "://" in uri else ("", "", uri)
    parent, _, name = rest.rstrip("/").rpartition("/")
    if not name:
        raise FeedError(f"feed {uri} names a folder, not a feed file")
    root = f"{scheme}{sep}{parent or ('/' if rest.startswith('/') else '.')}"
    try:
        return Storage(root, dict(storage_options or {})).read_bytes(name), name
    except FileNotFoundError:
        raise FeedError(
            f"feed {uri} does not exist: check the path / the date it was templated from"
        ) from None
    except (StorageError, IsADirectoryError, PermissionError) as exc:
        raise FeedError(f"feed {uri} cannot be read: {exc}") from None


def _csv_records(uri: str, data: bytes, delimiter: str) -> tuple[list[str], Iterator]:
    # surrogateescape keeps going past bad bytes; the rows holding them are rejected one by one
    text = data.decode("utf-8-sig", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header = next((record for record in reader if record), None)
    if header is None:
        raise FeedError(f"feed {uri} is empty: it needs a header row with {' and '.join(REQUIRED_COLUMNS)}")

    def records() -> Iterator[tuple[dict[str, Any] | None, str | None]]:
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield None, f"line {reader.line_num}: {exc}"
                continue
            if not record:  # a blank line is not a row
                continue
            if len(record) != len(header):
                yield None, f"line {reader.line_num}: {len(record)} fields, the header has {len(header)}"
                continue
            yield dict(zip(header, record, strict=True)), None

    return header, records()


def _jsonl_records(data: bytes) -> tuple[list[str], Iterator]:
    parsed: list[tuple[dict[str, Any] | None, str | None]] = []
    header: dict[str, None] = {}
    for line_number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            parsed.append((None, f"line {line_number}: not JSON ({exc})"))
            continue
        if not isinstance(value, dict):
            parsed.append((None, f"line {line_number}: a {type(value).__name__}, not a JSON object"))
            continue
        header.update(dict.fromkeys(value))
        parsed.append((value, None))
    return list(header), iter(parsed)


def _parquet_records(uri: str, data: bytes) -> tuple[list[str], Iterator]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise FeedError(f"feed {uri} is not a readable Parquet file: {exc}") from None
    return table.column_names, ((row, None) for row in table.to_pylist())


def _map_columns(uri: str, header: list[str]) -> dict[str, str]:
    by_lower: dict[str, str] = {}
    for column in header:
        by_lower.setdefault(str(column).strip().lower(), column)
    columns = {}
    for canonical, aliases in ALIASES.items():
        found = next((by_lower[a] for a in aliases if a in by_lower), None)
        if found is not None:
            columns[canonical] = found
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        wanted = "; ".join(f"{c} (or {', '.join(ALIASES[c][1:])})" for c in missing)
        raise FeedError(
            f"feed {uri} has no column for {wanted}; its columns are {', '.join(map(str, header))}"
        )
    return columns


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    return text or None


def _has_bad_text(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xDC80 <= ord(ch) <= 0xDCFF for ch in value)  # surrogate-escaped invalid UTF-8
    if isinstance(value, dict):
        return any(_has_bad_text(k) or _has_bad_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_bad_text(v) for v in value)
    return False


def _row(key: str, values: dict[str, Any] | None, problem: str | None, columns: dict[str, str]):
    if values is None:
        return FeedReject(key, None, None, Reason.FEED_BAD_ROW, problem or "unreadable row")
    product_id = _text(values.get(columns["product_id"]))
    url = _text(values.get(columns["image_url"]))
    if _has_bad_text(values):
        return FeedReject(key, None, None, Reason.FEED_BAD_ROW, "row is not valid UTF-8")
    for name, value in (("product_id", product_id), ("image_url", url)):
        if value is None:
            return FeedReject(key, product_id, url, Reason.FEED_MISSING_FIELD, f"{columns[name]} is empty")
    assert url is not None and product_id is not None
    _, reason, detail = parse_source_url(url)
    if reason is not None:
        return FeedReject(key, product_id, url, str(reason), detail)
    used = set(columns.values())
    extra = {str(k): v for k, v in values.items() if k not in used and v is not None}
    return FeedRow(
        row_key=key,
        product_id=product_id,
        image_url=url,
        category=_text(values.get(columns["category"])) if "category" in columns else None,
        title=_text(values.get(columns["title"])) if "title" in columns else None,
        extra=json.dumps(extra, sort_keys=True, ensure_ascii=False, default=str) if extra else None,
    )

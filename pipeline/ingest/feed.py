"""Feed: read one catalog feed (CSV, TSV, JSONL or Parquet, optionally gzip) into rows to fetch and rejects.

In: a feed URI (`file://`, `s3://`, `memory://` or a bare local path), storage options and `FeedLimits`.
Out: a `Feed` with one `FeedRow` per usable row and one `FeedReject` (reason code + detail) per unusable
one, in feed order; together they are the partition's inputs, each with a `row_key` "<feed file name>:<row
number>" (data rows counted from 1, header and blank lines not counted).

Columns are matched case-insensitively, and these aliases are accepted (the first present wins, any other
column is carried through as JSON in `extra`):

    product_id  <- product_id, sku, product_sku, item_id
    image_url   <- image_url, url, image, image_link, img_url
    category    <- category, product_category
    title       <- title, product_name, name

Row rules: an empty product_id or image_url -> feed_missing_field; a URL that does not parse (no scheme,
no host, control characters) -> feed_bad_url, or an unsupported scheme -> unsupported_scheme; a row that
cannot be read (wrong number of CSV fields, invalid UTF-8, a JSONL line that is not a JSON object) ->
feed_bad_row; a row or one of its fields longer than the limits -> feed_row_too_long. A feed that cannot be
read at all (missing, unknown format, not text, no product_id / image_url column) raises `FeedError`, one
line naming the feed and what is wrong, with any quoted feed content short and escaped.

The feed is streamed (storage -> gzip -> text -> rows), never held whole in memory, so a hostile feed (a
gzip bomb, one endless line) costs bounded memory: `FeedLimits` caps the decompressed size and the row
count, and a feed past either raises `FeedError` rather than being read in part, since a feed cut short
would be committed as a partition missing rows.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from pipeline.crawl import parse_source_url
from pipeline.ingest.config import FeedLimits
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
SETTING = "ingest.feed"  # where FeedLimits sits in the Crisp settings: the errors name the knob to turn
SKIP_CHARS = 2**20  # an over-long line is read past in pieces of this size, never held whole
PARQUET_BATCH_ROWS = 65_536


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


class _Unreadable(NamedTuple):
    """A row the reader could not turn into values: it becomes a reject with this reason."""

    reason: str
    detail: str


def read_feed(
    uri: str, storage_options: dict[str, Any] | None = None, limits: FeedLimits | None = None
) -> Feed:
    """Read and validate the feed at `uri` within `limits` (default `FeedLimits()`; see the module docstring)."""
    limits = limits or FeedLimits()
    uri, storage, name = _locate(uri, storage_options)
    gzipped = name.lower().endswith(".gz")
    stem = name[:-3] if gzipped else name
    suffix = "." + stem.rsplit(".", 1)[-1].lower() if "." in stem else ""
    kind = FORMATS.get(suffix)
    if kind is None:
        raise FeedError(
            f"feed {uri}: unknown format {suffix or '(no extension)'!r}; use one of {', '.join(FORMATS)}"
        )
    with _open(uri, storage, name) as raw:
        source = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        data = io.BufferedReader(_CappedReader(uri, source, gzipped, limits.max_decompressed_bytes))
        if kind == "parquet":
            header, records = _parquet_records(uri, raw, data, gzipped, limits)
        else:
            # surrogateescape keeps going past bad bytes; the rows holding them are rejected one by one
            text = io.TextIOWrapper(
                data, "utf-8-sig", errors="surrogateescape", newline="\n" if kind == "jsonl" else ""
            )
            if kind == "jsonl":
                header, records = _jsonl_records(uri, text, limits)
            else:
                header, records = _csv_records(uri, text, "\t" if kind == "tsv" else ",", limits)
        columns = _map_columns(uri, header)
        rows: list[FeedRow] = []
        rejects: list[FeedReject] = []
        for number, values in enumerate(records, start=1):
            _check_rows(uri, number, limits)
            outcome = _row(f"{name}:{number}", values, columns, limits)
            (rows if isinstance(outcome, FeedRow) else rejects).append(outcome)
    return Feed(uri=uri, format=kind, rows=rows, rejects=rejects, columns=columns)


def _locate(uri: str, storage_options: dict[str, Any] | None) -> tuple[str, Storage, str]:
    if not isinstance(uri, str) or not uri.strip():
        raise FeedError("feed URI is empty: pass --feed file:///path/feed.csv (or s3://bucket/feed.csv)")
    uri = uri.strip()
    scheme, sep, rest = uri.partition("://") if "://" in uri else ("", "", uri)
    parent, _, name = rest.rstrip("/").rpartition("/")
    if not name:
        raise FeedError(f"feed {uri} names a folder, not a feed file")
    root = f"{scheme}{sep}{parent or ('/' if rest.startswith('/') else '.')}"
    try:
        return uri, Storage(root, dict(storage_options or {})), name
    except StorageError as exc:
        raise FeedError(f"feed {uri} cannot be read: {exc}") from None


def _open(uri: str, storage: Storage, name: str):
    try:
        return storage.open_read(name)
    except FileNotFoundError:
        raise FeedError(
            f"feed {uri} does not exist: check the path / the date it was templated from"
        ) from None
    except (OSError, StorageError) as exc:  # a folder, no permission, the object store refusing
        raise FeedError(f"feed {uri} cannot be read: {exc}") from None


class _CappedReader(io.RawIOBase):
    """The feed's (decompressed) bytes, counted: past `cap` it raises FeedError, so a gzip bomb stops at
    the cap instead of inflating without end; read and gzip errors become FeedErrors naming the feed."""

    def __init__(self, uri: str, source: Any, gzipped: bool, cap: int) -> None:
        super().__init__()
        self._uri, self._source, self._gzipped, self._cap = uri, source, gzipped, cap
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            chunk = self._source.read(len(buffer))
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise FeedError(f"feed {self._uri}: not a valid gzip file ({exc})") from None
        except OSError as exc:
            raise FeedError(f"feed {self._uri} cannot be read: {type(exc).__name__}: {exc}") from None
        self._count += len(chunk)
        if self._count > self._cap:
            raise FeedError(
                f"feed {self._uri} is over {self._cap:,} bytes{' decompressed' if self._gzipped else ''} "
                f"({SETTING}.max_decompressed_bytes): stopped rather than ingest part of it; "
                "raise the limit if the feed is genuine"
            )
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _check_rows(uri: str, count: int, limits: FeedLimits) -> None:
    if count > limits.max_rows:
        raise FeedError(
            f"feed {uri} has over {limits.max_rows:,} rows ({SETTING}.max_rows): stopped rather than "
            "ingest part of it; raise the limit if the feed is genuine"
        )


class _RowTooLong(Exception):
    """Raised by `_Lines` for a row over max_row_chars; its message is the reject's detail."""


class _Lines:
    """Physical lines of the feed text, each read with a bounded readline, for csv.reader or the JSONL loop.

    A line longer than `max_chars` raises `_RowTooLong` and the rest of it is skipped in bounded pieces on
    the next call, so no line is ever held beyond the cap. `row_chars` adds up the lines of the row being
    parsed (a quoted CSV field may span lines): the caller zeroes it before each row and a row that grows
    past `max_chars` raises too. Unlike a generator this iterator can go on after raising, and csv.reader
    starts its next record afresh after an error, so reading resumes at the next line."""

    def __init__(self, text: io.TextIOBase, max_chars: int, endings: tuple[str, ...]) -> None:
        self._text, self._max, self._endings = text, max_chars, endings
        self._skip_rest = False
        self.number = 0  # physical lines read so far
        self.row_chars = 0
        self.head = ""  # the start of the last line read, for error messages

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._skip_rest:  # done here, not when raising, so that a bad first line fails fast
            while (rest := self._text.readline(SKIP_CHARS)) and not rest.endswith(self._endings):
                pass
            self._skip_rest = False
        line = self._text.readline(self._max + 1)
        if not line:
            raise StopIteration
        self.number += 1
        self.head = line[:200]
        self.row_chars += len(line)
        if len(line) > self._max and not line.endswith(self._endings):
            self._skip_rest = True
            raise _RowTooLong(
                f"line {self.number}: longer than {SETTING}.max_row_chars = {self._max:,} characters"
            )
        if self.row_chars > self._max:
            raise _RowTooLong(
                f"line {self.number}: the row spans more than {SETTING}.max_row_chars = {self._max:,} characters"
            )
        return line


def _csv_records(
    uri: str, text: io.TextIOBase, delimiter: str, limits: FeedLimits
) -> tuple[list[str], Iterator[dict[str, Any] | _Unreadable]]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    lines = _Lines(text, limits.max_row_chars, ("\n", "\r"))
    # csv's own field limit is process-wide: raising it (never lowering it) cannot break another reader, and
    # rows are already capped by _Lines and fields by _row, with reasons and settings that say so
    if csv.field_size_limit() < limits.max_row_chars:
        csv.field_size_limit(limits.max_row_chars)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    while True:  # the header is the first non-blank record
        lines.row_chars = 0
        try:
            header = next(reader)
        except StopIteration:
            raise FeedError(
                f"feed {uri} is empty: it needs a header row with {' and '.join(REQUIRED_COLUMNS)}"
            ) from None
        except (_RowTooLong, csv.Error) as exc:
            raise FeedError(
                f"feed {uri} does not start with a {kind} header row ({exc}); it starts {_first_bytes(lines)}"
            ) from None
        if header:
            break
    if any(_is_binary(column) for column in header):
        what = "gzip data: name it .gz" if header[0].startswith("\x1f\udc8b") else "binary or not UTF-8"
        raise FeedError(f"feed {uri} is not {kind} text ({what}); it starts {_first_bytes(lines)}")

    def records() -> Iterator[dict[str, Any] | _Unreadable]:
        while True:
            lines.row_chars = 0
            try:
                record = next(reader)
            except StopIteration:
                return
            except _RowTooLong as exc:
                yield _Unreadable(Reason.FEED_ROW_TOO_LONG, str(exc))
                continue
            except csv.Error as exc:
                yield _Unreadable(Reason.FEED_BAD_ROW, f"line {lines.number}: {exc}")
                continue
            if not record:  # a blank line is not a row
                continue
            if len(record) != len(header):
                yield _Unreadable(
                    Reason.FEED_BAD_ROW,
                    f"line {lines.number}: {len(record)} fields, the header has {len(header)}",
                )
                continue
            yield dict(zip(header, record, strict=True))

    return header, records()


def _jsonl_records(
    uri: str, text: io.TextIOBase, limits: FeedLimits
) -> tuple[list[str], Iterator[dict[str, Any] | _Unreadable]]:
    # the columns are those of every line, so all lines are parsed before the first row is judged;
    # the row cap is checked here, as they are parsed, to keep that list bounded too
    lines = _Lines(text, limits.max_row_chars, ("\n",))
    parsed: list[dict[str, Any] | _Unreadable] = []
    header: dict[str, None] = {}
    while True:
        lines.row_chars = 0
        try:
            line = next(lines)
        except StopIteration:
            break
        except _RowTooLong as exc:
            parsed.append(_Unreadable(Reason.FEED_ROW_TOO_LONG, str(exc)))
            _check_rows(uri, len(parsed), limits)
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            value = _Unreadable(Reason.FEED_BAD_ROW, f"line {lines.number}: not JSON ({exc})")
        if not isinstance(value, (dict, _Unreadable)):
            value = _Unreadable(
                Reason.FEED_BAD_ROW, f"line {lines.number}: a {type(value).__name__}, not a JSON object"
            )
        if isinstance(value, dict):
            header.update(dict.fromkeys(value))
        parsed.append(value)
        _check_rows(uri, len(parsed), limits)
    if not header:
        first = next((p.detail for p in parsed if isinstance(p, _Unreadable)), None)
        raise FeedError(
            f"feed {uri} has no JSON object line to take columns from"
            + (f" ({first})" if first else f": it needs lines with {' and '.join(REQUIRED_COLUMNS)}")
        )
    return list(header), iter(parsed)


def _parquet_records(
    uri: str, raw: Any, data: io.BufferedReader, gzipped: bool, limits: FeedLimits
) -> tuple[list[str], Iterator[dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Parquet is read from its footer, so it needs a seekable file: the stored one as it is, or a gzip one
    # inflated into memory first (the capped reader bounds that)
    source = io.BytesIO(data.read()) if gzipped else raw
    try:
        parquet = pq.ParquetFile(source)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise FeedError(f"feed {uri} is not a readable Parquet file: {exc}") from None
    metadata = parquet.metadata
    _check_rows(uri, metadata.num_rows, limits)
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if size > limits.max_decompressed_bytes:
        raise FeedError(
            f"feed {uri} holds {size:,} bytes uncompressed, over {limits.max_decompressed_bytes:,} "
            f"({SETTING}.max_decompressed_bytes); raise the limit if the feed is genuine"
        )

    def records() -> Iterator[dict[str, Any]]:
        try:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                yield from batch.to_pylist()
        except (pa.ArrowException, OSError) as exc:
            raise FeedError(f"feed {uri} is not a readable Parquet file: {exc}") from None

    return parquet.schema_arrow.names, records()


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
            f"feed {uri} has no column for {wanted}; its columns are "
            f"{_excerpt(', '.join(map(str, header)), 80)}"
        )
    return columns


def _excerpt(value: str | bytes, limit: int = 60) -> str:
    """The start of `value` as an escaped literal of at most `limit` characters (+ "..." when cut), so
    an error message stays one short line and never carries raw bytes or control characters."""
    size = min(len(value), limit)
    while len(text := repr(value[:size])) > limit:
        size = min(size - 1, size * limit // len(text))
    return text + ("..." if size < len(value) else "")


def _first_bytes(lines: _Lines) -> str:
    return _excerpt(lines.head.encode("utf-8", "surrogateescape"))


def _is_binary(text: str) -> bool:
    """Control characters other than tab / newline, or bytes that were not UTF-8 (surrogate-escaped)."""
    return any((ch < " " and ch not in "\t\r\n") or "\udc80" <= ch <= "\udcff" for ch in text)


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


def _row(key: str, values: dict[str, Any] | _Unreadable, columns: dict[str, str], limits: FeedLimits):
    if isinstance(values, _Unreadable):
        return FeedReject(key, None, None, values.reason, values.detail)
    long = next(
        (k for k, v in values.items() if isinstance(v, str) and len(v) > limits.max_field_chars), None
    )
    if long is not None:
        return FeedReject(
            key,
            None,
            None,
            Reason.FEED_ROW_TOO_LONG,
            f"field {_excerpt(str(long), 40)} has {len(values[long]):,} characters, over "
            f"{limits.max_field_chars:,} ({SETTING}.max_field_chars)",
        )
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

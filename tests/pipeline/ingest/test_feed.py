"""Feed: CSV / TSV / JSONL / Parquet (+gzip) from file:// and S3, aliases, extra columns, row rejects, and
hostile feeds (gzip bombs, endless lines and fields, too many rows, binary garbage) within FeedLimits."""

from __future__ import annotations

import gzip
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.ingest.feed import FeedError, FeedLimits, FeedReject, FeedRow, read_feed
from schemas.reasons import Reason

GOOD_CSV = (
    "SKU,url,Product_Name,category,color\n"
    "A1,http://img.example.com/a.jpg,Shirt,Men/Tops,red\n"
    "A2,https://img.example.com/b.png?x=1,,Men/Tops,\n"
)


def test_csv_aliases_row_keys_and_extra_columns(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_text(GOOD_CSV)
    feed = read_feed(f"file://{path}")
    assert feed.format == "csv" and feed.inputs == 2 and feed.rejects == []
    assert feed.columns == {
        "product_id": "SKU",
        "image_url": "url",
        "category": "category",
        "title": "Product_Name",
    }
    first, second = feed.rows
    assert first == FeedRow(
        "feed.csv:1", "A1", "http://img.example.com/a.jpg", "Men/Tops", "Shirt", '{"color": "red"}'
    )
    assert (
        second.row_key == "feed.csv:2" and second.title is None and json.loads(second.extra) == {"color": ""}
    )
    # a bare path reads the same feed
    assert read_feed(str(path)).rows == feed.rows


def test_every_bad_row_is_rejected_with_its_reason(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"product_id,image_url,title\n"
        b"P1,http://ok.example.com/1.jpg,fine\n"
        b",http://ok.example.com/2.jpg,no product\n"
        b"P3,,no url\n"
        b"P4,not a url,bad\n"
        b"P5,ftp://ok.example.com/5.jpg,scheme\n"
        b"P6,http://ok.example.com/6.jpg\n"  # too few fields
        b"P7,http://ok.example.com/7.jpg,\xff\xfe broken utf-8\n"
        b"\n"  # a blank line is not a row
        b'P8,http://ok.example.com/8.jpg,"unterminated\n'
    )
    feed = read_feed(str(path))
    assert [r.row_key for r in feed.rows] == ["bad.csv:1"]
    reasons = {r.row_key: r.reason for r in feed.rejects}
    assert reasons == {
        "bad.csv:2": Reason.FEED_MISSING_FIELD,
        "bad.csv:3": Reason.FEED_MISSING_FIELD,
        "bad.csv:4": Reason.FEED_BAD_URL,
        "bad.csv:5": Reason.UNSUPPORTED_SCHEME,
        "bad.csv:6": Reason.FEED_BAD_ROW,
        "bad.csv:7": Reason.FEED_BAD_ROW,
        "bad.csv:8": Reason.FEED_BAD_ROW,
    }
    assert feed.inputs == 8
    missing = next(r for r in feed.rejects if r.row_key == "bad.csv:3")
    assert missing == FeedReject("bad.csv:3", "P3", None, Reason.FEED_MISSING_FIELD, "image_url is empty")


def test_jsonl_gzip_tsv_and_parquet(tmp_path):
    lines = [
        {"product_id": 17, "image": "http://img.example.com/17.jpg", "tags": ["a", "b"]},
        ["not", "an", "object"],
        {"product_id": "18", "image": "http://img.example.com/18.jpg"},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n{broken json\n"
    (tmp_path / "f.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    feed = read_feed(str(tmp_path / "f.jsonl.gz"))
    assert [(r.row_key, r.product_id) for r in feed.rows] == [("f.jsonl.gz:1", "17"), ("f.jsonl.gz:3", "18")]
    assert json.loads(feed.rows[0].extra) == {"tags": ["a", "b"]}
    assert [(r.row_key, r.reason) for r in feed.rejects] == [
        ("f.jsonl.gz:2", Reason.FEED_BAD_ROW),
        ("f.jsonl.gz:4", Reason.FEED_BAD_ROW),
    ]

    (tmp_path / "f.tsv").write_text("sku\timage_link\nT1\thttp://img.example.com/t.jpg\n")
    assert read_feed(str(tmp_path / "f.tsv")).rows[0].image_url == "http://img.example.com/t.jpg"

    table = pa.table(
        {"item_id": ["Q1", None], "img_url": ["http://img.example.com/q.jpg", "http://x.example.com/y"]}
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    (tmp_path / "f.parquet").write_bytes(buffer.getvalue())
    parquet = read_feed(f"file://{tmp_path}/f.parquet")
    assert [r.product_id for r in parquet.rows] == ["Q1"]
    assert [r.reason for r in parquet.rejects] == [Reason.FEED_MISSING_FIELD]


def test_feed_on_s3(s3_storage):
    s3_storage.write_bytes("feeds/day.csv", GOOD_CSV.encode())
    feed = read_feed(s3_storage.uri("feeds/day.csv"), s3_storage.options)
    assert [r.product_id for r in feed.rows] == ["A1", "A2"]


def test_unreadable_feeds_raise_naming_the_feed_and_the_columns(tmp_path):
    with pytest.raises(FeedError, match=r"feed .*missing\.csv does not exist"):
        read_feed(str(tmp_path / "missing.csv"))
    (tmp_path / "feed.xlsx").write_bytes(b"PK")
    with pytest.raises(FeedError, match="unknown format '.xlsx'"):
        read_feed(str(tmp_path / "feed.xlsx"))
    (tmp_path / "cols.csv").write_text("name,price\nx,1\n")
    with pytest.raises(FeedError, match=r"cols\.csv has no column for product_id .*image_url .*name, price"):
        read_feed(str(tmp_path / "cols.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FeedError, match="is empty"):
        read_feed(str(tmp_path / "empty.csv"))
    (tmp_path / "fake.parquet").write_bytes(b"not parquet")
    with pytest.raises(FeedError, match="not a readable Parquet"):
        read_feed(str(tmp_path / "fake.parquet"))


# -- hostile feeds (issue #12): bounded memory, row rejects for over-long rows, FeedError for cut-short feeds

GIB = 2**30
HEADER = b"product_id,image_url\n"
GOOD_ROW = b"P1,http://img.example.com/1.jpg\n"

# Reads the feed in a fresh interpreter and reports its error and its peak resident memory, VmHWM: the
# peak of a process that inflated the feed in memory would show it, unlike tracemalloc, which misses buffers
# allocated outside Python's allocator (zlib's). Not ru_maxrss: Linux carries that over fork + exec from the
# parent, here pytest, while VmHWM belongs to the new process's own memory.
READ_AND_MEASURE = """
import json, re, sys
from pipeline.ingest.feed import FeedError, read_feed

def peak_mib():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1)) / 1024

before = peak_mib()
try:
    read_feed(sys.argv[1])
    error = None
except FeedError as exc:
    error = str(exc)
print(json.dumps({"error": error, "before_mib": before, "peak_mib": peak_mib()}))
"""


@pytest.fixture(scope="module")
def gzip_bombs(tmp_path_factory):
    """Two ~1 MB gzip feeds that inflate to over 1 GiB of zero bytes: one behind a valid CSV header, one with
    no newline at all. The zeros are compressed once, streamed in 1 MiB pieces, and reused as the second
    gzip member of the first feed (a gzip file may hold several members, read one after the other)."""
    folder = tmp_path_factory.mktemp("bombs")
    zeros = folder / "zeros.csv.gz"
    chunk = bytes(2**20)
    with gzip.GzipFile(zeros, "wb", compresslevel=6) as out:
        for _ in range(GIB // len(chunk)):
            out.write(chunk)
    behind_header = folder / "behind_header.csv.gz"
    behind_header.write_bytes(gzip.compress(HEADER) + zeros.read_bytes())
    return {"behind_header": behind_header, "no_newline": zeros}


def _read_in_subprocess(path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", READ_AND_MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
        check=True,
    )
    return json.loads(done.stdout)


def _is_one_short_escaped_line(message: str) -> bool:
    return "\n" not in message and message.isascii() and message.isprintable() and len(message) < 300


def test_gzip_bomb_behind_a_header_stops_at_the_size_cap_in_bounded_memory(gzip_bombs):
    path = gzip_bombs["behind_header"]
    assert path.stat().st_size < 2 * 2**20  # the bomb: ~1 MB on disk, 1 GiB + a header inflated
    result = _read_in_subprocess(path)
    # the whole 1 GiB was read through (the cap is met only at its end), yet memory stayed flat
    assert result["peak_mib"] < 200 and result["peak_mib"] - result["before_mib"] < 64, result
    assert "is over 1,073,741,824 bytes decompressed" in result["error"]
    assert "ingest.feed.max_decompressed_bytes" in result["error"]
    assert _is_one_short_escaped_line(result["error"])


def test_gzip_bomb_with_no_newline_fails_at_its_first_line(gzip_bombs):
    result = _read_in_subprocess(gzip_bombs["no_newline"])
    assert result["peak_mib"] < 200 and result["peak_mib"] - result["before_mib"] < 64, result
    error = result["error"]
    assert "does not start with a CSV header row" in error and "ingest.feed.max_row_chars" in error
    assert _is_one_short_escaped_line(error)
    assert error.endswith("it starts b'" + "\\x00" * 14 + "'...")


def test_over_long_fields_and_rows_are_rejected_and_reading_goes_on(tmp_path):
    limits = FeedLimits(max_row_chars=1000, max_field_chars=100)
    path = tmp_path / "long.csv"
    path.write_bytes(
        HEADER
        + GOOD_ROW
        + b"P2,http://img.example.com/"
        + b"x" * 200
        + b".jpg\n"  # a field over max_field_chars
        + b"P3,"
        + b"y" * 5000
        + b"\n"  # a line over max_row_chars: skipped, never held whole
        + b"P4,http://img.example.com/4.jpg\n"
        + b'P5,"http://img.example.com/'
        + b"z\n" * 600  # a quoted field spanning many lines, never closed
    )
    feed = read_feed(str(path), limits=limits)
    assert [r.product_id for r in feed.rows] == ["P1", "P4"]
    too_long = [r for r in feed.rejects if r.reason == Reason.FEED_ROW_TOO_LONG]
    assert [r.row_key for r in too_long[:3]] == ["long.csv:2", "long.csv:3", "long.csv:5"]
    assert "field 'image_url' has 227 characters" in too_long[0].detail
    assert "ingest.feed.max_field_chars" in too_long[0].detail
    assert too_long[1].detail == "line 4: longer than ingest.feed.max_row_chars = 1,000 characters"
    assert "the row spans more than ingest.feed.max_row_chars" in too_long[2].detail
    # the rest of the cut-off quoted field reads as rows of its own ("z" lines: one field, not two): rejected
    assert all(r.reason in (Reason.FEED_ROW_TOO_LONG, Reason.FEED_BAD_ROW) for r in feed.rejects)
    assert all(len(r.detail) < 200 for r in feed.rejects)

    # with the default limits: a 200 KB field (past csv's own 128 KiB limit, which used to raise _csv.Error
    # out of read_feed) is a row reject too, and the next row is read
    path.write_bytes(HEADER + b"P1,http://img.example.com/" + b"x" * 200_000 + b"\n" + GOOD_ROW)
    feed = read_feed(str(path))
    assert [r.reason for r in feed.rejects] == [Reason.FEED_ROW_TOO_LONG]
    assert [r.row_key for r in feed.rows] == ["long.csv:2"]

    lines = [
        json.dumps({"product_id": "J1", "image_url": "http://img.example.com/1.jpg"}),
        json.dumps({"product_id": "J2", "image_url": "http://img.example.com/2.jpg", "title": "t" * 200}),
        json.dumps({"product_id": "J3", "image_url": "http://img.example.com/3.jpg", "note": "n" * 2000}),
        json.dumps({"product_id": "J4", "image_url": "http://img.example.com/4.jpg"}),
    ]
    (tmp_path / "long.jsonl").write_text("\n".join(lines) + "\n")
    feed = read_feed(str(tmp_path / "long.jsonl"), limits=limits)
    assert [r.product_id for r in feed.rows] == ["J1", "J4"]
    assert [(r.row_key, r.reason) for r in feed.rejects] == [
        ("long.jsonl:2", Reason.FEED_ROW_TOO_LONG),
        ("long.jsonl:3", Reason.FEED_ROW_TOO_LONG),
    ]
    assert "field 'title' has 200 characters" in feed.rejects[0].detail
    assert feed.rejects[1].detail == "line 3: longer than ingest.feed.max_row_chars = 1,000 characters"


def test_a_feed_over_the_row_or_size_cap_is_an_error_not_a_partial_feed(tmp_path):
    limits = FeedLimits(max_rows=3)
    csv_path = tmp_path / "rows.csv.gz"
    csv_path.write_bytes(gzip.compress(HEADER + GOOD_ROW * 3))
    assert read_feed(str(csv_path), limits=limits).inputs == 3  # exactly at the cap is fine
    csv_path.write_bytes(gzip.compress(HEADER + GOOD_ROW * 3 + b"bad row\n"))  # rejects count as rows
    with pytest.raises(FeedError, match=r"rows\.csv\.gz has over 3 rows \(ingest\.feed\.max_rows\)"):
        read_feed(str(csv_path), limits=limits)

    row = json.dumps({"sku": "J", "url": "http://img.example.com/j.jpg"}) + "\n"
    (tmp_path / "rows.jsonl").write_text(row * 4)
    with pytest.raises(FeedError, match=r"over 3 rows \(ingest\.feed\.max_rows\)"):
        read_feed(str(tmp_path / "rows.jsonl"), limits=limits)

    table = pa.table({"sku": [f"Q{i}" for i in range(4)], "url": ["http://img.example.com/q.jpg"] * 4})
    pq.write_table(table, tmp_path / "rows.parquet")
    with pytest.raises(FeedError, match=r"over 3 rows \(ingest\.feed\.max_rows\)"):
        read_feed(str(tmp_path / "rows.parquet"), limits=limits)  # refused from the footer, before any row
    with pytest.raises(
        FeedError, match=r"bytes uncompressed, over 100 \(ingest\.feed\.max_decompressed_bytes\)"
    ):
        read_feed(str(tmp_path / "rows.parquet"), limits=FeedLimits(max_decompressed_bytes=100))

    with pytest.raises(FeedError, match=r"is over 100 bytes decompressed \(ingest\.feed\.max_decompressed"):
        read_feed(str(csv_path), limits=FeedLimits(max_decompressed_bytes=100))
    plain = tmp_path / "plain.csv"
    plain.write_bytes(HEADER + GOOD_ROW * 10)
    with pytest.raises(FeedError, match=r"plain\.csv is over 100 bytes \(ingest\.feed\.max_decompressed"):
        read_feed(str(plain), limits=FeedLimits(max_decompressed_bytes=100))

    (tmp_path / "cut.csv.gz").write_bytes(gzip.compress(HEADER + GOOD_ROW * 100)[:-12])
    with pytest.raises(FeedError, match=r"cut\.csv\.gz: not a valid gzip file"):
        read_feed(str(tmp_path / "cut.csv.gz"))


def test_binary_garbage_is_an_error_with_a_short_escaped_excerpt(tmp_path):
    garbage = random.Random(12).randbytes(64 * 2**10)
    cases = {
        "garbage.csv": garbage,
        "garbage.tsv": b"\x00" * 10 + garbage,
        "zipped.csv": gzip.compress(HEADER + GOOD_ROW),  # gzip data without the .gz suffix
        "garbage.csv.gz": gzip.compress(garbage),
        "garbage.jsonl": garbage,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FeedError) as caught:
            read_feed(str(tmp_path / name))
        message = str(caught.value)
        assert _is_one_short_escaped_line(message), (name, message)
        if not name.endswith(".jsonl"):
            excerpt = message.split("; it starts ", 1)[1]
            assert excerpt.startswith("b'") and len(excerpt) <= 80, (name, excerpt)
            assert bytes(eval(excerpt.removesuffix("..."))) in data  # what the feed really starts with
    with pytest.raises(FeedError, match=r"zipped\.csv is not CSV text \(gzip data: name it \.gz\)"):
        read_feed(str(tmp_path / "zipped.csv"))
    with pytest.raises(FeedError, match=r"garbage\.jsonl has no JSON object line .*line 1: not JSON"):
        read_feed(str(tmp_path / "garbage.jsonl"))

    # a header with thousands of columns, none of them product_id: the message lists a short excerpt
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"column_{i}" for i in range(5000)) + "\nx\n")
    with pytest.raises(FeedError, match=r"its columns are 'column_0, column_1, .*'\.\.\.$") as caught:
        read_feed(str(wide))
    assert len(str(caught.value)) < 300

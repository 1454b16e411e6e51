"""Feed: CSV / TSV / JSONL / Parquet (+gzip) from file:// and S3, aliases, extra columns, row rejects."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.ingest.feed import FeedError, FeedReject, FeedRow, read_feed
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

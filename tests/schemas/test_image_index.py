"""Image index schema: core columns and types, quality columns, the colour signature, pHash bit patterns."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from pipeline.clean import COLOR_SIGNATURE_BYTES, Compliance, QualityMetrics
from schemas.image_index import (
    COLOR_SIGNATURE_TYPE,
    COMPLIANCE_MEASURE_COLUMNS,
    CORE_COLUMNS,
    IMAGE_INDEX_SCHEMA,
    QUALITY_METRIC_COLUMNS,
    member_extension,
    phash_from_int64,
    phash_to_int64,
)
from schemas.validate import SchemaError, records_to_table, schema_name

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_core_contract_columns_and_types():
    types = {f.name: f.type for f in IMAGE_INDEX_SCHEMA}
    assert IMAGE_INDEX_SCHEMA.names[: len(CORE_COLUMNS)] == list(CORE_COLUMNS)
    for name in ("image_id", "product_id", "url", "split", "shard", "format", "partition"):
        assert types[name] == pa.string()
    for name in ("offset", "size", "phash"):
        assert types[name] == pa.int64()
    assert types["width"] == types["height"] == pa.int32()
    assert types["fetched_at"] == types["ingested_at"] == pa.timestamp("us", tz="UTC")
    assert types["normalize_flags"] == types["quality_flags"] == pa.list_(pa.string())
    assert schema_name(IMAGE_INDEX_SCHEMA) == "image_index v3"
    assert all(not IMAGE_INDEX_SCHEMA.field(c).nullable for c in CORE_COLUMNS)


def test_one_nullable_float_column_per_quality_metric():
    assert tuple(f.name for f in dataclasses.fields(QualityMetrics)) == QUALITY_METRIC_COLUMNS
    for name in QUALITY_METRIC_COLUMNS:
        field = IMAGE_INDEX_SCHEMA.field(name)
        assert field.type == pa.float64() and field.nullable


def test_colour_signature_is_a_nullable_fixed_size_binary():
    """v2: the dedup colour signature, as many bytes as hashing makes; null = colour unknown."""
    field = IMAGE_INDEX_SCHEMA.field("color_signature")
    assert field.type == COLOR_SIGNATURE_TYPE == pa.binary(COLOR_SIGNATURE_BYTES) and field.nullable
    signature = bytes(range(COLOR_SIGNATURE_BYTES))
    table = pa.table({"color_signature": pa.array([signature, None], COLOR_SIGNATURE_TYPE)})
    assert table["color_signature"].to_pylist() == [signature, None]
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        pa.array([b"too short"], COLOR_SIGNATURE_TYPE)


def test_v3_learned_quality_and_compliance_columns_are_nullable():
    """v3: the learned score, its rank in the product and the compliance measures; a v2 record (without
    them) still converts, every new column null (not scored, compliance unknown)."""
    types = {f.name: f.type for f in IMAGE_INDEX_SCHEMA}
    assert types["quality_learned"] == pa.float64() and types["rank_in_product"] == pa.int32()
    assert types["compliant"] == pa.bool_()
    stored = {f.name for f in dataclasses.fields(Compliance)} - {
        "long_side",
        "compliant",
    }  # width/height say it
    assert set(COMPLIANCE_MEASURE_COLUMNS) == stored
    new = ("quality_learned", "rank_in_product", *COMPLIANCE_MEASURE_COLUMNS, "compliant")
    assert all(IMAGE_INDEX_SCHEMA.field(name).nullable for name in new)
    for name in COMPLIANCE_MEASURE_COLUMNS:
        assert types[name] == pa.float64()
    v2_record = {  # the required columns of a v2 row, none of the v3 ones
        "image_id": "a", "product_id": "P", "url": "http://x/a.jpg", "split": "train", "shard": "s",
        "offset": 0, "size": 1, "width": 1, "height": 1, "format": "jpeg", "phash": 0, "partition": "d",
        "row_key": "f:1", "source_format": "jpeg", "reencoded": False, "bytes_sha256": "0" * 64,
        "normalize_flags": [], "quality_flags": [], "fetched_at": NOW, "ingested_at": NOW,
    }  # fmt: skip
    (row,) = records_to_table([v2_record], IMAGE_INDEX_SCHEMA).to_pylist()
    assert all(row[name] is None for name in new)


def test_required_columns_are_enforced():
    with pytest.raises(SchemaError, match="column 'image_id' has 1 null"):
        records_to_table([{"image_id": None}], IMAGE_INDEX_SCHEMA)


@pytest.mark.parametrize("value", [0, 1, 2**63 - 1, 2**63, 2**64 - 1])
def test_phash_keeps_all_64_bits_in_int64(value):
    stored = phash_to_int64(value)
    assert -(2**63) <= stored < 2**63 and phash_from_int64(stored) == value


def test_bad_phash_and_format_are_named():
    with pytest.raises(ValueError, match="not a 64-bit"):
        phash_to_int64(2**64)
    assert member_extension("jpeg") == "jpg" and member_extension("png") == "png"
    with pytest.raises(ValueError, match="'gif' is not one of jpeg, png"):
        member_extension("gif")

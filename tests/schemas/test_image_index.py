"""Image index schema: core columns and types, quality columns, the colour signature, pHash bit patterns."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from pipeline.clean import COLOR_SIGNATURE_BYTES, QualityMetrics
from schemas.image_index import (
    COLOR_SIGNATURE_TYPE,
    CORE_COLUMNS,
    IMAGE_INDEX_SCHEMA,
    QUALITY_METRIC_COLUMNS,
    member_extension,
    phash_from_int64,
    phash_to_int64,
)
from schemas.validate import SchemaError, records_to_table, schema_name


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
    assert schema_name(IMAGE_INDEX_SCHEMA) == "image_index v2"
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

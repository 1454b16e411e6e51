from datetime import UTC, datetime

import pyarrow as pa
import pytest

from schemas.duplicates import DUPLICATE_SCHEMA
from schemas.feed import FEED_SCHEMA
from schemas.rejects import REJECT_SCHEMA
from schemas.validate import SchemaError, conform, records_to_table, schema_name, schema_version


def test_every_schema_declares_name_and_version():
    for schema in (FEED_SCHEMA, REJECT_SCHEMA, DUPLICATE_SCHEMA):
        assert schema_version(schema) >= 1
        assert "?" not in schema_name(schema)


def test_records_round_trip():
    t = records_to_table([{"row_key": "f:1", "product_id": "p", "image_url": "http://x/a.jpg"}], FEED_SCHEMA)
    assert t.schema.equals(FEED_SCHEMA) and t.to_pylist()[0]["category"] is None


def test_missing_column_named():
    t = pa.table({"row_key": ["a"], "product_id": ["p"]})
    with pytest.raises(SchemaError, match=r"catalog_feed v1: missing column\(s\) image_url"):
        conform(t, FEED_SCHEMA, allow_extra=True)


def test_unexpected_column_named():
    t = pa.table(
        {
            "row_key": ["a"],
            "product_id": ["p"],
            "image_url": ["u"],
            "category": ["c"],
            "title": ["t"],
            "extra": [None],
            "price": [1.0],
        }
    )
    with pytest.raises(SchemaError, match=r"unexpected column\(s\) price"):
        conform(t, FEED_SCHEMA)


def test_nulls_in_required_column_named():
    with pytest.raises(SchemaError, match="column 'image_url' has 1 null"):
        records_to_table([{"row_key": "a", "product_id": "p", "image_url": None}], FEED_SCHEMA)


def test_wrong_type_names_column_and_record():
    rows = [
        {
            "row_key": "a",
            "product_id": "p",
            "url": "u",
            "stage": "fetch",
            "reason": "timeout",
            "retryable": True,
            "http_status": "not-a-number",
            "partition": "d",
            "recorded_at": datetime.now(UTC),
        }
    ]
    with pytest.raises(SchemaError, match=r"column 'http_status' expects int32 \(record 0"):
        records_to_table(rows, REJECT_SCHEMA)


def test_unknown_field_in_record():
    with pytest.raises(SchemaError, match=r"record 0 has unknown field\(s\) \['colour'\]"):
        records_to_table([{"row_key": "a", "colour": "red"}], FEED_SCHEMA)

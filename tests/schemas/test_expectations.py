"""GX gates: suites built from the declared schemas catch each kind of problem, and the outcome rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.duplicates import DUPLICATE_SCHEMA
from schemas.expectations import GateError, ingest_suites, suite_from_schema, validate_or_raise
from schemas.rejects import REJECT_SCHEMA
from schemas.validate import records_to_table

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def reject(key: str, reason: str = "http_client_error", stage: str = "fetch") -> dict:
    return {
        "row_key": key,
        "stage": stage,
        "reason": reason,
        "retryable": False,
        "partition": "d",
        "recorded_at": NOW,
    }


def frames(rejects: list[dict]):
    from schemas.image_index import IMAGE_INDEX_SCHEMA

    return {
        "index": IMAGE_INDEX_SCHEMA.empty_table().to_pandas(),
        "rejects": records_to_table(rejects, REJECT_SCHEMA).to_pandas(),
        "duplicates": DUPLICATE_SCHEMA.empty_table().to_pandas(),
    }


@pytest.fixture(scope="module")
def suites():
    return ingest_suites()


def test_suites_come_from_the_schemas(suites):
    rejects = suites["rejects"]
    types = [e.expectation_type for e in rejects.expectations]
    assert types.count("expect_column_values_to_not_be_null") == sum(not f.nullable for f in REJECT_SCHEMA)
    assert "expect_table_columns_to_match_set" in types and "expect_column_values_to_be_unique" in types
    index_unique = {
        e.column
        for e in suites["index"].expectations
        if e.expectation_type == "expect_column_values_to_be_unique"
    }
    assert index_unique == {"image_id", "row_key"}
    with pytest.raises(ValueError, match="column 'nope' is not in reject_ledger v1"):
        suite_from_schema(REJECT_SCHEMA, "x", unique=("nope",))


def test_conforming_tables_pass(suites):
    counts = {"inputs": 2, "accepted": 0, "duplicates": 0, "rejected": 2}
    validate_or_raise(frames([reject("f:1"), reject("f:2", "timeout")]), suites, counts)


def test_every_failure_is_listed(suites):
    data = frames([reject("f:1", reason="made_up"), reject("f:1", stage="upload")])
    data["rejects"] = data["rejects"].assign(unexpected=1)
    counts = {"inputs": 3, "accepted": 0, "duplicates": 0, "rejected": 2}
    with pytest.raises(GateError) as failure:
        validate_or_raise(data, suites, counts)
    text = str(failure.value)
    assert "rejects: expect_table_columns_to_match_set" in text
    assert "rejects: expect_column_values_to_be_in_set(column='reason'" in text and "'made_up'" in text
    assert "rejects: expect_column_values_to_be_in_set(column='stage'" in text
    assert "rejects: expect_column_values_to_be_unique(column='row_key')" in text
    assert (
        "accounting: expect_multicolumn_sum_to_equal" in text
        and "inputs == accepted + duplicates + rejected" in text
    )
    assert "outcomes: expect_table_row_count_to_equal(value=3) failed: observed 2" in text
    assert "outcomes: expect_column_values_to_be_unique(column='row_key')" in text
    assert len(failure.value.failures) == 7


def test_missing_frame_is_a_usage_error(suites):
    with pytest.raises(ValueError, match="no DataFrame given for suite"):
        validate_or_raise({}, suites, {})

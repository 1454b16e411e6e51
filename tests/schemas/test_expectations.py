"""GX gates: suites built from the declared schemas catch each kind of problem, and the outcome rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.duplicates import DUPLICATE_SCHEMA
from schemas.expectations import GateError, ingest_suites, record_gate, suite_from_schema, validate_or_raise
from schemas.rejects import REJECT_SCHEMA
from schemas.validate import records_to_table
from schemas.validation import Validation

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


def test_conforming_tables_pass_and_the_evidence_lists_every_expectation(suites):
    counts = {"inputs": 2, "accepted": 0, "duplicates": 0, "rejected": 2}
    evidence = validate_or_raise(frames([reject("f:1"), reject("f:2", "timeout")]), suites, counts)
    assert evidence.success and evidence.failures == [] and evidence.counts == counts
    assert [(s.table, s.suite) for s in evidence.suites] == [
        ("duplicates", "duplicate_ledger"),
        ("index", "image_index"),
        ("rejects", "reject_ledger"),
        ("accounting", "accounting"),
        ("outcomes", "outcomes"),
    ]
    for suite in evidence.suites[:3]:  # one result per expectation of the suite
        types = sorted(e.expectation_type for e in suites[suite.table].expectations)
        assert sorted(e.type for e in suite.expectations) == types
        assert all(e.success for e in suite.expectations)
    assert evidence.accounting.success and evidence.accounting.tables == ["accounting", "outcomes"]
    assert "inputs == accepted + accepted_videos + duplicates + rejected" in evidence.accounting.rule
    (row_count,) = [e for _, e in evidence.expectations() if e.type == "expect_table_row_count_to_equal"]
    assert row_count.observed_value == 2 and row_count.kwargs == {"value": 2}
    import great_expectations as gx

    assert evidence.gx_version == gx.__version__ and evidence.started_at <= evidence.finished_at
    assert Validation.from_json(evidence.to_json()) == evidence  # the stored JSON reads back whole


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
        and "inputs == accepted + accepted_videos + duplicates + rejected" in text
    )
    assert "outcomes: expect_table_row_count_to_equal(value=3) failed: observed 2" in text
    assert "outcomes: expect_column_values_to_be_unique(column='row_key')" in text
    assert len(failure.value.failures) == 7
    evidence = failure.value.validation  # the same failures, as evidence
    assert not evidence.success and evidence.failures == failure.value.failures and evidence.failed == 7
    assert not evidence.accounting.success
    (stage,) = [e for _, e in evidence.expectations() if not e.success and e.column == "stage"]
    assert stage.unexpected_count == 1 and stage.partial_unexpected_list == ["upload"]
    (columns,) = [e for _, e in evidence.expectations() if e.type == "expect_table_columns_to_match_set"
                  and not e.success]  # fmt: skip
    assert "unexpected" in columns.observed_value


def test_record_gate_gives_a_gate_built_on_suite_failures_its_evidence(suites):
    from schemas.expectations import suite_failures

    table = frames([reject("f:1", reason="made_up")])["rejects"]

    def check():
        failures = suite_failures("rejects", table, suites["rejects"])
        if failures:
            raise GateError([f"pairs/x/d {f}" for f in failures])

    with pytest.raises(GateError) as failure:
        record_gate(check)
    evidence = failure.value.validation
    assert [s.table for s in evidence.suites] == ["rejects"] and evidence.accounting is None
    assert evidence.failures == failure.value.failures and evidence.failed == 1
    clean = frames([reject("f:1")])["rejects"]
    good = record_gate(lambda: suite_failures("rejects", clean, suites["rejects"]))
    assert good.success and good.failed == 0 and len(good.suites) == 1


def test_missing_frame_is_a_usage_error(suites):
    with pytest.raises(ValueError, match="no DataFrame given for suite"):
        validate_or_raise({}, suites, {})


def index_row(key: str, **v3) -> dict:
    """A conforming image index row (only the required columns set) plus the given v3 columns."""
    return {
        "image_id": f"id-{key}", "product_id": "P1", "url": f"http://x/{key}.jpg", "split": "train",
        "shard": "shards/000000.tar", "offset": 0, "size": 10, "width": 1000, "height": 1000,
        "format": "jpeg", "phash": 1, "partition": "d", "row_key": key, "source_format": "jpeg",
        "reencoded": False, "bytes_sha256": "0" * 64, "normalize_flags": [], "quality_flags": [],
        "fetched_at": NOW, "ingested_at": NOW, **v3,
    }  # fmt: skip


def test_the_v3_index_columns_are_bounded_where_present_and_may_be_null(suites):
    from schemas.expectations import suite_failures
    from schemas.image_index import IMAGE_INDEX_SCHEMA

    good = [
        index_row("f:1"),  # not scored, compliance unknown (a row kept from a v2 index)
        index_row("f:2", quality_learned=0.0, rank_in_product=1, white_border_share=1.0, product_fill=0.0),
        index_row("f:3", quality_learned=5.0, rank_in_product=2, white_border_share=0.0, product_fill=1.0,
                  compliant=True),
    ]  # fmt: skip
    frame = records_to_table(good, IMAGE_INDEX_SCHEMA).to_pandas()
    assert suite_failures("index", frame, suites["index"]) == []
    bad = index_row("f:4", quality_learned=5.5, rank_in_product=0, white_border_share=-0.1, product_fill=1.2)
    frame = records_to_table([*good, bad], IMAGE_INDEX_SCHEMA).to_pandas()
    failures = suite_failures("index", frame, suites["index"])
    failed = sorted(f.split("column='")[1].split("'")[0] for f in failures)
    assert failed == ["product_fill", "quality_learned", "rank_in_product", "white_border_share"], failures

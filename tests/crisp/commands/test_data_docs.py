"""`crisp data-docs`: the stored GX results of a committed partition and of a quarantined attempt as HTML."""

from __future__ import annotations

import html
from datetime import UTC, datetime

import pytest

from crisp.cli import main
from pipeline.commit import PartitionWriter, read_manifest, read_verified
from schemas.duplicates import DUPLICATE_SCHEMA
from schemas.expectations import GateError, ingest_suites, validate_or_raise
from schemas.image_index import IMAGE_INDEX_SCHEMA
from schemas.rejects import REJECT_SCHEMA
from schemas.validate import records_to_table
from schemas.validation import Validation

DAY = "2026-03-01"


def reject(key: str, reason: str) -> dict:
    return {
        "row_key": key,
        "stage": "fetch",
        "reason": reason,
        "retryable": False,
        "partition": DAY,
        "recorded_at": datetime(2026, 3, 1, tzinfo=UTC),
    }


def commit(storage, reasons: list[str], inputs: int):
    """An images partition of rejects only, behind the real ingest gate."""
    frames = {
        "index": IMAGE_INDEX_SCHEMA.empty_table().to_pandas(),
        "rejects": records_to_table(
            [reject(f"f:{n}", r) for n, r in enumerate(reasons)], REJECT_SCHEMA
        ).to_pandas(),
        "duplicates": DUPLICATE_SCHEMA.empty_table().to_pandas(),
    }
    counts = {"inputs": inputs, "accepted": 0, "duplicates": 0, "rejected": len(reasons)}
    writer = PartitionWriter(storage, "images", DAY)
    writer.write("rejects.parquet", repr(reasons).encode())
    return writer.commit(
        counts, {"reject_ledger": 1}, gate=lambda _m: validate_or_raise(frames, ingest_suites(), counts)
    )


def rows_of(page: str) -> list[str]:
    return [row for row in page.split("<tr")[1:] if "<th>" not in row]


def test_committed_and_quarantined_pages_name_every_expectation(local_storage, tmp_path, capsys):
    root = local_storage.root
    manifest = commit(local_storage, ["timeout", "http_client_error"], inputs=2)
    with pytest.raises(GateError):
        commit(local_storage, ["timeout", "made_up"], inputs=3)
    (blocked,) = local_storage.list_dirs(f"images/{DAY}/quarantine")

    assert main(["data-docs", "--date", DAY, "--root", root, "--out", str(tmp_path / "ok")]) == 0
    index = tmp_path / "ok" / "index.html"
    assert capsys.readouterr().out.strip() == str(index)
    page = index.read_text()
    evidence = Validation.from_json(read_verified(local_storage, manifest, "validation.json"))
    assert f"images/{DAY} attempt {manifest.attempt_id}" in page and "PASSED" in page
    assert len(rows_of(page)) == evidence.evaluated
    for suite, expectation in evidence.expectations():
        assert f"{suite.table}: suite {suite.suite}" in page and expectation.type in page
    assert "<script" not in page and "://" not in page  # self-contained: opens offline
    gx_pages = sorted((tmp_path / "ok" / "gx").glob("*.html"))
    assert len(gx_pages) == len(evidence.suites)  # GX's own renderer drew every stored suite
    drawn = (tmp_path / "ok" / "gx" / "02-rejects.html").read_text()
    assert (
        "Expectation Suite" in drawn
        and "reject_ledger" in drawn
        and "values must belong to this set" in drawn
    )

    out = tmp_path / "bad"
    args = ["data-docs", "--date", DAY, "--root", root, "--attempt", blocked, "--out", str(out)]
    assert main(args) == 0
    page = (out / "index.html").read_text()
    stored = Validation.from_json(
        local_storage.read_bytes(f"images/{DAY}/quarantine/{blocked}/validation.json")
    )
    assert "quarantined" in page and "FAILED" in page and not stored.success
    failed = [row for row in rows_of(page) if "class='failed'" in row]
    assert len(failed) == stored.failed == len(stored.failures) == 3
    assert any("expect_column_values_to_be_in_set" in row and "made_up" in row for row in failed)
    assert any("expect_table_row_count_to_equal" in row for row in failed)
    assert all(html.escape(line, quote=True) in page for line in stored.failures)
    assert "outcome accounting</dt><dd>FAILED" in page
    assert read_manifest(local_storage, "images", DAY) == manifest  # reading changed nothing


def test_default_folder_is_per_dataset_date_and_attempt(local_storage, tmp_path, monkeypatch, capsys):
    manifest = commit(local_storage, ["timeout"], inputs=1)
    monkeypatch.chdir(tmp_path)
    assert main(["data-docs", "--date", DAY, "--root", local_storage.root]) == 0
    expected = tmp_path / "data-docs" / "images" / DAY / manifest.attempt_id / "index.html"
    assert capsys.readouterr().out.strip() == str(expected.relative_to(tmp_path)) and expected.is_file()


def test_bad_arguments_exit_2_with_one_line(local_storage, capsys):
    root = local_storage.root
    cases = {
        ("--date", "2026-02-30"): "not a calendar date",
        ("--date", DAY): f"partition images/{DAY} is not committed",
        ("--date", DAY, "--attempt", "20260301T000000000000Z-nope"): "no quarantined attempt",
        ("--date", DAY, "--dataset", "../etc"): "invalid dataset name",
    }
    for args, reason in cases.items():
        assert main(["data-docs", *args, "--root", root]) == 2
        err = capsys.readouterr().err
        assert err.startswith("crisp data-docs: ") and reason in err and len(err.strip().splitlines()) == 1

    writer = PartitionWriter(local_storage, "images", DAY)  # committed before evidence was recorded
    writer.write("rejects.parquet", b"x")
    writer.commit({"rejected": 1}, {"reject_ledger": 1})
    assert main(["data-docs", "--date", DAY, "--root", root]) == 2
    err = capsys.readouterr().err
    assert "was committed without validation.json" in err and len(err.strip().splitlines()) == 1

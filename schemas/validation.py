"""Data-quality evidence: what one quality gate saw in one partition attempt, stored as `validation.json`.

In: Great Expectations' JSON of each suite it validated (`ExpectationSuiteValidationResult.to_json_dict()`)
with the table it ran on, the failure lines, the run's counts and when the gate ran. Out: a `Validation`
record (JSON via `to_json` / `from_json`) listing every suite and every expectation with its success,
observed value, unexpected counts and error, the outcome-accounting check (ingest), the GX version and
timestamps; `dataset`, `partition` and `attempt_id` are stamped by the commit that stores it.

Where it lives: a committed attempt holds it as `attempts/<id>/validation.json`, listed in the manifest
with size and sha256 like every other file but left out of the content digest (it has timestamps, so an
identical rerun must still be a no-op); a blocked attempt is moved whole to `quarantine/<id>/` with its
`validation.json` beside its files. Each suite also keeps GX's own JSON (`gx`), so GX's renderers can
draw it later without a live context (`crisp data-docs`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

VERSION = 1
VALIDATION_NAME = "validation.json"  # role name inside an attempt (and a quarantined attempt)
QUARANTINE_DIR = "quarantine"  # <dataset>/<partition>/quarantine/<attempt_id>/ holds blocked attempts


class ExpectationResult(BaseModel):
    """One expectation of one suite: its configuration and what GX observed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str  # e.g. expect_column_values_to_be_unique
    kwargs: dict[str, Any]  # its arguments (column, value_set, ...), without GX's batch_id
    rule: str | None = None  # the `meta.rule` it stands for, e.g. the outcome rule
    success: bool
    observed_value: Any = None
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    partial_unexpected_list: list[Any] = []
    exception: str | None = None  # GX could not evaluate it (the message), counted as a failure

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")


class SuiteResult(BaseModel):
    """One suite validated on one table (a DataFrame the gate built, e.g. `index` or `accounting`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    table: str
    suite: str
    success: bool
    expectations: list[ExpectationResult]
    gx: dict[str, Any] = {}  # GX's own JSON of the result, as `to_json_dict()` wrote it

    @classmethod
    def from_gx(cls, table: str, suite: str, result: Mapping[str, Any]) -> SuiteResult:
        """Parse GX's JSON of an `ExpectationSuiteValidationResult`."""
        return cls(
            table=table,
            suite=suite,
            success=bool(result.get("success")),
            expectations=[_expectation(r) for r in result.get("results", [])],
            gx=dict(result),
        )


class Accounting(BaseModel):
    """The outcome rule: every input row ends in exactly one outcome table, once."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rule: str
    tables: list[str]  # the suites' tables that check it
    success: bool


class Validation(BaseModel):
    """The evidence of one gate run over one partition attempt."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    validation_version: int = VERSION
    dataset: str = ""
    partition: str = ""
    attempt_id: str = ""
    success: bool
    gx_version: str
    started_at: datetime
    finished_at: datetime
    suites: list[SuiteResult]
    failures: list[str]  # one line per failed expectation, as `GateError` lists them
    counts: dict[str, int] = {}
    accounting: Accounting | None = None

    def expectations(self) -> Iterator[tuple[SuiteResult, ExpectationResult]]:
        for suite in self.suites:
            for expectation in suite.expectations:
                yield suite, expectation

    @property
    def evaluated(self) -> int:
        return sum(1 for _ in self.expectations())

    @property
    def failed(self) -> int:
        return sum(1 for _, e in self.expectations() if not e.success)

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=1).encode()

    @classmethod
    def of_failures(cls, failures: Sequence[str]) -> Validation:
        """The evidence of a gate that ran outside `record_gate`: its failure lines, no suites."""
        now = datetime.now(UTC)
        return cls(
            success=False, gx_version="", started_at=now, finished_at=now, suites=[], failures=list(failures)
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Validation:
        return cls.model_validate_json(data)


def accounting_of(suites: Sequence[SuiteResult], rule: str, tables: Sequence[str]) -> Accounting:
    """The outcome rule's verdict from the suites run on `tables`."""
    checked = [s for s in suites if s.table in tables]
    return Accounting(
        rule=rule, tables=list(tables), success=bool(checked) and all(s.success for s in checked)
    )


def _expectation(result: Mapping[str, Any]) -> ExpectationResult:
    config = result.get("expectation_config") or {}
    seen = result.get("result") or {}
    raised = result.get("exception_info") or {}
    return ExpectationResult(
        type=str(config.get("type", "?")),
        kwargs={k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"},
        rule=(config.get("meta") or {}).get("rule"),
        success=bool(result.get("success")),
        observed_value=seen.get("observed_value", seen.get("details")),
        element_count=seen.get("element_count"),
        unexpected_count=seen.get("unexpected_count"),
        unexpected_percent=seen.get("unexpected_percent"),
        partial_unexpected_list=list(seen.get("partial_unexpected_list") or []),
        exception=_exception(raised),
    )


def _exception(info: Mapping[str, Any]) -> str | None:
    """GX's error message: `exception_info` is one dict, or one per metric when several were computed."""
    infos = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, Mapping)]
    messages = [str(i.get("exception_message")) for i in infos if i.get("raised_exception")]
    return "; ".join(messages) or None

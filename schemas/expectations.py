"""Great Expectations gates: suites built from the declared Arrow schemas, and the check that blocks a commit.

In: declared schemas (plus which columns are unique, which take a fixed set of values, which have bounds),
pandas DataFrames by table name, and the run's counts. Out: `gx.ExpectationSuite`s (`suite_from_schema`,
`ingest_suites`), and `validate_or_raise`, which returns the evidence (`schemas.validation.Validation`:
every suite and expectation with what GX observed) or raises `GateError` listing every failed expectation
(table, expectation, column, what was seen) with the same evidence as its `validation`. `record_gate`
gives any gate built on `suite_failures` (the pairs gate) that evidence too.

Besides each table's own suite, the outcome rule is checked in GX too: every input row ends in exactly one
place, so `inputs == accepted + accepted_videos + duplicates + rejected`, each outcome table holds as many
rows as its count, and a row_key appears in only one table, once. The video index is optional: a partition
written before videos were ingested has neither the table nor its count, which then both count as 0.

Great Expectations takes seconds to import, so it is imported inside the functions; the ephemeral context
(PLATFORM-NOTES: get_context(mode="ephemeral") -> data_sources.add_pandas -> add_dataframe_asset ->
add_batch_definition_whole_dataframe -> validate with batch_parameters={"dataframe": df}) is built once per
process and reused.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from schemas.duplicates import DUPLICATE_SCHEMA
from schemas.errors import CrispError
from schemas.image_index import (
    COMPLIANCE_MEASURE_COLUMNS,
    FORMAT_VALUES,
    IMAGE_INDEX_SCHEMA,
    LEARNED_QUALITY_RANGE,
    SOURCE_FORMAT_VALUES,
    SPLIT_VALUES,
)
from schemas.reasons import Reason
from schemas.rejects import REJECT_SCHEMA
from schemas.validate import schema_name
from schemas.validation import SuiteResult, Validation, accounting_of
from schemas.video_index import CONTAINER_VALUES, VIDEO_INDEX_SCHEMA

REJECT_STAGES = ("feed", "fetch", "clean")
DUPLICATE_KINDS = ("exact", "near")
# Which count each outcome table must match; "inputs" is the sum the three must reach.
OUTCOME_COUNTS = {
    "index": "accepted",
    "videos": "accepted_videos",
    "duplicates": "duplicates",
    "rejects": "rejected",
}
OPTIONAL_OUTCOME_TABLES = frozenset({"videos"})  # absent (an older partition): no rows, count 0
OUTCOME_RULE = (
    "inputs == accepted + accepted_videos + duplicates + rejected; each outcome table holds its count; "
    "a row_key once"
)
_DATA_SOURCE = "crisp"
# the suites' results of the gate running in this context (`record_gate`), None outside one
_RECORDED: contextvars.ContextVar[list[SuiteResult] | None] = contextvars.ContextVar(
    "crisp_gate", default=None
)


class GateError(CrispError, RuntimeError):
    """A quality gate failed; the message lists each failed expectation (and, once the commit moved the
    attempt aside, where it was quarantined). `validation` is the evidence when `record_gate` ran the gate."""

    def __init__(self, failures: Sequence[str], validation: Validation | None = None):
        self.failures = list(failures)
        self.validation = validation
        self.quarantine: str | None = None
        super().__init__(
            f"quality gate failed ({len(self.failures)} expectation(s)), nothing was committed:\n  "
            + "\n  ".join(self.failures)
        )

    def quarantined(self, where: str, hint: str = "") -> None:
        """Name the quarantine folder holding the blocked attempt and its validation.json."""
        self.quarantine = where
        self.args = (f"{self.args[0]}\n  the attempt and its validation results are kept in {where}{hint}",)


def suite_from_schema(
    schema: pa.Schema,
    name: str,
    unique: Sequence[str] = (),
    value_sets: Mapping[str, Sequence[Any]] | None = None,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
):
    """A suite that checks the exact column set, non-null required columns, and the given rules."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    for column in [*unique, *(value_sets or {}), *(bounds or {})]:
        if column not in schema.names:
            raise ValueError(f"suite {name!r}: column {column!r} is not in {schema_name(schema)}")
    _context()  # GX binds suites to the active context
    suite = gx.ExpectationSuite(name=name, meta={"schema": schema_name(schema)})
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=list(schema.names), exact_match=True))
    for field in schema:
        if not field.nullable:
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=field.name))
    for column in unique:
        suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column=column))
    for column, values in (value_sets or {}).items():
        suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(values)))
    for column, (low, high) in (bounds or {}).items():
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high))
    return suite


def ingest_suites() -> dict[str, Any]:
    """The suites gating an `images/<date>` partition: index, videos, rejects and duplicates."""
    return {
        "index": suite_from_schema(
            IMAGE_INDEX_SCHEMA,
            "image_index",
            unique=("image_id", "row_key"),
            value_sets={
                "split": SPLIT_VALUES,
                "format": FORMAT_VALUES,
                "source_format": SOURCE_FORMAT_VALUES,
            },
            bounds={
                "offset": (0, None),
                "size": (1, None),
                "width": (1, None),
                "height": (1, None),
                # nullable (not scored / not measured): the bounds hold for the values present
                "quality_learned": LEARNED_QUALITY_RANGE,
                "rank_in_product": (1, None),
                **{name: (0.0, 1.0) for name in COMPLIANCE_MEASURE_COLUMNS},
            },
        ),
        "videos": suite_from_schema(
            VIDEO_INDEX_SCHEMA,
            "video_index",
            unique=("video_id", "row_key"),
            value_sets={"split": SPLIT_VALUES, "container": CONTAINER_VALUES},
            bounds={
                "offset": (0, None),
                "size": (1, None),
                "width": (1, None),
                "height": (1, None),
                "frames": (1, None),
                "fps": (0.0, None),
                "duration_s": (0.0, None),
            },
        ),
        "rejects": suite_from_schema(
            REJECT_SCHEMA,
            "reject_ledger",
            unique=("row_key",),
            value_sets={"reason": [r.value for r in Reason], "stage": REJECT_STAGES},
        ),
        "duplicates": suite_from_schema(
            DUPLICATE_SCHEMA,
            "duplicate_ledger",
            unique=("row_key",),
            value_sets={"kind": DUPLICATE_KINDS},
            bounds={"hamming_distance": (0, 64)},
        ),
    }


def validate_or_raise(
    df_by_name: Mapping[str, Any], suites: Mapping[str, Any], counts: Mapping[str, int]
) -> Validation:
    """Validate each DataFrame with its suite, then the outcome rule; returns the evidence, or raises
    `GateError` listing every failure (its `validation` the same evidence)."""
    missing = sorted(set(suites) - set(df_by_name) - OPTIONAL_OUTCOME_TABLES)
    if missing:
        raise ValueError(f"no DataFrame given for suite(s) {', '.join(missing)}")
    return record_gate(lambda: _validate(df_by_name, suites, counts), counts, ("accounting", "outcomes"))


def record_gate(
    check: Callable[[], Any], counts: Mapping[str, int] | None = None, accounting: Sequence[str] = ()
) -> Validation:
    """Run `check` (a gate calling `suite_failures`, raising `GateError`) and record every suite it
    validates: returns the evidence, or re-raises the `GateError` with the evidence as its `validation`.
    `accounting` names the tables whose suites check the outcome rule."""
    outer, recorded = _RECORDED.get(), []
    token = _RECORDED.set(recorded)
    started = datetime.now(UTC)

    def evidence(failures: Sequence[str]) -> Validation:
        import great_expectations as gx

        return Validation(
            success=not failures,
            gx_version=gx.__version__,
            started_at=started,
            finished_at=datetime.now(UTC),
            suites=recorded,
            failures=list(failures),
            counts={k: int(v) for k, v in (counts or {}).items()},
            accounting=accounting_of(recorded, OUTCOME_RULE, accounting) if accounting else None,
        )

    try:
        check()
    except GateError as exc:
        exc.validation = evidence(exc.failures)
        raise
    finally:
        _RECORDED.reset(token)
        if outer is not None:  # a gate inside a gate: the outer one sees these suites too
            outer.extend(recorded)
    return evidence(())


def _validate(df_by_name: Mapping[str, Any], suites: Mapping[str, Any], counts: Mapping[str, int]) -> None:
    import pandas as pd

    failures: list[str] = []
    for name in sorted(set(suites) & set(df_by_name)):
        failures += suite_failures(name, df_by_name[name], suites[name])
    tables, count_frame = _accounting_frames(df_by_name, counts, pd)
    failures += suite_failures("accounting", count_frame, _count_suite())
    failures += suite_failures("outcomes", tables, _outcome_suite(int(counts.get("inputs", -1))))
    if failures:
        raise GateError(failures)


def _accounting_frames(df_by_name: Mapping[str, Any], counts: Mapping[str, int], pd) -> tuple[Any, Any]:
    optional = {OUTCOME_COUNTS[t] for t in OPTIONAL_OUTCOME_TABLES}
    row = {
        key: int(counts.get(key, 0 if key in optional else -1))
        for key in ("inputs", *OUTCOME_COUNTS.values())
    }
    row["negated_inputs"] = -row["inputs"]
    keys, outcomes = [], []
    for table, count_name in OUTCOME_COUNTS.items():
        frame = df_by_name.get(table)
        absent = 0 if table in OPTIONAL_OUTCOME_TABLES else -1
        row[f"{table}_rows"] = absent if frame is None else len(frame)
        if frame is not None and "row_key" in frame.columns:
            keys += list(frame["row_key"])
            outcomes += [count_name] * len(frame)
    return pd.DataFrame({"row_key": keys, "outcome": outcomes}, dtype=object), pd.DataFrame([row])


def _count_suite():
    import great_expectations as gx
    import great_expectations.expectations as gxe

    _context()
    suite = gx.ExpectationSuite(name="accounting")
    suite.add_expectation(
        gxe.ExpectMulticolumnSumToEqual(
            column_list=[*OUTCOME_COUNTS.values(), "negated_inputs"],
            sum_total=0,
            meta={"rule": "inputs == accepted + accepted_videos + duplicates + rejected"},
        )
    )
    for table, count_name in OUTCOME_COUNTS.items():
        suite.add_expectation(
            gxe.ExpectColumnPairValuesToBeEqual(column_A=count_name, column_B=f"{table}_rows")
        )
    return suite


def _outcome_suite(inputs: int):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    _context()
    suite = gx.ExpectationSuite(name="outcomes")
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="row_key"))
    suite.add_expectation(gxe.ExpectTableRowCountToEqual(value=inputs))
    return suite


@functools.cache
def _context():
    """The process's ephemeral GX context, analytics and progress bars off."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.data_sources.add_pandas(_DATA_SOURCE)
    return context


def _batch_definition(table: str):
    source = _context().data_sources.get(_DATA_SOURCE)
    try:
        asset = source.get_asset(table)
    except LookupError:
        asset = source.add_dataframe_asset(table)
    try:
        return asset.get_batch_definition("whole")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole")


def suite_failures(table: str, frame: Any, suite: Any) -> list[str]:
    """Validate `frame` with `suite`: one line per failed expectation (recorded under `record_gate`)."""
    batch = _batch_definition(table).get_batch(batch_parameters={"dataframe": frame})
    # BASIC holds all the evidence keeps (observed value, counts, up to 20 unexpected values) at two
    # thirds of the cost of GX's default SUMMARY, whose extra unexpected-value counts nobody reads
    result = batch.validate(suite, result_format="BASIC")
    recorded = _RECORDED.get()
    if recorded is not None:
        recorded.append(SuiteResult.from_gx(table, suite.name, result.to_json_dict()))
    return [_describe(table, r) for r in result.results if not r.success]


def _describe(table: str, result: Any) -> str:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    args = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())
    seen = result.result or {}
    if result.exception_info and result.exception_info.get("raised_exception"):
        detail = f"error: {result.exception_info.get('exception_message')}"
    elif seen.get("unexpected_count"):
        detail = f"{seen['unexpected_count']} unexpected, e.g. {_short(seen.get('partial_unexpected_list'))}"
    else:
        detail = f"observed {_short(seen.get('observed_value', seen.get('details')))}"
    rule = (config.meta or {}).get("rule")
    return f"{table}: {config.type}({args}) failed: {detail}" + (f" [{rule}]" if rule else "")


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, so messages read (1, 2) rather than (np.int64(1), ...)."""
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value.item() if hasattr(value, "item") and not isinstance(value, str) else value


def _short(value: Any, limit: int = 160) -> str:
    if isinstance(value, list) and len(value) > 5:
        value = [*value[:5], "..."]
    text = repr(_plain(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."

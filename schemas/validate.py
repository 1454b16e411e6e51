"""Validate an Arrow table (or record dicts) against a declared schema.

In: a `pyarrow.Table` or list of dicts and a declared `pyarrow.Schema`. Out: the table cast to the schema,
or `SchemaError` whose message names the schema, the column and the problem (missing, unexpected, wrong
type, nulls in a required column). Stages call this before writing so bad records never reach storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from schemas.errors import InputError


class SchemaError(InputError, ValueError):
    """A table does not match its declared schema."""


def schema_name(schema: pa.Schema) -> str:
    meta = schema.metadata or {}
    name = meta.get(b"crisp.schema", b"?").decode()
    version = meta.get(b"crisp.schema_version", b"?").decode()
    return f"{name} v{version}"


def declare(name: str, version: int, fields: list[pa.Field]) -> pa.Schema:
    """A schema carrying its name and version in its metadata (written into every Parquet file)."""
    return pa.schema(fields, metadata={"crisp.schema": name, "crisp.schema_version": str(version)})


def schema_version(schema: pa.Schema) -> int:
    return int((schema.metadata or {}).get(b"crisp.schema_version", b"0"))


def conform(table: pa.Table, schema: pa.Schema, allow_extra: bool = False) -> pa.Table:
    """Return `table` with exactly `schema`'s columns, order and types, or raise SchemaError."""
    label = schema_name(schema)
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaError(f"{label}: missing column(s) {', '.join(missing)}")
    extra = [c for c in table.column_names if c not in schema.names]
    if extra and not allow_extra:
        raise SchemaError(f"{label}: unexpected column(s) {', '.join(extra)}")
    columns = []
    for field in schema:
        column = table.column(field.name)
        if not column.type.equals(field.type):
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(
                    f"{label}: column {field.name!r} has type {column.type}, expected {field.type} ({exc})"
                ) from None
        if not field.nullable and column.null_count:
            raise SchemaError(f"{label}: column {field.name!r} has {column.null_count} null value(s)")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def records_to_table(records: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Build a conforming table from dicts; a missing key is a null, an unknown key is an error."""
    rows = list(records)
    names = set(schema.names)
    for i, row in enumerate(rows):
        unknown = set(row) - names
        if unknown:
            raise SchemaError(f"{schema_name(schema)}: record {i} has unknown field(s) {sorted(unknown)}")
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            bad = next((i for i, v in enumerate(values) if not _fits(v, field.type)), None)
            where = f" (record {bad}: {values[bad]!r})" if bad is not None else ""
            raise SchemaError(
                f"{schema_name(schema)}: column {field.name!r} expects {field.type}{where}: {exc}"
            ) from None
    return conform(pa.Table.from_arrays(arrays, schema=schema), schema)


def _fits(value: Any, type_: pa.DataType) -> bool:
    try:
        pa.array([value], type=type_)
        return True
    except Exception:
        return False

"""Reading an upload's rows (CSV, JSON array, JSON Lines, Parquet) and validating them against the dataset's
schema with pydantic. Every problem is collected (up to a limit) with its row and field, so the report says
exactly what to fix; one problem rejects the whole file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from bastion.data.schema import DatasetSchema, FieldSpec, FieldType

MAX_PROBLEMS = 50
MAX_FIELD_CHARS = 1_000_000
_PY_TYPES: dict[FieldType, type] = {
    FieldType.STRING: str,
    FieldType.INTEGER: int,
    FieldType.NUMBER: float,
    FieldType.BOOLEAN: bool,
    FieldType.DATE: date,
    FieldType.DATETIME: datetime,
}


class Problems(Exception):
    """The file's rows do not fit the schema (or cannot be read): ``problems`` lists each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


def row_model(schema: DatasetSchema) -> type[BaseModel]:
    """A pydantic model of one row: each field's type and constraints; optional fields may be empty."""
    definitions: dict[str, Any] = {}
    for spec in schema.fields:
        annotation = _annotation(spec)
        definitions[spec.name] = (annotation, ...) if spec.required else (annotation | None, None)
    extra: Literal["ignore", "forbid"] = "ignore" if schema.allow_extra_fields else "forbid"
    return create_model("Row", __config__=ConfigDict(extra=extra, str_strip_whitespace=False), **definitions)


def _annotation(spec: FieldSpec) -> Any:
    if spec.allowed is not None and spec.type is FieldType.STRING:
        return Literal[tuple(spec.allowed)]
    constraints: dict[str, Any] = {}
    if spec.type is FieldType.STRING:
        constraints["max_length"] = spec.max_length or MAX_FIELD_CHARS
    if spec.type in (FieldType.INTEGER, FieldType.NUMBER):
        if spec.minimum is not None:
            constraints["ge"] = spec.minimum
        if spec.maximum is not None:
            constraints["le"] = spec.maximum
    return Annotated[_PY_TYPES[spec.type], Field(**constraints)]


def read_rows(path: Path, fmt: str, schema: DatasetSchema) -> list[dict[str, Any]]:
    """Every row, validated and typed; raises ``Problems`` listing what is wrong."""
    model = row_model(schema)
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        for number, raw in enumerate(_raw_rows(path, fmt, schema), start=1):
            try:
                rows.append(model.model_validate(raw).model_dump())
            except ValidationError as error:
                for issue in error.errors()[:5]:
                    where = ".".join(str(p) for p in issue["loc"]) or "(row)"
                    problems.append(f"row {number}, {where}: {issue['msg']}")
            if len(problems) >= MAX_PROBLEMS:
                problems.append("(stopped after 50 problems)")
                break
    except Problems as error:
        problems.extend(error.problems)
    if problems:
        raise Problems(problems)
    if not rows:
        raise Problems(["the file has no rows"])
    return rows


def _raw_rows(path: Path, fmt: str, schema: DatasetSchema) -> Iterator[dict[str, Any]]:
    if fmt == "parquet":
        yield from _parquet(path)
        return
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise Problems([f"not UTF-8 text (byte {error.start})"]) from None
    if fmt == "csv":
        yield from _csv(text, schema)
    elif fmt == "json":
        try:
            document = json.loads(text)
        except ValueError as error:
            raise Problems([f"not valid JSON: {error}"]) from None
        if not isinstance(document, list):
            raise Problems(["a JSON upload is an array of objects"])
        yield from _objects(document)
    elif fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield from _objects([json.loads(line)], number)
            except ValueError as error:
                raise Problems([f"line {number}: not valid JSON: {error}"]) from None
    else:
        raise Problems([f"unsupported format {fmt}"])


def _objects(items: list[Any], first: int = 1) -> Iterator[dict[str, Any]]:
    for number, item in enumerate(items, start=first):
        if not isinstance(item, dict):
            raise Problems([f"row {number}: not a JSON object"])
        yield item


def _csv(text: str, schema: DatasetSchema) -> Iterator[dict[str, Any]]:
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise Problems(["the CSV file is empty"]) from None
    except csv.Error as error:
        raise Problems([f"CSV header: {error}"]) from None
    names = {spec.name for spec in schema.fields}
    problems = []
    if len(set(header)) != len(header):
        problems.append("the CSV header repeats a column")
    missing = [s.name for s in schema.fields if s.required and s.name not in header]
    if missing:
        problems.append(f"the CSV header lacks required columns {missing}")
    extra = [h for h in header if h not in names]
    if extra and not schema.allow_extra_fields:
        problems.append(f"the CSV header has columns the schema does not declare: {extra[:10]}")
    if problems:
        raise Problems(problems)
    optional = {s.name for s in schema.fields if not s.required}
    try:
        for number, values in enumerate(reader, start=2):
            if len(values) != len(header):
                raise Problems([f"line {number}: {len(values)} values for {len(header)} columns"])
            yield {
                name: (None if value == "" and name in optional else value)
                for name, value in zip(header, values, strict=True)
            }
    except csv.Error as error:
        raise Problems([f"CSV: {error}"]) from None


def _parquet(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow as pa  # noqa: PLC0415 - only Parquet uploads need it
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise Problems([f"not a readable Parquet file: {error}"]) from None
    yield from table.to_pylist()

"""Field encryption for tabular data: chosen columns of pandas DataFrames and Parquet files.

Parquet files are processed one row group at a time, so memory follows the row-group size, not the file
size. Empty and missing values stay as they are (null stays null); everything else becomes a ``bf1.`` token
bound to ``table.column`` (see ``bastion.keys.fields``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bastion.keys.fields import FieldCipher


def _column(
    cipher: FieldCipher, values: Iterable[object], context: str, *, decrypt: bool, deterministic: bool
) -> list[object]:
    out: list[object] = []
    for value in values:
        if value is None or (isinstance(value, float) and value != value) or value == "":  # noqa: PLR0124 - NaN
            out.append(value)
        elif decrypt:
            out.append(cipher.decrypt(str(value), context))
        else:
            out.append(cipher.encrypt(str(value), context, deterministic=deterministic))
    return out


def encrypt_dataframe(
    cipher: FieldCipher,
    frame: pd.DataFrame,
    columns: Iterable[str],
    *,
    table: str,
    deterministic: Iterable[str] = (),
) -> pd.DataFrame:
    """A copy of ``frame`` with ``columns`` replaced by tokens (values are encrypted as their text)."""
    joinable, result = set(deterministic), frame.copy()
    for name in columns:
        result[name] = pd.Series(
            _column(
                cipher, frame[name].tolist(), f"{table}.{name}", decrypt=False, deterministic=name in joinable
            ),
            index=frame.index,
            dtype="object",
        )
    return result


def decrypt_dataframe(
    cipher: FieldCipher, frame: pd.DataFrame, columns: Iterable[str], *, table: str
) -> pd.DataFrame:
    result = frame.copy()
    for name in columns:
        result[name] = pd.Series(
            _column(cipher, frame[name].tolist(), f"{table}.{name}", decrypt=True, deterministic=False),
            index=frame.index,
            dtype="object",
        )
    return result


def _transform_parquet(
    cipher: FieldCipher,
    source: Path,
    target: Path,
    columns: Iterable[str],
    table: str,
    *,
    decrypt: bool,
    deterministic: Iterable[str] = (),
) -> None:
    chosen, joinable = list(columns), set(deterministic)
    reader = pq.ParquetFile(source)
    schema = reader.schema_arrow
    missing = [name for name in chosen if name not in schema.names]
    if missing:
        raise KeyError(f"no such columns: {', '.join(missing)}")
    for name in chosen:  # tokens (or recovered text) are strings
        schema = schema.set(schema.get_field_index(name), pa.field(name, pa.string()))
    with pq.ParquetWriter(target, schema) as writer:
        for index in range(reader.num_row_groups):
            batch = reader.read_row_group(index)
            for name in chosen:
                values = _column(
                    cipher,
                    batch.column(name).to_pylist(),
                    f"{table}.{name}",
                    decrypt=decrypt,
                    deterministic=name in joinable,
                )
                batch = batch.set_column(
                    batch.schema.get_field_index(name),
                    pa.field(name, pa.string()),
                    pa.array(values, type=pa.string()),
                )
            writer.write_table(batch.cast(schema))


def encrypt_parquet(
    cipher: FieldCipher,
    source: Path,
    target: Path,
    columns: Iterable[str],
    *,
    table: str,
    deterministic: Iterable[str] = (),
) -> None:
    _transform_parquet(cipher, source, target, columns, table, decrypt=False, deterministic=deterministic)


def decrypt_parquet(
    cipher: FieldCipher, source: Path, target: Path, columns: Iterable[str], *, table: str
) -> None:
    _transform_parquet(cipher, source, target, columns, table, decrypt=True)

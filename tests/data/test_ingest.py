"""Secure ingestion: each bad file of a small corpus is rejected with a clear reason, quarantined with its
report, audited — and leaves no dataset version and no stored bytes behind."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import pytest

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.errors import NotFound, PermissionDenied, RateLimited
from bastion.data.errors import DataRejected, DataTooLarge
from bastion.spine import Context
from tests.data.conftest import CSV, ingest


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class Row:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os  # noqa: PLC0415

        return os.system, ("id",)


BAD_FILES = {
    "png with a csv name": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "data.binary"),
    "elf executable": (b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "data.executable"),
    "shell script": (b"#!/bin/sh\nrm -rf /\n", "data.executable"),
    "binary pickle disguised as csv": (pickle.dumps([Row()], protocol=4), "data.pickle"),
    "text pickle disguised as csv": (pickle.dumps({"a": 1}, protocol=0), "data.pickle"),
    "zip bomb": (_zip({"data.csv": b"0" * (8 * 1024 * 1024)}), "data.archive_unsafe"),
    "zip traversal": (_zip({"../../etc/cron.d/x.csv": CSV.encode()}), "data.archive_unsafe"),
    "zip of two files": (_zip({"a.csv": CSV.encode(), "b.csv": CSV.encode()}), "data.archive_contents"),
    "nested zip": (_zip({"inner.zip": _zip({"data.csv": CSV.encode()})}), "data.archive_nested"),
    "wrong type": (CSV.replace(",34,", ",thirty-four,").encode(), "data.schema_violation"),
    "out of range": (CSV.replace(",34,", ",340,").encode(), "data.schema_violation"),
    "missing column": (CSV.replace(",signup\n", "\n", 1).encode(), "data.schema_violation"),
    "undeclared column": (CSV.replace("signup\n", "signup,ssn\n", 1).encode(), "data.schema_violation"),
    "ragged row": ((CSV + "4,dee@example.com\n").encode(), "data.schema_violation"),
    "json not an array of objects": (b'{"customer_id": 1}\n[1, 2]\n', "data.schema_violation"),
    "empty": (b"", "data.empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_rejected_and_leave_nothing(
    system: Bastion, people: dict[str, Context], customers: str, case: str
) -> None:
    data, reason = BAD_FILES[case]
    with pytest.raises(DataRejected) as rejected:
        ingest(system, people["eli"], customers, data, "upload.csv")
    assert rejected.value.extra["reason"] == reason, rejected.value.message
    assert system.datasets.describe(people["dana"], customers)[1] == []  # no version
    blobs = system.settings.datasets_dir / "blobs"
    assert not blobs.exists() or list(blobs.iterdir()) == []  # no stored bytes
    assert list((system.settings.datasets_dir / "tmp").iterdir()) == []
    [quarantined] = system.datasets.quarantined(people["dana"], customers)
    assert quarantined["reason"] == reason and quarantined["id"] == rejected.value.extra["quarantine"]
    refusals = system.audit.search(operator_context(), AuditFilter(action="data.ingest")).events
    assert [e.outcome for e in refusals] == ["denied"] and reason in refusals[0].reason


def test_oversize_is_refused_while_streaming(
    system: Bastion, people: dict[str, Context], customers: str
) -> None:
    system.data_ingest._max_bytes = 100
    with pytest.raises(DataTooLarge):
        ingest(system, people["eli"], customers, CSV.encode() * 10)
    assert system.datasets.describe(people["dana"], customers)[1] == []


def test_clean_csv_json_and_parquet_become_versions(
    system: Bastion, people: dict[str, Context], customers: str, tmp_path: object
) -> None:
    first = ingest(system, people["eli"], customers, CSV.encode())
    assert (first.version, first.rows, first.source_format) == (1, 3, "csv")
    stored = (system.settings.datasets_dir / "blobs" / f"{first.id}.bste").read_bytes()
    assert b"ann@example.com" not in stored and b"4111" not in stored  # encrypted at rest
    again = ingest(system, people["eli"], customers, CSV.encode(), "again.csv")
    assert again.version == 1 and again.sha256 == first.sha256  # content-addressed: no duplicate version
    rows = [
        dict(zip(CSV.splitlines()[0].split(","), line.split(","), strict=False))
        for line in CSV.splitlines()[1:3]
    ]
    for row in rows:
        row.update(customer_id=int(row["customer_id"]), age=int(row["age"]), note=row["note"] or None)
    as_json = json.dumps(rows).encode()
    assert ingest(system, people["eli"], customers, as_json, "rows.json").version == 2
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    # The same rows as Parquet (named .bin: the format comes from the bytes) are the same content: version 2.
    assert ingest(system, people["eli"], customers, sink.getvalue(), "rows.bin").version == 2
    rows[0]["age"] = 35
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    assert ingest(system, people["eli"], customers, sink.getvalue(), "rows.bin").source_format == "parquet"
    assert ingest(system, people["eli"], customers, _zip({"d.csv": CSV.encode()}), "d.zip").version == 1


def test_only_permitted_principals_ingest(
    system: Bastion, people: dict[str, Context], customers: str
) -> None:
    with pytest.raises(PermissionDenied):
        ingest(system, people["vic"], customers, CSV.encode())
    with pytest.raises(NotFound):
        ingest(system, people["eli"], "nope", CSV.encode())


def test_uploads_are_rate_limited_per_principal(
    system: Bastion, people: dict[str, Context], customers: str
) -> None:
    from bastion.core.ratelimit import TokenBuckets  # noqa: PLC0415

    system.data_ingest._limiter = TokenBuckets(2, 2, system.clock)
    ingest(system, people["eli"], customers, CSV.encode())
    ingest(system, people["eli"], customers, CSV.encode())
    with pytest.raises(RateLimited) as limited:
        ingest(system, people["eli"], customers, CSV.encode())
    assert limited.value.extra["retry_after"] >= 1
    ingest(system, people["dana"], customers, CSV.encode())  # another principal has its own bucket

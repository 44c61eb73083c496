"""Field-level encryption: randomized and deterministic tokens, context binding, rotation, CSV columns."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bastion.keys.errors import CryptoError
from bastion.keys.fields import FieldCipher, decrypt_csv, encrypt_csv
from bastion.keys.manager import KeyManager
from bastion.keys.model import KeyPurpose
from bastion.spine import Context


@pytest.fixture
def cipher(keys: KeyManager, ctx: Context) -> FieldCipher:
    keys.create(ctx, "pii", KeyPurpose.ENCRYPT)
    return FieldCipher(keys, ctx, "pii")


def test_randomized_tokens_hide_equality(cipher: FieldCipher) -> None:
    first, second = cipher.encrypt("078-05-1120", "people.ssn"), cipher.encrypt("078-05-1120", "people.ssn")
    assert first != second
    assert first.startswith("bf1.")
    assert "078" not in first
    assert cipher.decrypt(first, "people.ssn") == cipher.decrypt(second, "people.ssn") == "078-05-1120"


def test_deterministic_tokens_stay_joinable(cipher: FieldCipher) -> None:
    first = cipher.encrypt("alice@example.com", "people.email", deterministic=True)
    assert first == cipher.encrypt("alice@example.com", "people.email", deterministic=True)
    assert first != cipher.encrypt("bob@example.com", "people.email", deterministic=True)
    assert first != cipher.encrypt("alice@example.com", "orders.email", deterministic=True)  # per column
    assert cipher.decrypt(first, "people.email") == "alice@example.com"


@pytest.mark.parametrize("deterministic", [False, True])
def test_tokens_are_bound_to_their_column_and_tamper_evident(
    cipher: FieldCipher, deterministic: bool
) -> None:
    token = cipher.encrypt("4111111111111111", "cards.pan", deterministic=deterministic)
    with pytest.raises(CryptoError):
        cipher.decrypt(token, "cards.cvv")
    body = token[4:]
    for forged in (
        "bf1." + body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1],
        "bf1." + body[:10],
        "bf2." + body,
        "plain text",
        "bf1.!!!!",
    ):
        with pytest.raises(CryptoError):
            cipher.decrypt(forged, "cards.pan")


def test_rotation_needs_no_flag_day(keys: KeyManager, ctx: Context, cipher: FieldCipher) -> None:
    old = cipher.encrypt("old value", "t.c")
    keys.rotate(ctx, "pii")
    fresh = FieldCipher(keys, ctx, "pii")
    new = fresh.encrypt("new value", "t.c")
    assert fresh.decrypt(old, "t.c") == "old value"  # the version travels inside the token
    assert fresh.decrypt(new, "t.c") == "new value"
    moved = fresh.reencrypt(old, "t.c")
    assert fresh.decrypt(moved, "t.c") == "old value"
    keys.destroy(ctx, "pii", version=1)
    with pytest.raises(CryptoError):
        FieldCipher(keys, ctx, "pii").decrypt(old, "t.c")  # crypto-shredded
    assert FieldCipher(keys, ctx, "pii").decrypt(moved, "t.c") == "old value"


def test_csv_columns(cipher: FieldCipher, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("id,name,ssn,email\n1,Ada,078-05-1120,ada@example.com\n2,Bob,,bob@example.com\n")
    sealed, opened = tmp_path / "sealed.csv", tmp_path / "opened.csv"
    encrypt_csv(cipher, source, sealed, ["ssn", "email"], table="people", deterministic=["email"])
    with sealed.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["name"] == "Ada"
    assert rows[0]["ssn"].startswith("bf1.")
    assert rows[1]["ssn"] == ""  # empty stays empty
    assert "078-05-1120" not in sealed.read_text()
    decrypt_csv(cipher, sealed, opened, ["ssn", "email"], table="people")
    assert opened.read_text().replace("\r\n", "\n") == source.read_text()


def test_dataframe_columns(cipher: FieldCipher) -> None:
    import pandas as pd  # noqa: PLC0415

    from bastion.keys.tabular import decrypt_dataframe, encrypt_dataframe  # noqa: PLC0415

    frame = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "ssn": ["078-05-1120", None, "219-09-9999"],
            "email": ["a@x.org", "b@x.org", "a@x.org"],
        }
    )
    sealed = encrypt_dataframe(cipher, frame, ["ssn", "email"], table="people", deterministic=["email"])
    assert sealed["id"].tolist() == [1, 2, 3]
    assert pd.isna(sealed["ssn"][1])  # missing stays missing
    assert sealed["email"][0] == sealed["email"][2] != sealed["email"][1]  # joinable
    assert "078-05-1120" not in sealed.to_csv()
    opened = decrypt_dataframe(cipher, sealed, ["ssn", "email"], table="people")
    assert opened["ssn"].fillna("-").tolist() == frame["ssn"].fillna("-").tolist()
    assert opened["email"].tolist() == frame["email"].tolist()


def test_parquet_columns_row_group_by_row_group(cipher: FieldCipher, tmp_path: Path) -> None:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    from bastion.keys.tabular import decrypt_parquet, encrypt_parquet  # noqa: PLC0415

    table = pa.table(
        {
            "id": list(range(250)),
            "ssn": [f"123-45-{i:04d}" for i in range(250)],
            "score": [i / 10 for i in range(250)],
        }
    )
    source, sealed, opened = tmp_path / "p.parquet", tmp_path / "s.parquet", tmp_path / "o.parquet"
    pq.write_table(table, source, row_group_size=100)  # three row groups
    encrypt_parquet(cipher, source, sealed, ["ssn", "score"], table="patients")
    stored = pq.read_table(sealed)
    assert stored.column("id").to_pylist() == list(range(250))
    assert all(value.startswith("bf1.") for value in stored.column("ssn").to_pylist())
    assert pq.ParquetFile(sealed).num_row_groups == 3
    decrypt_parquet(cipher, sealed, opened, ["ssn", "score"], table="patients")
    result = pq.read_table(opened)
    assert result.column("ssn").to_pylist() == table.column("ssn").to_pylist()
    assert result.column("score").to_pylist() == [str(v) for v in table.column("score").to_pylist()]
    with pytest.raises(KeyError, match="nope"):
        encrypt_parquet(cipher, source, tmp_path / "x.parquet", ["nope"], table="patients")

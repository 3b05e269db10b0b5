"""Access requests and erasure with proof, on DuckDB and PostgreSQL.

The oracles here do not use the schema declarations the code uses: they list the store's
tables and columns from information_schema and scan every one of them as text.
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import audit, auth, consent, erasure, export, ingest, merge, schema, segments
from crm_core.cli import main
from crm_core.store import Store
from tests.core.test_merge import load_rich

pytestmark = pytest.mark.both_stores

ADMIN = auth.User("admin", "Admin", "admin")
ANN = "ann@example.com"
ANN_OLD = "ann.old@example.com"
COPY_EMAIL = "ANN@example.com"
ANN_PHONE = "+44 20 7946 0000"
COMMENT = "slow delivery"


def _columns(store: Store) -> dict[str, list[str]]:
    """Every base table of the store and its columns, from information_schema (not ours)."""
    stmt = sa.text(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_name = c.table_name "
        "AND t.table_schema = c.table_schema "
        "WHERE t.table_type = 'BASE TABLE' AND c.table_schema = current_schema() "
        "ORDER BY c.table_name, c.ordinal_position"
    )
    found: dict[str, list[str]] = {}
    with store.connect() as conn:
        for table_name, column_name in conn.execute(stmt):
            found.setdefault(table_name, []).append(column_name)
    return found


def scan(store: Store, values: list[str]) -> dict[str, int]:
    """'table.column' -> rows whose text contains any of `values` (any case), non-zero only."""
    hits: dict[str, int] = {}
    with store.connect() as conn:
        for table_name, names in _columns(store).items():
            for name in names:
                text = f'lower(CAST("{name}" AS VARCHAR))'
                where = " OR ".join(f"{text} LIKE :v{i}" for i in range(len(values)))
                params = {f"v{i}": f"%{v.lower()}%" for i, v in enumerate(values)}
                count = conn.execute(
                    sa.text(f'SELECT count(*) FROM "{table_name}" WHERE {where}'),  # noqa: S608
                    params,
                ).scalar()
                if count:
                    hits[f"{table_name}.{name}"] = int(count)
    return hits


@pytest.fixture
def person(store: Store, tmp_path: Path) -> Store:
    """Customer 1 (Ann) with a merged copy (5), an old e-mail replaced by an upsert import, a
    survey comment, an external id, a phone, and one export that held her."""
    load_rich(store)
    with store.begin() as conn:
        conn.execute(
            schema.customers.update()
            .where(schema.customers.c.customer_id == 1)
            .values(email=ANN_OLD, first_name="Annabel", last_name="Quimby", phone=ANN_PHONE)
        )
    upsert = tmp_path / "customers.csv"
    upsert.write_text(
        f"customer_id,email,signup_at,consent_email\n1,{ANN},2023-11-01,yes\n", encoding="utf-8"
    )
    ingest.import_file(store, "customers", upsert, mode="upsert")
    segments.save_segment(
        store, "ann", {"rules": [{"field": "customer_id", "op": "in", "value": [1]}]}, owner="admin"
    )
    segments.save_segment(
        store, "bob", {"rules": [{"field": "customer_id", "op": "in", "value": [2]}]}, owner="admin"
    )
    with store.begin() as conn:
        conn.execute(schema.suppressions.delete())
    export.export_segment(store, "ann", user=ADMIN, channel="none", out=tmp_path / "ann.csv")
    export.export_segment(store, "bob", user=ADMIN, channel="none", out=tmp_path / "bob.csv")
    merge.merge_customers(store, 1, [5], by="admin", reason="same person")
    return store


def direct_counts(store: Store) -> dict[str, int]:
    """Rows about customers 1 and 5 per table: every table with a column whose name says it
    holds a customer id, queried directly."""
    counts = {}
    with store.connect() as conn:
        for table_name, columns in _columns(store).items():
            keys = [c for c in columns if c in ("customer_id", "customer_id_l", "customer_id_r")]
            keys += ["kept_id"] if table_name == "merges" else []
            if table_name == "external_ids":
                where = "entity = 'customers' AND internal_id IN (1, 5)"
            elif table_name == "order_items":  # the lines of their orders
                where = "order_id IN (SELECT order_id FROM orders WHERE customer_id IN (1, 5))"
            elif table_name == "merge_rows":  # the before-images of their merges
                where = "merge_id IN (SELECT merge_id FROM merges WHERE kept_id IN (1, 5))"
            elif keys:
                where = " OR ".join(f'"{k}" IN (1, 5)' for k in keys)
            else:
                continue
            counts[table_name] = conn.execute(
                sa.text(f'SELECT count(*) FROM "{table_name}" WHERE {where}')  # noqa: S608
            ).scalar()
    return counts


def test_access_archive_holds_every_row_a_direct_query_finds(person: Store, tmp_path: Path):
    direct = direct_counts(person)  # before the request adds its own row
    result = erasure.access_archive(person, 1, tmp_path / "ann.zip", by="admin")
    with zipfile.ZipFile(result.path) as archive:
        names = set(archive.namelist())
        readme = archive.read("README.txt").decode()
        held = {
            n[: -len(".json")]: json.loads(archive.read(n)) for n in names if n.endswith(".json")
        }
    assert "Rows per table" in readme and "1, 5" in readme  # the merged record is named
    for table_name, count in direct.items():
        assert len(held.get(table_name, [])) == count, table_name
    assert direct["orders"] == 5 and direct["merges"] == 1  # 3 of 1 and 2 of its copy 5
    assert direct["merge_rows"] > 0
    assert held["customers"][0]["email"] == ANN
    assert COMMENT in [r["comment"] for r in held["survey_responses"]]
    assert all(f"{name}.csv" in names for name in held)
    requests = erasure.requests(person)
    assert requests.iloc[0]["kind"] == "access" and result.request_id == 1
    assert audit.entries(person, actions=["access_request"]).iloc[0]["target"] == "customer 1"


def test_erasure_leaves_no_former_value_anywhere_and_proves_it(person: Store, tmp_path: Path):
    former = [ANN, ANN_OLD, COPY_EMAIL, ANN_PHONE, "Annabel", "Quimby", COMMENT]
    before = scan(person, former)
    assert {"customers.email", "import_replaced_customers.email", "merge_rows.row_data"} <= set(
        before
    ), before
    orders_before = person.read_df("SELECT order_id, amount FROM orders ORDER BY 1")
    result = erasure.erase(person, 1, by="admin")
    assert scan(person, former) == {}
    assert result.found == 0 and len(result.proof) > 50
    assert {row["table"] for row in result.proof} >= {"customers", "merge_rows", "audit_log"}
    assert result.person_ids == [1, 5]
    # analytics keep the anonymous rows
    pd.testing.assert_frame_equal(
        orders_before, person.read_df("SELECT order_id, amount FROM orders ORDER BY 1")
    )
    row = person.read_df("SELECT * FROM customers WHERE customer_id = 1").iloc[0]
    assert pd.notna(row["erased_at"]) and pd.isna(row["email"]) and pd.isna(row["city"])
    assert not row["consent_email"]
    assert person.scalar("SELECT count(*) FROM survey_responses WHERE comment IS NOT NULL") == 0
    # consent history and the audit log say what happened, without the values
    history = consent.history(person, 1)
    assert "erasure" in history["source"].tolist()
    logged = audit.entries(person, actions=["erasure"]).iloc[0]
    assert logged["target"] == "customer 1" and ANN not in str(logged["details"])
    assert audit.verify(person).ok
    # the stored proof reads back
    proof, exports, looked_for = erasure.request_proof(person, result.request_id)
    assert int(proof["found"].sum()) == 0 and looked_for["e-mail(s)"] == 3


def test_earlier_exports_that_held_the_person_are_listed(person: Store, tmp_path: Path):
    archive = tmp_path / "privacy" / "customer-1-personal-data.zip"
    erasure.access_archive(person, 1, archive, by="admin")
    result = erasure.erase(person, 1, by="admin")
    assert [e["file_name"] for e in result.exports] == ["ann.csv"]  # not bob.csv
    assert result.exports[0]["exported_by"] == "admin"
    assert any("ann.csv" in line for line in result.summary())
    # the copies this server kept (inside its data folder) are deleted; others stay
    assert sorted(result.files_removed) == [
        "ann.csv",
        "ann.csv.manifest.json",
        "customer-1-personal-data.zip",
    ]
    assert not (tmp_path / "ann.csv").exists() and not archive.exists()
    assert (tmp_path / "bob.csv").exists()


def test_a_second_erasure_is_refused_pointing_to_the_first(person: Store):
    erasure.erase(person, 1, by="admin")
    with pytest.raises(erasure.PrivacyError, match="already erased on"):
        erasure.erase(person, 1, by="admin")
    assert erasure.requests(person)["kind"].tolist() == ["erasure"]


def test_compact_wipes_erased_values_from_the_file(person: Store, backend: str):
    erasure.erase(person, 1, by="admin")
    customers = person.scalar("SELECT count(*) FROM customers")
    words = erasure.compact(person, by="admin")
    assert person.scalar("SELECT count(*) FROM customers") == customers
    assert audit.entries(person, actions=["store_compacted"]).iloc[0]["actor"] == "admin"
    assert audit.verify(person).ok
    if backend == "duckdb":
        assert "MiB" in words
        person.dispose()
        raw = Path(person.engine.url.database).read_bytes().lower()
        for value in (ANN, ANN_OLD, "annabel", "quimby", COMMENT):
            assert value.lower().encode() not in raw, value


def test_reimporting_the_address_leaves_the_person_suppressed(person: Store, tmp_path: Path):
    erasure.erase(person, 1, by="admin")
    again = tmp_path / "again.csv"
    again.write_text(
        "customer_id,email,phone,country,signup_at,consent_email,consent_sms\n"
        f"900,Ann@Example.com,{ANN_PHONE},GB,2024-05-01,yes,yes\n",
        encoding="utf-8",
    )
    report = ingest.load(
        person, again.name, lambda conn: ingest.file_chunks(again, "customers", again.name)
    )
    erased_warnings = [w for w in report.warnings if "was erased" in w]
    assert len(erased_warnings) == 2 and "row 2" in erased_warnings[0], report.warnings
    assert ANN.lower() not in " ".join(report.warnings).lower()
    segments.save_segment(
        person,
        "back",
        {"rules": [{"field": "customer_id", "op": "in", "value": [900, 2]}]},
        owner="a",
    )
    with person.begin() as conn:  # Bob can be reached on both channels: one row each
        conn.execute(
            schema.customers.update()
            .where(schema.customers.c.customer_id == 2)
            .values(phone="+1 212 555 0147", consent_sms=True, consent_email=True)
        )
    for channel in ("email", "sms"):
        done = export.export_segment(
            person, "back", user=ADMIN, channel=channel, out=tmp_path / f"{channel}.csv"
        )
        with (tmp_path / f"{channel}.csv").open(encoding="utf-8") as handle:
            ids = [row["customer_id"] for row in csv.DictReader(handle)]
        assert ids == ["2"] and done.rows == 1, (channel, ids)
        assert done.excluded.get("suppressed") == 1, done.excluded


def test_refusals_name_the_person_to_use(person: Store, tmp_path: Path):
    with pytest.raises(erasure.PrivacyError, match="merged into customer 1"):
        erasure.erase(person, 5, by="admin")
    with pytest.raises(erasure.PrivacyError, match="No customer 999"):
        erasure.access_archive(person, 999, tmp_path / "x.zip", by="admin")
    with pytest.raises(erasure.PrivacyError, match=".zip"):
        erasure.access_archive(person, 1, tmp_path / "x.txt", by="admin")


def test_cli_export_and_erase(person: Store, tmp_path: Path, capsys):
    out = tmp_path / "ann.zip"
    assert main(["privacy", "export", "1", "--out", str(out), "--user", "admin"]) == 0
    assert out.exists() and "Access request" in capsys.readouterr().out
    assert main(["privacy", "erase", "1"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["privacy", "erase", "1", "--yes", "--user", "admin"]) == 0
    printed = capsys.readouterr().out
    assert "0 found" in printed and "ann.csv" in printed
    assert main(["privacy", "requests", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in listed] == ["erasure", "access"]


def test_an_import_cannot_bring_an_erased_customer_back(person: Store, tmp_path: Path):
    erasure.erase(person, 1, by="admin")
    again = tmp_path / "upsert.csv"
    again.write_text(
        f"customer_id,email,first_name,signup_at\n1,{ANN},Annabel,2023-11-01\n"
        "2,bob@example.com,Bob,2023-11-02\n",
        encoding="utf-8",
    )
    report = ingest.load(
        person,
        again.name,
        lambda conn: ingest.file_chunks(again, "customers", again.name),
        mode="upsert",
    )
    assert report.rows == {"customers": 1}
    assert any("the customer was erased" in note for note in report.notes)
    assert scan(person, [ANN, "Annabel"]) == {}

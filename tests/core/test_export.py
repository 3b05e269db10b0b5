"""Exports: consent/suppression/erasure exclusions, formula-safe CSV and XLSX with contact
data as stored, numbers at their declared scale, manifest, audit, history and re-download."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import auth, export, features, segments
from crm_core.cli import main
from crm_core.errors import CRMError, NotAllowedError
from crm_core.schema import campaign_contacts, customer_scores, customers, orders, suppressions
from tests.core import tiny

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL

EVERYONE = {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 1}]}
MIA = auth.User("mia", "Mia", "marketer")
ANA = auth.User("ana", "Ana", "analyst")
ADA = auth.User("ada", "Ada", "admin")
MAX = auth.User("max", "Max", "marketer")
HOSTILE = {
    "first_name": '=HYPERLINK("http://x")',
    "last_name": "+cmd|' /C calc'!A0",
    "city": "@SUM(1+1)",
}


@pytest.fixture
def shop(store):
    """Tiny store; customer 1 has formula-like free text, a phone starting with + and
    scores with many decimals, 2 is erased, 3 has no e-mail consent, 4's e-mail is
    suppressed."""
    tiny.load(store)
    with store.begin() as conn:
        conn.execute(
            customers.update()
            .where(customers.c.customer_id == 1)
            .values(email="ann+crm@example.com", phone="+15551234567", **HOSTILE)
        )
        conn.execute(
            customers.update()
            .where(customers.c.customer_id == 3)
            .values(phone="+44 20 7946 0958", first_name="Cy", city="-")
        )
        conn.execute(orders.update().where(orders.c.order_id == 2).values(amount=49.99))
        conn.execute(
            customer_scores.insert().values(
                customer_id=1,
                clv=1337.68994140625,
                p_alive=0.98765432,
                churn_risk=0.123456,
                churn_band="low",
                scored_at=datetime(2024, 3, 1),
            )
        )
        conn.execute(
            customers.update()
            .where(customers.c.customer_id == 2)
            .values(erased_at=datetime(2024, 3, 1))
        )
        conn.execute(
            suppressions.insert().values(
                value="DI@example.com ",
                kind="email",
                reason="bounce",
                added_at=datetime(2024, 1, 1),
            )
        )
    features.refresh(store)
    segments.save_segment(store, "Everyone", EVERYONE, owner="mia")
    return store


def test_email_export_excludes_erased_unconsented_and_suppressed(shop, tmp_path):
    result = export.export_segment(shop, "Everyone", user=MIA, channel="email", out=tmp_path)
    assert result.selected == 4 and result.rows == 1
    assert result.excluded == {
        "erased": 1,
        "no_consent": 1,
        "no_address": 0,
        "suppressed": 1,
        "opted_out_elsewhere": 0,
        "duplicate_address": 0,
    }
    frame = pd.read_csv(result.path)
    assert frame["customer_id"].tolist() == [1]


def test_csv_and_xlsx_neutralise_formulas_and_keep_numbers(shop, tmp_path):
    cols = ["first_name", "last_name", "phone", "monetary"]
    done = export.export_segment(
        shop, "Everyone", user=MIA, channel="email", columns=cols, out=tmp_path / "list.csv"
    )
    row = pd.read_csv(done.path, dtype={"first_name": str, "last_name": str, "phone": str}).iloc[0]
    assert row["first_name"] == '\'=HYPERLINK("http://x")'
    assert row["last_name"] == "'+cmd|' /C calc'!A0" and row["phone"] == "+15551234567"
    assert row["monetary"] == pytest.approx(179.99)
    assert done.neutralised == {"first_name": 1, "last_name": 1}
    xlsx = export.export_segment(
        shop,
        "Everyone",
        user=MIA,
        channel="email",
        columns=cols,
        fmt="xlsx",
        out=tmp_path / "list.xlsx",
    )
    sheet = openpyxl.load_workbook(xlsx.path).active
    values = [c.value for c in sheet[2]]
    assert values[1] == '\'=HYPERLINK("http://x")' and sheet.cell(2, 2).data_type == "s"
    assert values[0] == 1 and values[4] == pytest.approx(179.99)  # numbers stay numbers
    parquet = export.export_segment(
        shop,
        "Everyone",
        user=MIA,
        channel="email",
        columns=cols,
        fmt="parquet",
        out=tmp_path / "list.parquet",
    )
    assert pd.read_parquet(parquet.path).loc[0, "first_name"].startswith("=")  # not a spreadsheet


def test_manifest_and_export_log_carry_the_file_sha256(shop, tmp_path):
    result = export.export_segment(shop, "Everyone", user=MIA, channel="none", out=tmp_path)
    digest = hashlib.sha256(result.path.read_bytes()).hexdigest()
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["sha256"] == digest == result.sha256
    assert manifest["segment_version"] == 1 and manifest["exported_by"] == "mia"
    assert manifest["excluded"]["erased"] == 1 and manifest["excluded"]["suppressed"] == 1
    log = export.read_export_log(shop)
    assert log.loc[
        0,
        [
            "exported_by",
            "segment_name",
            "segment_version",
            "channel",
            "rows",
            "format",
            "file_sha256",
        ],
    ].tolist() == ["mia", "Everyone", 1, "none", 2, "csv", digest]


def test_control_group_is_held_out_and_recorded(shop, tmp_path):
    result = export.export_segment(
        shop, "Everyone", user=MIA, channel="none", out=tmp_path, control_share=0.5, seed=3
    )
    assert (result.rows, result.control) == (1, 1) and result.campaign_id is not None
    contacts = shop.read_df(
        sa.select(campaign_contacts).where(campaign_contacts.c.campaign_id == result.campaign_id)
    )
    assert sorted(contacts["test_group"]) == ["control", "treatment"]
    exported = pd.read_csv(result.path)["customer_id"].tolist()
    treated = contacts.loc[contacts.test_group == "treatment", "customer_id"].tolist()
    assert exported == treated


def test_pii_columns_are_refused_for_an_analyst(shop, tmp_path):
    with pytest.raises(NotAllowedError, match="personal columns \\(email\\)"):
        export.export_segment(
            shop, "Everyone", user=ANA, channel="email", columns=["email"], out=tmp_path
        )
    result = export.export_segment(shop, "Everyone", user=ANA, channel="email", out=tmp_path)
    assert not set(pd.read_csv(result.path).columns) & export.PII_COLUMNS
    with pytest.raises(NotAllowedError):
        export.export_segment(
            shop, "Everyone", user=auth.User("m", "M", "manager"), channel="email", out=tmp_path
        )


def test_a_deactivated_user_may_not_export(shop, tmp_path, capsys):
    auth.add_user(shop, "ana", "analyst", "analyst-password-1")
    auth.deactivate_user(shop, "ana")
    with pytest.raises(NotAllowedError, match="'ana' is deactivated"):
        export.export_segment(
            shop, "Everyone", user=auth.get_user(shop, "ana"), channel="none", out=tmp_path
        )
    code = main(["export", "Everyone", "--channel", "none", "--user", "ana"])
    assert code == 2 and "deactivated" in capsys.readouterr().err
    assert export.read_export_log(shop).empty


def test_nothing_left_is_a_clear_error_and_logs_nothing(shop, tmp_path):
    segments.save_segment(
        shop, "GB", {"rules": [{"field": "country", "op": "eq", "value": "GB"}]}, owner="mia"
    )
    with pytest.raises(CRMError, match="All 2 customers of 'GB' were excluded"):
        export.export_segment(shop, "GB", user=MIA, channel="email", out=tmp_path)
    segments.save_segment(
        shop, "Nobody", {"rules": [{"field": "country", "op": "eq", "value": "FR"}]}, owner="mia"
    )
    with pytest.raises(CRMError, match="selects no customers"):
        export.export_segment(shop, "Nobody", user=MIA, channel="email", out=tmp_path)
    assert export.read_export_log(shop).empty and not list(tmp_path.glob("*.csv"))


def test_cli_export_uses_the_users_role(shop, tmp_path, capsys):
    auth.add_user(shop, "ana", "analyst", "analyst-password-1")
    out = tmp_path / "ana.csv"
    code = main(
        [
            "export",
            "Everyone",
            "--channel",
            "email",
            "--format",
            "csv",
            "--out",
            str(out),
            "--user",
            "ana",
        ]
    )
    assert code == 0 and "Exported 1 of 4" in capsys.readouterr().out
    assert "email" not in pd.read_csv(out).columns
    code = main(
        [
            "export",
            "Everyone",
            "--channel",
            "sms",
            "--out",
            str(out),
            "--user",
            "ana",
            "--columns",
            "phone",
        ]
    )
    assert code == 2 and "may not export personal columns" in capsys.readouterr().err


def _store_contacts(store, ids):
    """{customer_id: (email, phone)} exactly as the store holds them."""
    stmt = sa.select(customers.c.customer_id, customers.c.email, customers.c.phone).where(
        customers.c.customer_id.in_([int(i) for i in ids])
    )
    frame = store.read_df(stmt)
    return {int(r.customer_id): (r.email, r.phone) for r in frame.itertuples()}


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _xlsx_rows(path: Path) -> tuple[list[str], list[list[openpyxl.cell.Cell]]]:
    sheet = openpyxl.load_workbook(path).active
    rows = list(sheet.iter_rows())
    return [c.value for c in rows[0]], rows[1:]


CONTACT_COLS = ["email", "phone", *HOSTILE, "monetary", "frequency", "clv", "churn_risk"]


def test_phones_and_emails_are_written_exactly_as_stored(shop, tmp_path):
    files = {
        fmt: export.export_segment(
            shop, "Everyone", user=MIA, channel="none", fmt=fmt, columns=CONTACT_COLS, out=tmp_path
        )
        for fmt in export.FORMATS
    }
    stored = _store_contacts(shop, [1, 3])
    assert stored[1] == ("ann+crm@example.com", "+15551234567")
    assert stored[3][1] == "+44 20 7946 0958"
    csv_rows = _csv_rows(files["csv"].path)
    assert {int(r["customer_id"]): (r["email"], r["phone"]) for r in csv_rows} == stored
    header, rows = _xlsx_rows(files["xlsx"].path)
    e, p = header.index("email"), header.index("phone")
    assert {r[0].value: (r[e].value, r[p].value) for r in rows} == stored
    assert all(r[p].data_type == "s" for r in rows)  # a phone stays text, not a number
    frame = pd.read_parquet(files["parquet"].path)
    assert {r.customer_id: (r.email, r.phone) for r in frame.itertuples()} == stored
    manifest = json.loads(files["csv"].manifest_path.read_text())
    assert manifest["contact_columns_as_stored"] == ["email", "phone"]


def test_hostile_free_text_is_neutralised_in_csv_and_xlsx(shop, tmp_path):
    with shop.begin() as conn:  # a phone that is not a phone is free text like any other
        conn.execute(customers.update().where(customers.c.customer_id == 3).values(phone="=1+2"))
    files = {
        fmt: export.export_segment(
            shop, "Everyone", user=MIA, channel="none", fmt=fmt, columns=CONTACT_COLS, out=tmp_path
        )
        for fmt in ("csv", "xlsx")
    }
    expected = {name: "'" + value for name, value in HOSTILE.items()}
    by_id = {int(r["customer_id"]): r for r in _csv_rows(files["csv"].path)}
    assert {k: by_id[1][k] for k in HOSTILE} == expected
    assert by_id[3]["city"] == "'-" and by_id[3]["phone"] == "'=1+2"
    assert by_id[1]["phone"] == "+15551234567" and by_id[3]["first_name"] == "Cy"
    header, rows = _xlsx_rows(files["xlsx"].path)
    first = {header[i]: cell for i, cell in enumerate(rows[0])}
    assert {k: first[k].value for k in HOSTILE} == expected
    assert all(first[k].data_type == "s" for k in HOSTILE)  # text, never a formula
    assert files["csv"].neutralised == {"phone": 1, **dict.fromkeys(HOSTILE, 1), "city": 2}


def test_numbers_leave_at_their_declared_scale(shop, tmp_path):
    done = export.export_segment(
        shop, "Everyone", user=MIA, channel="none", columns=CONTACT_COLS, out=tmp_path
    )
    row = next(r for r in _csv_rows(done.path) if r["customer_id"] == "1")
    assert row["monetary"] == "179.99" and row["clv"] == "1337.69"  # money: two decimals
    assert row["churn_risk"] == "0.1235" and row["frequency"] == "3"  # share: 4; count: int
    other = next(r for r in _csv_rows(done.path) if r["customer_id"] == "3")
    assert other["monetary"] == "1079.00" and other["clv"] == ""  # not scored: empty
    xlsx = export.export_segment(
        shop, "Everyone", user=MIA, channel="none", fmt="xlsx", columns=CONTACT_COLS, out=tmp_path
    )
    header, rows = _xlsx_rows(xlsx.path)
    first = {header[i]: cell for i, cell in enumerate(rows[0])}
    assert first["clv"].value == pytest.approx(1337.69, abs=1e-9)
    assert first["clv"].number_format == "0.00" and first["clv"].data_type == "n"
    assert first["monetary"].value == pytest.approx(179.99, abs=1e-9)
    assert first["monetary"].number_format == "0.00"
    assert first["churn_risk"].value == pytest.approx(0.1235, abs=1e-12)
    assert first["churn_risk"].number_format == "0.0000"
    assert first["frequency"].value == 3 and isinstance(first["frequency"].value, int)
    parquet = export.export_segment(
        shop,
        "Everyone",
        user=MIA,
        channel="none",
        fmt="parquet",
        columns=CONTACT_COLS,
        out=tmp_path,
    )
    frame = pd.read_parquet(parquet.path).set_index("customer_id")
    assert float(frame.loc[1, "clv"]) == 1337.69 and float(frame.loc[1, "churn_risk"]) == 0.1235
    manifest = json.loads(done.manifest_path.read_text())
    assert manifest["number_scales"] == {
        "customer_id": 0,
        "monetary": 2,
        "frequency": 0,
        "clv": 2,
        "churn_risk": 4,
    }


def test_history_lists_own_exports_for_a_marketer_and_all_for_an_admin(shop, tmp_path):
    mine = export.export_segment(shop, "Everyone", user=MIA, channel="none", out=tmp_path)
    theirs = export.export_segment(shop, "Everyone", user=ANA, channel="none", out=tmp_path)
    newest = export.export_segment(shop, "Everyone", user=MIA, channel="email", out=tmp_path)
    history = export.export_history(shop, MIA)
    assert history["export_id"].tolist() == [newest.export_id, mine.export_id]  # newest first
    assert history["file"].tolist() == [newest.path.name, mine.path.name]  # names, no paths
    assert not any(str(tmp_path) in str(v) for v in history.to_numpy().ravel())
    assert history["available"].tolist() == [True, True]
    everyone = export.export_history(shop, ADA)
    assert everyone["export_id"].tolist() == [newest.export_id, theirs.export_id, mine.export_id]
    assert export.export_history(shop, ADA, own_only=True).empty
    assert export.export_history(shop, ANA)["exported_by"].tolist() == ["ana"]
    mine.path.unlink()
    assert export.export_history(shop, MIA)["available"].tolist() == [True, False]


def test_only_the_owner_or_an_admin_opens_a_past_export(shop, tmp_path):
    done = export.export_segment(shop, "Everyone", user=MIA, channel="none", out=tmp_path)
    opened = export.open_export(shop, done.export_id, MIA)
    assert opened.name == done.path.name and opened.read() == done.path.read_bytes()
    assert json.loads(opened.read_manifest())["sha256"] == done.sha256
    assert opened.manifest_name == done.manifest_path.name and opened.mime == "text/csv"
    assert export.open_export(shop, done.export_id, ADA).read() == done.path.read_bytes()
    for stranger in (MAX, ANA):
        with pytest.raises(NotAllowedError, match="made by another user"):
            export.open_export(shop, done.export_id, stranger)
    own = export.export_segment(shop, "Everyone", user=ANA, channel="none", out=tmp_path)
    assert export.open_export(shop, own.export_id, ANA).read() == own.path.read_bytes()
    with pytest.raises(CRMError, match="does not exist"):
        export.open_export(shop, 999, ADA)
    done.path.write_bytes(b"customer_id\n666\n")
    with pytest.raises(CRMError, match="changed since it was exported"):
        opened.read()
    done.path.unlink()
    with pytest.raises(CRMError, match="no longer on the server") as gone:
        export.open_export(shop, done.export_id, MIA)
    assert str(tmp_path) not in str(gone.value)  # no server path in a message

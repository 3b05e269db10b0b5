"""Exports: consent/suppression/erasure exclusions, formula-safe CSV and XLSX, manifest, audit."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import auth, export, features, segments
from crm_core.cli import main
from crm_core.errors import CRMError, NotAllowedError
from crm_core.schema import campaign_contacts, customers, suppressions
from tests.core import tiny

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL

EVERYONE = {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 1}]}
MIA = auth.User("mia", "Mia", "marketer")
ANA = auth.User("ana", "Ana", "analyst")


@pytest.fixture
def shop(store):
    """Tiny store; customer 1 has formula-like names, 2 is erased, 3 has no e-mail consent,
    4's e-mail is suppressed."""
    tiny.load(store)
    with store.begin() as conn:
        conn.execute(
            customers.update()
            .where(customers.c.customer_id == 1)
            .values(first_name='=HYPERLINK("http://x")', last_name="-2+3", phone="+1 555 0100")
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
    assert result.excluded == {"erased": 1, "no_consent": 1, "no_address": 0, "suppressed": 1}
    frame = pd.read_csv(result.path)
    assert frame["customer_id"].tolist() == [1]


def test_csv_and_xlsx_neutralise_formulas_and_keep_numbers(shop, tmp_path):
    cols = ["first_name", "last_name", "phone", "monetary"]
    csv = export.export_segment(
        shop, "Everyone", user=MIA, channel="email", columns=cols, out=tmp_path / "list.csv"
    )
    row = pd.read_csv(csv.path, dtype={"first_name": str, "last_name": str, "phone": str}).iloc[0]
    assert row["first_name"] == '\'=HYPERLINK("http://x")'
    assert row["last_name"] == "'-2+3" and row["phone"] == "'+1 555 0100"
    assert row["monetary"] == pytest.approx(180)
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
    assert values[0] == 1 and values[4] == pytest.approx(180)  # numbers stay numbers
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

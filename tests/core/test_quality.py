"""Data quality (crm_core/quality.py): every planted problem of a tiny store is found exactly,
on DuckDB and PostgreSQL; the JSON CLI; the score trend; drilling to the offending rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from crm_core import cli, contacts, quality, schema
from crm_core.errors import CRMError
from crm_core.store import Store

pytestmark = pytest.mark.both_stores

CUSTOMERS = pd.DataFrame(
    {
        "customer_id": [1, 2, 3, 4, 5],
        "email": [
            "ann.lee@example.com",
            "ANN.LEE@Example.com",  # the same mailbox as 1, in other case
            "not-an-email",  # not well formed
            "dan@example.org",
            "eve+news@example.net",
        ],
        "first_name": ["Ann", "Ann", "Cy", "Dan", "Eve"],
        "phone": ["020 7946 0018", "030 901820", "call me", None, "+44 20 7946 0018"],
        "country": ["GB", "DE", "XX", "DE", "GB"],
        "signup_at": pd.to_datetime(
            ["2024-01-01", "2024-01-02", "2024-01-03", "2100-01-01", "2024-01-05"]
        ),
        "loyalty_points": [10, 0, 5, 1, 2],
    }
)
"""Customer 3: bad e-mail, phone and country; 4 signs up in 2100; 1 and 2 share an e-mail
(case), 1 and 5 a phone (formats)."""

ORDERS = pd.DataFrame(
    {
        "order_id": [1, 2, 3, 4, 5, 6, 7, 8],
        "customer_id": [1, 1, 2, 2, 5, 5, 2, 99],  # 99: no such customer
        "ordered_at": pd.to_datetime(["2024-02-01"] * 8),
        "amount": [10.0, 11.0, 11.0, 12.0, 12.0, 13.0, -5.0, 1000.0],
        "channel": ["web"] * 8,
        "status": ["completed"] * 8,
    }
)
"""Order 7 is negative; 8 points to no customer; -5 and 1000 are beyond the IQR fences
(Q1 10.75, Q3 12.25, IQR 1.5: fences 6.25 and 16.75)."""


@pytest.fixture
def bad_store(store: Store) -> Store:
    with store.begin() as conn:
        store.insert_df(conn, "customers", CUSTOMERS)
        store.insert_df(conn, "orders", ORDERS)
    return store


def _findings(report: quality.QualityReport) -> dict[tuple[str, str, str], int]:
    return {(f.table, f.column, f.check): f.failing for t in report.tables for f in t.findings}


def test_every_planted_problem_is_found_exactly(bad_store):
    report = quality.assess(bad_store)
    assert _findings(report) == {
        ("customers", "email", "email_format"): 1,
        ("customers", "phone", "phone_format"): 1,
        ("customers", "country", "country_code"): 1,
        ("customers", "signup_at", "future_date"): 1,
        ("customers", "email", "duplicate_email"): 2,
        ("customers", "phone", "duplicate_phone"): 2,
        ("orders", "amount", "below_minimum"): 1,
        ("orders", "customer_id", "orphan_reference"): 1,
        ("orders", "amount", "outlier"): 2,
    }
    customers = next(t for t in report.tables if t.table == "customers")
    assert customers.rows == 5
    assert customers.completeness["phone"] == pytest.approx(0.8)
    assert customers.completeness["email"] == 1.0
    email = next(f for f in customers.findings if f.check == "email_format")
    assert (email.checked, email.share) == (5, pytest.approx(0.2))
    empty = next(t for t in report.tables if t.table == "events")
    assert (empty.rows, empty.score, empty.findings) == (0, None, [])
    assert {t.table for t in report.tables} == set(schema.DATA_TABLES)


def test_score_is_the_documented_weighting(bad_store):
    orders = quality.assess(bad_store, ["orders"]).tables[0]
    # validity: 1 failing (amount < 0) of 8 amounts + 8 items-less rows... computed from checks
    cats = orders.categories
    assert cats["integrity"] == pytest.approx(1 - 1 / 8)  # customer 99 (campaign_id all empty)
    assert cats["in_range"] == pytest.approx(1 - 2 / 8)
    assert cats["uniqueness"] is None  # orders have no e-mail or phone
    present = {c: v for c, v in cats.items() if v is not None}
    expected = 100 * sum(quality.WEIGHTS[c] * v for c, v in present.items())
    expected /= sum(quality.WEIGHTS[c] for c in present)
    assert orders.score == pytest.approx(round(expected, 1))
    assert 0 < orders.score < 100


def test_drilling_returns_the_offending_rows_masked_for_analysts(bad_store):
    cases = {
        ("customers", "email_format", "email"): [3],
        ("customers", "phone_format", "phone"): [3],
        ("customers", "country_code", "country"): [3],
        ("customers", "future_date", "signup_at"): [4],
        ("customers", "duplicate_email", "email"): [1, 2],
        ("customers", "duplicate_phone", "phone"): [1, 5],
    }
    for (table, check, column), ids in cases.items():
        rows = quality.finding_rows(bad_store, table, check, column)
        assert rows["customer_id"].tolist() == ids, check
    orders = quality.finding_rows(bad_store, "orders", "orphan_reference", "customer_id")
    assert orders["order_id"].tolist() == [8]
    outliers = quality.finding_rows(bad_store, "orders", "outlier", "amount")
    assert sorted(outliers["amount"].tolist()) == [-5.0, 1000.0]
    admin = quality.finding_rows(bad_store, "customers", "duplicate_email", "email")
    assert admin["email"].tolist() == ["ann.lee@example.com", "ANN.LEE@Example.com"]
    masked = quality.finding_rows(
        bad_store, "customers", "duplicate_email", "email", role="analyst"
    )
    assert masked["email"].tolist() == ["a***@example.com", "A***@Example.com"]
    assert masked["first_name"].tolist() == ["A***", "A***"]  # the same mask whatever the length
    years = masked["birth_date"].dropna()  # a masked date is its year as text: no "2,003"
    assert pd.api.types.is_string_dtype(masked["birth_date"])
    assert all(isinstance(y, str) and len(y) == 4 for y in years)
    with pytest.raises(CRMError, match="no check 'nope'"):
        quality.finding_rows(bad_store, "customers", "nope", "email")
    with pytest.raises(CRMError, match="no data table 'app_users'"):
        quality.assess(bad_store, ["app_users"])


def test_record_and_trend_over_imports(bad_store, tmp_path):
    assert quality.trend(bad_store).empty
    assert not quality.record_if_new_import(bad_store)  # no import yet
    first = quality.record(bad_store, tables=["orders"])
    frame = quality.trend(bad_store)
    assert frame["table"].tolist() == ["orders"]
    assert frame["quality_score"].iloc[0] == first.tables[0].score
    assert pd.isna(frame["batch_id"].iloc[0])
    # an import adds a point to the trend (the hook, or lazily when the view opens)
    from crm_core import ingest

    path = tmp_path / "orders.csv"
    path.write_text("order_id,customer_id,ordered_at,amount\n9,1,2024-02-02,12.00\n")
    ingest.import_file(bad_store, "orders", path)
    quality.record_if_new_import(bad_store)
    after = quality.trend(bad_store)
    latest = after[after["batch_id"].notna()]
    assert set(latest["table"]) == set(quality.quality_tables())
    batch = int(bad_store.scalar("SELECT max(batch_id) FROM import_batches"))
    assert set(latest["batch_id"].astype(int)) == {batch}
    assert not quality.record_if_new_import(bad_store)  # once per import
    stored = json.loads(
        bad_store.scalar("SELECT checks FROM quality_scores WHERE table_name = 'orders' LIMIT 1")
    )
    assert {"categories", "checks"} <= set(stored)


def test_cli_prints_the_report_as_json_and_lines(bad_store, capsys):
    assert cli.main(["quality", "--json", "--table", "orders", "--table", "customers"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [t["table"] for t in out["tables"]] == ["orders", "customers"]
    orders = out["tables"][0]
    assert {(f["column"], f["check"], f["failing"]) for f in orders["findings"]} == {
        ("amount", "below_minimum", 1),
        ("customer_id", "orphan_reference", 1),
        ("amount", "outlier", 2),
    }
    assert out["weights"] == quality.WEIGHTS
    assert cli.main(["quality", "--table", "customers", "--record"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith("customers")
    assert "Shared e-mail address in email: 2 of 5" in text
    assert "Recorded" in text
    assert quality.trend(bad_store)["table"].tolist() == ["customers"]
    assert cli.main(["quality", "--table", "nope"]) == 2
    assert "no data table 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "email",
    [
        "ann@example.com",
        "a.b-c+d@sub.example.co.uk",
        "a..b@example.com",
        ".a@example.com",
        "a@-example.com",
        "a@example",
        "a@localhost",
        "a@x.invalid",
        " ann@example.com ",
        "ann@exa_mple.com",
        "x" * 65 + "@example.com",
        "ann@" + "x" * 64 + ".com",
    ],
)
def test_the_sql_email_shortcut_agrees_with_email_validator(store, email):
    frame = pd.DataFrame(
        {"customer_id": [1], "email": [email], "signup_at": [pd.Timestamp("2024-01-01")]}
    )
    with store.begin() as conn:
        store.insert_df(conn, "customers", frame)
    failing, ids, checked = quality._email_offenders(store)
    counted = quality._email_offenders(store, ids=False)[0]
    library = bool(contacts.email_valid(pd.Series([email])).iloc[0])
    assert (failing, ids, counted, checked) == ((0, [], 0, 1) if library else (1, [1], 1, 1))


def test_phones_beyond_the_library_budget_are_sampled_and_marked_estimated(bad_store, monkeypatch):
    monkeypatch.setattr(quality, "LIBRARY_ROWS", 2)
    customers = quality.assess(bad_store, ["customers"]).tables[0]
    phone = next(f for f in customers.checks if f.check == "phone_format")
    assert phone.estimated and phone.checked == 4  # every 2nd id: customer 2 of 1, 2, 3, 5
    assert phone.detail == "estimated from 1 of 4 numbers"


def test_findings_put_real_errors_first_and_fences_respect_the_minimum(bad_store, monkeypatch):
    findings = quality.assess(bad_store).findings()
    order = [quality.CHECKS[c][1] for c in findings["check"]]
    ranks = [quality.SEVERITY.index(c) for c in order]
    assert ranks == sorted(ranks)  # validity and references first, unusual amounts last
    assert order[0] == "validity" and order[-1] == "in_range"
    monkeypatch.setattr(quality, "OUTLIER_IQR", 100)  # Q1 - 100 x IQR is far below 0
    low, _ = quality.outlier_fences(bad_store, schema.table("orders").c.amount)
    assert low == 0  # amounts have a schema minimum of 0: no negative lower fence
    report = quality.assess(bad_store)
    outlier = next(f for t in report.tables for f in t.findings if f.check == "outlier")
    assert outlier.detail.startswith("outside 0.00 .. ")


def test_the_trend_axis_zooms_to_the_scores() -> None:
    from crm_core.figures import quality_charts

    low, high = quality_charts.score_range(pd.Series([99.3, 99.2]))
    assert 98 < low < 99.2 and 99.3 < high <= 100
    assert quality_charts.score_range(pd.Series([3.0, 5.0])) == [2.5, 5.5]
    assert quality_charts.score_range(pd.Series([100.0]))[1] == 100

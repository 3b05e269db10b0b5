"""Rows that load but look invalid are warned about at import; future rows move no date."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from crm_core import features, filters, ingest
from crm_core.store import utcnow

pytestmark = pytest.mark.both_stores

CUSTOMERS = """customer_id,email,phone,country,signup_at
1,ann@example.com,+1 212 555 0147,US,2024-01-01
2,bob@,12,XX,2024-01-02
3,cy@example.com,030 901820,DE,2024-01-03
4,dee@localhost,+44 20 7946 0958,GB,{future}
"""


def load(store, folder: Path, table: str, text: str, **kwargs) -> ingest.ImportReport:
    """Load `text` as a CSV of `table`; the report."""
    path = folder / f"{table}.csv"
    path.write_text(text, encoding="utf-8")
    return ingest.load(
        store, path.name, lambda conn: ingest.file_chunks(path, table, path.name), **kwargs
    )


def test_invalid_contacts_and_future_dates_load_with_a_warning_naming_rows(store, tmp_path):
    future = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%d")
    report = load(store, tmp_path, "customers", CUSTOMERS.format(future=future))
    assert report.rows == {"customers": 4}  # warnings stop nothing
    by_column = {w.split(":")[0]: w for w in report.warnings}
    assert set(by_column) == {
        "customers, column email",
        "customers, column phone",
        "customers, column country",
        "customers, column signup_at",
    }
    assert "2 row(s) e-mail not well formed" in by_column["customers, column email"]
    assert "row 3 ('bob@')" in by_column["customers, column email"]
    assert "row 5 ('dee@localhost')" in by_column["customers, column email"]
    assert "1 row(s) phone not a valid number: row 3 ('12')" in by_column["customers, column phone"]
    assert "row 3 ('XX')" in by_column["customers, column country"]
    assert "1 row(s) date in the future: row 5" in by_column["customers, column signup_at"]


def test_a_clean_file_has_no_warning_and_a_dry_run_warns_too(store, tmp_path):
    clean = "\n".join(CUSTOMERS.splitlines()[:2] + CUSTOMERS.splitlines()[3:4]) + "\n"
    assert load(store, tmp_path, "customers", clean).warnings == []
    future = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%d")
    report = load(store, tmp_path, "customers", CUSTOMERS.format(future=future), dry_run=True)
    assert len(report.warnings) == 4 and report.batch_id is None


def test_a_future_order_moves_neither_the_data_end_nor_the_360(store, tmp_path):
    load(store, tmp_path, "customers", CUSTOMERS.format(future="2024-01-04"))
    later = (utcnow() + timedelta(days=400)).strftime("%Y-%m-%d %H:%M:%S")
    orders = (
        "order_id,customer_id,ordered_at,amount,status\n"
        "1,1,2024-02-01 10:00:00,20,completed\n"
        "2,3,2024-03-01 10:00:00,30,completed\n"
        f"3,1,{later},99,completed\n"
    )
    report = load(store, tmp_path, "orders", orders)
    assert report.warnings and "row 4" in report.warnings[0]
    first, last = filters.order_date_range(store)
    assert (first.isoformat(), last.isoformat()) == ("2024-02-01", "2024-03-01")
    features.refresh(store)
    c360 = store.read_df("select customer_id, as_of, frequency, recency_days from customer_360")
    ann = c360[c360["customer_id"] == 1].iloc[0]
    assert str(ann["as_of"])[:10] == "2024-03-01"
    assert int(ann["frequency"]) == 1 and int(ann["recency_days"]) == 29

"""The customer 360 table on the tiny store: one row per customer, hand-computed fields."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import features
from crm_core.store import Store, matches_declaration
from tests.core import seg_tiny, tiny

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL


def test_360_has_one_row_per_customer_with_exact_fields(store):
    seg_tiny.load(store)
    frame = store.read_df(features.customer_360.select()).set_index("customer_id")
    assert list(frame.index.sort_values()) == [1, 2, 3, 4]
    assert frame.loc[1, "frequency"] == 3 and frame.loc[1, "monetary"] == pytest.approx(180)
    assert frame.loc[1, "avg_order_value"] == pytest.approx(60)
    assert frame.loc[4, "recency_days"] == 72 and frame.loc[4, "frequency"] == 1
    assert frame.loc[3, "orders_90d"] == 2 and frame.loc[3, "revenue_90d"] == pytest.approx(1079)
    assert frame.loc[4, "rfm_segment"] == "Lost" and frame.loc[1, "rfm_segment"] == "At risk"
    assert frame.loc[4, "nps_latest"] == 3 and frame.loc[1, "csat_avg"] == pytest.approx(5)
    assert frame.loc[3, "tenure_days"] == 29
    assert frame["clv"].isna().all()  # no scores yet
    assert (frame["as_of"].dt.date == date(2024, 3, 1)).all()


def test_360_is_rebuilt_only_when_its_sources_change(store):
    seg_tiny.load(store)
    assert features.ensure_fresh(store) is False
    with store.begin() as conn:
        store.insert_df(
            conn,
            "orders",
            pd.DataFrame(
                {
                    "order_id": [99],
                    "customer_id": [4],
                    "ordered_at": pd.to_datetime(["2024-03-02"]),
                    "amount": [5.0],
                    "status": ["completed"],
                }
            ),
        )
    assert features.ensure_fresh(store) is True
    row = store.read_df(
        features.customer_360.select().where(features.customer_360.c.customer_id == 4)
    )
    assert row.loc[0, "recency_days"] == 0 and row.loc[0, "frequency"] == 2


def test_scores_are_joined_when_present(store):
    tiny.load(store)
    with store.begin() as conn:
        store.insert_df(
            conn,
            "customer_scores",
            pd.DataFrame({"customer_id": [1], "clv": [123.0], "churn_risk": [0.25]}),
        )
    features.refresh(store)
    frame = store.read_df(features.customer_360.select()).set_index("customer_id")
    assert frame.loc[1, "clv"] == pytest.approx(123) and pd.isna(frame.loc[2, "clv"])


def test_contact_details_are_fields_but_not_copied_into_the_360(store):
    seg_tiny.load(store)
    stored = store.read_df(features.customer_360.select())
    assert not set(features.CONTACT_FIELDS) & set(stored.columns)
    assert set(features.CONTACT_FIELDS) <= set(features.FIELD_COLUMNS)


def test_a_360_table_of_an_older_layout_is_replaced_on_rebuild(store):
    """Stores made before the key and the contact columns were dropped get the new layout."""
    seg_tiny.load(store)
    with store.begin() as conn:
        conn.execute(sa.text("DROP TABLE customer_360"))
        conn.execute(
            sa.text("CREATE TABLE customer_360 (customer_id BIGINT PRIMARY KEY, email VARCHAR)")
        )
        assert not matches_declaration(conn, features.customer_360)
    assert features.refresh(store) == 4
    with store.connect() as conn:
        assert matches_declaration(conn, features.customer_360)
    frame = store.read_df(features.customer_360.select())
    assert "email" not in frame.columns and frame["frequency"].sum() > 0


def test_field_docs_come_from_the_declaration():
    docs = {d["field"]: d for d in features.field_docs()}
    assert docs["email"]["personal"] and docs["clv"]["kind"] == "number"
    assert docs["last_order_at"]["kind"] == "date" and docs["consent_email"]["kind"] == "boolean"


def test_an_import_that_changes_no_count_still_refreshes_the_360(store, tmp_path):
    from crm_core import ingest

    tiny.load(store)
    features.ensure_fresh(store)
    table = features.customer_360
    read = sa.select(table.c.consent_email).where(table.c.customer_id == 3)
    assert store.scalar(read) is False
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,signup_at,consent_email\n3,2024-02-01,true\n")
    ingest.import_file(store, "customers", path, mode="upsert")
    assert features.ensure_fresh(store) is True
    assert store.scalar(read) is True


def test_processes_rebuilding_the_360_at_once_on_postgresql(pg_store_url):
    """Several app processes (or the app and the CLI) may rebuild the 360 at the same time:
    they take turns instead of colliding on its key (a Store each, as in separate processes)."""
    writers = [Store(pg_store_url) for _ in range(3)]
    writers[0].init_schema()
    tiny.load(writers[0])

    def rebuild(writer: Store) -> list[int]:
        return [features.refresh(writer) for _ in range(4)]

    with ThreadPoolExecutor(len(writers)) as pool:
        assert list(pool.map(rebuild, writers)) == [[4] * 4] * len(writers)
    for writer in writers:
        writer.dispose()

"""The store: idempotent schema, migration of an older store, transactions, upsert."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import schema
from crm_core.errors import StoreError
from crm_core.store import Store


def test_schema_has_every_table_of_the_data_model(store):
    expected = {
        "customers",
        "orders",
        "events",
        "campaigns",
        "campaign_contacts",
        "survey_responses",
        "support_tickets",
        "leads",
        "segments",
        "customer_scores",
        "export_log",
        "suppressions",
        "app_users",
    }
    assert expected <= store.table_names()


def test_init_schema_is_idempotent(store):
    assert store.init_schema() == []
    assert store.init_schema() == []


def test_older_store_is_migrated_not_dropped(tmp_path):
    url = f"duckdb:///{tmp_path / 'old.duckdb'}"
    old = Store(url)
    with old.begin() as conn:  # a store as an earlier version made it: fewer columns and tables
        conn.execute(
            sa.text("CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, email VARCHAR)")
        )
        conn.execute(sa.text("INSERT INTO customers VALUES (1, 'ann@example.com')"))
    changes = old.init_schema()
    assert "added column customers.loyalty_points" in changes
    assert "created table orders" in changes
    kept = old.read_df("SELECT customer_id, email, loyalty_points FROM customers")
    assert kept["customer_id"].tolist() == [1]
    assert kept["email"].tolist() == ["ann@example.com"]
    assert kept["loyalty_points"].isna().all()
    assert old.init_schema() == []
    old.dispose()


def test_failed_transaction_changes_nothing(store):
    frame = pd.DataFrame(
        {"customer_id": [1, 2], "signup_at": pd.to_datetime(["2024-01-01", "2024-01-02"])}
    )
    with store.begin() as conn:
        store.insert_df(conn, "customers", frame)
    with pytest.raises(sa.exc.DBAPIError), store.begin() as conn:
        store.insert_df(conn, "customers", frame.assign(customer_id=[3, 4]))
        store.insert_df(conn, "customers", frame)  # duplicate keys: the whole batch fails
    assert store.row_counts(("customers",))["customers"] == 2


def test_upsert_replaces_by_key(store):
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "email": ["a@x.org", "b@x.org"],
            "signup_at": pd.to_datetime(["2024-01-01"] * 2),
        }
    )
    with store.begin() as conn:
        store.insert_df(conn, "customers", frame)
        store.insert_df(conn, "customers", frame.assign(email=["A@x.org", "B@x.org"]), upsert=True)
    emails = store.read_df(
        sa.select(schema.customers.c.email).order_by(schema.customers.c.customer_id)
    )
    assert emails["email"].tolist() == ["A@x.org", "B@x.org"]


def test_missing_table_is_a_clear_error(tmp_path):
    empty = Store(f"duckdb:///{tmp_path / 'empty.duckdb'}")
    with pytest.raises(StoreError, match="no table 'orders'.*crm_core init"):
        empty.require_tables("orders")
    empty.dispose()


def test_bad_url_is_a_clear_error():
    with pytest.raises(StoreError, match="Cannot open the store"):
        Store("nosuchdb://x")


def test_column_docs_come_from_the_schema():
    docs = {d["column"]: d for d in schema.column_docs("orders")}
    assert docs["amount"]["required"] and ">= 0" in docs["amount"]["rules"]
    assert "must exist in customers.customer_id" in docs["customer_id"]["rules"]
    assert "one of completed" in docs["status"]["rules"]


def test_store_locked_by_another_process_is_a_clear_error(tmp_path):
    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True);"
            " time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        locked = Store(f"duckdb:///{path}")
        with pytest.raises(StoreError, match=rf"in use by another process \(PID {holder.pid}\)"):
            locked.init_schema()
    finally:
        holder.kill()
        holder.wait()

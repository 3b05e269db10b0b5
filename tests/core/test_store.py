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

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL


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


@pytest.fixture
def empty_url(backend, tmp_path, request):
    """A store URL with no tables yet, on this variant's backend."""
    if backend == "postgresql":
        return request.getfixturevalue("pg_store_url")
    return f"duckdb:///{tmp_path / 'old.duckdb'}"


def test_older_store_is_migrated_not_dropped(empty_url):
    old = Store(empty_url)
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


# --- DuckDB: SQL cannot reach the file system or the network -----------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('{outside}')",
        "COPY customers TO '{outside}'",
        "ATTACH '{outside}.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
    ],
)
def test_duckdb_sql_cannot_read_write_attach_or_install(tmp_path, sql):
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    locked = Store(f"duckdb:///{tmp_path / 'crm.duckdb'}")
    locked.init_schema()
    with (
        pytest.raises(sa.exc.DBAPIError, match="disabled|locked|Permission"),
        locked.connect() as conn,
    ):
        conn.execute(sa.text(sql.format(outside=outside)))
    # ... while registering a DataFrame from Python (how insert_df loads) still works.
    with locked.begin() as conn:
        locked.insert_df(
            conn, "customers", pd.DataFrame({"customer_id": [1], "signup_at": [pd.Timestamp(0)]})
        )
    assert locked.row_counts(("customers",))["customers"] == 1
    assert not (tmp_path / "outside.csv.duckdb").exists()
    locked.dispose()


# --- PostgreSQL specifics ---------------------------------------------------------------


def test_demo_store_kpis_are_identical_on_duckdb_and_postgresql(demo_store_path, pg_demo_store_url):
    from crm_core.analytics.cohorts import cohort_retention
    from crm_core.filters import default_filters
    from crm_core.metrics import compute_kpis, revenue_trend

    results = {}
    for name, url in (("duckdb", f"duckdb:///{demo_store_path}"), ("pg", pg_demo_store_url)):
        opened = Store(url)
        filters = default_filters(opened)
        results[name] = (
            filters,
            {k: (v.value, v.previous) for k, v in compute_kpis(opened, filters).items()},
            revenue_trend(opened, filters),
            cohort_retention(opened, filters),
            opened.row_counts(),
        )
        opened.dispose()
    duck, pg = results["duckdb"], results["pg"]
    assert duck[0] == pg[0]
    assert duck[4] == pg[4]
    for name, (value, previous) in duck[1].items():
        assert pg[1][name] == (pytest.approx(value), pytest.approx(previous)), name
    pd.testing.assert_frame_equal(duck[2], pg[2], check_dtype=False)
    pd.testing.assert_frame_equal(duck[3], pg[3], check_dtype=False)


def test_concurrent_imports_on_postgresql_do_not_collide(pg_store_url):
    """Two processes' worth of writers: each load stages in a table private to its session."""
    from concurrent.futures import ThreadPoolExecutor

    writers = [Store(pg_store_url) for _ in range(4)]
    writers[0].init_schema()

    def load(i: int) -> int:
        frame = pd.DataFrame(
            {"customer_id": range(i * 1000, i * 1000 + 500), "signup_at": pd.Timestamp(0)}
        )
        with writers[i].begin() as conn:
            return writers[i].insert_df(conn, "customers", frame)

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(load, range(4))) == [500] * 4
    assert writers[0].row_counts(("customers",))["customers"] == 2000
    assert not {n for n in writers[0].table_names() if n.startswith("_crm_staging")}
    for writer in writers:
        writer.dispose()


def test_unreachable_postgresql_is_a_clear_error():
    from tests.pg_server import free_port

    down = Store(f"postgresql+psycopg://crm@127.0.0.1:{free_port()}/crm")
    with pytest.raises(StoreError, match="Cannot open the store.*127.0.0.1"):
        down.init_schema()
    down.dispose()

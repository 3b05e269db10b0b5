"""Our side of the benchmark: each step calls the crm_core function the pages and CLI call.

| step            | crm_core entry point (caller)                                          |
|-----------------|------------------------------------------------------------------------|
| generate        | demo.create_demo_store (`python -m crm_core init`)                     |
| import          | ingest.import_file (`python -m crm_core import`, Data import page)     |
| KPI overview    | metrics.compute_kpis (crm_ui.data.kpis, `python -m crm_core kpis`)      |
| 360 refresh     | features.refresh (after imports and scoring)                           |
| segment preview | segments.preview (segment builder page, `crm_core segments preview`)   |
| CLV             | clv.value_customers (fit on every buyer, value everyone); clv.analyse  |
| next purchase   | next_purchase.predictions (inside value_customers and scoring.score)   |
| churn           | churn.analyse (what scoring.score runs: train, validate, score)        |
| leads           | lead_scoring.analyse (`crm_core leads score`, scoring.score, Funnels)  |
| recommend       | recommend.score (`crm_core recommend --score`, Recommendations page)  |
| export          | export.export_segment (segment builder page, `crm_core export`)        |
| overview render | app.py signed in, overview page, in Streamlit's AppTest                |
| duplicates      | dedupe.find_duplicates (`python -m crm_core duplicates find`), a child |
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import sqlalchemy as sa

from bench.baseline import COMPARED_360, CSV_TABLES, peak_rss_bytes
from crm_core import auth, demo, export, features, ingest, metrics, segments
from crm_core.analytics import churn, clv, lead_scoring, next_purchase, recommend
from crm_core.filters import Filters, default_filters
from crm_core.schema import orders
from crm_core.store import Store

FIVE_RULES: dict[str, Any] = {
    "match": "all",
    "rules": [
        {"field": "frequency", "op": "gte", "value": 2},
        {"field": "last_order_at", "op": "within_last_days", "value": 365},
        {"field": "monetary", "op": "gt", "value": 100},
        {"field": "country", "op": "in", "value": ["US", "GB", "DE"]},
        {"field": "consent_email", "op": "eq", "value": True},
    ],
}
"""The previewed segment: five rules over customer_360 fields (number, date, text, boolean)."""

EVERYONE: dict[str, Any] = {
    "match": "all",
    "rules": [{"field": "customer_id", "op": "gt", "value": 0}],
}
"""The exported segment: every customer."""

EXPORT_SEGMENT = "Benchmark: every customer"
EXPORT_CHANNEL = "none"
"""Channel `none` (an ad audience): erasures and suppressions apply, consent does not, so
nearly every customer is written; email/sms would also drop those without consent."""

IMPORT_PREREQUISITES = ("customers", "campaigns")
"""Tables orders refer to: imported (untimed) into the import's target store first."""

USERS = {"manager": "bench_manager", "marketer": "bench_marketer"}
PASSWORD = "bench-password-123"


def store_url(path: Path) -> str:
    """SQLAlchemy URL of a DuckDB store file."""
    return f"duckdb:///{Path(path).resolve()}"


# --- preparation (run in a child process: generation's memory is not ours) -----------------


def prepare(
    store_path: str, csv_dir: str, customers: int, seed: int, reuse: str | None
) -> dict[str, Any]:
    """Generate the demo store (or copy `reuse`), then write the baseline's CSV files once."""
    path = Path(store_path)
    seconds = None
    if reuse:
        shutil.copyfile(reuse, path)
    else:
        path.unlink(missing_ok=True)
        store = Store(store_url(path))
        store.init_schema()
        started = time.perf_counter()
        demo.create_demo_store(store, customers=customers, seed=seed)
        seconds = time.perf_counter() - started
        store.dispose()
    store = Store(store_url(path))
    store.init_schema()  # a reused, older store gains the newer tables
    counts = store.row_counts(
        ("customers", "orders", "events", "survey_responses", "support_tickets")
    )
    store.dispose()
    write_csvs(path, Path(csv_dir))
    return {"seconds": seconds, "counts": counts, "peak_rss": peak_rss_bytes()}


def write_csvs(path: Path, csv_dir: Path) -> None:
    """Every table the baseline reads as <table>.csv (DuckDB COPY, outside the app's store
    connection, whose configuration forbids writing files from SQL)."""
    csv_dir.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(path), read_only=True)
    try:
        conn.execute("SET enable_progress_bar = false")
        for name in (*CSV_TABLES, *IMPORT_PREREQUISITES):
            target = str(csv_dir / f"{name}.csv").replace("'", "''")
            # Table names come from CSV_TABLES (constants) and the path is quoted.
            conn.execute(f"COPY (SELECT * FROM {name}) TO '{target}' (HEADER)")  # noqa: S608
    finally:
        conn.close()


# --- setup of our side (untimed) --------------------------------------------------------------


def year_filters(store: Store) -> Filters:
    """The overview's default: the last 365 days up to the last completed order."""
    filters = default_filters(store, 365)
    if filters is None:
        raise RuntimeError("The benchmark store has no completed orders.")
    return filters


def add_users(store: Store) -> None:
    """A manager (overview render) and a marketer (export with personal columns)."""
    for role, username in USERS.items():
        if auth.get_user(store, username) is None:
            auth.add_user(store, username, role, PASSWORD, name=f"Bench {role}")


def import_store(path: Path, csv_dir: Path) -> Store:
    """A fresh store with the customers and campaigns imported and no orders: the import's
    target."""
    path.unlink(missing_ok=True)
    store = Store(store_url(path))
    store.init_schema()
    ingest.import_files(store, [(name, csv_dir / f"{name}.csv") for name in IMPORT_PREREQUISITES])
    return store


def empty_orders(store: Store) -> None:
    """Delete every order (between import repeats)."""
    with store.begin() as conn:
        conn.execute(orders.delete())


def orders_stats(store: Store) -> tuple[int, float]:
    """Rows and total amount of the orders table."""
    with store.connect() as conn:
        rows, total = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(orders.c.amount), 0))
        ).one()
    return int(rows), float(total)


def save_export_segment(store: Store) -> None:
    """Save the every-customer segment the export step exports."""
    features.ensure_fresh(store)
    existing = set(segments.list_segments(store)["name"])
    if EXPORT_SEGMENT not in existing:
        segments.save_segment(store, EXPORT_SEGMENT, EVERYONE, owner=USERS["marketer"])


def read_360(store: Store) -> pd.DataFrame:
    """The customer_360 columns the baseline also computes."""
    c = features.customer_360.c
    return store.read_df(
        sa.select(c.customer_id, *[c[name] for name in COMPARED_360]).order_by(c.customer_id)
    )


# --- the timed steps --------------------------------------------------------------------------


def import_orders(store: Store, path: Path) -> int:
    """Validate and load the orders CSV in one transaction; rows imported."""
    return ingest.import_file(store, "orders", path).rows


def kpis(store: Store, filters: Filters) -> dict[str, metrics.KPIValue]:
    """Every overview KPI for the period and the previous one."""
    return metrics.compute_kpis(store, filters)


def refresh_360(store: Store) -> int:
    """Rebuild customer_360 (with RFM); rows."""
    return features.refresh(store)


def preview(store: Store) -> segments.Preview:
    """The five-rule segment's size, value and masked sample, as the builder shows it."""
    return segments.preview(store, FIVE_RULES, "marketer")


def clv_fit_and_score(store: Store) -> tuple[clv.CLVModel, pd.DataFrame]:
    """Fit BG/NBD + Gamma-Gamma on every buyer and value each of them (no backtest)."""
    return clv.value_customers(store, clv.CLVSettings())


def next_purchase_scores(model: clv.CLVModel, values: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Every buyer's chance of a purchase in 7, 30 and 90 days and the 25%-75% window, from
    the fitted CLV model (the CLV step computes them too; timed alone here)."""
    return next_purchase.predictions(model, values, 1, as_of)


def clv_page(store: Store) -> clv.CLVReport:
    """What the CLV page computes: backtest, refit, every customer's value and attributes."""
    return clv.analyse(store, clv.CLVSettings())


def churn_train_and_score(store: Store) -> churn.ChurnReport:
    """Train, validate against the recency baseline, explain, score current customers."""
    return churn.analyse(store, churn.ChurnSettings())


def leads_fit_and_score(store: Store) -> lead_scoring.LeadReport:
    """Lead scoring as `leads score` and scoring.score run it: features at every cutoff,
    train, validate against the source-only baseline, refit, score the open leads."""
    return lead_scoring.analyse(store, lead_scoring.LeadSettings())


def recommend_fit_and_score(store_path: str, repeats: int) -> dict[str, Any]:
    """Recommendations as `recommend --score` runs them, `repeats` times (in a child process:
    its peak memory is its own): read the purchase lines, fit the rules and the consumables,
    recommend to every customer, replace the stored lists."""
    from bench.harness import _times  # the harness imports this module

    store = Store(store_url(Path(store_path)))
    seconds, run = _times(lambda: recommend.score(store), repeats)
    store.dispose()
    return {**run.as_dict(), "seconds": seconds, "peak_rss": peak_rss_bytes()}


def export_everyone(store: Store, out: Path) -> export.ExportResult:
    """Export the every-customer segment as a governed CSV target list."""
    user = auth.get_user(store, USERS["marketer"])
    assert user is not None
    return export.export_segment(
        store, EXPORT_SEGMENT, user=user, channel=EXPORT_CHANNEL, fmt="csv", out=out, seed=0
    )


def find_duplicates(store_path: str) -> dict[str, Any]:
    """Run duplicate detection on the store (in a child process: its peak memory is its
    own); its time, the counts, and precision and recall against the planted duplicates."""
    from crm_core import dedupe

    store = Store(store_url(Path(store_path)))
    started = time.perf_counter()
    run = dedupe.find_duplicates(store, by="bench")
    seconds = time.perf_counter() - started
    precision, recall = dedupe.precision_recall(run.pairs, dedupe.planted_truth(store))
    store.dispose()
    return {
        "seconds": seconds,
        "customers": run.customers,
        "pairs": len(run.pairs),
        "clusters": len(run.clusters),
        "precision": precision,
        "recall": recall,
        "peak_rss": peak_rss_bytes(),
    }


_APP_ENV = ("CRM_DATABASE_URL", "CRM_DATA_DIR")


class OverviewApp:
    """The app signed in as a manager on the overview page, in Streamlit's AppTest."""

    def __init__(self, store_path: Path, data_dir: Path) -> None:
        self._saved_env = {name: os.environ.get(name) for name in _APP_ENV}
        os.environ["CRM_DATABASE_URL"] = store_url(store_path)
        os.environ["CRM_DATA_DIR"] = str(data_dir)
        import streamlit as st
        from streamlit.testing.v1 import AppTest

        st.cache_data.clear()  # a process that ran the app before (tests) cached its store
        st.cache_resource.clear()
        app = Path(__file__).resolve().parents[1] / "app.py"
        self.at = AppTest.from_file(str(app), default_timeout=900).run()
        self.at.text_input[0].input(USERS["manager"])
        self.at.text_input[1].input(PASSWORD)
        self.at.button[0].click().run()  # signed in: the default page is Home
        self.at.switch_page("app_pages/overview.py").run()  # the first (cold) overview render
        self.check()

    def check(self) -> None:
        """Raise if the page failed or is not the overview with its KPIs."""
        if self.at.exception:
            raise RuntimeError(f"The overview page failed: {self.at.exception[0].value}")
        labels = [m.label for m in self.at.metric]
        expected = [m.label for m in metrics.METRICS.values()]
        if labels != expected:
            raise RuntimeError(f"The overview shows {labels}, expected {expected}.")

    def render(self) -> None:
        """Run the page again (warm: Streamlit's caches hold the queries)."""
        self.at.run()
        self.check()

    def close(self) -> None:
        """Put the environment back and drop the app's cached store."""
        import streamlit as st

        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        st.cache_data.clear()
        st.cache_resource.clear()

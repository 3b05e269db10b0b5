"""The same crm_core analytics on DuckDB and on Spark (Spark Connect, local[2], bound to
127.0.0.1), on the demo store synced to a Parquet lake: equal results (sorted rows, 1e-9
relative). One module so that one pytest worker starts the one Spark server."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from crm_core import features, metrics, reports, schema, spark
from crm_core.analytics import campaigns, cohorts, funnels, surveys
from crm_core.filters import Filters, default_filters
from crm_core.store import Store

pytestmark = pytest.mark.skipif(
    not spark.java_available() and os.environ.get("CRM_TEST_SPARK") != "require",
    reason="Spark needs Java 17 (make test installs it and sets CRM_TEST_SPARK=require)",
)


@dataclass
class Running:
    """A Spark Connect server, and the standalone cluster it runs on (None: local mode)."""

    url: str
    cluster: spark.Cluster | None


@pytest.fixture(scope="module", params=["local", "standalone"])
def server(request, tmp_path_factory) -> Running:
    """A Spark Connect server on loopback, in local mode (local[2]) and then against a
    standalone master with two one-core workers (real executors, a real shuffle); every
    JVM is stopped after its round."""
    logs = tmp_path_factory.mktemp(f"spark-{request.param}")
    quick = spark.QUICK_JVM
    cluster = (
        spark.start_cluster(logs, workers=2, java_options=quick)
        if request.param == "standalone"
        else None
    )
    try:
        connect = spark.start_server(
            logs, master=cluster.url if cluster else "local[2]", java_options=quick
        )
        try:
            yield Running(connect.url, cluster)
        finally:
            connect.stop()
    finally:
        if cluster is not None:
            cluster.stop()


@pytest.fixture(scope="module")
def stores(server, demo_store_path: Path, tmp_path_factory) -> tuple[Store, spark.SparkStore]:
    """A copy of the demo store (with its 360 table) and a Spark store over its lake."""
    folder = tmp_path_factory.mktemp("duck")
    shutil.copy(demo_store_path, folder / "crm.duckdb")
    duck = Store(f"duckdb:///{folder / 'crm.duckdb'}")
    features.ensure_fresh(duck)
    lake = tmp_path_factory.mktemp("lake")
    written = spark.lake_sync(duck, lake)
    assert written["orders"] > 0 and written["customer_360"] > 0
    on_spark = spark.SparkStore(server.url, lake)
    yield duck, on_spark
    on_spark.dispose()
    duck.dispose()


@pytest.fixture(scope="module")
def routed(stores, server, tmp_path_factory) -> spark.AnalyticsStore:
    """The app's store as CRM_ANALYTICS_URL makes it: a copy of the demo store whose facts
    and 360 are deleted (users, segments and scores kept), with Spark reading the lake; a
    fact read that missed Spark finds nothing."""
    duck, on_spark = stores
    folder = tmp_path_factory.mktemp("app")
    shutil.copy(duck.engine.url.database, folder / "crm.duckdb")
    app = Store(f"duckdb:///{folder / 'crm.duckdb'}")
    with app.begin() as conn:
        for name in spark.LAKE_TABLES:
            conn.execute(schema.table(name).delete())
    app.dispose()
    store = spark.AnalyticsStore(f"duckdb:///{folder / 'crm.duckdb'}", server.url, on_spark.lake)
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def periods(server, stores) -> list[Filters]:
    """The default period, one country and channel, and a day with few orders; the
    standalone round, whose every query crosses executors, checks the first only (the
    make test budget)."""
    duck, _ = stores
    whole = default_filters(duck)
    every = [
        whole,
        Filters(whole.start, whole.end, ("DE", "US"), ("web",)),
        Filters(whole.end - timedelta(days=6), whole.end, (), ()),
    ]
    return every if server.cluster is None else every[:1]


def assert_same(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal values: frames by sorted rows, numbers to 1e-9 relative, recursively."""
    if isinstance(ours, pd.DataFrame):
        assert list(ours.columns) == list(theirs.columns), where
        assert len(ours) == len(theirs), where
        if ours.empty:
            return
        keys = list(ours.columns)
        left = ours.sort_values(keys, ignore_index=True, na_position="first")
        right = theirs.sort_values(keys, ignore_index=True, na_position="first")
        for column in keys:
            for a, b in zip(left[column].tolist(), right[column].tolist(), strict=True):
                assert_same(a, b, f"{where}.{column}")
        return
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys(), where
        for key in ours:
            assert_same(ours[key], theirs[key], f"{where}.{key}")
        return
    if hasattr(ours, "__dataclass_fields__"):
        assert_same(vars(ours), vars(theirs), where)
        return
    if isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
        return
    if pd.isna(ours) if np.ndim(ours) == 0 else False:
        assert pd.isna(theirs), f"{where}: {ours!r} != {theirs!r}"
        return
    if isinstance(ours, (float, np.floating)) and not isinstance(ours, bool):
        assert math.isclose(float(ours), float(theirs), rel_tol=1e-9, abs_tol=1e-12), (
            f"{where}: {ours!r} != {theirs!r}"
        )
        return
    assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def without_timings(report: Any) -> Any:
    """A report without its wall-clock figures (fit_seconds: how long a fit took here)."""
    if isinstance(report, dict):
        return {k: without_timings(v) for k, v in report.items() if not k.endswith("_seconds")}
    if isinstance(report, list):
        return [without_timings(v) for v in report]
    return report


ANALYSES: dict[str, Callable[[Any, Filters], Any]] = {
    "kpis": metrics.compute_kpis,
    "order_aggregates": metrics.order_aggregates,
    "survey_aggregates": metrics.survey_aggregates,
    "revenue_trend": metrics.revenue_trend,
    "cohort_retention": cohorts.cohort_retention,
    "survey_summary": surveys.summary,
    "survey_monthly_trend": surveys.monthly_trend,
    "survey_by_country": lambda s, f: surveys.breakdown(s, f, "country"),
    "score_distribution": surveys.score_distribution,
    "respondents": surveys.respondents,
    "order_touches": campaigns.order_touches,
    "spend_shares": campaigns.spend_shares,
    "incrementality": campaigns.incrementality,
    "lead_funnel": funnels.lead_funnel,
    "lead_stage_ages": funnels.lead_stage_ages,
    "leads_by_source": funnels.leads_by_source,
}
"""Every analysis read checked on both engines (a new one joins here the day it lands)."""


@pytest.mark.parametrize("name", list(ANALYSES))
def test_the_same_figures_on_duckdb_and_spark_without_nested_loops(server, stores, periods, name):
    duck, on_spark = stores
    compute = ANALYSES[name]
    on_spark.history.clear()
    for filters in periods:
        assert_same(compute(duck, filters), compute(on_spark, filters), f"{name}[{filters}]")
    assert on_spark.history, "the analysis read nothing through Spark"
    if server.cluster is not None:
        return  # the physical plan is the optimiser's, the same whoever runs it: read once
    for sql in set(on_spark.history):
        assert on_spark.nested_loop_joins(sql) == [], f"{name}: a nested-loop join in {sql}"


@pytest.mark.parametrize("view", list(reports.REPORTS))
def test_every_view_reports_the_same_figures_with_facts_on_spark(stores, routed, periods, view):
    duck, _ = stores
    routed.analytics.history.clear()
    for filters in periods[:2]:
        ours = without_timings(json.loads(json.dumps(reports.report(duck, view, filters))))
        theirs = without_timings(json.loads(json.dumps(reports.report(routed, view, filters))))
        assert_same(ours, theirs, f"{view}[{filters}]")
    assert routed.analytics.history, "the view read nothing through Spark"
    assert list(routed.mixed) == []


def test_reads_of_facts_and_app_tables_in_one_analysis_agree(
    server, stores, routed, periods, tmp_path: Path
):
    """detractor_value reads respondents (facts: Spark) and their predicted CLV
    (customer_scores: the store) in separate queries and joins them in Python."""
    import sqlalchemy as sa

    from crm_core.schema import customer_scores

    duck, on_spark = stores
    ids = duck.values(sa.select(schema.customers.c.customer_id))
    rows = [
        {"customer_id": i, "clv": (i % 97) * 3.5, "scored_at": datetime(2026, 7, 1)} for i in ids
    ]
    scored = {}
    for name, source in (("duck", duck.engine.url.database), ("app", routed.engine.url.database)):
        shutil.copy(source, tmp_path / f"{name}.duckdb")
        copy = Store(f"duckdb:///{tmp_path / f'{name}.duckdb'}")
        with copy.begin() as conn:
            conn.execute(customer_scores.insert(), rows)
        scored[name] = copy
    scored["app"].dispose()
    app = spark.AnalyticsStore(scored["app"].url, server.url, on_spark.lake)
    try:
        for filters in periods:
            ours = surveys.detractor_value(scored["duck"], filters)
            assert_same(ours, surveys.detractor_value(app, filters), f"{filters}")
            assert ours["basis"] == "predicted CLV" and ours["detractors"] > 0
        assert list(app.mixed) == []
    finally:
        app.dispose()
        scored["duck"].dispose()


@pytest.mark.parametrize("server", ["local"], indirect=True)
def test_the_plan_check_catches_a_correlated_subquery(stores):
    """The respondents' query as it was: a count per answer in a correlated subquery."""
    import sqlalchemy as sa

    from crm_core.schema import orders, survey_responses

    _, on_spark = stores
    sr = survey_responses.c
    window = sa.bindparam("window", timedelta(days=90), type_=sa.Interval())
    bought_after = (
        sa.select(sa.func.count())
        .where(
            orders.c.customer_id == sr.customer_id,
            orders.c.ordered_at > sr.answered_at,
            orders.c.ordered_at <= sr.answered_at + window,
        )
        .scalar_subquery()
    )
    correlated = sa.select(sr.customer_id, bought_after.label("purchases"))
    found = on_spark.nested_loop_joins(spark.to_spark_sql(correlated))
    assert found and found[0].startswith("+- BroadcastNestedLoopJoin")


def test_spark_reads_only_the_lake_and_names_a_missing_table(stores, tmp_path):
    _, on_spark = stores
    assert {"orders", "customers", "customer_360"} <= on_spark.table_names()
    with pytest.raises(Exception, match="lake sync"):
        on_spark.require_tables("no_such_table")


@pytest.mark.parametrize("server", ["local"], indirect=True)
def test_a_table_missing_from_the_lake_is_named_never_read_from_the_store(
    server, stores, tmp_path: Path
):
    """A lake without `orders` (a partial pipeline, a sync not run): the read fails naming
    the table and `lake sync`, although the app's store has orders; once published (the
    Data import page's button, in the app's own process), the same store reads it without a
    restart; a folder that goes away later is named too, never read as empty."""
    import sqlalchemy as sa

    from crm_core.errors import SparkError

    duck, _ = stores
    shutil.copy(duck.engine.url.database, tmp_path / "app.duckdb")
    lake = tmp_path / "lake"
    spark.lake_sync(duck, lake, ["customers"])
    routed = spark.AnalyticsStore(
        f"duckdb:///{tmp_path / 'app.duckdb'}", server.url, lake, database="partial"
    )
    count = {
        name: sa.select(sa.func.count()).select_from(schema.table(name))
        for name in ("customers", "orders")
    }
    try:
        assert routed.scalar(count["customers"]) == duck.scalar(count["customers"])
        with pytest.raises(SparkError, match=r"no table 'orders'.*lake sync"):
            routed.scalar(count["orders"])
        written = spark.publish(routed)
        assert set(written) == set(spark.LAKE_TABLES)
        assert routed.scalar(count["orders"]) == duck.scalar(count["orders"])
        assert list(routed.mixed) == []
    finally:
        routed.dispose()
    shutil.rmtree(lake / "orders")
    again = spark.AnalyticsStore(routed.url, server.url, lake, database="partial")
    try:
        with pytest.raises(SparkError, match=r"no table 'orders'"):
            again.scalar(count["orders"])
    finally:
        again.dispose()


def test_interval_parameters_become_spark_interval_literals():
    import sqlalchemy as sa

    from crm_core.schema import orders

    window = sa.bindparam("window", timedelta(days=90), type_=sa.Interval())
    sql = spark.to_spark_sql(sa.select(orders.c.order_id).where(orders.c.ordered_at + window > 0))
    assert "INTERVAL '7776000.0' SECOND" in sql and "MAKE_INTERVAL" not in sql.upper()


def test_lake_sync_replaces_a_table_folder(stores, tmp_path: Path):
    duck, _ = stores
    first = spark.lake_sync(duck, tmp_path, ["products"])
    again = spark.lake_sync(duck, tmp_path, ["products"])
    assert first == again and len(list((tmp_path / "products").iterdir())) == 1


def test_cli_lake_sync_writes_every_table_with_its_rows(demo_copy: Store, tmp_path: Path, capsys):
    from crm_core import cli

    assert cli.main(["lake", "sync", "--path", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["rows"]
    assert set(rows) == set(spark.LAKE_TABLES)
    for name in ("orders", "customers", "customer_360"):
        assert rows[name] == demo_copy.scalar(f"SELECT COUNT(*) FROM {name}")
        assert pq.read_table(tmp_path / name).num_rows == rows[name]


def test_the_360_rebuilt_on_spark_equals_duckdbs_and_is_remembered(stores, routed):
    """features.refresh on the routed store: the scores are copied to the lake, the 360 is
    rebuilt there by Spark (INSERT OVERWRITE), and its fingerprint is kept in the store."""
    import sqlalchemy as sa

    duck, _ = stores
    rows = features.refresh(routed)
    assert rows == duck.scalar(sa.select(sa.func.count()).select_from(features.customer_360))
    assert any(
        "INSERT OVERWRITE" in sql or "customer_360" in sql for sql in routed.analytics.history
    )
    every = sa.select(features.customer_360)
    assert_same(duck.read_df(every), routed.read_df(every), "customer_360")
    assert routed.on_spark(every)
    assert features.ensure_fresh(routed) is False  # remembered: nothing changed since
    assert (routed.analytics.lake / "customer_scores").is_dir()


def test_a_segment_previews_saves_and_exports_the_same_on_spark(stores, routed, tmp_path):
    from crm_core import auth, export, segments

    duck, _ = stores
    rules = {
        "match": "all",
        "rules": [
            {"field": "country", "op": "in", "value": ["US", "DE"]},
            {"field": "monetary", "op": "gt", "value": 100},
        ],
    }
    ours, theirs = (segments.preview(s, rules, "admin") for s in (duck, routed))
    assert theirs.customers > 0
    assert_same(ours, theirs, "preview")
    ada = auth.User("ada", "Ada", "admin")
    files = []
    for name, store in (("duck", duck), ("spark", routed)):
        segments.save_segment(store, f"Big spenders {name}", rules, owner="ada")
        saved = segments.load_segment(store, f"Big spenders {name}")
        assert segments.record_size(store, saved) == ours.customers
        done = export.export_segment(
            store, saved.name, user=ada, channel="email", out=tmp_path / f"{name}.csv", seed=1
        )
        files.append((tmp_path / f"{name}.csv").read_bytes())
        assert done.rows > 0
    assert files[0] == files[1]
    assert list(routed.mixed) == []


def test_each_round_runs_where_it_says(server, stores):
    """Local mode has no cluster; the standalone round's application holds one core on each
    of two alive workers, so the parity above ran on executors with a shuffle between them."""
    _, on_spark = stores
    assert on_spark.scalar("SELECT COUNT(DISTINCT customer_id) FROM orders") > 0
    if server.cluster is None:
        return
    status = server.cluster.status()
    assert status["aliveworkers"] == 2
    (app,) = status["activeapps"]
    assert app["name"] == "crm-insights" and app["cores"] == 2


@pytest.mark.parametrize("server", ["local"], indirect=True)  # the benchmark's mode
def test_the_benchmarks_spark_column_checks_then_times_each_step(
    server, demo_store_path: Path, periods, tmp_path: Path
):
    """bench/spark_column.py on a copy of the demo store (what `make bench` runs at 1M)."""
    from bench import spark_column

    shutil.copy(demo_store_path, tmp_path / "crm.duckdb")
    store = Store(f"duckdb:///{tmp_path / 'crm.duckdb'}")
    try:
        measured = spark_column.measure(store, tmp_path, periods[0], repeats=1, url=server.url)
    finally:
        store.dispose()
    assert set(measured.seconds) == set(spark_column.TIMED)
    assert all(len(s) == 1 and s[0] > 0 for s in measured.seconds.values())
    assert measured.lake_rows > 0 and "equal DuckDB's" in measured.notes()[-1]


@pytest.mark.parametrize("stop_signal", ["SIGINT", "SIGTERM"])
def test_lake_serve_runs_spark_connect_on_loopback_until_stopped(tmp_path: Path, stop_signal):
    """`python -m crm_core lake serve`: the endpoint it prints answers a query; Ctrl+C
    (SIGINT) or `kill` (SIGTERM) stops it and its JVM."""
    import signal
    import subprocess
    import sys

    from crm_core.spark import _free_port

    port = _free_port()
    env = {**os.environ, "CRM_DATA_DIR": str(tmp_path), "CRM_ANALYTICS_URL": ""}
    command = [sys.executable, "-m", "crm_core", "lake", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        assert f"listens at sc://127.0.0.1:{port}" in first
        from pyspark.sql import SparkSession

        session = SparkSession.builder.remote(f"sc://127.0.0.1:{port}").getOrCreate()
        assert session.sql("SELECT 1 + 1").collect()[0][0] == 2
        session.stop()
        process.send_signal(getattr(signal, stop_signal))
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    import socket

    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the server still listens"

"""The benchmark's Spark column: the overview KPIs, the customer 360 refresh and the segment
preview run through Spark Connect (local[2] on this machine) over the store's facts written
to a Parquet lake, with the app's tables in the same DuckDB store, as the app runs them with
CRM_ANALYTICS_URL set. Spark's results are checked against DuckDB's before anything is timed.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bench import checks, steps
from bench.harness import _times
from crm_core import features, spark
from crm_core.filters import Filters
from crm_core.store import Store

TIMED = ("kpis", "refresh_360", "preview")
"""The steps that get a Spark column."""


@dataclass
class SparkTimings:
    """What the Spark column measured."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    server_start: float = 0.0
    lake_sync: float = 0.0
    lake_rows: int = 0
    checks: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        """How the Spark column was measured, for RESULTS.md."""
        return [
            f"Spark column (bench/spark_column.py, pyspark {spark_version()}): a Spark Connect "
            "server in local mode (local[2], the machine's two cores) bound to 127.0.0.1, "
            f"started in {self.server_start:.1f} s; `lake sync` wrote {self.lake_rows:,} rows "
            f"as Parquet in {self.lake_sync:.1f} s (neither is in the column). The steps ran on "
            "`AnalyticsStore`, as the app does with CRM_ANALYTICS_URL set: the facts and the 360 "
            "on Spark, the app's tables in the DuckDB store. The 360 refresh includes copying "
            "the four score tables to the lake and Spark's INSERT OVERWRITE. One warm-up run "
            "of the KPIs and of the preview (Spark's first query of a table lists its files).",
            *self.checks,
        ]


def spark_version() -> str:
    """The installed pyspark's version."""
    import pyspark

    return pyspark.__version__


def measure(
    store: Store, workdir: Path, filters: Filters, repeats: int, url: str | None = None
) -> SparkTimings:
    """Time the Spark column's steps over `store` (a DuckDB store); `url` is a running Spark
    Connect server, else one is started in local[2] and stopped after."""
    measured = SparkTimings()
    server = None
    if url is None:
        started = time.perf_counter()
        server = spark.start_server(workdir)
        measured.server_start = time.perf_counter() - started
        url = server.url
    analytics = None
    try:
        lake = workdir / "lake"
        started = time.perf_counter()
        features.ensure_fresh(store)
        measured.lake_rows = sum(spark.lake_sync(store, lake).values())
        measured.lake_sync = time.perf_counter() - started
        analytics = spark.AnalyticsStore(store.url, url, lake)

        ours = {k: (v.value, v.previous) for k, v in steps.kpis(store, filters).items()}
        theirs = {k: (v.value, v.previous) for k, v in steps.kpis(analytics, filters).items()}
        figures = checks.compare_kpis(theirs, ours)
        measured.seconds["kpis"], _ = _times(lambda: steps.kpis(analytics, filters), repeats)

        measured.seconds["refresh_360"], rows = _times(
            lambda: steps.refresh_360(analytics), repeats
        )
        count = sa.select(sa.func.count()).select_from(features.customer_360)
        if rows != store.scalar(count):
            raise checks.MismatchError(f"Spark's 360 has {rows:,} rows, DuckDB's other.")
        checks.compare_frames(
            steps.read_360(analytics),
            steps.read_360(store),
            "customer_id",
            list(steps.COMPARED_360),
            "Spark's customer_360",
        )

        duck_preview = steps.preview(store)
        spark_preview = steps.preview(analytics)  # also the warm-up
        same = (spark_preview.customers, spark_preview.base) == (
            duck_preview.customers,
            duck_preview.base,
        )
        if not same:
            raise checks.MismatchError(
                f"Spark's preview finds {spark_preview.customers:,} of {spark_preview.base:,}, "
                f"DuckDB's {duck_preview.customers:,} of {duck_preview.base:,}."
            )
        measured.seconds["preview"], _ = _times(lambda: steps.preview(analytics), repeats)
        measured.checks.append(
            f"Spark checked before timing: {figures} KPI figures, the {rows:,} rows of "
            f"customer_360 ({len(steps.COMPARED_360)} columns) and the preview's "
            f"{duck_preview.customers:,} of {duck_preview.base:,} customers equal DuckDB's; "
            f"median KPI time on Spark {statistics.median(measured.seconds['kpis']):.2f} s."
        )
        if analytics.mixed:
            raise checks.MismatchError(f"A read mixed lake and app tables: {analytics.mixed[0]}")
        return measured
    finally:
        if analytics is not None:
            analytics.dispose()  # its own engine and Spark session; `store` stays open
        if server is not None:
            server.stop()

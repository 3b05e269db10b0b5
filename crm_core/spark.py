"""Analytics reads on Apache Spark through Spark Connect, with the queries crm_core already has.

`SparkStore` offers the read side of `Store` (`read_df`, `read_arrow`, `scalar`,
`table_names`, `require_tables`) over a Spark Connect session: each SQLAlchemy statement is
compiled for DuckDB with its parameters rendered by SQLAlchemy (never formatted by hand), then
transpiled to Spark SQL by SQLGlot, so no analysis module knows which engine runs it. Results
come back through Arrow with the dtypes DuckDB's `fetch_df` gives (NUMERIC as float, DATE as
datetime64).

The facts live in a lake: one Parquet folder per table under a root (`lake_sync` writes the
store's tables there, for tests and small teams; at scale a team's own pipeline does), each
registered in the session as a view of that name. Writes stay in the transactional store.

`start_server` starts a Spark Connect server from the pyspark wheel, bound to 127.0.0.1 only
(the default bind address of these machines is not loopback), in local mode or against a
standalone master.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_core import schema
from crm_core.errors import CRMError, StoreError
from crm_core.store import Store

LAKE_TABLES: tuple[str, ...] = (*schema.DATA_TABLES, "customer_360")
"""The tables Spark reads: the facts and the derived customer 360."""

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"

NESTED_LOOPS = ("BroadcastNestedLoopJoin", "CartesianProduct")
"""Physical join operators that compare every row with every row: a correlated subquery or a
non-equi join over customer-sized tables (minutes at 100k customers where a hash join takes
seconds)."""


class SparkError(CRMError):
    """Spark or its lake is not usable as configured."""


@cache
def _duckdb_dialect() -> sa.Dialect:
    """The dialect crm_core's statements are compiled with before SQLGlot transpiles them."""
    return sa.create_engine("duckdb:///:memory:").dialect


def to_spark_sql(stmt: sa.sql.Executable | str, params: Mapping[str, Any] | None = None) -> str:
    """A statement as Spark SQL: compiled for DuckDB with its bound values rendered as
    literals by SQLAlchemy, then transpiled by SQLGlot."""
    import sqlglot

    if isinstance(stmt, str):
        stmt = sa.text(stmt)
    if params:
        stmt = stmt.params(**params)
    sql = str(stmt.compile(dialect=_duckdb_dialect(), compile_kwargs={"literal_binds": True}))
    tree = sqlglot.parse_one(sql, read="duckdb").transform(_interval_literal)
    return tree.sql(dialect="spark")


_INTERVAL_UNITS = {
    "years": "YEAR",
    "months": "MONTH",
    "days": "DAY",
    "hours": "HOUR",
    "mins": "MINUTE",
    "secs": "SECOND",
}


def _interval_literal(node):
    """DuckDB's rendering of a timedelta, make_interval(secs => N), as INTERVAL 'N' SECOND
    (Spark's make_interval takes no named arguments)."""
    from sqlglot import exp

    if not isinstance(node, exp.MakeInterval):
        return node
    parts = [arg for arg in node.args.values() if isinstance(arg, exp.Kwarg)]
    if len(parts) != 1 or parts[0].this.name.lower() not in _INTERVAL_UNITS:
        return node
    unit = _INTERVAL_UNITS[parts[0].this.name.lower()]
    value = parts[0].expression.name
    return exp.Interval(this=exp.Literal.string(value), unit=exp.var(unit))


def _as_duckdb_dtypes(table: pa.Table) -> pd.DataFrame:
    """Arrow to pandas with DuckDB's fetch_df dtypes: decimals as float, dates as datetime64,
    booleans with nulls as pandas' nullable boolean."""
    columns = []
    for column in table.columns:
        if pa.types.is_decimal(column.type):
            column = column.cast(pa.float64())
        elif pa.types.is_date(column.type):
            column = column.cast(pa.timestamp("us"))
        columns.append(column)
    frame = pa.Table.from_arrays(columns, names=table.column_names).to_pandas()
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_boolean(column.type) and column.null_count:
            frame[name] = frame[name].astype("boolean")
    return frame


class SparkStore:
    """The read side of `Store` over Spark Connect, on the lake's Parquet tables."""

    is_duckdb = False

    def __init__(self, url: str, lake: Path | str) -> None:
        from pyspark.sql import SparkSession

        self.url = url
        self.lake = Path(lake)
        self.history: deque[str] = deque(maxlen=200)
        """The Spark SQL of the latest queries (for plan checks)."""
        try:
            self.spark = SparkSession.builder.remote(url).getOrCreate()
        except Exception as exc:  # noqa: BLE001 - any failure to connect means the same
            raise SparkError(
                f"Cannot reach Spark Connect at {url}: {exc}. Start it (README: Spark) or "
                "unset CRM_ANALYTICS_URL to read the store itself."
            ) from exc
        self.spark.conf.set("spark.sql.session.timeZone", "UTC")
        self.register()

    def __repr__(self) -> str:
        return f"SparkStore({self.url!r}, lake={str(self.lake)!r})"

    def register(self) -> list[str]:
        """Register each lake table folder as a view of that name; the names registered."""
        found = []
        for name in LAKE_TABLES:
            folder = self.lake / name
            if folder.is_dir() and any(folder.iterdir()):
                self.spark.read.parquet(str(folder)).createOrReplaceTempView(name)
                found.append(name)
        return found

    def read_arrow(
        self, stmt: sa.sql.Executable | str, params: Mapping[str, Any] | None = None
    ) -> pa.Table:
        """Run a query on Spark into an Arrow table."""
        sql = to_spark_sql(stmt, params)
        self.history.append(sql)
        return self.spark.sql(sql).toArrow()

    def read_df(
        self,
        stmt: sa.sql.Executable | str,
        params: Mapping[str, Any] | None = None,
        conn: Any = None,
    ) -> pd.DataFrame:
        """Run a query on Spark into a DataFrame with DuckDB's dtypes."""
        return _as_duckdb_dtypes(self.read_arrow(stmt, params))

    def scalar(self, stmt: sa.sql.Executable | str, params: Mapping[str, Any] | None = None):
        """The single value a query returns."""
        sql = to_spark_sql(stmt, params)
        self.history.append(sql)
        rows = self.spark.sql(sql).head(1)
        return rows[0][0] if rows else None

    def nested_loop_joins(self, spark_sql: str) -> list[str]:
        """The nested-loop joins (NESTED_LOOPS) in Spark's physical plan of a query."""
        plan = self.spark.sql(f"EXPLAIN {spark_sql}").collect()[0][0]
        return [line.strip() for line in plan.splitlines() if any(n in line for n in NESTED_LOOPS)]

    def table_names(self) -> set[str]:
        """The lake tables registered in the session."""
        return {t.name for t in self.spark.catalog.listTables()}

    def require_tables(self, *names: str) -> None:
        """Raise StoreError naming the first table the lake lacks."""
        missing = [n for n in names if n not in self.table_names()]
        if missing:
            raise StoreError(
                f"The lake at {self.lake} has no table {missing[0]!r}: run "
                "`python -m crm_core lake sync` (or have your pipeline write it)."
            )

    def dispose(self) -> None:
        """Close the Spark Connect session."""
        self.spark.stop()


def lake_sync(
    store: Store, lake: Path | str, tables: Iterable[str] = LAKE_TABLES
) -> dict[str, int]:
    """Write the store's tables to the lake as Parquet (one folder per table, replaced);
    rows written per table."""
    import pyarrow.parquet as pq

    root = Path(lake)
    written: dict[str, int] = {}
    present = store.table_names()
    for name in tables:
        if name not in present:
            continue
        folder = root / name
        staging = root / f".{name}.writing"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        table = store.read_arrow(sa.select(schema.metadata.tables[name]))
        pq.write_table(table, staging / "part-0.parquet")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        written[name] = table.num_rows
    return written


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A Spark Connect server this process started (stop it with `stop`)."""

    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        """Stop the server and every JVM it started (its process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(10)


def spark_home() -> Path:
    """The Spark distribution inside the pyspark wheel."""
    import pyspark

    return Path(pyspark.__file__).parent


def start_server(
    log_dir: Path, master: str = "local[2]", port: int | None = None, timeout: float = 120.0
) -> Server:
    """Start a Spark Connect server bound to 127.0.0.1 (driver and gRPC), wait until it
    answers; `master` is local[N] or a standalone master's spark://127.0.0.1:PORT."""
    port = port or _free_port()
    home = spark_home()
    log = Path(log_dir) / f"spark-connect-{port}.log"
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1"}
    command = [
        str(home / "bin" / "spark-submit"),
        "--class",
        SERVER_CLASS,
        "--master",
        master,
        "--name",
        "crm-insights",
        *_conf(
            {
                "spark.connect.grpc.binding.address": "127.0.0.1",
                "spark.connect.grpc.binding.port": str(port),
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.driver.host": "127.0.0.1",
                "spark.ui.enabled": "false",
                "spark.sql.session.timeZone": "UTC",
                "spark.sql.shuffle.partitions": "4",
            }
        ),
        "spark-internal",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = Server(f"sc://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SparkError(f"Spark Connect exited ({process.returncode}); see {log}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.5)
    server.stop()
    raise SparkError(f"Spark Connect did not answer on port {port} in {timeout:.0f} s; see {log}")


def _conf(values: Mapping[str, str]) -> list[str]:
    return [part for key, value in values.items() for part in ("--conf", f"{key}={value}")]


def java_available() -> bool:
    """Whether a Java runtime is on PATH (Spark needs Java 17 or later)."""
    return shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME"))

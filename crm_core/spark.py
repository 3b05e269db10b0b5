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
import threading
import time
import uuid
import warnings
from collections import deque, namedtuple
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_core import features, schema
from crm_core.config import get_settings
from crm_core.errors import SparkError
from crm_core.store import Store, get_store

# pyspark warns at import that it does not fully support pandas 3: its Connect client
# hands us Arrow, which _as_duckdb_dtypes converts itself, so users need not see it
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)
# its client warns when it gives up retrying, with its own file path; SparkError says it
warnings.filterwarnings("ignore", message=r"\[RETRIES_EXCEEDED\]", category=UserWarning)

SCORE_TABLES: tuple[str, ...] = (
    "customer_scores",
    "customer_clusters",
    "lead_scores",
    "customer_recommendations",
)
"""App tables the 360 is built from: the app writes them in its store, and copies them to the
lake before it rebuilds the 360 on Spark."""

LAKE_TABLES: tuple[str, ...] = (*schema.DATA_TABLES, "customer_360", *SCORE_TABLES)
"""The tables in the lake: the facts, the derived customer 360 and copies of the scores."""

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"

QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
"""JVM options for a short-lived Spark on shared cores (the tests): the quick compiler only
and one GC thread, so that the cores go to queries rather than to optimising Spark's own
code (the parity suite takes 40% less CPU). Long runs (the benchmark) keep the defaults."""

NESTED_LOOPS = ("BroadcastNestedLoopJoin", "CartesianProduct")
"""Physical join operators that compare every row with every row: a correlated subquery or a
non-equi join over customer-sized tables (minutes at 100k customers where a hash join takes
seconds)."""


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
        elif pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
        columns.append(column)
    frame = pa.Table.from_arrays(columns, names=table.column_names).to_pandas()
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_boolean(column.type) and column.null_count:
            frame[name] = frame[name].astype("boolean")
    return frame


def _identifier(name: str) -> str:
    """A Spark SQL identifier, back-quoted."""
    return "`" + name.replace("`", "``") + "`"


def _location_literal(folder: Path) -> str:
    """A folder as a Spark SQL string literal (file: URI)."""
    return "'" + folder.resolve().as_uri().replace("\\", "\\\\").replace("'", "\\'") + "'"


def _same_place(location: str, folder: Path) -> bool:
    """Whether a catalog location (file:/x/y) is this folder."""
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(location).path).rstrip("/") == str(folder.resolve())


def _python(value: Any) -> Any:
    """A pandas cell as the Python value a DBAPI row holds (None for missing)."""
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if isinstance(value, np.generic) else value


CONNECT_TIMEOUT = 10.0
"""Seconds to wait for Spark Connect's port before saying it cannot be reached."""

RETRIES = 5
"""Retries of a Spark Connect call that found the server unavailable (about 17 s with the
client's backoff; its default, 15, keeps a page waiting for ten minutes)."""


def _reason(exc: BaseException) -> str:
    """A Spark Connect error in one line: gRPC's details when it has them."""
    details = getattr(exc, "details", None)
    text = details() if callable(details) else str(exc)
    return text.strip().splitlines()[0][:300] if text and text.strip() else type(exc).__name__


def _unreachable(text: str) -> bool:
    """Whether a Spark Connect error says the server is not there (rather than the query)."""
    return "UNAVAILABLE" in text or "Connection refused" in text


def _connect(url: str, timeout: float | None = None) -> Any:
    """A Spark Connect session of its own at `url` (stopping it leaves other stores'
    sessions alone), or SparkError within `timeout` seconds when nothing answers there."""
    import grpc
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.client.retries import DefaultPolicy

    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    parts = urlsplit(url)
    try:
        address = (parts.hostname, parts.port or 15002)
    except ValueError:  # a port that is not a number
        address = (None, 0)
    if parts.scheme != "sc" or not address[0]:
        raise SparkError(
            f"CRM_ANALYTICS_URL={url!r} is not a Spark Connect address; it reads like "
            "sc://host:15002."
        )
    help_text = (
        "Start it (on one machine: `python -m crm_core lake serve`; README: Apache Spark) "
        "or unset CRM_ANALYTICS_URL to read the store itself."
    )
    try:  # refused at once: say so without starting a client
        socket.create_connection(address, timeout=timeout).close()
    except OSError as exc:
        reason = f"no answer in {timeout:.0f} s" if isinstance(exc, TimeoutError) else exc.strerror
        raise SparkError(f"Cannot reach Spark Connect at {url} ({reason}). {help_text}") from exc
    session = SparkSession.builder.remote(url).create()
    try:
        # the client's own channel (with its TLS and token, if any) must come up: a port that
        # accepts and never answers (a proxy with nothing behind it) would otherwise keep the
        # first call retrying for ten minutes
        grpc.channel_ready_future(session.client._channel).result(timeout=timeout)
    except grpc.FutureTimeoutError as exc:
        session.client.close()  # not stop(): releasing a session is a call that would wait
        raise SparkError(
            f"Cannot reach Spark Connect at {url} (its port accepts, but no Spark Connect "
            f"answered in {timeout:.0f} s). {help_text}"
        ) from exc
    session.client.set_retry_policies([DefaultPolicy(max_retries=RETRIES)])
    try:
        session.conf.set("spark.sql.session.timeZone", "UTC")
    except Exception as exc:  # noqa: BLE001 - whatever the first call meets, Spark is not there
        session.client.close()  # not stop(): releasing a session is a call that would wait
        raise SparkError(
            f"Spark Connect at {url} did not answer ({_reason(exc)}). {help_text}"
        ) from exc
    return session


class SparkStore:
    """The read side of `Store` over Spark Connect, on the lake's Parquet tables."""

    is_duckdb = False

    def __init__(self, url: str, lake: Path | str, database: str = "crm") -> None:
        self.url = url
        self.lake = Path(lake)
        self.database = database
        self.history: deque[str] = deque(maxlen=200)
        """The Spark SQL of the latest queries (for plan checks)."""
        self.spark = _connect(url)
        self.registered: frozenset[str] = frozenset()
        """The lake tables this session reads (set by `register`)."""
        self.register()

    def __repr__(self) -> str:
        return f"SparkStore({self.url!r}, lake={str(self.lake)!r}, database={self.database!r})"

    def _sql(self, sql: str) -> list[Any]:
        """Run a statement of our own (DDL, EXPLAIN) and collect its rows."""
        return self.spark.sql(sql).collect()

    def register(self) -> list[str]:
        """Register each table folder of the lake in Spark's catalog, as an external Parquet
        table of that name in `database` (a table that points elsewhere is pointed here);
        the lake tables the database then holds."""
        db = _identifier(self.database)
        self._sql(f"CREATE DATABASE IF NOT EXISTS {db}")
        self.spark.catalog.setCurrentDatabase(self.database)
        present = {t.name for t in self.spark.catalog.listTables(self.database)}
        for name in LAKE_TABLES:
            folder = self.lake / name
            if not (folder.is_dir() and any(folder.iterdir())):
                if name in present and _same_place(self._location(name), folder):
                    # its folder is gone: forget the table (external: nothing is deleted)
                    # rather than read it as empty
                    self._sql(f"DROP TABLE {db}.{_identifier(name)}")
                    present.discard(name)
                continue
            location = _location_literal(folder)
            if name in present:
                if _same_place(self._location(name), folder):
                    self._sql(f"REFRESH TABLE {db}.{_identifier(name)}")
                    continue
                self._sql(f"DROP TABLE {db}.{_identifier(name)}")  # external: files stay
            self._sql(f"CREATE TABLE {db}.{_identifier(name)} USING parquet LOCATION {location}")
            present.add(name)
        self.registered = frozenset(present & set(LAKE_TABLES))
        return sorted(self.registered)

    def _location(self, name: str) -> str:
        rows = self._sql(
            f"DESCRIBE TABLE EXTENDED {_identifier(self.database)}.{_identifier(name)}"
        )
        found = [row[1] for row in rows if row[0] == "Location"]
        return found[0] if found else ""

    def read_arrow(
        self, stmt: sa.sql.Executable | str, params: Mapping[str, Any] | None = None
    ) -> pa.Table:
        """Run a query on Spark into an Arrow table."""
        sql = to_spark_sql(stmt, params)
        self.history.append(sql)
        return self._fresh(lambda: self.spark.sql(sql).toArrow())

    def _fresh(self, run: Callable[[], Any]) -> Any:
        """Run a read; when a lake table was rewritten since Spark listed its files (a
        `lake sync` or a pipeline run), refresh the tables and run it once more."""
        try:
            return run()
        except Exception as exc:
            text = str(exc)
            if _unreachable(text):
                raise SparkError(
                    f"Spark Connect at {self.url} stopped answering ({_reason(exc)}). "
                    "Start it again, or unset CRM_ANALYTICS_URL to read the store itself."
                ) from exc
            if "FileNotFound" not in text and "REFRESH TABLE" not in text:
                raise
        self.register()
        return run()

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
        rows = self._fresh(lambda: self.spark.sql(sql).head(1))
        return rows[0][0] if rows else None

    def row(self, stmt: sa.sql.Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The first row a query returns, as plain Python values (None for null), or None."""
        frame = self.read_df(stmt, params).head(1)
        if frame.empty:
            return None
        fields = namedtuple("Row", list(frame.columns), rename=True)  # noqa: PYI024
        return fields(*(_python(frame[name].iloc[0]) for name in frame.columns))

    def values(self, stmt: sa.sql.Executable, params: Mapping[str, Any] | None = None) -> list:
        """The first column of every row a query returns, as plain Python values."""
        frame = self.read_df(stmt, params)
        return [_python(value) for value in frame.iloc[:, 0]]

    def rebuild_table(self, table: sa.Table, select: sa.Select) -> int:
        """Replace a lake table's rows with what `select` returns (in the table's column
        order): INSERT OVERWRITE TABLE once it is registered, CREATE TABLE ... AS SELECT
        into its lake folder the first time; rows written.

        Not CREATE OR REPLACE TABLE: Spark's built-in catalog refuses REPLACE for Parquet
        tables (UNSUPPORTED_FEATURE.TABLE_OPERATION; only v2 catalogs such as Delta or
        Iceberg have it), while INSERT OVERWRITE works on every catalog.
        """
        inner = select.subquery("rebuilt")
        # each column cast to its declared type: Spark writes no string into a DATE column
        # (a rendered date literal is a string) and the table keeps one schema
        ordered = to_spark_sql(
            sa.select(*[sa.cast(inner.c[c.name], c.type).label(c.name) for c in table.columns])
        )
        name = f"{_identifier(self.database)}.{_identifier(table.name)}"
        if table.name in self.registered:
            self._sql(f"INSERT OVERWRITE TABLE {name} {ordered}")
        else:
            folder = self.lake / table.name
            shutil.rmtree(folder, ignore_errors=True)
            location = _location_literal(folder)
            self._sql(f"CREATE TABLE {name} USING parquet LOCATION {location} AS {ordered}")
            self.registered = self.registered | {table.name}
        self._sql(f"REFRESH TABLE {name}")
        return int(self.scalar(sa.select(sa.func.count()).select_from(table)))

    def nested_loop_joins(self, spark_sql: str) -> list[str]:
        """The nested-loop joins (NESTED_LOOPS) in Spark's physical plan of a query."""
        plan = self.spark.sql(f"EXPLAIN {spark_sql}").collect()[0][0]
        return [line.strip() for line in plan.splitlines() if any(n in line for n in NESTED_LOOPS)]

    def table_names(self) -> set[str]:
        """The lake tables registered in the session."""
        return {t.name for t in self.spark.catalog.listTables(self.database)}

    def require_tables(self, *names: str) -> None:
        """Raise SparkError naming the first table the lake lacks (never read elsewhere)."""
        missing = [n for n in names if n not in self.table_names()]
        if missing:
            raise SparkError(
                f"Spark has no table {missing[0]!r}: the lake at {self.lake} has no folder "
                f"for it and the database {self.database!r} no such table. "
                "Run `python -m crm_core lake sync` to write the store's tables there (or have "
                "your pipeline write it)."
            )

    def dispose(self) -> None:
        """Close the Spark Connect session."""
        self.spark.stop()


ANALYTICS_TABLES: frozenset[str] = frozenset((*schema.DATA_TABLES, "customer_360"))
"""What `AnalyticsStore` reads on Spark: a statement over these tables only (the scores'
copies are read by the 360's rebuild alone; the app reads its store's)."""


def statement_tables(stmt: sa.sql.Executable | str) -> set[str]:
    """Names of the tables a statement reads (CTE names left out)."""
    if isinstance(stmt, str):
        stmt = sa.text(stmt)
    if isinstance(stmt, sa.TextClause):
        import sqlglot
        from sqlglot import exp

        try:
            tree = sqlglot.parse_one(stmt.text, read="duckdb")
        except sqlglot.errors.ParseError:
            return set()
        ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
        return {t.name for t in tree.find_all(exp.Table)} - ctes
    found = sa.sql.util.find_tables(stmt, include_joins=True, include_aliases=True)
    return {t.name for t in found if isinstance(t, sa.Table | sa.TableClause)}


class AnalyticsStore(Store):
    """The store, with its analytics reads on Spark: a read of the facts or customer_360
    (ANALYTICS_TABLES) runs on the lake through Spark Connect; app tables, writes, and reads
    inside a transaction stay in the transactional store (`url`)."""

    def __init__(
        self, url: str, analytics_url: str, lake: Path | str, database: str = "crm"
    ) -> None:
        super().__init__(url)
        self.analytics_url = analytics_url
        self.lake = Path(lake)
        self.database = database
        self._analytics: SparkStore | None = None
        self._connecting = threading.Lock()
        self.analytics_engine = "Apache Spark"
        self.mixed: deque[str] = deque(maxlen=50)
        """Statements that read lake and app tables at once (run on the store; should be
        none: tests assert it)."""

    def __repr__(self) -> str:
        return (
            f"AnalyticsStore({super().__repr__()}, Spark at {self.analytics_url!r}, "
            f"lake={str(self.lake)!r}, database={self.database!r})"
        )

    @property
    def analytics(self) -> SparkStore:
        """The Spark side, connected at its first read of lake tables (signing in and the
        app's own tables need no Spark; a server started later is found without a restart)."""
        with self._connecting:
            if self._analytics is None:
                self._analytics = SparkStore(self.analytics_url, self.lake, self.database)
            return self._analytics

    @property
    def connected(self) -> bool:
        """Whether this store has a Spark session yet."""
        return self._analytics is not None

    def on_spark(self, stmt: sa.sql.Executable | str, conn: Any = None) -> bool:
        """Whether Spark runs this read: it reads lake tables only, outside a transaction.
        SparkError when the lake lacks one of them: the store's copy is never read instead."""
        if conn is not None:
            return False
        tables = statement_tables(stmt)
        if not tables & ANALYTICS_TABLES:
            return False
        if not tables <= ANALYTICS_TABLES:
            self.mixed.append(f"{sorted(tables)}: {stmt}")
            return False
        if not tables <= self.analytics.registered:
            self.analytics.register()  # written since this store connected?
            self.analytics.require_tables(*sorted(tables))
        return True

    def _reader(self, stmt: sa.sql.Executable | str, conn: Any = None) -> Any:
        """The engine that runs a read: Spark for lake tables (`on_spark`), else the store."""
        return self.analytics if self.on_spark(stmt, conn) else super()

    def read_df(self, stmt, params=None, conn=None) -> pd.DataFrame:
        """Run a query on Spark (lake tables) or on the store (the rest)."""
        return self._reader(stmt, conn).read_df(stmt, params, conn)

    def read_arrow(self, stmt, params=None) -> pa.Table:
        """Run a query into an Arrow table on Spark or on the store."""
        return self._reader(stmt).read_arrow(stmt, params)

    def scalar(self, stmt, params=None):
        """The single value a query returns, from Spark or the store."""
        return self._reader(stmt).scalar(stmt, params)

    def row(self, stmt, params=None) -> Any:
        """The first row a query returns, from Spark or the store."""
        return self._reader(stmt).row(stmt, params)

    def values(self, stmt, params=None) -> list:
        """The first column of every row a query returns, from Spark or the store."""
        return self._reader(stmt).values(stmt, params)

    def rebuild_table(
        self,
        table: sa.Table,
        select: sa.Select,
        after: Callable[[sa.Connection], None] | None = None,
    ) -> int:
        """Rebuild a lake table (customer_360) on Spark from the lake, after copying the app
        tables `select` reads (the scores) there; `after` runs in a store transaction."""
        if table.name not in ANALYTICS_TABLES:
            return super().rebuild_table(table, select, after)
        copies = statement_tables(select) - ANALYTICS_TABLES
        lake_sync(self, self.lake, sorted(copies))
        self.analytics.register()
        rows = self.analytics.rebuild_table(table, select)
        if after is not None:
            with self.begin() as conn:
                after(conn)
        return rows

    def dispose(self) -> None:
        """Close the store's connections and the Spark session."""
        super().dispose()
        if self._analytics is not None:
            self._analytics.dispose()
            self._analytics = None


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
        # a new file name each time: a reader that listed the old files fails and refreshes
        # (SparkStore._fresh) instead of reading a file that changed under it
        path = staging / f"part-{uuid.uuid4().hex}.parquet"
        rows = 0
        with (
            store.read_batches(sa.select(schema.metadata.tables[name])) as batches,
            pq.ParquetWriter(path, batches.schema) as writer,
        ):
            for batch in batches:  # a batch at a time: 28 million events fit in any memory
                writer.write_batch(batch)
                rows += batch.num_rows
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        written[name] = rows
    return written


def publish(store: Store, lake: Path | str | None = None) -> dict[str, int]:
    """Write the store's facts, its 360 (refreshed first) and the scores to the lake that
    Spark reads (`lake sync`, the Data import page's Publish); rows written per table.

    The facts come from the transactional store itself, never back from the lake; a routed
    store's Spark session then lists the new files, so its views show them at once.
    """
    routed = isinstance(store, AnalyticsStore)
    target = Path(lake) if lake else (store.lake if routed else get_settings().lake_path)
    source = get_store(store.url) if routed else store
    source.init_schema()
    features.ensure_fresh(source)
    written = lake_sync(source, target)
    if routed and store.connected and target == store.lake:
        store.analytics.register()
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


def _launch(
    command: list[str], log: Path, url: str, port: int, timeout: float, java_options: str = ""
) -> Server:
    """Run a Spark JVM in a process group of its own, bound to loopback (SPARK_LOCAL_IP),
    and wait until it listens on `port`."""
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_JAVA_OPTS": java_options,
    }
    with open(log, "wb") as out:  # run in the log's folder: Spark writes files where it runs
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log.parent,
            start_new_session=True,
        )
    server = Server(url, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SparkError(f"{command[-1]} exited ({process.returncode}); see {log}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.5)
    server.stop()
    raise SparkError(f"Spark did not answer on port {port} in {timeout:.0f} s; see {log}")


def start_server(
    log_dir: Path,
    master: str = "local[2]",
    port: int | None = None,
    timeout: float = 120.0,
    java_options: str = "",
) -> Server:
    """Start a Spark Connect server bound to 127.0.0.1 (driver and gRPC), wait until it
    answers; `master` is local[N] or a standalone master's spark://127.0.0.1:PORT;
    `java_options` for its driver and executors (e.g. QUICK_JVM)."""
    port = port or _free_port()
    command = [
        str(spark_home() / "bin" / "spark-submit"),
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
                "spark.executor.memory": "1g",
                "spark.sql.warehouse.dir": str(Path(log_dir).resolve() / "spark-warehouse"),
                **(
                    {
                        "spark.driver.extraJavaOptions": java_options,
                        "spark.executor.extraJavaOptions": java_options,
                    }
                    if java_options
                    else {}
                ),
            }
        ),
        "spark-internal",
    ]
    log = Path(log_dir) / f"spark-connect-{port}.log"
    return _launch(command, log, f"sc://127.0.0.1:{port}", port, timeout)


@dataclass
class Cluster:
    """A standalone master and its workers, started by this process on loopback."""

    master: Server
    workers: list[Server]
    status_url: str
    """The master's JSON status page (workers, applications, cores)."""

    @property
    def url(self) -> str:
        """The master's spark:// URL (for `start_server(master=...)`)."""
        return self.master.url

    def status(self) -> dict[str, Any]:
        """The master's view of the cluster: alive workers, running applications, cores."""
        import json
        import urllib.request

        with urllib.request.urlopen(self.status_url, timeout=10) as response:
            return json.load(response)

    def stop(self) -> None:
        """Stop the workers (and their executors), then the master."""
        for worker in self.workers:
            worker.stop()
        self.master.stop()


def start_cluster(
    log_dir: Path, workers: int = 2, timeout: float = 120.0, java_options: str = ""
) -> Cluster:
    """Start a standalone master and `workers` workers of one core and 1.5 GB each from the
    pyspark wheel (it has no sbin/start-master.sh: bin/spark-class runs the daemons), all
    bound to 127.0.0.1."""
    spark_class = str(spark_home() / "bin" / "spark-class")
    port, web = _free_port(), _free_port()
    master = _launch(
        [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(web)),
        ],
        Path(log_dir) / f"spark-master-{port}.log",
        f"spark://127.0.0.1:{port}",
        port,
        timeout,
        java_options,
    )
    started: list[Server] = []
    try:
        for _ in range(workers):
            worker_port = _free_port()
            started.append(
                _launch(
                    [
                        spark_class,
                        "org.apache.spark.deploy.worker.Worker",
                        *("--host", "127.0.0.1", "--port", str(worker_port)),
                        *("--webui-port", str(_free_port()), "--cores", "1", "--memory", "1536m"),
                        *("--work-dir", str(Path(log_dir) / f"worker-{worker_port}")),
                        master.url,
                    ],
                    Path(log_dir) / f"spark-worker-{worker_port}.log",
                    f"spark://127.0.0.1:{worker_port}",
                    worker_port,
                    timeout,
                    java_options,
                )
            )
    except SparkError:
        Cluster(master, started, "").stop()
        raise
    return Cluster(master, started, f"http://127.0.0.1:{web}/json/")


def _conf(values: Mapping[str, str]) -> list[str]:
    return [part for key, value in values.items() for part in ("--conf", f"{key}={value}")]


def java_available() -> bool:
    """Whether a Java runtime is on PATH (Spark needs Java 17 or later)."""
    return shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME"))

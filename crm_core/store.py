"""The only module that opens connections: engine from a URL, reads, bulk loads, migrations.

DuckDB (the default, an embedded file) and PostgreSQL are both reached through SQLAlchemy;
the few places where they differ (fast DataFrame reads, bulk loads) are isolated here.
"""

from __future__ import annotations

import re
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from crm_core import schema
from crm_core.config import get_settings
from crm_core.errors import StoreError

_STAGING = "_crm_staging"

DUCKDB_CONFIG: dict[str, object] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    # GROUP BY customer_id over up to 2^20 (about a million) ids indexes an array instead of
    # hashing: the KPIs' per-customer aggregate of 10M orders takes 30% less time.
    "perfect_ht_threshold": 20,
    "lock_configuration": True,
}
"""Every DuckDB connection of the app: SQL cannot read or write files other than the store
(no read_csv, COPY, ATTACH), install or load extensions, or reach the network, and cannot
switch that back on (the configuration is locked). DataFrames are still registered from
Python (insert_df) and import files are read by pyarrow, not by DuckDB SQL."""


def utcnow() -> datetime:
    """Current time as naive UTC, the store's timestamp convention."""
    return datetime.now(UTC).replace(tzinfo=None)


class Store:
    """A customer store behind one SQLAlchemy engine."""

    analytics_engine: str | None = None
    """Where the analytics reads run when not in this store (None: here)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_duckdb = url.startswith("duckdb")
        options: dict[str, Any] = {}
        if self.is_duckdb:
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"config": dict(DUCKDB_CONFIG)}
        else:
            options["pool_pre_ping"] = True  # a server restart must not break the app
        try:
            self.engine: Engine = sa.create_engine(url, **options)
        except Exception as exc:  # a bad URL or a missing driver
            raise StoreError(f"Cannot open the store {url!r}: {exc}") from exc
        # DuckDB allows one writer per file; writes from this process take turns.
        self.write_lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    # --- connections -------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reading."""
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in one transaction: committed on success, rolled back on error."""
        with self.write_lock:
            conn = self._connect()
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.close()

    def _connect(self) -> Connection:
        """Open a connection, turning "the file is locked by another process" into advice."""
        try:
            return self.engine.connect()
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig)
            if "lock" in reason.lower():
                pid = re.search(r"PID (\d+)", reason)
                holder = f" (PID {pid.group(1)})" if pid else ""
                raise StoreError(
                    f"The store {self.engine.url.database} is in use by another process"
                    f"{holder}. DuckDB lets one process open the file at a time: stop the "
                    "app (Ctrl+C where `make run` runs) and try again, or do this from the "
                    "app's pages."
                ) from exc
            raise StoreError(f"Cannot open the store {self!r}: {reason}") from exc

    # --- reads -------------------------------------------------------------------------

    def read_df(
        self,
        stmt: sa.sql.Executable | str,
        params: Mapping[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> pd.DataFrame:
        """Run a query (Core expression or SQL text with bound parameters) into a DataFrame."""
        if isinstance(stmt, str):
            stmt = sa.text(stmt)
        if conn is None:
            with self.connect() as own:
                return self._read(own, stmt, params)
        return self._read(conn, stmt, params)

    def _read(
        self, conn: Connection, stmt: sa.sql.Executable, params: Mapping[str, Any] | None
    ) -> pd.DataFrame:
        result = conn.execute(stmt, dict(params or {}))
        if self.is_duckdb:
            # DuckDB hands a columnar result straight to pandas (about 25x read_sql).
            return result.cursor.fetch_df()
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        # The same dtypes DuckDB's fetch_df gives: NUMERIC as float, DATE as datetime64.
        for col in frame.columns:
            first = frame[col].dropna().head(1)
            if not len(first):
                continue
            if isinstance(first.iloc[0], Decimal):
                frame[col] = frame[col].astype(float)
            elif isinstance(first.iloc[0], date) and not isinstance(first.iloc[0], datetime):
                frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
        return frame

    def read_arrow(
        self, stmt: sa.sql.Executable, params: Mapping[str, Any] | None = None
    ) -> pa.Table:
        """Run a query into an Arrow table: bulk reads (exports) without a Python object per
        value on DuckDB; on other databases through `read_df`."""
        with self.connect() as conn:
            if not self.is_duckdb:
                return pa.Table.from_pandas(self._read(conn, stmt, params), preserve_index=False)
            cursor = conn.execute(stmt, dict(params or {})).cursor
            with warnings.catch_warnings():  # "makes an extra copy": of columns, in C++
                warnings.simplefilter("ignore", UserWarning)
                return cursor.to_arrow_table()

    @contextmanager
    def read_batches(
        self, stmt: sa.sql.Executable, rows: int = 500_000
    ) -> Iterator[pa.RecordBatchReader]:
        """A query's result as a stream of Arrow batches of up to `rows` rows: bulk copies
        (the lake) without the whole result in memory on DuckDB; one read elsewhere."""
        if not self.is_duckdb:
            table = self.read_arrow(stmt)
            yield pa.RecordBatchReader.from_batches(table.schema, table.to_batches(rows))
            return
        with self.connect() as conn:
            # a relation streams; a DB-API result would be materialised first
            compiled = stmt.compile(dialect=conn.dialect)
            params = [compiled.params[k] for k in compiled.positiontup or ()] or None
            relation = conn.connection.driver_connection.sql(str(compiled), params=params)
            yield relation.to_arrow_reader(rows)

    def scalar(self, stmt: sa.sql.Executable | str, params: Mapping[str, Any] | None = None):
        """The single value a query returns."""
        if isinstance(stmt, str):
            stmt = sa.text(stmt)
        with self.connect() as conn:
            return conn.execute(stmt, dict(params or {})).scalar()

    def row(self, stmt: sa.sql.Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The first row a query returns (fields by label), or None when it returns none."""
        with self.connect() as conn:
            return conn.execute(stmt, dict(params or {})).first()

    def values(self, stmt: sa.sql.Executable, params: Mapping[str, Any] | None = None) -> list:
        """The first column of every row a query returns."""
        with self.connect() as conn:
            return list(conn.execute(stmt, dict(params or {})).scalars())

    def table_names(self) -> set[str]:
        """Tables that exist in the store now."""
        with self.connect() as conn:
            return set(_existing_columns(conn))

    def row_counts(self, names: tuple[str, ...] = schema.DATA_TABLES) -> dict[str, int]:
        """Rows in each of the named tables (0 for a table that does not exist)."""
        present = self.table_names()
        counts = {}
        with self.connect() as conn:
            for name in names:
                if name in present:
                    stmt = sa.select(sa.func.count()).select_from(schema.table(name))
                    counts[name] = int(conn.execute(stmt).scalar())
                else:
                    counts[name] = 0
        return counts

    # --- writes ------------------------------------------------------------------------

    def insert_df(
        self, conn: Connection, table_name: str, frame: pd.DataFrame, *, upsert: bool = False
    ) -> int:
        """Load `frame` into `table_name` inside the caller's transaction; returns rows loaded.

        With `upsert`, rows whose primary key exists replace the stored row.
        """
        if frame.empty:
            return 0
        target = schema.table(table_name)
        cols = [col.name for col in target.columns if col.name in frame.columns]
        if self.is_duckdb:
            staging_name = _STAGING
        else:
            staging_name = _pg_copy_to_staging(conn, target, frame[cols])
        staging = sa.table(staging_name, *[sa.column(c) for c in cols])
        stmt = pg_insert(target).from_select(cols, sa.select(*staging.c))
        if upsert:
            key = schema.primary_key(table_name)
            updates = {c: stmt.excluded[c] for c in cols if c not in key}
            stmt = (
                stmt.on_conflict_do_update(index_elements=key, set_=updates)
                if updates
                else stmt.on_conflict_do_nothing(index_elements=key)
            )
        if self.is_duckdb:
            _duckdb_insert(conn, stmt, staging_name, frame[cols])
            return len(frame)
        conn.execute(stmt)
        # A failed statement aborts the transaction; its rollback drops the table then.
        conn.execute(sa.text(f'DROP TABLE "{staging_name}"'))
        return len(frame)

    def rebuild_table(
        self,
        table: sa.Table,
        select: sa.Select,
        after: Callable[[Connection], None] | None = None,
    ) -> int:
        """Replace every row of a derived table with what `select` returns (its columns in
        the table's order), then run `after` in the same transaction; rows written."""
        with self.begin() as conn:
            lock_tables(conn, table)  # another process may be rebuilding it too
            if not matches_declaration(conn, table):  # an older version's layout
                table.drop(conn)
                table.create(conn)
            else:
                conn.execute(table.delete())
            conn.execute(table.insert().from_select([c.name for c in table.columns], select))
            if after is not None:
                after(conn)
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar())

    # --- schema ------------------------------------------------------------------------

    def init_schema(self) -> list[str]:
        """Create missing tables and columns; migrate an older store. Idempotent.

        Returns what was changed, in words (empty when the store was up to date).
        """
        changes: list[str] = []
        with self.begin() as conn:
            existing = _existing_columns(conn)
            for tbl in schema.metadata.sorted_tables:
                if tbl.name in VIEWS:
                    continue
                if tbl.name not in existing:
                    tbl.create(conn)
                    changes.append(f"created table {tbl.name}")
                    continue
                for col in tbl.columns:
                    if col.name in existing[tbl.name]:
                        continue
                    col_type = col.type.compile(dialect=conn.dialect)
                    ident = conn.dialect.identifier_preparer
                    conn.execute(
                        sa.text(
                            f"ALTER TABLE {ident.quote(tbl.name)} "
                            f"ADD COLUMN {ident.quote(col.name)} {col_type}"
                        )
                    )
                    changes.append(f"added column {tbl.name}.{col.name}")
            changes += _create_views(conn)
            version = conn.execute(
                sa.select(schema.schema_meta.c.value).where(schema.schema_meta.c.key == "version")
            ).scalar()
            if version is None:
                conn.execute(
                    schema.schema_meta.insert().values(
                        key="version", value=str(schema.SCHEMA_VERSION)
                    )
                )
            elif int(version) < schema.SCHEMA_VERSION:
                conn.execute(
                    schema.schema_meta.update()
                    .where(schema.schema_meta.c.key == "version")
                    .values(value=str(schema.SCHEMA_VERSION))
                )
                changes.append(f"schema version {version} -> {schema.SCHEMA_VERSION}")
        return changes

    def require_tables(self, *names: str) -> None:
        """Raise StoreError naming the first missing table (the store was never initialised)."""
        missing = [n for n in names if n not in self.table_names()]
        if missing:
            raise StoreError(
                f"The store has no table {missing[0]!r}. "
                "Run `python -m crm_core init` to create it."
            )

    def dispose(self) -> None:
        """Close every pooled connection (releases DuckDB's file lock)."""
        self.engine.dispose()

    def compact(self) -> tuple[int | None, int | None]:
        """Rewrite the stored data so that deleted and overwritten values are gone from the
        file, not only unreachable by SQL: DuckDB copies the database into a new file and
        replaces the old one (no other process may have it open); PostgreSQL runs VACUUM
        FULL. Bytes before and after (None on PostgreSQL)."""
        if not self.is_duckdb:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM FULL"))
            return None, None
        import duckdb

        path = Path(sa.engine.make_url(self.url).database or "")
        if not path.is_file():
            raise StoreError(f"Cannot compact {path}: it is not a DuckDB file on this machine.")
        self.engine.dispose()
        fresh = path.with_name(path.name + ".compacting")
        fresh.unlink(missing_ok=True)
        before = path.stat().st_size
        try:
            source = duckdb.connect(str(path))  # external access on: ATTACH the new file
        except duckdb.IOException as exc:
            raise StoreError(
                f"Cannot compact {path.name}: another process has it open ({exc}). Stop the "
                "app (and any scheduler) first, then run the command again."
            ) from exc
        try:
            source.execute("CHECKPOINT")
            source.execute(f"ATTACH '{fresh}' AS fresh")  # our own path, not user input
            source.execute(f'COPY FROM DATABASE "{path.stem}" TO fresh')
            source.execute("DETACH fresh")
        finally:
            source.close()
        fresh.replace(path)
        path.with_name(path.name + ".wal").unlink(missing_ok=True)
        return before, path.stat().st_size


VIEWS = ("export_log",)
"""Declared tables that the store keeps as views (export_log: the "export" audit rows)."""

_INFO_TABLES = sa.table(
    "tables",
    sa.column("table_name"),
    sa.column("table_schema"),
    sa.column("table_type"),
    schema="information_schema",
)


def _create_views(conn: Connection) -> list[str]:
    """Create the views of VIEWS; an older store's export_log table becomes audit rows first
    (in export order), then the table is dropped. Returns what changed, in words."""
    from crm_core import audit  # audit appends through this module: imported when needed

    kinds = dict(
        conn.execute(
            sa.select(_INFO_TABLES.c.table_name, _INFO_TABLES.c.table_type).where(
                _INFO_TABLES.c.table_schema == sa.func.current_schema(),
                _INFO_TABLES.c.table_name.in_(VIEWS),
            )
        ).all()
    )
    kind = kinds.get("export_log")
    if kind == "VIEW":
        return []
    changes = []
    if kind is not None:
        moved = audit.migrate_export_log_table(conn)
        changes.append(f"moved {moved} export_log rows into audit_log")
    conn.execute(sa.text(audit.export_log_view_sql(conn.dialect.name)))
    changes.append("created view export_log")
    return changes


def _duckdb_insert(
    conn: Connection, stmt: sa.sql.Executable, staging_name: str, frame: pd.DataFrame
) -> None:
    """Run `stmt` (no parameters) reading `frame` as the table `staging_name`, on the
    caller's DuckDB connection and transaction. Through a relation, not `register`: DuckDB
    keeps memory of every registered frame after `unregister` (a 10M-order import in
    batches grew by 1 GB)."""
    import duckdb

    sql = str(stmt.compile(dialect=conn.dialect))
    try:
        conn.connection.driver_connection.from_df(frame).query(staging_name, sql)
    except duckdb.Error as exc:
        cause: BaseException = exc
        while isinstance(cause, duckdb.TransactionException) and cause.__context__ is not None:
            cause = cause.__context__  # the relation's clean-up failed after the real error
        # Raised as SQLAlchemy raises them from conn.execute (callers catch these).
        error = (
            sa.exc.IntegrityError if isinstance(cause, duckdb.IntegrityError) else sa.exc.DBAPIError
        )
        raise error(sql, None, cause) from exc


def _pg_copy_to_staging(conn: Connection, target: sa.Table, frame: pd.DataFrame) -> str:
    """COPY `frame` into a new temporary table shaped like `target`'s columns; its name.

    The table is private to this connection (concurrent imports cannot collide) and has the
    target's column types, so the INSERT ... SELECT that follows needs no casts.
    """
    name = f"{_STAGING}_{uuid.uuid4().hex[:12]}"
    ident = conn.dialect.identifier_preparer
    columns = ", ".join(ident.quote(c) for c in frame.columns)
    # Identifiers only (quoted names from schema.py), no values: nothing to inject.
    shape = f"SELECT {columns} FROM {ident.quote(target.name)} WITH NO DATA"  # noqa: S608
    conn.execute(sa.text(f'CREATE TEMPORARY TABLE "{name}" ON COMMIT DROP AS {shape}'))
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(f'COPY "{name}" ({columns}) FROM STDIN') as copy:
            for row in zip(*(_python_values(frame[c]) for c in frame.columns), strict=True):
                copy.write_row(row)
    finally:
        cursor.close()
    return name


def _python_values(series: pd.Series) -> list[Any]:
    """A column as plain Python values (None for missing) that any DB driver can adapt."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return [None if pd.isna(v) else v.to_pydatetime() for v in series]
    values = series.astype(object).tolist()
    return [
        None
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)
        else v.item()
        if hasattr(v, "item")
        else v
        for v in values
    ]


def lock_tables(conn: Connection, *tables: sa.Table) -> None:
    """Make other writers of `tables` wait until this transaction ends (readers do not).

    For read-then-write changes (next id = max + 1, replace every row): on PostgreSQL other
    processes may run the same change at once. On DuckDB one process writes, and
    Store.begin's write lock already serialises its threads.
    """
    if conn.dialect.name != "postgresql":
        return
    names = ", ".join(conn.dialect.identifier_preparer.format_table(t) for t in tables)
    conn.execute(sa.text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))


def next_id(conn: Connection, column: sa.Column[Any]) -> int:
    """The next key of `column` (max + 1, 1 if empty); the caller holds its table's lock."""
    stmt = sa.select(sa.func.coalesce(sa.func.max(column), 0))
    return int(conn.execute(stmt).all()[0][0]) + 1  # all(): DuckDB needs the result drained


def live_id(conn: Connection, id_column: sa.Column[Any], name: str) -> int | None:
    """The id of the live (not deleted) versioned row called `name`, case-insensitive.

    For versioned tables (segments, alert_rules): `id_column`'s table has `name` and
    `deleted_at` columns, one row per version.
    """
    table = id_column.table
    return conn.execute(
        sa.select(id_column)
        .where(sa.func.lower(table.c.name) == name.strip().lower())
        .where(table.c.deleted_at.is_(None))
        .group_by(id_column)
    ).scalar()


def next_version(conn: Connection, id_column: sa.Column[Any], row_id: int) -> int | None:
    """The next version number of versioned row `row_id` (latest + 1), or None when it has
    no version or was deleted; the caller holds the table's lock."""
    table = id_column.table
    latest, deleted = conn.execute(
        sa.select(sa.func.max(table.c.version), sa.func.max(table.c.deleted_at)).where(
            id_column == row_id
        )
    ).one()
    if latest is None or deleted is not None:
        return None
    return int(latest) + 1


_INFO_COLUMNS = sa.table(
    "columns",
    sa.column("table_name"),
    sa.column("column_name"),
    sa.column("table_schema"),
    schema="information_schema",
)


def _existing_columns(conn: Connection) -> dict[str, set[str]]:
    """Columns of each table in the current schema (portable: information_schema)."""
    stmt = sa.select(_INFO_COLUMNS.c.table_name, _INFO_COLUMNS.c.column_name).where(
        _INFO_COLUMNS.c.table_schema == sa.func.current_schema()
    )
    tables: dict[str, set[str]] = {}
    for table_name, column_name in conn.execute(stmt):
        tables.setdefault(table_name, set()).add(column_name)
    return tables


_INFO_CONSTRAINTS = sa.table(
    "table_constraints",
    sa.column("table_name"),
    sa.column("table_schema"),
    sa.column("constraint_type"),
    schema="information_schema",
)


def matches_declaration(conn: Connection, table: sa.Table) -> bool:
    """Whether the stored `table` has exactly its declared columns and primary key (or none).

    Derived tables that are rebuilt whole use this to replace an older layout outright.
    """
    c = _INFO_CONSTRAINTS.c
    keyed = sa.select(sa.func.count()).where(
        c.table_schema == sa.func.current_schema(),
        c.table_name == table.name,
        c.constraint_type == "PRIMARY KEY",
    )
    stored = _existing_columns(conn).get(table.name, set())
    declared = {col.name for col in table.columns}
    return stored == declared and bool(conn.execute(keyed).scalar()) == bool(table.primary_key)


_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()


def get_store(url: str | None = None) -> Store:
    """The process-wide Store for `url` (default: the configured store, whose analytics reads
    go to Spark when CRM_ANALYTICS_URL is set)."""
    settings = get_settings()
    analytics = settings.analytics_url if url is None else ""
    url = url or settings.store_url
    key = f"{url} {analytics}"
    with _STORES_LOCK:
        if key not in _STORES:
            if analytics:
                from crm_core import spark  # pyspark loads only when Spark is configured

                _STORES[key] = spark.AnalyticsStore(
                    url, analytics, settings.lake_path, settings.lake_database
                )
            else:
                _STORES[key] = Store(url)
        return _STORES[key]


def close_all() -> None:
    """Dispose every cached store (tests, and before another process takes the file)."""
    with _STORES_LOCK:
        for store in _STORES.values():
            store.dispose()
        _STORES.clear()

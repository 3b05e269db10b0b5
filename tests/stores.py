"""Stores for tests on DuckDB and on PostgreSQL, chosen per test by a marker.

A test (or a module with `pytestmark = pytest.mark.both_stores`) marked `both_stores` runs
once per backend: its `store` and `demo_store` fixtures (and every fixture built on them)
are DuckDB in the `[duckdb]` variant and PostgreSQL in the `[postgresql]` variant, with
the same data, so the same assertions check both. Unmarked tests use DuckDB only.

On PostgreSQL every test gets a schema of its own in the session's throwaway server
(`tests/pg_server.py`), reached through `search_path` in the URL, and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from crm_core.store import Store
from tests.pg_server import PostgresServer, PostgresUnavailable

BACKENDS = ("duckdb", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests marked `both_stores` once per backend (the `backend` fixture's value).

    `CRM_TEST_ALL_STORES=1` does it for every test that uses a store fixture (to try a module
    on PostgreSQL before marking it)."""
    marked = metafunc.definition.get_closest_marker("both_stores") is not None
    if not marked and not os.environ.get("CRM_TEST_ALL_STORES"):
        return
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """`duckdb` or `postgresql`: which store this variant of the test uses."""
    return getattr(request, "param", "duckdb")


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL database the tests may create schemas in (server per session)."""
    mode = os.environ.get("CRM_TEST_PG", "auto")
    if mode == "off":
        pytest.skip("PostgreSQL tests are off (CRM_TEST_PG=off)")
    given = os.environ.get("CRM_TEST_PG_URL")
    if given:
        yield given
        return
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if mode == "require":
            pytest.fail(f"PostgreSQL is required (CRM_TEST_PG=require) but: {exc}")
        pytest.skip(f"no PostgreSQL server for the tests: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


def schema_url(admin_url: str, schema_name: str) -> str:
    """`admin_url` with every connection's search_path set to `schema_name`."""
    url = sa.engine.make_url(admin_url)
    return url.update_query_dict({"options": f"-csearch_path={schema_name}"}).render_as_string(
        hide_password=False
    )


class PgSchemas:
    """Creates and drops the per-test schemas in the session's PostgreSQL database."""

    def __init__(self, admin_url: str) -> None:
        self.engine = sa.create_engine(admin_url, poolclass=sa.pool.NullPool)

    def create(self, prefix: str = "t") -> tuple[str, str]:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {name}"))
        return name, schema_url(str(self.engine.url.render_as_string(False)), name)

    def drop(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))

    def copy(self, source: str, prefix: str = "copy") -> tuple[str, str]:
        """A new schema holding a copy of every table (keys, indexes, rows) of `source`."""
        name, url = self.create(prefix)
        with self.engine.begin() as conn:
            tables = conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = :s AND table_type = 'BASE TABLE'"
                ),
                {"s": source},
            ).scalars()
            for table in tables:
                conn.execute(
                    sa.text(
                        f'CREATE TABLE {name}."{table}" (LIKE {source}."{table}" INCLUDING ALL)'
                    )
                )
                conn.execute(
                    sa.text(f'INSERT INTO {name}."{table}" SELECT * FROM {source}."{table}"')
                )
        copied = Store(url)  # views (export_log) are not copied above: init_schema makes them
        copied.init_schema()
        copied.dispose()
        return name, url


@pytest.fixture(scope="session")
def pg_schemas(pg_admin_url: str) -> Iterator[PgSchemas]:
    """Schema factory on the session's PostgreSQL server."""
    schemas = PgSchemas(pg_admin_url)
    yield schemas
    schemas.engine.dispose()


@pytest.fixture
def pg_store_url(pg_schemas: PgSchemas) -> Iterator[str]:
    """URL of an empty schema of its own on the test PostgreSQL server."""
    name, url = pg_schemas.create()
    yield url
    pg_schemas.drop(name)


@pytest.fixture(scope="session")
def pg_demo_schema(pg_schemas: PgSchemas) -> tuple[str, str]:
    """Name and URL of the session's small demo store, built once on PostgreSQL (read it;
    copy it with `pg_schemas.copy(name)` to write)."""
    from crm_core import demo
    from tests.conftest import DEMO_CUSTOMERS, DEMO_SEED

    name, url = pg_schemas.create("demo")
    store = Store(url)
    store.init_schema()
    demo.create_demo_store(store, customers=DEMO_CUSTOMERS, seed=DEMO_SEED)
    store.dispose()
    return name, url


@pytest.fixture(scope="session")
def pg_demo_store_url(pg_demo_schema: tuple[str, str]) -> str:
    """URL of the session's demo store on PostgreSQL (read it; do not write)."""
    return pg_demo_schema[1]


@pytest.fixture
def pg_demo_copy_url(pg_schemas: PgSchemas, pg_demo_schema: tuple[str, str]) -> Iterator[str]:
    """URL of a private copy of the PostgreSQL demo store, for a test that writes."""
    name, url = pg_schemas.copy(pg_demo_schema[0])
    yield url
    pg_schemas.drop(name)

"""Shared fixtures: a fresh empty store per test and one demo store per session.

Mark a test or module `both_stores` to run it on DuckDB and on PostgreSQL (tests/stores.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from crm_core import schema
from crm_core.store import Store, close_all

pytest_plugins = ["tests.stores"]  # backend, PostgreSQL fixtures, the both_stores hook

TESTS_DIR = Path(__file__).resolve().parent
DEMO_CUSTOMERS = 1_500
DEMO_SEED = 7


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_stores: run once on DuckDB and once on PostgreSQL (tests/stores.py)"
    )
    config.addinivalue_line("markers", "browser: drives the real app in headless Chromium")


@pytest.fixture
def store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, request: pytest.FixtureRequest
) -> Iterator[Store]:
    """An empty store with the full schema: a DuckDB file of its own, or (in the
    `[postgresql]` variant of a `both_stores` test) a PostgreSQL schema of its own."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_store_url")
    else:
        url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    store = Store(url)
    store.init_schema()
    yield store
    store.dispose()
    close_all()


@pytest.fixture(scope="session")
def demo_store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo store built once per test session (read it; copy it to write)."""
    from crm_core import demo

    path = tmp_path_factory.mktemp("demo") / "crm.duckdb"
    store = Store(f"duckdb:///{path}")
    store.init_schema()
    demo.create_demo_store(store, customers=DEMO_CUSTOMERS, seed=DEMO_SEED)
    store.dispose()
    return path


@pytest.fixture
def demo_store(
    demo_store_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, request
) -> Iterator[Store]:
    """The session's demo store, also set as CRM_DATABASE_URL for code that reads settings
    (the same data on PostgreSQL in the `[postgresql]` variant of a `both_stores` test)."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_demo_store_url")
    else:
        url = f"duckdb:///{demo_store_path}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    store = Store(url)
    yield store
    store.dispose()
    close_all()


@pytest.fixture
def demo_copy(
    demo_store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, request
) -> Iterator[Store]:
    """A private copy of the session demo store to write to (a PostgreSQL schema of its own
    in the `[postgresql]` variant), also set as CRM_DATABASE_URL."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_demo_copy_url")
    else:
        path = tmp_path / "crm.duckdb"
        shutil.copy(demo_store_path, path)
        url = f"duckdb:///{path}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    store = Store(url)
    yield store
    store.dispose()
    close_all()


def snapshot(store: Store) -> dict[str, pd.DataFrame]:
    """Every data table's full contents, sorted by key, for before/after comparisons."""
    frames = {}
    for name in schema.IMPORTABLE_TABLES:
        key = schema.primary_key(name)
        frame = store.read_df(schema.table(name).select().order_by(*key))
        frames[name] = frame.reset_index(drop=True)
    return frames

"""Shared fixtures: a fresh empty store per test and one demo store per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from crm_core import schema
from crm_core.store import Store, close_all

TESTS_DIR = Path(__file__).resolve().parent
DEMO_CUSTOMERS = 1_500
DEMO_SEED = 7


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """An empty store with the full schema, in a DuckDB file of its own."""
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
def demo_store(demo_store_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """The session's demo store, also set as CRM_DATABASE_URL for code that reads settings."""
    url = f"duckdb:///{demo_store_path}"
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

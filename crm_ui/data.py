"""Cached access to the store for pages: one Store per process, query results per filter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import pandas as pd
import streamlit as st

from crm_core import features, metrics, schema
from crm_core.analytics import cohorts
from crm_core.filters import Filters, default_filters, filter_options
from crm_core.store import Store, get_store

P = ParamSpec("P")
R = TypeVar("R")
KNOWN_TABLES = frozenset(schema.metadata.tables)


@st.cache_resource(show_spinner=False)
def store() -> Store:
    """The configured store, its schema created or migrated once per process."""
    opened = get_store()
    opened.init_schema()
    return opened


_READERS: dict[str, list[Any]] = {}
"""Cached functions by the store table they read (filled by `reads`)."""


def reads(*tables: str, **cache_options: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """st.cache_data for a function whose result comes from `tables` of the store: a write
    to any of them (tables_changed) forgets it, and a write elsewhere leaves it cached."""
    unknown = set(tables) - KNOWN_TABLES
    if unknown:
        raise ValueError(f"unknown tables {sorted(unknown)}; known: {sorted(KNOWN_TABLES)}")

    def register(func: Callable[P, R]) -> Callable[P, R]:
        cached = st.cache_data(**cache_options)(func)
        for table in tables:
            _READERS.setdefault(table, []).append(cached)
        return cached

    return register


def tables_changed(*tables: str) -> None:
    """Forget every cached result that reads one of `tables` (after an import, a scoring
    run, a segment save, an export...); a write to a source of customer_360 also forgets
    what reads the 360 table.

    Cheap enough under load: Streamlit computes a missing entry once per key while other
    sessions wait for it (one model fit per setting, not one per reader), and a result that
    was computed from the store before the write is discarded instead of cached.
    """
    changed = set(tables)
    if changed & features.SOURCE_TABLES:
        changed.add("customer_360")
    forgotten: set[int] = set()
    for table in changed:
        for cached in _READERS.get(table, ()):
            if id(cached) not in forgotten:
                cached.clear()
                forgotten.add(id(cached))


@reads("orders", show_spinner=False, ttl=600)
def defaults() -> Filters | None:
    """Default filters: the last 12 months up to the last order."""
    return default_filters(store())


@reads("customers", "orders", show_spinner=False, ttl=600)
def options() -> dict[str, list[str]]:
    """Countries and channels to filter by."""
    return filter_options(store())


@reads("orders", "customers", "survey_responses", show_spinner="Computing KPIs...", ttl=600)
def kpis(filters: Filters) -> dict[str, metrics.KPIValue]:
    """Every KPI for the period and the previous one."""
    return metrics.compute_kpis(store(), filters)


@reads("orders", "customers", show_spinner=False, ttl=600)
def revenue_trend(filters: Filters) -> pd.DataFrame:
    """Revenue and active customers per day, week or month of the period."""
    return metrics.revenue_trend(store(), filters)


@reads("orders", "customers", show_spinner="Computing cohorts...", ttl=600)
def cohort_retention(filters: Filters) -> pd.DataFrame:
    """Monthly cohort retention grid."""
    return cohorts.cohort_retention(store(), filters)


@reads(*schema.IMPORTABLE_TABLES, show_spinner=False, ttl=60)
def row_counts() -> dict[str, int]:
    """Rows per data table."""
    return store().row_counts()

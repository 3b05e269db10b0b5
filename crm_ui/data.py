"""Cached access to the store for pages: one Store per process, query results per filter."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from crm_core import metrics
from crm_core.analytics import cohorts
from crm_core.filters import Filters, default_filters, filter_options
from crm_core.store import Store, get_store


@st.cache_resource(show_spinner=False)
def store() -> Store:
    """The configured store, its schema created or migrated once per process."""
    opened = get_store()
    opened.init_schema()
    return opened


def clear_caches() -> None:
    """Forget cached query results (after an import or any other write)."""
    st.cache_data.clear()


@st.cache_data(show_spinner=False, ttl=600)
def defaults() -> Filters | None:
    """Default filters: the last 12 months up to the last order."""
    return default_filters(store())


@st.cache_data(show_spinner=False, ttl=600)
def options() -> dict[str, list[str]]:
    """Countries and channels to filter by."""
    return filter_options(store())


@st.cache_data(show_spinner="Computing KPIs...", ttl=600)
def kpis(filters: Filters) -> dict[str, metrics.KPIValue]:
    """Every KPI for the period and the previous one."""
    return metrics.compute_kpis(store(), filters)


@st.cache_data(show_spinner=False, ttl=600)
def monthly_trend(filters: Filters) -> pd.DataFrame:
    """Revenue and active customers per month."""
    return metrics.monthly_trend(store(), filters)


@st.cache_data(show_spinner="Computing cohorts...", ttl=600)
def cohort_retention(filters: Filters) -> pd.DataFrame:
    """Monthly cohort retention grid."""
    return cohorts.cohort_retention(store(), filters)


@st.cache_data(show_spinner=False, ttl=60)
def row_counts() -> dict[str, int]:
    """Rows per data table."""
    return store().row_counts()

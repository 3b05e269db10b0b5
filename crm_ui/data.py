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
    """Forget every cached result after an import: each view and model derives from the
    imported tables, so all of them must be recomputed on the new data.

    Cheap enough under load: Streamlit computes a missing entry once per key while other
    sessions wait for it (one model fit per setting, not one per reader), and a result that
    was computed from the store before the import is discarded instead of cached.
    """
    st.cache_data.clear()


def scores_changed() -> None:
    """Forget only what reads customer_scores (or the 360 table built from it) after a
    scoring run; KPIs, trends and the CLV and churn model fits stay cached."""
    from crm_ui import insight_ui, segment_ui  # they import this module

    for cached in (
        segment_ui.ensure_360,
        segment_ui.preview,
        segment_ui.cluster_features,
        segment_ui.choose_k,
        segment_ui.clusters,
        insight_ui.customer_profile,
        insight_ui.customer_segments,
    ):
        cached.clear()


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
def revenue_trend(filters: Filters) -> pd.DataFrame:
    """Revenue and active customers per day, week or month of the period."""
    return metrics.revenue_trend(store(), filters)


@st.cache_data(show_spinner="Computing cohorts...", ttl=600)
def cohort_retention(filters: Filters) -> pd.DataFrame:
    """Monthly cohort retention grid."""
    return cohorts.cohort_retention(store(), filters)


@st.cache_data(show_spinner=False, ttl=60)
def row_counts() -> dict[str, int]:
    """Rows per data table."""
    return store().row_counts()

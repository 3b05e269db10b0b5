"""The shared sidebar filters (date range, country, channel) that every view honours."""

from __future__ import annotations

from datetime import date

import streamlit as st

from crm_core.filters import Filters
from crm_ui import data

_KEY = "crm_filters"


def sidebar_filters() -> Filters | None:
    """Draw the filters in the sidebar and remember the choice for the pages."""
    defaults = data.defaults()
    if defaults is None:
        st.session_state.pop(_KEY, None)
        return None
    opts = data.options()
    first_day = date(defaults.start.year - 10, 1, 1)
    with st.sidebar:
        st.subheader("Filters")
        picked = st.date_input(
            "Period",
            value=(defaults.start, defaults.end),
            min_value=first_day,
            max_value=defaults.end,
            key="filter_period",
            help="Days included in every figure. Changes compare against the period of "
            "equal length just before it. Default: the 12 months up to the last order.",
        )
        countries = st.multiselect(
            "Country",
            opts["countries"],
            key="filter_countries",
            placeholder="All countries",
            help="Keep only customers from these countries (empty = all).",
        )
        channels = st.multiselect(
            "Sales channel",
            opts["channels"],
            key="filter_channels",
            placeholder="All channels",
            help="Keep only orders placed through these channels; customer figures keep "
            "customers who bought through them (empty = all).",
        )
    start, end = (picked[0], picked[-1]) if picked else (defaults.start, defaults.end)
    filters = Filters(start=start, end=end, countries=tuple(countries), channels=tuple(channels))
    st.session_state[_KEY] = filters
    return filters


def current_filters() -> Filters | None:
    """The filters chosen in the sidebar (None when the store has no orders)."""
    return st.session_state.get(_KEY)

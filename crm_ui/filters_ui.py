"""The shared sidebar filters (period, comparison, country, channel) that every view honours."""

from __future__ import annotations

from datetime import date

import streamlit as st

from crm_core.filters import (
    COMPARISONS,
    DEFAULT_PRESET,
    PRESETS,
    Filters,
    freshness,
    plural,
    preset_range,
)
from crm_ui import data

_KEY = "crm_filters"
CUSTOM = "custom"


def sidebar_filters() -> Filters | None:
    """Draw the filters in the sidebar and remember the choice for the pages."""
    defaults = data.defaults()
    if defaults is None:
        st.session_state.pop(_KEY, None)
        return None
    opts = data.options()
    last_day = defaults.end
    with st.sidebar:
        st.subheader("Filters")
        st.caption(freshness(last_day, date.today()))
        preset = st.selectbox(
            "Period",
            [*PRESETS, CUSTOM],
            index=list(PRESETS).index(DEFAULT_PRESET),
            format_func=lambda p: PRESETS.get(p, "Custom dates"),
            key="filter_preset",
            help="Days included in every figure. Presets count back from the last day with "
            "data (above), not from today, so an older store still shows whole periods.",
        )
        if preset == CUSTOM:
            picked = st.date_input(
                "From – to",
                value=(last_day.replace(day=1), last_day),
                min_value=date(last_day.year - 10, 1, 1),
                max_value=last_day,
                key="filter_dates",
                help="First and last day, both included.",
            )
            start, end = (
                (picked[0], picked[-1]) if picked else preset_range(DEFAULT_PRESET, last_day)
            )
        else:
            start, end = preset_range(preset, last_day)
        compare = st.selectbox(
            "Compare with",
            list(COMPARISONS),
            format_func=COMPARISONS.get,
            key="filter_compare",
            help="What the changes on the KPI cards are measured against. Previous period: "
            "the month, quarter or year before for those presets (to the same day for "
            "'to date'), else the days of equal length just before.",
        )
        days = (end - start).days + 1
        st.caption(f"{start:%d %b %Y} – {end:%d %b %Y} ({plural(days, 'day')})")
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
    filters = Filters(
        start=start,
        end=end,
        countries=tuple(countries),
        channels=tuple(channels),
        compare=compare,
        preset=None if preset == CUSTOM else preset,
    )
    st.session_state[_KEY] = filters
    return filters


def current_filters() -> Filters | None:
    """The filters chosen in the sidebar (None when the store has no orders)."""
    return st.session_state.get(_KEY)

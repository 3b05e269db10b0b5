"""Funnels: web/app event funnels by customer, and the lead lifecycle funnel."""

import streamlit as st

from crm_core.analytics import funnels
from crm_core.errors import CRMError
from crm_core.schema import EVENT_TYPES
from crm_ui import auth_ui, filters_ui, insight_charts, insight_ui, segment_ui, widgets

auth_ui.require_view("funnels")
st.title("Funnels")
widgets.filter_note("funnels")

filters = filters_ui.current_filters()
if filters is None:
    st.info("No data yet: import `events` (and `leads`) on the Data import page.")
    st.stop()

events_tab, leads_tab = st.tabs(["Event funnel", "Lead lifecycle"])
with events_tab:
    steps = st.multiselect(
        "Steps, in order",
        EVENT_TYPES,
        default=list(funnels.DEFAULT_STEPS),
        max_selections=funnels.MAX_STEPS,
        help="Pick 2 to 10 event types in the order customers should do them.",
    )
    left, right, third = st.columns(3)
    order = left.radio(
        "Step order",
        funnels.ORDERS,
        horizontal=True,
        help="strict: each step after the previous one; any: in any order after entering.",
    )
    window = right.number_input(
        "Conversion window (days)",
        1,
        90,
        7,
        help="Every step must happen within this many days after the customer's first step.",
    )
    by = third.selectbox(
        "Break down by",
        funnels.FUNNEL_BREAKDOWNS,
        help="channel: where the customer entered; country: the customer's country; "
        "RFM segment: the customer's segment today.",
    )
    try:
        result = insight_ui.event_funnel(filters, tuple(steps), order, int(window))
    except CRMError as exc:
        st.error(str(exc))
        st.stop()
    if not result.steps["customers"].iloc[0]:
        st.info(f"No customer did '{steps[0]}' in this period. Widen the period or import events.")
        st.stop()
    overall = result.overall_conversion
    st.metric("Overall conversion", f"{overall:.1%}", help="Entrants who reached the last step.")
    widgets.chart_with_download(
        insight_charts.funnel(result.steps),
        result.steps,
        "funnel_steps.csv",
        "Download step table (CSV)",
    )
    st.dataframe(
        result.steps,
        hide_index=True,
        column_config={
            "conversion_from_start": st.column_config.NumberColumn(format="percent"),
            "conversion_from_previous": st.column_config.NumberColumn(format="percent"),
            "median_minutes_from_previous": st.column_config.NumberColumn(
                "median time from previous step", format="%.1f min"
            ),
        },
    )
    drop_step = st.selectbox(
        "Customers who dropped after step",
        list(range(1, len(steps))),
        format_func=lambda i: f"{i}. {steps[i - 1]} (did not do {steps[i]})",
        help="These customers entered the funnel and stopped here.",
    )
    dropped = result.dropped_at(drop_step)
    st.caption(f"{len(dropped):,} customers dropped after step {drop_step}.")
    segment_ui.save_as_segment(
        {"match": "all", "rules": [{"field": "customer_id", "op": "in", "value": dropped}]},
        f"Dropped after {steps[drop_step - 1]}",
        f"Entered the funnel {' > '.join(steps)} and stopped after {steps[drop_step - 1]}.",
        key="save_dropped",
    )
    left, right = st.columns(2)
    with left:
        st.markdown(f"**By {by}**")
        st.dataframe(
            insight_ui.funnel_breakdown(filters, tuple(steps), order, int(window), by),
            hide_index=True,
            column_config={"conversion": st.column_config.NumberColumn(format="percent")},
        )
    right.plotly_chart(insight_charts.conversion_trend(funnels.funnel_trend(result)))
    with st.expander("Show SQL"):
        st.code(result.sql, language="sql")

with leads_tab:
    stages, ages, sources = insight_ui.lead_views(filters)
    if not stages["leads"].iloc[0]:
        st.info("No leads created in this period. Import the `leads` table.")
    else:
        left, right = st.columns(2)
        left.plotly_chart(insight_charts.lead_funnel(stages))
        right.markdown("**Open leads: time in their current stage**")
        right.dataframe(
            ages,
            hide_index=True,
            column_config={"median_days_in_stage": st.column_config.NumberColumn(format="%.0f d")},
        )
        st.markdown("**Win rate and deal value by source**")
        st.dataframe(
            sources,
            hide_index=True,
            column_config={
                "win_rate": st.column_config.NumberColumn("win rate", format="percent"),
                "won_value": st.column_config.NumberColumn("won value", format="dollar"),
                "avg_deal": st.column_config.NumberColumn("average won deal", format="dollar"),
            },
        )

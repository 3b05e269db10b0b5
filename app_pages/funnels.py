"""Funnels: web/app event funnels by customer, and the lead lifecycle funnel."""

import streamlit as st

from crm_core import display, glossary, summaries
from crm_core.analytics import funnels
from crm_core.errors import CRMError
from crm_core.figures import insight_charts
from crm_core.schema import EVENT_TYPES
from crm_ui import auth_ui, drill_ui, filters_ui, insight_ui, lead_ui, pins, plain, tables, widgets

auth_ui.require_view("funnels")
st.title("Funnels")
widgets.filter_note("funnels")

filters = filters_ui.current_filters()
if filters is None:
    st.info("No data yet: import `events` (and `leads`) on the Data import page.")
    st.stop()


def event_funnel_tab() -> None:
    """The event funnel; returns early (the lead tab still draws) when there is nothing."""
    steps = st.multiselect(
        "Steps, in order",
        EVENT_TYPES,
        default=list(funnels.DEFAULT_STEPS),
        max_selections=funnels.MAX_STEPS,
        format_func=display.humanise,
        help="Pick 2 to 10 event types in the order customers should do them.",
    )
    left, right, third = st.columns(3)
    order = left.radio(
        "Step order",
        funnels.ORDERS,
        horizontal=True,
        format_func=display.humanise,
        help="Strict: each step after the previous one; Any: in any order after entering.",
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
        format_func=display.humanise,
        help="Channel: where the customer entered; Country: the customer's country; "
        "RFM segment: the customer's segment today.",
    )
    try:
        result = insight_ui.event_funnel(filters, tuple(steps), order, int(window))
    except CRMError as exc:
        st.error(str(exc))
        return
    if not result.steps["customers"].iloc[0]:
        st.info(f"No customer did '{steps[0]}' in this period. Widen the period or import events.")
        return
    plain.summary(summaries.funnel(result.steps, int(window)))
    overall = result.overall_conversion
    st.metric("Overall conversion", f"{overall:.1%}", help=glossary.help_for("funnel_conversion"))
    drill_ui.funnel(
        insight_charts.funnel(result.steps),
        result,
        order,
        int(window),
        filters,
        (result.steps, "funnel_steps.csv", "Download step table (CSV)"),
    )
    pins.pin_button(
        "funnels", "event_funnel", {"steps": steps, "order": order, "window_days": int(window)}
    )
    tables.show_table(
        result.steps,
        column_config={
            "median_minutes_from_previous": st.column_config.NumberColumn(format="%.1f")
        },
    )
    left, right = st.columns(2)
    with left:
        st.markdown(f"**By {by}**")
        breakdown = insight_ui.funnel_breakdown(filters, tuple(steps), order, int(window), by)
        first = [by, "conversion"]
        tables.show_table(
            breakdown, column_order=[*first, *(c for c in breakdown.columns if c not in first)]
        )
    right.plotly_chart(insight_charts.conversion_trend(funnels.funnel_trend(result)))
    with st.expander("Show SQL"):
        st.code(result.sql, language="sql")


events_tab, leads_tab = st.tabs(["Event funnel", "Lead lifecycle"])
with events_tab:
    event_funnel_tab()
with leads_tab:
    stages, ages, sources = insight_ui.lead_views(filters)
    plain.summary(summaries.leads(stages, sources), "leads")
    if not stages["leads"].iloc[0]:
        st.info("No leads created in this period. Import the `leads` table.")
    else:
        row = st.container(horizontal=True)  # side by side when both fit, else stacked
        row.container(key="wrap_lead_funnel").plotly_chart(insight_charts.lead_funnel(stages))
        with row.container(key="wrap_lead_ages"):
            st.markdown("**Open leads: time in their current stage**")
            tables.show_table(ages)
        st.markdown("**Win rate and deal value by source**")
        tables.show_table(sources)
    st.divider()
    lead_ui.show_lead_scores()

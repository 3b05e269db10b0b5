"""KPI overview for managers: headline KPIs against the previous period, trend, cohorts."""

import streamlit as st

from crm_core import glossary, summaries
from crm_core.figures import charts
from crm_core.filters import COMPARISONS, plural
from crm_core.metrics import format_change, format_value
from crm_ui import auth_ui, data, drill_ui, filters_ui, pins, plain, widgets

SHORT_PERIOD_DAYS = 28
ADVERB = {"day": "daily", "week": "weekly", "month": "monthly"}

auth_ui.require_view("overview")
st.title("KPI overview")
widgets.filter_note("overview")

filters = filters_ui.current_filters()
if filters is None:
    st.info(
        "No orders in the store yet. An admin can import `customers` and `orders` on the "
        "Data import page, or run `python -m crm_core import orders FILE`."
    )
    st.stop()

compared = filters.comparison()
st.caption(
    f"{filters.start:%d %b %Y} – {filters.end:%d %b %Y} ({plural(filters.days, 'day')}), "
    f"compared with the {COMPARISONS[filters.compare].lower()}, "
    f"{compared.start:%d %b %Y} – {compared.end:%d %b %Y}."
)

kpis = data.kpis(filters)
plain.summary(summaries.overview(kpis, f"the {COMPARISONS[filters.compare].lower()}"))
for row in (list(kpis.values())[:5], list(kpis.values())[5:]):
    # A row of cards that wraps onto more lines on a narrow screen, each card at least as wide
    # as its label and figure (st.columns squeezed them to "R… $… +…" at 800 px).
    cards = st.container(horizontal=True)
    for kpi in row:
        column = cards.container()
        help_text = glossary.kpi_help(kpi.metric.name)
        if kpi.metric.name in ("nps", "csat") and kpi.value is None:
            help_text += " No answers in the period: import `survey_responses`."
        column.metric(
            kpi.metric.label,
            format_value(kpi.metric, kpi.value),
            delta=format_change(kpi),
            delta_color="normal" if kpi.metric.higher_is_better else "inverse",
            help=help_text,
            border=True,
        )

pins.pin_kpis("overview", list(kpis))

if filters.days < SHORT_PERIOD_DAYS:
    st.caption(
        f"A short period: retention and churn rates compare with the {plural(filters.days, 'day')} "
        "before, so they mostly show how rarely a customer buys in so few days; NPS and CSAT "
        "rest on few answers (see their count on the NPS & CSAT page)."
    )

trend = data.revenue_trend(filters)
grain = trend["grain"].iloc[0]
st.subheader(f"Revenue and active customers by {grain}")
if not trend["orders"].any():
    st.info("No completed orders in this period and filter.")
else:
    if trend["partial"].any():
        st.caption(
            f"Lighter bars: a {grain} the period covers only in part, so it is not comparable "
            f"with a whole {grain}."
        )
    drill_ui.revenue_trend(
        charts.revenue_active_trend(trend),
        trend,
        filters,
        (
            trend.drop(columns=["grain"]),
            f"{ADVERB[grain]}_trend_{filters.start}_{filters.end}.csv",
            f"Download {ADVERB[grain]} figures (CSV)",
        ),
    )
    pins.pin_button("overview", "revenue_trend")

st.subheader("Cohort retention")
st.caption(
    "Each row is the customers whose first purchase fell in that month and in the period "
    "(together, the New customers above); each cell is the share of them who bought again "
    "N months later. A cohort month the period covers only in part is marked (partial)."
)
grid = data.cohort_retention(filters)
if grid.empty:
    st.info("No first purchases in this period and filter.")
else:
    drill_ui.cohort_grid(
        charts.cohort_heatmap(grid),
        grid,
        filters,
        (
            grid.reset_index(),
            f"cohort_retention_{filters.start}_{filters.end}.csv",
            "Download cohort table (CSV)",
        ),
    )
    pins.pin_button("overview", "cohort_retention")

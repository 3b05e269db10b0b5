"""NPS and CSAT: scores with intervals, trend, breakdowns, verbatims and the value at stake."""

import streamlit as st

from crm_core import display, glossary, summaries
from crm_core.analytics import surveys
from crm_core.figures import insight_charts
from crm_core.privacy import may_see_pii
from crm_ui import (
    auth_ui,
    drill_ui,
    filters_ui,
    insight_ui,
    pins,
    plain,
    segment_ui,
    tables,
    widgets,
)

user = auth_ui.require_view("surveys")
st.title("NPS and CSAT")
widgets.filter_note("surveys")

filters = filters_ui.current_filters()
if filters is None or not insight_ui.has_surveys():
    st.info(
        "No survey answers yet. An admin can import the `survey_responses` table on the Data "
        "import page (columns: response_id, customer_id, answered_at, survey, score, ...)."
    )
    st.stop()

scores = insight_ui.survey_summary(filters)
nps, csat = scores["nps"], scores["csat"]
by_bucket, value = insight_ui.survey_value(filters)
plain.summary(summaries.surveys(nps, csat, value, by_bucket, surveys.MIN_RESPONSES))
cards = st.container(horizontal=True)  # cards wrap on a narrow screen (crm_ui/style.py)
left, middle, right = (cards.container() for _ in range(3))
left.metric(
    "NPS",
    "n/a" if nps.value is None else f"{nps.value:.1f}",
    help=glossary.help_for("nps"),
    border=True,
)
if nps.value is not None:
    left.caption(f"95% interval {nps.low:.1f} to {nps.high:.1f} · {nps.responses:,} answers")
middle.metric(
    "CSAT",
    "n/a" if csat.value is None else f"{100 * csat.value:.1f}%",
    help=glossary.help_for("csat"),
    border=True,
)
if csat.value is not None:
    middle.caption(
        f"95% interval {100 * csat.low:.1f}% to {100 * csat.high:.1f}% · {csat.responses:,} answers"
    )
right.metric(
    "Revenue at risk from detractors",
    "n/a" if value["revenue_at_risk"] is None else f"${value['revenue_at_risk']:,.0f}",
    help="The value of customers whose latest NPS answer in the period was 0-6, "
    f"measured as {value['basis'] or 'value'}.",
    border=True,
)
if min(nps.responses, csat.responses) < surveys.MIN_RESPONSES:
    st.warning(
        f"Fewer than {surveys.MIN_RESPONSES} answers for a score in this period: its interval "
        "is wide, so read it with care or widen the period."
    )

trend_tab, breakdown_tab, distribution_tab, verbatim_tab, value_tab = st.tabs(
    ["Trend", "Breakdown", "Distribution", "Verbatims", "Value"]
)
with trend_tab:
    trend = insight_ui.survey_trend(filters)
    left, right = st.columns(2)
    with left:
        widgets.chart_with_download(
            insight_charts.score_trend(trend, "nps", "NPS by month"),
            trend,
            "survey_trend.csv",
            "Download monthly scores (CSV)",
        )
        pins.pin_button("surveys", "nps_trend")
    right.plotly_chart(insight_charts.score_trend(trend, "csat", "CSAT by month"))

with breakdown_tab:
    by = st.selectbox(
        "Break down by",
        list(surveys.BREAKDOWNS),
        help="touchpoint: where the survey was asked; country and acquisition channel: the "
        "customer's; RFM segment: the customer's segment today (see Segmentation).",
    )
    table = insight_ui.survey_breakdown(filters, by)
    row = st.container(horizontal=True)  # side by side where both fit (crm_ui/style.py)
    with row.container(key="wrap_nps_breakdown"):
        group = drill_ui.nps_breakdown(
            insight_charts.score_breakdown(table, by, "nps", f"NPS by {by}"),
            table,
            by,
            filters,
            (table, f"scores_by_{by.replace(' ', '_')}.csv", "Download breakdown (CSV)"),
        )
    row.container(key="wrap_csat_breakdown").plotly_chart(
        insight_charts.score_breakdown(table, by, "csat", f"CSAT by {by}")
    )
    drill_ui.nps_panel(group, table, by, filters)

with distribution_tab:
    dist = insight_ui.score_distribution(filters)
    left, right = st.columns(2)
    left.plotly_chart(insight_charts.score_distribution(dist, "nps"))
    right.plotly_chart(insight_charts.score_distribution(dist, "csat"))

with verbatim_tab:
    comments = insight_ui.verbatims(filters)
    terms = insight_ui.distinguishing_terms(filters)
    if not terms.empty:
        st.plotly_chart(insight_charts.terms(terms))
    buckets = st.multiselect(
        "Show answers from",
        ["detractor", "passive", "promoter"],
        default=["detractor"],
        format_func=lambda bucket: display.value_label("bucket", bucket),
        help="Detractors scored 0-6, passives 7-8, promoters 9-10.",
    )
    shown = comments[comments["bucket"].isin(buckets)]
    if may_see_pii(user.role):
        contains = st.text_input("Comment contains", help="Case-insensitive text search.")
        if contains:
            shown = shown[shown["comment"].str.contains(contains, case=False, regex=False)]
        st.caption(f"{len(shown):,} of {len(comments):,} comments")
        tables.show_table(shown)
    else:
        st.info(
            f"{len(shown):,} of {len(comments):,} answers with a comment. Comments are personal "
            f"data (they can name people), so your role ({user.role}) sees the words that set "
            "detractors apart above, not the comments, as on the Customer 360 profile."
        )

with value_tab:
    if value["weighted_nps"] is None:
        st.info("No NPS answers from customers with a known value in this period.")
    else:
        st.markdown(
            f"**NPS weighted by {value['basis']}:** {value['weighted_nps']:.1f} "
            f"(unweighted {nps.value:.1f}). A gap means your most valuable customers feel "
            "differently from the rest."
        )
    st.markdown(f"**{value['detractors']:,} detractors** (latest NPS answer 0-6)")
    segment_ui.save_as_segment(
        {"match": "all", "rules": [{"field": "nps_latest", "op": "lte", "value": 6}]},
        "NPS detractors",
        "Customers whose latest NPS answer is 0-6, saved from the NPS & CSAT view.",
        key="save_detractors",
    )
    if by_bucket.empty:
        st.info("No answers old enough to tell who bought again (90 days after answering).")
    else:
        st.caption(
            "Share of respondents with no purchase in the 90 days after answering (observed, "
            "like the churn rate KPI; not the churn risk model). Only answers given at least "
            "90 days before the period's last day count here, so that those 90 days have "
            f"passed: {int(by_bucket['respondents'].sum()):,} respondents, fewer than all "
            "the detractors, passives and promoters above."
        )
        tables.show_table(by_bucket, column_config={"churn_rate": "No purchase within 90 days"})

"""Campaign ROI: attributed revenue per campaign next to incrementality from control groups."""

import streamlit as st

from crm_core import glossary, summaries
from crm_core.analytics.campaigns import ATTRIBUTION_MODELS, DEFAULT_MODEL, ROI_COLUMNS, roi_totals
from crm_core.figures import insight_charts
from crm_ui import auth_ui, drill_ui, filters_ui, insight_ui, pins, plain, tables, widgets

auth_ui.require_view("campaigns")
st.title("Campaign ROI")
widgets.filter_note("campaigns")
st.caption(
    "Spend in a slice = each campaign's spend x the slice's share of its contacts (for paid "
    "campaigns without contacts: of the customers they reached), so the country slices add "
    "up to the total. Not prorated to the period: a campaign that overlaps it counts with its "
    "whole spend, because its orders follow it by up to the lookback window."
)

filters = filters_ui.current_filters()
if filters is None:
    st.info("No orders yet: import `orders` and `campaigns` on the Data import page.")
    st.stop()

left, right = st.columns(2)
model = left.selectbox(
    "Attribution model",
    list(ATTRIBUTION_MODELS),
    index=list(ATTRIBUTION_MODELS).index(DEFAULT_MODEL),
    format_func=lambda m: m.replace("_", " "),
    help="\n".join(f"- {text}" for text, _ in ATTRIBUTION_MODELS.values()),
)
lookback = right.slider(
    "Lookback window (days)",
    1,
    90,
    30,
    help="A campaign touch (send, open, click, tagged visit) counts for an order only if it "
    "happened this many days before the order or less.",
)

roi = insight_ui.campaign_roi(filters, model, lookback)
if roi.empty:
    st.info("No campaigns ran in this period. Import `campaigns` and `campaign_contacts`.")
    st.stop()

totals = roi_totals(roi)
outcome_days = st.session_state.get("outcome_window", 30)  # the slider below
plain.summary(
    summaries.campaigns(roi, totals, model, insight_ui.incrementality(filters, outcome_days))
)
sliced = bool(filters.countries or filters.channels)
cards = st.container(horizontal=True)  # cards wrap on a narrow screen (crm_ui/style.py)
cols = [cards.container() for _ in range(4)]
cols[0].metric("Spend", f"${totals['spend']:,.0f}", help="Spend in the filter.", border=True)
cols[1].metric("Attributed revenue", f"${totals['revenue']:,.0f}", border=True)
cols[2].metric(
    "ROI",
    "n/a" if totals["roi"] is None else f"{totals['roi']:.0%}",
    help=glossary.help_for("roi"),
    border=True,
)
cols[3].metric("Conversions", f"{totals['conversions']:,.0f}", border=True)
if totals["unplaced_campaigns"]:
    st.caption(
        f"{totals['unplaced_campaigns']} campaign(s) with ${totals['unplaced_spend']:,.0f} of "
        "spend have no contacts and reached no known customer, so their spend cannot be placed "
        "in a country or channel: it counts only without those filters (no revenue is "
        "attributed to them either)."
    )

drill_ui.campaign_roi(
    insight_charts.roi_bars(roi),
    roi,
    filters,
    (roi, f"campaign_roi_{model}.csv", "Download campaign table (CSV)"),
)
pins.pin_button("campaigns", "campaign_roi", {"model": model, "lookback_days": lookback})
tables.show_table(
    roi,
    column_order=[
        c
        for c in ROI_COLUMNS
        if c not in ("campaign_id", "started_at", "spend_basis")
        and (sliced or c not in ("total_spend", "spend_share"))
    ],
    column_config={
        "name": "Campaign",
        "spend": "Spend in filter" if sliced else "Spend",
        "revenue": "Attributed revenue",
    },
)

st.subheader("Incrementality")
st.caption(
    "Campaigns that overlap the period and held out a random control group: what treatment "
    "customers did beyond what they would have done anyway, counting only contacts in the "
    "selected countries and channels (and, under a channel filter, orders through it). "
    "Outcomes may fall after the period's end. Lift intervals are Newcombe's score "
    "intervals, honest for small or all-zero control groups. Attributed ROI credits every "
    "order after a touch; incremental ROI credits only the difference against control, "
    "against the same spend in the filter."
)
window = st.slider(
    "Outcome window after sending (days)",
    7,
    90,
    30,
    key="outcome_window",
    help="Orders this many days after the message count as the outcome, for both groups.",
)
lift = insight_ui.incrementality(filters, window)
if lift.empty:
    st.info(
        "No campaign in this period has a control group with customers in the selected "
        "countries and channels (campaign_contacts.test_group)."
    )
    st.stop()
compare = lift.merge(roi[["campaign_id", "roi"]], on="campaign_id", how="left")
early = compare[~compare["outcome_complete"]]
if not early.empty:
    st.warning(
        f"{len(early)} campaign(s) were sent less than {window} days before the last day with "
        "data, so their outcome is still coming in and their lift is provisional: "
        + ", ".join(f"{r.name} ({r.outcome_days_observed} days seen)" for r in early.itertuples())
        + "."
    )
st.plotly_chart(insight_charts.lift_chart(compare))
tables.show_table(
    compare,
    column_order=[
        "name",
        "channel",
        "treatment_customers",
        "control_customers",
        "conversion_treatment",
        "conversion_control",
        "lift",
        "lift_low",
        "lift_high",
        "incremental_revenue",
        "incremental_roi",
        "roi",
        "outcome_days_observed",
    ],
    column_config={"name": "Campaign", "roi": "Attributed ROI"},
)

"""Customer 360: find a customer and see everything about them (PII masked by role)."""

import pandas as pd
import streamlit as st

from crm_core import profile
from crm_core.errors import CRMError
from crm_core.privacy import may_see_pii
from crm_ui import auth_ui, insight_charts, insight_ui, widgets

user = auth_ui.require_view("customer_360")
st.title("Customer 360")
widgets.filter_note("customer_360")

sees_pii = may_see_pii(user.role)
query = st.text_input(
    "Find a customer",
    placeholder="Name, e-mail, phone or customer id" if sees_pii else "Customer id",
    help="Matches any part of the name, e-mail or phone (any case), or the exact customer id."
    if sees_pii
    else "Your role sees no personal data, so it finds customers by their id only; names, "
    "e-mails and phones are masked.",
)
if not query:
    st.info(
        "Type a name, an e-mail, a phone number or a customer id to open a profile."
        if sees_pii
        else "Type a customer id to open a profile (ids are in segment samples and exports)."
    )
    st.stop()

try:
    shown = insight_ui.search_customers(query, user.role)
except CRMError as exc:
    st.error(str(exc))
    st.stop()
if shown.empty:
    st.warning(f"No customer matches {query!r}.")
    st.stop()
labels = {
    int(row.customer_id): f"#{row.customer_id} {row.first_name or ''} {row.last_name or ''} "
    f"({row.email or 'no e-mail'}, {row.country or '?'})"
    for row in shown.itertuples()
}
customer_id = st.selectbox(
    f"{len(shown)} match(es)", list(labels), format_func=labels.get, key="profile_pick"
)
person, history = insight_ui.customer_profile(customer_id, user.role)
if person is None:
    st.warning("This customer no longer exists.")
    st.stop()

name = f"{person.get('first_name') or ''} {person.get('last_name') or ''}".strip() or "(no name)"
st.subheader(f"{name} · #{customer_id}")
done = history["orders"][history["orders"]["status"] == "completed"]
cols = st.columns(5)
cols[0].metric("Completed orders", f"{len(done):,}", border=True)
cols[1].metric("Revenue", f"${done['amount'].sum():,.2f}", border=True)
cols[2].metric(
    "Predicted CLV",
    "n/a" if pd.isna(person.get("clv")) else f"${person['clv']:,.0f}",
    help="From the CLV model (run scoring on the CLV page or `python -m crm_core score`).",
    border=True,
)
cols[3].metric(
    "P(alive)",
    "n/a" if pd.isna(person.get("p_alive")) else f"{person['p_alive']:.0%}",
    help="Probability the customer is still buying, from the CLV model.",
    border=True,
)
cols[4].metric(
    "Churn risk",
    "n/a" if pd.isna(person.get("churn_risk")) else f"{person['churn_risk']:.0%}",
    delta=None if pd.isna(person.get("churn_band")) else f"{person['churn_band']} risk",
    delta_color="off",
    delta_arrow="off",
    border=True,
)
if person.get("churn_reasons"):
    st.caption(
        f"**Why the churn risk is {person['churn_band']}:** {person['churn_reasons']}. "
        "Each multiplies the odds of churning by the factor shown.",
        help="From the churn model at the last scoring: the features that push this "
        "customer's risk up most against an average customer, read from the model's own "
        "trees (or coefficients).",
    )

facts = insight_ui.customer_segments(customer_id)
st.markdown(
    f"**RFM segment:** {facts['rfm_segment'] or 'none yet'}"
    + (f" (R F M = {' '.join(str(facts['rfm_score']))})" if facts["rfm_score"] else "")
    + (f" · **cluster** {facts['cluster']}" if facts["cluster"] is not None else "")
    + " · **saved segments:** "
    + (", ".join(facts["segments"]) or "none"),
    help="RFM and clusters are on the Segmentation page; saved segments in the Segment builder.",
)

left, right = st.columns([1, 2])
with left:
    st.markdown("**Profile and consent**")
    fields = profile.PROFILE_FIELDS
    st.dataframe(
        pd.DataFrame({"field": fields, "value": [str(person.get(f)) for f in fields]}),
        hide_index=True,
    )
with right:
    spend = profile.monthly_spend(history["orders"])
    if spend.empty:
        st.info("No completed orders yet.")
    else:
        st.plotly_chart(insight_charts.monthly_spend(spend))

for title, key in [
    ("Orders", "orders"),
    ("Survey answers", "surveys"),
    ("Support tickets", "tickets"),
    ("Campaign contacts", "campaigns"),
    (f"Latest {profile.RECENT_EVENTS} events", "events"),
]:
    with st.expander(f"{title} ({len(history[key]):,})", expanded=key == "orders"):
        frame = history[key]
        if key == "surveys" and not sees_pii:
            st.caption("Comments are personal data: your role sees scores only.")
        if frame.empty:
            st.caption("None.")
        else:
            st.dataframe(frame, hide_index=True)

"""Customer 360: find a customer and see everything about them (PII masked by role)."""

import pandas as pd
import streamlit as st

from crm_core import display, glossary, profile
from crm_core.errors import CRMError
from crm_core.figures import insight_charts
from crm_core.privacy import may_see_pii
from crm_ui import auth_ui, insight_ui, links, plain, privacy_ui, tables, widgets

user = auth_ui.require_view("customer_360")
st.title("Customer 360")
widgets.filter_note("customer_360")

sees_pii = may_see_pii(user.role)
linked = st.query_params.get(links.CUSTOMER_PARAM, "").strip()  # customer_360?customer_id=42
linked = linked if linked.isdigit() else ""
query = st.text_input(
    "Find a customer",
    value=linked,
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
if privacy_ui.just_erased(query):
    st.stop()
folded = insight_ui.merge_links(int(query)) if query.strip().isdigit() else (None, [])
if folded[0] is not None:
    merged = folded[0]
    st.warning(
        f"Customer #{int(query)} was merged into "
        f"[#{merged.kept_id}]({links.customer_url(merged.kept_id)}) by {merged.merged_by} "
        f"on {merged.merged_at:%d %b %Y} (merge {merged.merge_id}): its orders and history "
        f"are on #{merged.kept_id}'s profile. An admin can undo the merge on the Duplicates "
        "page."
    )
erased = query.strip().isdigit() and privacy_ui.erased_notice(int(query))
if shown.empty:
    if folded[0] is None and not erased:
        st.warning(f"No customer matches {query!r}.")
    st.stop()
labels = {
    int(row.customer_id): f"#{row.customer_id} {row.first_name or ''} {row.last_name or ''} "
    f"({row.email or 'no e-mail'}, {row.country or '?'})"
    for row in shown.itertuples()
}
if st.session_state.get("profile_query") != query:  # a new search picks its best match
    st.session_state.pop("profile_pick", None)
    st.session_state["profile_query"] = query
customer_id = st.selectbox(
    f"{len(shown)} match(es)",
    list(labels),
    index=list(labels).index(int(linked)) if linked and int(linked) in labels else 0,
    format_func=labels.get,
    key=f"profile_pick_{linked}" if linked else "profile_pick",
)
person, history = insight_ui.customer_profile(customer_id, user.role)
if person is None:
    st.warning("This customer no longer exists.")
    st.stop()

name = f"{person.get('first_name') or ''} {person.get('last_name') or ''}".strip() or "(no name)"
st.subheader(f"{name} · #{customer_id}")
folded_in = insight_ui.merge_links(customer_id)[1]
if folded_in:
    st.caption(
        "Also known as "
        + ", ".join(f"#{copy}" for copy in folded_in)
        + ": duplicate records merged into this customer, with their orders and history.",
        help="Merges are listed, and can be undone by an admin, on the Duplicates page.",
    )
done = history["orders"][history["orders"]["status"] == "completed"]
# Cards that wrap onto more lines on a narrow screen instead of cutting their figures.
cards = st.container(horizontal=True)
cols = [cards.container() for _ in range(5)]
cols[0].metric("Completed orders", f"{len(done):,}", border=True)
cols[1].metric(
    "Revenue",
    display.format_money(done["amount"].sum(), short=True),
    help=f"Completed orders, all history: {display.format_money(done['amount'].sum())}",
    border=True,
)
cols[2].metric(
    "Predicted CLV",
    "n/a" if pd.isna(person.get("clv")) else f"${person['clv']:,.0f}",
    help="From the CLV model (run scoring on the CLV page or `python -m crm_core score`).",
    border=True,
)
cols[3].metric(
    "P(alive)",
    "n/a" if pd.isna(person.get("p_alive")) else plain.percent(person["p_alive"], 0),
    help=glossary.help_for("p_alive"),
    border=True,
)
cols[4].metric(
    "Churn risk",
    "n/a" if pd.isna(person.get("churn_risk")) else plain.percent(person["churn_risk"], 0),
    delta=None if pd.isna(person.get("churn_band")) else f"{person['churn_band']} risk",
    delta_color="off",
    delta_arrow="off",
    help=glossary.help_for("churn_risk"),
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

if next_words := profile.next_purchase_words(person):
    st.markdown(
        next_words,
        help="From the purchase model at the last scoring: the window runs from the day the "
        "chance of a purchase reaches 25% to the day it reaches 75%, counted from the data's "
        "end. Segments can select customers due soon (Next purchase from, within the next N "
        "days).",
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

# A row that wraps: the profile beside the chart where both fit, above it where not (in
# st.columns the e-mail was cut off at 800 px).
row = st.container(horizontal=True, key="profile_row")
left, right = row.container(key="wrap_profile_table"), row.container(key="wide_profile_chart")
with left:
    st.markdown("**Profile and consent**")
    fields = profile.PROFILE_FIELDS
    tables.show_table(
        pd.DataFrame(
            {
                "field": [display.label(f) for f in fields],
                "value": [display.format_value(f, person.get(f)) for f in fields],
            }
        )
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
            tables.show_table(frame)

with st.expander("Consent history"):
    privacy_ui.consent_section(customer_id, person, user)
privacy_ui.privacy_actions(customer_id, user)

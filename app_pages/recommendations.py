"""Recommendations: what to offer each customer (due again, or bought with what they
bought), validated on held-out last orders against a popularity baseline."""

import streamlit as st

from crm_core import auth, glossary
from crm_core.errors import CRMError
from crm_ui import auth_ui, links, plain, recommend_ui, widgets

user = auth_ui.require_view("recommendations")
st.title("Recommended products")  # "Recommendations" breaks inside the word at 390 px
widgets.filter_note("recommendations")

st.subheader("Validation on held-out last orders")
try:
    result = recommend_ui.evaluation()
except CRMError as exc:
    st.warning(str(exc))
    st.stop()
k, model, base = result.top_n, result.model, result.baseline
cards = st.container(horizontal=True)
cards.metric(
    f"Precision@{k}",
    plain.percent(model["precision"]),
    f"{(model['precision'] - base['precision']) * 100:+.1f} points vs popularity",
    help=glossary.help_for("precision_at_k"),
)
cards.metric(
    f"Hit rate@{k}",
    plain.percent(model["hit_rate"]),
    f"{(model['hit_rate'] - base['hit_rate']) * 100:+.1f} points vs popularity",
    help=glossary.help_for("hit_rate_at_k"),
)
cards.metric("Customers evaluated", f"{result.customers:,}")
st.caption(
    f"Precision@{k}: the share of the {k} products offered that the customer bought in the "
    f"hidden order. Hit rate@{k}: the share of customers who bought at least one of them. "
    f"Each customer with at least two purchases with order lines ({result.eligible:,}"
    + (f"; a sample of {result.customers:,}" if result.customers < result.eligible else "")
    + f") had their last order hidden; the rules were fitted on every other order and {k} "
    "products recommended on the day of the hidden order. Baseline: the "
    f"{k} products most customers bought that the customer had not bought (nor another "
    "variant of, such as another price level)."
    + ("" if result.beats_baseline else " The model does not beat the baseline here.")
    + " More in the Glossary."
)
left, right = st.columns(2)
with left:
    recommend_ui.evaluation_table(result)
with right:
    recommend_ui.method_table(result)

st.subheader("Stored recommendations")
note = st.container()  # filled below, after a recompute the button may run
stored = recommend_ui.coverage()
can_recompute = auth.can(user.role, "import_data")
if can_recompute and st.button(
    "Recompute for every customer",
    help="Fits the rules on every completed order and replaces the stored lists "
    "(also `python -m crm_core recommend --score`).",
):
    try:
        run = recommend_ui.score_now()
    except CRMError as exc:
        st.error(str(exc))
    else:
        st.success(f"Recommended to {run.customers:,} customers in {run.seconds:.1f} s.")
        stored = recommend_ui.coverage()
if not stored["offers"]:
    st.info(
        "No recommendations are stored yet: an admin computes them here, or run "
        "`python -m crm_core recommend --score`. Then `next_best_product` is filled in the "
        "customer 360 table, for segments and exports."
    )
    st.stop()
with note:
    recommend_ui.stale_note(stored["scored_at"], can_recompute)
share = stored["share"]
cards = st.container(horizontal=True)
cards.metric("Coverage", plain.percent(share), help=glossary.help_for("recommendation_coverage"))
cards.metric("Customers with a recommendation", f"{stored['customers']:,}")
cards.metric("Products offered", f"{stored['offers']:,}")

st.markdown("**Products recommended to most customers**")
recommend_ui.products_table(recommend_ui.top_products())

st.markdown("**A customer's list**")
first = recommend_ui.example_customer() or 1
customer_id = st.number_input("Customer ID", min_value=1, value=first, step=1)
rows = recommend_ui.customer_list(int(customer_id))
if rows.empty:
    st.info(
        f"No recommendation for customer {int(customer_id)}: no completed order with lines, "
        "nothing due and no rule for what they bought (or no such customer)."
    )
else:
    st.markdown(
        f"[Open customer {int(customer_id)} in Customer 360]"
        f"({links.customer_url(int(customer_id))})"
    )
    recommend_ui.list_table(rows)
    st.caption(
        "Score: an index from 0 to 100 that ranks the offers (a rule's confidence, halved "
        "per order since; or how regular the cycle is, fading when long overdue). It is not "
        f"a chance of buying: precision@{k} above says how often offers are bought."
    )

"""Cached reads and tables of the Recommendations view (crm_core/analytics/recommend.py)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from crm_core import glossary
from crm_core.analytics import recommend
from crm_ui import data, plain, tables

PERCENT = st.column_config.NumberColumn(format=tables.PERCENT_FORMAT)


@data.reads(
    *recommend.SOURCE_TABLES,
    show_spinner="Hiding each customer's last order and recommending for it (first time)...",
    ttl=3600,
    max_entries=4,
)
def evaluation() -> recommend.Evaluation:
    """The held-out evaluation against the popularity baseline (CRMError when too thin)."""
    return recommend.evaluate_store(data.store())


@data.reads(*recommend.STORED_TABLES, show_spinner=False, ttl=600)
def coverage() -> dict[str, object]:
    """Customers with stored recommendations, buyers, offers, when computed."""
    return recommend.coverage(data.store())


@data.reads(*recommend.STORED_TABLES, show_spinner=False, ttl=600)
def top_products(limit: int = 20) -> pd.DataFrame:
    """The products recommended to most customers."""
    return recommend.top_products(data.store(), limit)


@data.reads(*recommend.STORED_TABLES, show_spinner=False, ttl=600, max_entries=64)
def customer_list(customer_id: int) -> pd.DataFrame:
    """One customer's stored recommendations."""
    return recommend.customer_list(data.store(), customer_id)


@data.reads(*recommend.STORED_TABLES, show_spinner=False, ttl=600)
def example_customer() -> int | None:
    """A customer to show first (one with a replenishment offer when there is one)."""
    return recommend.example_customer(data.store())


def score_now() -> recommend.ScoreRun:
    """Compute and store every customer's recommendations; forget what read them."""
    with st.spinner("Fitting the rules and recommending for every customer..."):
        run = recommend.score(data.store())
    data.tables_changed(*recommend.TABLES_WRITTEN)
    return run


def evaluation_table(result: recommend.Evaluation) -> None:
    """The model against the popularity baseline: precision and hit rate at k, in percent."""
    k = result.top_n
    frame = result.table()
    frame["precision"] = frame["precision"] * 100  # hit_rate reads as a share on its own
    tables.show_table(
        frame,
        column_config={
            "method": "Products offered by",
            "precision": {
                **PERCENT,
                "label": f"Precision@{k}",
                "help": glossary.help_for("precision_at_k"),
            },
            "hit_rate": {"label": f"Hit rate@{k}", "help": glossary.help_for("hit_rate_at_k")},
        },
    )


def method_table(result: recommend.Evaluation) -> None:
    """Offers and hits of each method on the hidden orders."""
    rows = [
        {
            "method": recommend.METHOD_LABELS[m],
            "offers": result.offers_by_method.get(m, 0),
            "hits": result.hits_by_method.get(m, 0),
        }
        for m in recommend.METHOD_LABELS
    ]
    frame = pd.DataFrame(rows)
    frame["hit_share"] = frame["hits"] / frame["offers"].where(frame["offers"] > 0)
    tables.show_table(
        frame,
        column_config={
            "method": "Method",
            "offers": "Products offered",
            "hits": "Bought in the hidden order",
            "hit_share": "Share bought",
        },
    )


def products_table(frame: pd.DataFrame) -> None:
    """The top products: customers offered each, as first product, by method."""
    tables.show_table(
        frame.drop(columns=["product_id"]),
        column_config={
            "product": "Product",
            "customers": "Customers offered it",
            "first": "As their first product",
            "replenishment": "Due again (replenishment)",
            "cross_sell": "Cross-sell",
        },
    )


def score_index(score: pd.Series) -> pd.Series:
    """Scores as a 0-100 index in whole numbers; an offer with any support shows at least 1."""
    index = (score * 100).round()
    return index.where(~((score > 0) & (index < 1)), 1).astype(int)


def list_table(frame: pd.DataFrame) -> None:
    """One customer's list (at most `top_n` rows) as a static table whose reasons wrap, with
    the score as a 0-100 index (it ranks the offers; it is not a chance of buying)."""
    shown = pd.DataFrame(
        {
            "Rank": frame["rank"].to_numpy(),
            "Product": frame["product"].to_numpy(),
            "Why": frame["reason"].astype(str).to_numpy(),
            "Method": frame["method"].map(recommend.METHOD_LABELS).to_numpy(),
            "Score (0-100)": score_index(frame["score"]).to_numpy(),
        }
    )
    st.table(shown.set_index("Rank"))


def stale_note(scored_at: datetime | None, can_recompute: bool) -> None:
    """When the stored lists were computed and, after a later import of orders, order lines
    or products, that they predate it (with how to recompute)."""
    plain.stale_note(
        "These recommendations were",
        scored_at,
        recommend.SOURCE_TABLES,
        "Recompute them with the button below."
        if can_recompute
        else "An admin recomputes them on this page (or `python -m crm_core recommend --score`).",
    )

"""Lead scores on the Funnels page: the open leads' win probabilities, the validation beside
them (model against the source-only baseline) and the MQL threshold from sales capacity.

Laid out to read at 390, 800 and 1440 px: the cards wrap (horizontal containers, short
labels with the details in their help), the calibration chart (legend below it) and the
capacity block sit side by side only when each has room (crm_ui/style.py WRAP), and the
reasons column is wide."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from crm_core import auth, glossary
from crm_core.analytics import lead_scoring
from crm_core.analytics.clv import NotReadyError
from crm_core.errors import CRMError
from crm_core.store import utcnow
from crm_ui import data, model_ui, plain, tables
from crm_ui.session import current_user

DEFAULT_CAPACITY = 20
"""Leads a week sales can call, until someone says otherwise."""
SHOWN_LEADS = 200
"""The open leads listed (highest chance first)."""


@data.reads(
    *lead_scoring.SOURCE_TABLES,
    show_spinner="Training and validating the lead model (first time for these settings)...",
    ttl=3600,
    max_entries=8,
)
def lead_report(settings: lead_scoring.LeadSettings) -> tuple[lead_scoring.LeadReport, datetime]:
    """Out-of-time validation and the open leads' scores (CRMError when the data are thin),
    and when they were computed (UTC)."""
    return lead_scoring.analyse(data.store(), settings), utcnow()


def fresh_report(settings: lead_scoring.LeadSettings) -> tuple[lead_scoring.LeadReport, datetime]:
    """`lead_report`, computed again when an import (e.g. from the command line, which the
    app's caches do not hear of) changed the leads after it was computed."""
    report, computed = lead_report(settings)
    imported = plain.last_import(tuple(lead_scoring.SOURCE_TABLES))
    if imported is not None and imported > computed:
        lead_report.clear()
        report, computed = lead_report(settings)
    return report, computed


@data.reads("lead_scores", show_spinner=False, ttl=600)
def stored_at() -> datetime | None:
    """When the stored lead scores (the 360's lead_score) were written; None: never."""
    return lead_scoring.scored_at(data.store())


def calibration_chart(report: lead_scoring.LeadReport) -> go.Figure:
    """Predicted against actual win rate by band of the prediction, model and baseline."""
    fig = go.Figure()
    for name, frame, color in (
        ("Model", report.calibration, "#1f77b4"),
        ("Source only", report.baseline_calibration, "#ff7f0e"),
    ):
        fig.add_scatter(
            x=frame["band"],
            y=frame["actual"],
            name=f"{name}: actual",
            mode="lines+markers",
            line={"color": color, "width": 3},
        )
        fig.add_scatter(
            x=frame["band"],
            y=frame["predicted"],
            name=f"{name}: predicted",
            mode="lines",
            line={"color": color, "dash": "dot"},
        )
    fig.update_xaxes(title_text="Tenth of the leads by prediction (1 = lowest)", dtick=1)
    fig.update_yaxes(title_text="Win rate", tickformat=".0%", rangemode="tozero")
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.25, "yanchor": "top"},
    )
    return fig


def capacity_input(report: lead_scoring.LeadReport) -> lead_scoring.Capacity:
    """Ask how many leads sales can call a week; the threshold that fills it."""
    per_week = st.number_input(
        "Sales can call (leads a week)",
        min_value=1,
        max_value=100_000,
        value=DEFAULT_CAPACITY,
        step=5,
        key="lead_capacity",
        width=260,
        help=f"Compared with the new leads of the last {lead_scoring.CAPACITY_WEEKS} weeks "
        f"({report.weekly_volume:,.1f} a week): the threshold is the win probability that "
        "picks that many of them a week.",
    )
    return report.capacity(int(per_week))


def validation_cards(report: lead_scoring.LeadReport) -> None:
    """ROC AUC against the source-only baseline, Brier score, leads scored."""
    auc, base = report.metric("roc_auc"), report.metric("roc_auc", "baseline")
    brier, brier_base = report.metric("brier"), report.metric("brier", "baseline")
    cards = st.container(horizontal=True)
    cards.metric(
        "ROC AUC",
        f"{auc:.3f}",
        f"{auc - base:+.3f} vs source only",
        help=f"Of the lead model, on the validation cutoffs. {glossary.help_for('roc_auc')}",
    )
    cards.metric(
        "Source-only AUC",
        f"{base:.3f}",
        help="ROC AUC of the baseline: a model that knows only the lead's source.",
    )
    cards.metric(
        "Brier score",
        f"{brier:.4f}",
        f"{brier - brier_base:+.4f} vs source only",
        delta_color="inverse",
        help="Mean squared gap between each predicted win probability and what happened "
        "(1 won, 0 not), on the validation cutoffs: lower is better.",
    )
    cards.metric(
        "Leads scored",
        f"{len(report.scores):,}",
        help=f"Open on {report.as_of:%d %b %Y} and created in the {lead_scoring.ACTIVE_DAYS} "
        "days before.",
    )


def capacity_cards(report: lead_scoring.LeadReport, capacity: lead_scoring.Capacity) -> None:
    """The MQL threshold (or "every new lead"), the open leads above it and their wins."""
    days = report.settings.window_days
    cards = st.container(horizontal=True)
    everyone = capacity.calls_everyone
    cards.metric(
        "MQL threshold",
        "Every new lead" if everyone else plain.percent(capacity.threshold),
        help=glossary.help_for("mql_threshold"),
    )
    cards.metric(
        "Leads above it",
        f"{capacity.leads_above:,}",
        help="Open leads whose win probability is at or above the threshold: the ones to call.",
    )
    cards.metric(
        f"Wins in {days} days",
        f"{capacity.expected_wins:,.1f}",
        help=f"Expected wins among the open leads above the threshold: the sum of their "
        f"chances of being won within {days} days of {report.as_of:%d %b %Y}. Not a weekly "
        "figure: it counts today's open leads.",
    )


def stored_scores_note() -> None:
    """When the stored lead scores (the 360's lead_score) were written, and whether an
    import of leads came after."""
    user = current_user()
    admin = user is not None and auth.can(user.role, "import_data")
    how = (
        "Data import page, Scores tab, Score customers"
        if admin
        else "an admin does it on the Data import page"
    ) + " (or `python -m crm_core leads score`)."
    written = stored_at()
    if written is None:
        st.caption(
            "The lead_score of Customer 360, segments and exports stays empty until the "
            f"leads are scored and stored: {how}"
        )
        return
    plain.stale_note(
        "The stored lead scores (the lead_score of Customer 360, segments and exports) were",
        written,
        lead_scoring.SOURCE_TABLES,
        f"Score again: {how}",
    )


def show_lead_scores() -> None:
    """The lead-scoring section: validation, capacity threshold, the scored open leads."""
    st.markdown("**Lead scores: which open leads to call**")
    left, right = st.columns([1, 2])
    window = left.select_slider(
        "Won within (days)",
        options=[60, 90, 120, 180],
        value=lead_scoring.DEFAULT_WINDOW_DAYS,
        key="lead_window",
        help="The score is the chance that the lead is won within this many days.",
    )
    model = right.radio(
        "Model",
        list(lead_scoring.MODELS),
        format_func=lead_scoring.MODELS.get,
        horizontal=True,
        key="lead_model",
    )
    settings = lead_scoring.LeadSettings(model=model, window_days=int(window))
    try:
        report, computed = fresh_report(settings)
    except NotReadyError as exc:
        model_ui.show_not_ready(exc)
        return
    except CRMError as exc:
        st.error(str(exc))
        return
    st.caption(
        f"Every lead open on {report.as_of:%d %b %Y} and created in the "
        f"{lead_scoring.ACTIVE_DAYS} days before (the period filter does not apply; "
        f"{report.stale_leads:,} older open leads are left out), scored from its source, its "
        "engagement and its stage and time in stage. Trained on the leads open at cutoffs "
        f"from {report.train_cutoffs[0]:%d %b %Y} to {report.train_cutoffs[-1]:%d %b %Y} "
        f"(outcomes known by the validation start), validated on those open at cutoffs from "
        f"{report.valid_cutoffs[0]:%d %b %Y} to {report.valid_cutoffs[-1]:%d %b %Y} "
        f"({report.n_valid:,} lead-cutoffs, {plain.percent(report.win_rate_valid)} won). "
        f"Computed {plain.when(computed)}."
    )
    validation_cards(report)
    row = st.container(horizontal=True)  # side by side at 1440 px, one under the other below
    with row.container(key="wide_lead_chart"):
        st.markdown("**Calibration: predicted against actual win rate, by tenth of the leads**")
        st.plotly_chart(calibration_chart(report), width="stretch")
    with row.container(key="wrap_lead_capacity"):
        st.markdown("**Whom to call: the MQL threshold from sales capacity**")
        capacity = capacity_input(report)
        capacity_cards(report, capacity)
        st.caption(capacity.sentence())
    stored_scores_note()
    shown = report.scores.head(SHOWN_LEADS).copy()
    shown["mql"] = shown["win_probability"] >= capacity.threshold
    st.markdown(f"**Open leads, highest chance first** (top {len(shown):,})")
    picked = tables.show_table(
        shown,
        key="lead_scores_table",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "lead_id": "Lead",
            "mql": "Above the threshold",
            "lead_score_reasons": st.column_config.TextColumn(width="large"),
            "activities": "Activities so far",
            "activities_recent": f"Activities ({lead_scoring.RECENT_DAYS} days)",
            "age_days": "Days since created",
        },
        column_order=[
            "lead_id",
            "win_probability",
            "lead_score_reasons",
            "mql",
            "source",
            "stage",
            "days_in_stage",
            "activities",
            "activities_recent",
            "meetings",
            "customer_id",
            "age_days",
        ],
    )
    if len(shown):
        rows = picked.selection.rows if picked is not None else []
        lead = shown.iloc[rows[0] if rows else 0]
        st.markdown(
            f"**Why lead {lead['lead_id']} scores {plain.percent(lead['win_probability'])}:** "
            f"{lead['lead_score_reasons']}"
        )
        st.caption("Click a row of the table to read that lead's reasons in full here.")
    st.markdown("**Open leads by source**")
    tables.show_table(
        pd.DataFrame(report.by_source).rename(columns={"mean_win_probability": "win_probability"}),
        column_config={"win_probability": "Mean win probability"},
    )

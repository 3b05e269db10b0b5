"""Lead scores on the Funnels page: the open leads' win probabilities, the validation beside
them (model against the source-only baseline) and the MQL threshold from sales capacity."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from crm_core.analytics import lead_scoring
from crm_core.analytics.clv import NotReadyError
from crm_core.errors import CRMError
from crm_ui import data, model_ui, tables

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
def lead_report(settings: lead_scoring.LeadSettings) -> lead_scoring.LeadReport:
    """Out-of-time validation and the open leads' scores (CRMError when the data are thin)."""
    return lead_scoring.analyse(data.store(), settings)


def calibration_chart(report: lead_scoring.LeadReport) -> go.Figure:
    """Predicted against actual win rate by band of the prediction, model and baseline."""
    fig = go.Figure()
    for name, frame, color in (
        ("Model", report.calibration, "#1f77b4"),
        ("Source only (baseline)", report.baseline_calibration, "#ff7f0e"),
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
    fig.update_xaxes(title_text="Band of the prediction (1 = lowest tenth)", dtick=1)
    fig.update_yaxes(title_text="Win rate", tickformat=".0%", rangemode="tozero")
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend_y=-0.3)
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
        help=f"From the {lead_scoring.CAPACITY_WEEKS} last weeks' new leads "
        f"({report.weekly_volume:,.1f} a week): the score that picks that many of them, "
        "and the wins expected from the open leads above it.",
    )
    return report.capacity(int(per_week))


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
    try:
        report = lead_report(lead_scoring.LeadSettings(model=model, window_days=int(window)))
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
        f"({report.n_valid:,} lead-cutoffs, {report.win_rate_valid:.1%} won)."
    )
    auc, base = report.metric("roc_auc"), report.metric("roc_auc", "baseline")
    cols = st.columns(4)
    cols[0].metric(
        "ROC AUC (validation)",
        f"{auc:.3f}",
        f"{auc - base:+.3f} against source only",
        help="Chance that a lead that was won scores above one that was not (0.5 = a coin).",
    )
    cols[1].metric("ROC AUC, source only", f"{base:.3f}")
    cols[2].metric(
        "Brier score",
        f"{report.metric('brier'):.4f}",
        f"{report.metric('brier') - report.metric('brier', 'baseline'):+.4f}",
        delta_color="inverse",
        help="Mean squared error of the probabilities (lower is better).",
    )
    cols[3].metric("Open leads scored", f"{len(report.scores):,}")
    chart, capacity_col = st.columns([3, 2])
    chart.plotly_chart(calibration_chart(report))
    with capacity_col:
        capacity = capacity_input(report)
        st.metric(
            "MQL threshold",
            f"{capacity.threshold:.1%}",
            help="Call the leads whose win probability is at least this.",
        )
        st.metric("Open leads above it", f"{capacity.leads_above:,}")
        st.metric("Expected wins among them", f"{capacity.expected_wins:,.1f}")
        st.caption(capacity.sentence())
    shown = report.scores.head(SHOWN_LEADS).copy()
    shown["mql"] = shown["win_probability"] >= capacity.threshold
    st.markdown(f"**Open leads, highest chance first** (top {len(shown):,})")
    tables.show_table(
        shown,
        column_config={
            "lead_id": "Lead",
            "mql": "Above the threshold",
            "activities": "Activities so far",
            "activities_recent": f"Activities ({lead_scoring.RECENT_DAYS} days)",
            "age_days": "Days since created",
        },
        column_order=[
            "lead_id",
            "win_probability",
            "mql",
            "source",
            "stage",
            "days_in_stage",
            "activities",
            "activities_recent",
            "meetings",
            "lead_score_reasons",
            "customer_id",
            "age_days",
        ],
    )
    st.markdown("**Open leads by source**")
    tables.show_table(
        pd.DataFrame(report.by_source).rename(columns={"mean_win_probability": "win_probability"}),
        column_config={"win_probability": "Mean win probability"},
    )

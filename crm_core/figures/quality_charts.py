"""Plotly figures of the data quality view: scores per table and their trend over imports."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from crm_core import display

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}}


def score_bars(scores: pd.DataFrame) -> go.Figure:
    """Each table's quality score (0-100) as a horizontal bar, worst at the top."""
    shown = scores.dropna(subset=["quality_score"]).sort_values("quality_score", ascending=False)
    fig = go.Figure(
        go.Bar(
            x=shown["quality_score"],
            y=[display.label(t) for t in shown["table"]],
            orientation="h",
            text=[f"{v:.1f}" for v in shown["quality_score"]],
            textposition="auto",
            marker={"color": [_colour(v) for v in shown["quality_score"]]},
            hovertemplate="%{y}: %{x:.1f}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Quality score per table",
        xaxis={"title": "Quality score (0-100)", "range": [0, 100]},
        yaxis={"title": "Table"},
        height=max(260, 32 * len(shown) + 100),
        **_LAYOUT,
    )
    return fig


def _colour(score: float) -> str:
    if score >= 95:
        return "#2ca02c"
    if score >= 85:
        return "#ff7f0e"
    return "#d62728"


def score_range(scores: pd.Series) -> list[float]:
    """A y range zoomed to the scores (so 99.3 -> 99.2 shows), padded, within 0 .. 100."""
    values = pd.to_numeric(scores, errors="coerce").dropna()
    if values.empty:
        return [0.0, 100.0]
    low, high = float(values.min()), float(values.max())
    pad = max(0.5, 0.1 * (high - low))
    return [max(0.0, low - pad), min(100.0, high + pad)]


def score_trend(trend: pd.DataFrame) -> go.Figure:
    """Each table's recorded score over time, one line per table."""
    fig = go.Figure()
    for table, part in trend.groupby("table", sort=True):
        name = display.label(str(table))
        fig.add_trace(
            go.Scatter(
                x=pd.to_datetime(part["recorded_at"]),
                y=part["quality_score"],
                mode="lines+markers",
                name=name,
                hovertemplate=f"{name}: " + "%{y:.1f} at %{x|%d %b %Y %H:%M}<extra></extra>",
            )
        )
    fig.update_layout(
        title="Quality score over imports",
        xaxis={"title": "Measured (UTC)", "tickformat": "%d %b %Y\n%H:%M"},
        yaxis={"title": "Quality score", "range": score_range(trend["quality_score"])},
        legend={"title": {"text": "Table"}},
        **_LAYOUT,
    )
    return fig

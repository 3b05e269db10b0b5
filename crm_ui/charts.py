"""Plotly figure builders shared by the pages."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

_BLUE = "#2563eb"
_ORANGE = "#f97316"


def revenue_active_trend(trend: pd.DataFrame) -> go.Figure:
    """Monthly revenue (bars) and active customers (line, right axis)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(x=trend["month"], y=trend["revenue"], name="Revenue", marker_color=_BLUE)
    fig.add_scatter(
        x=trend["month"],
        y=trend["active_customers"],
        name="Active customers",
        mode="lines+markers",
        line={"color": _ORANGE, "width": 3},
        secondary_y=True,
    )
    fig.update_yaxes(title_text="Revenue", secondary_y=False, tickformat="~s")
    fig.update_yaxes(
        title_text="Active customers", secondary_y=True, tickformat=",.0f", showgrid=False
    )
    fig.update_xaxes(dtick="M1", tickformat="%b %Y")
    fig.update_layout(
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": 1.12},
        height=360,
        hovermode="x unified",
    )
    return fig


def cohort_heatmap(grid: pd.DataFrame) -> go.Figure:
    """Share of each first-purchase cohort buying N months later, as a heatmap."""
    shares = grid.drop(columns=["customers"])
    labels = [f"{c} ({n:,})" for c, n in zip(grid.index, grid["customers"], strict=True)]
    text = shares.map(lambda v: "" if pd.isna(v) else f"{100 * v:.0f}%")
    fig = go.Figure(
        go.Heatmap(
            z=shares.to_numpy(),
            x=[str(c) for c in shares.columns],
            y=labels,
            text=text.to_numpy(),
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=max(0.05, float(shares.drop(columns=[0]).max().max() or 0)),
            hovertemplate="Cohort %{y}<br>Month %{x}: %{z:.1%}<extra></extra>",
            colorbar={"title": "Buying", "tickformat": ".0%"},
        )
    )
    fig.update_yaxes(autorange="reversed", title_text="First-purchase month (customers)")
    fig.update_xaxes(title_text="Months since first purchase", side="top")
    fig.update_layout(margin={"l": 10, "r": 10, "t": 60, "b": 10}, height=80 + 28 * len(grid))
    return fig

"""Plotly figure builders shared by the pages."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

_BLUE = "#2563eb"
_BLUE_LIGHT = "#93c5fd"
_ORANGE = "#f97316"


_TICK_FORMAT = {"day": "%d %b", "week": "%d %b", "month": "%b %Y"}
_HOVER_FORMAT = {"day": "%a %d %b %Y", "week": "week of %d %b %Y", "month": "%B %Y"}
# bar width per grain (plotly's own is the gap between bars: 1 ms for a single bar)
_BAR_DAYS = {"day": 0.8, "week": 5.6, "month": 22.0}


def revenue_active_trend(trend: pd.DataFrame) -> go.Figure:
    """Revenue (bars; lighter where the period covers a week or month only in part) and
    active customers (line, right axis) per day, week or month."""
    grain = trend["grain"].iloc[0]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(
        x=trend["period"],
        y=trend["revenue"],
        name="Revenue",
        marker_color=[_BLUE_LIGHT if p else _BLUE for p in trend["partial"]],
        width=_BAR_DAYS[grain] * 86_400_000,
        customdata=["partial " + grain if p else "" for p in trend["partial"]],
        hovertemplate="$%{y:,.2f} %{customdata}<extra>Revenue</extra>",
    )
    fig.add_scatter(
        x=trend["period"],
        y=trend["active_customers"],
        name="Active customers",
        mode="lines+markers",
        line={"color": _ORANGE, "width": 3},
        hovertemplate="%{y:,.0f}<extra>Active customers</extra>",
        secondary_y=True,
    )
    fig.update_yaxes(
        title_text="Revenue ($)",
        secondary_y=False,
        tickprefix="$",
        tickformat="~s",
        rangemode="tozero",
    )
    fig.update_yaxes(
        title_text="Active customers",
        secondary_y=True,
        tickformat=",.0f",
        showgrid=False,
        rangemode="tozero",
    )
    ticks = {"tickvals": trend["period"]} if len(trend) <= 16 else {}
    if len(trend) == 1:  # one period: a range around it, not a millisecond scale
        half = pd.Timedelta(days=_BAR_DAYS[grain])
        ticks["range"] = [trend["period"].iloc[0] - half, trend["period"].iloc[0] + half]
    fig.update_xaxes(tickformat=_TICK_FORMAT[grain], hoverformat=_HOVER_FORMAT[grain], **ticks)
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
    fig.update_layout(
        margin={"l": 10, "r": 10, "t": 60, "b": 10}, height=max(240, 80 + 28 * len(grid))
    )
    return fig

"""Plotly figure builders shared by the pages."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crm_core import display

_BLUE = "#2563eb"
_BLUE_LIGHT = "#93c5fd"
_ORANGE = "#f97316"


def nice_step(raw: float, *, integer: bool = False) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at least `raw` (at least 1 for integer axes)."""
    if not raw or raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * power
        if step >= raw * (1 - 1e-9) and not (integer and step != int(step)):
            return max(step, 1.0) if integer else step
    return 10 * power


def aligned_axes(
    left_max: float, right_max: float, *, right_integer: bool = False, left_integer: bool = False
) -> tuple[dict, dict]:
    """Layout settings for two y axes that both start at zero and share their grid: the same
    number of ticks on each side, each with a nice step (20k / 50 ...), so a right tick sits
    on every left grid line."""
    left_max = max(float(left_max or 0), 0.0) or 1.0
    right_max = max(float(right_max or 0), 0.0) or 1.0
    best = None
    for ticks in (4, 5, 6):
        left = nice_step(left_max / ticks, integer=left_integer)
        right = nice_step(right_max / ticks, integer=right_integer)
        count = max(math.ceil(left_max / left - 1e-9), math.ceil(right_max / right - 1e-9), 1)
        waste = count * left / left_max + count * right / right_max
        if best is None or waste < best[0] - 1e-9:
            best = (waste, count, left, right)
    _, count, left, right = best
    settings = {"tickmode": "linear", "tick0": 0, "rangemode": "tozero"}
    return (
        {**settings, "dtick": left, "range": [0, count * left * 1.04]},
        {**settings, "dtick": right, "range": [0, count * right * 1.04]},
    )


def money_axis(largest: float | None = None) -> dict:
    """Tick settings of a money axis: the currency and short figures ($20k; $250 for small
    amounts, where SI prefixes would read "250m" below 1)."""
    small = largest is not None and abs(float(largest or 0)) < 1_000
    return {"tickprefix": display.CURRENCY, "tickformat": ",.2~f" if small else "~s"}


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
        hovertemplate=display.hover_template("revenue") + " %{customdata}<extra>Revenue</extra>",
    )
    fig.add_scatter(
        x=trend["period"],
        y=trend["active_customers"],
        name=display.label("active_customers"),
        mode="lines+markers",
        line={"color": _ORANGE, "width": 3},
        hovertemplate="%{y:,.0f}<extra>Active customers</extra>",
        secondary_y=True,
    )
    left, right = aligned_axes(
        trend["revenue"].max(), trend["active_customers"].max(), right_integer=True
    )
    fig.update_yaxes(
        title_text=display.axis_title("revenue"),
        secondary_y=False,
        **money_axis(trend["revenue"].max()),
        **left,
    )
    fig.update_yaxes(
        title_text=display.axis_title("active_customers"),
        secondary_y=True,
        tickformat=",d",
        showgrid=False,
        **right,
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
            colorbar={"title": "Bought again", "tickformat": ".0%"},
        )
    )
    fig.update_yaxes(autorange="reversed", title_text="First-purchase month (customers)")
    fig.update_xaxes(title_text="Months since first purchase", side="top")
    fig.update_layout(
        margin={"l": 10, "r": 10, "t": 60, "b": 10}, height=max(240, 80 + 28 * len(grid))
    )
    return fig

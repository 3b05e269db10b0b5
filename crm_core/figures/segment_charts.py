"""Plotly figures for the segmentation and segment builder pages."""

from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from crm_core import display
from crm_core.figures.charts import aligned_axes, nice_step

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 30, "b": 10}}
CLUSTER_COLORS = px.colors.qualitative.Bold + px.colors.qualitative.Safe
"""Distinct colours for clusters (a qualitative palette, not a gradient)."""


def segment_treemap(summary: pd.DataFrame) -> go.Figure:
    """RFM segments sized by customers, coloured by revenue."""
    fig = px.treemap(
        summary,
        path=["segment"],
        values="customers",
        color="revenue",
        color_continuous_scale="Blues",
        range_color=[0, max(float(summary["revenue"].max() or 0), 1.0)],
        custom_data=["share", "revenue"],
    )
    fig.update_traces(
        texttemplate="%{label}<br>%{value:,} customers<br>%{customdata[0]:.1%}",
        hovertemplate="%{label}: %{value:,} customers (%{customdata[0]:.1%}), revenue "
        + display.hover_template("revenue", "customdata[1]")
        + "<extra></extra>",
    )
    fig.update_layout(height=420, **_LAYOUT)
    fig.update_coloraxes(
        colorbar={
            "title": {"text": display.axis_title("revenue")},
            "tickprefix": display.CURRENCY,
            "tickformat": "~s",
        }
    )
    return fig


def rf_heatmap(grid: pd.DataFrame) -> go.Figure:
    """Customers per R score (rows) and F score (columns)."""
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=[f"F{c}" for c in grid.columns],
            y=[f"R{r}" for r in grid.index],
            text=grid.to_numpy(),
            texttemplate="%{text:,}",
            colorscale="Blues",
            zmin=0,
            zmax=max(int(grid.to_numpy().max()), 1),
            hovertemplate="%{y} %{x}: %{z:,} customers<extra></extra>",
            colorbar={"title": {"text": "Customers"}, "tickformat": ",d"},
        )
    )
    fig.update_xaxes(title_text="F score (5 = most orders)")
    fig.update_yaxes(title_text="R score (5 = most recent)")
    fig.update_layout(height=360, **_LAYOUT)
    return fig


def movement_heatmap(moves: pd.DataFrame) -> go.Figure:
    """Customers by segment before (rows) and now (columns)."""
    grid = moves.pivot_table(
        index="from_segment", columns="to_segment", values="customers", aggfunc="sum", fill_value=0
    )
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=list(grid.columns),
            y=list(grid.index),
            text=grid.to_numpy(),
            texttemplate="%{text:,}",
            colorscale="Blues",
            zmin=0,
            zmax=max(int(grid.to_numpy().max()), 1),
            hovertemplate="%{y} → %{x}: %{z:,} customers<extra></extra>",
            colorbar={"title": {"text": "Customers"}, "tickformat": ",d"},
        )
    )
    fig.update_xaxes(title_text="Segment now")
    fig.update_yaxes(title_text="Segment before", autorange="reversed")
    fig.update_layout(height=80 + 34 * len(grid), **_LAYOUT)
    return fig


def elbow(scores: pd.DataFrame) -> go.Figure:
    """Inertia (elbow) and silhouette by k."""
    fig = go.Figure()
    fig.add_scatter(
        x=scores["k"],
        y=scores["inertia"],
        name="Inertia (lower is tighter)",
        line={"color": "#2563eb"},
        hovertemplate="k = %{x}: inertia %{y:,.0f}<extra></extra>",
    )
    fig.add_scatter(
        x=scores["k"],
        y=scores["silhouette"],
        name="Silhouette (higher is better)",
        line={"color": "#f97316"},
        yaxis="y2",
        hovertemplate="k = %{x}: silhouette %{y:.2f}<extra></extra>",
    )
    left, right = aligned_axes(scores["inertia"].max(), scores["silhouette"].max())
    if scores["silhouette"].min() < 0:  # a negative silhouette: let the right axis show it
        right = {"rangemode": "normal"}
    fig.update_layout(
        height=320,
        xaxis={"title": "Number of clusters (k)", "dtick": 1},
        yaxis={"title": "Inertia (within-cluster spread)", "tickformat": "~s", **left},
        yaxis2={
            "title": "Silhouette (-1 to 1)",
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "tickformat": ".2~f",
            **right,
        },
        legend={"orientation": "h", "y": 1.15},
        **_LAYOUT,
    )
    return fig


def cluster_profile(profile: pd.DataFrame) -> go.Figure:
    """Each cluster's feature means as a multiple of the base (1 = average)."""
    ratios = profile.set_index("cluster")[[c for c in profile.columns if c.endswith(" vs base")]]
    ratios.columns = [display.label(c.removesuffix(" vs base")) for c in ratios.columns]
    # A ratio is 0 or more: the scale runs from 0 (red: below the base) through 1 (white:
    # the base) to the largest ratio (blue: above), not symmetrically into negatives.
    low = min(0.0, float(ratios.min().min()))
    high = max(2.0, float(ratios.max().max()))
    mid = (1 - low) / (high - low)
    fig = go.Figure(
        go.Heatmap(
            z=ratios.to_numpy(),
            x=list(ratios.columns),
            y=[
                f"Cluster {c} ({n:,})"
                for c, n in zip(ratios.index, profile["customers"], strict=True)
            ],
            text=ratios.round(2).to_numpy(),
            texttemplate="%{text}×",
            colorscale=[[0, "#b2182b"], [mid, "#f7f7f7"], [1, "#2166ac"]],
            zmin=low,
            zmax=high,
            hovertemplate="%{y}, %{x}: %{z:.2f}× the base<extra></extra>",
            colorbar={"title": {"text": "× the base"}, "ticksuffix": "×"},
        )
    )
    fig.update_layout(height=100 + 40 * len(ratios), **_LAYOUT)
    return fig


def pca_scatter(projection: pd.DataFrame) -> go.Figure:
    """Customers on the first two principal components, coloured by cluster."""
    shown = projection.assign(cluster=[f"Cluster {c}" for c in projection["cluster"]])
    order = [f"Cluster {c}" for c in sorted(projection["cluster"].unique())]
    fig = px.scatter(
        shown,
        x="pc1",
        y="pc2",
        color="cluster",
        opacity=0.6,
        category_orders={"cluster": order},
        color_discrete_sequence=CLUSTER_COLORS,
        labels={"pc1": "Principal component 1", "pc2": "Principal component 2", "cluster": ""},
    )
    fig.update_traces(marker={"size": 4})
    fig.update_layout(height=420, legend={"itemsizing": "constant"}, **_LAYOUT)
    return fig


def size_history(history: pd.DataFrame) -> go.Figure:
    """A saved segment's size each time it was saved, refreshed or exported."""
    fig = go.Figure(
        go.Scatter(
            x=history["measured_at"],
            y=history["customers"],
            mode="lines+markers",
            marker={"size": 9},
            customdata=history[["version"]].to_numpy(),
            hovertemplate="%{x|%d %b %Y, %H:%M}: %{y:,} customers (version %{customdata[0]})"
            "<extra></extra>",
        )
    )
    stamps = pd.to_datetime(history["measured_at"])
    first, last = stamps.min(), stamps.max()
    pad = max((last - first) * 0.05, pd.Timedelta(days=3))  # one point: a week around it
    largest = int(history["customers"].max() or 0)
    fig.update_xaxes(type="date", range=[first - pad, last + pad], tickformat="%d %b %Y")
    step = nice_step(max(largest, 4) / 4, integer=True)  # whole customers, 4-5 ticks
    fig.update_yaxes(
        title_text="Customers",
        tickformat=",d",
        tick0=0,
        dtick=step,
        range=[0, step * (math.floor(largest / step) + 1) * 1.02],
    )
    fig.update_layout(height=280, xaxis_title=None, **_LAYOUT)
    return fig

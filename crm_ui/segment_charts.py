"""Plotly figures for the segmentation and segment builder pages."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 30, "b": 10}}


def segment_treemap(summary: pd.DataFrame) -> go.Figure:
    """RFM segments sized by customers, coloured by revenue."""
    fig = px.treemap(
        summary,
        path=["segment"],
        values="customers",
        color="revenue",
        color_continuous_scale="Blues",
        custom_data=["share", "revenue"],
    )
    fig.update_traces(
        texttemplate="%{label}<br>%{value:,} customers<br>%{customdata[0]:.1%}",
        hovertemplate="%{label}: %{value:,}, revenue %{customdata[1]:,.0f}<extra></extra>",
    )
    fig.update_layout(height=420, **_LAYOUT)
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
            hovertemplate="%{y} %{x}: %{z:,} customers<extra></extra>",
        )
    )
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
            hovertemplate="%{y} → %{x}: %{z:,}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="Segment now")
    fig.update_yaxes(title_text="Segment before", autorange="reversed")
    fig.update_layout(height=80 + 34 * len(grid), **_LAYOUT)
    return fig


def elbow(scores: pd.DataFrame) -> go.Figure:
    """Inertia (elbow) and silhouette by k."""
    fig = go.Figure()
    fig.add_scatter(x=scores["k"], y=scores["inertia"], name="Inertia (lower is tighter)")
    fig.add_scatter(
        x=scores["k"], y=scores["silhouette"], name="Silhouette (higher is better)", yaxis="y2"
    )
    fig.update_layout(
        height=320,
        xaxis={"title": "k (clusters)", "dtick": 1},
        yaxis={"title": "Inertia"},
        yaxis2={"title": "Silhouette", "overlaying": "y", "side": "right", "showgrid": False},
        legend={"orientation": "h", "y": 1.15},
        **_LAYOUT,
    )
    return fig


def cluster_profile(profile: pd.DataFrame) -> go.Figure:
    """Each cluster's feature means as a multiple of the base (1 = average)."""
    ratios = profile.set_index("cluster")[[c for c in profile.columns if c.endswith(" vs base")]]
    ratios.columns = [c.removesuffix(" vs base") for c in ratios.columns]
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
            colorscale="RdBu",
            zmid=1,
            hovertemplate="%{y}, %{x}: %{z:.2f}× the base<extra></extra>",
        )
    )
    fig.update_layout(height=100 + 40 * len(ratios), **_LAYOUT)
    return fig


def pca_scatter(projection: pd.DataFrame) -> go.Figure:
    """Customers on the first two principal components, coloured by cluster."""
    fig = px.scatter(projection, x="pc1", y="pc2", color="cluster", opacity=0.5)
    fig.update_traces(marker={"size": 4})
    fig.update_layout(height=420, **_LAYOUT)
    return fig


def size_history(history: pd.DataFrame) -> go.Figure:
    """A saved segment's size each time it was saved, refreshed or exported."""
    fig = px.line(
        history, x="measured_at", y="customers", markers=True, hover_data=["version", "as_of"]
    )
    fig.update_layout(height=280, yaxis_title="Customers", xaxis_title=None, **_LAYOUT)
    return fig

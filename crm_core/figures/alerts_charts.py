"""Plotly figure of an alert rule's backtest: the series, the expected line and band, firings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from crm_core import display

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 30, "b": 10}}
_TICK_FORMATS = {"money": ",.0f", "percent": ".0%", "count": ",d", "score": ",.1f"}
_REFERENCE_NAMES = {"year_ago": "A year earlier", "previous": "Previous period"}


def reference_names(condition: Mapping[str, Any] | None) -> tuple[str, str]:
    """(the reference line's name, the band's name) for a rule's condition: a change rule
    compares with a past value ("A year earlier", "Previous period") and does not fire inside
    its band; an anomaly rule expects its forecast within the expected range."""
    if condition and condition.get("kind") == "change":
        against = _REFERENCE_NAMES.get(condition.get("against", ""), "Previous period")
        return against, "No alert inside"
    return "Expected", "Expected range"


def backtest_chart(
    frame: pd.DataFrame,
    label: str,
    fmt: str = "count",
    condition: Mapping[str, Any] | None = None,
) -> go.Figure:
    """The measured `label` per period, the expected value (forecast, or the past value a
    change rule compares with, named by `condition`) with its band (lower..upper, one side
    only for a threshold or a one-way change), and the periods it fired as markers."""
    reference, band = reference_names(condition)

    x = pd.to_datetime(frame["period_start"])
    fig = go.Figure()
    lower, upper = frame["lower"].astype(float), frame["upper"].astype(float)
    if lower.notna().any() and upper.notna().any():
        fig.add_trace(
            go.Scatter(
                x=x, y=upper, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=lower,
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(99, 110, 250, 0.15)",
                name=band,
                hoverinfo="skip",
            )
        )
    else:  # a threshold: one dashed line where the rule fires
        for bound, name in ((lower, "Fires below"), (upper, "Fires above")):
            if bound.notna().any():
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=bound,
                        mode="lines",
                        name=name,
                        line={"dash": "dash", "color": "#d62728"},
                    )
                )
    expected = frame["expected"].astype(float)
    if expected.notna().any():
        fig.add_trace(
            go.Scatter(
                x=x,
                y=expected,
                mode="lines",
                name=reference,
                line={"dash": "dot", "color": "#636efa"},
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=frame["value"].astype(float),
            mode="lines+markers",
            name=label,
            line={"color": "#1f3b73"},
        )
    )
    fired = frame[frame["fired"].astype(bool)]
    fig.add_trace(
        go.Scatter(
            x=pd.to_datetime(fired["period_start"]),
            y=fired["value"].astype(float),
            mode="markers",
            name="Would have fired",
            marker={"symbol": "x", "size": 12, "color": "#d62728"},
        )
    )
    fig.update_layout(
        height=380,
        yaxis={
            "title": {"text": label},
            "tickformat": _TICK_FORMATS.get(fmt, ","),
            "tickprefix": display.CURRENCY if fmt == "money" else "",
        },
        legend={"orientation": "h", "y": -0.15},
        hovermode="x unified",
        **_LAYOUT,
    )
    return fig

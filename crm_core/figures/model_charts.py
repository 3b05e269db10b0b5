"""Plotly figures for the CLV and churn views."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from crm_core import display
from crm_core.figures.charts import aligned_axes, money_axis

_BLUE = "#2563eb"
_ORANGE = "#f97316"
_GREY = "#9ca3af"
_BAND_COLORS = {"low": "#16a34a", "medium": "#f59e0b", "high": "#dc2626"}


def _layout(fig: go.Figure, height: int = 340, **kwargs) -> go.Figure:
    fig.update_layout(
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        height=height,
        legend={"orientation": "h", "y": 1.12},
        **kwargs,
    )
    return fig


def backtest_by_frequency(frame: pd.DataFrame, holdout_label: str) -> go.Figure:
    """Mean holdout repeat purchases by calibration frequency: model against data."""
    fig = go.Figure()
    fig.add_bar(x=frame["frequency"], y=frame["actual"], name="Actual", marker_color=_GREY)
    fig.add_scatter(
        x=frame["frequency"],
        y=frame["predicted"],
        name="Predicted",
        mode="lines+markers",
        line={"color": _BLUE, "width": 3},
    )
    fig.update_xaxes(title_text="Repeat purchases in the calibration period")
    fig.update_yaxes(title_text=f"Mean purchases in the holdout ({holdout_label})")
    return _layout(fig)


def next_purchase_backtest(frame: pd.DataFrame, window_days: int) -> go.Figure:
    """Share who bought within `window_days` after the calibration end, by decile of the
    predicted chance: model against data."""
    part = frame[frame["window_days"] == window_days]
    fig = go.Figure()
    fig.add_bar(
        x=part["decile"],
        y=part["actual"],
        name="Bought (actual)",
        marker_color=_GREY,
        hovertemplate="Decile %{x}: %{y:.1%} bought<extra></extra>",
    )
    fig.add_scatter(
        x=part["decile"],
        y=part["predicted"],
        name="Predicted chance",
        mode="lines+markers",
        line={"color": _BLUE, "width": 3},
        hovertemplate="Decile %{x}: %{y:.1%} predicted<extra></extra>",
    )
    fig.update_xaxes(
        title_text="Decile of the predicted chance (1 = least likely, 10 = most likely)",
        tickmode="linear",
        dtick=1,
    )
    fig.update_yaxes(
        title_text=f"Share buying within {window_days} days", tickformat=".0%", rangemode="tozero"
    )
    return _layout(fig)


def period_histogram(frame: pd.DataFrame) -> go.Figure:
    """Customers by repeat purchases in the calibration period: data against the model."""
    fig = go.Figure()
    fig.add_bar(x=frame["repeat_purchases"], y=frame["data"], name="Data", marker_color=_GREY)
    fig.add_bar(x=frame["repeat_purchases"], y=frame["model"], name="Model", marker_color=_BLUE)
    fig.update_xaxes(title_text="Repeat purchases in the calibration period")
    fig.update_yaxes(title_text="Customers", tickformat=",d", rangemode="tozero")
    fig.update_traces(hovertemplate="%{x} repeat purchases: %{y:,.0f} customers")
    return _layout(fig, barmode="group")


def clv_histogram(values: pd.DataFrame, money: str = display.CURRENCY) -> go.Figure:
    """Distribution of CLV over customers (top 1% clipped)."""
    fig = go.Figure(
        go.Histogram(
            x=values["clv"],
            nbinsx=50,
            marker_color=_BLUE,
            hovertemplate=f"CLV {money}%{{x}}: %{{y:,}} customers<extra></extra>",
        )
    )
    fig.update_xaxes(
        title_text=f"{display.label('clv')} ({money}; top 1% shown at the 99th percentile)",
        **money_axis(values["clv"].max() if len(values) else None),
    )
    fig.update_yaxes(title_text="Customers", tickformat=",d", rangemode="tozero")
    return _layout(fig)


def clv_by_group(frame: pd.DataFrame, by: str, title: str) -> go.Figure:
    """Total CLV (bars) and mean CLV per customer (markers, right axis) per group."""
    fig = go.Figure()
    groups = display.value_labels(by, frame[by])  # "paid_search" -> "Paid search"
    fig.add_bar(
        x=groups,
        y=frame["total_clv"],
        name="Total CLV",
        marker_color=_BLUE,
        hovertemplate="%{x}: " + display.hover_template("total_clv") + "<extra>Total CLV</extra>",
    )
    fig.add_scatter(
        x=groups,
        y=frame["mean_clv"],
        name="Mean CLV per customer",
        mode="markers",
        marker={"color": _ORANGE, "size": 11},
        yaxis="y2",
        hovertemplate="%{x}: "
        + display.hover_template("mean_clv")
        + "<extra>Mean CLV per customer</extra>",
    )
    left, right = aligned_axes(frame["total_clv"].max(), frame["mean_clv"].max())
    fig.update_layout(
        xaxis={"title": display.label(by)},
        yaxis={
            "title": display.axis_title("total_clv"),
            **money_axis(frame["total_clv"].max()),
            **left,
        },
        yaxis2={
            "title": display.axis_title("mean_clv"),
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            **money_axis(frame["mean_clv"].max()),
            **right,
        },
        title={"text": title, "x": 0, "y": 0.97},
    )
    return _layout(fig, height=380).update_layout(
        margin={"t": 90}, legend={"orientation": "h", "y": 1.08}
    )


def frequency_recency_heatmap(
    matrix: pd.DataFrame, title: str, fmt: str, unit: str = "days"
) -> go.Figure:
    """A frequency x recency matrix as a heatmap (rows: frequency, columns: recency in the
    model's time `unit`, "days" or "weeks"); the colour bar has round ticks (0, 5, 10)."""
    whole = len({round(float(c)) for c in matrix.columns}) == len(matrix.columns)
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=[f"{c:,.0f}" if whole else f"{c:g}" for c in matrix.columns],
            y=[str(i) for i in matrix.index],
            colorscale="Blues",
            zmin=0,
            zmax=1 if fmt.endswith("%") else None,
            hovertemplate="%{y} repeat purchases, last purchase %{x} "
            + unit
            + " after the first: %{z:"
            + fmt
            + "}<extra></extra>",
            # "~" drops trailing zeros: 0, 5, 10 (not 0.00, 5.00, 10.00); shares stay 0%-100%
            colorbar={"tickformat": fmt if fmt.endswith("%") else ",~r"},
        )
    )
    fig.update_yaxes(title_text="Repeat purchases (frequency)")
    fig.update_xaxes(title_text=f"Time from first to last purchase (recency, {unit})")
    fig.update_layout(title={"text": title, "x": 0})
    return _layout(fig, height=420)


def calibration(frame: pd.DataFrame) -> go.Figure:
    """Predicted churn probability against the observed churn rate, by risk decile."""
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], name="Perfect", mode="lines", line={"color": _GREY, "dash": "dot"}
    )
    fig.add_scatter(
        x=frame["predicted"],
        y=frame["observed"],
        name="Model",
        mode="lines+markers",
        line={"color": _BLUE, "width": 3},
    )
    fig.update_xaxes(title_text="Predicted churn probability", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title_text="Observed churn rate", tickformat=".0%", range=[0, 1])
    return _layout(fig)


def gains(frame: pd.DataFrame) -> go.Figure:
    """Cumulative share of churners found when contacting the riskiest x% first."""
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], name="Random", mode="lines", line={"color": _GREY, "dash": "dot"}
    )
    fig.add_scatter(
        x=frame["contacted"],
        y=frame["baseline"],
        name="Baseline (recency)",
        mode="lines+markers",
        line={"color": _ORANGE},
    )
    fig.add_scatter(
        x=frame["contacted"],
        y=frame["model"],
        name="Model",
        mode="lines+markers",
        line={"color": _BLUE, "width": 3},
    )
    fig.update_xaxes(title_text="Customers contacted (riskiest first)", tickformat=".0%")
    fig.update_yaxes(title_text="Churners reached", tickformat=".0%")
    return _layout(fig)


def importance(drivers: pd.DataFrame) -> go.Figure:
    """Permutation importance of the top drivers (drop in ROC AUC when shuffled)."""
    ordered = drivers.iloc[::-1]
    names = [text[:1].upper() + text[1:] for text in ordered["label"]]
    fig = go.Figure(go.Bar(x=ordered["importance"], y=names, orientation="h", marker_color=_BLUE))
    fig.update_traces(hovertemplate="%{y}: %{x:.3f}<extra></extra>")
    fig.update_xaxes(
        title_text="Importance: drop in ROC AUC when the feature is shuffled",
        rangemode="tozero",
        tickformat=".2f",
    )
    return _layout(fig, height=120 + 40 * len(drivers))


def dependence(frame: pd.DataFrame, label: str) -> go.Figure:
    """Average predicted churn across the range of one feature (partial dependence)."""
    fig = go.Figure(
        go.Scatter(
            x=frame["value"],
            y=frame["churn_probability"],
            mode="lines+markers",
            line={"color": _BLUE, "width": 3},
        )
    )
    fig.update_xaxes(title_text=label[:1].upper() + label[1:])
    fig.update_yaxes(title_text="Predicted churn risk (%)", tickformat=".0%", rangemode="tozero")
    fig.update_traces(hovertemplate="%{x:,.4~g}: %{y:.1%}<extra></extra>")
    return _layout(fig, height=280)


def risk_bands(frame: pd.DataFrame) -> go.Figure:
    """Customers and value at risk per churn-risk band."""
    colors = [_BAND_COLORS.get(b, _GREY) for b in frame["churn_band"]]
    fig = go.Figure(
        go.Bar(
            x=frame["churn_band"],  # the codes: a click returns the band
            y=frame["value_at_risk"],
            marker_color=colors,
            text=[f"{n:,} customers" for n in frame["customers"]],
            textposition="auto",
            customdata=display.value_labels("churn_band", frame["churn_band"]),
            hovertemplate="%{customdata} risk: "
            + display.hover_template("value_at_risk")
            + " at risk (%{text})<extra></extra>",
        )
    )
    fig.update_xaxes(
        title_text=display.label("churn_band"),
        **display.category_ticks("churn_band", frame["churn_band"]),
    )
    fig.update_yaxes(
        title_text=display.axis_title("value_at_risk", "Value at risk (churn risk x CLV)"),
        rangemode="tozero",
        **money_axis(frame["value_at_risk"].max()),
    )
    return _layout(fig)

"""Plotly figures for the survey, campaign, funnel and profile views."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from crm_core import display
from crm_core.figures.charts import money_axis
from crm_core.metrics import CSAT_SATISFIED_MIN, NPS_DETRACTOR_MAX, NPS_PROMOTER_MIN

_BLUE, _GREEN, _RED, _GREY, _ORANGE = "#2563eb", "#16a34a", "#dc2626", "#9ca3af", "#f97316"
_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "height": 360}
_DAY_MS = 86_400_000
_MONTH_BAR_MS = 20 * _DAY_MS  # a month's bar: left to plotly, one bar alone is 1 ms wide


def month_axis(fig: go.Figure, months: pd.Series) -> go.Figure:
    """Label a monthly x axis by month ("Oct 2026") whatever the number of months: ticks on
    month starts (every 1, 2, 3, 6 or 12 months for at most 12 labels) and a range of at
    least a month, so that one month alone does not get a millisecond scale."""
    stamps = pd.to_datetime(pd.Series(months)).dropna()
    if stamps.empty:
        return fig
    count = stamps.dt.to_period("M").nunique()
    step = next((s for s in (1, 2, 3, 6, 12) if count / s <= 12), 12 * -(-count // 144))
    first, last = stamps.min(), stamps.max()
    fig.update_xaxes(
        type="date",
        tickformat="%b %Y",
        hoverformat="%B %Y",
        dtick=f"M{step}",
        tick0=first.strftime("%Y-%m-01"),
        range=[first - pd.Timedelta(days=16), last + pd.Timedelta(days=16)],
    )
    return fig


def score_trend(trend: pd.DataFrame, score: str, title: str) -> go.Figure:
    """A monthly score with its 95% interval as a band."""
    fig = go.Figure()
    fig.add_scatter(
        x=list(trend["month"]) + list(trend["month"][::-1]),
        y=list(trend[f"{score}_high"]) + list(trend[f"{score}_low"][::-1]),
        fill="toself",
        fillcolor="rgba(37,99,235,0.15)",
        line={"width": 0},
        name="95% interval",
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=trend["month"],
        y=trend[score],
        mode="lines+markers",
        name=title,
        line={"color": _BLUE, "width": 3},
        customdata=trend[f"{score}_responses"],
        hovertemplate="%{x|%b %Y}: "
        + ("%{y:.1%}" if score == "csat" else "%{y:.1f}")
        + " (%{customdata:,} answers)<extra></extra>",
    )
    _score_axis(fig, score)
    fig.update_layout(
        title={"text": f"{title}<br><sup>shaded: 95% interval</sup>"}, showlegend=False, **_LAYOUT
    )
    return month_axis(fig, trend["month"])


def _score_axis(fig: go.Figure, score: str) -> None:
    """NPS on its -100..100 scale; CSAT as the share of satisfied answers (0-100%)."""
    if score == "csat":
        fig.update_yaxes(title_text="CSAT (% satisfied)", tickformat=".0%", rangemode="tozero")
    else:
        fig.update_yaxes(title_text="NPS (-100 to 100)", zeroline=True)


def score_breakdown(table: pd.DataFrame, by: str, score: str, title: str) -> go.Figure:
    """A score per group with interval whiskers."""
    shown = table.dropna(subset=[score])
    fig = go.Figure(
        go.Bar(
            x=display.value_labels(by, shown[by]),
            y=shown[score],
            marker_color=_BLUE,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": shown[f"{score}_high"] - shown[score],
                "arrayminus": shown[score] - shown[f"{score}_low"],
            },
            customdata=shown[f"{score}_responses"],
            hovertemplate="%{x}: "
            + ("%{y:.1%}" if score == "csat" else "%{y:.1f}")
            + " (%{customdata:,} answers)<extra></extra>",
        )
    )
    _score_axis(fig, score)
    fig.update_layout(title=title, **_LAYOUT)
    return fig


def score_distribution(dist: pd.DataFrame, survey: str) -> go.Figure:
    """Answers per score, coloured by NPS bucket or CSAT satisfaction."""
    part = dist[dist["survey"] == survey]
    if survey == "nps":
        colours = [
            _GREEN if s >= NPS_PROMOTER_MIN else _RED if s <= NPS_DETRACTOR_MAX else _GREY
            for s in part["score"]
        ]
    else:
        colours = [_GREEN if s >= CSAT_SATISFIED_MIN else _GREY for s in part["score"]]
    fig = go.Figure(
        go.Bar(
            x=part["score"],
            y=part["responses"],
            marker_color=colours,
            hovertemplate="Score %{x}: %{y:,} answers<extra></extra>",
        )
    )
    fig.update_xaxes(dtick=1, title_text="Score")
    fig.update_yaxes(title_text="Answers", tickformat=",d", rangemode="tozero")
    fig.update_layout(title=f"{survey.upper()} answers by score", **_LAYOUT)
    return fig


def terms(table: pd.DataFrame) -> go.Figure:
    """Words typical of detractors (left, red) and promoters (right, green)."""
    strongest = float(table["weight"].abs().max() or 1.0)
    signed = table.assign(
        signed=lambda t: (t["weight"] / strongest).where(
            t["side"] == "promoters", -t["weight"] / strongest
        )
    ).sort_values("signed")
    fig = go.Figure(
        go.Bar(
            x=signed["signed"],
            y=signed["term"],
            orientation="h",
            marker_color=[_GREEN if v > 0 else _RED for v in signed["signed"]],
            customdata=signed["side"],
            hovertemplate="%{y}: typical of %{customdata}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Words that set detractors (left) apart from promoters (right)",
        **{**_LAYOUT, "height": 140 + 22 * len(signed)},
    )
    ticks = [-1, -0.5, 0, 0.5, 1]
    fig.update_xaxes(
        range=[-1.08, 1.08],
        tickvals=ticks,
        ticktext=["100%", "50%", "0", "50%", "100%"],
        zeroline=True,
        title_text="How typical of detractors ← → of promoters (strongest word = 100%)",
    )
    return fig


def roi_bars(table: pd.DataFrame) -> go.Figure:
    """Spend against attributed revenue per campaign."""
    top = table.head(20)
    fig = go.Figure()
    money = display.hover_template("spend")
    fig.add_bar(
        x=top["name"],
        y=top["spend"],
        name="Spend",
        marker_color=_GREY,
        hovertemplate="%{x}: " + money + "<extra>Spend</extra>",
    )
    fig.add_bar(
        x=top["name"],
        y=top["revenue"],
        name="Attributed revenue",
        marker_color=_BLUE,
        hovertemplate="%{x}: " + money + "<extra>Attributed revenue</extra>",
    )
    fig.update_layout(barmode="group", title="Spend and attributed revenue (top 20)", **_LAYOUT)
    fig.update_xaxes(tickangle=-35)
    largest = max(float(top["spend"].max() or 0), float(top["revenue"].max() or 0))
    fig.update_yaxes(
        title_text=f"Amount ({display.CURRENCY})", rangemode="tozero", **money_axis(largest)
    )
    return fig


def lift_chart(lift: pd.DataFrame) -> go.Figure:
    """Absolute lift in conversion per campaign with its 95% interval."""
    fig = go.Figure(
        go.Bar(
            x=lift["name"],
            y=lift["lift"],
            marker_color=[_GREEN if low > 0 else _GREY for low in lift["lift_low"].fillna(0)],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": lift["lift_high"] - lift["lift"],
                "arrayminus": lift["lift"] - lift["lift_low"],
            },
        )
    )
    fig.update_traces(hovertemplate="%{x}: %{y:+.1%} lift<extra></extra>")
    fig.update_yaxes(tickformat=".0%", title_text="Lift: treatment minus control conversion (%)")
    fig.update_xaxes(tickangle=-35)
    fig.update_layout(
        title="Lift in conversion (green: interval above zero)", **{**_LAYOUT, "height": 420}
    )
    return fig


def funnel(steps: pd.DataFrame) -> go.Figure:
    """Customers reaching each step."""
    fig = go.Figure(
        go.Funnel(
            y=[
                f"{row.step}. {display.value_label('event_type', row.event_type)}"
                for row in steps.itertuples()
            ],
            x=steps["customers"],
            texttemplate="%{value:,}<br>%{percentInitial:.0%} of entrants"
            "<br>%{percentPrevious:.0%} of previous step",
            hovertemplate="%{y}<br>%{x:,} customers<br>%{percentInitial:.1%} of entrants"
            "<br>%{percentPrevious:.1%} of the previous step<extra></extra>",
            marker_color=_BLUE,
        )
    )
    fig.update_layout(**_LAYOUT)
    return fig


def conversion_trend(trend: pd.DataFrame) -> go.Figure:
    """Overall funnel conversion by month of entry."""
    fig = px.line(
        trend,
        x="month",
        y="conversion",
        markers=True,
        custom_data=["entered"],
        labels={"month": "Month of entry", "conversion": display.axis_title("conversion")},
    )
    fig.update_traces(
        hovertemplate="%{x|%B %Y}: %{y:.1%} of %{customdata[0]:,} entrants<extra></extra>"
    )
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_layout(title="Conversion by month of entry", **_LAYOUT)
    return month_axis(fig, trend["month"])


def lead_funnel(stages: pd.DataFrame) -> go.Figure:
    """Leads reaching each lifecycle stage."""
    fig = go.Figure(
        go.Funnel(
            y=display.value_labels("stage", stages["stage"]),
            x=stages["leads"],
            texttemplate="%{value:,} (%{percentPrevious:.0%} of previous)",
            hovertemplate="%{y}<br>%{x:,} leads<br>%{percentInitial:.1%} of all leads"
            "<br>%{percentPrevious:.1%} of the previous stage<extra></extra>",
            marker_color=_ORANGE,
        )
    )
    fig.update_layout(**_LAYOUT)
    return fig


def monthly_spend(table: pd.DataFrame) -> go.Figure:
    """A customer's spend per month."""
    fig = px.bar(
        table,
        x="month",
        y="revenue",
        custom_data=["orders"],
        labels={"month": "Month", "revenue": f"Spend ({display.CURRENCY})"},
    )
    fig.update_traces(
        marker_color=_BLUE,
        width=_MONTH_BAR_MS,
        hovertemplate="%{x|%B %Y}: "
        + display.hover_template("revenue")
        + " (%{customdata[0]:,} orders)<extra></extra>",
    )
    fig.update_yaxes(rangemode="tozero", **money_axis(table["revenue"].max()))
    fig.update_layout(title="Spend by month", **{**_LAYOUT, "height": 280})
    return month_axis(fig, table["month"])

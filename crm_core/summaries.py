"""Plain language first: the two or three sentences a manager reads at the top of each view,
and one sentence per technical metric saying what it means for the business.

Every sentence is computed from the figures the page already shows (result objects and
frames of crm_core.analytics.* and crm_core.metrics); no number is kept by hand. Figures are
formatted by crm_core.display (kind by field name) where it declares the field, else by the
small fallbacks below. Empty or thin data gives a sentence that says so.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import pandas as pd

from crm_core import display
from crm_core.analytics import churn as churn_model
from crm_core.analytics import rfm
from crm_core.analytics import surveys as survey_analysis
from crm_core.metrics import (
    METRICS,
    NPS_DETRACTOR_MAX,
    NPS_PROMOTER_MIN,
    KPIValue,
    format_change,
    format_value,
)

MARKER = "In short"
"""The words the summary block starts with (pages render `**In short:** ...`; tests find it)."""

WIN_BACK_SEGMENTS = tuple(s for s in ("Can't lose them", "At risk") if s in rfm.SEGMENT_NAMES)
"""RFM segments of customers who bought often but long ago: the ones to win back."""

ALIVE_THRESHOLD = 0.5
"""A customer with P(alive) from this value counts as 'probably still a customer'."""

_SURVEY_CHURN_DAYS = inspect.signature(survey_analysis.respondents).parameters["churn_days"].default
"""Days after an answer in which a respondent who buys nothing counts as gone (surveys)."""

TOP_SHARE = 0.1
"""The CLV summary says what share of the value the top 10% of customers hold."""

# ---------------------------------------------------------------- formatting


def _money(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"${value / 1_000_000:,.1f}M"
    if abs(value) >= 10_000:
        return f"${value / 1_000:,.0f}k"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    return f"${value:,.2f}"


def _percent(value: float) -> str:
    shown = 100 * value
    if shown != 0 and (abs(shown) < 9.95 or 99.5 <= abs(shown) < 100):
        return display.format_share(value)  # one decimal where a whole number would lie
    return f"{shown:.0f}%"


_FALLBACK = {
    "money": _money,
    "count": lambda v: f"{v:,.0f}",
    "percent": _percent,
    "score": lambda v: f"{v:.1f}",
    "number": lambda v: f"{v:,.2f}",
}


def show(name: str, value: Any, kind: str) -> str:
    """`value` of field `name` as text: by crm_core.display when it declares the field as
    `kind`, else by this module's fallback for the kind ("n/a" when missing)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "n/a"
    if display.describe(name).kind == kind:
        return display.format_value(name, value, short=kind == "money")
    return _FALLBACK[kind](float(value))


def _count(value: float) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return show("customers", round(float(value)), "count")


def _pct(value: float) -> str:
    return show("share", value, "percent")


def _share(part: float, whole: float) -> str:
    return show("share", part / whole if whole else 0.0, "percent")


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{_count(n)} {word if n == 1 else many or word + 's'}"


# ---------------------------------------------------------------- KPI overview


def overview(kpis: Mapping[str, KPIValue], compared_with: str = "the previous period") -> list[str]:
    """Revenue and who bought it, the churn rate, and how customers feel (NPS, CSAT)."""

    def kpi(name: str) -> KPIValue | None:
        return kpis.get(name)

    def fmt(name: str) -> str:
        return format_value(METRICS[name], kpi(name).value)

    revenue, orders = kpi("revenue"), kpi("orders")
    if revenue is None or orders is None or not orders.value:
        return ["No completed orders in this period and filter, so there is nothing to sum up."]
    sentences = []
    change = format_change(revenue)
    versus = f" ({change} against {compared_with})" if change else ""
    sentences.append(
        f"Revenue was {fmt('revenue')}{versus}, from {fmt('orders')} orders by "
        f"{fmt('active_customers')} active customers, {fmt('new_customers')} of them new."
    )
    churned = kpi("churn_rate")
    if churned is None or churned.value is None:
        sentences.append(
            "No customer bought in the previous period of equal length, so there is no churn "
            "rate yet."
        )
    else:
        before = (
            f"; it was {format_value(METRICS['churn_rate'], churned.previous)} the period before"
            if churned.previous is not None
            else ""
        )
        sentences.append(
            f"Churn rate {fmt('churn_rate')}: of the customers who bought in the previous period "
            f"of equal length, {fmt('churn_rate')} did not buy in this one{before}."
        )
    nps, csat = kpi("nps"), kpi("csat")
    feelings = [
        f"{label} is {format_value(METRICS[name], k.value)}"
        for name, label, k in (("nps", "NPS", nps), ("csat", "CSAT", csat))
        if k is not None and k.value is not None
    ]
    if feelings:
        sentences.append(" and ".join(feelings) + " from the survey answers of the period.")
    else:
        sentences.append("No NPS or CSAT answers in the period.")
    return sentences


# ---------------------------------------------------------------- segmentation


def segmentation(summary: pd.DataFrame) -> list[str]:
    """Who the buyers are by RFM segment: the largest, the most valuable, the ones to win back."""
    if summary.empty or not summary["customers"].sum():
        return ["No customer in this filter has bought by the end of the period."]
    total = int(summary["customers"].sum())
    revenue = float(summary["revenue"].sum())
    largest = summary.loc[summary["customers"].idxmax()]
    richest = summary.loc[summary["revenue"].idxmax()]
    sentences = [
        f"{_plural(total, 'customer')} fall into {len(summary)} RFM segments; the largest is "
        f"{largest['segment']} with {_count(largest['customers'])} "
        f"({_share(largest['customers'], total)})."
    ]
    sentences.append(
        f"{richest['segment']} are {_share(richest['customers'], total)} of the customers and "
        f"hold {_share(richest['revenue'], revenue)} of the spend so far "
        f"({show('revenue', richest['revenue'], 'money')})."
    )
    back = summary[summary["segment"].isin(WIN_BACK_SEGMENTS)]
    if back["customers"].sum():
        n = int(back["customers"].sum())
        sentences.append(
            f"{_plural(n, 'customer')} ({_share(n, total)}; "
            f"{' and '.join(back['segment'])}) bought often but not lately: they spent "
            f"{show('revenue', back['revenue'].sum(), 'money')} so far and are the ones to win "
            "back."
        )
    return sentences


# ---------------------------------------------------------------- lifetime value


def clv(report: Any) -> list[str]:
    """What customers are expected to spend, how concentrated it is, and how good the
    forecast was on held-out data (a crm_core.analytics.clv.CLVReport)."""
    values = report.customers
    if values is None or values.empty:
        return ["No customers to value: the model has nobody with a purchase in this filter."]
    n = len(values)
    total = float(values["clv"].sum())
    horizon = report.settings.horizon_months
    sentences = [
        f"The {_plural(n, 'customer')} valued are expected to spend "
        f"{show('clv', total, 'money')} over the next {horizon} months, "
        f"{show('clv', total / n, 'money')} each on average."
    ]
    top_n = max(int(round(n * TOP_SHARE)), 1)
    top_value = float(values["clv"].nlargest(top_n).sum())
    alive = int((values["p_alive"] >= ALIVE_THRESHOLD).sum())
    sentences.append(
        f"The {_plural(top_n, 'customer')} with the highest CLV (the top "
        f"{100 * TOP_SHARE:.0f}%) hold {_share(top_value, total)} of it; {_count(alive)} "
        f"customers ({_share(alive, n)}) are probably still customers (P(alive) of "
        f"{ALIVE_THRESHOLD:.0%} or more)."
    )
    bt = report.backtest
    if bt.actual_total > 0 and pd.notna(bt.predicted_total):
        way = "above" if bt.total_error > 0 else "below"
        sentences.append(
            f"Checked on {bt.holdout_units:.0f} {report.settings.time_unit} it did not see, "
            f"its purchase forecast was {_pct(abs(bt.total_error))} {way} what customers "
            "really bought."
        )
    return sentences


def backtest(bt: Any, unit: str = "days") -> dict[str, str]:
    """One sentence each for the CLV backtest error and MAE (a clv.Backtest)."""
    error = bt.total_error
    if pd.isna(bt.predicted_total):
        total = (
            f"The model fitted up to {bt.calibration_end:%d %b %Y} gave no purchase forecast "
            "for the holdout, so it cannot be checked; try another purchase model."
        )
    elif bt.actual_total <= 0:
        total = (
            f"In the {bt.holdout_units:.0f} {unit} after {bt.calibration_end:%d %b %Y} nobody "
            "bought, so the forecast cannot be checked yet."
        )
    else:
        way = "too many" if error > 0 else "too few"
        total = (
            f"Checked on the {bt.holdout_units:.0f} {unit} after {bt.calibration_end:%d %b %Y} "
            f"(data it did not see), the model predicted {_count(bt.predicted_total)} purchases "
            f"against {_count(bt.actual_total)} real ones: {_pct(abs(error))} {way}."
        )
    mae = (
        "No per-customer error without a forecast."
        if pd.isna(bt.mae)
        else f"Per customer the forecast misses by {bt.mae:.2f} purchases on average over those "
        f"{bt.holdout_units:.0f} {unit}: good for totals and rankings, rough for one customer."
    )
    return {"total_error": total, "mae": mae}


# ---------------------------------------------------------------- churn risk


def churn(report: Any, bands: pd.DataFrame) -> list[str]:
    """How many customers are at high churn risk, the value they hold, and the strongest
    driver (a churn.ChurnReport and churn.band_summary)."""
    scores = report.scores
    if scores is None or scores.empty:
        return ["No customers active in the last year to score, so nobody has a churn risk."]
    n = len(scores)
    window = report.settings.window_days
    high_threshold = churn_model.CHURN_BANDS[0][0]
    high = bands[bands["churn_band"] == "high"] if not bands.empty else bands
    n_high = int(high["customers"].sum()) if len(high) else 0
    sentences = [
        f"{_plural(n_high, 'customer')} ({_share(n_high, n)} of the {_count(n)} active in the "
        f"last year, erased customers left out) are at high churn risk: a "
        f"{high_threshold:.0%} or higher chance that they buy nothing in the next {window} days."
    ]
    if n_high:
        held = float(high["total_clv"].sum())
        at_risk = float(high["value_at_risk"].sum())
        sentences.append(
            f"They hold {show('clv', held, 'money')} of 12-month value (CLV), "
            f"{show('value_at_risk', at_risk, 'money')} of it at risk (churn risk x CLV)."
        )
    drivers = report.drivers
    if drivers is not None and not drivers.empty:
        top = drivers.loc[drivers["importance"].idxmax()]
        said = str(top["sentence"])
        sentences.append(f"The strongest driver is {top['label']}: {said[:1].lower()}{said[1:]}")
    return sentences


def churn_metrics(report: Any) -> dict[str, str]:
    """One business sentence each for ROC AUC, PR AUC, Brier score and calibration."""
    auc, base_auc = report.metric("roc_auc"), report.metric("roc_auc", "baseline")
    pr = report.metric("pr_auc")
    brier, base_brier = report.metric("brier"), report.metric("brier", "baseline")
    left = report.churn_rate_valid
    guess = left * (1 - left)
    out = {
        "roc_auc": (
            f"In {100 * auc:.0f} of 100 pairs of a customer who left and one who stayed, the "
            f"model ranks the leaver as riskier (a coin flip: 50; days since the last order "
            f"alone: {100 * base_auc:.0f})."
        ),
        "pr_auc": (
            f"Contacting customers from the riskiest down, on average {_pct(pr)} of those "
            f"contacted really left, against {_pct(left)} when picking at random (the "
            "validation churn share)."
        ),
        "brier": (
            f"The risks miss what happened by {brier:.3f} (mean squared gap; 0 is perfect, "
            f"always guessing {_pct(left)} scores {guess:.3f}, the recency-only baseline "
            f"{base_brier:.3f})."
        ),
    }
    calibration = report.calibration
    if calibration is not None and not calibration.empty:
        gap = float((calibration["predicted"] - calibration["observed"]).abs().mean())
        worst = calibration.loc[(calibration["predicted"] - calibration["observed"]).abs().idxmax()]
        out["calibration"] = (
            f"Across ten risk groups the predicted risk and the share who really left differ by "
            f"{100 * gap:.1f} points on average (at most: predicted {_pct(worst['predicted'])}"
            f", observed {_pct(worst['observed'])}); on the diagonal a risk of 70% means 70 "
            "in 100 leave."
        )
    gains = report.gains
    if gains is not None and len(gains) > 2:
        row = gains.iloc[2]
        out["gains"] = (
            f"Contacting the riskiest {row['contacted']:.0%} of customers reaches "
            f"{_pct(row['model'])} of those who will leave (by days since the last order "
            f"alone: {_pct(row['baseline'])})."
        )
    return out


# ---------------------------------------------------------------- NPS & CSAT


def surveys(
    nps: Any, csat: Any, value: Mapping[str, Any], by_bucket: pd.DataFrame, min_answers: int = 30
) -> list[str]:
    """NPS and CSAT with how many answers they rest on, the value of detractors, and whether
    detractors leave more often (surveys.ScoreSummary x2, detractor_value, churn_by_bucket)."""
    if nps.value is None and csat.value is None:
        return ["No NPS or CSAT answers in this period and filter."]
    parts = []
    if nps.value is not None:
        parts.append(
            f"NPS is {show('nps', nps.value, 'score')} from {_plural(nps.responses, 'answer')} "
            f"(95% interval {nps.low:.1f} to {nps.high:.1f})"
        )
    if csat.value is not None:
        parts.append(
            f"CSAT is {show('csat', csat.value, 'percent')} from "
            f"{_plural(csat.responses, 'answer')}"
        )
    first = "; ".join(parts) + "."
    thin = [
        name
        for name, s in (("NPS", nps), ("CSAT", csat))
        if s.value is not None and s.responses < min_answers
    ]
    if thin:
        first += f" {' and '.join(thin)} rest on fewer than {min_answers} answers: read with care."
    sentences = [first]
    detractors = int(value.get("detractors") or 0)
    at_risk = value.get("revenue_at_risk")
    if detractors and at_risk is not None:
        sentences.append(
            f"{_plural(detractors, 'detractor')} (latest NPS answer 0-{NPS_DETRACTOR_MAX}) hold "
            f"{show('clv', at_risk, 'money')} of {value.get('basis') or 'value'}."
        )
    rates = dict(zip(by_bucket.get("bucket", []), by_bucket.get("churn_rate", []), strict=False))
    if "detractor" in rates and "promoter" in rates:
        d, p = rates["detractor"], rates["promoter"]
        how = "more" if d > p else "less" if d < p else "as"
        sentences.append(
            f"{_pct(d)} of detractors bought nothing in the {_SURVEY_CHURN_DAYS} days after "
            "answering, "
            f"against {_pct(p)} of promoters ({NPS_PROMOTER_MIN}-10): detractors leave "
            f"{how} often."
            if how != "as"
            else f"Detractors and promoters bought again equally often ({_pct(d)} did not)."
        )
    return sentences


# ---------------------------------------------------------------- campaigns


def campaigns(
    roi: pd.DataFrame, totals: Mapping[str, Any], model: str, lift: pd.DataFrame | None = None
) -> list[str]:
    """Spend against attributed revenue, the best and weakest campaign, and what control
    groups show (campaigns.campaign_roi, roi_totals, incrementality)."""
    if roi.empty:
        return ["No campaigns ran in this period, so there is no return to report."]
    n = int(totals["campaigns"])
    spend, revenue = float(totals["spend"]), float(totals["revenue"])
    ret = (
        f": ROI {show('roi', totals['roi'], 'percent')}"
        if totals.get("roi") is not None
        else " (no spend in this filter, so no ROI)"
    )
    sentences = [
        f"{_plural(n, 'campaign')} spent {show('spend', spend, 'money')} and are credited with "
        f"{show('revenue', revenue, 'money')} of revenue under {model.replace('_', '-')} "
        f"attribution{ret}."
    ]
    ranked = roi.dropna(subset=["roi"]).sort_values("roi", ascending=False)
    if len(ranked) >= 2:
        best, worst = ranked.iloc[0], ranked.iloc[-1]
        sentences.append(
            f"Best return: {best['name']} (ROI {show('roi', best['roi'], 'percent')}); weakest: "
            f"{worst['name']} (ROI {show('roi', worst['roi'], 'percent')})."
        )
    if lift is None or lift.empty:
        sentences.append(
            "No campaign in the period held out a control group in this filter, so what the "
            "campaigns changed (beyond what customers would have done anyway) is not measured."
        )
    else:
        proven = lift[lift["lift_low"].fillna(-1) > 0]
        sentences.append(
            f"Against random control groups, {len(proven)} of {_plural(len(lift), 'campaign')} "
            "raised conversion beyond doubt (95% interval above zero); together the tested "
            f"campaigns added {show('revenue', float(lift['incremental_revenue'].sum()), 'money')}"
            " of revenue beyond what customers would have spent anyway."
        )
    return sentences


# ---------------------------------------------------------------- funnels


def funnel(steps: pd.DataFrame, window_days: int) -> list[str]:
    """How many entrants reach the end, and where most drop (funnels.FunnelResult.steps)."""
    if steps.empty or not steps["customers"].iloc[0]:
        first = steps["event_type"].iloc[0] if "event_type" in steps and len(steps) else "step 1"
        return [f"No customer did '{first}' in this period, so the funnel is empty."]
    names = _step_names(steps)
    entered, finished = int(steps["customers"].iloc[0]), int(steps["customers"].iloc[-1])
    sentences = [
        f"Of {_plural(entered, 'customer')} who did {names[0]}, {_count(finished)} "
        f"({_share(finished, entered)}) went on to {names[-1]} within {window_days} days."
    ]
    step_rates = steps["conversion_from_previous"].iloc[1:].astype(float)
    if len(step_rates) and step_rates.notna().any():
        i = int(step_rates.idxmin())
        lost = 1 - float(step_rates.loc[i])
        sentences.append(
            f"The biggest drop is from {names[i - 1]} to {names[i]}: {_pct(lost)} of "
            f"those who reached {names[i - 1]} did not go on."
        )
    return sentences


def _step_names(steps: pd.DataFrame) -> list[str]:
    for column in ("event_type", "step_name", "name", "stage"):
        if column in steps:
            return [str(v).replace("_", " ") for v in steps[column]]
    return [f"step {i}" for i in steps["step"]]


def leads(stages: pd.DataFrame, sources: pd.DataFrame) -> list[str]:
    """Leads created, won, and the best source by win rate (funnels.lead_* frames)."""
    if stages.empty or not stages["leads"].iloc[0]:
        return ["No leads created in this period."]
    created = int(stages["leads"].iloc[0])
    won_rows = stages.loc[stages["stage"] == "won", "leads"] if "stage" in stages else []
    won = int(won_rows.iloc[0]) if len(won_rows) else 0
    sentences = [
        f"{_plural(created, 'lead')} were created in the period; {_count(won)} "
        f"({_share(won, created)}) have been won so far."
    ]
    if not sources.empty and "win_rate" in sources and sources["win_rate"].notna().any():
        best = sources.loc[sources["win_rate"].idxmax()]
        sentences.append(
            f"The best source by win rate (won of closed leads) is {best['source']} "
            f"({show('win_rate', best['win_rate'], 'percent')})."
        )
    return sentences

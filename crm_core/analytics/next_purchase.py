"""When each customer will buy next: the chance of at least one purchase in the next 7, 30
and 90 days, and the days by which that chance reaches 25% and 75%, from the fitted
purchase model of the CLV view (crm_core/analytics/clv.py).

BG/NBD and MBG/NBD let a customer leave only right after a purchase, so a customer with no
purchase in (T, T + t] cannot have left during it. With P(alive) from the model and the
posterior purchase rate of a customer still alive, Gamma(r + x, alpha + T):

    P(none in t | x, t_x, T) = 1 - P(alive) + P(alive) ((alpha + T) / (alpha + T + t))^(r + x)

which also gives the day by which the chance of a purchase reaches q in closed form:

    t_q = (alpha + T) ((1 - q / P(alive))^(-1 / (r + x)) - 1)     (never when P(alive) <= q)

Pareto/NBD customers can leave at any time; there lifetimes' own
`conditional_probability_of_n_purchases_up_to_time(0, t, ...)` gives P(no purchase in t)
(Hardie's note 028, equation 16), and the day is read off a grid of days. A test checks
the closed form against a simulation of the BG/NBD process itself.

`backtest` scores the calibration fit of the CLV view at its calibration date and compares,
per window and by decile of the prediction, the predicted chance with the share of those
customers who did buy in that window.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crm_core.filters import IS_PURCHASE, Filters, completed_orders_where
from crm_core.schema import orders
from crm_core.store import Store

WINDOWS_DAYS = (7, 30, 90)
"""The windows of `p_purchase_7d`, `p_purchase_30d` and `p_purchase_90d`."""

WINDOW_QUANTILES = (0.25, 0.75)
"""The chance of a purchase at `next_purchase_from` and `next_purchase_to`."""

MAX_DAYS = 730
"""Beyond two years a date is no forecast: the window is left empty ("not likely")."""

DECILES = 10

PARETO_GRID = 160
"""Days (geometrically spaced up to MAX_DAYS) at which Pareto/NBD's chance is evaluated."""


def _params(model) -> dict[str, float]:
    return {k: float(v) for k, v in model.purchase_model_.params_.items()}


def _arrays(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))


def p_no_purchase(
    model, summary: pd.DataFrame, t_units: float, alive: np.ndarray | None = None
) -> np.ndarray:
    """P(no purchase in the next `t_units` model time units) per customer of `summary`
    (`alive`: their P(alive), when already computed)."""
    x, tx, T = _arrays(summary)
    if model.model == "pareto":
        fitted = model.purchase_model_
        with np.errstate(all="ignore"):
            none = fitted.conditional_probability_of_n_purchases_up_to_time(0, t_units, x, tx, T)
        return np.clip(np.asarray(none, dtype=float), 0.0, 1.0)
    prm = _params(model)
    alive = model.p_alive(summary) if alive is None else alive
    stay = ((prm["alpha"] + T) / (prm["alpha"] + T + t_units)) ** (prm["r"] + x)
    return 1.0 - alive + alive * stay


def p_purchase(
    model, summary: pd.DataFrame, t_units: float, alive: np.ndarray | None = None
) -> np.ndarray:
    """P(at least one purchase in the next `t_units` model time units) per customer."""
    return 1.0 - p_no_purchase(model, summary, t_units, alive)


def days_until(
    model, summary: pd.DataFrame, q: float, unit_days: int, alive: np.ndarray | None = None
) -> np.ndarray:
    """Days from the end of the history by which P(a purchase) reaches `q` (NaN: not within
    MAX_DAYS, or never)."""
    x, _tx, T = _arrays(summary)
    if model.model != "pareto":
        prm = _params(model)
        alive = model.p_alive(summary) if alive is None else alive
        with np.errstate(all="ignore"):
            units = (prm["alpha"] + T) * ((1.0 - q / alive) ** (-1.0 / (prm["r"] + x)) - 1.0)
        days = np.where(alive > q, units * unit_days, np.nan)
    else:  # lifetimes takes one t at a time: a grid of days, then a straight line between
        grid = np.geomspace(0.25, MAX_DAYS, PARETO_GRID)
        chance = np.vstack([p_purchase(model, summary, d / unit_days) for d in grid])
        above = chance >= q
        first = above.argmax(axis=0)
        reached = above.any(axis=0)
        before = np.maximum(first - 1, 0)
        cols = np.arange(len(summary))
        lo_p, hi_p = chance[before, cols], chance[first, cols]
        share = np.clip((q - lo_p) / np.where(hi_p > lo_p, hi_p - lo_p, 1.0), 0.0, 1.0)
        days = np.where(first == 0, grid[0], grid[before] + share * (grid[first] - grid[before]))
        days = np.where(reached, days, np.nan)
    return np.where(days <= MAX_DAYS, days, np.nan)


def predictions(model, summary: pd.DataFrame, unit_days: int, as_of: date) -> pd.DataFrame:
    """customer_id, p_purchase_7d / 30d / 90d, next_purchase_from and next_purchase_to (the
    days by which the chance of a purchase reaches 25% and 75%, as dates after `as_of`)."""
    out = pd.DataFrame({"customer_id": summary["customer_id"].to_numpy()})
    alive = None if model.model == "pareto" else model.p_alive(summary)  # once, not 5 times
    for days in WINDOWS_DAYS:
        out[f"p_purchase_{days}d"] = p_purchase(model, summary, days / unit_days, alive)
    start = pd.Timestamp(as_of)
    for name, q in zip(("next_purchase_from", "next_purchase_to"), WINDOW_QUANTILES, strict=True):
        days = np.ceil(days_until(model, summary, q, unit_days, alive))
        out[name] = start + pd.to_timedelta(days, unit="D")  # NaT: not within MAX_DAYS
    return out


def first_purchase_after(
    store: Store, day: date, until: date, filters: Filters | None = None
) -> pd.DataFrame:
    """customer_id, days: the days from the end of `day` to each customer's first purchase
    after it, up to the end of `until` (customers without one are absent)."""
    start = datetime.combine(day + timedelta(days=1), time.min)
    end = datetime.combine(until + timedelta(days=1), time.min)
    where = completed_orders_where(filters) if filters is not None else [IS_PURCHASE]
    first = sa.func.min(orders.c.ordered_at).label("first_after")
    stmt = (
        sa.select(orders.c.customer_id, first)
        .where(*where, orders.c.ordered_at >= start, orders.c.ordered_at < end)
        .group_by(orders.c.customer_id)
    )
    frame = store.read_df(stmt)
    frame["days"] = (pd.to_datetime(frame["first_after"]) - pd.Timestamp(start)).dt.days + 1
    return frame[["customer_id", "days"]]


def backtest(
    model,
    summary: pd.DataFrame,
    bought: pd.DataFrame,
    unit_days: int,
    holdout_days: int,
) -> pd.DataFrame:
    """Predicted against actual share buying in each window that fits in the holdout, by
    decile of the prediction: window_days, decile (1 = least likely), customers, predicted,
    actual. `bought` is `first_purchase_after` the calibration end."""
    first = summary[["customer_id"]].merge(bought, on="customer_id", how="left")["days"]
    first = first.to_numpy(dtype=float)
    rows = []
    for days in WINDOWS_DAYS:
        if days > holdout_days:
            continue
        predicted = p_purchase(model, summary, days / unit_days)
        actual = (first <= days).astype(float)
        known = np.isfinite(predicted)  # a fit that cannot say (overflow) is left out
        predicted, actual = predicted[known], actual[known]
        if not len(predicted):
            continue
        ranks = pd.Series(predicted).rank(method="first").to_numpy()
        decile = np.ceil(ranks * DECILES / len(ranks)).astype(int)
        frame = pd.DataFrame({"decile": decile, "predicted": predicted, "actual": actual})
        grouped = frame.groupby("decile").agg(
            customers=("actual", "size"), predicted=("predicted", "mean"), actual=("actual", "mean")
        )
        grouped.insert(0, "window_days", days)
        rows.append(grouped.reset_index())
    columns = ["window_days", "decile", "customers", "predicted", "actual"]
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.concat(rows, ignore_index=True)[columns]


def calibration_error(table: pd.DataFrame) -> pd.DataFrame:
    """Per window: the share predicted and the share that bought over all customers, and the
    largest gap between them in a decile (percentage points)."""
    rows = []
    for days, part in table.groupby("window_days"):
        weights = part["customers"]
        rows.append(
            {
                "window_days": int(days),
                "predicted": float(np.average(part["predicted"], weights=weights)),
                "actual": float(np.average(part["actual"], weights=weights)),
                "worst_decile_gap": float((part["predicted"] - part["actual"]).abs().max()),
            }
        )
    return pd.DataFrame(rows, columns=["window_days", "predicted", "actual", "worst_decile_gap"])

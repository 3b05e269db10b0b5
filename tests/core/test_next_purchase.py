"""Next purchase: the closed form checked against a simulation of the BG/NBD process itself,
the window's days against the chance they stand for, and Pareto/NBD by bisection."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, ParetoNBDFitter

from crm_core.analytics import next_purchase
from crm_core.analytics.clv import CLVModel

PARAMS = {"r": 0.6, "alpha": 20.0, "a": 0.7, "b": 3.0}  # days; a purchase a month or so
AGE, WINDOW = 180.0, 30.0


def _model(kind: str, params: dict[str, float]) -> CLVModel:
    model = CLVModel(model=kind)
    fitter = (ParetoNBDFitter if kind == "pareto" else BetaGeoFitter)()
    fitter.params_ = pd.Series(params)
    model.purchase_model_ = fitter
    return model


def simulate_bgnbd(n: int, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers born at 0 and watched to AGE: their (frequency, recency, T) and whether they
    bought in (AGE, AGE + WINDOW], from the BG/NBD story (Fader, Hardie and Lee 2005)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(PARAMS["r"], 1.0 / PARAMS["alpha"], n)
    drop = rng.beta(PARAMS["a"], PARAMS["b"], n)
    clock = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    x = np.zeros(n)
    tx = np.zeros(n)
    later = np.zeros(n, dtype=bool)
    for _ in range(400):
        if not alive.any():
            break
        clock = np.where(alive, clock + rng.exponential(1.0 / lam), clock)
        bought = alive & (clock <= AGE)
        x[bought] += 1
        tx[bought] = clock[bought]
        later |= alive & (clock > AGE) & (clock <= AGE + WINDOW)
        alive &= clock <= AGE  # past the age: the rest of their story is not needed
        alive &= ~(bought & (rng.random(n) < drop))  # may leave right after a purchase
    summary = pd.DataFrame(
        {"customer_id": np.arange(n), "frequency": x, "recency": tx, "T": np.full(n, AGE)}
    )
    return summary, later


def test_chance_of_a_purchase_matches_a_simulation_of_the_bgnbd_story():
    summary, bought = simulate_bgnbd(200_000)
    predicted = next_purchase.p_purchase(_model("bgnbd", PARAMS), summary, WINDOW)
    assert abs(predicted.mean() - bought.mean()) < 0.004
    decile = pd.qcut(pd.Series(predicted).rank(method="first"), 10, labels=False)
    table = pd.DataFrame({"d": decile, "p": predicted, "a": bought}).groupby("d").mean()
    assert (table["p"] - table["a"]).abs().max() < 0.015, table
    assert table["a"].iloc[-1] > 3 * table["a"].iloc[0]  # it ranks, too


@pytest.mark.parametrize("kind", ["bgnbd", "pareto"])
def test_window_days_are_where_the_chance_reaches_25_and_75_percent(kind):
    params = PARAMS if kind == "bgnbd" else {"r": 0.6, "alpha": 20.0, "s": 0.8, "beta": 300.0}
    model = _model(kind, params)
    summary = pd.DataFrame(
        {"customer_id": [1, 2, 3], "frequency": [8, 2, 0], "recency": [175, 40, 0], "T": [180] * 3}
    )
    for q in next_purchase.WINDOW_QUANTILES:
        days = next_purchase.days_until(model, summary, q, unit_days=1)
        reached = ~np.isnan(days)
        assert reached[0]  # a frequent, recent buyer
        chance = [
            next_purchase.p_purchase(model, summary.iloc[[i]], days[i])[0]
            for i in np.flatnonzero(reached)
        ]
        assert np.allclose(chance, q, atol=1e-3 if kind == "bgnbd" else 5e-3)
    assert np.isnan(next_purchase.days_until(model, summary, 0.75, 1)[1])  # lapsed: never


def test_predictions_are_dates_after_the_as_of_day_and_weeks_scale():
    model = _model("bgnbd", PARAMS)
    summary = pd.DataFrame(
        {"customer_id": [1, 2], "frequency": [8, 2], "recency": [175, 40], "T": [180, 180]}
    )
    out = next_purchase.predictions(model, summary, unit_days=1, as_of=date(2026, 6, 30))
    assert list(out.columns) == [
        "customer_id",
        "p_purchase_7d",
        "p_purchase_30d",
        "p_purchase_90d",
        "next_purchase_from",
        "next_purchase_to",
    ]
    first = out.iloc[0]
    assert first["p_purchase_7d"] < first["p_purchase_30d"] < first["p_purchase_90d"] < 1
    assert pd.Timestamp("2026-06-30") < first["next_purchase_from"] < first["next_purchase_to"]
    assert pd.isna(out.iloc[1]["next_purchase_to"])
    weekly = _model("bgnbd", {**PARAMS, "alpha": PARAMS["alpha"] / 7})
    in_weeks = summary.assign(recency=summary["recency"] / 7, T=summary["T"] / 7)
    same = next_purchase.predictions(weekly, in_weeks, unit_days=7, as_of=date(2026, 6, 30))
    assert np.allclose(same["p_purchase_30d"], out["p_purchase_30d"])


def test_backtest_on_the_demo_is_calibrated_and_ranks(demo_store):
    """Stated bounds: overall within 3 points per window; every decile within 20 points (80
    customers a decile on the tests' demo: about 5 points of noise); the top decile buys at
    least 5 times as often as the bottom half."""
    from crm_core.analytics import clv

    report = clv.analyse(demo_store)
    table = report.next_purchase
    assert sorted(table["window_days"].unique()) == [7, 30, 90]
    errors = next_purchase.calibration_error(table)
    assert (errors["predicted"] - errors["actual"]).abs().max() < 0.03, errors
    assert errors["worst_decile_gap"].max() < 0.20, errors
    for _days, part in table.groupby("window_days"):
        top = part[part["decile"] == 10]["actual"].iloc[0]
        bottom = part[part["decile"] <= 5]["actual"].mean()
        assert top > 5 * bottom
    values = report.customers
    assert values["p_purchase_90d"].between(0, 1).all()
    assert (values["p_purchase_7d"] <= values["p_purchase_30d"]).all()
    assert report.as_dict()["next_purchase_backtest"][0]["window_days"] == 7


def test_the_profile_line_says_what_the_window_means():
    from crm_core.profile import next_purchase_words

    base = {"p_purchase_7d": 0.12, "p_purchase_30d": 0.4, "p_purchase_90d": 0.995}
    both = next_purchase_words(
        base | {"next_purchase_from": date(2026, 7, 2), "next_purchase_to": date(2026, 8, 1)}
    )
    assert "most likely between 02 Jul and 01 Aug 2026" in both and ">99% within 90 days" in both
    half = next_purchase_words(base | {"next_purchase_from": date(2026, 12, 22)})
    assert "25% by 22 Dec 2026, and below 75% for two years" in half
    assert "unlikely" in next_purchase_words(base | {"next_purchase_from": None})
    assert next_purchase_words({"p_purchase_7d": None}) is None

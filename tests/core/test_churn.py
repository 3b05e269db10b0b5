"""Churn: labels from data, features without leakage, out-of-time validation, drivers."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from crm_core.analytics import churn
from crm_core.analytics.clv import NotReadyError
from crm_core.errors import CRMError
from crm_core.store import Store


def _load(store: Store, orders: list[tuple[int, int, str]], customers=(1, 2, 3)) -> None:
    with store.begin() as conn:
        store.insert_df(
            conn,
            "customers",
            pd.DataFrame(
                {
                    "customer_id": list(customers),
                    "signup_at": pd.Timestamp("2023-01-01"),
                    "consent_email": True,
                }
            ),
        )
        frame = pd.DataFrame(orders, columns=["order_id", "customer_id", "ordered_at"])
        frame["ordered_at"] = pd.to_datetime(frame["ordered_at"])
        frame["amount"] = 50.0
        frame["status"] = "completed"
        store.insert_df(conn, "orders", frame)


def test_label_and_features_use_only_what_was_known(store):
    _load(
        store,
        [
            (1, 1, "2024-01-10"),  # active, buys again within 90 days -> stays
            (2, 1, "2024-03-01"),
            (3, 2, "2024-01-20"),  # active, nothing after -> churns
            (4, 3, "2022-06-01"),  # last order over a year before: not active
            (5, 2, "2024-06-15"),  # after the window: does not save customer 2
        ],
    )
    data = churn.build_dataset(store, date(2024, 1, 31), 90).set_index("customer_id")
    assert list(data.index) == [1, 2]
    assert data.loc[1, "churned"] == 0 and data.loc[2, "churned"] == 1
    assert data.loc[1, "frequency"] == 1  # the March order is after the cutoff: not a feature
    assert data.loc[1, "recency_days"] == pytest.approx(22.0)  # 1 Feb 00:00 - 10 Jan 00:00
    assert np.isnan(data.loc[1, "nps"])  # no survey answers: missing, not zero
    current = churn.build_dataset(store, date(2024, 6, 30), labelled=False)
    assert "churned" not in current and set(current["customer_id"]) == {1, 2}


def test_bands_are_data():
    assert list(churn.band(np.array([0.1, 0.3, 0.59, 0.6, 0.95]))) == [
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


def test_gains_reach_every_churner_at_100_percent():
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
    table = churn.gains(y, {"model": y + 0.0, "baseline": np.zeros(10)})
    assert table["model"].iloc[3] == pytest.approx(1.0)  # top 30% holds all three
    assert table["model"].iloc[-1] == table["baseline"].iloc[-1] == pytest.approx(1.0)


def test_driver_sentence_in_marketer_words():
    data = pd.DataFrame(
        {"open_tickets": [0] * 80 + [2] * 20, "churned": [0] * 60 + [1] * 20 + [1] * 15 + [0] * 5}
    )
    sentence = churn.describe_driver(data, "open_tickets")
    assert sentence.startswith("Customers with open support tickets of 2 or more churn 3.0x")


def test_too_little_data_says_what_is_missing(store):
    with pytest.raises(NotReadyError, match="import `orders`"):
        churn.analyse(store)
    _load(store, [(1, 1, "2024-01-10"), (2, 2, "2024-06-10")])
    with pytest.raises(NotReadyError):
        churn.analyse(store)


def test_unknown_model_is_a_clear_error(demo_store):
    with pytest.raises(CRMError, match="allowed: hgb, logit"):
        churn.analyse(demo_store, churn.ChurnSettings(model="forest"))


@pytest.fixture(scope="module")
def demo_reports(demo_store_path) -> dict[str, churn.ChurnReport]:
    store = Store(f"duckdb:///{demo_store_path}")
    reports = {kind: churn.analyse(store, churn.ChurnSettings(model=kind)) for kind in churn.MODELS}
    store.dispose()
    return reports


@pytest.mark.parametrize("kind", list(churn.MODELS))
def test_model_beats_recency_baseline_on_the_later_window(demo_reports, kind):
    report = demo_reports[kind]
    assert report.valid_cutoff > report.train_cutoff
    assert (report.valid_cutoff - report.train_cutoff).days == report.settings.window_days
    assert report.metric("roc_auc") > report.metric("roc_auc", "baseline") + 0.01
    assert report.metric("pr_auc") > report.metric("pr_auc", "baseline")
    assert report.metric("brier") < report.metric("brier", "baseline")


def test_report_explains_and_scores(demo_reports):
    report = demo_reports["hgb"]
    assert 1 <= len(report.drivers) <= 5
    assert all(s.startswith(("Customers with", "Churn varies")) for s in report.drivers["sentence"])
    assert report.dependence and all(
        f.churn_probability.between(0, 1).all() for f in report.dependence.values()
    )
    assert report.scores["churn_risk"].between(0, 1).all()
    assert set(report.scores["churn_band"]) <= {"low", "medium", "high"}
    assert len(report.calibration) >= 5
    figures = report.as_dict()
    assert figures["metrics"]["model"]["roc_auc"] > 0.7 and figures["drivers"]


def _synthetic(n: int, seed: int, recency_shift: float = 0.0) -> pd.DataFrame:
    """Customers whose churn depends on recency alone; every other feature is noise."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({f: rng.normal(size=n) for f in churn.FEATURES})
    data["recency_days"] = rng.uniform(0, 300, n) + recency_shift
    p = 1 / (1 + np.exp(-(data["recency_days"] - 150) / 25))
    data["churned"] = (rng.random(n) < p).astype(int)
    return data


@pytest.mark.parametrize("kind", ["hgb", "logit"])
def test_contributions_add_up_to_the_models_own_log_odds(kind):
    data = _synthetic(3_000, seed=2)
    data.loc[data.index % 4 == 0, "nps"] = np.nan  # never answered: a missing value
    model = churn.ChurnModel(kind=kind).fit(data)
    parts = churn.log_odds_contributions(model, data)
    risk = model.predict_proba(data)
    rest = np.log(risk / (1 - risk)) - parts.sum(axis=1).to_numpy()
    assert rest.max() - rest.min() < 1e-9  # the same constant (the average) for everyone


@pytest.mark.parametrize("kind", ["hgb", "logit"])
def test_reasons_name_the_feature_that_drives_a_customers_risk(kind):
    data = _synthetic(3_000, seed=1)
    model = churn.ChurnModel(kind=kind).fit(data)
    late = data.head(3).copy()
    late["recency_days"] = [280.0, 290.0, 20.0]
    reasons = churn.churn_reasons(model, late)
    assert reasons.iloc[0].startswith("days since the last order 280 (odds x")
    assert reasons.iloc[1].startswith("days since the last order 290 (odds x")
    assert reasons.iloc[2] is None or "days since the last order" not in reasons.iloc[2]
    parts = churn.log_odds_contributions(model, late)
    assert parts.loc[late.index[0]].idxmax() == "recency_days"
    assert parts.loc[late.index[0], "recency_days"] > np.log(3)  # 280 days: odds x3 or more
    assert parts.loc[late.index[2], "recency_days"] < 0  # 20 days pulls the risk down


def test_population_stability_is_zero_for_the_same_data_and_large_for_a_shift():
    rng = np.random.default_rng(3)
    before = pd.Series(rng.normal(size=5_000))
    assert churn.population_stability(before, before) == pytest.approx(0.0, abs=1e-9)
    same = pd.Series(rng.normal(size=5_000))
    assert churn.population_stability(before, same) < churn.PSI_MOVED
    assert churn.population_stability(before, same + 1.0) > churn.PSI_SHIFTED
    gone = pd.Series(np.zeros(5_000))  # e.g. no e-mail opens at all at scoring
    opened = pd.Series(rng.poisson(2.0, 5_000).astype(float))
    assert churn.population_stability(opened, gone) > churn.PSI_SHIFTED


def test_drift_check_flags_the_feature_that_moved_and_warns():
    trained_on = _synthetic(3_000, seed=4)
    model = churn.ChurnModel(kind="hgb").fit(trained_on)
    scored = _synthetic(3_000, seed=5, recency_shift=120.0)
    drift = churn.feature_drift(model, trained_on, scored)
    assert drift.iloc[0]["feature"] == "recency_days"
    assert drift.iloc[0]["status"] == "shifted"
    assert (drift.iloc[1:]["status"] == "stable").all()
    notes = churn.drift_notes(drift)
    assert len(notes) == 1 and "days since the last order (shifted" in notes[0]
    assert churn.drift_notes(churn.feature_drift(model, trained_on, trained_on)) == []

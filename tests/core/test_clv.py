"""CLV: oracle tests against the published CDNOW parameters, weights, degenerate input."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from crm_core import datasets
from crm_core.analytics import clv, rfm
from crm_core.errors import CRMError

CAL_END = date(1997, 9, 30)
CDNOW_END = date(1998, 6, 30)


@pytest.fixture(scope="module")
def cdnow_summary(tmp_path_factory) -> pd.DataFrame:
    """The CDNOW sample imported through our own import, summarised in weeks at 1997-09-30."""
    from crm_core.store import Store

    path = tmp_path_factory.mktemp("cdnow") / "crm.duckdb"
    store = Store(f"duckdb:///{path}")
    store.init_schema()
    datasets.load_cdnow(store)
    summary = clv.rfm_summary(store, CAL_END, observation_end=CDNOW_END, time_unit="weeks")
    store.dispose()
    return summary


def test_rfm_summary_follows_the_fader_hardie_lee_convention(cdnow_summary):
    from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

    ref = load_cdnow_summary_data_with_monetary_value()
    ours = cdnow_summary.set_index("customer_id")
    assert len(ours) == 2_357
    assert (ours["frequency"] == ref["frequency"]).all()
    assert np.allclose(ours["recency"], ref["recency"], atol=0.006)  # lifetimes rounds to 2dp
    assert np.allclose(ours["T"], ref["T"], atol=0.006)
    assert np.allclose(ours["monetary_value"], ref["monetary_value"], atol=0.006)


def test_bgnbd_matches_fader_hardie_lee_2005(cdnow_summary):
    model = clv.CLVModel(model="bgnbd").fit(cdnow_summary)
    published = datasets.CDNOW_PUBLISHED_BGNBD  # r .243, alpha 4.414, a .793, b 2.426
    for name, value in published.items():
        assert model.params[name] == pytest.approx(value, abs=0.0015), name
    assert model.penalizer_ == 0.0 and model.fit_note_ == ""


def test_gamma_gamma_matches_fader_hardie_2013_note(cdnow_summary):
    """Fader & Hardie, "The Gamma-Gamma model of monetary value" (2013): p 6.25, q 3.74,
    v 15.44 on the 946 CDNOW sample customers with repeat purchases."""
    model = clv.CLVModel().fit(cdnow_summary)
    assert (cdnow_summary["frequency"] > 0).sum() == 946
    for name, value in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert model.params[name] == pytest.approx(value, abs=0.006), name


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd", "pareto"])
def test_weighted_fit_equals_unweighted(cdnow_summary, kind):
    weighted = clv.CLVModel(model=kind).fit(cdnow_summary)
    plain = clv.CLVModel(model=kind, weighted=False).fit(cdnow_summary)
    assert weighted.n_fit_rows_ < len(cdnow_summary) / 2
    for name, value in plain.params.items():
        assert weighted.params[name] == pytest.approx(value, rel=2e-3), name


def test_predictions_are_sane(cdnow_summary):
    model = clv.CLVModel().fit(cdnow_summary)
    alive = model.p_alive(cdnow_summary)
    assert ((alive > 0) & (alive <= 1)).all()
    one_timers = cdnow_summary["frequency"] == 0
    assert np.allclose(alive[one_timers.to_numpy()], 1.0)  # BG/NBD: no repeat, never left
    values = model.clv(cdnow_summary, months=12, monthly_discount=0.01, unit_days=7)
    assert (values >= 0).all() and values.mean() > 0
    longer = model.clv(cdnow_summary, months=24, monthly_discount=0.01, unit_days=7)
    assert (longer >= values - 1e-9).all()
    aov = model.expected_aov(cdnow_summary)
    assert np.allclose(aov[one_timers.to_numpy()], model.population_aov_)


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd", "pareto"])
def test_expected_purchases_by_pair_equal_lifetimes_per_customer(cdnow_summary, kind):
    """The (frequency, T)-pair shortcut gives lifetimes' own per-customer figures."""
    model = clv.CLVModel(model=kind).fit(cdnow_summary)
    x, tx, T = (cdnow_summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    horizons = [4.3, 26.1, 52.2]
    ours = model.expected_purchases_by_horizon(cdnow_summary, horizons)
    for row, t in zip(ours, horizons, strict=True):
        direct = model.purchase_model_.conditional_expected_number_of_purchases_up_to_time(
            t, x, tx, T
        )
        np.testing.assert_allclose(row, direct, rtol=1e-9, atol=1e-12)


def test_pareto_fit_is_repeatable(cdnow_summary):
    """lifetimes draws the Pareto/NBD start from numpy's global generator: the same data must
    still give the same fit, whatever that generator's state."""
    np.random.seed(1)
    one = clv.CLVModel(model="pareto").fit(cdnow_summary).params
    np.random.seed(2)
    two = clv.CLVModel(model="pareto").fit(cdnow_summary).params
    assert one == two


def test_pareto_frequent_buyer_who_bought_on_the_last_day_is_alive(cdnow_summary):
    """lifetimes' Pareto/NBD gives 0/0 (NaN) for a frequent buyer whose last purchase is on the
    last day; P(alive) is exactly 1 there and the expected purchases are finite (the backtest
    cards showed nan)."""
    model = clv.CLVModel(model="pareto").fit(cdnow_summary)
    buyer = pd.DataFrame({"frequency": [241.0], "recency": [39.0], "T": [39.0]})
    fitted = model.purchase_model_
    with np.errstate(all="ignore"):
        assert not np.isfinite(fitted.conditional_probability_alive(241.0, 39.0, 39.0))
    assert model.p_alive(buyer)[0] == 1.0
    r, alpha, s, beta = (fitted.params_[k] for k in ("r", "alpha", "s", "beta"))
    t, T = 26.0, 39.0
    exact = (
        (r + 241)
        * (beta + T)
        / ((alpha + T) * (s - 1))
        * (1 - ((beta + T) / (beta + T + t)) ** (s - 1))
    )
    assert model.expected_purchases(buyer, t)[0] == pytest.approx(exact, rel=1e-12)
    # Almost the same history a moment earlier: lifetimes' own figure, close to the limit.
    near = pd.DataFrame({"frequency": [241.0], "recency": [38.999], "T": [39.0]})
    assert model.expected_purchases(near, t)[0] == pytest.approx(exact, rel=1e-3)


def test_analyse_backtests_the_cdnow_holdout(tmp_path):
    from crm_core.store import Store

    store = Store(f"duckdb:///{tmp_path / 'crm.duckdb'}")
    store.init_schema()
    datasets.load_cdnow(store)
    report = clv.analyse(
        store, clv.CLVSettings(time_unit="weeks", calibration_end=CAL_END, horizon_months=6)
    )
    bt = report.backtest
    assert bt.holdout_units == pytest.approx(39.0)
    assert bt.params["r"] == pytest.approx(0.243, abs=0.0015)
    assert bt.actual_total == report.backtest.by_frequency.eval("actual * customers").sum()
    assert abs(bt.total_error) < 0.2 and bt.mae < 1.0
    assert bt.period_histogram["data"].sum() == bt.period_histogram["model"].sum() == 2_357
    assert report.alive_matrix.notna().to_numpy().sum() > 0
    assert set(report.customers["rfm_segment"]) <= set(rfm.SEGMENT_NAMES) | {"(none)"}
    assert report.customers["rfm_segment"].isin(rfm.SEGMENT_NAMES).mean() > 0.9
    figures = report.as_dict()
    assert figures["calibration_params"]["alpha"] == pytest.approx(4.414, abs=0.002)
    store.dispose()


def _summary(**columns) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    if "monetary_value" not in frame:
        frame["monetary_value"] = np.where(frame["frequency"] > 0, 20.0, 0.0)
    return frame


def test_all_one_time_buyers_is_a_clear_error():
    summary = _summary(frequency=[0] * 50, recency=[0.0] * 50, T=np.arange(50) + 10.0)
    with pytest.raises(CRMError, match="bought only once"):
        clv.CLVModel().fit(summary)


def test_single_customer_is_a_clear_error():
    with pytest.raises(CRMError, match="got 1"):
        clv.CLVModel().fit(_summary(frequency=[2], recency=[5.0], T=[10.0]))


def test_recency_greater_than_t_is_a_clear_error():
    summary = _summary(frequency=[1, 2, 0], recency=[12.0, 3.0, 0.0], T=[10.0, 10.0, 10.0])
    with pytest.raises(CRMError, match="recency greater than T"):
        clv.CLVModel().fit(summary)


@pytest.mark.parametrize("spend", [0.0, -5.0, np.nan])
def test_repeat_buyers_without_paid_spend_are_left_out_of_the_spend_model(cdnow_summary, spend):
    summary = cdnow_summary.copy()
    odd = summary.index[summary["frequency"] > 0][:3]
    summary.loc[odd, "monetary_value"] = spend
    model = clv.CLVModel().fit(summary)
    without = clv.CLVModel().fit(summary.drop(index=odd))
    for name in ("p", "q", "v"):  # the spend model is the one fitted without them
        assert model.params[name] == pytest.approx(without.params[name], rel=1e-6)
    assert model.spend_left_out_ == 3
    assert "3 repeat customer(s) with a zero or negative average spend" in model.spend_note_
    aov = model.expected_aov(summary)
    assert (aov[summary.index.get_indexer(odd)] == 0).all()
    assert (np.delete(aov, summary.index.get_indexer(odd)) > 0).all()


def test_too_few_paying_repeat_buyers_is_a_clear_reason(cdnow_summary):
    summary = cdnow_summary.copy()
    summary.loc[summary["frequency"] > 0, "monetary_value"] = 0.0
    with pytest.raises(clv.NotReadyError, match="0 repeat customers have a positive"):
        clv.CLVModel().fit(summary)


def test_unknown_model_and_time_unit_are_clear_errors(cdnow_summary):
    with pytest.raises(CRMError, match="allowed: bgnbd"):
        clv.CLVModel(model="magic").fit(cdnow_summary)
    with pytest.raises(CRMError, match="allowed: days, weeks"):
        clv.horizon_units(12, "fortnights")


def test_failed_fit_is_retried_with_a_penalizer(monkeypatch, cdnow_summary):
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import ConvergenceError

    real_fit = BetaGeoFitter.fit

    def flaky(self, *args, **kwargs):
        if self.penalizer_coef == 0:
            raise ConvergenceError("The model did not converge.")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(BetaGeoFitter, "fit", flaky)
    model = clv.CLVModel().fit(cdnow_summary)
    assert model.penalizer_ == clv.PENALIZER_RETRIES[0]
    assert "did not converge" in model.fit_note_ and "penalizer 0.001" in model.fit_note_


def test_readiness_says_what_is_missing(store):
    with pytest.raises(clv.NotReadyError) as caught:
        clv.analyse(store)
    assert "import `orders`" in caught.value.problems[0]
    summary = _summary(frequency=[0, 1], recency=[0.0, 3.0], T=[5.0, 9.0])
    problems = clv.readiness(summary, calibration_days=30, holdout_days=5)
    assert len(problems) == 4
    assert any("repeat buyers" in p for p in problems)


def test_demo_store_recovers_sensible_parameters(demo_store):
    from crm_core import demo

    report = clv.analyse(demo_store)
    truth = demo.GAMMA_GAMMA_PARAMS
    mean_aov = truth["p"] * truth["v"] / (truth["q"] - 1)
    fitted = report.params
    assert fitted["p"] * fitted["v"] / (fitted["q"] - 1) == pytest.approx(mean_aov, rel=0.25)
    assert abs(report.backtest.total_error) < 0.25


def test_pareto_on_the_demo_store_falls_back_where_the_shortcut_cannot(demo_store):
    """Some demo (frequency, T) pairs have P(alive | x, T, T) of 0 under Pareto/NBD: those
    customers get lifetimes' per-customer formula, everyone gets a finite value."""
    first, last = clv.data_span(demo_store)
    summary = clv.rfm_summary(demo_store, last)
    model = clv.CLVModel(model="pareto").fit(summary)
    x, tx, T = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    ours = model.expected_purchases_by_horizon(summary, [30.4, 365.25])
    for row, t in zip(ours, [30.4, 365.25], strict=True):
        direct = model.purchase_model_.conditional_expected_number_of_purchases_up_to_time(
            t, x, tx, T
        )
        np.testing.assert_allclose(row, direct, rtol=1e-9, atol=1e-12)
    assert np.isfinite(model.clv(summary, months=12, monthly_discount=0.01, unit_days=1)).all()

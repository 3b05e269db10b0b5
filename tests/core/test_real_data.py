"""Models that survive real data: which orders count, thin data, odd customers.

Every store here is built the way a user builds one: tiny CSV files imported with
`ingest.import_files`. Which orders count is one rule (`filters.IS_PURCHASE`); a model the
data cannot support gives one clear reason and the other model is still scored.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_core import cli, features, ingest, metrics, profile, scoring
from crm_core.analytics import churn, clustering, clv, cohorts, rfm
from crm_core.errors import CRMError
from crm_core.filters import Filters, order_date_range
from crm_core.store import Store

START = datetime(2024, 1, 1)


def _customers(ids) -> pd.DataFrame:
    ids = sorted({int(i) for i in ids})
    return pd.DataFrame(
        {"customer_id": ids, "signup_at": "2023-12-01 00:00:00", "consent_email": "true"}
    )


def _import(
    store: Store, tmp_path: Path, orders: pd.DataFrame, customers: pd.DataFrame | None = None
) -> Store:
    """Write customers.csv (and orders.csv) and import them as a user would."""
    customers = _customers(orders["customer_id"]) if customers is None else customers
    files = [("customers", tmp_path / "customers.csv")]
    customers.to_csv(files[0][1], index=False)
    if len(orders):
        frame = orders.copy()
        frame["ordered_at"] = pd.to_datetime(frame["ordered_at"]).dt.strftime("%Y-%m-%d %H:%M:%S")
        files.append(("orders", tmp_path / "orders.csv"))
        frame.to_csv(files[1][1], index=False)
    ingest.import_files(store, files)
    return store


def _history(customers: int = 300, days: int = 420, seed: int = 1) -> pd.DataFrame:
    """A plausible shop: customers arrive over the first 60% of `days`, buy at their own
    rate (gamma) until they drop out (exponential lifetime); amounts are gamma too."""
    rng = np.random.default_rng(seed)
    rows = []
    for customer in range(1, customers + 1):
        t = rng.uniform(0, days * 0.6)
        rate = rng.gamma(2.0, 1 / 80)
        end = min(days, t + rng.exponential(250))
        while t < end:
            amount = round(float(rng.gamma(3, 20)), 2)
            rows.append((customer, START + timedelta(days=float(t)), amount))
            t += rng.exponential(1 / rate)
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at", "amount"])
    frame.insert(0, "order_id", range(1, len(frame) + 1))
    frame["status"] = "completed"
    return frame


def _repeat_buyers(orders: pd.DataFrame) -> int:
    """Customers with purchases on 2 or more days."""
    days = orders.groupby("customer_id")["ordered_at"].agg(lambda t: t.dt.date.nunique())
    return int((days > 1).sum())


def _scores(store: Store) -> pd.DataFrame:
    return store.read_df("SELECT * FROM customer_scores ORDER BY customer_id").set_index(
        "customer_id"
    )


def _not_ready(store: Store) -> clv.NotReadyError:
    with pytest.raises(clv.NotReadyError) as caught:
        scoring.score(store)
    return caught.value


# --- which orders count ---------------------------------------------------------------------

RULE_ORDERS = pd.DataFrame(
    [
        (1, 1, "2024-03-01 10:00", 100.0, "completed"),
        (2, 1, "2024-03-10 10:00", 0.0, "completed"),  # a free order: a purchase of 0
        (3, 1, "2024-03-20 09:00", 50.0, "refunded"),
        (4, 2, "2024-03-05 10:00", 40.0, None),  # no status (empty cell): a purchase
        (5, 2, "2024-03-15 10:00", 30.0, "cancelled"),
        (6, 3, "2024-03-12 10:00", 70.0, "refunded"),  # refunded only: never a buyer
        (7, 4, "2024-03-20 10:00", 0.0, "completed"),  # zero-value only: a buyer of 0
        (8, 5, "2024-03-25 10:00", 10.0, "cancelled"),  # after the last purchase
    ],
    columns=["order_id", "customer_id", "ordered_at", "amount", "status"],
)


@pytest.mark.both_stores
def test_one_order_rule_for_kpis_360_rfm_cohorts_clv_churn_and_profile(store, tmp_path):
    _import(store, tmp_path, RULE_ORDERS)
    buyers = {1: (2, 100.0), 2: (1, 40.0), 4: (1, 0.0)}  # purchases, spend
    last = date(2024, 3, 20)  # cancelled order of the 25th is no purchase: not the as-of day
    assert order_date_range(store) == (date(2024, 3, 1), last)

    kpis = metrics.compute_kpis(store, Filters(date(2024, 3, 1), date(2024, 3, 31)))
    assert kpis["revenue"].value == pytest.approx(140.0)
    assert kpis["orders"].value == 4
    assert kpis["active_customers"].value == 3 and kpis["new_customers"].value == 3
    assert kpis["aov"].value == pytest.approx(35.0)
    assert kpis["repeat_purchase_rate"].value == pytest.approx(1 / 3)

    features.ensure_fresh(store)
    c360 = store.read_df(features.customer_360.select()).set_index("customer_id")
    for customer in (1, 2, 3, 4, 5):
        frequency, spend = buyers.get(customer, (0, 0.0))
        assert c360.loc[customer, "frequency"] == frequency, customer
        assert float(c360.loc[customer, "monetary"]) == pytest.approx(spend), customer
    assert (c360["as_of"].dt.date == last).all()
    assert c360.loc[1, "last_order_at"] == pd.Timestamp("2024-03-10 10:00")
    assert pd.isna(c360.loc[3, "rfm_segment"]) and pd.isna(c360.loc[5, "rfm_segment"])

    scores = rfm.rfm_scores(store, last).set_index("customer_id")
    assert set(scores.index) == set(buyers)
    assert {c: (int(r.frequency), r.monetary) for c, r in scores.iterrows()} == buyers

    summary = clv.rfm_summary(store, last).set_index("customer_id")
    assert set(summary.index) == set(buyers)
    assert summary.loc[1, "frequency"] == 1  # two purchase days, the second free
    assert summary.loc[1, "monetary_value"] == 0.0
    assert summary.loc[4, "frequency"] == 0 and summary.loc[2, "frequency"] == 0

    data = churn.build_dataset(store, last, labelled=False).set_index("customer_id")
    assert set(data.index) == set(buyers)
    assert {c: (int(r.frequency), r.monetary) for c, r in data.iterrows()} == buyers
    assert data.loc[1, "refunds"] == 1  # refunds are a churn feature of their own

    retention = cohorts.cohort_retention(store, Filters(date(2024, 3, 1), date(2024, 3, 31)))
    assert retention["customers"].tolist() == [3]

    history = profile.history(store, 2, "admin")["orders"]
    spend = profile.monthly_spend(history)
    assert spend["revenue"].tolist() == [40.0] and spend["orders"].tolist() == [1]


# --- thin data: a clear reason per model ----------------------------------------------------


@pytest.mark.both_stores
def test_no_orders_at_all_says_so_for_both_models(store, tmp_path, capsys):
    _import(store, tmp_path, RULE_ORDERS.iloc[:0], _customers([1, 2, 3]))
    error = _not_ready(store)
    assert error.problems == [
        "CLV: the store has no orders; import `orders`: the models need purchases of at "
        "least 50 customers, 20 of them on 2 or more days.",
        "Churn: the store has no orders; import `orders`: the classifier needs at least 100 "
        "customers active in each window, 10 of whom buy again and 10 who do not.",
        "Nothing was scored; the scores in the store are unchanged.",
    ]
    assert str(error).startswith("Scoring: CLV: the store has no orders;")
    assert _scores(store).empty
    assert cli.main(["score", "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: Scoring: CLV: the store has no orders;")
    with pytest.raises(CRMError, match=r"^Clustering: 0 customers have a purchase"):
        clustering.choose_k(clustering.load_features(store, clustering.DEFAULT_FEATURES))


@pytest.mark.both_stores
def test_every_order_refunded_or_cancelled_is_no_purchase(store, tmp_path):
    orders = _history(customers=120)
    orders["status"] = np.where(orders["order_id"] % 4 == 0, "cancelled", "refunded")
    _import(store, tmp_path, orders)
    counts = orders["status"].value_counts()
    statuses = f"{counts['refunded']:,} refunded, {counts['cancelled']:,} cancelled"
    error = _not_ready(store)
    assert error.problems[0] == (
        f"CLV: none of the {len(orders):,} orders is a purchase ({statuses}): refunded and "
        "cancelled orders never count; the models need purchases of at least 50 customers, "
        "20 of them on 2 or more days. Import the completed orders (or map the file's paid "
        "status to `completed` when importing `orders`)."
    )
    assert error.problems[1].startswith(
        f"Churn: none of the {len(orders):,} orders is a purchase ({statuses}): "
    )
    kpis = metrics.compute_kpis(store, Filters(date(2024, 1, 1), date(2025, 3, 1)))
    assert kpis["revenue"].value == 0 and kpis["active_customers"].value == 0


def test_one_day_of_orders(store, tmp_path):
    orders = _history()
    orders["ordered_at"] = pd.Timestamp("2024-05-01 10:00") + pd.to_timedelta(
        orders["order_id"] % 600, unit="min"
    )
    _import(store, tmp_path, orders)
    error = _not_ready(store)
    assert error.problems[:2] == [
        "CLV: the purchases span 1 day (2024-05-01); the models need at least 120 days of "
        "history, half to fit them and half to check their predictions. Import a longer "
        "history.",
        "Churn: the purchases span 1 day (2024-05-01); a 90-day churn window needs at least "
        "270 days: 90 of history before the training cutoff, then a window to train and one "
        "to validate. Import orders going back to 2023-08-05 or earlier, or choose a shorter "
        "churn window (the page's churn window, or `score --window DAYS`).",
    ]
    # What does not need a history still works: the 360 table, RFM and clustering.
    assert features.refresh(store) == 300
    assert len(rfm.rfm_scores(store, date(2024, 5, 1))) == 300
    found = clustering.fit_clusters(clustering.load_features(store, clustering.DEFAULT_FEATURES), 3)
    assert len(found.labels) == 300


def test_all_one_time_buyers(store, tmp_path):
    # 300 customers, one order each, one every 1.4 days over 420 days
    orders = pd.DataFrame(
        {
            "order_id": range(1, 301),
            "customer_id": range(1, 301),
            "ordered_at": [START + timedelta(days=1.4 * i) for i in range(300)],
            "amount": 25.0,
            "status": "completed",
        }
    )
    _import(store, tmp_path, orders)
    last = orders["ordered_at"].max()
    train_cutoff = last.date() - timedelta(days=180)
    cutoff_end = datetime.combine(train_cutoff + timedelta(days=1), datetime.min.time())
    in_year = orders["ordered_at"].between(cutoff_end - timedelta(days=365), cutoff_end)
    active = int((in_year & (orders["ordered_at"] < cutoff_end)).sum())
    error = _not_ready(store)
    assert error.problems[:2] == [
        "CLV: each of the 300 customers has purchases on one day only (no repeat buyer); the "
        "purchase model needs repeat buyers (at least 20 with purchases on 2 or more days). "
        "Import a longer history.",
        f"Churn: in the training window {active:,} of {active:,} active customers bought "
        "nothing in the 90-day window after the cutoff and 0 bought again; at least 10 of "
        "each are needed. With one-time buyers nobody stays: import a longer history, or "
        "choose a longer churn window (the page's churn window, or `score --window DAYS`).",
    ]


def test_fewer_customers_than_the_models_need(store, tmp_path):
    orders = _history(customers=30)
    _import(store, tmp_path, orders)
    repeat = _repeat_buyers(orders)
    error = _not_ready(store)
    assert error.problems[0] == (
        f"CLV: 30 customers have a purchase, {repeat} of them on 2 or more days; the models "
        "need at least 50 customers and 20 repeat buyers. Import more customers' orders."
    )
    assert error.problems[1].startswith("Churn: the training window has ")
    assert error.problems[1].endswith(
        "active customers (a purchase in the year before its cutoff); at least 100 are "
        "needed. Import more customers' orders."
    )


def test_enough_customers_for_clv_but_not_for_churn_still_scores_clv(store, tmp_path):
    orders = _history(customers=90)
    _import(store, tmp_path, orders)
    result = scoring.score(store)
    assert result.churn_report is None and result.clv_report is not None
    train = churn.build_dataset(store, result.clv_report.observation_end - timedelta(days=180))
    reason = (
        f"Churn: the training window has {len(train)} active customers (a purchase in the "
        "year before its cutoff); at least 100 are needed. Import more customers' orders."
    )
    assert result.left_out == {"churn": reason}
    assert result.messages()[0] == f"{reason} So churn_risk and churn_band are empty."
    assert result.model_version.startswith("clv=bgnbd+gg;churn=none;data_to=")
    scores = _scores(store)
    assert len(scores) == result.rows == 90  # every buyer valued
    assert scores["clv"].notna().all() and scores["p_alive"].between(0, 1).all()
    assert scores["churn_risk"].isna().all() and scores["churn_band"].isna().all()


def test_a_history_long_enough_for_clv_but_not_churn(store, tmp_path):
    orders = _history()
    orders = orders[orders["ordered_at"] < START + timedelta(days=200)]
    _import(store, tmp_path, orders)
    result = scoring.score(store)
    first, last = orders["ordered_at"].min().date(), orders["ordered_at"].max().date()
    assert result.left_out["churn"].startswith(
        f"Churn: the purchases span {(last - first).days + 1} days ({first} to {last}); a "
        "90-day churn window needs at least 270 days"
    )
    assert "clv" not in result.left_out
    assert _scores(store)["clv"].notna().all()


def test_zero_value_orders_only_score_churn_and_say_why_clv_is_empty(store, tmp_path, capsys):
    orders = _history()
    orders["amount"] = 0.0
    _import(store, tmp_path, orders)
    repeat = _repeat_buyers(orders)
    reason = (
        f"CLV: 0 repeat customers have a positive average spend (and {repeat} zero or "
        "negative: their repeat orders are all of zero value); the spend model (Gamma-Gamma) "
        "needs at least 20. Import the orders' amounts: a zero-value order counts as a "
        "purchase but adds no spend."
    )
    assert cli.main(["score", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"Left out: {reason} So clv and p_alive are empty." in out
    assert "Churn (Histogram gradient boosting, 90-day window): validation ROC AUC" in out
    scores = _scores(store)
    assert scores["clv"].isna().all() and scores["churn_risk"].notna().all()
    assert cli.main(["clv"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {reason}"


# --- a handful of odd customers in a normal store ---------------------------------------------


def test_odd_customers_do_not_stop_scoring_for_everyone(store, tmp_path, capsys):
    orders = _history()
    normal_buyers = set(orders["customer_id"])
    odd = pd.DataFrame(
        [
            # 901 buys three times; the repeat orders are free: a zero-average repeat buyer
            (901, "2024-02-01 10:00", 80.0, "completed"),
            (901, "2024-04-01 10:00", 0.0, "completed"),
            (901, "2024-06-01 10:00", 0.0, "completed"),
            # 902 only ever had refunded or cancelled orders: no purchase, no score
            (902, "2024-03-01 10:00", 60.0, "refunded"),
            (902, "2024-07-01 10:00", 45.0, "cancelled"),
            # 903 bought once, for nothing
            (903, "2024-09-01 10:00", 0.0, "completed"),
            # 904's orders carry no status: purchases
            (904, "2024-05-01 10:00", 35.0, None),
            (904, "2024-08-01 10:00", 55.0, None),
        ],
        columns=["customer_id", "ordered_at", "amount", "status"],
    )
    odd.insert(0, "order_id", range(len(orders) + 1, len(orders) + 1 + len(odd)))
    odd["ordered_at"] = pd.to_datetime(odd["ordered_at"])
    _import(store, tmp_path, pd.concat([orders, odd], ignore_index=True))

    assert cli.main(["score", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Left out" not in out
    assert (
        "Note: CLV backtest fit (data to 2024-07-28): 1 repeat customer(s) with a zero or "
        "negative average spend (free or credit "
        "orders, refunds entered as negative amounts) were left out of the spend model"
    ) in out
    scores = _scores(store)
    assert set(scores.index) == normal_buyers | {901, 903, 904}  # 902 bought nothing
    assert scores.loc[901, "clv"] == 0 and 0 < scores.loc[901, "p_alive"] <= 1
    assert scores.loc[903, "clv"] >= 0 and scores.loc[904, "clv"] > 0
    assert scores.loc[list(normal_buyers), "clv"].gt(0).all()
    assert scores["churn_band"].notna().sum() > 100

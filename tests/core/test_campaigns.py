"""Attribution and incrementality on hand-computed examples, and under every filter against
independent pandas computations over the raw tables (spend sliced by contacts)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from crm_core import schema
from crm_core.analytics import campaigns
from crm_core.errors import CRMError
from crm_core.filters import Filters

Z = 1.959963984540054
ALL_2024 = Filters(start=date(2024, 1, 1), end=date(2024, 12, 31))


def touches_for(days_before: list[float], amount: float = 100.0, order_id: int = 1) -> pd.DataFrame:
    ordered_at = pd.Timestamp("2024-03-31 12:00")
    n = len(days_before)
    return pd.DataFrame(
        {
            "order_id": [order_id] * n,
            "amount": [amount] * n,
            "ordered_at": [ordered_at] * n,
            "touched_at": [ordered_at - pd.Timedelta(days=d) for d in days_before],
            "campaign_id": list(range(1, n + 1)),
            "rank": list(range(n)),
            "touches": [n] * n,
        }
    )


@pytest.mark.parametrize(
    "model,expected",
    [
        ("first_touch", [100.0, 0.0, 0.0]),
        ("last_touch", [0.0, 0.0, 100.0]),
        ("linear", [100 / 3] * 3),
        ("position_based", [40.0, 20.0, 40.0]),
    ],
)
def test_three_touch_credits(model, expected):
    credited = campaigns.attribute(touches_for([20, 10, 0]), model)
    assert credited["credit"].tolist() == pytest.approx(expected)


def test_time_decay_halves_every_half_life():
    credited = campaigns.attribute(touches_for([14, 7, 0]), "time_decay")
    # weights 1/4, 1/2, 1 -> shares 1/7, 2/7, 4/7
    assert credited["credit"].tolist() == pytest.approx([100 / 7, 200 / 7, 400 / 7])


def test_position_based_with_one_and_two_touches():
    assert campaigns.attribute(touches_for([3]), "position_based")["credit"].tolist() == [100.0]
    two = campaigns.attribute(touches_for([5, 1]), "position_based")["credit"].tolist()
    assert two == pytest.approx([50.0, 50.0])


@pytest.mark.parametrize("model", list(campaigns.ATTRIBUTION_MODELS))
def test_every_model_credits_sum_to_each_order_amount(model):
    rng = np.random.default_rng(3)
    frames = []
    for order_id in range(1, 40):
        n = int(rng.integers(1, 7))
        days = sorted(rng.uniform(0, 30, n), reverse=True)
        frames.append(touches_for(days, amount=float(rng.uniform(5, 500)), order_id=order_id))
    touches = pd.concat(frames, ignore_index=True)
    credited = campaigns.attribute(touches, model)
    sums = credited.groupby("order_id")["credit"].sum()
    amounts = touches.groupby("order_id")["amount"].first()
    np.testing.assert_allclose(sums.to_numpy(), amounts.to_numpy())
    assert (credited["credit"] >= 0).all()


def load_campaign_store(store):
    with store.begin() as conn:
        store.insert_df(
            conn,
            "customers",
            pd.DataFrame({"customer_id": range(1, 7), "signup_at": pd.Timestamp("2023-01-01")}),
        )
        store.insert_df(
            conn,
            "campaigns",
            pd.DataFrame(
                {
                    "campaign_id": [1],
                    "name": ["Spring email"],
                    "channel": ["email"],
                    "started_at": [pd.Timestamp("2024-03-01")],
                    "ended_at": [pd.Timestamp("2024-03-31")],
                    "spend": [20.0],
                }
            ),
        )
        store.insert_df(
            conn,
            "campaign_contacts",
            pd.DataFrame(
                {
                    "campaign_id": [1] * 6,
                    "customer_id": range(1, 7),
                    "sent_at": pd.Timestamp("2024-03-01 09:00"),
                    "test_group": ["treatment"] * 4 + ["control"] * 2,
                }
            ),
        )
        store.insert_df(
            conn,
            "orders",
            pd.DataFrame(
                {
                    "order_id": [1, 2, 3, 4],
                    "customer_id": [1, 3, 2, 5],
                    "ordered_at": pd.to_datetime(
                        ["2024-03-05", "2024-03-20", "2024-05-01", "2024-02-01"]
                    ),
                    "amount": [10.0, 30.0, 99.0, 50.0],
                    "status": "completed",
                }
            ),
        )


def test_incrementality_matches_hand_computation(store):
    load_campaign_store(store)
    row = campaigns.incrementality(store, ALL_2024, window_days=30).iloc[0]
    assert (row.treatment_customers, row.control_customers) == (4, 2)
    assert (row.conversion_treatment, row.conversion_control) == (0.5, 0.0)
    assert row.lift == pytest.approx(0.5)
    # Newcombe's interval from scipy's own Wilson intervals: 2 of 4 against 0 of 2 is far
    # from a certain lift (the normal approximation gave a low bound of +0.01).
    treated = stats.binomtest(2, 4).proportion_ci(method="wilson")
    control = stats.binomtest(0, 2).proportion_ci(method="wilson")
    spread_low = math.hypot(0.5 - treated.low, control.high - 0.0)
    assert row.lift_low == pytest.approx(0.5 - spread_low)
    assert row.lift_low < 0
    assert row.lift_high == pytest.approx(0.5 + math.hypot(treated.high - 0.5, 0.0))
    # The data end on the last order (2024-05-31): a 30-day window after that send is seen.
    assert bool(row.outcome_complete) and row.outcome_days_observed == 30
    # revenue per treated customer (10 + 0 + 30 + 0) / 4 = 10; control 0; sample var 200.
    assert row.incremental_revenue == pytest.approx(40.0)
    assert row.incremental_revenue_low == pytest.approx((10 - Z * math.sqrt(200 / 4)) * 4)
    assert row.incremental_roi == pytest.approx(1.0)


@pytest.mark.parametrize(
    "treated,n_t,control,n_c,low,high",
    [(56, 70, 48, 80, 0.0524, 0.3339), (5, 56, 0, 29, -0.0381, 0.1926)],
)
def test_lift_interval_matches_newcombe_1998(treated, n_t, control, n_c, low, high):
    """Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10."""
    diff, got_low, got_high = campaigns.proportion_diff_ci(treated / n_t, n_t, control / n_c, n_c)
    assert diff == pytest.approx(treated / n_t - control / n_c)
    assert (round(got_low, 4), round(got_high, 4)) == (low, high)


def test_campaign_roi_uses_touches_in_lookback(store):
    load_campaign_store(store)
    period = Filters(start=date(2024, 3, 1), end=date(2024, 5, 31))
    roi = campaigns.campaign_roi(store, period, "last_touch", lookback_days=30).iloc[0]
    # Orders 1 and 2 follow the 03-01 send within 30 days; order 3 is 61 days later.
    assert roi.revenue == pytest.approx(40.0)
    assert roi.conversions == pytest.approx(2.0)
    assert roi.roi == pytest.approx((40 - 20) / 20)
    assert roi.roas == pytest.approx(2.0)
    assert roi.cpa == pytest.approx(10.0)
    assert roi.new_customers == pytest.approx(2.0)
    longer = campaigns.campaign_roi(store, period, "last_touch", lookback_days=90).iloc[0]
    assert longer.revenue == pytest.approx(139.0)


def test_demo_campaigns_have_positive_lift(demo_store):
    lifts = campaigns.incrementality(demo_store, demo_period(demo_store))
    assert len(lifts) > 5
    treated = (lifts["conversion_treatment"] * lifts["treatment_customers"]).sum()
    held_out = (lifts["conversion_control"] * lifts["control_customers"]).sum()
    pooled_treatment = treated / lifts["treatment_customers"].sum()
    pooled_control = held_out / lifts["control_customers"].sum()
    assert pooled_treatment > pooled_control


def test_outcome_windows_that_run_past_the_data_are_flagged(demo_store):
    lifts = campaigns.incrementality(demo_store, demo_period(demo_store), window_days=30)
    sent = demo_store.read_df(
        "SELECT campaign_id, max(sent_at) AS last_sent FROM campaign_contacts GROUP BY 1"
    ).set_index("campaign_id")["last_sent"]
    last_day = demo_store.read_df(
        "SELECT max(ordered_at) FROM orders WHERE status = 'completed'"
    ).iloc[0, 0]
    data_end = pd.Timestamp(last_day).normalize() + pd.Timedelta(days=1)
    seen = ((data_end - sent.loc[lifts["campaign_id"]]).dt.total_seconds() / 86_400).to_numpy()
    assert lifts["outcome_complete"].tolist() == (seen >= 30).tolist()
    assert (~lifts["outcome_complete"]).sum() >= 1  # the newsletter of the last month
    late = lifts[~lifts["outcome_complete"]]
    assert (late["outcome_days_observed"] < 30).all()


def test_campaigns_without_any_purchase_have_no_outcome_days(demo_copy):
    """Sends but no order at all (a lake whose orders are not written yet): no lift can be
    seen, and the report says so instead of stopping."""
    period = demo_period(demo_copy)
    with demo_copy.begin() as conn:
        conn.execute(schema.order_items.delete())
        conn.execute(schema.orders.delete())
    lifts = campaigns.incrementality(demo_copy, period, window_days=30)
    assert not lifts.empty
    assert (lifts["outcome_days_observed"] == 0).all() and not lifts["outcome_complete"].any()


# -- filters: spend sliced by contacts, revenue by orders, incrementality in scope -------------


def demo_period(store) -> Filters:
    """The demo's whole history as one period."""
    from crm_core.filters import order_date_range

    first, last = order_date_range(store)
    return Filters(start=first, end=last)


def load_sliced_store(store) -> None:
    """Seven customers in three countries, four campaigns, orders through three channels.

    Campaign 1 (e-mail, 20.00) contacted customers 1-6 (DE 1, 2, 5; US 3, 4, 6; control 5, 6);
    campaign 2 (paid search, 90.00) has no contacts but reached customers 2 (DE, tagged order),
    3 (US, tagged visit) and 7 (FR, tagged order); campaign 3 (paid social, 50.00) reached
    nobody; campaign 4 (e-mail, 10.00) ran in 2023. Web buyers: 1, 2, 5; store: 3, 7; app: 4
    (a refunded order only).
    """
    with store.begin() as conn:
        store.insert_df(
            conn,
            "customers",
            pd.DataFrame(
                {
                    "customer_id": range(1, 8),
                    "country": ["DE", "DE", "US", "US", "DE", "US", "FR"],
                    "signup_at": pd.Timestamp("2023-01-01"),
                }
            ),
        )
        store.insert_df(
            conn,
            "campaigns",
            pd.DataFrame(
                {
                    "campaign_id": [1, 2, 3, 4],
                    "name": ["Spring email", "Search", "Social", "Old email"],
                    "channel": ["email", "paid_search", "paid_social", "email"],
                    "started_at": pd.to_datetime(
                        ["2024-03-01", "2024-03-10", "2024-03-01", "2023-01-01"]
                    ),
                    "ended_at": pd.to_datetime(
                        ["2024-03-31", "2024-04-10", "2024-03-15", "2023-01-31"]
                    ),
                    "spend": [20.0, 90.0, 50.0, 10.0],
                }
            ),
        )
        store.insert_df(
            conn,
            "campaign_contacts",
            pd.DataFrame(
                {
                    "campaign_id": [1] * 6 + [4, 4],
                    "customer_id": [1, 2, 3, 4, 5, 6, 1, 3],
                    "sent_at": pd.to_datetime(["2024-03-01 09:00"] * 6 + ["2023-01-02 09:00"] * 2),
                    "test_group": ["treatment"] * 4 + ["control"] * 2 + ["treatment", "control"],
                }
            ),
        )
        store.insert_df(
            conn,
            "orders",
            pd.DataFrame(
                {
                    "order_id": [1, 2, 3, 4, 5, 6],
                    "customer_id": [1, 3, 2, 5, 7, 4],
                    "ordered_at": pd.to_datetime(
                        [
                            "2024-03-05",
                            "2024-03-20",
                            "2024-03-12",
                            "2024-03-08",
                            "2024-03-15",
                            "2024-03-25",
                        ]
                    ),
                    "amount": [10.0, 30.0, 40.0, 25.0, 60.0, 15.0],
                    "channel": ["web", "store", "web", "web", "store", "app"],
                    "status": ["completed"] * 5 + ["refunded"],
                    "campaign_id": pd.array([None, None, 2, None, 2, None], dtype="Int64"),
                }
            ),
        )
        store.insert_df(
            conn,
            "events",
            pd.DataFrame(
                {
                    "event_id": [1],
                    "customer_id": [3],
                    "occurred_at": pd.to_datetime(["2024-03-11"]),
                    "event_type": ["visit"],
                    "campaign_id": [2],
                }
            ),
        )


def raw_tables(store) -> dict[str, pd.DataFrame]:
    """The raw tables the campaign view reads, straight from the store."""
    names = ("customers", "orders", "events", "campaigns", "campaign_contacts")
    frames = {name: store.read_df(schema.table(name).select()) for name in names}
    frames["orders"]["amount"] = frames["orders"]["amount"].astype(float)
    frames["campaigns"]["spend"] = frames["campaigns"]["spend"].astype(float)
    return frames


def oracle_scope(t: dict[str, pd.DataFrame], f: Filters) -> set[int]:
    """Customers in the filters' scope: their country, and any order through the channels."""
    customers, orders = t["customers"], t["orders"]
    ids = set(customers["customer_id"])
    if f.countries:
        ids &= set(customers.loc[customers["country"].isin(f.countries), "customer_id"])
    if f.channels:
        ids &= set(orders.loc[orders["channel"].isin(f.channels), "customer_id"])
    return ids


def oracle_overlapping(t: dict[str, pd.DataFrame], f: Filters) -> pd.DataFrame:
    """Campaigns whose run intersects the period."""
    c = t["campaigns"]
    start, end = pd.Timestamp(f.start), pd.Timestamp(f.end) + pd.Timedelta(days=1)
    keep = (c["started_at"] < end) & (c["ended_at"].isna() | (c["ended_at"] >= start))
    return c[keep]


def oracle_spend(t: dict[str, pd.DataFrame], f: Filters) -> pd.Series:
    """Sliced spend per campaign: spend x in-scope contacts / contacts (reach if none)."""
    c = t["campaigns"].set_index("campaign_id")
    if not f.countries and not f.channels:
        return c["spend"]
    contacts = t["campaign_contacts"][["campaign_id", "customer_id"]]
    tagged = pd.concat(
        [t["events"][["campaign_id", "customer_id"]], t["orders"][["campaign_id", "customer_id"]]]
    ).dropna()
    tagged = tagged[~tagged["campaign_id"].isin(contacts["campaign_id"])].drop_duplicates()
    audience = pd.concat([contacts, tagged.astype("int64")])
    scope = oracle_scope(t, f)
    share = audience.groupby("campaign_id")["customer_id"].agg(
        lambda ids: ids.isin(scope).sum() / len(ids)
    )
    return c["spend"] * share.reindex(c.index)  # NaN: no audience, not placed in any slice


def oracle_roi(t: dict[str, pd.DataFrame], f: Filters, lookback_days: int) -> pd.DataFrame:
    """Last-touch revenue and conversions of the slice's orders, sliced spend and ROI."""
    o = t["orders"]
    start, end = pd.Timestamp(f.start), pd.Timestamp(f.end) + pd.Timedelta(days=1)
    o = o[(o["status"] == "completed") & (o["ordered_at"] >= start) & (o["ordered_at"] < end)]
    if f.countries:
        c = t["customers"]
        o = o[o["customer_id"].isin(c.loc[c["country"].isin(f.countries), "customer_id"])]
    if f.channels:
        o = o[o["channel"].isin(f.channels)]
    cc = t["campaign_contacts"]
    touches = pd.concat(
        [
            cc.loc[
                cc["test_group"] == "treatment", ["customer_id", "campaign_id", "sent_at"]
            ].rename(columns={"sent_at": "touched_at"}),
            t["events"][["customer_id", "campaign_id", "occurred_at"]]
            .rename(columns={"occurred_at": "touched_at"})
            .dropna(subset=["campaign_id"]),
            t["orders"][["customer_id", "campaign_id", "ordered_at"]]
            .rename(columns={"ordered_at": "touched_at"})
            .dropna(subset=["campaign_id"]),
        ]
    ).astype({"campaign_id": "int64"})
    pairs = o[["order_id", "customer_id", "ordered_at", "amount"]].merge(touches, on="customer_id")
    lookback = pd.Timedelta(days=lookback_days)
    pairs = pairs[
        (pairs["touched_at"] <= pairs["ordered_at"])
        & (pairs["touched_at"] >= pairs["ordered_at"] - lookback)
    ]
    last = pairs.sort_values(["order_id", "touched_at", "campaign_id"]).groupby("order_id").tail(1)
    per = last.groupby("campaign_id").agg(revenue=("amount", "sum"), conversions=("amount", "size"))
    table = oracle_overlapping(t, f).set_index("campaign_id")[["name"]]
    table = table.join(per).fillna({"revenue": 0.0, "conversions": 0})
    table["spend"] = oracle_spend(t, f).reindex(table.index)
    table["roi"] = (table["revenue"] - table["spend"]) / table["spend"]
    return table


def oracle_lift(t: dict[str, pd.DataFrame], f: Filters, window_days: int) -> pd.DataFrame:
    """Treatment and control conversion and revenue per customer, in-scope contacts only."""
    cc = t["campaign_contacts"]
    cc = cc[cc["campaign_id"].isin(oracle_overlapping(t, f)["campaign_id"])]
    cc = cc[cc["customer_id"].isin(oracle_scope(t, f))]
    o = t["orders"][t["orders"]["status"] == "completed"]
    if f.channels:
        o = o[o["channel"].isin(f.channels)]
    m = cc.merge(o[["customer_id", "ordered_at", "amount"]], on="customer_id", how="left")
    window = pd.Timedelta(days=window_days)
    m["hit"] = (m["ordered_at"] > m["sent_at"]) & (m["ordered_at"] <= m["sent_at"] + window)
    m["won"] = m["amount"].where(m["hit"], 0.0)
    per = m.groupby(["campaign_id", "customer_id", "test_group"]).agg(
        converted=("hit", "any"), revenue=("won", "sum")
    )
    rates = per.groupby(["campaign_id", "test_group"]).agg(
        customers=("converted", "size"), conversion=("converted", "mean"), rpc=("revenue", "mean")
    )
    if not {"treatment", "control"} <= set(rates.index.get_level_values("test_group")):
        return pd.DataFrame()
    wide = rates.unstack("test_group").dropna()
    wide.columns = [f"{metric}_{group}" for metric, group in wide.columns]
    return wide


def assert_roi_matches(store, f: Filters, lookback_days: int = 30) -> pd.DataFrame:
    """campaign_roi under `f` equals the pandas oracle, campaign by campaign."""
    got = campaigns.campaign_roi(store, f, "last_touch", lookback_days).set_index("campaign_id")
    want = oracle_roi(raw_tables(store), f, lookback_days)
    assert sorted(got.index) == sorted(want.index)
    got = got.loc[want.index]
    for column in ("spend", "revenue", "conversions", "roi"):
        np.testing.assert_allclose(
            got[column].to_numpy(float), want[column].to_numpy(float), rtol=1e-9, err_msg=column
        )
    return got


def assert_lift_matches(store, f: Filters, window_days: int = 30) -> pd.DataFrame:
    """incrementality under `f` equals the pandas oracle, campaign by campaign."""
    t = raw_tables(store)
    got = campaigns.incrementality(store, f, window_days)
    want = oracle_lift(t, f, window_days)
    if want.empty:
        assert got.empty
        return got
    got = got.set_index("campaign_id")
    assert sorted(got.index) == sorted(want.index)
    got = got.loc[want.index]
    pairs = {
        "treatment_customers": "customers_treatment",
        "control_customers": "customers_control",
        "conversion_treatment": "conversion_treatment",
        "conversion_control": "conversion_control",
        "revenue_per_customer_treatment": "rpc_treatment",
        "revenue_per_customer_control": "rpc_control",
    }
    for mine, theirs in pairs.items():
        np.testing.assert_allclose(
            got[mine].to_numpy(float), want[theirs].to_numpy(float), rtol=1e-9, err_msg=mine
        )
    spend = oracle_spend(t, f).reindex(want.index)
    np.testing.assert_allclose(got["spend"].to_numpy(float), spend.to_numpy(float), rtol=1e-9)
    return got


MARCH = Filters(start=date(2024, 3, 1), end=date(2024, 3, 31))
TINY_FILTERS = {
    "all": MARCH,
    "DE": replace(MARCH, countries=("DE",)),
    "US+FR": replace(MARCH, countries=("US", "FR")),
    "web": replace(MARCH, channels=("web",)),
    "store": replace(MARCH, channels=("store",)),
    "DE web": replace(MARCH, countries=("DE",), channels=("web",)),
    "short": Filters(start=date(2024, 3, 12), end=date(2024, 3, 14)),
    "2023": Filters(start=date(2023, 1, 1), end=date(2023, 12, 31)),
}


@pytest.mark.parametrize("name", list(TINY_FILTERS))
def test_tiny_roi_and_lift_match_pandas_over_raw_tables(store, name):
    load_sliced_store(store)
    assert_roi_matches(store, TINY_FILTERS[name])
    assert_lift_matches(store, TINY_FILTERS[name])


def test_tiny_spend_is_sliced_by_contacts_by_hand(store):
    load_sliced_store(store)
    de = campaigns.campaign_roi(store, TINY_FILTERS["DE"], "last_touch").set_index("name")
    # E-mail: 3 of 6 contacts in DE; search: 1 of 3 reached customers; social: reached nobody.
    assert de.loc["Spring email", "spend"] == pytest.approx(10.0)
    assert de.loc["Search", "spend"] == pytest.approx(30.0)
    assert list(de.loc[["Spring email", "Search", "Social"], "spend_basis"]) == [
        "contacts",
        "reach",
        "none",
    ]
    assert math.isnan(de.loc["Social", "spend"]) and math.isnan(de.loc["Social", "roi"])
    # DE orders in March: 1 (10, e-mail touch), 3 (40, tagged search), 4 (25, control: no touch).
    assert de.loc["Spring email", "revenue"] == pytest.approx(10.0)
    assert de.loc["Search", "revenue"] == pytest.approx(40.0)
    assert de.loc["Search", "roi"] == pytest.approx((40 - 30) / 30)
    web = campaigns.campaign_roi(store, TINY_FILTERS["web"], "last_touch").set_index("name")
    assert web.loc["Spring email", "spend"] == pytest.approx(20 * 3 / 6)  # 1, 2, 5 buy on web
    everything = campaigns.campaign_roi(store, MARCH, "last_touch").set_index("name")
    assert everything["spend"].to_dict() == {"Spring email": 20.0, "Search": 90.0, "Social": 50.0}
    assert set(everything["spend_basis"]) == {"all"}
    totals = campaigns.roi_totals(de)
    assert totals["spend"] == pytest.approx(40.0)
    assert (totals["unplaced_campaigns"], totals["unplaced_spend"]) == (1, 50.0)


def test_tiny_country_slices_add_up_to_the_total(store):
    load_sliced_store(store)
    total = campaigns.campaign_roi(store, MARCH, "linear").set_index("campaign_id")
    slices = [
        campaigns.campaign_roi(store, replace(MARCH, countries=(c,)), "linear")
        for c in ("DE", "US", "FR")
    ]
    summed = pd.concat(slices).groupby("campaign_id")[["spend", "revenue"]].sum(min_count=1)
    placed = [cid for cid in total.index if cid != 3]  # Social (3) reached nobody
    np.testing.assert_allclose(summed.loc[placed, "spend"], total.loc[placed, "spend"])
    np.testing.assert_allclose(summed["revenue"], total.loc[summed.index, "revenue"])
    assert math.isnan(summed.loc[3, "spend"])  # Social reached nobody: only in the total


def test_tiny_incrementality_keeps_in_scope_customers_by_hand(store):
    load_sliced_store(store)
    row = campaigns.incrementality(store, TINY_FILTERS["DE"]).set_index("campaign_id").loc[1]
    # DE contacts: 1, 2 treated (both convert: 10 and 40), 5 held out (converts: 25).
    assert (row.treatment_customers, row.control_customers) == (2, 1)
    assert (row.conversion_treatment, row.conversion_control) == (1.0, 1.0)
    assert row.spend == pytest.approx(10.0)
    assert row.incremental_revenue == pytest.approx((25.0 - 25.0) * 2)
    assert row.incremental_roi == pytest.approx(-1.0)
    us = campaigns.incrementality(store, TINY_FILTERS["US+FR"]).set_index("campaign_id").loc[1]
    # US contacts: 3, 4 treated (3 converts: 30; 4's order is refunded), 6 held out.
    assert (us.treatment_customers, us.control_customers) == (2, 1)
    assert (us.conversion_treatment, us.conversion_control) == (0.5, 0.0)
    assert us.incremental_revenue == pytest.approx(30.0)
    # Campaign 4 ran in 2023: out of a 2024 period, in a 2023 one.
    assert 4 not in set(campaigns.incrementality(store, MARCH)["campaign_id"])
    assert set(campaigns.incrementality(store, TINY_FILTERS["2023"])["campaign_id"]) == {4}
    assert campaigns.incrementality(store, replace(MARCH, countries=("FR",))).empty


def test_tiny_report_is_json_and_equals_the_tables(store):
    load_sliced_store(store)
    f = TINY_FILTERS["DE"]
    figures = campaigns.report(store, f, model="linear", lookback_days=20, window_days=15)
    assert json.loads(json.dumps(figures, allow_nan=False)) == figures
    assert figures["filters"] == {
        "start": "2024-03-01",
        "end": "2024-03-31",
        "countries": ["DE"],
        "channels": [],
    }
    assert (figures["model"], figures["lookback_days"], figures["window_days"]) == (
        "linear",
        20,
        15,
    )
    roi = campaigns.campaign_roi(store, f, "linear", 20)
    assert_report_rows_equal(figures["campaigns"], roi)
    assert_report_rows_equal(figures["incrementality"], campaigns.incrementality(store, f, 15))
    assert figures["totals"]["spend"] == pytest.approx(campaigns.roi_totals(roi)["spend"])
    with pytest.raises(CRMError, match="allowed: first_touch"):
        campaigns.report(store, f, model="everything")


def assert_report_rows_equal(rows: list[dict], table: pd.DataFrame) -> None:
    """The report's rows carry the table's figures (None where the table has NaN)."""
    assert len(rows) == len(table)
    for row, (_, want) in zip(rows, table.iterrows(), strict=True):
        for key, value in row.items():
            expected = want[key]
            if isinstance(expected, pd.Timestamp):
                assert value == expected.isoformat()
            elif expected is None or (isinstance(expected, float) and math.isnan(expected)):
                assert value is None, key
            elif isinstance(value, float):
                assert value == pytest.approx(float(expected)), key
            else:
                assert value == expected, key


def test_unknown_model_is_a_clear_error(store):
    with pytest.raises(CRMError, match="'nope' is not known"):
        campaigns.campaign_roi(store, MARCH, "nope")


# -- the demo store --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_filters(demo_store_path) -> dict[str, Filters]:
    from crm_core.filters import default_filters
    from crm_core.store import Store

    store = Store(f"duckdb:///{demo_store_path}")
    year = default_filters(store)
    contacted = store.read_df(
        "SELECT max(started_at) AS started_at FROM campaigns WHERE started_at <= :last "
        "AND campaign_id IN (SELECT campaign_id FROM campaign_contacts)",
        {"last": year.end - timedelta(days=14)},
    )
    store.dispose()
    start = contacted["started_at"].iloc[0].date()  # two weeks from the last e-mail/SMS send
    return {
        "DE": replace(year, countries=("DE",)),
        "web": replace(year, channels=("web",)),
        "short": replace(year, start=start, end=start + timedelta(days=13)),
    }


@pytest.mark.parametrize("name", ["DE", "web", "short"])
def test_demo_roi_and_lift_match_pandas_over_raw_tables(demo_store, demo_filters, name):
    got = assert_roi_matches(demo_store, demo_filters[name])
    assert got["revenue"].sum() > 0
    lift = assert_lift_matches(demo_store, demo_filters[name])
    assert len(lift) > 0


def test_demo_country_slices_add_up_to_the_total_spend(demo_store, demo_filters):
    year = replace(demo_filters["DE"], countries=())
    total = campaigns.campaign_roi(demo_store, year, "last_touch").set_index("campaign_id")
    countries = sorted(raw_tables(demo_store)["customers"]["country"].dropna().unique())
    slices = pd.concat(
        campaigns.campaign_roi(demo_store, replace(year, countries=(c,)), "last_touch")
        for c in countries
    )
    assert (slices["spend_basis"] != "none").all()  # every demo campaign reaches someone
    summed = slices.groupby("campaign_id")[["spend", "revenue"]].sum()
    np.testing.assert_allclose(summed["spend"], total.loc[summed.index, "spend"])
    assert summed["spend"].sum() == pytest.approx(total["spend"].sum())
    np.testing.assert_allclose(summed["revenue"], total.loc[summed.index, "revenue"])


def test_demo_report_is_json_and_equals_the_tables(demo_store, demo_filters):
    f = demo_filters["DE"]
    figures = campaigns.report(demo_store, f)
    json.dumps(figures, allow_nan=False)
    assert_report_rows_equal(
        figures["campaigns"], campaigns.campaign_roi(demo_store, f, "last_touch")
    )
    assert_report_rows_equal(figures["incrementality"], campaigns.incrementality(demo_store, f))

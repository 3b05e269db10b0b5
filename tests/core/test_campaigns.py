"""Attribution and incrementality on hand-computed examples."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from crm_core.analytics import campaigns
from crm_core.filters import Filters

Z = 1.959963984540054


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
    row = campaigns.incrementality(store, window_days=30).iloc[0]
    assert (row.treatment_customers, row.control_customers) == (4, 2)
    assert (row.conversion_treatment, row.conversion_control) == (0.5, 0.0)
    assert row.lift == pytest.approx(0.5)
    assert row.lift_low == pytest.approx(0.5 - Z * math.sqrt(0.25 / 4))
    # revenue per treated customer (10 + 0 + 30 + 0) / 4 = 10; control 0; sample var 200.
    assert row.incremental_revenue == pytest.approx(40.0)
    assert row.incremental_revenue_low == pytest.approx((10 - Z * math.sqrt(200 / 4)) * 4)
    assert row.incremental_roi == pytest.approx(1.0)


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
    lifts = campaigns.incrementality(demo_store)
    assert len(lifts) > 5
    treated = (lifts["conversion_treatment"] * lifts["treatment_customers"]).sum()
    held_out = (lifts["conversion_control"] * lifts["control_customers"]).sum()
    pooled_treatment = treated / lifts["treatment_customers"].sum()
    pooled_control = held_out / lifts["control_customers"].sum()
    assert pooled_treatment > pooled_control

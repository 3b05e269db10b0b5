"""RFM: tie-aware quintile scores and segment rules on the tiny store (hand-computed)."""

from __future__ import annotations

from datetime import date
from itertools import product

import pandas as pd
import pytest

from crm_core.analytics import rfm
from crm_core.filters import Filters
from tests.core import tiny

AS_OF = date(2024, 3, 1)


def test_rfm_scores_match_hand_computed_values(store):
    tiny.load(store)
    scores = rfm.rfm_scores(store, AS_OF).set_index("customer_id")
    assert scores["recency_days"].to_dict() == {1: 10, 2: 1, 3: 0, 4: 72}
    assert scores["frequency"].to_dict() == {1: 3, 2: 2, 3: 2, 4: 1}
    assert scores["monetary"].to_dict() == pytest.approx({1: 180, 2: 210, 3: 1079, 4: 60})
    assert scores["r_score"].to_dict() == {1: 2, 2: 3, 3: 4, 4: 1}
    assert scores["f_score"].to_dict() == {1: 4, 2: 2, 3: 2, 4: 1}  # ties share a score
    assert scores["m_score"].to_dict() == {1: 2, 2: 3, 3: 4, 4: 1}
    assert scores["rfm_score"].to_dict() == {1: "242", 2: "323", 3: "424", 4: "111"}
    assert scores["rfm_segment"].to_dict() == {
        1: "At risk",
        2: "About to sleep",
        3: "Potential loyalist",
        4: "Lost",
    }


def test_window_limits_frequency_and_monetary_not_recency(store):
    tiny.load(store)
    scores = rfm.rfm_scores(store, AS_OF, window_days=30).set_index("customer_id")
    assert scores.loc[4, "frequency"] == 0 and scores.loc[4, "recency_days"] == 72
    assert scores.loc[1, "frequency"] == 2  # 02-05 and 02-20; 01-10 is outside the window


def test_every_score_pair_gets_exactly_one_segment():
    for r, f in product(range(1, 6), repeat=2):
        first = rfm.segment_for(r, f)
        assert first in rfm.SEGMENT_NAMES
    named = {rfm.segment_for(r, f) for r, f in product(range(1, 6), repeat=2)}
    assert named == set(rfm.SEGMENT_NAMES)  # every rule is reachable


def test_sql_segments_equal_the_rule_table_on_the_demo(demo_store):
    from crm_core.features import as_of_date

    scores = rfm.rfm_scores(demo_store, as_of_date(demo_store))
    assert scores["rfm_segment"].notna().all()
    expected = [rfm.segment_for(r, f) for r, f in zip(scores.r_score, scores.f_score, strict=True)]
    assert scores["rfm_segment"].tolist() == expected
    assert set(scores["r_score"]) == {1, 2, 3, 4, 5}


def test_scores_equal_pandas_min_rank_quintiles_on_the_demo(demo_store):
    """Oracle: the grouped SQL scores equal 1 + floor(5 * (rank - 1) / n) with pandas'
    min rank (ties share the lowest rank), for every buyer of the demo."""
    from crm_core.features import as_of_date

    scores = rfm.rfm_scores(demo_store, as_of_date(demo_store))
    n = len(scores)
    for score, column, ascending in (
        ("r_score", "recency_days", False),
        ("f_score", "frequency", True),
        ("m_score", "monetary", True),
    ):
        rank = scores[column].rank(method="min", ascending=ascending)
        expected = (1 + (5 * (rank - 1) // n)).astype(int)
        assert scores[column].duplicated().any()  # ties are exercised
        assert scores[score].tolist() == expected.tolist(), score


def test_summary_grid_and_movement(store):
    tiny.load(store)
    scores = rfm.rfm_scores(store, AS_OF)
    summary = rfm.segment_summary(scores)
    assert summary["customers"].sum() == 4 and summary["share"].sum() == pytest.approx(1)
    assert rfm.rf_grid(scores).to_numpy().sum() == 4
    moves = rfm.segment_movement(store, AS_OF, compare_days=30)
    assert moves["customers"].sum() == 4
    assert "No orders yet" in set(moves["from_segment"])  # customer 3 first bought in Feb


@pytest.mark.parametrize(
    "countries,channels,kept",
    [(("GB",), (), [3, 4]), (("US",), (), [1, 2]), ((), ("store",), [2]), ((), ("app",), [1])],
)
def test_a_filter_chooses_customers_without_changing_their_scores(store, countries, channels, kept):
    tiny.load(store)
    everyone = rfm.rfm_scores(store, AS_OF).set_index("customer_id")
    period = Filters(date(2024, 1, 1), AS_OF, countries=countries, channels=channels)
    sliced = rfm.rfm_scores(store, AS_OF, filters=period).set_index("customer_id")
    assert sliced.index.tolist() == kept
    pd.testing.assert_frame_equal(sliced, everyone.loc[kept])
    moves = rfm.segment_movement(store, AS_OF, compare_days=30, filters=period)
    assert moves["customers"].sum() == len(kept)

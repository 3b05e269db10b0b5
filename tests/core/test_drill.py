"""Drill-down: the rules behind a clicked element select the customers the page counted,
and a saved rule segment follows a later import."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest

from crm_core import drill, features, segments
from crm_core.analytics import cohorts, funnels, rfm
from crm_core.filters import default_filters
from crm_core.ingest import import_file
from crm_core.segments import SegmentError
from crm_core.store import Store

STEPS = list(funnels.DEFAULT_STEPS)


@pytest.fixture
def demo(demo_store):
    features.ensure_fresh(demo_store)
    return demo_store


@pytest.fixture
def demo_copy(demo_store_path, tmp_path):
    path = tmp_path / "crm.duckdb"
    shutil.copy(demo_store_path, path)
    store = Store(f"duckdb:///{path}")
    features.ensure_fresh(store)
    yield store
    store.dispose()


def _filters(store, scoped: bool):
    filters = default_filters(store)
    return replace(filters, countries=("US", "GB"), channels=("web",)) if scoped else filters


@pytest.mark.both_stores
@pytest.mark.parametrize("order", funnels.ORDERS)
@pytest.mark.parametrize("scoped", [False, True])
def test_funnel_dropoff_rule_selects_the_pages_dropped_customers(demo, order, scoped):
    filters = _filters(demo, scoped)
    result = funnels.event_funnel(demo, filters, STEPS, order=order, window_days=7)
    for step in range(1, len(STEPS)):
        dropped = result.dropped_at(step)
        assert int(result.steps["dropped"].iloc[step]) == len(dropped)
        selection = drill.funnel_dropoff(STEPS, order, 7, filters, step, page_ids=dropped)
        assert set(drill.ids(demo, selection)) == set(dropped)
        assert drill.agreement(demo, selection).same
    rules = selection.definition["rules"]
    assert rules[0]["funnel"]["steps"] == STEPS and rules[0]["op"] == "dropped_after"
    if scoped:
        assert {"field": "country", "op": "in", "value": ["US", "GB"]} in rules
        assert any(r.get("activity") == "orders" and r["channel"] == ["web"] for r in rules)


def test_rfm_tile_and_rf_cell_rules_count_what_the_page_shows_on_the_same_basis(demo):
    as_of = segments.store_as_of(demo)
    for scoped in (False, True):
        filters = replace(_filters(demo, scoped), end=as_of)
        scores = rfm.rfm_scores(demo, as_of, None, filters)
        summary = rfm.segment_summary(scores).set_index("segment")["customers"]
        for segment, customers in summary.items():
            page = scores.loc[scores["rfm_segment"] == segment, "customer_id"].tolist()
            tile = drill.rfm_tile(segment, filters, as_of=as_of, window_days=None, page_ids=page)
            assert drill.count(demo, tile) == customers
            assert drill.agreement(demo, tile).same
        grid = rfm.rf_grid(scores)
        for r, f in [(5, 5), (1, 1), (3, 2)]:
            page = scores.loc[(scores["r_score"] == r) & (scores["f_score"] == f), "customer_id"]
            cell = drill.rf_cell(r, f, filters, as_of=as_of, window_days=None, page_ids=list(page))
            assert drill.count(demo, cell) == grid.loc[r, f]


def test_rfm_on_another_basis_shows_both_counts_and_can_save_the_fixed_list(demo):
    as_of = segments.store_as_of(demo) - timedelta(days=60)
    scores = rfm.rfm_scores(demo, as_of, rfm.WINDOWS["Last 12 months"])
    differs = []
    for segment in rfm.SEGMENT_NAMES:
        page = scores.loc[scores["rfm_segment"] == segment, "customer_id"].tolist()
        tile = drill.rfm_tile(segment, None, as_of=as_of, window_days=365, page_ids=page)
        agreement = drill.agreement(demo, tile)
        if not agreement.same:
            differs.append((tile, agreement))
    assert differs, "a 60-day-old, 12-month RFM must differ from the 360 table's somewhere"
    tile, agreement = differs[0]
    assert agreement.page_count == len(tile.page_ids)
    assert "as of" in tile.page_basis and "Last 12 months" in tile.page_basis
    definition, description = drill.to_save(tile, fixed=True)
    assert segments.is_fixed_list(definition)
    assert "FIXED LIST" in description and "does not change with new data" in description
    rules, _ = drill.to_save(tile)
    assert not segments.is_fixed_list(rules)


def test_cohort_cell_rules_count_the_heatmaps_customers(demo):
    filters = default_filters(demo)
    for scoped in (False, True):
        flt = _filters(demo, scoped)
        grid = cohorts.cohort_retention(demo, flt)
        for cohort in grid.index[:3]:
            size = int(grid.loc[cohort, "customers"])
            for months in (0, 1, 3):
                share = grid.loc[cohort, months]
                if pd.isna(share):
                    continue
                cell = drill.cohort_cell(cohort, months, flt)
                assert drill.count(demo, cell) == round(share * size), (cohort, months)
    assert filters is not None


def test_a_saved_funnel_dropoff_segment_follows_a_later_import_of_events(demo_copy, tmp_path):
    store = demo_copy
    filters = default_filters(store)
    result = funnels.event_funnel(store, filters, STEPS)
    selection = drill.funnel_dropoff(STEPS, "strict", 7, filters, 1, result.dropped_at(1))
    definition, _ = drill.to_save(selection)
    saved = segments.save_segment(store, "Dropped after visit", definition, owner="t")
    before = segments.size_history(store, saved.segment_id)["customers"].iloc[-1]
    assert before == len(result.dropped_at(1))
    entered = set(result.customers["customer_id"])
    newcomers = [c for c in range(1, 1500) if c not in entered][:3]
    events = pd.DataFrame(
        {
            "event_id": [10_000_000 + i for i in range(3)],
            "customer_id": newcomers,
            "occurred_at": [f"{filters.end - timedelta(days=10)} 10:00:00"] * 3,
            "event_type": ["visit"] * 3,
            "channel": ["web"] * 3,
        }
    )
    events.to_csv(tmp_path / "more_events.csv", index=False)
    import_file(store, "events", tmp_path / "more_events.csv", user="t")
    features.ensure_fresh(store)
    after = segments.record_size(store, segments.load_segment(store, "Dropped after visit"))
    assert after == before + 3
    again = funnels.event_funnel(store, filters, STEPS)
    assert after == len(again.dropped_at(1))  # still the funnel's own drop-off


def test_a_saved_rfm_segment_follows_a_later_import_of_orders(demo_copy, tmp_path):
    store = demo_copy
    as_of = segments.store_as_of(store)
    tile = drill.rfm_tile("New", None, as_of=as_of, window_days=None)
    saved = segments.save_segment(store, "New buyers", drill.to_save(tile)[0], owner="t")
    before = segments.size_history(store, saved.segment_id)["customers"].iloc[-1]
    pd.DataFrame(
        {
            "customer_id": [900_001, 900_002],
            "country": ["US", "DE"],
            "signup_at": [f"{as_of} 08:00:00"] * 2,
        }
    ).to_csv(tmp_path / "new_customers.csv", index=False)
    pd.DataFrame(
        {
            "order_id": [900_001, 900_002],
            "customer_id": [900_001, 900_002],
            "ordered_at": [f"{as_of} 09:00:00"] * 2,
            "amount": [25.0, 40.0],
            "channel": ["web", "app"],
            "status": ["completed", "completed"],
        }
    ).to_csv(tmp_path / "new_orders.csv", index=False)
    import_file(store, "customers", tmp_path / "new_customers.csv", user="t")
    import_file(store, "orders", tmp_path / "new_orders.csv", user="t")
    features.ensure_fresh(store)
    members = segments.member_ids(store, segments.load_segment(store, "New buyers").definition)
    assert {900_001, 900_002} <= set(members)
    after = segments.record_size(store, segments.load_segment(store, "New buyers"))
    assert after != before


def test_a_fixed_list_says_it_is_fixed(demo):
    selection = drill.fixed_list("Hand-picked", [3, 1, 2], "picked by hand on the page")
    assert not selection.rule_based
    definition, description = drill.to_save(selection)
    assert definition["rules"] == [{"field": "customer_id", "op": "in", "value": [3, 1, 2]}]
    assert segments.is_fixed_list(definition)
    assert "FIXED LIST of 3 customer ids" in description
    assert segments.describe(definition) == "Customer ID in list a fixed list of 3 ids"
    assert drill.count(demo, selection) == 3
    band = drill.churn_band("high", None, page_ids=[5, 6])
    agreement = drill.agreement(demo, band)  # no scoring in the demo store: the rule has 0
    assert (agreement.rule_count, agreement.page_count, agreement.same) == (0, 2, False)
    assert segments.is_fixed_list(drill.to_save(band, fixed=True)[0])


def test_masked_sample_and_single_customer(demo):
    tile = drill.rfm_tile("Champions", None, as_of=segments.store_as_of(demo), window_days=None)
    masked = drill.sample(demo, tile, "analyst")
    shown = drill.sample(demo, tile, "marketer")
    assert len(shown) == 10 and masked["customer_id"].tolist() == shown["customer_id"].tolist()
    assert shown["email"].str.contains("@").all()
    assert masked["email"].str.contains(r"\*\*\*", regex=True).all()
    assert not set(masked["email"]) & set(shown["email"])
    one = drill.customer(42)
    assert one.customer_id == 42 and drill.ids(demo, one) == [42]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"activity": "calls", "op": "has"}, "activity is 'calls'; allowed: orders, events"),
        ({"activity": "orders", "op": "first_in"}, "'from' is needed"),
        ({"activity": "orders", "op": "has", "event_type": ["visit"]}, "fits events only"),
        ({"activity": "events", "op": "has", "event_type": ["vist"]}, "unknown event type"),
        ({"activity": "orders", "op": "has", "colour": "red"}, "unknown key 'colour'"),
        (
            {"funnel": {"steps": STEPS, "from": "2026-01-01", "to": "2026-02-01"}, "op": "x"},
            "op is 'x'; allowed: dropped_after, reached",
        ),
        (
            {"funnel": {"steps": STEPS, "from": "2026-01-01", "to": "2026-02-01"}, "step": 5,
             "op": "dropped_after"},
            "step must be a whole number from 1 to 4",
        ),
        (
            {"funnel": {"steps": ["visit"], "from": "2026-01-01", "to": "2026-02-01"}, "step": 1,
             "op": "dropped_after"},
            "A funnel needs 2 to 10 steps",
        ),
        (
            {"funnel": {"steps": STEPS, "to": "2026-02-01"}, "step": 1, "op": "reached"},
            "'from' is needed",
        ),
    ],
)  # fmt: skip
def test_bad_new_rules_are_refused_with_the_rule_named(rule, message):
    with pytest.raises(SegmentError, match="rule 1") as caught:
        segments.validate({"match": "all", "rules": [rule]})
    assert message in str(caught.value)


def test_new_rules_read_in_words():
    funnel = {"steps": STEPS, "from": "2026-01-01", "to": "2026-03-31"}
    text = segments.describe(
        {
            "match": "all",
            "rules": [
                {"funnel": funnel, "op": "dropped_after", "step": 2},
                {"activity": "orders", "op": "has", "channel": ["web"], "status": "any"},
                {"field": "rfm_segment", "op": "eq", "value": "Champions"},
            ],
        }
    )
    assert text == (
        "dropped after step 2 (product view; did not do add to cart) of the funnel visit > "
        "product view > add to cart > checkout > purchase (strict order, 7-day window, "
        "entered 01 Jan 2026 - 31 Mar 2026) and has an order through web (any status) (ever) "
        "and RFM segment equals Champions"
    )

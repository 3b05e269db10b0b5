"""Drill-down: the rules behind a clicked element select the customers the page counted,
and a saved rule segment follows a later import."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import drill, features, metrics, schema, segments
from crm_core.analytics import clustering, cohorts, funnels, rfm
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
        ({"activity": "campaigns", "op": "has"}, "campaign is needed"),
        ({"activity": "campaigns", "campaign": [0]}, "is not a campaign number"),
        ({"activity": "campaigns", "campaign": ["spring"]}, "'spring' is not a number"),
        ({"activity": "campaigns", "campaign": [3], "group": "both"},
         "group is 'both'; allowed: treatment, control, any"),
        ({"activity": "campaigns", "campaign": [3], "channel": ["web"]},
         "channel fits orders and events only, not campaigns"),
        ({"activity": "surveys", "op": "has"}, "survey is None; allowed: nps, csat"),
        ({"activity": "surveys", "survey": "ces"}, "survey is 'ces'; allowed: nps, csat"),
        ({"activity": "surveys", "survey": "csat", "bucket": ["promoter"]},
         "bucket fits the nps survey only"),
        ({"activity": "surveys", "survey": "nps", "bucket": ["fan"]},
         "unknown bucket 'fan'; allowed: detractor, passive, promoter"),
        ({"activity": "orders", "survey": "nps"}, "survey fits surveys only, not orders"),
        ({"activity": "events", "status": "any"}, "status fits orders only, not events"),
        ({"activity": "surveys", "survey": "nps", "from": "2026-03-01", "to": "2026-01-01"},
         "from 2026-03-01 is after to 2026-01-01"),
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


# --- the other drillable charts: trend, CLV groups, campaigns, surveys, movement, clusters ---


def _scope(store, filters) -> set[int] | None:
    """The customers in the sidebar's scope, computed in pandas (None: no scope)."""
    if not filters.countries and not filters.channels:
        return None
    people = store.read_df(sa.select(schema.customers.c.customer_id, schema.customers.c.country))
    keep = set(people["customer_id"])
    if filters.countries:
        keep &= set(people.loc[people["country"].isin(filters.countries), "customer_id"])
    if filters.channels:
        orders = store.read_df(sa.select(schema.orders.c.customer_id, schema.orders.c.channel))
        keep &= set(orders.loc[orders["channel"].isin(filters.channels), "customer_id"])
    return keep


@pytest.mark.both_stores
@pytest.mark.parametrize("scoped", [False, True])
def test_trend_period_rule_counts_the_trends_active_customers(demo, scoped):
    filters = _filters(demo, scoped)
    trend = metrics.revenue_trend(demo, filters)
    grain = trend["grain"].iloc[0]
    checked = 0
    for row in trend.itertuples():
        selection = drill.trend_period(row.period.date(), grain, filters)
        assert drill.count(demo, selection) == row.active_customers, row.period
        checked += row.active_customers > 0
    assert checked > 3
    first = drill.trend_period(trend["period"].iloc[0].date(), grain, filters)
    assert first.definition["rules"][0]["from"] == filters.start.isoformat()  # clipped
    if scoped:
        assert first.definition["rules"][0]["channel"] == ["web"]
        assert "Country in list US, GB" in segments.describe(first.definition)


@pytest.mark.both_stores
@pytest.mark.parametrize("group", ["treatment", "control", "any"])
@pytest.mark.parametrize("scoped", [False, True])
def test_campaign_rule_selects_the_campaigns_contacts(demo, group, scoped):
    filters = _filters(demo, scoped)
    contacts = demo.read_df(sa.select(schema.campaign_contacts))
    scope = _scope(demo, filters)
    found = 0
    for campaign_id in sorted(contacts["campaign_id"].unique())[:6]:
        mine = contacts[contacts["campaign_id"] == campaign_id]
        if group != "any":
            mine = mine[mine["test_group"] == group]
        expected = set(mine["customer_id"].astype(int))
        if scope is not None:
            expected &= scope
        selection = drill.campaign_contacts(int(campaign_id), "Spring sale", filters, group)
        assert set(drill.ids(demo, selection)) == expected, campaign_id
        found += len(expected)
    assert found > 0
    words = segments.describe(selection.definition)
    assert f"campaign #{int(campaign_id)}" in words and "Spring sale" in selection.title


@pytest.mark.both_stores
def test_reached_campaign_rule_selects_customers_with_tagged_visits_or_orders(demo):
    contacted = set(drill.contacted_campaigns(demo))
    events = demo.read_df(sa.select(schema.events.c.customer_id, schema.events.c.campaign_id))
    orders = demo.read_df(sa.select(schema.orders.c.customer_id, schema.orders.c.campaign_id))
    tagged = pd.concat([events, orders]).dropna()
    paid = sorted(set(tagged["campaign_id"].astype(int)) - contacted)
    assert paid, "the demo has paid campaigns without contacts"
    for campaign_id in paid[:3]:
        expected = set(tagged.loc[tagged["campaign_id"] == campaign_id, "customer_id"].astype(int))
        selection = drill.campaign_contacts(campaign_id, "Search", None, "reached")
        assert set(drill.ids(demo, selection)) == expected
    assert "was reached by campaign" in segments.describe(selection.definition)
    assert selection.title.startswith("Reached by campaign Search")


@pytest.mark.both_stores
def test_campaign_rule_days_are_on_sent_at(demo):
    contacts = demo.read_df(sa.select(schema.campaign_contacts))
    one = contacts[contacts["campaign_id"] == contacts["campaign_id"].mode()[0]]
    day = pd.to_datetime(one["sent_at"]).dt.date.min()
    rule = {
        "activity": "campaigns",
        "op": "has",
        "campaign": [int(one["campaign_id"].iloc[0])],
        "group": "any",
        "from": day.isoformat(),
        "to": day.isoformat(),
    }
    expected = set(one.loc[pd.to_datetime(one["sent_at"]).dt.date == day, "customer_id"])
    assert set(segments.member_ids(demo, {"match": "all", "rules": [rule]})) == expected
    never = {**rule, "op": "has_not"}
    assert not expected & set(segments.member_ids(demo, {"match": "all", "rules": [never]}))


def _respondents(store, filters, by, value, bucket=None) -> set[int]:
    """Who answered NPS in the period within the group, computed in pandas."""
    answers = store.read_df(sa.select(schema.survey_responses))
    when = pd.to_datetime(answers["answered_at"])
    answers = answers[
        (answers["survey"] == "nps")
        & (when >= pd.Timestamp(filters.start))
        & (when < pd.Timestamp(filters.end) + pd.Timedelta(days=1))
    ]
    if bucket == "detractor":
        answers = answers[answers["score"] <= 6]
    elif bucket == "promoter":
        answers = answers[answers["score"] >= 9]
    if by == "touchpoint":
        answers = answers[answers["touchpoint"] == value]
    else:
        field = drill.SURVEY_BREAKDOWN_FIELDS[by]
        table = features.customer_360 if field == "rfm_segment" else schema.customers
        people = store.read_df(sa.select(table.c.customer_id, table.c[field]))
        if value == "(unknown)":
            members = people.loc[people[field].isna(), "customer_id"]
        else:
            members = people.loc[people[field] == value, "customer_id"]
        answers = answers[answers["customer_id"].isin(set(members))]
    found = set(answers["customer_id"].astype(int))
    scope = _scope(store, filters)
    return found if scope is None else found & scope


@pytest.mark.both_stores
@pytest.mark.parametrize("by", ["touchpoint", "country", "acquisition channel", "RFM segment"])
def test_survey_group_rule_selects_the_groups_nps_respondents(demo, by):
    from crm_core.analytics import surveys

    for scoped in (False, True):
        filters = _filters(demo, scoped)
        table = surveys.breakdown(demo, filters, by)
        groups = table.loc[table["nps_responses"] > 0, by].tolist()[:3]
        assert groups
        for value in groups:
            for bucket in (None, "detractor", "promoter"):
                selection = drill.survey_group(by, value, filters, bucket=bucket)
                expected = _respondents(demo, filters, by, value, bucket)
                assert set(drill.ids(demo, selection)) == expected, (by, value, bucket)
            everyone = _respondents(demo, filters, by, value)
            assert 0 < len(everyone) <= int(table.loc[table[by] == value, "nps_responses"].iloc[0])
    words = segments.describe(selection.definition)
    assert "answered the NPS survey as a promoter (9-10)" in words
    assert selection.title.startswith("Promoters in the NPS survey")


def test_field_group_rule_and_null_group(demo):
    people = demo.read_df(sa.select(features.customer_360))
    for field, value in [("country", "DE"), ("acquisition_channel", "paid_search")]:
        selection = drill.field_group(field, value, None, page_name="CLV")
        assert set(drill.ids(demo, selection)) == set(
            people.loc[people[field] == value, "customer_id"]
        )
    unknown = drill.field_group("rfm_segment", "(none)", None, page_name="CLV")
    assert unknown.definition["rules"] == [{"field": "rfm_segment", "op": "is_null"}]
    assert set(drill.ids(demo, unknown)) == set(
        people.loc[people["rfm_segment"].isna(), "customer_id"]
    )
    paid = drill.field_group("acquisition_channel", "paid_search", None, page_name="CLV")
    assert paid.title == "Acquisition channel Paid search"
    assert segments.describe(paid.definition) == "Acquisition channel equals Paid search"
    scoped = drill.field_group(
        "country", "DE", _filters(demo, True), page_name="CLV", page_ids=[1, 2], page_basis="x"
    )
    assert not drill.agreement(demo, scoped).same
    assert scoped.definition["rules"][1] == {"field": "country", "op": "in", "value": ["US", "GB"]}


def test_segment_moves_add_up_to_the_movement_and_a_cell_is_a_fixed_list(demo):
    as_of = segments.store_as_of(demo)
    moves = rfm.segment_moves(demo, as_of, None, 90)
    grouped = rfm.segment_movement(demo, as_of, None, 90)
    assert list(moves.columns) == ["customer_id", "from_segment", "to_segment"]
    assert moves["customer_id"].is_unique and len(moves) == grouped["customers"].sum()
    row = grouped.sort_values("customers").iloc[-1]
    inside = moves[
        (moves["from_segment"] == row.from_segment) & (moves["to_segment"] == row.to_segment)
    ]
    assert len(inside) == row.customers
    cell = drill.movement_cell(
        row.from_segment, row.to_segment, inside["customer_id"].tolist(), 90, as_of
    )
    assert not cell.rule_based and drill.count(demo, cell) == row.customers
    definition, description = drill.to_save(cell)
    assert segments.is_fixed_list(definition)
    assert "FIXED LIST" in description and "segment on an earlier day is not stored" in description


def test_cluster_rule_matches_the_fit_once_clusters_are_saved(demo_copy):
    frame = clustering.load_features(demo_copy, ["frequency", "monetary"])
    result = clustering.fit_clusters(frame, 3)
    page = result.labels[result.labels == 1].index.astype(int).tolist()
    selection = drill.cluster(1, page, fit_words="k=3 on frequency, monetary", n_clusters=3)
    before = drill.agreement(demo_copy, selection)
    assert not before.same and before.rule_count == 0 and before.page_count == len(page)
    assert "Save clusters to the customer 360 table first" in selection.page_basis
    clustering.save_clusters(demo_copy, result)
    assert drill.agreement(demo_copy, selection).same
    assert set(drill.ids(demo_copy, selection)) == set(page)

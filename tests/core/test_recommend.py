"""Recommendations: replenishment and cross-sell on tiny exact purchase lines, the held-out
evaluation against the popularity baseline on the demo, the stored lists, the 360 field,
the CLI."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import cli, features, schema
from crm_core.analytics import recommend
from crm_core.analytics.clv import NotReadyError
from crm_core.store import Store

START = date(2026, 1, 1)
NAMES = pd.Series({1: "Coffee machine", 2: "Mug", 3: "Coffee pods", 4: "Lamp", 5: "Book"})


def lines(rows: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    """(customer_id, order_id, day from START, product_id) -> purchase lines."""
    frame = pd.DataFrame(rows, columns=["customer_id", "order_id", "offset", "product_id"])
    at = pd.to_datetime(START) + pd.to_timedelta(frame["offset"], unit="D")
    day = (at.to_numpy().astype("datetime64[D]") - recommend.EPOCH).astype(np.int32)
    return frame.assign(ordered_at=at, day=day)[
        ["customer_id", "order_id", "ordered_at", "day", "product_id"]
    ]


def _tiny() -> pd.DataFrame:
    rows = []
    order = 0
    # Customers 1-4 buy a coffee machine with a mug (customer 4 without the mug); 5-10 buy a
    # lamp or a book alone. Customer 1 re-buys coffee pods every 30 days.
    for customer in (1, 2, 3, 4):
        order += 1
        rows.append((customer, order, 0, 1))
        if customer != 4:
            rows.append((customer, order, 0, 2))
    for customer in range(5, 11):
        order += 1
        rows.append((customer, order, 3, 4 if customer % 2 else 5))
    for offset in (10, 40, 70):
        order += 1
        rows.append((1, order, offset, 3))
    order += 1
    rows.append((2, order, 20, 3))
    order += 1
    rows.append((2, order, 45, 3))
    return lines(rows)


def _model(**params) -> recommend.Recommender:
    options = {"min_pair_orders": 2, "min_buyers": 1, "min_confidence": 0.1, "min_lift": 1.0}
    return recommend.Recommender(**{**options, **params}).fit(_tiny(), NAMES)


def test_rules_and_consumables_are_counted_exactly() -> None:
    model = _model()
    # Coffee machine in 4 of 15 orders, with a mug in 3: confidence 3/4, lift 0.75 / (3/15).
    rule = model.rules_.set_index(["antecedent", "consequent"]).loc[(1, 2)]
    assert rule["confidence"] == pytest.approx(3 / 4)
    assert rule["lift"] == pytest.approx((3 / 4) / (3 / 15))
    assert int(rule["orders"]) == 3
    assert model.baskets_ == 15
    # Coffee pods: both buyers re-bought them; the others were bought once by each buyer.
    assert model.consumables_.tolist() == [3]
    assert model.popularity_.index[0] == 1  # 4 buyers


def test_cross_sell_offers_the_complement_with_its_reason_and_never_a_bought_item() -> None:
    model = _model()
    recs = model.recommend(_tiny(), START + timedelta(days=75))
    mine = recs[recs["customer_id"] == 4]
    assert mine["product_id"].tolist() == [2]
    first = mine.iloc[0]
    assert first["method"] == "cross_sell"
    assert first["score"] == pytest.approx(3 / 4)
    assert first["reason"] == "bought with Coffee machine in 75% of orders with Coffee machine"
    # Customers 1-3 hold both: neither is offered again (bought once, no consumable).
    held = recs[recs["customer_id"].isin([1, 2, 3])]
    assert not held["product_id"].isin([1, 2]).any()


def test_replenishment_is_due_when_the_days_since_reach_the_median_gap() -> None:
    model = _model()
    early = model.recommend(_tiny(), START + timedelta(days=90))  # 20 days since, gap 30
    assert early[(early["customer_id"] == 1) & (early["product_id"] == 3)].empty
    due = model.recommend(_tiny(), START + timedelta(days=105))
    row = due[(due["customer_id"] == 1) & (due["product_id"] == 3)].iloc[0]
    assert row["method"] == "replenishment"
    assert row["reason"] == "due: every 30 days, last 35 days ago"
    assert row["score"] == pytest.approx(2 / 3)  # 3 purchases: (3 - 1) / 3, not yet faded
    assert row["rank"] == 1
    # Customer 2 bought pods twice (gap 25 days): due after 25 days too.
    two = due[(due["customer_id"] == 2) & (due["product_id"] == 3)].iloc[0]
    assert two["reason"] == "due: every 25 days, last 60 days ago"


def test_replenishment_stops_after_three_cycles_lapsed() -> None:
    model = _model()
    # Customer 1: pods every 30 days, last on day 70. 90 days since: still due, faded.
    lapsing = model.recommend(_tiny(), START + timedelta(days=160))
    row = lapsing[(lapsing["customer_id"] == 1) & (lapsing["product_id"] == 3)].iloc[0]
    assert row["score"] == pytest.approx(2 / 3 * 60 / 90)
    # 91 days since: more than three cycles, the customer has moved on.
    gone = model.recommend(_tiny(), START + timedelta(days=161))
    assert gone[(gone["customer_id"] == 1) & (gone["product_id"] == 3)].empty


def test_cross_sell_never_offers_a_variant_of_an_owned_product() -> None:
    # Coffee machine (1) with a mug (2) for customers 1-3; customer 4 bought the machine with
    # a large mug (6, a variant of 2); customer 5 the machine alone; 6-7 both mugs at once.
    data = lines(
        [(c, c, 0, 1) for c in range(1, 6)]
        + [(c, c, 0, 2) for c in (1, 2, 3)]
        + [(4, 4, 0, 6), (6, 6, 0, 2), (6, 6, 0, 6), (7, 7, 0, 2), (7, 7, 0, 6)]
    )
    options = {"min_pair_orders": 2, "min_buyers": 1, "min_confidence": 0.1, "min_lift": 0.5}
    names = pd.Series({**NAMES.to_dict(), 6: "Large mug"})
    plain = recommend.Recommender(**options).fit(data, names)
    pairs = set(zip(plain.rules_["antecedent"], plain.rules_["consequent"], strict=True))
    assert (2, 6) in pairs  # without groups the two mugs make a rule
    recs = plain.recommend(data, START + timedelta(days=1))
    assert 2 in recs[recs["customer_id"] == 4]["product_id"].tolist()

    groups = pd.Series({2: "mug", 6: "mug"})
    grouped = recommend.Recommender(**options).fit(data, names, groups=groups)
    pairs = set(zip(grouped.rules_["antecedent"], grouped.rules_["consequent"], strict=True))
    assert (2, 6) not in pairs and (6, 2) not in pairs and (1, 2) in pairs
    recs = grouped.recommend(data, START + timedelta(days=1))
    assert 2 not in recs[recs["customer_id"] == 4]["product_id"].tolist()  # owns a mug
    assert 2 in recs[recs["customer_id"] == 5]["product_id"].tolist()
    # One variant per list: a rule to each mug for a customer who owns neither gives one mug.
    both = lines(
        [(c, c, 0, 1) for c in range(1, 7)]
        + [(c, c, 0, 2) for c in (1, 2, 3)]
        + [(c, c, 0, 6) for c in (4, 5, 6)]
        + [(7, 7, 0, 1)]
    )
    two = recommend.Recommender(**options).fit(both, names, groups=groups)
    assert {(1, 2), (1, 6)} <= set(
        zip(two.rules_["antecedent"], two.rules_["consequent"], strict=True)
    )
    offered = two.recommend(both, START + timedelta(days=1))
    mine = offered[offered["customer_id"] == 7]["product_id"].tolist()
    assert len(set(mine) & {2, 6}) == 1
    assert len(set(two.popular(both, np.array([7]))["product_id"]) & {2, 6}) == 1
    # The popularity baseline keeps the same rule: no mug for the customer who owns one.
    assert 2 in plain.popular(data, np.array([4]))["product_id"].tolist()
    assert 2 not in grouped.popular(data, np.array([4]))["product_id"].tolist()


def test_top_n_ranks_per_customer() -> None:
    recs = _model(top_n=1).recommend(_tiny(), START + timedelta(days=105))
    assert recs.groupby("customer_id")["rank"].max().eq(1).all()
    assert not recs.duplicated(["customer_id", "product_id"]).any()


def test_popularity_baseline_skips_what_the_customer_bought() -> None:
    model = _model(top_n=2)
    base = model.popular(_tiny(), np.array([1, 4]))
    assert base[base["customer_id"] == 1]["product_id"].tolist() == [4, 5]  # 1, 2, 3 bought
    assert base[base["customer_id"] == 4]["product_id"].tolist() == [2, 4]


def test_evaluation_hides_the_last_order() -> None:
    # Two customers: the last order holds a product never bought before by anyone, so
    # neither the model nor the baseline can hit it.
    data = lines([(1, 1, 0, 1), (1, 2, 5, 2), (2, 3, 0, 1), (2, 4, 9, 5), (3, 5, 1, 2)])
    result = recommend.evaluate(data, NAMES, min_pair_orders=1, min_buyers=1)
    assert result.customers == result.eligible == 2
    assert result.model["hit_rate"] == 0.0
    # Customer 2's hidden product 5 was never bought before: no hit; customer 1's product 2
    # was bought by customer 3: the baseline offers it (the only product 1 had not bought).
    assert result.baseline["hit_rate"] == pytest.approx(0.5)
    assert result.baseline["precision"] == pytest.approx(1 / 10)


def test_no_lines_is_not_ready() -> None:
    with pytest.raises(NotReadyError, match="order_items"):
        recommend.Recommender().fit(lines([]))


def test_recommendations_find_who_holds_a_customer() -> None:
    found = {(t.name, c.name) for t, c in schema.customer_key_columns()}
    assert ("customer_recommendations", "customer_id") in found


@pytest.mark.both_stores
def test_model_beats_popularity_on_the_demo_with_both_methods(demo_store: Store) -> None:
    """Held-out last orders of the demo: above the popularity baseline on precision@5 and
    hit rate@5, and each method finds its signal (due consumables, complements)."""
    result = recommend.evaluate_store(demo_store)
    assert result.customers > 1_000
    assert result.model["precision"] > result.baseline["precision"] * 1.1
    assert result.model["hit_rate"] > result.baseline["hit_rate"] * 1.3
    assert result.beats_baseline
    hits, offers = result.hits_by_method, result.offers_by_method
    assert hits["replenishment"] / offers["replenishment"] > 0.4  # a due consumable is bought
    assert hits["cross_sell"] > 100
    assert hits["cross_sell"] / offers["cross_sell"] > result.baseline["precision"]
    assert result.offered_share > 0.9


@pytest.fixture
def demo_copy(demo_copy: Store) -> Store:
    """The shared demo copy, migrated to this schema."""
    demo_copy.init_schema()
    return demo_copy


@pytest.mark.both_stores
def test_score_stores_lists_and_fills_next_best_product(demo_copy: Store) -> None:
    run = recommend.score(demo_copy)
    stored = demo_copy.read_df(sa.select(schema.customer_recommendations))
    assert run.rows == len(stored) > 0
    assert stored.groupby("customer_id")["rank"].max().le(5).all()
    assert set(stored["method"]) == {"replenishment", "cross_sell"}
    assert stored["reason"].str.len().gt(0).all()
    assert run.as_of == features.as_of_date(demo_copy)
    cover = recommend.coverage(demo_copy)
    assert cover["customers"] == run.customers and cover["buyers"] >= run.customers
    features.ensure_fresh(demo_copy)
    best = demo_copy.read_df(
        "SELECT c.customer_id, c.next_best_product, p.name FROM customer_360 c "
        "LEFT JOIN customer_recommendations r ON r.customer_id = c.customer_id AND r.rank = 1 "
        "LEFT JOIN products p ON p.product_id = r.product_id"
    )
    assert best["next_best_product"].notna().sum() == run.customers
    same = best.dropna(subset=["name"])
    assert (same["next_best_product"] == same["name"]).all()
    top = recommend.top_products(demo_copy, 5)
    assert len(top) == 5 and top["customers"].is_monotonic_decreasing
    example = recommend.example_customer(demo_copy)
    mine = recommend.customer_list(demo_copy, example)
    assert mine["rank"].tolist() == list(range(1, len(mine) + 1))
    assert mine["method"].iloc[0] == "replenishment"
    again = recommend.score(demo_copy)  # replaces, never appends
    assert demo_copy.scalar("SELECT COUNT(*) FROM customer_recommendations") == again.rows


def test_cli_recommend_json_prints_the_evaluation(demo_copy: Store, capsys) -> None:
    assert cli.main(["recommend", "--score", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    evaluation = figures["evaluation"]
    assert evaluation["beats_baseline"] is True
    assert set(evaluation["model"]) == {"precision", "hit_rate"}
    assert figures["scored"]["rows"] > 0
    cover = figures["coverage"]  # the stored lists, as the view's Coverage card
    assert cover["customers"] == figures["scored"]["customers"]
    assert cover["share"] == pytest.approx(cover["customers"] / cover["buyers"])
    assert isinstance(datetime.fromisoformat(figures["scored"]["scored_at"]), datetime)
    assert cli.main(["recommend"]) == 0
    assert "precision@5" in capsys.readouterr().out


def test_a_store_without_order_lines_gets_one_clear_line(store, capsys):
    from crm_core.cli import main
    from tests.core import tiny

    tiny.load(store)  # orders without lines
    assert main(["recommend", "--score"]) == 2
    err = capsys.readouterr().err
    assert "order_items" in err and "Traceback" not in err
    assert main(["recommend", "--max-customers", "0"]) == 2
    assert "--max-customers: got 0" in capsys.readouterr().err

"""The demo generator: deterministic, schema-conformant, and telling true stories."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data

from crm_core import demo, schema
from crm_core.store import Store
from tests.conftest import DEMO_CUSTOMERS, DEMO_SEED

STORED = (*schema.DATA_TABLES, "suppressions")
TABLES = (*STORED, "planted_duplicates")  # and the truth about the planted duplicates
HORIZON = pd.Timestamp(demo.DEMO_END + timedelta(days=1))
FUNNEL = ("visit", "product_view", "add_to_cart", "checkout", "purchase")


def _columns(name: str) -> list:
    """The table's declared columns, not the import bookkeeping one (the demo leaves it empty)."""
    return [c for c in schema.table(name).columns if not c.info.get("bookkeeping")]


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """The same data the session demo store holds, as generated."""
    return demo.generate(DEMO_CUSTOMERS, seed=DEMO_SEED)


def _frames_equal(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> bool:
    return a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)


def test_generate_is_deterministic_for_a_seed() -> None:
    first = demo.generate(300, seed=3)
    again = demo.generate(300, seed=3)
    other = demo.generate(300, seed=4)
    for name in TABLES:
        pd.testing.assert_frame_equal(first[name], again[name])
    assert not _frames_equal(first, other)
    assert not first["orders"]["amount"].equals(other["orders"]["amount"])


def test_generate_returns_every_table_with_schema_columns(frames) -> None:
    assert set(frames) == set(TABLES)
    for name in TABLES:
        assert list(frames[name].columns) == [c.name for c in _columns(name)], name
        assert len(frames[name]) > 0, name


@pytest.mark.parametrize("name", STORED)
def test_values_satisfy_the_schema(frames, name: str) -> None:
    frame = frames[name]
    key = schema.primary_key(name)
    assert not frame.duplicated(subset=key).any(), f"{name}: duplicate primary key"
    for col in _columns(name):
        values = frame[col.name]
        if not col.nullable:
            assert values.notna().all(), f"{name}.{col.name} has nulls"
        present = values.dropna()
        if "allowed" in col.info:
            bad = set(present.astype(str)) - set(col.info["allowed"])
            assert not bad, f"{name}.{col.name}: {bad}"
        if "min" in col.info:
            assert (present >= col.info["min"]).all(), f"{name}.{col.name} below min"
        if "references" in col.info:
            ref_table, ref_col = col.info["references"].split(".")
            known = set(frames[ref_table][ref_col])
            assert set(present.astype("int64")) <= known, f"{name}.{col.name} dangling"
        if pd.api.types.is_datetime64_any_dtype(values) and col.name != "birth_date":
            assert (present < HORIZON).all(), f"{name}.{col.name} after the end"
            assert (present >= HORIZON - pd.Timedelta(days=3 * 366 + 1)).all(), col.name
        if col.primary_key and len(key) == 1 and pd.api.types.is_integer_dtype(values):
            assert values.min() == 1
            assert values.dtype == np.int64


def test_cross_table_consistency(frames) -> None:
    customers = frames["customers"].set_index("customer_id")
    orders = frames["orders"]
    signup = customers.loc[orders["customer_id"], "signup_at"].to_numpy()
    assert (orders["ordered_at"].to_numpy() >= signup).all()
    assert (orders["amount"] > 0).all()
    assert np.allclose(orders["amount"], orders["amount"].round(2))
    assert customers["email"].dropna().is_unique
    tickets = frames["support_tickets"]
    closed = tickets["status"] == "closed"
    assert tickets.loc[closed, "closed_at"].notna().all()
    assert tickets.loc[~closed, "closed_at"].isna().all()
    assert (tickets["closed_at"].dropna() >= tickets.loc[closed, "opened_at"]).all()
    leads = frames["leads"]
    assert (leads["stage_changed_at"] >= leads["created_at"]).all()
    assert leads.loc[leads["stage"] == "won", "customer_id"].notna().all()
    # Leads of existing customers (upsell) carry their customer from the start; others not.
    assert leads.loc[leads["stage"] != "won", "customer_id"].notna().mean() < 0.25
    surveys = frames["survey_responses"]
    nps = surveys["survey"] == "nps"
    assert surveys.loc[nps, "score"].between(0, 10).all()
    assert surveys.loc[~nps, "score"].between(1, 5).all()
    supp = frames["suppressions"]
    known = set(customers["email"].dropna()) | set(customers["phone"].dropna())
    assert set(supp["value"]) <= known
    assert 20 <= len(supp) <= 60


def test_customers_have_realistic_consent_and_erasure(frames) -> None:
    customers = frames["customers"]
    assert 0.2 <= 1 - customers["consent_email"].mean() <= 0.3
    assert 0.5 <= 1 - customers["consent_sms"].mean() <= 0.6
    erased = customers["erased_at"].notna()
    assert 0.002 <= erased.mean() <= 0.01
    for col in schema.pii_columns("customers"):
        assert customers.loc[erased, col].isna().all(), col
    assert 0 < customers.loc[~erased, "email"].isna().mean() < 0.05
    assert customers["country"].nunique() >= 6
    assert customers["acquisition_channel"].nunique() >= 7
    signup = customers["signup_at"]
    first_year = (signup < signup.min() + pd.Timedelta(days=365)).sum()
    last_year = (signup >= HORIZON - pd.Timedelta(days=365)).sum()
    assert last_year > 1.5 * first_year  # growing


def test_create_demo_store_loads_everything_in_one_go(store: Store) -> None:
    calls: list[tuple[float, str]] = []
    counts = demo.create_demo_store(
        store, customers=200, seed=5, progress=lambda f, m: calls.append((f, m))
    )
    assert list(counts) == [*schema.DATA_TABLES, "suppressions", "planted_duplicates"]
    assert counts == store.row_counts(TABLES)
    assert all(counts[name] > 0 for name in TABLES)
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert 3 <= len(calls) <= 40


def test_demo_store_volumes_are_in_proportion(demo_store: Store) -> None:
    counts = demo_store.row_counts(TABLES)
    per_customer = {k: v / counts["customers"] for k, v in counts.items()}
    planted = counts["planted_duplicates"]
    assert counts["customers"] == DEMO_CUSTOMERS + planted
    assert 0.025 * DEMO_CUSTOMERS <= planted <= 0.04 * DEMO_CUSTOMERS
    assert 7 <= per_customer["orders"] <= 13
    assert 1.8 <= counts["events"] / counts["orders"] <= 3.5
    assert 56 <= counts["campaigns"] <= 80  # ~12 themed campaigns and 12 newsletters a year
    for name in ("campaign_contacts", "survey_responses", "support_tickets", "leads"):
        assert counts[name] > 0.02 * counts["customers"], name


def _completed_orders(store: Store) -> pd.DataFrame:
    return store.read_df(
        "SELECT customer_id, ordered_at, amount FROM orders WHERE status = 'completed'"
    )


def test_bgnbd_and_gamma_gamma_fit_the_demo_orders(demo_store: Store) -> None:
    orders = _completed_orders(demo_store)
    summary = summary_data_from_transaction_data(
        orders,
        "customer_id",
        "ordered_at",
        monetary_value_col="amount",
        observation_period_end=pd.Timestamp(demo.DEMO_END),
        freq="D",
    )
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(summary["frequency"], summary["recency"], summary["T"])
    params = bgf.params_
    assert np.isfinite(params).all() and (params > 0).all()
    true = demo.BGNBD_PARAMS
    assert (
        0.3 * true["r"] / true["alpha"]
        < params["r"] / params["alpha"]
        < 3 * true["r"] / true["alpha"]
    )
    repeat = summary[summary["frequency"] > 0]
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(repeat["frequency"], repeat["monetary_value"])
    assert np.isfinite(ggf.params_).all() and (ggf.params_ > 0).all()
    mean_spend = ggf.conditional_expected_average_profit(
        repeat["frequency"], repeat["monetary_value"]
    )
    assert 20 < mean_spend.median() < 200


def test_seasonality_peaks_in_november_december(demo_store: Store) -> None:
    orders = _completed_orders(demo_store)
    month = orders["ordered_at"].dt.month
    year_ago = orders["ordered_at"] >= HORIZON - pd.Timedelta(days=365)
    per_month = orders[year_ago].groupby(month[year_ago]).size()
    assert per_month[[11, 12]].mean() > 1.2 * per_month[[7, 8]].mean()


def _lifecycle(store: Store) -> pd.DataFrame:
    """Repeat customers who stopped buying (no order for 180 days) vs recently active ones."""
    cust = store.read_df(
        "SELECT customer_id, COUNT(*) AS orders, MAX(ordered_at) AS last_order "
        "FROM orders WHERE status <> 'cancelled' GROUP BY customer_id"
    )
    cust = cust[cust["orders"] >= 3]
    churned = cust["last_order"] < HORIZON - pd.Timedelta(days=180)
    active = cust["last_order"] >= HORIZON - pd.Timedelta(days=45)
    cust["group"] = np.where(churned, "churned", np.where(active, "active", "other"))
    return cust.set_index("customer_id")


def test_churned_customers_drift_before_leaving(demo_store: Store) -> None:
    life = _lifecycle(demo_store)
    assert (life["group"] == "churned").sum() > 50 and (life["group"] == "active").sum() > 50
    nps = demo_store.read_df(
        "SELECT customer_id, answered_at, score FROM survey_responses WHERE survey = 'nps'"
    ).join(life, on="customer_id", how="inner")
    # Churned customers' last months before their final order vs active customers.
    recent = nps["answered_at"] >= nps["last_order"] - pd.Timedelta(days=150)
    mean_nps = nps[recent].groupby("group")["score"].mean()
    assert mean_nps["churned"] < mean_nps["active"] - 1.0

    tickets = demo_store.read_df("SELECT customer_id, priority, status FROM support_tickets").join(
        life, on="customer_id", how="inner"
    )
    per_order = tickets.groupby("group").size() / life.groupby("group")["orders"].sum()
    assert per_order["churned"] > 1.5 * per_order["active"]
    urgent = tickets["priority"].isin(["high", "urgent"]).groupby(tickets["group"]).mean()
    assert urgent["churned"] > urgent["active"]

    opens = demo_store.read_df(
        "SELECT c.customer_id, c.opened_at IS NOT NULL AS opened FROM campaign_contacts c "
        "JOIN campaigns k USING (campaign_id) "
        "WHERE k.channel = 'email' AND c.test_group = 'treatment'"
    ).join(life, on="customer_id", how="inner")
    open_rate = opens.groupby("group")["opened"].mean()
    assert open_rate["churned"] < open_rate["active"]

    visits = demo_store.read_df(
        "SELECT customer_id, event_type, occurred_at FROM events "
        "WHERE event_type IN ('visit', 'purchase')"
    ).join(life, on="customer_id", how="inner")
    visits = visits[visits["occurred_at"] >= visits["last_order"] - pd.Timedelta(days=90)]
    per_purchase = visits.groupby(["group", "event_type"]).size().unstack()
    browsing = per_purchase["visit"] / per_purchase["purchase"]
    assert browsing["churned"] < 0.8 * browsing["active"]

    comments = demo_store.read_df(
        "SELECT score, lower(comment) AS comment FROM survey_responses "
        "WHERE survey = 'nps' AND comment IS NOT NULL"
    )
    detractor = comments.loc[comments["score"] <= 6, "comment"]
    promoter = comments.loc[comments["score"] >= 9, "comment"]
    assert detractor.str.contains("late delivery|rude support|poor quality").mean() > 0.2
    assert not promoter.str.contains("late delivery|rude support|poor quality").any()
    assert promoter.str.contains("great quality|fast shipping|friendly support").mean() > 0.2


def test_campaigns_have_real_uplift(demo_store: Store) -> None:
    contacts = demo_store.read_df(
        """
        SELECT c.test_group, c.opened_at IS NOT NULL AS opened,
               EXISTS (
                   SELECT 1 FROM orders o
                   WHERE o.customer_id = c.customer_id AND o.ordered_at > c.sent_at
                     AND o.ordered_at <= c.sent_at + INTERVAL 14 DAY
               ) AS converted
        FROM campaign_contacts c
        """
    )
    assert 0.06 <= (contacts["test_group"] == "control").mean() <= 0.14
    assert not contacts.loc[contacts["test_group"] == "control", "opened"].any()
    rate = contacts.groupby("test_group")["converted"].mean()
    assert rate["treatment"] > rate["control"] + 0.03

    tagged = demo_store.read_df(
        "SELECT o.ordered_at, k.started_at, k.ended_at FROM orders o "
        "JOIN campaigns k USING (campaign_id)"
    )
    assert len(tagged) > 0
    assert (tagged["ordered_at"] >= tagged["started_at"]).all()
    running = tagged["ended_at"].isna() | (tagged["ordered_at"] <= tagged["ended_at"])
    assert running.all()


def test_web_funnel_narrows_and_purchases_match_orders(demo_store: Store) -> None:
    counts = demo_store.read_df(
        "SELECT event_type, COUNT(*) AS n, COUNT(DISTINCT session_id) AS sessions "
        "FROM events GROUP BY event_type"
    ).set_index("event_type")
    steps = counts.loc[list(FUNNEL)]
    assert steps["n"].is_monotonic_decreasing and steps["n"].is_unique
    assert steps["sessions"].is_monotonic_decreasing and steps["sessions"].is_unique
    assert {"email_open", "email_click", "app_open"} <= set(counts.index)
    unmatched = demo_store.scalar(
        "SELECT COUNT(*) FROM events e WHERE e.event_type = 'purchase' AND NOT EXISTS ("
        "SELECT 1 FROM orders o WHERE o.customer_id = e.customer_id "
        "AND o.ordered_at = e.occurred_at)"
    )
    assert unmatched == 0


def test_leads_move_through_a_narrowing_pipeline(frames) -> None:
    stage_index = {s: i for i, s in enumerate(schema.LEAD_STAGES)}
    reached = frames["leads"]["stage"].astype(str).map(stage_index).clip(upper=4)
    at_least = [(reached >= i).sum() for i in range(5)]
    assert all(a > b for a, b in zip(at_least, at_least[1:], strict=False))


# --- products and order lines ----------------------------------------------------------------


def _cents(values: pd.Series) -> np.ndarray:
    return np.rint(values.to_numpy(dtype=float) * 100).astype(np.int64)


def test_order_lines_agree_with_their_orders_to_the_cent(frames) -> None:
    orders = frames["orders"].set_index("order_id")
    lines = frames["order_items"]
    by_order = lines.groupby("order_id")
    assert by_order.ngroups == len(orders)  # every order has lines
    assert (
        pd.Series(_cents(lines["amount"])).groupby(lines["order_id"].to_numpy()).sum()
        == _cents(orders["amount"])
    ).all()
    assert (by_order["quantity"].sum() == orders["items"]).all()
    assert (lines["quantity"] >= 1).all() and (lines["amount"] > 0).all()
    numbered = by_order["line_no"].agg(["min", "max", "size"])
    assert (numbered["min"] == 1).all() and (numbered["max"] == numbered["size"]).all()
    # The order's category is the category of its largest line (the first of equal ones).
    products = frames["products"].set_index("product_id")
    ranked = lines.assign(cents=_cents(lines["amount"])).sort_values(
        ["order_id", "cents", "line_no"], ascending=[True, False, True]
    )
    largest = ranked.drop_duplicates("order_id").set_index("order_id")["product_id"]
    category = products.loc[largest, "category"].astype(str).to_numpy()
    assert (category == orders["category"].astype(str).to_numpy()).all()
    # A line is its quantity at the unit price paid, which is the list price or a discount.
    gap = _cents(lines["amount"]) - lines["quantity"].to_numpy() * _cents(lines["unit_price"])
    assert (np.abs(gap) <= lines["quantity"].to_numpy() // 2).all()
    listed = products.loc[lines["product_id"], "price"].to_numpy()
    assert (lines["unit_price"].to_numpy() <= listed + 0.005).all()
    assert (lines["unit_price"].to_numpy() == listed).mean() > 0.5
    assert 1.8 <= len(lines) / len(orders) <= 3.0


def test_refunded_and_cancelled_orders_keep_their_lines(frames) -> None:
    orders = frames["orders"]
    lines = frames["order_items"].merge(orders[["order_id", "status"]], on="order_id")
    for status in ("refunded", "cancelled"):
        kept = lines.loc[lines["status"] == status, "order_id"].nunique()
        assert kept == (orders["status"] == status).sum() > 0
        assert (lines.loc[lines["status"] == status, "quantity"] > 0).all()


def test_catalogue_has_categories_and_price_levels(frames) -> None:
    catalogue = demo.catalogue()
    products = frames["products"]
    pd.testing.assert_frame_equal(products, catalogue[list(products.columns)])
    assert 200 <= len(products) <= 500 and products["sku"].is_unique
    assert set(products["category"].astype(str)) == set(frames["orders"]["category"].astype(str))
    median = catalogue.groupby(["category", "level"], observed=True)["price"].median().unstack()
    assert ((median["basic"] < median["mid"]) & (median["mid"] < median["premium"])).all()
    bought = frames["order_items"]["product_id"].value_counts()
    level = catalogue.set_index("product_id").loc[bought.index, "level"]
    units = bought.groupby(level.to_numpy(), observed=True).sum()
    assert units["basic"] > units["mid"] > units["premium"] > 0


def test_declared_pairs_are_bought_together(frames) -> None:
    catalogue = demo.catalogue()
    basket = frames["order_items"][["order_id", "product_id"]].drop_duplicates()
    orders = basket["order_id"].nunique()
    has = basket["product_id"].value_counts()
    both = basket.merge(basket, on="order_id").groupby(["product_id_x", "product_id_y"]).size()
    pairs = catalogue.dropna(subset=["complement_id"])
    lifts = []
    for x, y in zip(pairs["product_id"], pairs["complement_id"].astype(int), strict=True):
        if has.get(x, 0) >= 30:
            lifts.append(both.get((x, y), 0) * orders / (has[x] * has[y]))
    assert len(lifts) >= 10
    assert min(lifts) > 2 and np.median(lifts) > 10


def test_consumables_are_bought_again_on_their_cycle(frames) -> None:
    catalogue = demo.catalogue().set_index("product_id")
    cyclic = catalogue.index[catalogue["cycle_weeks"] > 0]
    lines = frames["order_items"].merge(
        frames["orders"][["order_id", "customer_id", "ordered_at"]], on="order_id"
    )
    lines = lines[lines["product_id"].isin(cyclic)].sort_values("ordered_at")
    days = (
        lines.groupby(["customer_id", "product_id"])["ordered_at"].diff().dt.total_seconds()
        / 86_400
    )
    gaps = lines.assign(
        gap=days / (7 * catalogue.loc[lines["product_id"], "cycle_weeks"].to_numpy())
    )
    ratio = gaps.dropna(subset=["gap"]).groupby("product_id")["gap"].agg(["median", "size"])
    assert ratio["size"].sum() > 500
    well_bought = ratio[ratio["size"] >= 40]
    assert len(well_bought) >= 5
    assert well_bought["median"].between(0.9, 1.4).all()
    # Consumables are bought again; other products hardly by the same customer so regularly.
    again = lines.groupby(["customer_id", "product_id"]).size()
    assert (again >= 3).mean() > 0.3


@pytest.mark.both_stores
def test_demo_store_lines_add_up_in_the_store(demo_store: Store) -> None:
    """Stored as DECIMAL, order totals and line sums agree exactly."""
    mismatched = demo_store.scalar(
        "SELECT COUNT(*) FROM orders o LEFT JOIN (SELECT order_id, SUM(amount) AS amount, "
        "SUM(quantity) AS items FROM order_items GROUP BY order_id) l USING (order_id) "
        "WHERE l.amount IS NULL OR l.amount <> o.amount OR l.items <> o.items"
    )
    assert mismatched == 0
    assert demo_store.scalar("SELECT COUNT(*) FROM products") == len(demo.catalogue())


def test_lines_generated_in_chunks_of_orders_agree_too(monkeypatch) -> None:
    """At millions of orders the lines are made in chunks; chunk borders change nothing."""
    monkeypatch.setattr(demo, "_LINE_CHUNK", 500)
    frames = demo.generate(300, seed=3)
    orders, lines = frames["orders"], frames["order_items"]
    assert len(orders) > 4 * 500
    total = pd.Series(_cents(lines["amount"])).groupby(lines["order_id"].to_numpy()).sum()
    assert (total.to_numpy() == _cents(orders["amount"])).all()
    items = lines.groupby("order_id")["quantity"].sum()
    assert (items.to_numpy() == orders["items"].to_numpy()).all()
    assert not lines.duplicated(["order_id", "line_no"]).any()


def test_planted_duplicates_differ_as_their_truth_says(frames) -> None:
    from crm_core.contacts import email_key, phone_key

    truth = frames["planted_duplicates"]
    customers = frames["customers"].set_index("customer_id")
    n = len(customers) - len(truth)
    assert truth["customer_id"].tolist() == list(range(n + 1, len(customers) + 1))
    text = {c: "object" for c in ("first_name", "last_name", "city")}
    copy = customers.loc[truth["customer_id"]].reset_index().astype(text)
    orig = customers.loc[truth["duplicate_of"]].reset_index().astype(text)
    kinds = truth["kind"].str.split(",")
    has = {
        k: kinds.map(lambda ks, k=k: k in ks).to_numpy()
        for k in (*demo.DUPLICATE_KINDS, "no_email")
    }
    assert orig["erased_at"].isna().all() and (truth["duplicate_of"] <= n).all()
    assert (copy["signup_at"] > orig["signup_at"]).all()
    for col in ("birth_date", "country", "gender"):
        assert copy[col].astype(str).equals(orig[col].astype(str)), col
    same_names = (copy["first_name"] == orig["first_name"]) & (
        copy["last_name"] == orig["last_name"]
    )
    swapped = (copy["first_name"] == orig["last_name"]) & (copy["last_name"] == orig["first_name"])
    plain = ~has["name_typo"] & ~has["swapped_names"]
    assert same_names[plain].all() and swapped[has["swapped_names"] & ~has["name_typo"]].all()
    assert not (same_names | swapped)[has["name_typo"]].any()
    assert (copy["city"] != orig["city"])[has["moved_city"]].all()
    assert (copy["city"] == orig["city"])[~has["moved_city"]].all()
    same_mailbox = email_key(copy["email"]) == email_key(orig["email"])
    assert same_mailbox[has["email_case"]].all()
    assert (copy["email"] != orig["email"])[has["email_case"] | has["email_tag"]].all()
    assert copy.loc[has["no_email"], "email"].isna().all()
    phones = copy["phone"].notna()
    assert (phone_key(copy["phone"], copy["country"]) == phone_key(orig["phone"], orig["country"]))[
        phones
    ].all()
    assert (copy["phone"] != orig["phone"])[has["phone_format"] & phones].all()
    assert (copy["phone"] == orig["phone"])[~has["phone_format"] & phones].all()
    # the copies bought something and some opted out where the original had not
    assert frames["orders"]["customer_id"].isin(truth["customer_id"]).sum() > 0.5 * len(truth)
    assert (orig["consent_email"] & ~copy["consent_email"]).any()

"""What to offer each customer next: products they are due to buy again, and products bought
together with what they bought.

Two methods, each used for what it does best:

- **Replenishment** (products bought on a cycle): a *consumable* is a product whose buyers
  buy it again (at least `consumable_share` of its buyers bought it on two or more days).
  A customer who bought a consumable on at least `min_purchases` days buys it every
  median-gap days; it is due when the days since the last purchase reach that gap
  ("due: every 45 days, last 52 days ago"). Its score is (n - 1) / n for n purchase days
  (the more repeats, the surer the cycle), fading once more than two cycles have passed since
  the last purchase; after `MAX_CYCLES_OVERDUE` cycles it is no longer offered.
- **Cross-sell** (products bought together): association rules from mlxtend's FP-growth
  over order baskets (the products of each completed order), one product leading to one
  other, kept when seen in at least `min_pair_orders` orders with a confidence of at least
  `min_confidence` and a lift of at least `min_lift` (over a random `max_baskets` of the
  baskets when there are more). A customer is offered the consequent of a rule whose
  antecedent they bought in their last `RECENT_ORDERS` orders, scored by the rule's
  confidence halved per order since the antecedent ("bought with Mug in 31% of orders with
  Mug": confidence is per order).

A product the customer already bought is never offered by cross-sell, so a once-only item
(not a consumable) is not recommended again, nor is another variant of it (products of one
`product_group`: a size, colour or price level of the same item; no rule pairs two variants);
replenishment offers only consumables, and stops offering one when the customer has let it
lapse for more than `MAX_CYCLES_OVERDUE` cycles (they have moved on). Each customer gets the
`top_n` best-scored products of both methods, at most one of each variant group.

`evaluate` hides each customer's last order (customers with at least two purchases with
lines), fits on everything else, recommends `top_n` products on the day of the hidden order
and compares them with what it held: precision@k (share of the k offers bought) and hit
rate@k (share of customers who bought at least one), against a popularity baseline (the k
products most customers bought that the customer has not bought).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy import sparse

from crm_core import features
from crm_core.analytics.clv import NotReadyError
from crm_core.filters import IS_PURCHASE
from crm_core.schema import RECOMMEND_METHODS, customer_recommendations, order_items, orders
from crm_core.schema import products as products_table
from crm_core.store import Store, lock_tables, utcnow

SOURCE_TABLES = frozenset({"orders", "order_items", "products"})
"""What the recommendations are computed from (for the app's caches)."""

TABLES_WRITTEN = ("customer_recommendations",)
"""What `score` writes (the 360 table's next_best_product is rebuilt from it)."""

METHOD_LABELS = {"replenishment": "Replenishment", "cross_sell": "Cross-sell"}

EPOCH = np.datetime64("1970-01-01", "D")

MAX_CYCLES_OVERDUE = 3
"""A consumable is due from one cycle after the last purchase until this many cycles after."""

RECENT_ORDERS = 4
"""Cross-sell looks at the products of a customer's last so many orders (an antecedent
counts half per order since: one four orders back counts an eighth)."""

CROSS_SELL_SLICE = 5_000_000
"""Candidate (customer, rule) rows scored at a time: memory stays bounded at any size."""


def purchase_lines(store: Store) -> pd.DataFrame:
    """customer_id, order_id, ordered_at, day (days since 1970) and product_id: one row per
    product of each completed order (a product on several lines of an order counts once)."""
    stmt = (
        sa.select(
            orders.c.customer_id,
            orders.c.order_id,
            orders.c.ordered_at,
            order_items.c.product_id,
        )
        .select_from(orders.join(order_items, order_items.c.order_id == orders.c.order_id))
        .where(IS_PURCHASE)
        .group_by(
            orders.c.customer_id, orders.c.order_id, orders.c.ordered_at, order_items.c.product_id
        )
    )
    frame = store.read_df(stmt)
    at = pd.to_datetime(frame["ordered_at"]).to_numpy().astype("datetime64[D]")
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(np.int64),
            "order_id": frame["order_id"].to_numpy(np.int64),
            "ordered_at": pd.to_datetime(frame["ordered_at"]).to_numpy(),
            "day": (at - EPOCH).astype(np.int32),
            "product_id": frame["product_id"].to_numpy(np.int64),
        }
    )


def product_names(store: Store) -> pd.Series:
    """Product name by product_id."""
    frame = store.read_df(sa.select(products_table.c.product_id, products_table.c.name))
    return frame.set_index("product_id")["name"]


def product_groups(store: Store) -> pd.Series:
    """Product group by product_id (products with no group left out: each stands alone)."""
    p = products_table.c
    frame = store.read_df(
        sa.select(p.product_id, p.product_group).where(p.product_group.is_not(None))
    )
    return frame.set_index("product_id")["product_group"]


def _variant_of(groups: pd.Series | None) -> pd.Series:
    """Per grouped product_id, the lowest product_id of its group (the variants' one key)."""
    if groups is None or groups.empty:
        return pd.Series(dtype=np.int64)
    ids = pd.Series(groups.index.to_numpy(np.int64), index=groups.index)
    return ids.groupby(groups.to_numpy()).transform("min").astype(np.int64)


def _day(value: date) -> int:
    return int((np.datetime64(value, "D") - EPOCH).astype(int))


class Recommender:
    """Replenishment and cross-sell recommendations (the scikit-learn estimator contract:
    parameters here, `fit` learns from purchase lines and returns self)."""

    def __init__(
        self,
        top_n: int = 5,
        min_pair_orders: int = 10,
        min_confidence: float = 0.02,
        min_lift: float = 1.5,
        consumable_share: float = 0.4,
        min_buyers: int = 10,
        min_purchases: int = 2,
        max_baskets: int = 300_000,
        random_state: int = 0,
    ) -> None:
        self.top_n = top_n
        self.min_pair_orders = min_pair_orders
        self.min_confidence = min_confidence
        self.min_lift = min_lift
        self.consumable_share = consumable_share
        self.min_buyers = min_buyers
        self.min_purchases = min_purchases
        self.max_baskets = max_baskets
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, object]:
        """The parameters (scikit-learn's contract)."""
        names = (
            "top_n",
            "min_pair_orders",
            "min_confidence",
            "min_lift",
            "consumable_share",
            "min_buyers",
            "min_purchases",
            "max_baskets",
            "random_state",
        )
        return {name: getattr(self, name) for name in names}

    def fit(
        self,
        lines: pd.DataFrame,
        names: pd.Series | None = None,
        history: pd.DataFrame | None = None,
        groups: pd.Series | None = None,
    ) -> Recommender:
        """Learn the products' popularity, the consumables and the association rules from
        purchase lines (`purchase_lines`); `names` (product name by id) words the reasons;
        `history` is `purchase_history(lines)` when already computed; `groups` (product
        group by id, `product_groups`) says which products are variants of one another."""
        if lines.empty:
            raise NotReadyError(
                [
                    "no completed orders with lines: import `order_items` (the products of each "
                    "order) to get recommendations"
                ],
                "Recommendations",
            )
        days = purchase_history(lines) if history is None else history
        per_product = days.groupby("product_id")["n"]
        buyers = per_product.size()
        repeat = per_product.apply(lambda n: float((n >= 2).mean()))
        self.popularity_ = buyers.sort_index().sort_values(ascending=False, kind="stable")
        self.repeat_share_ = repeat
        keep = (repeat >= self.consumable_share) & (buyers >= self.min_buyers)
        self.consumables_ = np.sort(repeat.index[keep].to_numpy(np.int64))
        self.names_ = names if names is not None else pd.Series(dtype=str)
        self.variant_of_ = _variant_of(groups)
        self.rules_, self.baskets_ = self._rules(lines)
        return self

    def _rules(self, lines: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """One-to-one association rules (mlxtend's FP-growth and association_rules) over the
        order baskets, a random sample of `max_baskets` of them when there are more."""
        from mlxtend.frequent_patterns import association_rules, fpgrowth

        columns = ["antecedent", "consequent", "support", "confidence", "lift", "orders"]
        empty = pd.DataFrame(columns=columns)
        order_ids = np.unique(lines["order_id"].to_numpy())
        if len(order_ids) > self.max_baskets:
            rng = np.random.default_rng(self.random_state)
            order_ids = np.sort(rng.choice(order_ids, self.max_baskets, replace=False))
            lines = lines[np.isin(lines["order_id"].to_numpy(), order_ids)]
        n = len(order_ids)
        if n < self.min_pair_orders:
            return empty, n
        row = np.searchsorted(order_ids, lines["order_id"].to_numpy())
        items, col = np.unique(lines["product_id"].to_numpy(), return_inverse=True)
        matrix = sparse.csr_matrix(
            (np.ones(len(row), dtype=bool), (row, col)), shape=(n, len(items))
        )
        onehot = pd.DataFrame.sparse.from_spmatrix(matrix)  # columns 0..: index into items
        itemsets = fpgrowth(
            onehot, min_support=self.min_pair_orders / n, max_len=2, use_colnames=True
        )
        if not (itemsets["itemsets"].map(len) == 2).any():
            return empty, n
        rules = association_rules(
            itemsets,
            num_itemsets=n,
            metric="confidence",
            min_threshold=self.min_confidence,
            return_metrics=["support", "confidence", "lift"],
        )
        rules = rules[rules["lift"] >= self.min_lift]
        ante = items[[next(iter(a)) for a in rules["antecedents"]]]
        cons = items[[next(iter(c)) for c in rules["consequents"]]]
        apart = self._variant(ante) != self._variant(cons)  # never a variant of the same item
        rules, ante, cons = rules[apart], ante[apart], cons[apart]
        frame = pd.DataFrame(
            {
                "antecedent": ante,
                "consequent": cons,
                "support": rules["support"].to_numpy(float),
                "confidence": rules["confidence"].to_numpy(float),
                "lift": rules["lift"].to_numpy(float),
                "orders": np.rint(rules["support"].to_numpy(float) * n).astype(np.int64),
            }
        )
        frame = frame.astype({"antecedent": np.int64, "consequent": np.int64})
        frame = frame.sort_values(["antecedent", "confidence"], ascending=[True, False])
        return frame.reset_index(drop=True)[columns], n

    def _variant(self, product_ids: np.ndarray) -> np.ndarray:
        """Each product's variant key: its group's lowest product_id, or its own id."""
        ids = np.asarray(product_ids, dtype=np.int64)
        key = self.variant_of_.reindex(ids).to_numpy(dtype=float)
        return np.where(np.isnan(key), ids, key).astype(np.int64)

    def recommend(
        self,
        lines: pd.DataFrame,
        as_of: date | Mapping[int, int] | pd.Series,
        history: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Up to `top_n` products per customer of `lines` (their purchase history):
        customer_id, rank, product_id, method, score, reason. `as_of` is the day recommended
        for: a date, or per customer a day number (days since 1970); `history` is
        `purchase_history(lines)` when already computed."""
        days = purchase_history(lines) if history is None else history
        if isinstance(as_of, date):
            now = np.full(len(days), _day(as_of), dtype=np.int64)
        else:
            now = pd.Series(as_of).reindex(days["customer_id"].to_numpy()).to_numpy(np.int64)
        parts = [p for p in (self._replenishment(days, now), self._cross_sell(days)) if len(p)]
        columns = ["customer_id", "rank", "product_id", "method", "score", "reason"]
        if not parts:
            return pd.DataFrame(columns=columns)
        recs = pd.concat(parts, ignore_index=True)
        cust = recs["customer_id"].to_numpy()
        prod = recs["product_id"].to_numpy()
        method = recs["method"].to_numpy()
        score = recs["score"].to_numpy()
        # Best first per customer; replenishment before cross-sell on equal scores.
        order = np.lexsort((prod, method != "replenishment", -score, cust))
        recs = recs.iloc[order]
        variant = self._variant(recs["product_id"].to_numpy(np.int64))
        recs = recs[~recs.assign(variant=variant).duplicated(["customer_id", "variant"])]
        cust = recs["customer_id"].to_numpy()
        start = np.r_[True, cust[1:] != cust[:-1]]
        pos = np.arange(len(cust))
        recs = recs.assign(rank=pos - np.maximum.accumulate(np.where(start, pos, 0)) + 1)
        recs = recs[recs["rank"] <= self.top_n].reset_index(drop=True)
        recs["reason"] = self._reasons(recs)
        return recs[columns]

    def _reasons(self, recs: pd.DataFrame) -> pd.Categorical:
        """Each recommendation's reason in words (each distinct one worded once)."""
        names = self.names_.to_dict()
        due = (recs["method"] == "replenishment").to_numpy()
        parts = pd.DataFrame(
            {
                "due": due,
                "a": np.where(due, np.rint(recs["gap"].to_numpy(float)), recs["antecedent"]),
                "b": np.where(
                    due, recs["since"].to_numpy(float), np.rint(recs["confidence"] * 100)
                ),
            }
        )
        codes, uniques = pd.factorize(pd.MultiIndex.from_frame(parts))
        words = []
        for is_due, a, b in uniques:
            if is_due:
                words.append(f"due: every {a:.0f} days, last {b:.0f} days ago")
            else:
                name = names.get(int(a), f"product {int(a)}")
                words.append(f"bought with {name} in {b:.0f}% of orders with {name}")
        text, same = np.unique(np.asarray(words, dtype=object), return_inverse=True)
        return pd.Categorical.from_codes(same[codes], text)  # few distinct: fast to store

    def _replenishment(self, days: pd.DataFrame, now: np.ndarray) -> pd.DataFrame:
        """Consumables the customer bought on `min_purchases` days or more and is due for
        (`now`: the day recommended for, per row of `days`)."""
        mine = np.isin(days["product_id"].to_numpy(), self.consumables_)
        mine &= days["n"].to_numpy() >= self.min_purchases
        rows = days[mine]
        since = now[mine] - rows["last"].to_numpy()
        gap = rows["gap"].to_numpy()
        due = (gap > 0) & (since >= gap) & (since <= MAX_CYCLES_OVERDUE * gap)
        rows, since, gap = rows[due], since[due], gap[due]
        n = rows["n"].to_numpy(dtype=float)
        return pd.DataFrame(
            {
                "customer_id": rows["customer_id"].to_numpy(),
                "product_id": rows["product_id"].to_numpy(),
                "method": "replenishment",
                # the surer the cycle (more repeats), the higher; fading past two cycles
                "score": (n - 1) / n * np.minimum(1.0, 2.0 * gap / np.maximum(since, 1)),
                "antecedent": -1,
                "confidence": np.nan,
                "gap": gap,
                "since": since.astype(float),
            }
        )

    def _cross_sell(self, days: pd.DataFrame) -> pd.DataFrame:
        """Consequents of rules whose antecedent the customer bought in one of their last
        `RECENT_ORDERS` orders, not bought yet; an older antecedent counts half per order.
        The `top_n` best per customer (in slices of customers: bounded memory)."""
        if self.rules_.empty:
            return pd.DataFrame()
        # Only a product's strongest consequents can reach a list of top_n (a few more for
        # those the customer already holds).
        rules = self.rules_.groupby("antecedent", sort=False).head(2 * self.top_n)
        rules = rules.sort_values(["antecedent", "confidence"], ascending=[True, False])
        r_ante = rules["antecedent"].to_numpy(np.int64)
        r_conf = rules["confidence"].to_numpy(float)
        # Keys: customer code x products + product code, in the order of `days`.
        d_prod = days["product_id"].to_numpy(np.int64)
        items = np.unique(np.r_[d_prod, rules["consequent"].to_numpy(np.int64)])
        width = np.int64(len(items))
        r_cons = np.searchsorted(items, rules["consequent"].to_numpy(np.int64))
        cust_all = days["customer_id"].to_numpy(np.int64)
        new = np.r_[True, cust_all[1:] != cust_all[:-1]]
        ids, code = cust_all[new], np.cumsum(new) - 1
        # What a customer owns, by variant key (a variant of an owned product counts as owned).
        d_var = self._variant(d_prod)
        r_var = self._variant(rules["consequent"].to_numpy(np.int64))
        variants = np.unique(np.r_[d_var, r_var])
        v_width = np.int64(len(variants))
        owned = np.sort(code * v_width + np.searchsorted(variants, d_var))
        r_vcons = np.searchsorted(variants, r_var)
        recent = days["orders_ago"].to_numpy() < RECENT_ORDERS
        cust, prod = code[recent], d_prod[recent]
        weight = 0.5 ** days["orders_ago"].to_numpy(float)[recent]
        lo = np.searchsorted(r_ante, prod, "left")
        count = np.searchsorted(r_ante, prod, "right") - lo
        ends = np.cumsum(count)
        parts = []
        first = 0
        while first < len(cust):  # slices of about CROSS_SELL_SLICE candidates, whole customers
            last = int(np.searchsorted(ends, ends[first] - count[first] + CROSS_SELL_SLICE))
            last = max(last, first + 1)
            if last < len(cust):
                last = int(np.searchsorted(cust, cust[last - 1], "right"))
            rows = slice(first, last)
            parts.append(
                self._slice(
                    cust[rows],
                    weight[rows],
                    lo[rows],
                    count[rows],
                    (r_cons, r_conf, width),
                    (owned, r_vcons, v_width),
                )
            )
            first = last
        best = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if best.empty:
            return best
        best["antecedent"] = r_ante[best.pop("rule").to_numpy()]
        best["customer_id"] = ids[best["customer_id"].to_numpy()]
        best["product_id"] = items[best["product_id"].to_numpy()]
        return best.assign(method="cross_sell", gap=np.nan, since=np.nan)

    def _slice(self, cust, weight, lo, count, rules, ownership) -> pd.DataFrame:
        """The best cross-sell products (codes) of a slice of whole customers (codes).
        `rules`: the consequents' product codes, confidences and the code width;
        `ownership`: owned variant keys (sorted), the consequents' variant codes, their width."""
        r_cons, r_conf, width = rules
        owned, r_vcons, v_width = ownership
        row = np.repeat(np.arange(len(cust)), count)
        rule = np.repeat(lo - (np.cumsum(count) - count), count) + np.arange(len(row))
        c = cust[row]
        key = c * width + r_cons[rule]
        v_key = c * v_width + r_vcons[rule]
        at = np.minimum(np.searchsorted(owned, v_key), len(owned) - 1)
        new = owned[at] != v_key  # neither it nor a variant of it bought yet
        row, rule, key, v_key, c = row[new], rule[new], key[new], v_key[new], c[new]
        score = r_conf[rule] * weight[row]
        # One product per customer and variant group (a product alone is its own group): the
        # best-scored rule's, the lowest product on ties.
        order = np.lexsort((key, -score, v_key))
        key, v_key, rule, score, c = key[order], v_key[order], rule[order], score[order], c[order]
        one = np.r_[True, v_key[1:] != v_key[:-1]]
        key, rule, score, c = key[one], rule[one], score[one], c[one]
        order = np.lexsort((key, -score, c))  # per customer: best first
        key, rule, score, c = key[order], rule[order], score[order], c[order]
        start = np.r_[True, c[1:] != c[:-1]]
        pos = np.arange(len(c))
        rank = pos - np.maximum.accumulate(np.where(start, pos, 0))
        top = rank < self.top_n
        return pd.DataFrame(
            {
                "customer_id": c[top],
                "product_id": key[top] - c[top] * width,
                "score": score[top],
                "rule": rule[top],
                "confidence": r_conf[rule[top]],
            }
        )

    def popular(self, lines: pd.DataFrame, customers: np.ndarray) -> pd.DataFrame:
        """The popularity baseline: per customer the `top_n` products most customers bought
        that this customer has not bought, nor a variant of (customer_id, rank, product_id):
        the same rule as cross-sell's."""
        bought = lines[["customer_id", "product_id"]].drop_duplicates()
        owned = bought.groupby("customer_id").size().reindex(customers, fill_value=0)
        top = self.popularity_.index.to_numpy(np.int64)
        variants = self._variant(top)
        per_variant = pd.Series(variants).value_counts().max() if len(top) else 1
        depth = (int(owned.max() if len(owned) else 0) + self.top_n) * int(per_variant)
        top, variants = top[:depth], variants[:depth]
        cust = np.repeat(np.asarray(customers, dtype=np.int64), len(top))
        frame = pd.DataFrame(
            {
                "customer_id": cust,
                "product_id": np.tile(top, len(customers)),
                "variant": np.tile(variants, len(customers)),
            }
        )
        held = pd.DataFrame(
            {
                "customer_id": bought["customer_id"].to_numpy(np.int64),
                "variant": self._variant(bought["product_id"].to_numpy(np.int64)),
            }
        ).drop_duplicates()
        frame = frame.merge(held, how="left", indicator=True)
        frame = frame[frame.pop("_merge").to_numpy() == "left_only"]
        frame = frame.drop_duplicates(["customer_id", "variant"]).drop(columns="variant")
        frame["rank"] = frame.groupby("customer_id").cumcount() + 1
        return frame[frame["rank"] <= self.top_n].reset_index(drop=True)


def purchase_history(lines: pd.DataFrame) -> pd.DataFrame:
    """Per customer and product (sorted by both): n (days bought), last (day), gap (median
    days between purchase days; NaN for one) and orders_ago (0: bought in the customer's
    latest order, 1: in the one before, ...)."""
    cust = lines["customer_id"].to_numpy(np.int64)
    prod = lines["product_id"].to_numpy(np.int64)
    day = lines["day"].to_numpy(np.int64)
    oid = lines["order_id"].to_numpy(np.int64)
    # Each order's place counted back from the customer's latest.
    orders_, first = np.unique(oid, return_index=True)
    o_cust = cust[first]
    o_at = lines["ordered_at"].to_numpy().astype("datetime64[us]").astype(np.int64)[first]
    order = np.lexsort((-orders_, -o_at, o_cust))
    pos = np.arange(len(order))
    start = np.r_[True, o_cust[order][1:] != o_cust[order][:-1]]
    ago = np.empty(len(order), np.int64)
    ago[order] = pos - np.maximum.accumulate(np.where(start, pos, 0))
    ago = ago[np.searchsorted(orders_, oid)]
    # Lines by customer, product and day.
    order = np.lexsort((day, prod, cust))
    cust, prod, day, ago = cust[order], prod[order], day[order], ago[order]
    new_pair = np.r_[True, (cust[1:] != cust[:-1]) | (prod[1:] != prod[:-1])]
    new_day = new_pair | np.r_[True, day[1:] != day[:-1]]
    starts = np.flatnonzero(new_pair)
    ends = np.r_[starts[1:], len(cust)] - 1
    pair = np.cumsum(new_pair) - 1
    n = np.add.reduceat(new_day.astype(np.int64), starts)
    # Median gap: the gaps between a pair's days, sorted within the pair, middle one(s).
    step = new_day & ~new_pair
    g_pair = pair[step]
    g_val = (day - np.r_[0, day[:-1]])[step]
    order = np.lexsort((g_val, g_pair))
    g_val = g_val[order].astype(float)
    m = n - 1
    g_start = np.cumsum(m) - m
    has = m > 0
    gap = np.full(len(starts), np.nan)
    lo_i = g_start[has] + (m[has] - 1) // 2
    hi_i = g_start[has] + m[has] // 2
    gap[has] = (g_val[lo_i] + g_val[hi_i]) / 2
    return pd.DataFrame(
        {
            "customer_id": cust[starts],
            "product_id": prod[starts],
            "n": n,
            "last": day[ends],
            "gap": gap,
            "orders_ago": np.minimum.reduceat(ago, starts),
        }
    )


@dataclass
class Evaluation:
    """Held-out last orders: the model's and the popularity baseline's precision and hit
    rate at `top_n`, and the hits by method."""

    top_n: int
    customers: int
    """Customers evaluated (at least two purchases with lines; a sample when many)."""
    eligible: int
    """Customers with at least two purchases with lines."""
    model: dict[str, float]
    baseline: dict[str, float]
    hits_by_method: dict[str, int] = field(default_factory=dict)
    offers_by_method: dict[str, int] = field(default_factory=dict)
    offered_share: float = 0.0
    """Share of the evaluated customers the model had at least one product for in the test
    (the stored lists' coverage is `coverage(store)`)."""

    @property
    def beats_baseline(self) -> bool:
        """The model is above the baseline on both precision and hit rate."""
        return all(self.model[k] > self.baseline[k] for k in ("precision", "hit_rate"))

    def table(self) -> pd.DataFrame:
        """method, precision, hit_rate: the model against the baseline."""
        return pd.DataFrame(
            [
                {"method": "Recommendations", **self.model},
                {"method": "Popularity baseline", **self.baseline},
            ]
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {**asdict(self), "beats_baseline": self.beats_baseline}


def _scores(recs: pd.DataFrame, held: pd.DataFrame, customers: np.ndarray, k: int) -> dict:
    """precision@k and hit rate@k of `recs` against the held-out products `held`."""
    hit = recs.merge(held, on=["customer_id", "product_id"], how="inner")
    per = hit.groupby("customer_id").size().reindex(customers, fill_value=0)
    return {
        "precision": float(per.sum() / (k * len(customers))) if len(customers) else 0.0,
        "hit_rate": float((per > 0).mean()) if len(customers) else 0.0,
    }


def evaluate(
    lines: pd.DataFrame,
    names: pd.Series | None = None,
    *,
    groups: pd.Series | None = None,
    max_customers: int = 50_000,
    random_state: int = 0,
    **params,
) -> Evaluation:
    """Hide each customer's last purchase (customers with two or more purchases with lines;
    up to `max_customers` of them, drawn with `random_state`), fit on everything else,
    recommend on the day of the hidden purchase and score against what it held."""
    recommender = Recommender(random_state=random_state, **params)
    k = recommender.top_n
    orders_ = lines[["customer_id", "order_id", "ordered_at", "day"]].drop_duplicates("order_id")
    orders_ = orders_.sort_values(["customer_id", "ordered_at", "order_id"], kind="stable")
    count = orders_.groupby("customer_id").size()
    eligible = count.index[count >= 2].to_numpy(np.int64)
    if not len(eligible):
        raise NotReadyError(
            [
                "no customer has two completed orders with their products listed, so there is "
                "no last order to hide and check against: import `order_items` (the products "
                "of each order) on the Data import page"
            ],
            "Recommendations",
        )
    picked = eligible
    if len(eligible) > max_customers:
        rng = np.random.default_rng(random_state)
        picked = np.sort(rng.choice(eligible, max_customers, replace=False))
    last = orders_.drop_duplicates("customer_id", keep="last")
    last = last[np.isin(last["customer_id"].to_numpy(), picked)]
    hidden = np.isin(lines["order_id"].to_numpy(), last["order_id"].to_numpy())
    train, held = lines[~hidden], lines[hidden][["customer_id", "product_id"]]
    recommender.fit(train, names, groups=groups)
    history = train[np.isin(train["customer_id"].to_numpy(), picked)]
    when = pd.Series(last["day"].to_numpy(np.int64), index=last["customer_id"].to_numpy())
    recs = recommender.recommend(history, when)
    base = recommender.popular(history, picked)
    hits = recs.merge(held, on=["customer_id", "product_id"], how="inner")
    return Evaluation(
        top_n=k,
        customers=len(picked),
        eligible=len(eligible),
        model=_scores(recs, held, picked, k),
        baseline=_scores(base, held, picked, k),
        hits_by_method={m: int((hits["method"] == m).sum()) for m in RECOMMEND_METHODS},
        offers_by_method={m: int((recs["method"] == m).sum()) for m in RECOMMEND_METHODS},
        offered_share=float(recs["customer_id"].nunique() / len(picked)),
    )


def evaluate_store(store: Store, **params) -> Evaluation:
    """`evaluate` on the store's completed orders with lines."""
    store.require_tables("orders", "order_items", "products")
    lines, names = purchase_lines(store), product_names(store)
    return evaluate(lines, names, groups=product_groups(store), **params)


@dataclass
class ScoreRun:
    """What `score` wrote."""

    rows: int
    customers: int
    rules: int
    consumables: int
    as_of: date
    scored_at: datetime
    seconds: float
    fit_seconds: float

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return asdict(self)


def score(store: Store, **params) -> ScoreRun:
    """Fit on every completed order with lines, recommend as of the 360 as-of date (the day
    of the last completed order) and replace customer_recommendations in one transaction."""
    started = time.perf_counter()
    store.require_tables("orders", "order_items", "products")
    features.ensure_tables(store)
    lines = purchase_lines(store)
    history = None if lines.empty else purchase_history(lines)  # empty: fit says what is missing
    model = Recommender(**params).fit(lines, product_names(store), history, product_groups(store))
    fitted = time.perf_counter()
    as_of = features.as_of_date(store) or utcnow().date()
    recs = model.recommend(lines, as_of, history)
    del lines, history
    scored_at = utcnow()
    recs["scored_at"] = pd.Timestamp(scored_at)
    recs["method"] = recs["method"].astype("category")
    with store.begin() as conn:
        lock_tables(conn, customer_recommendations)
        conn.execute(customer_recommendations.delete())
        rows = store.insert_df(conn, "customer_recommendations", recs)
        features.mark_stale(conn)
    return ScoreRun(
        rows=rows,
        customers=int(recs["customer_id"].nunique()),
        rules=len(model.rules_),
        consumables=len(model.consumables_),
        as_of=as_of,
        scored_at=scored_at,
        seconds=time.perf_counter() - started,
        fit_seconds=fitted - started,
    )


STORED_TABLES = ("customer_recommendations", "products", "orders")
"""What the stored-recommendation readers read (for the app's caches)."""


def coverage(store: Store) -> dict[str, object]:
    """The stored recommendations: customers with at least one, customers with a completed
    order, the share of those with a list (the view's Coverage), offers, when they were
    computed (None before the first `score`)."""
    if "customer_recommendations" not in store.table_names():
        return {"customers": 0, "buyers": 0, "share": 0.0, "offers": 0, "scored_at": None}
    cr = customer_recommendations.c
    stmt = sa.select(
        sa.func.count(sa.distinct(cr.customer_id)), sa.func.count(), sa.func.max(cr.scored_at)
    )
    buyers = sa.select(sa.func.count(sa.distinct(orders.c.customer_id))).where(IS_PURCHASE)
    customers, offers, scored_at = store.row(stmt)
    bought = store.scalar(buyers)  # the facts: on Spark when analytics run there
    return {
        "customers": int(customers),
        "buyers": int(bought or 0),
        "share": int(customers) / int(bought) if bought else 0.0,
        "offers": int(offers),
        "scored_at": scored_at,
    }


def top_products(store: Store, limit: int = 20) -> pd.DataFrame:
    """The products recommended to most customers: product_id, product, customers (in
    their list), first (as their first product), replenishment and cross_sell (offers by
    each method)."""
    cr = customer_recommendations.c
    stmt = (
        sa.select(
            cr.product_id,
            products_table.c.name.label("product"),
            sa.func.count().label("customers"),
            sa.func.count().filter(cr.rank == 1).label("first"),
            sa.func.count().filter(cr.method == "replenishment").label("replenishment"),
            sa.func.count().filter(cr.method == "cross_sell").label("cross_sell"),
        )
        .select_from(
            customer_recommendations.outerjoin(
                products_table, products_table.c.product_id == cr.product_id
            )
        )
        .group_by(cr.product_id, products_table.c.name)
        .order_by(sa.desc("customers"), cr.product_id)
        .limit(limit)
    )
    return store.read_df(stmt)


def customer_list(store: Store, customer_id: int) -> pd.DataFrame:
    """One customer's stored recommendations: customer_id, rank, product_id, product,
    method, score, reason (empty when none)."""
    cr = customer_recommendations.c
    stmt = (
        sa.select(
            cr.customer_id,
            cr.rank,
            cr.product_id,
            products_table.c.name.label("product"),
            cr.method,
            cr.score,
            cr.reason,
        )
        .select_from(
            customer_recommendations.outerjoin(
                products_table, products_table.c.product_id == cr.product_id
            )
        )
        .where(cr.customer_id == customer_id)
        .order_by(cr.rank)
    )
    return store.read_df(stmt)


def example_customer(store: Store) -> int | None:
    """A customer with a replenishment offer first (else any with recommendations): the
    view's first example."""
    cr = customer_recommendations.c
    for where in (cr.method == "replenishment", sa.true()):
        found = store.scalar(sa.select(sa.func.min(cr.customer_id)).where(where))
        if found is not None:
            return int(found)
    return None

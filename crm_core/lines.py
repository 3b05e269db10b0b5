"""Fold a line-item file (one row per order line) into orders and order lines, vectorised.

Platforms such as Shopify write one row per line item and the order's own fields (status,
total, e-mail...) on the order's first row only; Online Retail writes one row per invoice
line with cancellations as invoices starting with ``C`` and negative quantities. `fold` turns
such rows (already renamed to our field names by `crm_core.mapping`) into:

- one order per order id, in the order of first appearance: each order field is taken from
  the first row of the order that has it; ``amount`` is the order total when one is mapped,
  else the sum of the line amounts; ``items`` is the sum of the quantities; ``category`` is
  the category of the line with the largest amount;
- its lines (``line_no`` 1, 2, ... in file order) with quantity, unit price and line amount
  (quantity x unit price unless a line amount is mapped).

Revenue is never negative: a negative quantity, price or amount (a return) is stored as its
absolute value and the order becomes ``refunded``; an order whose id starts with the
mapping's ``cancelled_prefix``, or that has a ``cancelled_at`` value, becomes ``cancelled``.
Zero prices are kept (free items). Orders without any customer identity are either kept (the
import then reports the missing customer on the order's row) or, with
``missing_customer="skip"``, left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

LINE_FIELDS = (
    "product_sku",
    "product_name",
    "product_category",
    "quantity",
    "unit_price",
    "line_amount",
)
"""Fields of one order line; mapping any of them makes a file a line-item file."""

CUSTOMER_FIELDS = (
    "customer_id",
    "customer_external_id",
    "customer_email",
)
"""Fields that say who the customer is (any one of them is enough)."""

SKIP_NO_CUSTOMER = "rows without a customer"
"""The reason `fold` and `crm_core.mapping` count skipped rows under (Chunk.skipped)."""


@dataclass
class Folded:
    """Orders and their lines from one batch of line rows."""

    orders: pd.DataFrame  # order fields (our names) + amount, items, status; order_id as text
    order_rows: np.ndarray  # file row of each order (its first line)
    items: pd.DataFrame  # order_id (text as in the file), line_no, product_*, quantity, ...
    item_rows: np.ndarray  # file row of each line
    skipped: dict[str, int] = field(default_factory=dict)


def to_float(values: pd.Series | None, n: int) -> np.ndarray:
    """Numbers written as text (already normalised) as floats; NaN where missing or unreadable."""
    if values is None:
        return np.full(n, np.nan)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=float, na_value=np.nan)
    arr = pa.array(values, from_pandas=True, type=pa.string())
    try:
        floats = pc.cast(arr, pa.float64())
    except pa.ArrowInvalid:
        ok = pc.match_substring_regex(
            arr, r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
        )
        floats = pc.cast(
            pc.utf8_trim_whitespace(pc.if_else(ok, arr, pa.scalar(None, pa.string()))),
            pa.float64(),
        )
    return floats.to_numpy(zero_copy_only=False).astype(float)


def unreadable(values: pd.Series | None, floats: np.ndarray) -> np.ndarray:
    """Rows whose text is present but did not read as a number."""
    if values is None:
        return np.zeros(len(floats), dtype=bool)
    return values.notna().to_numpy(dtype=bool) & np.isnan(floats)


def number_column(values: pd.Series | None, floats: np.ndarray) -> pd.Series:
    """Absolute values as floats; a value that did not read stays as its text (so the import
    reports it in the user's words)."""
    out = np.abs(floats)
    bad = unreadable(values, floats)
    if not bad.any():
        return pd.Series(out)
    text = pa.array(out).cast(pa.string())
    text = pc.if_else(pa.array(np.isnan(out)), pa.scalar(None, pa.string()), text)
    original = pa.array(values.astype("string"), type=pa.string(), from_pandas=True)
    text = pc.if_else(pa.array(bad), original, text)
    return pd.Series(text.to_pylist(), dtype="string")


def _group_firsts(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of `group` and where each first occurs (fast when sorted)."""
    if len(group) and (len(group) == 1 or bool(np.all(group[1:] >= group[:-1]))):
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        return group[starts], starts
    return np.unique(group, return_index=True)


def _first_non_null(frame: pd.DataFrame, codes: np.ndarray, n_groups: int) -> pd.DataFrame:
    """Per group, each column's first non-null value (in row order)."""
    out = {}
    for name in frame.columns:
        col = frame[name]
        present = col.notna().to_numpy(dtype=bool)
        pos = np.flatnonzero(present)
        first = np.full(n_groups, -1, dtype=np.int64)
        if len(pos):
            # positions are increasing: the first occurrence per group is the first in pos
            uniq, idx = _group_firsts(codes[pos])
            first[uniq] = pos[idx]
        taken = col.iloc[np.where(first >= 0, first, 0)].reset_index(drop=True)
        if (first < 0).any():
            taken[first < 0] = None
        out[name] = taken
    return pd.DataFrame(out)


def fold(
    frame: pd.DataFrame,
    rows: np.ndarray,
    *,
    cancelled_prefix: str | None = None,
    missing_customer: str = "error",
) -> Folded:
    """Fold line rows (our field names, file row numbers `rows`) into orders and lines."""
    n = len(frame)
    rows = np.asarray(rows)
    keys = frame["order_id"] if "order_id" in frame.columns else pd.Series([None] * n)
    key_text = keys.reset_index(drop=True)
    if not pd.api.types.is_string_dtype(key_text.dtype):
        key_text = key_text.astype("string")
    missing_key = key_text.isna().to_numpy(dtype=bool)
    filled = key_text
    if missing_key.any():
        # A row without an order id is an order of its own (the import reports the missing id).
        filled = key_text.astype(object).copy()
        filled[missing_key] = ["\x00row" + str(r) for r in rows[missing_key]]
    codes, _uniques = pd.factorize(filled, sort=False)
    codes = codes.astype(np.int64)
    n_orders = int(codes.max()) + 1 if n else 0
    first_pos = _first_positions(codes, n_orders)

    qty_text = frame.get("quantity")
    price_text = frame.get("unit_price")
    line_text = frame.get("line_amount")
    qty = to_float(qty_text, n)
    price = to_float(price_text, n)
    if line_text is not None:
        line = to_float(line_text, n)
    else:
        line = qty * price
        if qty_text is None:  # only prices: one unit per line
            line = price
    if qty_text is None:
        qty = np.where(np.isnan(price) & np.isnan(line), np.nan, 1.0)
    negative = (np.nan_to_num(qty) < 0) | (np.nan_to_num(price) < 0) | (np.nan_to_num(line) < 0)
    abs_line = np.abs(line)
    bad_line = unreadable(qty_text, qty) | unreadable(price_text, price)
    bad_line |= unreadable(line_text, line) if line_text is not None else False

    # --- order fields: first non-null per order ---------------------------------------
    order_cols = [c for c in frame.columns if c not in LINE_FIELDS]
    orders = _first_non_null(frame[order_cols], codes, n_orders)
    orders["order_id"] = key_text.iloc[first_pos].reset_index(drop=True)
    order_rows = np.asarray(rows)[first_pos]

    sums = np.bincount(codes, weights=np.nan_to_num(abs_line), minlength=n_orders)
    any_bad = (
        np.bincount(
            codes, weights=(bad_line | np.isnan(abs_line)).astype(float), minlength=n_orders
        )
        > 0
    )
    items_total = np.bincount(codes, weights=np.nan_to_num(np.abs(qty)), minlength=n_orders)
    neg_order = np.bincount(codes, weights=negative.astype(float), minlength=n_orders) > 0

    if "amount" in orders.columns:
        amount_text = orders["amount"]
        amount = to_float(amount_text, n_orders)
        neg_order |= np.nan_to_num(amount) < 0
        orders["amount"] = number_column(amount_text, amount)
    else:
        orders["amount"] = np.where(any_bad, np.nan, np.round(sums, 6))
    if "items" not in orders.columns:
        items_series = pd.Series(np.round(items_total).astype("int64")).astype("Int64")
        items_series[
            np.bincount(codes, weights=np.isnan(qty).astype(float), minlength=n_orders) > 0
        ] = pd.NA
        orders["items"] = items_series

    if "product_category" in frame.columns and "category" not in orders.columns:
        order_of_best = (
            pd.DataFrame({"c": codes, "a": np.nan_to_num(abs_line, nan=-1.0)})
            .reset_index()
            .sort_values(["c", "a", "index"], ascending=[True, False, True], kind="stable")
            .drop_duplicates("c")
        )
        best = np.zeros(n_orders, dtype=np.int64)
        best[order_of_best["c"].to_numpy()] = order_of_best["index"].to_numpy()
        orders["category"] = frame["product_category"].iloc[best].reset_index(drop=True)

    orders = apply_status_rules(orders, negative=neg_order, cancelled_prefix=cancelled_prefix)

    # --- lines -------------------------------------------------------------------------
    if n and bool(np.all(codes[1:] >= codes[:-1])):  # each order's lines together (usual)
        line_no = np.arange(n, dtype=np.int64) - first_pos[codes] + 1
    else:
        line_no = pd.Series(codes).groupby(codes).cumcount().to_numpy() + 1
    items = pd.DataFrame(
        {
            "order_id": key_text,
            "line_no": line_no.astype(np.int64),
        }
    )
    for name in ("product_sku", "product_name", "product_category"):
        if name in frame.columns:
            items[name] = frame[name].reset_index(drop=True)
    items["quantity"] = number_column(qty_text, qty) if qty_text is not None else np.abs(qty)
    if price_text is not None:
        items["unit_price"] = number_column(price_text, price)
    if line_text is not None:
        items["amount"] = number_column(line_text, line)
    else:
        items["amount"] = abs_line
    item_rows = np.asarray(rows)

    skipped: dict[str, int] = {}
    if missing_customer == "skip":
        who = [c for c in CUSTOMER_FIELDS if c in orders.columns]
        if who:
            no_customer = ~orders[who].notna().any(axis=1).to_numpy(dtype=bool)
            if no_customer.any():
                keep_line = ~no_customer[codes]
                skipped[SKIP_NO_CUSTOMER] = int((~keep_line).sum())
                orders = orders.loc[~no_customer].reset_index(drop=True)
                order_rows = order_rows[~no_customer]
                items = items.loc[keep_line].reset_index(drop=True)
                item_rows = item_rows[keep_line]
    return Folded(orders, order_rows, items, item_rows, skipped)


def _first_positions(codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Position of each group's first row (codes number groups by first appearance)."""
    if not n_groups:
        return np.zeros(0, dtype=np.int64)
    seen = np.maximum.accumulate(codes)
    is_first = np.empty(len(codes), dtype=bool)
    is_first[0] = True
    is_first[1:] = codes[1:] > seen[:-1]
    return np.flatnonzero(is_first).astype(np.int64)


def apply_status_rules(
    orders: pd.DataFrame, *, negative: np.ndarray, cancelled_prefix: str | None
) -> pd.DataFrame:
    """Order status from the returns and cancellations: cancelled (id starts with
    `cancelled_prefix`, or a cancelled_at value) beats refunded (a negative line or total),
    which beats the status the file gives."""
    n = len(orders)
    status = (
        orders["status"].astype("object")
        if "status" in orders.columns
        else pd.Series([None] * n, dtype="object")
    )
    status = status.where(~negative, "refunded")
    cancelled = np.zeros(n, dtype=bool)
    if "cancelled_at" in orders.columns:
        cancelled |= orders["cancelled_at"].notna().to_numpy(dtype=bool)
        orders = orders.drop(columns=["cancelled_at"])
    if cancelled_prefix and "order_id" in orders.columns:
        ids = orders["order_id"].astype("string").str.strip()
        starts = ids.str.upper().str.startswith(cancelled_prefix.upper())
        cancelled |= starts.fillna(False).to_numpy(dtype=bool)
    status = status.where(~cancelled, "cancelled")
    if "status" in orders.columns or negative.any() or cancelled.any():
        orders["status"] = status.astype("string")
    return orders

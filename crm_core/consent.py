"""Consent history: every change of a customer's e-mail or SMS consent is a row of
`consent_changes` (when, channel, old and new value, source, who, import batch).

Changes come from imports (new customers and those an upsert changed, recorded in SQL in
the import's transaction), their undo (the reverse), preference updates (`set_consent`),
unsubscribe files (crm_core/suppression.py), merges and unmerges, and erasures. The
customers table holds the consent in force; this table says how it got there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crm_core import audit, features, schema
from crm_core.errors import CRMError
from crm_core.schema import consent_changes, customers
from crm_core.store import Store, lock_tables, next_id, utcnow

CHANNELS = schema.CONSENT_CHANNELS
SOURCES = schema.CONSENT_SOURCES
_COLUMN = {"email": "consent_email", "sms": "consent_sms"}
"""The customers column of each channel."""
SOURCE_LABELS = {
    "import": "Import",
    "import_undo": "Import undone",
    "preference": "Preference update",
    "unsubscribe_file": "Unsubscribe file",
    "erasure": "Erasure",
    "merge": "Merge of duplicates",
    "unmerge": "Merge undone",
}
"""How each source reads on a page."""
HISTORY_COLUMNS = (
    "changed_at",
    "channel",
    "old_value",
    "new_value",
    "source",
    "changed_by",
    "batch_id",
)


class ConsentError(CRMError):
    """A consent change that cannot be made as asked."""


def _check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise ConsentError(
            f"Consent channel: got {channel!r}; allowed: {', '.join(CHANNELS)}. Use email or sms."
        )
    return channel


def _check_source(source: str) -> str:
    if source not in SOURCES:
        raise ConsentError(
            f"Consent source: got {source!r}; allowed: {', '.join(SOURCES)}. "
            "Pick one of those sources."
        )
    return source


def as_bool(value: Any) -> bool | None:
    """A stored consent as True, False or None (unknown)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return bool(value)


def record(conn: Connection, changes: list[dict[str, Any]]) -> int:
    """Insert consent_changes rows inside the caller's transaction; rows whose old and new
    value are the same are skipped. Keys: customer_id, channel, old_value, new_value,
    source, changed_by, batch_id (optional), changed_at (default now). Rows written."""
    rows = []
    now = utcnow()
    for change in changes:
        old, new = as_bool(change.get("old_value")), as_bool(change.get("new_value"))
        if old == new:
            continue
        rows.append(
            {
                "customer_id": int(change["customer_id"]),
                "changed_at": change.get("changed_at") or now,
                "channel": _check_channel(change["channel"]),
                "old_value": old,
                "new_value": new,
                "source": _check_source(change["source"]),
                "changed_by": change.get("changed_by"),
                "batch_id": change.get("batch_id"),
            }
        )
    if not rows:
        return 0
    lock_tables(conn, consent_changes)
    first = next_id(conn, consent_changes.c.change_id)
    for i, row in enumerate(rows):
        row["change_id"] = first + i
    conn.execute(consent_changes.insert(), rows)
    return len(rows)


def snapshot(conn: Connection, customer_ids: Iterable[int]) -> dict[int, dict[str, bool | None]]:
    """The consent in force of each customer ({id: {channel: value}}), for `record_since`."""
    ids = [int(i) for i in customer_ids]
    if not ids:
        return {}
    stmt = sa.select(customers.c.customer_id, customers.c.consent_email, customers.c.consent_sms)
    found = conn.execute(stmt.where(customers.c.customer_id.in_(ids))).all()
    return {int(row[0]): {"email": as_bool(row[1]), "sms": as_bool(row[2])} for row in found}


def record_since(
    conn: Connection,
    before: Mapping[int, Mapping[str, bool | None]],
    *,
    source: str,
    by: str | None,
) -> int:
    """Record what changed in the consent of the customers of `before` (a `snapshot`) since
    it was taken, inside the caller's transaction (merges and unmerges). Rows written."""
    after = snapshot(conn, before)
    changes = [
        {
            "customer_id": customer_id,
            "channel": channel,
            "old_value": values.get(channel),
            "new_value": after[customer_id][channel],
            "source": source,
            "changed_by": by,
        }
        for customer_id, values in before.items()
        if customer_id in after
        for channel in CHANNELS
    ]
    return record(conn, changes)


def change_consent(
    conn: Connection,
    customer_id: int,
    channel: str,
    value: bool | None,
    *,
    by: str | None,
    source: str = "preference",
) -> bool:
    """Set one customer's consent inside the caller's transaction and record the change (no
    audit row: the caller's action has its own); False when it was already `value`."""
    column = customers.c[_COLUMN[_check_channel(channel)]]
    _check_source(source)
    found = conn.execute(sa.select(column).where(customers.c.customer_id == int(customer_id))).all()
    if not found:
        raise ConsentError(
            f"Customer {customer_id} does not exist; pick a customer id from Customer 360."
        )
    old = as_bool(found[0][0])
    new = None if value is None else bool(value)
    if old == new:
        return False
    conn.execute(
        customers.update()
        .where(customers.c.customer_id == int(customer_id))
        .values({column.name: new})
    )
    record(
        conn,
        [
            {
                "customer_id": customer_id,
                "channel": channel,
                "old_value": old,
                "new_value": new,
                "source": source,
                "changed_by": by,
            }
        ],
    )
    return True


def set_consent(
    store: Store,
    customer_id: int,
    channel: str,
    value: bool | None,
    *,
    by: str | None,
    source: str = "preference",
) -> bool:
    """Set a customer's consent for `channel` (None: unknown), record the change and an audit
    row, and mark the customer 360 stale; False when nothing changed."""
    with store.begin() as conn:
        lock_tables(conn, customers)
        changed = change_consent(conn, customer_id, channel, value, by=by, source=source)
        if changed:
            audit.record(
                conn,
                "consent_changed",
                actor=by,
                target=f"customer {int(customer_id)}",
                details={"channel": channel, "value": value, "source": source},
            )
            features.mark_stale(conn)
    return changed


def history(store: Store, customer_id: int) -> pd.DataFrame:
    """A customer's consent changes, newest first: changed_at, channel, old_value, new_value,
    source, changed_by, batch_id (values as stored; the page labels them)."""
    c = consent_changes.c
    stmt = (
        sa.select(*[c[name] for name in HISTORY_COLUMNS])
        .where(c.customer_id == int(customer_id))
        .order_by(c.changed_at.desc(), c.change_id.desc())
    )
    return store.read_df(stmt)


def value_label(value: Any) -> str:
    """A consent value in words: Yes, No or Unknown."""
    flag = as_bool(value)
    return "Unknown" if flag is None else ("Yes" if flag else "No")


def history_for_display(frame: pd.DataFrame) -> pd.DataFrame:
    """`history` in words for a page: Yes/No/Unknown, channels and sources labelled."""
    shown = frame.copy()
    for name in ("old_value", "new_value"):
        shown[name] = [value_label(v) for v in shown[name]]
    shown["channel"] = shown["channel"].map({"email": "E-mail", "sms": "SMS"})
    shown["source"] = shown["source"].map(lambda s: SOURCE_LABELS.get(s, s))
    return shown.rename(
        columns={
            "changed_at": "When (UTC)",
            "channel": "Channel",
            "old_value": "Before",
            "new_value": "After",
            "source": "Source",
            "changed_by": "By",
            "batch_id": "Import",
        }
    )


# --- imports and their undo (SQL, in the import's transaction) ----------------------------


def _insert_select(conn: Connection, select_rows: sa.Select) -> int:
    """INSERT consent_changes ... SELECT: `select_rows` gives customer_id, old, new, ordered
    ids come from row_number() after the current largest."""
    first = next_id(conn, consent_changes.c.change_id)
    rows = select_rows.subquery()
    numbered = sa.select(
        (sa.func.row_number().over(order_by=rows.c.customer_id) + (first - 1)).label("change_id"),
        rows.c.customer_id,
        rows.c.changed_at,
        rows.c.channel,
        rows.c.old_value,
        rows.c.new_value,
        rows.c.source,
        rows.c.changed_by,
        rows.c.batch_id,
    )
    names = [
        "change_id",
        "customer_id",
        "changed_at",
        "channel",
        "old_value",
        "new_value",
        "source",
        "changed_by",
        "batch_id",
    ]
    conn.execute(consent_changes.insert().from_select(names, numbered))
    return next_id(conn, consent_changes.c.change_id) - first


def _constants(channel: str, source: str, by: str | None, batch_id: int) -> list[Any]:
    return [
        sa.literal(utcnow(), sa.DateTime).label("changed_at"),
        sa.literal(channel, sa.String).label("channel"),
        sa.literal(source, sa.String).label("source"),
        sa.cast(sa.literal(by, sa.String), sa.String).label("changed_by"),
        sa.literal(int(batch_id), sa.BigInteger).label("batch_id"),
    ]


def _batch_changes(conn: Connection, batch_id: int, *, undo: bool, user: str | None) -> int:
    """consent_changes rows between the customers a batch wrote and the rows its upsert
    replaced (none: a new customer), per channel, in SQL; reversed for an undo."""
    shadow = schema.table(schema.replaced_table_name("customers"))
    written = 0
    for channel in CHANNELS:
        now, before = customers.c[_COLUMN[channel]], shadow.c[_COLUMN[channel]]
        old, new = (now, before) if undo else (before, now)
        joined = customers.outerjoin(
            shadow,
            sa.and_(shadow.c.customer_id == customers.c.customer_id, shadow.c.batch_id == batch_id),
        )
        select_rows = (
            sa.select(
                customers.c.customer_id,
                old.label("old_value"),
                new.label("new_value"),
                *_constants(channel, "import_undo" if undo else "import", user, batch_id),
            )
            .select_from(joined)
            .where(customers.c[schema.BATCH_COLUMN] == batch_id, now.is_distinct_from(before))
        )
        written += _insert_select(conn, select_rows)
    return written


def record_import(conn: Connection, batch_id: int, *, user: str | None) -> int:
    """Record the consent an import batch set, in its transaction and in SQL: its new
    customers (unknown -> their value, where they have one) and the customers its upsert
    changed (the replaced row's value -> the new one). Rows written."""
    lock_tables(conn, consent_changes)
    return _batch_changes(conn, batch_id, undo=False, user=user)


def record_import_undo(
    conn: Connection, batch_id: int, tables: Iterable[str], *, user: str | None
) -> int:
    """Before an undo of batch `batch_id` changes customers: record the reverse of what it
    set (the value now -> the replaced row's value, or unknown for a customer it removes),
    in SQL, source import_undo. Rows written (0 when the batch wrote no customers)."""
    if "customers" not in set(tables):
        return 0
    lock_tables(conn, customers, consent_changes)  # customers first, as set_consent
    return _batch_changes(conn, batch_id, undo=True, user=user)

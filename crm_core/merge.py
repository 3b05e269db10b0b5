"""Review and merge duplicate customers, reversibly.

A merge keeps one customer id and folds the others (the copies) into it, in one transaction:

- every row of every table with a column declared ``references="customers.customer_id"``
  in `crm_core.schema` (orders, events, surveys, tickets, leads, campaign contacts, ...) is
  re-pointed to the kept customer; where a table's key holds the customer (campaign
  contacts: both copies were sent the same campaign) and re-pointing would collide, the
  kept customer's row stays and the copy's row is deleted;
- import bookkeeping follows: external ids of the copies name the kept customer, so a
  re-import of a copy updates the kept one;
- derived rows of the copies (customer_scores, customer_clusters, customer_360) are
  deleted and customer_360 is rebuilt after the merge, so segments, exports and the 360
  count the merged history at once; the kept customer's CLV and churn scores stay those of
  the last scoring run until scoring runs again;
- consent: the most restrictive value of each channel wins (an opt-out on any copy opts
  the kept customer out; unknown beats yes); suppressions are addresses, not customers,
  and are never touched, so a copy's suppressed address stays suppressed;
- the kept customer's empty fields are filled from the copies (the first copy, in the
  order given, that has a value); a field the kept customer has is never overwritten;
- the copies' customer rows are deleted.

The before-image of every row changed or deleted is stored in `merge_rows` (table, key,
the whole row as typed JSON), so `unmerge` restores exactly the state before. `merges`
holds who merged what, when and why, and who undid it: the audit of both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_core import audit, display, features, schema
from crm_core import consent as consent_log
from crm_core.errors import CRMError
from crm_core.schema import customers, duplicate_decisions, merge_rows, merges, schema_meta
from crm_core.store import Store, lock_tables, next_id, utcnow

CUSTOMER_KEY = "customers.customer_id"
DECISIONS = schema.DUPLICATE_DECISIONS
"""not_same (never offer this cluster again) or later (offer it after the others)."""
HISTORY_TABLES = frozenset(
    {"merges", "merge_rows", "duplicate_decisions", "duplicate_runs", "duplicate_pairs"}
)
"""Records of what was found or done to customers, never re-pointed by a merge."""
DERIVED_TABLES = ("customer_scores", "customer_clusters", "customer_360")
"""Per-customer derived rows: the copies' rows are deleted (the kept customer's stay)."""
CONSENT_COLUMNS = ("consent_email", "consent_sms")
_FINGERPRINT_KEY = features._FINGERPRINT_KEY


class MergeError(CRMError):
    """A merge or unmerge that cannot be done as asked."""


@dataclass
class Merge:
    """One merge: who was kept, who was folded in, and what moved."""

    merge_id: int
    kept_id: int
    merged_ids: list[int]
    merged_at: datetime
    merged_by: str
    unmerged_at: datetime | None = None
    unmerged_by: str | None = None
    moved: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    consent: list[str] | None = None
    """What the merge changed in the kept customer's consent, in words (empty: nothing;
    None: not known, a merge read back from the history)."""

    def summary(self) -> list[str]:
        """What the merge did, in words."""
        copies = ", ".join(str(i) for i in self.merged_ids)
        lines = [
            f"Merge {self.merge_id}: customer(s) {copies} merged into {self.kept_id} by "
            f"{self.merged_by} at {self.merged_at:%Y-%m-%d %H:%M} UTC"
            + (f" ({self.reason})" if self.reason else "")
            + "."
        ]
        moved = ", ".join(f"{display.label(t)} {n:,}" for t, n in self.moved.items() if n)
        lines.append(f"Rows re-pointed to {self.kept_id}: {moved or 'none'}.")
        if self.unmerged_at is not None:
            lines.append(
                f"Undone by {self.unmerged_by} at {self.unmerged_at:%Y-%m-%d %H:%M} UTC: every "
                "row is as it was before the merge."
            )
        else:
            if self.consent is None:
                lines.append("Consent: an opt-out on any copy won.")
            else:
                lines.append(
                    " ".join(self.consent)
                    or f"Consent of {self.kept_id} unchanged (no copy was more restrictive)."
                )
            lines.append(
                "Score customers again to fold the copies' history into "
                f"{self.kept_id}'s CLV and churn risk."
            )
        return lines

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (CLI --json)."""
        return {
            "merge_id": self.merge_id,
            "kept_id": self.kept_id,
            "merged_ids": self.merged_ids,
            "merged_at": self.merged_at.isoformat(),
            "merged_by": self.merged_by,
            "unmerged_at": self.unmerged_at.isoformat() if self.unmerged_at else None,
            "unmerged_by": self.unmerged_by,
            "moved": self.moved,
            "reason": self.reason,
            "consent": self.consent,
        }


# --- typed JSON of a row ----------------------------------------------------------------


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime):
        return {"t": "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {"t": "date", "v": value.isoformat()}
    if isinstance(value, Decimal):
        return {"t": "decimal", "v": str(value)}
    if isinstance(value, float):
        return {"t": "float", "v": repr(value)}
    raise MergeError(f"Cannot record a value of type {type(value).__name__} in a merge.")


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    kind, text = value["t"], value["v"]
    if kind == "datetime":
        return datetime.fromisoformat(text)
    if kind == "date":
        return date.fromisoformat(text)
    if kind == "decimal":
        return Decimal(text)
    return float(text)


def _dumps(row: dict[str, Any]) -> str:
    return json.dumps({k: _encode(v) for k, v in row.items()}, sort_keys=True)


def _loads(text: str) -> dict[str, Any]:
    return {k: _decode(v) for k, v in json.loads(text).items()}


# --- which tables hold a customer ---------------------------------------------------------


def customer_columns() -> list[tuple[sa.Table, sa.Column]]:
    """Every (table, column) declared as referencing customers.customer_id, in schema order
    (history tables excluded)."""
    found = []
    for table in schema.metadata.sorted_tables:
        if table.name in HISTORY_TABLES:
            continue
        for column in table.columns:
            if column.info.get("references") == CUSTOMER_KEY:
                found.append((table, column))
    return found


def _key_columns(table: sa.Table) -> list[sa.Column]:
    keys = list(table.primary_key.columns)
    return keys or [table.c.customer_id]  # customer_360 has no key: one row per customer


def _key_of(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    return {c.name: row[c.name] for c in _key_columns(table)}


def _where_key(table: sa.Table, key: dict[str, Any]) -> sa.ColumnElement[bool]:
    return sa.and_(*[table.c[name] == value for name, value in key.items()])


class _Recorder:
    """Collects the before-image of each row a merge changes, in order."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        table: sa.Table,
        action: str,
        row: dict[str, Any],
        new_key: dict[str, Any] | None = None,
    ) -> None:
        key = _key_of(table, row)
        self.rows.append(
            {
                "seq": len(self.rows) + 1,
                "table_name": table.name,
                "action": action,
                "row_key": _dumps(key),
                "new_key": _dumps(new_key) if new_key is not None else None,
                "row_data": _dumps(row),
            }
        )


def _rows(conn: sa.Connection, stmt: sa.Select) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(stmt).mappings().all()]


def _ids(values: Iterable[Any]) -> list[int]:
    return [int(v) for v in values]


# --- merge --------------------------------------------------------------------------------


def _check_merge(conn: sa.Connection, keep_id: int, merge_ids: list[int]) -> list[dict]:
    if not merge_ids:
        raise MergeError(
            f"Merge into {keep_id}: no customer to merge into it; give one or more other ids."
        )
    if keep_id in merge_ids:
        raise MergeError(
            f"Merge: the kept customer {keep_id} is also among the customers merged into it "
            f"({', '.join(map(str, merge_ids))}); list it once, as the one to keep."
        )
    if len(set(merge_ids)) != len(merge_ids):
        raise MergeError(f"Merge: a customer id is listed twice in {merge_ids}; list each once.")
    wanted = [keep_id, *merge_ids]
    rows = _rows(conn, sa.select(customers).where(customers.c.customer_id.in_(wanted)))
    found = {int(r["customer_id"]) for r in rows}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise MergeError(
            f"Merge: customer(s) {', '.join(map(str, missing))} do not exist (already merged "
            "into another, or never imported); pick ids from the review queue or Customer 360."
        )
    erased = [int(r["customer_id"]) for r in rows if r["erased_at"] is not None]
    if erased:
        raise MergeError(
            f"Merge: customer(s) {', '.join(map(str, erased))} had their personal data erased; "
            "an erased customer is never merged (nothing is left to compare or keep)."
        )
    by_id = {int(r["customer_id"]): r for r in rows}
    return [by_id[i] for i in wanted]


def _restrictive(values: Sequence[Any]) -> Any:
    """The most restrictive consent: any False wins, then unknown (None), else True."""
    if any(v is False or v == 0 for v in values if v is not None):
        return False
    if any(v is None for v in values):
        return None
    return True


_CONSENT_WORDS = {"consent_email": "E-mail consent", "consent_sms": "SMS consent"}


def _consent_words(rows: list[dict], changes: dict[str, Any]) -> list[str]:
    """What changed in the kept customer's consent, e.g. "E-mail consent is now No (5086
    had opted out)."."""
    out = []
    for name in CONSENT_COLUMNS:
        if name not in changes:
            continue
        value = changes[name]
        if value is None:
            who = [str(r["customer_id"]) for r in rows[1:] if r[name] is None]
            out.append(
                f"{_CONSENT_WORDS[name]} is now unknown ({', '.join(who)} had none recorded)."
            )
            continue
        who = [str(r["customer_id"]) for r in rows[1:] if r[name] is False or r[name] == 0]
        word = "Yes" if value else "No"
        out.append(f"{_CONSENT_WORDS[name]} is now {word} ({', '.join(who)} had opted out).")
    return out


def _kept_values(rows: list[dict]) -> dict[str, Any]:
    """Changes to the kept customer: empty fields filled from the copies, restrictive consent."""
    kept, copies = rows[0], rows[1:]
    changes: dict[str, Any] = {}
    for column in customers.columns:
        name = column.name
        if column.primary_key or column.info.get("bookkeeping") or name == "erased_at":
            continue
        if name in CONSENT_COLUMNS:
            value = _restrictive([r[name] for r in rows])
            if value != kept[name] or (value is None) != (kept[name] is None):
                changes[name] = value
            continue
        if kept[name] is None or (isinstance(kept[name], str) and not kept[name].strip()):
            for copy in copies:
                value = copy[name]
                if value is not None and not (isinstance(value, str) and not value.strip()):
                    changes[name] = value
                    break
    return changes


def _repoint(
    conn: sa.Connection,
    table: sa.Table,
    column: sa.Column,
    keep_id: int,
    merge_ids: list[int],
    recorder: _Recorder,
) -> int:
    """Re-point `column` of `table` from the copies to `keep_id`; rows moved."""
    keys = _key_columns(table)
    moving = _rows(conn, sa.select(table).where(column.in_(merge_ids)).order_by(*keys))
    if not moving:
        return 0
    if column not in keys:
        for row in moving:
            recorder.add(table, "update", row, _key_of(table, row))
        conn.execute(table.update().where(column.in_(merge_ids)).values({column.name: keep_id}))
        return len(moving)
    # The customer is part of the key: a copy's row may land on a key the kept customer
    # (or an earlier copy) already has. The kept customer's row stays; the others go.
    others = [c.name for c in keys if c is not column]
    taken = {
        tuple(r[n] for n in others)
        for r in _rows(conn, sa.select(*[table.c[n] for n in others]).where(column == keep_id))
    }
    order = {cid: i for i, cid in enumerate(merge_ids)}
    moving.sort(key=lambda r: order[int(r[column.name])])
    moved = 0
    for row in moving:
        rest = tuple(row[n] for n in others)
        old_key = _key_of(table, row)
        if rest in taken:
            recorder.add(table, "delete", row)
            conn.execute(table.delete().where(_where_key(table, old_key)))
            continue
        taken.add(rest)
        new_key = {**old_key, column.name: keep_id}
        recorder.add(table, "update", row, new_key)
        conn.execute(
            table.update().where(_where_key(table, old_key)).values({column.name: keep_id})
        )
        moved += 1
    return moved


def _repoint_external_ids(
    conn: sa.Connection, keep_id: int, merge_ids: list[int], recorder: _Recorder
) -> int:
    ext = schema.external_ids
    where = sa.and_(ext.c.entity == "customers", ext.c.internal_id.in_(merge_ids))
    rows = _rows(conn, sa.select(ext).where(where))
    for row in rows:
        recorder.add(ext, "update", row, _key_of(ext, row))
    if rows:
        conn.execute(ext.update().where(where).values(internal_id=keep_id))
    return len(rows)


def _delete_rows(
    conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool], recorder: _Recorder
) -> int:
    rows = _rows(conn, sa.select(table).where(where))
    for row in rows:
        recorder.add(table, "delete", row)
    if rows:
        conn.execute(table.delete().where(where))
    return len(rows)


def _present(conn: sa.Connection) -> set[str]:
    inspector = sa.inspect(conn)
    return set(inspector.get_table_names())


def merge_customers(
    store: Store, keep_id: int, merge_ids: Sequence[int], *, by: str, reason: str = ""
) -> Merge:
    """Merge customers `merge_ids` into `keep_id` in one transaction (see the module doc:
    rows re-pointed, most restrictive consent, the kept customer's EMPTY fields filled from
    the copies and nothing of it overwritten, copies deleted); reversible with `unmerge`."""
    keep_id, merge_ids = int(keep_id), _ids(merge_ids)
    store.require_tables("customers", "merges", "merge_rows")
    refs = customer_columns()
    tables = {t.name: t for t, _ in refs}
    derived = [schema.table(n) for n in DERIVED_TABLES]
    now = utcnow()
    recorder = _Recorder()
    moved: dict[str, int] = {}
    with store.begin() as conn:
        present = _present(conn)
        locked = [t for t in (*tables.values(), *derived) if t.name in present]
        audit_first = (schema.audit_log, schema_meta)  # the order audit.record takes them in
        lock_tables(conn, customers, merges, merge_rows, schema.external_ids, *audit_first, *locked)
        rows = _check_merge(conn, keep_id, merge_ids)
        for table, column in refs:
            if table.name == "customers" or table.name not in present:
                continue
            moved[table.name] = moved.get(table.name, 0) + _repoint(
                conn, table, column, keep_id, merge_ids, recorder
            )
        moved["external_ids"] = _repoint_external_ids(conn, keep_id, merge_ids, recorder)
        for table in derived:
            if table.name in present:
                _delete_rows(conn, table, table.c.customer_id.in_(merge_ids), recorder)
        _delete_rows(conn, schema_meta, schema_meta.c.key == _FINGERPRINT_KEY, recorder)
        changes = _kept_values(rows)
        if changes:
            recorder.add(customers, "update", rows[0], {"customer_id": keep_id})
            before = consent_log.snapshot(conn, [keep_id])
            conn.execute(
                customers.update().where(customers.c.customer_id == keep_id).values(changes)
            )
            consent_log.record_since(conn, before, source="merge", by=by)
        _delete_rows(conn, customers, customers.c.customer_id.in_(merge_ids), recorder)
        merge_id = next_id(conn, merges.c.merge_id)
        conn.execute(
            merges.insert().values(
                merge_id=merge_id,
                kept_id=keep_id,
                merged_ids=json.dumps(merge_ids),
                reason=reason or None,
                merged_at=now,
                merged_by=by,
                moved=json.dumps(moved),
            )
        )
        if recorder.rows:
            conn.execute(merge_rows.insert(), [{"merge_id": merge_id, **r} for r in recorder.rows])
        audit.record(
            conn,
            "merge",
            actor=by,
            target=f"customer {keep_id}",
            details={"merge_id": merge_id, "kept_id": keep_id, "merged_ids": merge_ids},
        )
    features.ensure_fresh(store)
    consent = _consent_words(rows, changes)
    return Merge(merge_id, keep_id, merge_ids, now, by, moved=moved, reason=reason, consent=consent)


# --- unmerge ------------------------------------------------------------------------------


def _merge_row(conn: sa.Connection, merge_id: int) -> dict[str, Any]:
    found = _rows(conn, sa.select(merges).where(merges.c.merge_id == int(merge_id)))
    if not found:
        raise MergeError(
            f"Merge {merge_id} does not exist; see `python -m crm_core duplicates history`."
        )
    return found[0]


def _as_merge(row: dict[str, Any]) -> Merge:
    return Merge(
        merge_id=int(row["merge_id"]),
        kept_id=int(row["kept_id"]),
        merged_ids=_ids(json.loads(row["merged_ids"])),
        merged_at=row["merged_at"],
        merged_by=row["merged_by"],
        unmerged_at=row["unmerged_at"],
        unmerged_by=row["unmerged_by"],
        moved=json.loads(row["moved"] or "{}"),
        reason=row["reason"] or "",
    )


def _people(merge: Merge) -> set[int]:
    return {merge.kept_id, *merge.merged_ids}


def _check_unmerge(conn: sa.Connection, merge: Merge) -> None:
    if merge.unmerged_at is not None:
        raise MergeError(
            f"Merge {merge.merge_id} was already undone by {merge.unmerged_by} at "
            f"{merge.unmerged_at:%Y-%m-%d %H:%M} UTC; nothing to unmerge."
        )
    later = [
        _as_merge(r)
        for r in _rows(
            conn,
            sa.select(merges)
            .where(merges.c.merge_id > merge.merge_id, merges.c.unmerged_at.is_(None))
            .order_by(merges.c.merge_id.desc()),
        )
    ]
    blocking = [m.merge_id for m in later if _people(m) & _people(merge)]
    if blocking:
        raise MergeError(
            f"Merge {merge.merge_id} cannot be undone while later merge(s) "
            f"{', '.join(map(str, blocking))} of the same customers are in force; unmerge "
            f"{blocking[0]} first."
        )
    back = conn.execute(
        sa.select(customers.c.customer_id).where(customers.c.customer_id.in_(merge.merged_ids))
    ).all()
    if back:
        ids = ", ".join(str(r[0]) for r in back)
        raise MergeError(
            f"Merge {merge.merge_id} cannot be undone: customer(s) {ids} exist again (imported "
            "since the merge); undo that import first."
        )


def unmerge(store: Store, merge_id: int, *, by: str) -> Merge:
    """Undo merge `merge_id`: every row it changed or deleted is put back exactly as it was
    (customer_360 is rebuilt when it was up to date before the merge). Refused when already
    undone or when a later merge of the same customers is still in force."""
    store.require_tables("merges", "merge_rows")
    now = utcnow()
    with store.begin() as conn:
        lock_tables(conn, merges, merge_rows, customers, schema.audit_log)  # before schema_meta
        merge = _as_merge(_merge_row(conn, merge_id))
        _check_unmerge(conn, merge)
        recorded = _rows(
            conn,
            sa.select(merge_rows)
            .where(merge_rows.c.merge_id == merge.merge_id)
            .order_by(merge_rows.c.seq.desc()),
        )
        present = _present(conn)
        names = {r["table_name"] for r in recorded if r["table_name"] in present}
        lock_tables(conn, *[schema.table(n) for n in sorted(names)])
        was_fresh = False
        before = consent_log.snapshot(conn, [merge.kept_id])
        for table_name, group in _grouped(recorded):
            table = schema.table(table_name)
            if table_name not in present:
                table.create(conn)  # a derived table dropped since: recreate it
            for r in group:
                if r["action"] == "update":
                    key = _loads(r["new_key"])
                    conn.execute(table.delete().where(_where_key(table, key)))
            if table_name == "schema_meta":
                was_fresh = any(_loads(r["row_key"]).get("key") == _FINGERPRINT_KEY for r in group)
                continue  # the fingerprint is written by the rebuild below
            conn.execute(table.insert(), [_loads(r["row_data"]) for r in group])
        consent_log.record_since(conn, before, source="unmerge", by=by)
        features.mark_stale(conn)  # the 360 as rebuilt after the merge is out of date
        conn.execute(
            merges.update()
            .where(merges.c.merge_id == merge.merge_id)
            .values(unmerged_at=now, unmerged_by=by)
        )
        audit.record(
            conn,
            "unmerge",
            actor=by,
            target=f"customer {merge.kept_id}",
            details={
                "merge_id": merge.merge_id,
                "kept_id": merge.kept_id,
                "merged_ids": merge.merged_ids,
            },
        )
    if was_fresh:
        features.refresh(store)  # the same sources as before the merge: the same rows
    merge.unmerged_at, merge.unmerged_by = now, by
    return merge


def _grouped(recorded: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Recorded rows by table, tables in the reverse of the order the merge touched them."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in recorded:  # newest first
        groups.setdefault(r["table_name"], []).append(r)
    return list(groups.items())


def get_merge(store: Store, merge_id: int) -> Merge:
    """One merge by id (MergeError if there is none)."""
    with store.connect() as conn:
        return _as_merge(_merge_row(conn, merge_id))


def history(store: Store) -> pd.DataFrame:
    """Every merge with its unmerge, the most recent action first: merge_id, kept_id,
    merged_ids (a list of ids), reason, merged_at, merged_by, unmerged_at, unmerged_by, rows_moved,
    status ("in force" or "undone")."""
    columns = [
        "merge_id",
        "kept_id",
        "merged_ids",
        "reason",
        "merged_at",
        "merged_by",
        "unmerged_at",
        "unmerged_by",
        "rows_moved",
        "status",
    ]
    if "merges" not in store.table_names():
        return pd.DataFrame(columns=columns)
    frame = store.read_df(sa.select(merges))
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["merged_ids"] = [_ids(json.loads(v)) for v in frame["merged_ids"]]
    frame["rows_moved"] = [sum(json.loads(v or "{}").values()) for v in frame["moved"]]
    frame["status"] = ["in force" if pd.isna(v) else "undone" for v in frame["unmerged_at"]]
    latest = frame["unmerged_at"].fillna(frame["merged_at"])
    frame = frame.assign(_latest=latest).sort_values(
        ["_latest", "merge_id"], ascending=[False, False]
    )
    return frame[columns].reset_index(drop=True)


def _in_force(store: Store) -> pd.DataFrame:
    """The merges in force (not undone), oldest first."""
    done = history(store)
    return done[done["status"] == "in force"].sort_values("merge_id").reset_index(drop=True)


def merged_into(store: Store, customer_id: int) -> Merge | None:
    """The merge in force that folded `customer_id` into another customer (None: none).

    When the kept customer was later merged again, the merge returned is the last one of
    the chain, so its `kept_id` is the customer that holds the history now.
    """
    found: Merge | None = None
    current = int(customer_id)
    for row in _in_force(store).itertuples():
        if current in row.merged_ids:
            found = get_merge(store, int(row.merge_id))
            current = found.kept_id
    return found


def merged_from(store: Store, customer_id: int) -> list[int]:
    """Every customer id folded into `customer_id` by merges in force (directly or not)."""
    into: dict[int, list[int]] = {}
    for row in _in_force(store).itertuples():
        into.setdefault(int(row.kept_id), []).extend(row.merged_ids)
    found: list[int] = []
    todo = list(into.get(int(customer_id), []))
    while todo:
        copy = todo.pop(0)
        if copy not in found:
            found.append(copy)
            todo.extend(into.get(copy, []))
    return sorted(found)


# --- review queue -------------------------------------------------------------------------


def cluster_key(customer_ids: Iterable[int]) -> str:
    """A cluster's key: its customer ids, sorted, comma-separated."""
    return ",".join(str(i) for i in sorted({int(v) for v in customer_ids}))


def decide(store: Store, customer_ids: Sequence[int], decision: str, *, by: str) -> str:
    """Record a review decision on a cluster ("not_same": never offer it again; "later":
    offer it after the others); returns the cluster key. The latest decision counts."""
    if decision not in DECISIONS:
        raise MergeError(
            f"Decision {decision!r} is not known; allowed: {', '.join(DECISIONS)} (to merge, "
            "use merge_customers)."
        )
    key = cluster_key(customer_ids)
    if key.count(",") < 1:
        raise MergeError(f"Decision on {key or 'no customers'}: a cluster has two or more ids.")
    with store.begin() as conn:
        lock_tables(conn, duplicate_decisions)
        conn.execute(
            duplicate_decisions.insert().values(
                decision_id=next_id(conn, duplicate_decisions.c.decision_id),
                cluster_key=key,
                decision=decision,
                decided_by=by,
                decided_at=utcnow(),
            )
        )
    return key


def decisions(store: Store) -> dict[str, str]:
    """The latest decision per cluster key."""
    d = duplicate_decisions.c
    frame = store.read_df(
        sa.select(d.cluster_key, d.decision).order_by(d.decided_at, d.decision_id)
    )
    return dict(zip(frame["cluster_key"], frame["decision"], strict=True))


def _merged_keys(store: Store) -> set[str]:
    frame = store.read_df(
        sa.select(merges.c.kept_id, merges.c.merged_ids).where(merges.c.unmerged_at.is_(None))
    )
    return {
        cluster_key([k, *json.loads(m)])
        for k, m in zip(frame["kept_id"], frame["merged_ids"], strict=True)
    }


def review_queue(store: Store, run_id: int | None = None) -> pd.DataFrame:
    """The duplicate run's clusters (latest run by default) still to review: without those
    decided "not_same" or already merged; "later" ones last, the others by their highest
    match probability. Adds cluster_key and decision (empty, or "later")."""
    from crm_core import dedupe  # built beside this module; imported when used

    found = dedupe.clusters(store, run_id)
    if found.empty:
        return found.assign(cluster_key=pd.Series(dtype=str), decision=pd.Series(dtype=str))
    decided = decisions(store)
    merged = _merged_keys(store)
    keys = [cluster_key(ids) for ids in found["customer_ids"]]
    queue = found.assign(cluster_key=keys, decision=[decided.get(k, "") for k in keys])
    queue = queue[(queue["decision"] != "not_same") & ~queue["cluster_key"].isin(merged)]
    queue = queue.assign(_later=queue["decision"] == "later").sort_values(
        ["_later", "max_probability", "cluster_id"], ascending=[True, False, True]
    )
    return queue.drop(columns="_later").reset_index(drop=True)


def suggested_keep(store: Store, customer_ids: Sequence[int]) -> tuple[int, str]:
    """The record to keep by default: the one with most orders, then the oldest sign-up,
    then the lowest id; with the reason in words."""
    ids = _ids(customer_ids)
    o = schema.orders.c
    counts = (
        sa.select(o.customer_id, sa.func.count().label("n"))
        .where(o.customer_id.in_(ids))
        .group_by(o.customer_id)
        .subquery()
    )
    frame = store.read_df(
        sa.select(customers.c.customer_id, customers.c.signup_at, counts.c.n)
        .outerjoin(counts, counts.c.customer_id == customers.c.customer_id)
        .where(customers.c.customer_id.in_(ids))
    )
    if frame.empty:
        raise MergeError(f"None of customers {ids} exist.")
    frame["n"] = frame["n"].fillna(0).astype(int)
    frame = frame.sort_values(["n", "signup_at", "customer_id"], ascending=[False, True, True])
    best = frame.iloc[0]
    if (frame["n"] == best["n"]).sum() == 1 and best["n"] > 0:
        return int(best["customer_id"]), f"most orders ({int(best['n'])})"
    tied = frame[frame["n"] == best["n"]]
    if (tied["signup_at"] == best["signup_at"]).sum() == 1:
        return int(best["customer_id"]), "oldest sign-up"
    return int(best["customer_id"]), "lowest id"


def compare(store: Store, customer_ids: Sequence[int]) -> pd.DataFrame:
    """The customers side by side for a reviewer, one row each: name, e-mail, phone, city,
    country, birth date, sign-up, completed orders and revenue, consent."""
    ids = _ids(customer_ids)
    c, o = customers.c, schema.orders.c
    totals = (
        sa.select(
            o.customer_id,
            sa.func.count().label("orders"),
            sa.func.sum(o.amount).label("revenue"),
        )
        .where(o.customer_id.in_(ids), o.status == "completed")
        .group_by(o.customer_id)
        .subquery()
    )
    name = sa.func.concat_ws(" ", c.first_name, c.last_name)
    stmt = (
        sa.select(
            c.customer_id,
            name.label("name"),
            c.email,
            c.phone,
            c.city,
            c.country,
            c.birth_date,
            c.signup_at,
            sa.func.coalesce(totals.c.orders, 0).label("orders"),
            sa.func.coalesce(totals.c.revenue, 0).label("revenue"),
            c.consent_email,
            c.consent_sms,
        )
        .outerjoin(totals, totals.c.customer_id == c.customer_id)
        .where(c.customer_id.in_(ids))
        .order_by(c.customer_id)
    )
    return store.read_df(stmt)


def customer_names(store: Store, customer_ids: Iterable[int]) -> dict[int, str]:
    """First and last name of each customer id ("" when it has none; missing ids left out)."""
    ids = sorted({int(i) for i in customer_ids})
    c = customers.c
    out: dict[int, str] = {}
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        frame = store.read_df(
            sa.select(c.customer_id, c.first_name, c.last_name).where(c.customer_id.in_(chunk))
        )
        for row in frame.itertuples(index=False):
            parts = [str(p).strip() for p in (row.first_name, row.last_name) if not pd.isna(p)]
            out[int(row.customer_id)] = " ".join(p for p in parts if p)
    return out


SIDE_BY_SIDE = (
    ("name", "Name"),
    ("consent_email", "E-mail consent"),
    ("consent_sms", "SMS consent"),
    ("orders", "Completed orders"),
    ("revenue", "Revenue"),
    ("email", "E-mail"),
    ("phone", "Phone"),
    ("city", "City"),
    ("country", "Country"),
    ("birth_date", "Birth date"),
    ("signup_at", "Signed up"),
)
"""Rows of `side_by_side`, the deciding ones (consent, orders, revenue) first."""


def _as_text(column: str, value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "unknown" if column in CONSENT_COLUMNS else ""
    if column in CONSENT_COLUMNS:
        return "Yes" if bool(value) else "No"
    if column == "revenue":
        return display.format_money(float(value))
    if column == "orders":
        return f"{int(value):,}"
    if column in ("birth_date", "signup_at"):
        return pd.Timestamp(value).strftime("%d %b %Y")
    return str(value)


def side_by_side(store: Store, customer_ids: Sequence[int]) -> pd.DataFrame:
    """`compare` turned for a narrow screen: one row per field (the deciding ones first),
    one column per customer ("Customer 42"), values as text."""
    frame = compare(store, customer_ids)
    out = pd.DataFrame({"field": [label for _, label in SIDE_BY_SIDE]})
    for row in frame.to_dict(orient="records"):
        out[f"Customer {int(row['customer_id'])}"] = [
            _as_text(column, row.get(column)) for column, _ in SIDE_BY_SIDE
        ]
    return out

"""Retention policies as data: how long each table keeps its rows, a dry run, and applying it.

A policy names a data table, the date column whose age counts, an age in months, and what
happens to older rows: ``delete`` them, or ``anonymise`` them (the listed columns cleared,
the row kept for the figures). Policies live in `retention_policies`; the defaults
(`DEFAULT_POLICIES`) are written once, the first time a store's policies are read, and an
admin changes or removes them from then on (Privacy page, `privacy retention --set`).

`plan` counts what a policy would touch now (a dry run, nothing changed); `apply` does it
in one transaction, writes one audit row ("retention_run") with the counts, and marks the
customer 360 table stale. `python -m crm_core privacy retention [--apply]` runs it, and a
schedule of kind ``retention`` runs it on a cron (see crm_core/schedules.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_core import audit, features, schema
from crm_core.errors import CRMError
from crm_core.store import Store, utcnow

DEFAULT_POLICIES: tuple[dict[str, Any], ...] = (
    {
        "table_name": "events",
        "date_column": "occurred_at",
        "age_months": 25,
        "action": "delete",
        "columns": None,
    },
    {
        "table_name": "survey_responses",
        "date_column": "answered_at",
        "age_months": 36,
        "action": "anonymise",
        "columns": ["comment"],
    },
)
"""Events go after 25 months; survey comments are removed after 3 years (scores stay)."""

POLICY_TABLES = tuple(
    name for name in schema.DATA_TABLES if name not in ("customers", "campaigns", "products")
)
"""Tables a policy may name: the facts about customers. Customers, campaigns and products
are referenced by them (erase a person instead)."""

_SEEDED = "retention_defaults_written"


class RetentionError(CRMError):
    """A retention policy names a table, column, age or action that cannot be used."""


@dataclass
class RetentionRun:
    """What applying the policies did: rows per table, and when."""

    applied_at: datetime
    rows: dict[str, int]
    actions: dict[str, str]

    def summary(self) -> list[str]:
        """What was deleted or anonymised, in words."""
        done = [f"{self.actions[t]}d {n:,} row(s) of {t}" for t, n in self.rows.items() if n]
        return [
            f"Retention applied at {self.applied_at:%Y-%m-%d %H:%M} UTC: "
            + ("; ".join(done) if done else "nothing was old enough")
            + "."
        ]


def _seed(store: Store) -> None:
    """Write DEFAULT_POLICIES once (a later removal by an admin is kept)."""
    meta = schema.schema_meta
    with store.begin() as conn:
        if conn.execute(sa.select(meta.c.value).where(meta.c.key == _SEEDED)).scalar():
            return
        existing = set(conn.execute(sa.select(schema.retention_policies.c.table_name)).scalars())
        for policy in DEFAULT_POLICIES:
            if policy["table_name"] not in existing:
                conn.execute(schema.retention_policies.insert().values(**_row(policy, None)))
        conn.execute(meta.insert().values(key=_SEEDED, value=utcnow().isoformat()))


def _row(policy: dict[str, Any], by: str | None) -> dict[str, Any]:
    columns = policy.get("columns")
    return {
        "table_name": policy["table_name"],
        "date_column": policy["date_column"],
        "age_months": int(policy["age_months"]),
        "action": policy["action"],
        "columns": json.dumps(list(columns)) if columns else None,
        "updated_by": by,
        "updated_at": utcnow(),
    }


def policies(store: Store) -> pd.DataFrame:
    """The policies in force: table_name, date_column, age_months, action, columns (a list),
    updated_by, updated_at."""
    _seed(store)
    frame = store.read_df(
        sa.select(schema.retention_policies).order_by(schema.retention_policies.c.table_name)
    )
    frame["columns"] = [json.loads(v) if isinstance(v, str) and v else [] for v in frame["columns"]]
    return frame


def check_policy(
    table_name: str, date_column: str, age_months: int, action: str, columns: list[str] | None
) -> None:
    """Raise RetentionError saying what is wrong with a policy (what, got, allowed)."""
    if table_name not in POLICY_TABLES:
        raise RetentionError(
            f"Retention table: got {table_name!r}; allowed: {', '.join(POLICY_TABLES)}."
        )
    tbl = schema.table(table_name)
    dates = [c.name for c in tbl.columns if isinstance(c.type, sa.Date | sa.DateTime)]
    if date_column not in dates:
        raise RetentionError(
            f"Retention date column of {table_name}: got {date_column!r}; allowed: "
            f"{', '.join(dates)}."
        )
    if not isinstance(age_months, int) or age_months < 1 or age_months > 1200:
        raise RetentionError(
            f"Retention age: got {age_months!r}; give whole months from 1 to 1200."
        )
    if action not in schema.RETENTION_ACTIONS:
        raise RetentionError(
            f"Retention action: got {action!r}; allowed: {', '.join(schema.RETENTION_ACTIONS)}."
        )
    if action == "anonymise":
        clearable = anonymisable_columns(table_name)
        bad = [c for c in columns or [] if c not in clearable]
        if not columns or bad:
            raise RetentionError(
                f"Columns to clear in {table_name}: got {', '.join(bad or ['none'])}; allowed: "
                f"{', '.join(clearable) or 'none (this table has no column to clear)'}."
            )


def anonymisable_columns(table_name: str) -> list[str]:
    """Columns an anonymising policy may clear: optional, not a key, not a reference."""
    tbl = schema.table(table_name)
    return [
        c.name
        for c in tbl.columns
        if c.nullable
        and not c.primary_key
        and not c.info.get("references")
        and not c.info.get("bookkeeping")
        and not isinstance(c.type, sa.Date | sa.DateTime)
    ]


def set_policy(
    store: Store,
    table_name: str,
    *,
    date_column: str,
    age_months: int,
    action: str,
    columns: list[str] | None = None,
    by: str,
) -> None:
    """Add or replace the policy of `table_name` (audited)."""
    check_policy(table_name, date_column, age_months, action, columns)
    _seed(store)
    policy = {
        "table_name": table_name,
        "date_column": date_column,
        "age_months": age_months,
        "action": action,
        "columns": columns if action == "anonymise" else None,
    }
    p = schema.retention_policies
    with store.begin() as conn:
        conn.execute(p.delete().where(p.c.table_name == table_name))
        conn.execute(p.insert().values(**_row(policy, by)))
        audit.record(
            conn,
            "retention_policy_changed",
            actor=by,
            target=f"table {table_name}",
            details={k: v for k, v in policy.items() if k != "table_name"},
        )


def remove_policy(store: Store, table_name: str, *, by: str) -> bool:
    """Remove the policy of `table_name` (audited); False when there was none."""
    _seed(store)
    p = schema.retention_policies
    with store.begin() as conn:
        gone = conn.execute(p.delete().where(p.c.table_name == table_name)).rowcount
        if gone:
            audit.record(
                conn,
                "retention_policy_changed",
                actor=by,
                target=f"table {table_name}",
                details={"removed": True},
            )
    return bool(gone)


def _cutoff(age_months: int, now: datetime) -> datetime:
    """Midnight (UTC) of the day `age_months` before `now`: rows dated before that day go,
    so the dry run's "before 30 Oct 2024" is exactly what is applied, whatever the hour."""
    day = (pd.Timestamp(now) - pd.DateOffset(months=int(age_months))).normalize()
    return day.to_pydatetime()


def _where(policy: pd.Series | dict[str, Any], now: datetime) -> tuple[sa.Table, Any]:
    tbl = schema.table(policy["table_name"])
    old = tbl.c[policy["date_column"]] < _cutoff(policy["age_months"], now)
    if policy["action"] == "anonymise":
        old = sa.and_(old, sa.or_(*(tbl.c[c].is_not(None) for c in policy["columns"])))
    return tbl, old


def plan(store: Store, now: datetime | None = None) -> pd.DataFrame:
    """The dry run: per policy, the cutoff and how many rows it would delete or anonymise."""
    now = now or utcnow()
    frame = policies(store)
    present = store.table_names()
    counts, cutoffs = [], []
    with store.connect() as conn:
        for policy in frame.to_dict("records"):
            cutoffs.append(_cutoff(policy["age_months"], now))
            if policy["table_name"] not in present:
                counts.append(0)
                continue
            tbl, old = _where(policy, now)
            counts.append(int(conn.execute(sa.select(sa.func.count()).where(old)).scalar()))
    frame["older_than"] = cutoffs
    frame["rows"] = counts
    return frame


def apply(store: Store, *, by: str | None, now: datetime | None = None) -> RetentionRun:
    """Delete or anonymise every row older than its policy allows, in one transaction."""
    now = now or utcnow()
    frame = policies(store)
    present = store.table_names()
    rows: dict[str, int] = {}
    actions: dict[str, str] = {}
    with store.begin() as conn:
        for policy in frame.to_dict("records"):
            name = policy["table_name"]
            if name not in present:
                continue
            tbl, old = _where(policy, now)
            if policy["action"] == "delete":
                done = conn.execute(tbl.delete().where(old)).rowcount
            else:
                values = {c: None for c in policy["columns"]}
                done = conn.execute(tbl.update().where(old).values(**values)).rowcount
            rows[name] = int(done or 0)
            actions[name] = policy["action"]
        if any(rows.values()):
            features.mark_stale(conn)
        audit.record(
            conn,
            "retention_run",
            actor=by,
            target="retention policies",
            details={"rows": rows, "actions": actions, "at": now.isoformat()},
        )
    return RetentionRun(now, rows, actions)

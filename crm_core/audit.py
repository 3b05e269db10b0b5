"""One tamper-evident audit log of every sensitive action (`audit_log`).

Each row is chained to the one before it: `row_hash` is the SHA-256 of a canonical JSON of
the row's fields and the previous row's hash (`prev_hash`), and `seq` counts 1, 2, 3, ...
without gaps. The last seq and hash (the head) are also kept in `schema_meta`
("audit_head"), so `verify` finds a row edited by SQL (its hash no longer matches), a row
deleted from the middle (a gap in seq, a broken chain), rows inserted or reordered (a
broken chain) and the newest rows deleted (the head names a later row).

What the chain cannot prove: someone with write access to the database who recomputes every
hash after theirs and the head can rewrite history undetected; the chain shows the log is
internally consistent, not that it was never rewritten whole. Keep a copy of the head
(`audit verify --json` prints it) somewhere else to pin it.

Rows are appended inside the caller's transaction (`record`), so an action that is rolled
back leaves no row. Details hold ids, counts and file names, never personal values.

The export log is a view of this table (`export_log`: rows with action "export"), created
by `store.init_schema` from `export_log_view_sql`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath, PurePosixPath
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crm_core.errors import CRMError
from crm_core.schema import AUDIT_ACTIONS, audit_log, export_log, schema_meta
from crm_core.store import Store, lock_tables, utcnow

HEAD_KEY = "audit_head"
"""schema_meta key holding "<last seq>:<last row_hash>"."""

ACTION_LABELS: dict[str, str] = {
    "sign_in_failed": "Sign-in failed",
    "locked_out": "Account locked after failed sign-ins",
    "user_added": "User added",
    "user_removed": "User removed",
    "role_changed": "Role changed",
    "user_deactivated": "User deactivated",
    "user_activated": "User reactivated",
    "password_reset": "Password reset",
    "import": "Data imported",
    "import_undo": "Import undone",
    "export": "Target list exported",
    "download": "File downloaded",
    "merge": "Customers merged",
    "unmerge": "Merge undone",
    "access_request": "Access request (data handed over)",
    "erasure": "Personal data erased",
    "consent_changed": "Consent changed",
    "suppression_added": "Address suppressed",
    "suppression_removed": "Suppression removed",
    "retention_policy_changed": "Retention policy changed",
    "retention_run": "Retention applied",
    "store_compacted": "Store compacted (old values wiped from free space)",
}
"""Each audit action in words, for the page and the CLI."""

EXPORT_FIELDS = (
    "export_id",
    "segment_name",
    "segment_version",
    "channel",
    "rows",
    "format",
    "file_name",
    "file_sha256",
    "column_names",
)
"""Keys of an "export" row's details that the export_log view reads."""

MAX_PROBLEMS = 20
"""Problems `verify` lists at most (the first is always the first bad row)."""


class AuditError(CRMError):
    """An audit row that cannot be written (unknown action, details not JSON)."""


def _iso(at: datetime) -> str:
    return at.replace(tzinfo=None).isoformat(timespec="microseconds")


def _details_json(details: dict[str, Any] | None) -> str:
    try:
        return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError) as exc:
        raise AuditError(f"Audit details: got {details!r}; allowed: JSON values. ({exc})") from exc


def row_hash(
    seq: int,
    at: datetime,
    actor: str | None,
    action: str,
    target: str | None,
    details: str | None,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical JSON of one row's fields and the previous hash."""
    canonical = json.dumps(
        [int(seq), _iso(at), actor, action, target, details, prev_hash],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _head(conn: Connection) -> tuple[int, str]:
    """The last row's (seq, row_hash), (0, "") for an empty log."""
    last = conn.execute(
        sa.select(audit_log.c.seq, audit_log.c.row_hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).all()
    return (int(last[0][0]), last[0][1]) if last else (0, "")


def _write_head(conn: Connection, seq: int, digest: str) -> None:
    value = f"{seq}:{digest}"
    updated = conn.execute(
        schema_meta.update().where(schema_meta.c.key == HEAD_KEY).values(value=value)
    )
    if not updated.rowcount:
        conn.execute(schema_meta.insert().values(key=HEAD_KEY, value=value))


def append(
    conn: Connection,
    action: str,
    *,
    actor: str | None,
    target: str = "",
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """`record` with an explicit time (migrations of older logs); returns the row's seq."""
    if action not in AUDIT_ACTIONS:
        raise AuditError(
            f"Audit action {action!r} is not known; allowed: {', '.join(AUDIT_ACTIONS)}."
        )
    lock_tables(conn, audit_log)  # seq = last + 1: one writer at a time
    last_seq, prev = _head(conn)
    seq = last_seq + 1
    when = (at or utcnow()).replace(tzinfo=None)
    text = _details_json(details)
    digest = row_hash(seq, when, actor, action, target, text, prev)
    conn.execute(
        audit_log.insert().values(
            seq=seq,
            at=when,
            actor=actor,
            action=action,
            target=target,
            details=text,
            prev_hash=prev,
            row_hash=digest,
        )
    )
    _write_head(conn, seq, digest)
    return seq


def record(
    conn: Connection,
    action: str,
    *,
    actor: str | None,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> int:
    """Append one audit row inside the caller's transaction; returns its seq.

    `action` is one of schema.AUDIT_ACTIONS; `details` holds ids, counts and file names,
    never personal values (no e-mails, names, phones).
    """
    return append(conn, action, actor=actor, target=target, details=details)


def record_now(
    store: Store,
    action: str,
    *,
    actor: str | None,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> int:
    """`record` in a transaction of its own (an action that wrote nothing else)."""
    with store.begin() as conn:
        return record(conn, action, actor=actor, target=target, details=details)


# --- verify -------------------------------------------------------------------------------


@dataclass
class AuditCheck:
    """The result of `verify`: whether the chain holds, rows checked, problems in words."""

    ok: bool
    rows: int
    problems: list[str] = field(default_factory=list)
    head_seq: int = 0
    head_hash: str = ""

    def summary(self) -> str:
        """One sentence for the page and the CLI."""
        if self.ok:
            if not self.rows:
                return "The audit log is empty; nothing to verify."
            return (
                f"The audit log is intact: {self.rows:,} row{'s' if self.rows != 1 else ''}, "
                "each chained to the one before; "
                f"last row {self.head_seq} (hash {self.head_hash[:12]}...)."
            )
        more = f" ({len(self.problems)} problems in all)" if len(self.problems) > 1 else ""
        return f"The audit log was tampered with: {self.problems[0]}{more}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (CLI --json)."""
        return {
            "ok": self.ok,
            "rows": self.rows,
            "problems": self.problems,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "summary": self.summary(),
        }


def _check_rows(rows: Iterable[Any], problems: list[str]) -> tuple[int, int, str]:
    """Walk the rows in seq order; (rows seen, last seq, last stored row_hash)."""
    count, expected, prev = 0, 1, ""
    for row in rows:
        count += 1
        seq = int(row.seq)
        if seq != expected:
            missing = f"row {expected}" if seq == expected + 1 else f"rows {expected} to {seq - 1}"
            problems.append(f"{missing} deleted: the log jumps from row {expected - 1} to {seq}.")
        elif row.prev_hash != prev:
            problems.append(
                f"row {seq} does not follow from row {seq - 1} (its prev_hash differs): "
                f"row {seq - 1} was rewritten, or a row was inserted or reordered there."
            )
        digest = row_hash(
            seq, row.at, row.actor, row.action, row.target, row.details, row.prev_hash
        )
        if digest != row.row_hash:
            problems.append(f"row {seq} was edited: its contents no longer match its hash.")
        expected, prev = seq + 1, row.row_hash
    return count, expected - 1, prev


def verify(store: Store) -> AuditCheck:
    """Check the whole chain and its head; problems name the seq of the first bad row."""
    problems: list[str] = []
    stmt = sa.select(audit_log).order_by(audit_log.c.seq)
    with store.connect() as conn:
        result = conn.execution_options(yield_per=10_000).execute(stmt)
        count, last_seq, last_hash = _check_rows(result, problems)
        head = conn.execute(
            sa.select(schema_meta.c.value).where(schema_meta.c.key == HEAD_KEY)
        ).scalar()
    head_seq, _, head_hash = (head or "0:").partition(":")
    head_seq = int(head_seq or 0)
    if head is None and count:
        problems.append("the log's head (its last row and hash) is missing from schema_meta.")
    elif head_seq > last_seq:
        gone = f"row {head_seq}" if head_seq == last_seq + 1 else f"rows {last_seq + 1}"
        gone += "" if head_seq == last_seq + 1 else f" to {head_seq}"
        problems.append(f"{gone} deleted: the head says the log ends at row {head_seq}.")
    elif head_seq < last_seq:
        problems.append(
            f"row {head_seq + 1} and after were added outside the app: the head says the log "
            f"ends at row {head_seq}."
        )
    elif head_hash != last_hash:
        problems.append(f"row {last_seq} was replaced: its hash differs from the head's.")
    return AuditCheck(
        ok=not problems,
        rows=count,
        problems=problems[:MAX_PROBLEMS],
        head_seq=last_seq,
        head_hash=last_hash,
    )


# --- reading ------------------------------------------------------------------------------

ENTRY_COLUMNS = ("seq", "at", "actor", "action", "target", "details")


def entries(
    store: Store,
    *,
    actions: Iterable[str] | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 500,
) -> pd.DataFrame:
    """Audit rows, newest first: seq, at, actor, action, target, details (JSON text)."""
    c = audit_log.c
    stmt = sa.select(*[c[n] for n in ENTRY_COLUMNS]).order_by(c.seq.desc()).limit(int(limit))
    picked = list(actions or [])
    unknown = [a for a in picked if a not in AUDIT_ACTIONS]
    if unknown:
        raise AuditError(
            f"Audit action {unknown[0]!r} is not known; allowed: {', '.join(AUDIT_ACTIONS)}."
        )
    if picked:
        stmt = stmt.where(c.action.in_(picked))
    if actor:
        stmt = stmt.where(c.actor == actor)
    if since is not None:
        stmt = stmt.where(c.at >= since)
    return store.read_df(stmt)


def actors(store: Store) -> list[str]:
    """Everyone who appears in the log (for a filter), in name order."""
    c = audit_log.c
    stmt = sa.select(c.actor).where(c.actor.is_not(None)).group_by(c.actor).order_by(c.actor)
    with store.connect() as conn:
        return [r[0] for r in conn.execute(stmt).all() if r[0]]


def details_words(details: str | None) -> str:
    """A row's details JSON as "key: value; ..." for reading (a file by its name only, never
    its server path: the app shows no server paths)."""
    try:
        values = json.loads(details or "{}")
    except ValueError:
        return str(details)
    if not isinstance(values, dict):
        return str(values)
    parts = []
    for key, value in values.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        elif key == "file_name" and isinstance(value, str):
            value = PurePath(value).name or PurePosixPath(value).name
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(parts)


# --- export_log as a view -----------------------------------------------------------------


def export_log_view_sql(dialect: str) -> str:
    """CREATE VIEW export_log: the "export" rows of audit_log with today's export_log
    columns, read from the details JSON (DuckDB's json functions, PostgreSQL's jsonb)."""
    if dialect == "postgresql":

        def text(key: str) -> str:
            return f"(details::jsonb ->> '{key}')"

        columns = (
            "CASE WHEN jsonb_typeof(details::jsonb -> 'column_names') = 'array' "
            "THEN (details::jsonb -> 'column_names')::text END"
        )
    else:

        def text(key: str) -> str:
            return f"json_extract_string(details, '$.{key}')"

        columns = (
            "CASE WHEN json_type(details, '$.column_names') = 'ARRAY' "
            "THEN CAST(json_extract(details, '$.column_names') AS VARCHAR) END"
        )
    items = [
        f"CAST({text('export_id')} AS BIGINT) AS export_id",
        "actor AS exported_by",
        '"at" AS exported_at',
        f"{text('segment_name')} AS segment_name",
        f"CAST({text('segment_version')} AS INTEGER) AS segment_version",
        f"{text('channel')} AS channel",
        f'CAST({text("rows")} AS BIGINT) AS "rows"',
        f'{text("format")} AS "format"',
        f"{text('file_name')} AS file_name",
        f"{text('file_sha256')} AS file_sha256",
        f"{columns} AS column_names",
    ]
    # Fixed text: keys and names from this module, no values (nothing to inject).
    select = ", ".join(items)
    return f"CREATE VIEW export_log AS SELECT {select} FROM audit_log WHERE action = 'export'"  # noqa: S608


def export_details(row: dict[str, Any]) -> dict[str, Any]:
    """An export's details for its audit row, from export_log-shaped values."""
    details = {k: row.get(k) for k in EXPORT_FIELDS}
    names = details["column_names"]
    if isinstance(names, str):
        try:
            details["column_names"] = list(json.loads(names))
        except (ValueError, TypeError):
            details["column_names"] = None
    for key in ("export_id", "segment_version", "rows"):
        if details[key] is not None and not pd.isna(details[key]):
            details[key] = int(details[key])
    return details


def migrate_export_log_table(conn: Connection) -> int:
    """Turn an older store's export_log TABLE into audit rows, in export order, then drop
    the table (the caller creates the view); returns the rows moved."""
    old = sa.table(export_log.name, *[sa.column(c.name) for c in export_log.columns])
    rows = (
        conn.execute(sa.select(old).order_by(old.c.exported_at, old.c.export_id)).mappings().all()
    )
    for row in rows:
        append(
            conn,
            "export",
            actor=row["exported_by"],
            target=f"export {row['export_id']}",
            details=export_details(dict(row)),
            at=row["exported_at"],
        )
    conn.execute(sa.text(f"DROP TABLE {conn.dialect.identifier_preparer.quote(export_log.name)}"))
    return len(rows)

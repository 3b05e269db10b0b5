"""Access requests and erasure with proof: what GDPR (articles 15 and 17) and CCPA ask of
whoever holds customer data.

A person's rows are found through the schema's declarations (`schema.customer_key_columns`:
customers' key, every column declared as a reference to it, and every derived or history
column declared ``holds_customer``), never through a hand-kept list: a new table is covered
by declaring its column. A person is the customer id and every id merged into it by merges
in force (the same person's duplicate records).

- **Access** (`access_archive`): every row about the person, table by table, as JSON and
  CSV in one zip archive with a readme; recorded in `privacy_requests` and the audit log.
- **Erasure** (`erase`), in one transaction: personal fields (declared ``pii``) cleared in
  every row about the person, in every table (the shadow tables of imports included); free
  text (survey comments) removed; the before-images of the person's merges and the values
  of their duplicate pairs scrubbed; their external ids (which may be an e-mail) deleted;
  every former e-mail and phone put on the suppression list as a salted hash, so a later
  import of the same address stays suppressed in every export; consent set to no (a
  consent change with source ``erasure``). Orders, amounts and events stay, anonymous, so
  the analytics keep their figures.
  It ends with a proof: every text column of every table scanned for the person's former
  e-mails, phones and long comments of their own (a comment other customers wrote word for
  word identifies nobody, so it is looked for in the person's rows only); their rows scanned
  for names, places, short or shared comments and any personal field left. Each count must
  be zero, or the erasure is rolled back. The proof holds counts, never the values. It
  also lists the earlier exports that held the person (file, date, who), so that they can
  be recalled.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_core import audit, consent, contacts, display, features, merge, schema, suppression
from crm_core.config import get_settings
from crm_core.errors import CRMError
from crm_core.store import Store, lock_tables, next_id, utcnow

LONG_TEXT = 12
"""Comments at least this long are looked for in every row of every table; shorter ones
("Great!") only in the person's rows, where another customer's identical words are not."""

_VIEWS = frozenset({"export_log"})


class PrivacyError(CRMError):
    """An access request or erasure cannot be carried out (unknown or merged-away person)."""


@dataclass
class AccessResult:
    """An access request carried out: the archive and what it holds."""

    request_id: int
    customer_id: int
    person_ids: list[int]
    path: Path
    rows: dict[str, int]
    sha256: str

    def summary(self) -> list[str]:
        """What the archive holds, in words."""
        tables = sum(1 for n in self.rows.values() if n)
        return [
            f"Access request {self.request_id}: {sum(self.rows.values()):,} row(s) about "
            f"customer {self.customer_id} from {tables} table(s) written to {self.path.name} "
            f"(SHA-256 {self.sha256[:12]}...).",
            *(f"  {name}: {n:,}" for name, n in self.rows.items() if n),
        ]


@dataclass
class ErasureResult:
    """An erasure carried out: what was cleared, the proof, and the exports to recall."""

    request_id: int
    customer_id: int
    person_ids: list[int]
    erased_at: datetime
    cleared: dict[str, int]
    looked_for: dict[str, int]
    proof: list[dict[str, Any]]
    exports: list[dict[str, Any]] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    """Files this server kept that held the person (access archives, export copies)."""

    @property
    def found(self) -> int:
        """Former values found anywhere after the erasure (0: the proof holds)."""
        return sum(int(row["found"]) for row in self.proof)

    def summary(self) -> list[str]:
        """What the erasure did and proved, in words."""
        looked = ", ".join(f"{n} {kind}" for kind, n in self.looked_for.items() if n)
        lines = [
            f"Erasure {self.request_id}: customer {self.customer_id} erased at "
            f"{self.erased_at:%Y-%m-%d %H:%M} UTC"
            + (
                f" (with merged record(s) {', '.join(map(str, self.person_ids[1:]))})"
                if len(self.person_ids) > 1
                else ""
            )
            + ".",
            "Rows cleared: "
            + (
                ", ".join(
                    f"{display.label(t)} {n:,}"
                    for t, n in self.cleared.items()
                    if n and t != "suppressions"
                )
                or "none"
            )
            + f". Addresses added to the suppression list (hashed): "
            f"{self.cleared.get('suppressions', 0)}.",
            f"Proof: {len(self.proof):,} checks over every table and column for the former "
            f"values ({looked or 'none on record'}): {self.found} found.",
        ]
        if self.files_removed:
            lines.append(
                "Files kept on this server that held the person, deleted: "
                + ", ".join(self.files_removed)
                + "."
            )
        lines.append(
            "The database may still hold the old values in its free space until it is "
            "compacted: run `python -m crm_core privacy compact` (see README)."
        )
        if self.exports:
            lines.append(f"Earlier exports that held the person ({len(self.exports)}):")
            lines += [
                f"  export {e['export_id']}: {e['file_name']} on "
                f"{pd.Timestamp(e['exported_at']):%d %b %Y, %H:%M} UTC by {e['exported_by']}"
                for e in self.exports
            ]
        else:
            lines.append("No earlier export held the person.")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (CLI --json, the stored request)."""
        return {
            "request_id": self.request_id,
            "customer_id": self.customer_id,
            "person_ids": self.person_ids,
            "erased_at": self.erased_at.isoformat(),
            "cleared": self.cleared,
            "looked_for": self.looked_for,
            "found": self.found,
            "proof": self.proof,
            "exports": self.exports,
            "files_removed": self.files_removed,
        }


# --- who the person is, and where their rows are ------------------------------------------


def person_ids(store: Store, customer_id: int) -> list[int]:
    """The customer id first, then every id merged into it (merges in force)."""
    with store.connect() as conn:
        row = conn.execute(
            sa.select(schema.customers.c.customer_id).where(
                schema.customers.c.customer_id == int(customer_id)
            )
        ).first()
    if row is None:
        folded = merge.merged_into(store, int(customer_id))
        if folded is not None:
            raise PrivacyError(
                f"Customer {customer_id} was merged into customer {folded.kept_id} "
                f"(merge {folded.merge_id}); make the request for customer {folded.kept_id}, "
                "which holds the person's records."
            )
        raise PrivacyError(f"No customer {customer_id}: check the id (Customer 360 finds it).")
    return [int(customer_id), *merge.merged_from(store, int(customer_id))]


def _key_columns(present: set[str]) -> dict[str, list[sa.Column]]:
    """Table -> its columns that hold a customer id, for the tables the store has."""
    found: dict[str, list[sa.Column]] = {}
    for tbl, col in schema.customer_key_columns():
        if tbl.name in present and tbl.name not in _VIEWS:
            found.setdefault(tbl.name, []).append(col)
    return found


def _about(tbl: sa.Table, columns: list[sa.Column], ids: list[int]) -> sa.ColumnElement[bool]:
    return sa.or_(*(tbl.c[col.name].in_(ids) for col in columns))


def _external(ids: list[int]) -> sa.ColumnElement[bool]:
    x = schema.external_ids.c
    return sa.and_(x.entity == "customers", x.internal_id.in_(ids))


def _audit_about(ids: list[int]) -> sa.ColumnElement[bool]:
    return schema.audit_log.c.target.in_([f"customer {i}" for i in ids])


def _person_rows(present: set[str], ids: list[int]) -> dict[str, sa.Select]:
    """Table -> the SELECT of its rows about the person (every column), sorted by key."""
    selects: dict[str, sa.Select] = {}
    for name, columns in sorted(_key_columns(present).items()):
        tbl = schema.table(name)
        keys = list(tbl.primary_key.columns) or list(tbl.columns)[:1]
        selects[name] = sa.select(tbl).where(_about(tbl, columns, ids)).order_by(*keys)
    if "external_ids" in present:
        x = schema.external_ids
        selects["external_ids"] = (
            sa.select(x).where(_external(ids)).order_by(x.c.source, x.c.external_id)
        )
    if "audit_log" in present:
        a = schema.audit_log
        selects["audit_log"] = sa.select(a).where(_audit_about(ids)).order_by(a.c.seq)
    if {"merges", "merge_rows"} <= present:
        r, m = schema.merge_rows, schema.merges
        theirs = sa.select(m.c.merge_id).where(m.c.kept_id.in_(ids))
        selects["merge_rows"] = (
            sa.select(r).where(r.c.merge_id.in_(theirs)).order_by(r.c.merge_id, r.c.seq)
        )
    selects |= _child_rows(present, selects)
    return dict(sorted(selects.items()))


def _child_rows(present: set[str], selects: dict[str, sa.Select]) -> dict[str, sa.Select]:
    """Rows that belong to the person's rows through a declared reference to their key (the
    lines of their orders): about the person too, though they hold no customer id."""
    found: dict[str, sa.Select] = {}
    for tbl in schema.metadata.sorted_tables:
        if tbl.name not in present or tbl.name in selects or tbl.name in _VIEWS:
            continue
        for col in tbl.columns:
            parent_name, _, parent_key = str(col.info.get("references", "")).partition(".")
            if parent_name not in selects or parent_name == "customers":
                continue
            parent = selects[parent_name].subquery()
            keys = list(tbl.primary_key.columns) or list(tbl.columns)[:1]
            found[tbl.name] = (
                sa.select(tbl).where(col.in_(sa.select(parent.c[parent_key]))).order_by(*keys)
            )
    return found


# --- access request -----------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _readme(customer_id: int, ids: list[int], rows: dict[str, int], at: datetime) -> str:
    lines = [
        f"Personal data held about customer {customer_id}",
        f"Prepared {at:%Y-%m-%d %H:%M} UTC by CRM Insights (an access request).",
        "",
        "Each table that holds rows about you is here twice: as <table>.json (one object per",
        "row) and <table>.csv (one line per row). Times are UTC; amounts are in the store's",
        "currency. Tables were found from the store's schema: every table with a column that",
        "holds a customer id.",
    ]
    if len(ids) > 1:
        lines += [
            "",
            "Your records were merged from several customer records: "
            + ", ".join(map(str, ids))
            + ". Rows of all of them are included.",
        ]
    lines += ["", "Rows per table:"]
    for name, n in rows.items():
        doc = schema.table(name).info.get("doc", "") if name in schema.metadata.tables else ""
        lines.append(f"  {name}: {n:,}" + (f"  ({doc})" if doc else ""))
    return "\n".join(lines) + "\n"


def access_archive(store: Store, customer_id: int, out: Path | str, *, by: str) -> AccessResult:
    """Write every row about the person to the zip archive `out`; record the request."""
    ids = person_ids(store, customer_id)
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise PrivacyError(f"{out.name}: the archive must be a .zip file.")
    present = store.table_names()
    at = utcnow()
    frames = {name: store.read_df(stmt) for name, stmt in _person_rows(present, ids).items()}
    rows = {name: len(frame) for name, frame in frames.items()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", _readme(int(customer_id), ids, rows, at))
        for name, frame in frames.items():
            records = [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
            archive.writestr(f"{name}.json", json.dumps(records, indent=2, ensure_ascii=False))
            archive.writestr(f"{name}.csv", frame.to_csv(index=False))
    content = buffer.getvalue()
    sha256 = hashlib.sha256(content).hexdigest()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(content)
    partial.replace(out)
    requests = schema.privacy_requests
    with store.begin() as conn:
        lock_tables(conn, requests)
        request_id = next_id(conn, requests.c.request_id)
        conn.execute(
            requests.insert().values(
                request_id=request_id,
                kind="access",
                customer_id=int(customer_id),
                requested_by=by,
                requested_at=at,
                file_sha256=sha256,
            )
        )
        audit.record(
            conn,
            "access_request",
            actor=by,
            target=f"customer {int(customer_id)}",
            details={"request_id": request_id, "rows": sum(rows.values()), "sha256": sha256},
        )
    return AccessResult(request_id, int(customer_id), ids, out, rows, sha256)


# --- erasure ------------------------------------------------------------------------------


@dataclass
class _Former:
    """The person's former values, looked for after the erasure (never stored)."""

    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    comments: set[str] = field(default_factory=set)
    shared: set[str] = field(default_factory=set)  # comments other customers wrote too
    phone_countries: set[tuple[str, str | None]] = field(default_factory=set)

    def add_row(self, row: dict[str, Any]) -> None:
        """Take the personal values of a customers row (or its before-image)."""
        if row.get("email"):
            self.emails.add(str(row["email"]).strip())
        if row.get("phone"):
            self.phones.add(str(row["phone"]).strip())
            self.phone_countries.add((str(row["phone"]).strip(), row.get("country")))
        for key in ("first_name", "last_name", "city"):
            if row.get(key) and len(str(row[key]).strip()) >= 2:
                self.names.add(str(row[key]).strip())

    def own_comments(self) -> set[str]:
        """Comments no other customer wrote word for word (those identify the person)."""
        return self.comments - self.shared

    def long_own(self) -> set[str]:
        """Own comments long enough to look for in every row of every table."""
        return {c for c in self.own_comments() if len(c) >= LONG_TEXT}

    def counts(self) -> dict[str, int]:
        return {
            "e-mail(s)": len(self.emails),
            "phone(s)": len(self.phones),
            "name(s) and place(s)": len(self.names),
            "comment(s)": len(self.comments),
        }


def _pii(tbl: sa.Table) -> list[sa.Column]:
    return [c for c in tbl.columns if c.info.get("pii")]


def _person_merges(conn: sa.Connection, ids: list[int]) -> list[int]:
    """Merges (in force or undone) whose kept customer is one of the person's ids."""
    m = schema.merges.c
    return [int(v) for v in conn.execute(sa.select(m.merge_id).where(m.kept_id.in_(ids))).scalars()]


def _collect(conn: sa.Connection, present: set[str], ids: list[int], merges: list[int]) -> _Former:
    former = _Former()
    c = schema.customers
    for name in ("customers", schema.replaced_table_name("customers")):
        if name in present:
            tbl = schema.table(name)
            for row in conn.execute(sa.select(tbl).where(tbl.c.customer_id.in_(ids))).mappings():
                former.add_row(dict(row))
    for name in ("survey_responses", schema.replaced_table_name("survey_responses")):
        if name in present:
            tbl = schema.table(name)
            stmt = sa.select(tbl.c.comment).where(
                tbl.c.customer_id.in_(ids), tbl.c.comment.is_not(None)
            )
            former.comments |= {str(v).strip() for v in conn.execute(stmt).scalars() if v}
    if merges and "merge_rows" in present:
        r = schema.merge_rows.c
        stmt = sa.select(r.table_name, r.row_data).where(r.merge_id.in_(merges))
        for table_name, data in conn.execute(stmt):
            row = merge._loads(data)
            if table_name == c.name:
                former.add_row(row)
            elif table_name == "survey_responses" and row.get("comment"):
                former.comments.add(str(row["comment"]).strip())
    former.comments.discard("")
    if former.comments and "survey_responses" in present:
        r = schema.survey_responses.c
        stmt = (
            sa.select(r.comment)
            .where(r.comment.in_(sorted(former.comments)), r.customer_id.not_in(ids))
            .distinct()
        )
        former.shared = {str(v).strip() for v in conn.execute(stmt).scalars()}
    return former


def _scrub_merge_rows(conn: sa.Connection, merges: list[int], at: datetime) -> int:
    """Clear the personal fields of the before-images of the person's merges."""
    if not merges:
        return 0
    r = schema.merge_rows.c
    rows = conn.execute(
        sa.select(r.merge_id, r.seq, r.table_name, r.row_data).where(r.merge_id.in_(merges))
    ).all()
    changed = 0
    for merge_id, seq, table_name, data in rows:
        if table_name not in schema.metadata.tables:
            continue
        personal = [c.name for c in _pii(schema.table(table_name))]
        row = merge._loads(data)
        scrubbed = {k: (None if k in personal else v) for k, v in row.items()}
        if table_name == "customers":
            scrubbed["erased_at"] = scrubbed.get("erased_at") or at
            scrubbed["consent_email"] = False
            scrubbed["consent_sms"] = False
        if scrubbed != row:
            conn.execute(
                schema.merge_rows.update()
                .where(r.merge_id == merge_id, r.seq == seq)
                .values(row_data=merge._dumps(scrubbed))
            )
            changed += 1
    return changed


def _suppress(conn: sa.Connection, former: _Former) -> int:
    """Every former address as a salted hash on the suppression list (a plain entry of the
    same address is replaced by it)."""
    for email in sorted(former.emails):
        suppression.add_hashed(conn, "email", email, reason="erased")
    for phone, country in sorted(former.phone_countries):
        suppression.add_hashed(conn, "phone", phone, reason="erased", country=country)
    return len(former.emails) + len(former.phone_countries)


def _contains(col: sa.Column, values: Iterable[str]) -> sa.ColumnElement[bool]:
    text = sa.func.lower(sa.cast(col, sa.Text))
    return sa.or_(*(text.contains(v.lower(), autoescape=True) for v in values))


def _has_word(col: sa.Column, values: Iterable[str]) -> sa.ColumnElement[bool]:
    """The text holds one of `values` as a whole word (a name "Ann" is not in "channel")."""
    text = sa.func.lower(sa.cast(col, sa.Text))
    return sa.or_(
        *(text.regexp_match(f"(^|[^a-z0-9]){re.escape(v.lower())}([^a-z0-9]|$)") for v in values)
    )


def _scope(
    name: str, key_columns: dict[str, list[sa.Column]], ids: list[int], merges: list[int]
) -> sa.ColumnElement[bool] | None:
    """The rows of table `name` about the person (None: the table has none)."""
    tbl = schema.table(name)
    if name in key_columns:
        return _about(tbl, key_columns[name], ids)
    if name == "external_ids":
        return _external(ids)
    if name == "merge_rows":
        return schema.merge_rows.c.merge_id.in_(merges or [-1])
    return None


def _is_text(col: sa.Column) -> bool:
    return isinstance(col.type, sa.String | sa.Text) and not col.info.get("allowed")


def prove(
    conn: sa.Connection, present: set[str], ids: list[int], merges: list[int], former: _Former
) -> list[dict[str, Any]]:
    """Scan every table and column for the person's former values: one row per check with
    the count found (0 everywhere when the erasure is complete). Counts, never values."""
    key_columns = _key_columns(present)
    everywhere = [
        ("e-mail", sorted(former.emails)),
        ("phone", sorted(former.phones | _phone_forms(former.phones))),
        ("comment", sorted(former.long_own())),
    ]
    theirs = [
        ("name or place", sorted(former.names), _has_word),
        ("comment", sorted(c for c in former.comments if c not in former.long_own()), _contains),
    ]
    proof: list[dict[str, Any]] = []
    for name in sorted(present & set(schema.metadata.tables) - _VIEWS):
        tbl = schema.table(name)
        scope = _scope(name, key_columns, ids, merges)
        checks: list[tuple[str, str, str, sa.ColumnElement[bool]]] = []
        for col in tbl.columns:
            if _is_text(col):
                for kind, values in everywhere:
                    if values:
                        checks.append((col.name, kind, "every row", _contains(col, values)))
                if scope is not None:
                    for kind, values, match in theirs:
                        if values:
                            where = sa.and_(scope, match(col, values))
                            checks.append((col.name, kind, "the person's rows", where))
            if scope is not None and col.info.get("pii"):
                where = sa.and_(scope, col.is_not(None))
                checks.append((col.name, "personal field", "the person's rows", where))
        if not checks:
            continue
        counts = conn.execute(
            sa.select(*(sa.func.count().filter(where) for *_, where in checks)).select_from(tbl)
        ).one()
        for (column, kind, where_words, _), count in zip(checks, counts, strict=True):
            proof.append(
                {
                    "table": name,
                    "column": column,
                    "looked_for": kind,
                    "rows": where_words,
                    "found": int(count or 0),
                }
            )
    return proof


def _phone_forms(phones: set[str]) -> set[str]:
    """E.164 forms of the phones (what a normalising import would store)."""
    keys = contacts.phone_key(pd.Series(sorted(phones), dtype="object")) if phones else []
    return {str(k) for k in keys if isinstance(k, str) and k}


def _exports(conn: sa.Connection, present: set[str], ids: list[int]) -> list[dict[str, Any]]:
    """Earlier exports whose file held one of the person's ids: file, date, who."""
    if not {"export_members", "audit_log"} <= present:
        return []
    members = schema.export_members.c
    log = schema.export_log.c
    stmt = (
        sa.select(log.export_id, log.file_name, log.exported_at, log.exported_by, log.segment_name)
        .where(log.export_id.in_(sa.select(members.export_id).where(members.customer_id.in_(ids))))
        .order_by(log.exported_at)
    )
    out = []
    for row in conn.execute(stmt).mappings():
        out.append(
            {
                "export_id": int(row["export_id"]),
                "file_name": Path(str(row["file_name"] or "")).name,
                "path": str(row["file_name"] or ""),  # server path: used, then dropped
                "exported_at": _plain(row["exported_at"]),
                "exported_by": row["exported_by"],
                "segment_name": row["segment_name"],
            }
        )
    return out


def _kept_paths(ids: list[int], export_paths: list[str]) -> list[Path]:
    """Files this server keeps that hold the person: access archives made in the app, and
    the kept copies of exports that held them (with their manifests)."""
    data_dir = Path(get_settings().data_dir).resolve()
    found: list[Path] = []
    for customer_id in ids:
        found += sorted((data_dir / "privacy").glob(f"customer-{customer_id}-*.zip"))
    for text in export_paths:
        path = Path(text) if text else None
        if path is None or not path.is_file():
            continue
        if data_dir not in path.resolve().parents:  # a file an admin wrote elsewhere: theirs
            continue
        found.append(path)
        manifest = path.with_name(path.name + ".manifest.json")
        if manifest.is_file():
            found.append(manifest)
    return found


def erase(store: Store, customer_id: int, *, by: str) -> ErasureResult:
    """Erase the person (see the module doc) in one transaction; the proof and the exports
    to recall. Raises PrivacyError, and changes nothing, when the proof finds anything."""
    ids = person_ids(store, customer_id)
    present = store.table_names()
    at = utcnow()
    c = schema.customers
    with store.begin() as conn:
        erased = conn.execute(
            sa.select(c.c.erased_at).where(c.c.customer_id == int(customer_id))
        ).scalar()
        if erased is not None:
            raise PrivacyError(
                f"Customer {customer_id} was already erased on {erased:%d %b %Y}; its proof "
                "is with the erasure on the Privacy page (`privacy requests`)."
            )
        merges = _person_merges(conn, ids) if "merges" in present else []
        former = _collect(conn, present, ids, merges)
        consent_before = conn.execute(
            sa.select(c.c.customer_id, c.c.consent_email, c.c.consent_sms).where(
                c.c.customer_id.in_(ids)
            )
        ).all()
        cleared: dict[str, int] = {}
        for name, columns in _key_columns(present).items():
            tbl = schema.table(name)
            personal = _pii(tbl)
            values: dict[str, Any] = {col.name: None for col in personal}
            if name == "customers":
                values |= {"consent_email": False, "consent_sms": False}
                values["erased_at"] = sa.func.coalesce(tbl.c.erased_at, at)
            if not values:
                continue
            scrub = _about(tbl, columns, ids)
            if name != "customers":
                scrub = sa.and_(scrub, sa.or_(*(col.is_not(None) for col in personal)))
            cleared[name] = conn.execute(tbl.update().where(scrub).values(**values)).rowcount
        cleared["merge_rows"] = _scrub_merge_rows(conn, merges, at) if merges else 0
        if "duplicate_pairs" in present:
            p = schema.duplicate_pairs.c
            cleared["duplicate_pairs"] = conn.execute(
                schema.duplicate_pairs.update()
                .where(sa.or_(p.customer_id_l.in_(ids), p.customer_id_r.in_(ids)))
                .values(comparisons=None)
            ).rowcount
        if "external_ids" in present:
            cleared["external_ids"] = conn.execute(
                schema.external_ids.delete().where(_external(ids))
            ).rowcount
        cleared["suppressions"] = _suppress(conn, former)
        consent.record(
            conn,
            [
                {
                    "customer_id": int(row.customer_id),
                    "channel": channel,
                    "old_value": getattr(row, f"consent_{channel}"),
                    "new_value": False,
                    "source": "erasure",
                    "changed_by": by,
                }
                for row in consent_before
                for channel in schema.CONSENT_CHANNELS
            ],
        )
        features.mark_stale(conn)
        proof = prove(conn, present, ids, merges, former)
        found = [row for row in proof if row["found"]]
        if found:
            where = ", ".join(f"{r['table']}.{r['column']} ({r['looked_for']})" for r in found)
            raise PrivacyError(
                f"The erasure of customer {customer_id} was rolled back: the scan still finds "
                f"former values in {where}. Nothing was changed: remove or change those "
                "rows (an app user or a schedule with the same address, say), then erase again."
            )
        exports = _exports(conn, present, ids)
        kept = _kept_paths(ids, [e.pop("path") for e in exports])
        requests = schema.privacy_requests
        lock_tables(conn, requests)
        request_id = next_id(conn, requests.c.request_id)
        result = ErasureResult(
            request_id,
            int(customer_id),
            ids,
            at,
            {k: int(v) for k, v in cleared.items()},
            former.counts(),
            proof,
            exports,
            [p.name for p in kept],
        )
        conn.execute(
            requests.insert().values(
                request_id=request_id,
                kind="erasure",
                customer_id=int(customer_id),
                requested_by=by,
                requested_at=at,
                proof=json.dumps(
                    {"looked_for": result.looked_for, "cleared": result.cleared, "checks": proof}
                ),
                exports=json.dumps(exports),
            )
        )
        audit.record(
            conn,
            "erasure",
            actor=by,
            target=f"customer {int(customer_id)}",
            details={
                "request_id": request_id,
                "person_ids": ids,
                "checks": len(proof),
                "found": 0,
                "exports": len(exports),
                "files_removed": len(kept),
            },
        )
    for path in kept:  # after the commit: a rolled-back erasure deletes nothing
        path.unlink(missing_ok=True)
    return result


def compact(store: Store, *, by: str | None) -> str:
    """Wipe erased and deleted values from the store's free space (`Store.compact`), audited;
    what was done, in words."""
    before, after = store.compact()
    audit.record_now(
        store,
        "store_compacted",
        actor=by,
        target="the store",
        details={"bytes_before": before, "bytes_after": after},
    )
    if before is None:
        return "Compacted the PostgreSQL store (VACUUM FULL): every table was rewritten."
    return (
        f"Compacted the store file: {before / 2**20:,.1f} MiB -> {after / 2**20:,.1f} MiB; "
        "values deleted or erased before are no longer in it."
    )


# --- reading requests back ----------------------------------------------------------------


def erased_at(store: Store, customer_id: int) -> datetime | None:
    """When the customer was erased (None: not erased, or no such customer)."""
    c = schema.customers.c
    with store.connect() as conn:
        return conn.execute(
            sa.select(c.erased_at).where(c.customer_id == int(customer_id))
        ).scalar()


def requests(store: Store, limit: int = 500) -> pd.DataFrame:
    """Access requests and erasures carried out, newest first (without their proofs)."""
    r = schema.privacy_requests
    columns = ["request_id", "kind", "customer_id", "requested_by", "requested_at"]
    if r.name not in store.table_names():
        return pd.DataFrame(columns=columns)
    stmt = sa.select(*(r.c[n] for n in columns)).order_by(r.c.request_id.desc()).limit(limit)
    return store.read_df(stmt)


def request_proof(
    store: Store, request_id: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """An erasure's proof (table, column, looked_for, rows, found), the exports it listed,
    and how many former values of each kind it looked for."""
    r = schema.privacy_requests.c
    with store.connect() as conn:
        row = conn.execute(
            sa.select(r.kind, r.proof, r.exports).where(r.request_id == int(request_id))
        ).first()
    if row is None or row.kind != "erasure":
        raise PrivacyError(f"No erasure {request_id}: see the list of requests.")
    stored = json.loads(row.proof or "{}")
    checks = stored.get("checks", [])
    proof = pd.DataFrame(checks, columns=["table", "column", "looked_for", "rows", "found"])
    exports = pd.DataFrame(
        json.loads(row.exports or "[]"),
        columns=["export_id", "file_name", "exported_at", "exported_by", "segment_name"],
    )
    return proof, exports, stored.get("looked_for", {})

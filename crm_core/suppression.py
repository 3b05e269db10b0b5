"""The suppression list: e-mail addresses and phone numbers that are never exported.

Entries are plain addresses (added by an admin, or from an unsubscribe or bounce file) or,
for an erased person, salted hashes of the address key: HMAC-SHA256 of
`contacts.email_key` / `phone_key` under an installation salt kept in schema_meta
("privacy_salt", made with `secrets` on first use). A hash does not hold the address, yet a
later import of the same address is recognised and left out of exports.

A hashed phone entry is stored as ``<bucket>:<hash>``: the bucket is a 3-hex-digit salted
hash of the number's last 7 digits, so an export parses only the few phones whose bucket
matches (a million phones need no million parses). With the salt, the full hash can be
brute-forced over all numbers anyway, so the bucket reveals nothing more.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from crm_core import audit, consent, contacts, detect, features
from crm_core.errors import CRMError, ImportValidationError
from crm_core.schema import consent_changes, customers, schema_meta, suppressions
from crm_core.store import Store, lock_tables, next_id, utcnow

KINDS = ("email", "phone")
SALT_KEY = "privacy_salt"
"""schema_meta key of the installation salt of address hashes."""
HASHED_LABEL = "(erased person, hashed)"
"""How a hashed entry's address reads in a listing."""
SUFFIX_DIGITS = 7
"""Digits of a phone number's end that its bucket is made from (equal keys share them)."""
BUCKET_BITS = 16
"""Bits of a hashed entry's bucket: about 1 in 65,536 addresses shares one."""
LIST_KINDS = {
    "unsubscribes": "Unsubscribes",
    "bounces": "Bounces",
}
"""Files the Data import page takes into the list: unsubscribes also opt the customers with
that e-mail out of e-mail (consent source unsubscribe_file); bounces only suppress."""
EMAIL_COLUMNS = ("email address", "email", "e-mail", "e-mail address", "mail", "address")
"""Header names read as the e-mail column, first match wins (Mailchimp "Email Address",
Klaviyo "Email"), compared ignoring case, spaces and punctuation."""
DATE_COLUMNS = (
    "unsub_time",
    "clean_time",
    "date suppressed",
    "suppressed at",
    "unsubscribed at",
    "bounced at",
    "timestamp",
    "date",
)
REASON_COLUMNS = ("unsub_reason", "suppression reason", "reason", "bounce type", "bounce reason")
_IN_LIST = 5_000


class SuppressionError(CRMError):
    """A suppression change that cannot be made as asked."""


# --- keys and hashes ----------------------------------------------------------------------


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise SuppressionError(
            f"Suppression kind: got {kind!r}; allowed: {', '.join(KINDS)}. Use email or phone."
        )
    return kind


def address_key(kind: str, value: str, country: str | None = None) -> str | None:
    """The address key of one e-mail or phone (crm_core.contacts); None when it has none."""
    series = pd.Series([value], dtype="string")
    if _check_kind(kind) == "email":
        key = contacts.email_key(series).iloc[0]
    else:
        key = contacts.phone_key(series, country).iloc[0]
    return None if key is pd.NA or key is None else str(key)


def _salt(conn: Connection, *, create: bool) -> bytes | None:
    """The installation salt (made and stored on first use when `create`)."""
    meta = schema_meta.c
    found = conn.execute(sa.select(meta.value).where(meta.key == SALT_KEY)).all()
    if found:
        return bytes.fromhex(found[0][0])
    if not create:
        return None
    # No table lock (audit.record locks schema_meta after audit_log): of two first uses at
    # once, the second's insert waits for the first and keeps its salt.
    made = pg_insert(schema_meta).values(key=SALT_KEY, value=secrets.token_hex(32))
    conn.execute(made.on_conflict_do_nothing(index_elements=["key"]))
    return bytes.fromhex(conn.execute(sa.select(meta.value).where(meta.key == SALT_KEY)).one()[0])


def _hasher(salt: bytes) -> Any:
    return hmac.new(salt, digestmod=hashlib.sha256)


def _digest(base: Any, kind: str, key: str) -> str:
    h = base.copy()
    h.update(f"{kind}:{key}".encode())
    return h.hexdigest()


def _buckets(salt: bytes, values: np.ndarray) -> np.ndarray:
    """A 16-bit bucket per text (SipHash-2-4 keyed by the salt: vectorised, pandas'
    `hash_array`), that exports compare before hashing anything in Python."""
    hashed = pd.util.hash_array(
        np.asarray(values, dtype=object), hash_key=salt.hex()[:16], categorize=False
    )
    return (hashed >> np.uint64(64 - BUCKET_BITS)).astype(np.int64)


def _bucket_text(kind: str, key: str) -> str:
    """What a key's bucket is made from: an e-mail's key, a phone's last digits (a raw
    number's last digits are its key's, so a phone is parsed only when its bucket matches)."""
    return key if kind == "email" else re.sub(r"[^0-9]", "", key)[-SUFFIX_DIGITS:]


def _stored(salt: bytes, kind: str, key: str) -> str:
    """The value a hashed entry stores: ``<bucket hex>:<HMAC-SHA256 hex>``."""
    bucket = int(_buckets(salt, np.array([_bucket_text(kind, key)], dtype=object))[0])
    return f"{bucket:04x}:{_digest(_hasher(salt), kind, key)}"


def address_hash(
    conn_or_store: Connection | Store, kind: str, value: str, *, country: str | None = None
) -> str:
    """HMAC-SHA256 (hex) of the address key of `value` under the installation salt (made on
    first use). `country` reads a phone written without a country code."""
    key = address_key(kind, value, country)
    if key is None:
        raise SuppressionError(
            f"{'E-mail' if kind == 'email' else 'Phone'}: got {value!r}, which is no "
            f"{'e-mail address' if kind == 'email' else 'phone number'}; give the address."
        )
    if isinstance(conn_or_store, Store):
        with conn_or_store.begin() as conn:
            salt = _salt(conn, create=True)
    else:
        salt = _salt(conn_or_store, create=True)
    return _digest(_hasher(salt), kind, key)


# --- add, remove, list --------------------------------------------------------------------


def _plain(conn: Connection, kind: str) -> pd.DataFrame:
    s = suppressions.c
    rows = conn.execute(
        sa.select(s.value).where(s.kind == kind, sa.or_(s.hashed.is_(None), s.hashed.is_(False)))
    ).all()
    return pd.DataFrame({"value": [r[0] for r in rows]}, dtype="string")


def _keys_of(kind: str, values: pd.Series) -> pd.Series:
    values = values.astype("string").reset_index(drop=True)
    return contacts.email_key(values) if kind == "email" else contacts.phone_key(values)


def _same_address(conn: Connection, kind: str, key: str, salt: bytes | None) -> list[str]:
    """Stored values (plain or hashed) that are the address with `key`."""
    plain = _plain(conn, kind)
    found = []
    if not plain.empty:
        same = _keys_of(kind, plain["value"]) == key
        found = plain["value"][same.fillna(False).to_numpy(dtype=bool)].tolist()
    if salt is not None:
        stored = _stored(salt, kind, key)
        s = suppressions.c
        if conn.execute(sa.select(s.value).where(s.value == stored)).all():
            found.append(stored)
    return found


def _checked_key(kind: str, value: str, country: str | None = None) -> str:
    key = address_key(kind, str(value or ""), country)
    if key is None:
        what = "e-mail address" if kind == "email" else "phone number"
        raise SuppressionError(
            f"Suppression: got {value!r}, which is no {what}; give the {what} to suppress."
        )
    return key


def add(
    store: Store,
    kind: str,
    value: str,
    *,
    reason: str | None,
    by: str | None,
    country: str | None = None,
) -> bool:
    """Put an e-mail or phone on the suppression list (with an audit row); False when the
    address (compared by its key) is on it already."""
    key = _checked_key(_check_kind(kind), value, country)
    with store.begin() as conn:
        lock_tables(conn, suppressions)
        if _same_address(conn, kind, key, _salt(conn, create=False)):
            return False
        conn.execute(
            suppressions.insert().values(
                value=str(value).strip(),
                kind=kind,
                reason=(reason or "").strip() or "added by an admin",
                added_at=utcnow(),
                hashed=False,
            )
        )
        audit.record(
            conn,
            "suppression_added",
            actor=by,
            target="suppression list",
            details={"kind": kind, "entries": 1},
        )
    return True


def remove(store: Store, value: str, *, by: str | None, country: str | None = None) -> bool:
    """Take an address off the suppression list: every entry of the same address (its key),
    its hashed entry included, or the entry stored as `value`; an audit row. False when
    there was none."""
    text = str(value or "").strip()
    kind = "email" if "@" in text else "phone"
    key = address_key(kind, text, country) if text else None
    with store.begin() as conn:
        lock_tables(conn, suppressions)
        found = set(_same_address(conn, kind, key, _salt(conn, create=False))) if key else set()
        s = suppressions.c
        found |= {r[0] for r in conn.execute(sa.select(s.value).where(s.value == text)).all()}
        if not found:
            return False
        conn.execute(suppressions.delete().where(s.value.in_(sorted(found))))
        audit.record(
            conn,
            "suppression_removed",
            actor=by,
            target="suppression list",
            details={"kind": kind, "entries": len(found)},
        )
    return True


def add_hashed(
    conn: Connection,
    kind: str,
    value: str,
    *,
    reason: str = "erased",
    country: str | None = None,
) -> None:
    """Suppress an erased person's address as a salted hash, inside the caller's transaction;
    plain entries of the same address are replaced by it. No audit row (the erasure has its
    own). `country` reads a phone written without a country code (the customer's)."""
    key = address_key(_check_kind(kind), str(value or ""), country)
    if key is None:
        return
    lock_tables(conn, suppressions)
    salt = _salt(conn, create=True)
    stored = _stored(salt, kind, key)
    s = suppressions.c
    same = [v for v in _same_address(conn, kind, key, salt) if v != stored]
    if same:
        conn.execute(suppressions.delete().where(s.value.in_(same)))
    if not conn.execute(sa.select(s.value).where(s.value == stored)).all():
        conn.execute(
            suppressions.insert().values(
                value=stored, kind=kind, reason=reason, added_at=utcnow(), hashed=True
            )
        )


def listing(store: Store, search: str | None = None) -> pd.DataFrame:
    """The suppression list, newest first: address (hashed entries as HASHED_LABEL), kind,
    reason, added_at, hashed. `search` keeps plain addresses containing it (any case) and,
    when it is an address, the hashed entry of that address."""
    s = suppressions.c
    stmt = sa.select(s.value, s.kind, s.reason, s.added_at, s.hashed).order_by(
        s.added_at.desc(), s.value
    )
    frame = store.read_df(stmt)
    frame["hashed"] = frame["hashed"].fillna(False).astype(bool)
    text = (search or "").strip()
    if text:
        keep = ~frame["hashed"] & frame["value"].astype("string").str.lower().str.contains(
            text.lower(), regex=False
        ).fillna(False)
        kind = "email" if "@" in text else "phone"
        key = address_key(kind, text)
        salt = _stored_salt(store)
        if key and salt is not None:
            keep |= frame["value"] == _stored(salt, kind, key)
        frame = frame[keep.to_numpy(dtype=bool)]
    frame = frame.reset_index(drop=True)
    frame.insert(0, "address", frame["value"].where(~frame["hashed"], HASHED_LABEL))
    return frame.drop(columns="value")


def _stored_salt(store: Store) -> bytes | None:
    value = store.scalar(sa.select(schema_meta.c.value).where(schema_meta.c.key == SALT_KEY))
    return bytes.fromhex(value) if value else None


# --- exports --------------------------------------------------------------------------------


def hashed_entries(store: Store) -> dict[str, set[str]]:
    """The stored values of the hashed entries per kind (empty sets when there are none)."""
    s = suppressions.c
    frame = store.read_df(sa.select(s.value, s.kind).where(s.hashed.is_(True)))
    return {k: set(frame.loc[frame["kind"] == k, "value"]) for k in KINDS}


def hashed_matches(
    store: Store, members: pa.Table, kind: str, entries: dict[str, set[str]] | None = None
) -> np.ndarray:
    """Whether each member's e-mail or phone (columns email, phone, country of `members`)
    hashes to a hashed suppression. Each distinct key is hashed once; a phone is parsed only
    when its last digits fall in the bucket of a hashed entry."""
    found = np.zeros(members.num_rows, dtype=bool)
    wanted = (entries if entries is not None else hashed_entries(store)).get(kind) or set()
    if not wanted or not members.num_rows:
        return found
    salt = _stored_salt(store)
    if salt is None:
        return found
    buckets = np.array(sorted({int(v.split(":", 1)[0], 16) for v in wanted}), dtype=np.int64)
    if kind == "email":
        emails = members["email"].cast(pa.string())
        rows, texts = _email_keys(emails)
    else:
        phones = members["phone"].cast(pa.string())
        digits = pc.replace_substring_regex(phones, r"\D", "")
        suffix = pc.utf8_slice_codeunits(digits, -SUFFIX_DIGITS, 2**31 - 1)
        rows = np.flatnonzero(_valid(suffix))
        texts = suffix.take(rows).to_numpy(zero_copy_only=False)
    if not len(rows):
        return found
    maybe = rows[np.isin(_buckets(salt, texts), buckets)]
    if not len(maybe):
        return found
    if kind == "email":
        keys = contacts.email_key(emails.take(maybe).to_pandas().astype("string"))
    else:
        phone = phones.take(maybe).to_pandas().astype("string")
        country = members["country"].take(maybe).cast(pa.string()).to_pandas().astype("string")
        keys = contacts.phone_key(phone, country)
    found[maybe] = [key is not pd.NA and _stored(salt, kind, str(key)) in wanted for key in keys]
    return found


_PLAIN = r"^[\t\n\r\x0b\x0c\x20-\x7e]*$"
"""Text whose trimming and lower case Arrow and Python agree on (printable ASCII)."""


def _valid(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.fill_null(pc.not_equal(values, ""), False).to_numpy(zero_copy_only=False)


def _email_keys(emails: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(rows, key) of each e-mail that has a key, as `contacts.email_key` makes it, in Arrow
    (a million in well under a second); text that is not plain ASCII goes through
    `contacts.email_key` itself."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(emails))
    parts = pc.extract_regex(text, r"(?s)^(?P<local>.*)@(?P<domain>[^@]*)$")
    local, domain = pc.struct_field(parts, "local"), pc.struct_field(parts, "domain")
    gmail = pc.and_(
        pc.is_in(domain, value_set=pa.array(sorted(contacts.GMAIL_DOMAINS))),
        pc.not_equal(local, ""),
    )
    plain_local = pc.replace_substring(pc.replace_substring_regex(local, r"(?s)\+.*$", ""), ".", "")
    key = pc.binary_join_element_wise(
        pc.if_else(gmail, plain_local, local),
        pc.if_else(gmail, pa.scalar("gmail.com"), domain),
        "@",
    )
    odd = pc.invert(pc.fill_null(pc.match_substring_regex(emails, _PLAIN), True))
    odd_rows = np.flatnonzero(odd.to_numpy(zero_copy_only=False))
    if not len(odd_rows):
        rows = np.flatnonzero(pc.is_valid(key).to_numpy(zero_copy_only=False))
        return rows, key.take(rows).to_numpy(zero_copy_only=False)
    keys = key.to_numpy(zero_copy_only=False).astype(object)
    exact = contacts.email_key(emails.take(odd_rows).to_pandas().astype("string"))
    keys[odd_rows] = exact.astype(object).where(exact.notna(), None).to_numpy()
    rows = np.flatnonzero(pd.notna(keys))
    return rows, keys[rows]


# --- unsubscribe and bounce files ------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def suggest_columns(header: Iterable[str]) -> dict[str, str | None]:
    """The file's e-mail, date and reason columns (None: not found), by common names."""
    by_norm = {_norm(h): h for h in header}
    out: dict[str, str | None] = {}
    for field_name, names in (
        ("email", EMAIL_COLUMNS),
        ("date", DATE_COLUMNS),
        ("reason", REASON_COLUMNS),
    ):
        out[field_name] = next((by_norm[_norm(n)] for n in names if _norm(n) in by_norm), None)
    return out


def file_header(path: Path | str, file_name: str | None = None) -> list[str]:
    """The column names of an unsubscribe or bounce file (its layout detected)."""
    path = Path(path)
    name = file_name or path.name
    fmt = detect.detect(path, name)
    return list(next(detect.read_batches(path, fmt, name, 1))[0].column_names)


@dataclass
class ListImport:
    """What an unsubscribe or bounce file did (or would do, in a dry run)."""

    file_name: str
    list_kind: str
    rows: int
    added: int
    already: int
    not_addresses: int
    consent_changed: int
    dry_run: bool = False
    examples: list[str] = field(default_factory=list)
    """Rows (file row numbers) whose e-mail is no address, the first few."""

    def summary(self) -> str:
        """In words, for the page and the CLI."""
        verb = "would add" if self.dry_run else "added"
        text = (
            f"{self.file_name}: {self.rows:,} row(s); {verb} {self.added:,} address(es) to "
            f"the suppression list, {self.already:,} on it already"
        )
        if self.list_kind == "unsubscribes":
            opted = "would opt" if self.dry_run else "opted"
            text += f"; {opted} {self.consent_changed:,} customer(s) out of e-mail"
        if self.not_addresses:
            text += (
                f"; {self.not_addresses:,} row(s) without an e-mail address left out "
                f"(rows {', '.join(self.examples)})"
            )
        return text + "."


class _Rollback(Exception):  # noqa: N818 - control flow of a dry run, never shown
    def __init__(self, result: ListImport) -> None:
        super().__init__("dry run")
        self.result = result


def _read_list(
    path: Path, name: str, email_column: str, date_column: str | None, reason_column: str | None
) -> pd.DataFrame:
    """The file's rows: row (file row number), email, added_at, reason."""
    fmt = detect.detect(path, name)
    parts = []
    for batch, first_row in detect.read_batches(path, fmt, name):
        header = batch.column_names
        missing = [c for c in (email_column, date_column, reason_column) if c and c not in header]
        if missing:
            raise ImportValidationError(
                name,
                [
                    f"{name}: column {missing[0]!r} is not in the file; its columns: "
                    f"{', '.join(header)}"
                ],
            )
        part = pd.DataFrame(
            {
                "row": np.arange(first_row, first_row + batch.num_rows),
                "email": batch[email_column].cast(pa.string()).to_pandas(),
            }
        )
        if date_column:
            iso = detect.normalise_datetimes(batch[date_column].cast(pa.string()), fmt)
            part["added_at"] = pd.to_datetime(iso.to_pandas(), errors="coerce", utc=True)
        if reason_column:
            part["reason"] = batch[reason_column].cast(pa.string()).to_pandas()
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def import_list(
    store: Store,
    path: Path | str,
    *,
    list_kind: str,
    by: str | None,
    file_name: str | None = None,
    email_column: str | None = None,
    date_column: str | None = None,
    reason_column: str | None = None,
    dry_run: bool = False,
) -> ListImport:
    """Take an unsubscribe or bounce file (CSV in any common layout, or Parquet) into the
    suppression list in one transaction: each new e-mail (compared by key) is added with the
    file's date and reason when given; for unsubscribes the customers with that e-mail are
    opted out of e-mail (consent source unsubscribe_file). One audit row."""
    if list_kind not in LIST_KINDS:
        raise SuppressionError(
            f"List: got {list_kind!r}; allowed: {', '.join(LIST_KINDS)}. Choose what the "
            "file holds."
        )
    path = Path(path)
    name = file_name or path.name
    if email_column is None:
        header = file_header(path, name)
        email_column = suggest_columns(header)["email"]
        if email_column is None:
            raise ImportValidationError(
                name,
                [
                    f"{name}: no e-mail column found (looked for {', '.join(EMAIL_COLUMNS)}); "
                    f"its columns: {', '.join(header)}; choose the e-mail column"
                ],
            )
    rows = _read_list(path, name, email_column, date_column, reason_column)
    rows["key"] = contacts.email_key(rows["email"].astype("string")).to_numpy()
    bad = rows[rows["key"].isna()]
    good = rows[rows["key"].notna()].drop_duplicates("key")
    default_reason = f"{'unsubscribed' if list_kind == 'unsubscribes' else 'bounced'} ({name})"
    try:
        with store.begin() as conn:
            lock_tables(conn, suppressions, customers, consent_changes)
            plain = _plain(conn, "email")
            known = set(_keys_of("email", plain["value"]).dropna()) if len(plain) else set()
            salt = _salt(conn, create=False)
            hashed = hashed_entries_conn(conn, "email") if salt is not None else set()
            if hashed:
                keys = good["key"].to_numpy(dtype=object)
                buckets = {int(v.split(":", 1)[0], 16) for v in hashed}
                maybe = keys[np.isin(_buckets(salt, keys), list(buckets))]
                known |= {k for k in maybe if _stored(salt, "email", k) in hashed}
            new = good[~good["key"].isin(known)]
            now = utcnow()
            added_at = (
                new["added_at"].dt.tz_convert(None).astype("datetime64[us]").fillna(now)
                if "added_at" in new
                else pd.Series(now, index=new.index, dtype="datetime64[us]")
            )
            reason = (
                new["reason"].astype("string").str.strip().str.slice(0, 200).replace("", pd.NA)
                if "reason" in new
                else pd.Series(pd.NA, index=new.index, dtype="string")
            )
            frame = pd.DataFrame(
                {
                    "value": new["email"].astype("string").str.strip().to_numpy(),
                    "kind": "email",
                    "reason": reason.fillna(default_reason).to_numpy(),
                    "added_at": added_at.to_numpy(),
                    "hashed": False,
                }
            )
            store.insert_df(conn, suppressions.name, frame)
            changed = 0
            if list_kind == "unsubscribes":
                changed = _opt_out(store, conn, set(good["key"]), by=by)
            result = ListImport(
                file_name=name,
                list_kind=list_kind,
                rows=len(rows),
                added=len(frame),
                already=len(good) - len(new),
                not_addresses=len(bad),
                consent_changed=changed,
                dry_run=dry_run,
                examples=[str(r) for r in bad["row"].head(5)],
            )
            if dry_run:
                raise _Rollback(result)
            audit.record(
                conn,
                "suppression_added",
                actor=by,
                target="suppression list",
                details={
                    "kind": "email",
                    "file": name,
                    "list": list_kind,
                    "entries": result.added,
                    "already": result.already,
                    "consent_changed": changed,
                },
            )
            if changed:
                features.mark_stale(conn)
    except _Rollback as done:
        return done.result
    return result


def hashed_entries_conn(conn: Connection, kind: str) -> set[str]:
    """The stored values of the hashed entries of `kind`, inside a transaction."""
    s = suppressions.c
    rows = conn.execute(sa.select(s.value).where(s.hashed.is_(True), s.kind == kind)).all()
    return {r[0] for r in rows}


def _opt_out(store: Store, conn: Connection, keys: set[str], *, by: str | None) -> int:
    """Opt the live customers whose e-mail has one of `keys` out of e-mail; the changes go to
    consent_changes (source unsubscribe_file). Customers opted out already are left alone."""
    if not keys:
        return 0
    c = customers.c
    frame = store.read_df(
        sa.select(c.customer_id, c.email, c.consent_email).where(
            c.email.is_not(None),
            c.erased_at.is_(None),
            sa.or_(c.consent_email.is_(None), c.consent_email.is_(True)),
        ),
        conn=conn,
    )
    if frame.empty:
        return 0
    hit = contacts.email_key(frame["email"].astype("string")).isin(keys).fillna(False)
    frame = frame[hit.to_numpy(dtype=bool)]
    if frame.empty:
        return 0
    ids = [int(i) for i in frame["customer_id"]]
    for i in range(0, len(ids), _IN_LIST):
        conn.execute(
            customers.update()
            .where(c.customer_id.in_(ids[i : i + _IN_LIST]))
            .values(consent_email=False)
        )
    first = next_id(conn, consent_changes.c.change_id)
    changes = pd.DataFrame(
        {
            "change_id": np.arange(first, first + len(ids), dtype="int64"),
            "customer_id": np.array(ids, dtype="int64"),
            "changed_at": pd.Series(utcnow(), index=range(len(ids)), dtype="datetime64[us]"),
            "channel": "email",
            "old_value": pd.array(
                [consent.as_bool(v) for v in frame["consent_email"]], dtype="boolean"
            ),
            "new_value": False,
            "source": "unsubscribe_file",
            "changed_by": by,
            "batch_id": pd.array([None] * len(ids), dtype="Int64"),
        }
    )
    store.insert_df(conn, consent_changes.name, changes)
    return len(ids)

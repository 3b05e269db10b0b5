"""Target-list exports and their audit trail (`export_log`, a view of the audit log).

An export takes a saved segment and, before anything is written: drops erased customers,
customers without consent or an address for the channel, and suppressed e-mails/phones;
optionally holds out a random control group (recorded in campaign_contacts for a campaign
created for the export, so the campaign view can measure lift); offers personal columns
only to roles that may export them; neutralises free-text cells a spreadsheet would run as
a formula (e-mails and phones, declared ``contact`` in the schema, leave exactly as stored);
rounds numbers to their declared scale; and writes the file, a JSON manifest beside it and
an "export" audit row (crm_core.audit) with the file's sha256, read back through the
`export_log` view, and `export_members` (which customers the file held, so an erasure can
name the exports to recall). Past exports can be listed (`export_history`)
and fetched again by their owner or an admin (`open_export`) while the file exists.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa
from openpyxl.cell import WriteOnlyCell

from crm_core import audit, auth, contacts, features, segments, suppression
from crm_core.config import get_settings
from crm_core.errors import CRMError, NotAllowedError
from crm_core.schema import (
    audit_log,
    campaign_contacts,
    campaigns,
    customers,
    export_log,
    export_members,
    suppressions,
)
from crm_core.store import Store, lock_tables, next_id, utcnow

CHANNELS = ("email", "sms", "none")
"""email and sms need consent and an address; none (e.g. an ad audience) needs neither."""
FORMATS = ("csv", "xlsx", "parquet")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
"""A text cell starting with one of these is read as a formula by spreadsheets."""
CONTACT_PATTERNS = {
    "email": r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$",
    "phone": r"^\+?[0-9(][0-9 ()./-]*$",
}
"""A contact value (column info ``contact``) of this shape holds no formula (no ``=``, no
function call) and is written exactly as stored; any other value is treated as free text."""
ROUND_MODE = "half_towards_infinity"
"""Arrow's name for rounding half away from zero (0.005 -> 0.01, -0.005 -> -0.01)."""
SHARE_SCALE = 4
"""Decimals of a share (column info ``share``, e.g. churn_risk 0.1235) unless it declares
its own ``scale``."""
MIME_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
}

EXPORTABLE_COLUMNS: tuple[str, ...] = tuple(n for n in features.FIELD_COLUMNS if n != "as_of")
PII_COLUMNS: frozenset[str] = frozenset(
    n for n, c in features.FIELD_COLUMNS.items() if c.info.get("pii")
)
DEFAULT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "country",
    "rfm_segment",
    "clv",
    "churn_risk",
)

EXCLUSION_REASONS = {
    "erased": "personal data erased",
    "no_consent": "no consent for the channel",
    "no_address": "no e-mail address or phone number for the channel",
    "suppressed": "on the suppression list",
    "opted_out_elsewhere": (
        "another customer record with the same e-mail address or phone number opted out of "
        "the channel (an opt-out wins)"
    ),
    "duplicate_address": (
        "same e-mail address or phone number as another customer in the file (the one with "
        "the lowest customer id is kept)"
    ),
}
"""Why a customer was left out, checked in this order (each customer counts once): an
address already in the file is checked last, among the customers left, so a customer with
consent is never dropped for a copy without it."""
PHONE_SUFFIX_DIGITS = 7
"""Two phone numbers can be one number (crm_core.contacts.phone_key) only if their last
this-many digits agree: only those are parsed, so a million numbers need no million parses."""


def read_export_log(store: Store, limit: int = 500) -> pd.DataFrame:
    """The most recent export_log rows, newest first, as stored (file_name is a server path:
    for scripts; the app shows `export_history`)."""
    stmt = sa.select(export_log).order_by(export_log.c.exported_at.desc()).limit(limit)
    return store.read_df(stmt)


def allowed_columns(role: str) -> list[str]:
    """Columns `role` may export: personal columns only with the export_pii permission."""
    if auth.can(role, "export_pii"):
        return list(EXPORTABLE_COLUMNS)
    return [c for c in EXPORTABLE_COLUMNS if c not in PII_COLUMNS]


def default_columns(role: str) -> list[str]:
    """A sensible starting choice of columns for `role`."""
    allowed = allowed_columns(role)
    return [c for c in DEFAULT_COLUMNS if c in allowed]


def _declared(name: str) -> sa.Column | None:
    return features.FIELD_COLUMNS.get(name)


def declared_scale(name: str) -> int | None:
    """Decimals field `name` leaves an export with: its ``scale`` info, SHARE_SCALE for a
    share, a Numeric column's own scale (money: 2), 0 for integers; None: not a number."""
    column = _declared(name)
    if column is None:
        return None
    if column.info.get("scale") is not None:
        return int(column.info["scale"])
    if column.info.get("share"):
        return SHARE_SCALE
    if isinstance(column.type, sa.Integer):
        return 0
    if isinstance(column.type, sa.Numeric) and not isinstance(column.type, sa.Float):
        return column.type.scale
    return None


def _as_is(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Cells of a text column written exactly as stored: contact values of their declared
    shape, values of a declared enum (``allowed``/``choices``); None: free text."""
    column_info = getattr(_declared(name), "info", {})
    kind = column_info.get("contact")
    if kind in CONTACT_PATTERNS:
        return pc.match_substring_regex(column, CONTACT_PATTERNS[kind])
    values = column_info.get("allowed") or column_info.get("choices")
    if values:
        return pc.is_in(column, value_set=pa.array([str(v) for v in values], column.type))
    return None


def neutralise_table(table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """Free-text cells a spreadsheet would read as a formula get a leading ' ; e-mails and
    phones of a valid shape and declared enum values stay as stored; numbers stay numbers.

    Returns the table and the number of cells changed per column.
    """
    changed: dict[str, int] = {}
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        risky = pc.starts_with(column, FORMULA_PREFIXES[0])
        for prefix in FORMULA_PREFIXES[1:]:
            risky = pc.or_(risky, pc.starts_with(column, prefix))
        kept = _as_is(name, column)
        if kept is not None:
            risky = pc.and_(risky, pc.invert(pc.fill_null(kept, False)))
        risky = pc.fill_null(risky, False)
        count = int(pc.sum(risky).as_py() or 0)
        if count:
            quote, empty = pa.scalar("'", column.type), pa.scalar("", column.type)
            quoted = pc.binary_join_element_wise(quote, column, empty)
            table = table.set_column(i, name, pc.if_else(risky, quoted, column))
            changed[name] = count
    return table, changed


def round_table(table: pa.Table, *, as_decimal: bool) -> pa.Table:
    """Numbers at their declared scale: integers as integers, the rest rounded half away
    from zero; `as_decimal` (CSV, XLSX) writes them as decimals with exactly that many
    digits (money 1337.69, a share 0.1235). Declared decimals (money) stay decimals."""
    for i, name in enumerate(table.column_names):
        column, scale = table.column(i), declared_scale(name)
        kind = column.type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        if scale is None or not (numeric or pa.types.is_decimal(kind)):
            continue
        if scale == 0:
            if not pa.types.is_integer(kind):
                whole = pc.round(column.cast(pa.float64()), 0, round_mode=ROUND_MODE)
                table = table.set_column(i, name, whole.cast(pa.int64()))
            continue
        if pa.types.is_decimal(kind) and kind.scale == scale:
            continue
        rounded = pc.round(column.cast(pa.float64()), scale, round_mode=ROUND_MODE)
        declared_decimal = not isinstance(_declared(name).type, sa.Float)
        if as_decimal or declared_decimal or pa.types.is_decimal(kind):
            rounded = rounded.cast(pa.decimal128(18, scale))
        table = table.set_column(i, name, rounded)
    return table


def _digits(value: object) -> str:
    return re.sub(r"\D", "", str(value))


@dataclass
class ExportResult:
    """What an export wrote and left out."""

    export_id: int
    path: Path
    manifest_path: Path
    segment_name: str
    segment_version: int
    channel: str
    format: str
    columns: list[str]
    rows: int
    selected: int
    excluded: dict[str, int] = field(default_factory=dict)
    control: int = 0
    campaign_id: int | None = None
    sha256: str = ""
    neutralised: dict[str, int] = field(default_factory=dict)
    """Cells per column that got a leading ' (free text that looked like a formula)."""

    @property
    def tables_written(self) -> tuple[str, ...]:
        """The store tables this export wrote (for the app's caches): the audit log (and its
        export_log view), who the file held, the segment's size and, with a control group,
        its campaign and contacts."""
        written = ("audit_log", "export_log", "export_members", "segment_sizes")
        return written + ("campaigns", "campaign_contacts") if self.campaign_id else written


def _check_request(role: str, channel: str, fmt: str, columns: list[str], share: float) -> None:
    if not auth.can(role, "export_lists"):
        raise NotAllowedError(f"Not allowed: the {role} role may not export target lists.")
    if channel not in CHANNELS:
        raise CRMError(f"Channel {channel!r} is not known; allowed: {', '.join(CHANNELS)}.")
    if fmt not in FORMATS:
        raise CRMError(f"Format {fmt!r} is not known; allowed: {', '.join(FORMATS)}.")
    unknown = [c for c in columns if c not in EXPORTABLE_COLUMNS]
    if unknown:
        raise CRMError(
            f"Unknown export column(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(EXPORTABLE_COLUMNS)}."
        )
    refused = [c for c in columns if c not in allowed_columns(role)]
    if refused:
        raise NotAllowedError(
            f"Not allowed: the {role} role may not export personal columns "
            f"({', '.join(refused)}). Remove them, or ask a marketer or admin to export."
        )
    if not 0 <= share < 1:
        raise CRMError(f"Control group share: got {share:.0%}; allowed 0% to 99%.")


CONTACT_COLUMNS = ("email", "phone", "country", "consent_email", "consent_sms", "erased_at")
"""Live customers columns the exclusions read."""


def _members(store: Store, definition: Any, columns: list[str]) -> pa.Table:
    """Every member of a segment with the export columns and the contact fields, one query.

    Contact fields come from the live customers table, the rest from customer_360; the
    segment's rules run inside the query, so a million members need no list of ids.
    """
    c360 = features.customer_360.c
    names = list(dict.fromkeys([*columns, *CONTACT_COLUMNS]))
    picked = [customers.c[n] if n in customers.c else c360[n] for n in names]
    where = segments.compile_rules(definition, segments.store_as_of(store) or utcnow().date())
    stmt = (
        sa.select(*[col.label(n) for col, n in zip(picked, names, strict=True)])
        .join_from(features.customer_360, customers, customers.c.customer_id == c360.customer_id)
        .where(where)
        .order_by(c360.customer_id)
    )
    return store.read_arrow(stmt)


def _flag(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.fill_null(values, False).to_numpy(zero_copy_only=False).astype(bool)


def _exclusions(store: Store, members: pa.Table, channel: str) -> np.ndarray:
    """Reason ('' for none) per member, first in EXCLUSION_REASONS order, vectorised.

    Addresses are compared by their keys (crm_core.contacts): a suppressed "Ann.Lee@Gmail.com"
    also suppresses "annlee@gmail.com", and "+49 151 ..." also "0151 ...". An address that any
    customer record opted out of is left out for every record that has it (an opt-out wins,
    as in a merge), so a person who signed up twice is not mailed through the other copy."""
    plain = sa.select(suppressions.c.value, suppressions.c.kind).where(
        suppressions.c.hashed.is_not(True)
    )
    suppressed = store.read_df(plain)
    sup_emails = _keys("email", suppressed.loc[suppressed["kind"] == "email", "value"])
    sup_phones = _keys("phone", suppressed.loc[suppressed["kind"] == "phone", "value"])
    email_sup = _matches(members, "email", sup_emails)
    phone_sup = _matches(members, "phone", sup_phones)
    # An erased person's addresses are suppressed as salted hashes (crm_core/suppression.py).
    hashed = suppression.hashed_entries(store)
    if channel != "sms":
        email_sup = email_sup | suppression.hashed_matches(store, members, "email", hashed)
    if channel != "email":
        phone_sup = phone_sup | suppression.hashed_matches(store, members, "phone", hashed)
    checks: list[tuple[str, np.ndarray]] = [("erased", _flag(pc.is_valid(members["erased_at"])))]
    if channel in ("email", "sms"):
        kind = "email" if channel == "email" else "phone"
        address = pc.utf8_trim_whitespace(members[kind].cast(pa.string()))
        checks += [
            ("no_consent", ~_flag(members[f"consent_{channel}"])),
            ("no_address", ~_flag(pc.not_equal(address, ""))),
            ("suppressed", email_sup if channel == "email" else phone_sup),
            ("opted_out_elsewhere", _matches(members, kind, _opted_out(store, channel))),
        ]
    else:
        checks.append(("suppressed", email_sup | phone_sup))
    reasons = np.select([mask for _, mask in checks], [name for name, _ in checks], default="")
    if channel in ("email", "sms"):
        reasons = _repeated_addresses(members, channel, reasons)
    return reasons


def _keys(kind: str, values: pd.Series, country: pd.Series | None = None) -> set[str]:
    """The address keys (crm_core.contacts) of e-mails or phones, blanks left out."""
    values = values.astype("string").reset_index(drop=True)
    if kind == "email":
        keys = contacts.email_key(values)
    else:
        keys = contacts.phone_key(
            values, None if country is None else country.reset_index(drop=True)
        )
    return set(keys.dropna())


def _opted_out(store: Store, channel: str) -> set[str]:
    """Keys of the addresses some customer record has without consent for `channel`."""
    column = customers.c.email if channel == "email" else customers.c.phone
    consent = customers.c.consent_email if channel == "email" else customers.c.consent_sms
    frame = store.read_df(
        sa.select(column.label("address"), customers.c.country).where(
            consent.is_(False), column.is_not(None)
        )
    )
    kind = "email" if channel == "email" else "phone"
    return _keys(kind, frame["address"], frame["country"])


def _matches(members: pa.Table, kind: str, keys: set[str]) -> np.ndarray:
    """Whether each member's e-mail or phone has one of `keys`. E-mails are all keyed
    (string operations); only phones whose last PHONE_SUFFIX_DIGITS digits agree with one
    of `keys` are parsed, so a million members need no million parses."""
    found = np.zeros(members.num_rows, dtype=bool)
    if not keys or not members.num_rows:
        return found
    if kind == "email":
        emails = members["email"].to_pandas().astype("string")
        return contacts.email_key(emails).isin(keys).fillna(False).to_numpy(dtype=bool)
    phones = members["phone"].cast(pa.string())
    digits = pc.replace_substring_regex(phones, r"\D", "")
    suffix = pc.utf8_slice_codeunits(digits, -PHONE_SUFFIX_DIGITS, 2**31 - 1)
    wanted = pa.array(sorted({_digits(k)[-PHONE_SUFFIX_DIGITS:] for k in keys}), pa.string())
    maybe = np.flatnonzero(_flag(pc.is_in(suffix, value_set=wanted)))
    if len(maybe):
        phone = phones.take(maybe).to_pandas().astype("string")
        country = members["country"].take(maybe).to_pandas().astype("string")
        found[maybe] = contacts.phone_key(phone, country).isin(keys).fillna(False).to_numpy()
    return found


def _repeats(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Whether each value occurs more than once (nulls never do), in Arrow."""
    counts = pc.value_counts(values)
    many = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if not len(many):
        return np.zeros(len(values), dtype=bool)
    return _flag(pc.is_in(values, value_set=many))


def _address_keys(members: pa.Table, channel: str, rows: np.ndarray) -> pd.Series:
    """The address key (crm_core.contacts) of each member at `rows` (<NA>: none): the
    mailbox of its e-mail, or its phone number in E.164. Only addresses that may repeat are
    keyed: e-mails whose lower-case text without dots and +tags repeats, phones whose last
    PHONE_SUFFIX_DIGITS digits repeat (equal keys always agree on those)."""
    keys = pd.Series(pd.NA, index=range(len(rows)), dtype="string")
    if channel == "email":
        emails = members["email"].take(rows).cast(pa.string())
        rough = pc.utf8_lower(pc.utf8_trim_whitespace(emails))
        rough = pc.replace_substring_regex(rough, r"\+[^@]*@", "@")
        rough = pc.replace_substring(rough, ".", "")
        maybe = np.flatnonzero(_repeats(rough))
        if len(maybe):
            keys.iloc[maybe] = contacts.email_key(
                emails.take(maybe).to_pandas().astype("string")
            ).to_numpy()
        return keys
    phones = members["phone"].take(rows).cast(pa.string())
    digits = pc.replace_substring_regex(phones, r"\D", "")
    suffix = pc.utf8_slice_codeunits(digits, -PHONE_SUFFIX_DIGITS, 2**31 - 1)
    maybe = np.flatnonzero(_repeats(suffix))
    if len(maybe):
        phone = phones.take(maybe).to_pandas().astype("string")
        country = members["country"].take(rows).take(maybe).to_pandas().astype("string")
        keys.iloc[maybe] = contacts.phone_key(phone, country).to_numpy()
    return keys


def _repeated_addresses(members: pa.Table, channel: str, reasons: np.ndarray) -> np.ndarray:
    """`reasons` with "duplicate_address" for each member still in the file whose address a
    member with a lower customer id (members are in id order) already has."""
    rows = np.flatnonzero(reasons == "")
    if len(rows) < 2:
        return reasons
    keys = _address_keys(members, channel, rows)
    repeated = (keys.notna() & keys.duplicated(keep="first")).to_numpy(dtype=bool)
    if repeated.any():
        reasons = reasons.astype(object)
        reasons[rows[repeated]] = "duplicate_address"
    return reasons


def _write(table: pa.Table, path: Path, fmt: str) -> dict[str, int]:
    """Write the file; the cells neutralised per column (none for Parquet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":  # typed columns, read by code, not by a spreadsheet: as stored
        pq.write_table(round_table(table, as_decimal=False), path)
        return {}
    safe, changed = neutralise_table(round_table(table, as_decimal=True))
    if fmt == "csv":
        options = pa_csv.WriteOptions(quoting_style="needed")
        pa_csv.write_csv(safe, path, write_options=options)
    else:
        _write_xlsx(safe, path)
    return changed


def _write_xlsx(table: pa.Table, path: Path) -> None:
    """One sheet; numbers stay numbers, with a number format of their declared decimals."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("target_list")
    sheet.append(table.column_names)
    formats = {}
    for i, name in enumerate(table.column_names):
        scale = declared_scale(name)
        if pa.types.is_decimal(table.column(i).type) and scale:
            formats[i] = "0." + "0" * scale
    values = [table.column(i).to_pylist() for i in range(table.num_columns)]
    for row in zip(*values, strict=True):
        cells = list(row)
        for i, number_format in formats.items():
            if cells[i] is not None:
                cell = WriteOnlyCell(sheet, value=cells[i])
                cell.number_format = number_format
                cells[i] = cell
        sheet.append(cells)
    book.save(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_path(segment_name: str, version: int, fmt: str) -> Path:
    """<data_dir>/exports/<segment>_v<version>_<UTC timestamp>.<format>."""
    slug = re.sub(r"[^a-z0-9]+", "_", segment_name.lower()).strip("_") or "segment"
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    return Path(get_settings().data_dir) / "exports" / f"{slug}_v{version}_{stamp}.{fmt}"


def export_segment(
    store: Store,
    segment_name: str,
    *,
    user: auth.User,
    channel: str,
    fmt: str = "csv",
    columns: list[str] | None = None,
    out: Path | str | None = None,
    control_share: float = 0.0,
    seed: int | None = None,
) -> ExportResult:
    """Export the latest version of a saved segment as a governed target list."""
    if not user.active:
        raise NotAllowedError(
            f"User {user.username!r} is deactivated and may not export; reactivate them with "
            "`python -m crm_core users activate` or export as another user."
        )
    columns = list(dict.fromkeys(["customer_id", *(columns or default_columns(user.role))]))
    _check_request(user.role, channel, fmt, columns, control_share)
    features.ensure_fresh(store)
    segment = segments.load_segment(store, segment_name)
    members = _members(store, segment.definition, columns)
    if not members.num_rows:
        raise segments.SegmentError(
            f"Segment {segment.name!r} v{segment.version} selects no customers; nothing exported."
        )
    reasons = _exclusions(store, members, channel)
    excluded = {k: int((reasons == k).sum()) for k in EXCLUSION_REASONS}
    eligible = members["customer_id"].to_numpy()[reasons == ""]
    if not len(eligible):
        raise CRMError(
            f"All {members.num_rows:,} customers of {segment.name!r} were excluded for {channel} ("
            + ", ".join(f"{EXCLUSION_REASONS[k]}: {v:,}" for k, v in excluded.items() if v)
            + "); nothing exported."
        )
    seed = secrets.randbits(32) if seed is None else seed
    n_control = int(round(control_share * len(eligible)))
    rng = np.random.default_rng(seed)
    control = np.sort(rng.choice(eligible, size=n_control, replace=False)) if n_control else []
    treatment = np.setdiff1d(eligible, control)
    if not len(treatment):
        raise CRMError("The control group would take every customer; lower its share.")
    frame = members.filter(pc.is_in(members["customer_id"], pa.array(treatment))).select(columns)
    path = Path(out) if out else default_path(segment.name, segment.version, fmt)
    if path.is_dir():
        path = path / default_path(segment.name, segment.version, fmt).name
    neutralised = _write(frame, path, fmt)
    try:
        digest = _sha256(path)
        now = utcnow()
        with store.begin() as conn:
            lock_tables(conn, audit_log, campaigns)  # next ids: one exporter at a time
            export_id = next_id(conn, export_log.c.export_id)
            campaign_id = None
            if n_control:
                campaign_id = _record_campaign(
                    store, conn, segment, channel, now, treatment, control
                )
            audit.record(
                conn,
                "export",
                actor=user.username,
                target=f"export {export_id}",
                details={
                    "export_id": export_id,
                    "segment_name": segment.name,
                    "segment_version": segment.version,
                    "channel": channel,
                    "rows": frame.num_rows,
                    "format": fmt,
                    "file_name": str(path.resolve()),
                    "file_sha256": digest,
                    "column_names": columns,
                },
            )
            _record_members(store, conn, export_id, frame["customer_id"])
    except Exception:
        path.unlink(missing_ok=True)
        raise
    result = ExportResult(
        export_id=export_id,
        path=path,
        manifest_path=path.with_name(path.name + ".manifest.json"),
        segment_name=segment.name,
        segment_version=segment.version,
        channel=channel,
        format=fmt,
        columns=columns,
        rows=frame.num_rows,
        selected=members.num_rows,
        excluded=excluded,
        control=int(n_control),
        campaign_id=campaign_id,
        sha256=digest,
        neutralised=neutralised,
    )
    _write_manifest(result, user, now, segment, seed, control_share)
    segments.record_size(store, segment)
    return result


def _record_members(
    store: Store, conn: sa.Connection, export_id: int, customer_ids: pa.ChunkedArray
) -> None:
    """export_members: every customer the file holds (one bulk insert)."""
    ids = customer_ids.to_numpy().astype("int64")
    store.insert_df(
        conn, export_members.name, pd.DataFrame({"export_id": export_id, "customer_id": ids})
    )


def _record_campaign(
    store: Store,
    conn: sa.Connection,
    segment: segments.SavedSegment,
    channel: str,
    now: Any,
    treatment: np.ndarray,
    control: np.ndarray,
) -> int:
    """A campaign for this export, with treatment and held-out control contacts."""
    campaign_id = next_id(conn, campaigns.c.campaign_id)
    conn.execute(
        campaigns.insert().values(
            campaign_id=campaign_id,
            name=f"Export: {segment.name} v{segment.version} {now:%Y-%m-%d %H:%M}",
            channel=channel if channel != "none" else "other",
            objective="target_list",
            started_at=now,
            spend=0,
        )
    )
    contacts = pd.DataFrame(
        {
            "campaign_id": campaign_id,
            "customer_id": np.concatenate([treatment, control]).astype("int64"),
            "sent_at": now,
            "test_group": ["treatment"] * len(treatment) + ["control"] * len(control),
        }
    )
    store.insert_df(conn, campaign_contacts.name, contacts)
    return campaign_id


def _write_manifest(
    result: ExportResult,
    user: auth.User,
    when: Any,
    segment: segments.SavedSegment,
    seed: int,
    control_share: float,
) -> None:
    manifest = {
        **{k: v for k, v in asdict(result).items() if k not in ("path", "manifest_path")},
        "file_name": result.path.name,
        "exported_by": user.username,
        "role": user.role,
        "exported_at": when.isoformat(),
        "definition": segments.redact_definition(segment.definition, user.role),
        "description": segment.description,
        "exclusion_reasons": EXCLUSION_REASONS,
        "control_share": control_share,
        "control_seed": seed,
        "formula_cells_neutralised": result.format in ("csv", "xlsx"),
        "number_scales": {c: s for c in result.columns if (s := declared_scale(c)) is not None},
        "contact_columns_as_stored": [
            c for c in result.columns if getattr(_declared(c), "info", {}).get("contact")
        ],
    }
    result.manifest_path.write_text(json.dumps(manifest, indent=2, default=str))


HISTORY_LIMIT = 500
"""Past exports listed at most (newest first)."""


def _may_read_all(user: auth.User) -> bool:
    return auth.can(user.role, "view_export_log")


def export_history(store: Store, user: auth.User, *, own_only: bool = False) -> pd.DataFrame:
    """Past exports, newest first: the user's own (admins: everyone's unless `own_only`),
    with the file's name (never its server path) and whether it still exists."""
    log = export_log.c
    stmt = (
        sa.select(
            log.export_id,
            log.exported_at,
            log.exported_by,
            log.segment_name,
            log.segment_version,
            log.channel,
            log.format,
            log.rows,
            log.file_name,
        )
        .order_by(log.exported_at.desc(), log.export_id.desc())
        .limit(HISTORY_LIMIT)
    )
    if own_only or not _may_read_all(user):
        stmt = stmt.where(log.exported_by == user.username)
    frame = store.read_df(stmt)
    paths = [Path(_text(p)) if _text(p) else None for p in frame["file_name"]]
    frame["file_name"] = [p.name if p else "" for p in paths]
    frame["available"] = [bool(p) and p.is_file() for p in paths]
    return frame.rename(columns={"file_name": "file"})


@dataclass(frozen=True)
class ExportFile:
    """A past export the user may download: names to offer, bytes read on demand."""

    export_id: int
    name: str
    mime: str
    manifest_name: str
    has_manifest: bool
    sha256: str
    _path: Path = field(repr=False)

    def read(self) -> bytes:
        """The file's bytes, refused if they changed since the export (sha256)."""
        data = self._path.read_bytes()
        if self.sha256 and hashlib.sha256(data).hexdigest() != self.sha256:
            raise CRMError(
                f"Export {self.export_id} ({self.name}): the file changed since it was "
                "exported (sha256 differs); export the segment again."
            )
        return data

    def read_manifest(self) -> bytes:
        """The manifest JSON written beside the file."""
        return self._path.with_name(self.name + ".manifest.json").read_bytes()


def _text(value: object) -> str:
    """A stored text value, '' for NULL (NaN or None in a frame)."""
    return value if isinstance(value, str) else ""


def _exported_columns(row: dict[str, Any], path: Path) -> list[str] | None:
    """Columns of a past export: from export_log, else from its manifest; None: unknown."""
    if _text(row["column_names"]):
        return list(json.loads(row["column_names"]))
    try:
        return list(json.loads(path.with_name(path.name + ".manifest.json").read_text())["columns"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def open_export(store: Store, export_id: int, user: auth.User) -> ExportFile:
    """A past export for download: only its owner or an admin, only while the owner's role
    may still export it (personal columns need export_pii), only while the file exists."""
    found = store.read_df(sa.select(export_log).where(export_log.c.export_id == int(export_id)))
    if found.empty:
        raise CRMError(f"Export {export_id} does not exist; pick one from the export history.")
    row = found.iloc[0].to_dict()
    if row["exported_by"] != user.username and not _may_read_all(user):
        raise NotAllowedError(
            f"Not allowed: export {export_id} was made by another user; only its owner or "
            "an admin may download it."
        )
    if not auth.can(user.role, "export_lists"):
        raise NotAllowedError(f"Not allowed: the {user.role} role may not download exports.")
    path = Path(_text(row["file_name"]))
    columns = _exported_columns(row, path)
    personal = columns is None or bool(set(columns) & PII_COLUMNS)
    if personal and not auth.can(user.role, "export_pii"):
        raise NotAllowedError(
            f"Not allowed: export {export_id} holds personal columns, which the {user.role} "
            "role may not export."
        )
    if not _text(row["file_name"]) or not path.is_file():
        raise CRMError(
            f"Export {export_id} ({path.name or 'no file'}): the file is no longer on the "
            "server; export the segment again."
        )
    return ExportFile(
        export_id=int(row["export_id"]),
        name=path.name,
        mime=MIME_TYPES.get(_text(row["format"]), "application/octet-stream"),
        manifest_name=path.name + ".manifest.json",
        has_manifest=path.with_name(path.name + ".manifest.json").is_file(),
        sha256=_text(row["file_sha256"]),
        _path=path,
    )

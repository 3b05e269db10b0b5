"""Target-list exports and their audit trail (`export_log`).

An export takes a saved segment and, before anything is written: drops erased customers,
customers without consent or an address for the channel, and suppressed e-mails/phones;
optionally holds out a random control group (recorded in campaign_contacts for a campaign
created for the export, so the campaign view can measure lift); offers personal columns
only to roles that may export them; neutralises text cells a spreadsheet would run as a
formula; and writes the file, a JSON manifest beside it and an `export_log` row with the
file's sha256.
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
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa

from crm_core import auth, features, segments
from crm_core.config import get_settings
from crm_core.errors import CRMError, NotAllowedError
from crm_core.schema import campaign_contacts, campaigns, customers, export_log, suppressions
from crm_core.store import Store, lock_tables, utcnow

CHANNELS = ("email", "sms", "none")
"""email and sms need consent and an address; none (e.g. an ad audience) needs neither."""
FORMATS = ("csv", "xlsx", "parquet")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
"""A text cell starting with one of these is read as a formula by spreadsheets."""

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
}
"""Why a customer was left out, checked in this order (each customer counts once)."""


def read_export_log(store: Store, limit: int = 500) -> pd.DataFrame:
    """The most recent exports, newest first (admins read this)."""
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


def neutralise_table(table: pa.Table) -> pa.Table:
    """Text cells a spreadsheet would read as a formula get a leading ' ; numbers stay numbers."""
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        risky = pc.starts_with(column, FORMULA_PREFIXES[0])
        for prefix in FORMULA_PREFIXES[1:]:
            risky = pc.or_(risky, pc.starts_with(column, prefix))
        risky = pc.fill_null(risky, False)
        if pc.any(risky).as_py():
            quote, empty = pa.scalar("'", column.type), pa.scalar("", column.type)
            quoted = pc.binary_join_element_wise(quote, column, empty)
            table = table.set_column(i, name, pc.if_else(risky, quoted, column))
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


CONTACT_COLUMNS = ("email", "phone", "consent_email", "consent_sms", "erased_at")
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
    """Reason ('' for none) per member, first in EXCLUSION_REASONS order, vectorised."""
    sup = store.read_df(sa.select(suppressions.c.value, suppressions.c.kind))
    emails = {str(v).strip().lower() for v in sup.loc[sup["kind"] == "email", "value"]}
    phones = {_digits(v) for v in sup.loc[sup["kind"] == "phone", "value"]} - {""}
    email_norm = pc.utf8_lower(pc.utf8_trim_whitespace(members["email"].cast(pa.string())))
    phone_norm = pc.replace_substring_regex(members["phone"].cast(pa.string()), r"\D", "")
    email_sup = _flag(pc.is_in(email_norm, value_set=pa.array(sorted(emails), pa.string())))
    phone_sup = _flag(pc.is_in(phone_norm, value_set=pa.array(sorted(phones), pa.string())))
    checks: list[tuple[str, np.ndarray]] = [("erased", _flag(pc.is_valid(members["erased_at"])))]
    if channel in ("email", "sms"):
        address = email_norm if channel == "email" else phone_norm
        checks += [
            ("no_consent", ~_flag(members[f"consent_{channel}"])),
            ("no_address", ~_flag(pc.not_equal(address, ""))),
            ("suppressed", email_sup if channel == "email" else phone_sup),
        ]
    else:
        checks.append(("suppressed", email_sup | phone_sup))
    return np.select([mask for _, mask in checks], [name for name, _ in checks], default="")


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        options = pa_csv.WriteOptions(quoting_style="needed")
        pa_csv.write_csv(neutralise_table(table), path, write_options=options)
    elif fmt == "xlsx":
        safe = neutralise_table(table).to_pandas()
        safe.to_excel(path, index=False, sheet_name="target_list")
    else:
        pq.write_table(table, path)


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
    _write(frame, path, fmt)
    try:
        digest = _sha256(path)
        now = utcnow()
        with store.begin() as conn:
            lock_tables(conn, export_log, campaigns)  # next ids: one exporter at a time
            export_id = 1 + int(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(export_log.c.export_id), 0))
                ).scalar()
            )
            campaign_id = None
            if n_control:
                campaign_id = _record_campaign(
                    store, conn, segment, channel, now, treatment, control
                )
            conn.execute(
                export_log.insert().values(
                    export_id=export_id,
                    exported_by=user.username,
                    exported_at=now,
                    segment_name=segment.name,
                    segment_version=segment.version,
                    channel=channel,
                    rows=frame.num_rows,
                    format=fmt,
                    file_name=str(path),
                    file_sha256=digest,
                )
            )
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
    )
    _write_manifest(result, user, now, segment, seed, control_share)
    segments.record_size(store, segment)
    return result


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
    campaign_id = 1 + int(
        conn.execute(sa.select(sa.func.coalesce(sa.func.max(campaigns.c.campaign_id), 0))).scalar()
    )
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
        "definition": segment.definition,
        "description": segment.description,
        "exclusion_reasons": EXCLUSION_REASONS,
        "control_share": control_share,
        "control_seed": seed,
        "formula_cells_neutralised": result.format in ("csv", "xlsx"),
    }
    result.manifest_path.write_text(json.dumps(manifest, indent=2, default=str))

"""Data quality of every data table: completeness, validity, uniqueness, references,
freshness, outliers, a score per table and its trend over imports.

Everything that can be counted in SQL is counted in the store (one aggregate query per
table, plus one query per reference and per amount column); only what a library decides is
pulled into Python, and as little of it as possible:

- e-mail format (`contacts.email_valid`): an address that matches a strict plain pattern
  (letters and digits in dot/hyphen/plus separated runs, an ASCII domain) is well formed
  when its domain is, so SQL counts those per domain and only the domains and the addresses
  that do not match the pattern go through email-validator: exact, at any size;
- phone format (`contacts.phone_valid`, read in the customer's country): every number up to
  `LIBRARY_ROWS` numbers; above that an even sample of customers (every k-th id) and the
  count is scaled and marked estimated;
- duplicate e-mails and phones (`contacts.email_key` / `phone_key`): SQL finds the
  addresses that could share a key (same local part without dots and +tag; same last 7
  digits), and only those are keyed.

Checks and what fails them (``CHECKS``): a required value missing; an e-mail or phone that
is not well formed; a country that is no ISO 3166 alpha-2 code; a date or time after now
(UTC); a number below the schema's minimum (negative amounts); a value outside the allowed
ones; customers sharing an e-mail or phone key with another customer (duplicate hints);
a reference that points to no row; an amount outside the IQR fences (Tukey's "far out":
below Q1 - 3 x IQR or above Q3 + 3 x IQR, ``OUTLIER_IQR``).

The score (0-100) of a table is the weighted mean (``WEIGHTS``) of the share of checked
values that pass in each category it has (completeness 30, validity 30, references 20,
uniqueness 15, amounts in range 5); a category the table has no check in is left out.
Completeness in the score counts required columns only (the completeness of every column
is reported). Freshness (last import, last record) is reported, not scored: a table that
does not change (products) is not worse for it. The key of every table is the store's
primary key, which the database keeps unique, so it is not re-counted.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from crm_core import contacts, privacy, schema
from crm_core.errors import CRMError
from crm_core.store import Store, utcnow

CATEGORIES = ("completeness", "validity", "integrity", "uniqueness", "in_range")
"""Score categories, in the order they are shown."""

WEIGHTS = {"completeness": 30, "validity": 30, "integrity": 20, "uniqueness": 15, "in_range": 5}
"""Weight of each category in a table's score (percent points)."""

SEVERITY = ("validity", "integrity", "completeness", "uniqueness", "in_range")
"""Categories from the most severe (invalid values, references to nothing) to the least
(unusual amounts): the order of `QualityReport.findings`."""

CHECKS: dict[str, tuple[str, str, str]] = {
    "missing": ("Required value missing", "completeness", "A required column is empty."),
    "email_format": (
        "E-mail not well formed",
        "validity",
        "The address is not a well-formed e-mail (email-validator, no DNS lookup).",
    ),
    "phone_format": (
        "Phone not a valid number",
        "validity",
        "Not a valid phone number of the customer's country (phonenumbers).",
    ),
    "country_code": (
        "Country not an ISO code",
        "validity",
        "The country is not an ISO 3166 alpha-2 code (DE, US, ...).",
    ),
    "future_date": ("Date in the future", "validity", "A date or time after now (UTC)."),
    "below_minimum": (
        "Negative or below minimum",
        "validity",
        "A number below the smallest value the schema allows (amounts: below 0).",
    ),
    "not_allowed": ("Value not allowed", "validity", "A value outside the column's allowed ones."),
    "duplicate_email": (
        "Shared e-mail address",
        "uniqueness",
        "Customers whose e-mail reaches the same mailbox as another customer's (case, "
        "spaces, Gmail dots and +tags ignored): likely duplicates.",
    ),
    "duplicate_phone": (
        "Shared phone number",
        "uniqueness",
        "Customers whose phone is the same number as another customer's (E.164): likely "
        "duplicates.",
    ),
    "orphan_reference": (
        "Reference points nowhere",
        "integrity",
        "The value names a row that does not exist in the referenced table.",
    ),
    "outlier": (
        "Unusual amount",
        "in_range",
        "An amount outside the far-out IQR fences: below Q1 - 3 x IQR or above Q3 + 3 x IQR.",
    ),
}
"""check -> (label, category, what fails it)."""

OUTLIER_IQR = 3.0
"""Amounts beyond Q1 - k x IQR or Q3 + k x IQR are outliers (Tukey's far-out fences)."""

LIBRARY_ROWS = 50_000
"""Phone numbers the phone check reads at most; above it, an even sample of customers
(every k-th customer id; the share is estimated within about 0.5 percentage point)."""

EMAIL_PATTERN = (
    r"^[A-Za-z0-9]+([._+-][A-Za-z0-9]+)*@([A-Za-z0-9]+(-+[A-Za-z0-9]+)*\.)+[A-Za-z]{2,24}$"
)
"""Plain addresses: well formed whenever their domain is (no need to ask the library)."""

PHONE_TAIL_DIGITS = 7
"""Numbers can only share a phone key when their last digits agree (SQL blocking)."""

_CUSTOMERS = "customers"


class QualityError(CRMError):
    """A data quality request names a table or check that does not exist."""


@dataclass
class Finding:
    """A check on a table (and column) with failing rows."""

    table: str
    column: str
    check: str
    failing: int
    checked: int
    detail: str = ""
    estimated: bool = False

    @property
    def share(self) -> float:
        """Failing share of the rows checked."""
        return self.failing / self.checked if self.checked else 0.0

    @property
    def label(self) -> str:
        """The check in words."""
        return CHECKS[self.check][0]


@dataclass
class TableQuality:
    """The quality of one table: its checks, findings, completeness, freshness and score."""

    table: str
    rows: int
    score: float | None
    categories: dict[str, float | None]
    completeness: dict[str, float]
    findings: list[Finding]
    checks: list[Finding] = field(default_factory=list)
    last_import_at: datetime | None = None
    last_batch_id: int | None = None
    last_record_at: datetime | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able figures of the table."""
        return {
            "table": self.table,
            "rows": self.rows,
            "score": self.score,
            "categories": self.categories,
            "completeness": self.completeness,
            "findings": [_finding_dict(f) for f in self.findings],
            "checks": [_finding_dict(f) for f in self.checks],
            "last_import_at": _iso(self.last_import_at),
            "last_batch_id": self.last_batch_id,
            "last_record_at": _iso(self.last_record_at),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class QualityReport:
    """The quality of the assessed tables at one moment."""

    assessed_at: datetime
    batch_id: int | None
    tables: list[TableQuality]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-able report (what `python -m crm_core quality --json` prints)."""
        return {
            "assessed_at": _iso(self.assessed_at),
            "batch_id": self.batch_id,
            "seconds": round(self.seconds, 3),
            "weights": WEIGHTS,
            "outlier_rule": f"outside Q1 - {OUTLIER_IQR:g} x IQR .. Q3 + {OUTLIER_IQR:g} x IQR",
            "tables": [t.as_dict() for t in self.tables],
        }

    def summary(self) -> list[str]:
        """One line per table: its score and its worst findings, in words."""
        lines = []
        for t in self.tables:
            score = "n/a (empty)" if t.score is None else f"{t.score:5.1f}"
            worst = sorted(t.findings, key=lambda f: -f.share)[:3]
            said = "; ".join(
                f"{f.label} in {f.column}: {f.failing:,} of {f.checked:,}"
                + (" (estimated)" if f.estimated else "")
                for f in worst
            )
            lines.append(
                f"{t.table:<18} {t.rows:>10,} rows  score {score}  {said or 'no findings'}"
            )
        return lines

    def findings(self) -> pd.DataFrame:
        """Every finding: table, column, check, check_label, failing, checked, failing_share,
        detail; the most severe first (SEVERITY: validity and references, then completeness,
        uniqueness, amounts), then the most failing rows."""
        rows = [
            {
                "table": f.table,
                "column": f.column,
                "check": f.check,
                "check_label": f.label,
                "failing": f.failing,
                "checked": f.checked,
                "failing_share": f.share,
                "detail": f.detail,
            }
            for t in self.tables
            for f in t.findings
        ]
        columns = ["table", "column", "check", "check_label", "failing", "checked"]
        frame = pd.DataFrame(rows, columns=[*columns, "failing_share", "detail"])
        rank = {category: i for i, category in enumerate(SEVERITY)}
        frame["_severity"] = [rank.get(CHECKS[c][1], len(rank)) for c in frame["check"]]
        frame = frame.sort_values(
            ["_severity", "failing", "table", "column"], ascending=[True, False, True, True]
        )
        return frame.drop(columns="_severity").reset_index(drop=True)

    def scores(self) -> pd.DataFrame:
        """One row per table: rows, quality_score, each category's passing share, freshness."""
        return pd.DataFrame(
            [
                {
                    "table": t.table,
                    "rows": t.rows,
                    "quality_score": t.score,
                    **{c: t.categories.get(c) for c in CATEGORIES},
                    "findings": len(t.findings),
                    "last_import_at": t.last_import_at,
                    "last_record_at": t.last_record_at,
                }
                for t in self.tables
            ]
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def _finding_dict(f: Finding) -> dict[str, Any]:
    out = asdict(f)
    out["share"] = round(f.share, 6)
    out["label"] = f.label
    return out


# --- the checks --------------------------------------------------------------------------


def quality_tables() -> tuple[str, ...]:
    """The tables that hold data (the importable ones but suppressions)."""
    return tuple(t for t in schema.IMPORTABLE_TABLES if t in schema.DATA_TABLES)


def _check_tables(tables: Iterable[str] | None) -> list[str]:
    known = quality_tables()
    if tables is None:
        return list(known)
    chosen = list(dict.fromkeys(tables))
    for name in chosen:
        if name not in known:
            raise QualityError(
                f"Data quality: there is no data table {name!r}; allowed: {', '.join(known)}. "
                "Fix: name one of them (--table customers)."
            )
    return chosen


def _columns(tbl: sa.Table) -> list[sa.Column]:
    return [c for c in tbl.columns if not c.info.get("bookkeeping")]


def _is_time(col: sa.Column) -> bool:
    return isinstance(col.type, sa.Date | sa.DateTime)


def _future_bound(col: sa.Column, now: datetime) -> Any:
    return (
        now.date()
        if isinstance(col.type, sa.Date) and not isinstance(col.type, sa.DateTime)
        else now
    )


def _is_amount(col: sa.Column) -> bool:
    """Money columns (amounts, prices, spend): the outlier check reads them."""
    return isinstance(col.type, sa.Numeric) and getattr(col.type, "scale", None) == 2


def _sql_conditions(tbl: sa.Table, now: datetime) -> list[tuple[str, str, Any]]:
    """(check, column, where the row fails) of every check SQL decides on its own."""
    out: list[tuple[str, str, Any]] = []
    for col in _columns(tbl):
        if not col.nullable and not col.primary_key:
            out.append(("missing", col.name, col.is_(None)))
        if _is_time(col):
            out.append(("future_date", col.name, col > _future_bound(col, now)))
        if col.info.get("min") is not None:
            out.append(("below_minimum", col.name, col < col.info["min"]))
        if col.info.get("allowed"):
            out.append(("not_allowed", col.name, col.not_in(list(col.info["allowed"]))))
    return out


def _checked_expr(check: str, col: sa.Column) -> Any:
    """How many rows a SQL check looked at (non-missing values; all rows for `missing`)."""
    return sa.func.count() if check == "missing" else sa.func.count(col)


def _freshness(store: Store, tbl: sa.Table) -> datetime | None:
    times = [c for c in _columns(tbl) if isinstance(c.type, sa.DateTime)]
    own = [c for c in times if not c.nullable] or times
    if not own:
        return None
    now = utcnow()
    with store.connect() as conn:
        value = conn.execute(sa.select(sa.func.max(own[0])).where(own[0] <= now)).scalar()
    return None if value is None else pd.Timestamp(value).to_pydatetime()


def _batches(store: Store) -> pd.DataFrame:
    batches = schema.import_batches
    stmt = (
        sa.select(batches.c.batch_id, batches.c.imported_at, batches.c.rows)
        .where(batches.c.undone_at.is_(None))
        .order_by(batches.c.batch_id)
    )
    return store.read_df(stmt)


def _last_import(batches: pd.DataFrame, table: str) -> tuple[datetime | None, int | None]:
    for row in batches.iloc[::-1].itertuples(index=False):
        try:
            rows = json.loads(row.rows or "{}")
        except ValueError:
            continue
        if rows.get(table):
            return pd.Timestamp(row.imported_at).to_pydatetime(), int(row.batch_id)
    return None, None


def _references(store: Store, tbl: sa.Table) -> list[Finding]:
    out = []
    for col in _columns(tbl):
        target = col.info.get("references")
        if not target:
            continue
        ref_table, ref_col = target.split(".")
        parent = schema.table(ref_table)
        where = sa.and_(col.is_not(None), ~sa.exists().where(parent.c[ref_col] == col))
        stmt = sa.select(sa.func.count().filter(where), sa.func.count(col)).select_from(tbl)
        with store.connect() as conn:
            failing, checked = conn.execute(stmt).one()
        out.append(
            Finding(
                tbl.name,
                col.name,
                "orphan_reference",
                int(failing),
                int(checked),
                f"no such {target}",
            )
        )
    return out


def outlier_fences(store: Store, col: sa.Column) -> tuple[float, float] | None:
    """(low, high) fences of an amount column: Q1 - k x IQR and Q3 + k x IQR (OUTLIER_IQR)."""
    stmt = sa.select(
        sa.func.percentile_cont(0.25).within_group(col),
        sa.func.percentile_cont(0.75).within_group(col),
    ).select_from(col.table)
    with store.connect() as conn:
        q1, q3 = conn.execute(stmt).one()
    if q1 is None or q3 is None:
        return None
    q1, q3 = float(q1), float(q3)
    iqr = q3 - q1
    low = q1 - OUTLIER_IQR * iqr
    if col.info.get("min") is not None:  # "outside 0 .. 2,195.94", not "-1,400 .. 2,195.94"
        low = max(low, float(col.info["min"]))
    return low, q3 + OUTLIER_IQR * iqr


def _outlier_where(col: sa.Column, fences: tuple[float, float]) -> Any:
    return sa.or_(col < fences[0], col > fences[1])


def _outliers(store: Store, tbl: sa.Table) -> list[Finding]:
    out = []
    for col in _columns(tbl):
        if not _is_amount(col):
            continue
        fences = outlier_fences(store, col)
        if fences is None:
            continue
        stmt = sa.select(
            sa.func.count().filter(_outlier_where(col, fences)), sa.func.count(col)
        ).select_from(tbl)
        with store.connect() as conn:
            failing, checked = conn.execute(stmt).one()
        detail = f"outside {fences[0]:,.2f} .. {fences[1]:,.2f}"
        out.append(Finding(tbl.name, col.name, "outlier", int(failing), int(checked), detail))
    return out


# --- customer checks that need a library ---------------------------------------------------


def _email_plain(col: sa.Column) -> Any:
    local_len = sa.func.length(sa.func.split_part(col, "@", 1))
    return sa.and_(col.regexp_match(EMAIL_PATTERN), local_len <= 64, sa.func.length(col) <= 254)


def _bad_domains(store: Store) -> list[str]:
    """Domains of plain addresses that email-validator rejects (e.g. reserved names)."""
    c = schema.customers.c
    domain = sa.func.split_part(c.email, "@", 2)
    stmt = sa.select(domain.label("domain")).where(_email_plain(c.email)).distinct()
    domains = store.read_df(stmt)["domain"]
    if domains.empty:
        return []
    ok = contacts.email_valid("x@" + domains.astype(str))
    return sorted(domains[~ok.fillna(False).astype(bool)].astype(str))


def _email_offenders(
    store: Store, limit: int | None = None, size: int = 50_000, *, ids: bool = True
) -> tuple[int, list[int], int]:
    """(e-mails not well formed, ids of their customers (when `ids`), e-mails checked);
    exact. Plain addresses with a rejected domain are counted in SQL; only the addresses
    that are not plain go through email-validator."""
    c = schema.customers.c
    bad_domains = _bad_domains(store)
    domain = sa.func.split_part(c.email, "@", 2)
    plain = _email_plain(c.email)
    plain_bad = sa.and_(plain, domain.in_(bad_domains)) if bad_domains else sa.false()
    odd = sa.and_(c.email.is_not(None), ~plain)
    with store.connect() as conn:
        counts = sa.select(sa.func.count(c.email), sa.func.count().filter(plain_bad))
        checked, failing = (int(v) for v in conn.execute(counts).one())
    if not ids:
        for chunk in _chunks(store, sa.select(c.customer_id, c.email).where(odd), size):
            failing += int((~contacts.email_valid(chunk["email"]).fillna(True)).sum())
        return failing, [], checked
    found: list[int] = []
    stmt = sa.select(c.customer_id, c.email, plain_bad.label("known")).where(sa.or_(odd, plain_bad))
    for chunk in _chunks(store, stmt, size):
        known = chunk["known"].fillna(False).astype(bool)
        valid = contacts.email_valid(chunk.loc[~known, "email"]).fillna(True).astype(bool)
        bad = known.copy()
        bad.loc[~known] = ~valid
        found += chunk.loc[bad, "customer_id"].astype(int).tolist()
        if limit is not None and len(found) >= limit:
            break
    return len(found), found, checked


def _chunks(store: Store, stmt: Any, size: int = 50_000) -> Iterable[pd.DataFrame]:
    """The rows of `stmt` in key order, `size` at a time (keyset pagination on customer_id)."""
    c = schema.customers.c
    last = None
    while True:
        page = stmt.order_by(c.customer_id).limit(size)
        if last is not None:
            page = page.where(c.customer_id > last)
        frame = store.read_df(page)
        if frame.empty:
            return
        yield frame
        if len(frame) < size:
            return
        last = int(frame["customer_id"].iloc[-1])


def _phone_offenders(
    store: Store, limit: int | None = None, sample: bool = True, size: int = 50_000
) -> tuple[list[int], int, int, bool]:
    """(ids of customers whose phone is no valid number, phones checked, phones in all,
    estimated): every phone up to LIBRARY_ROWS, else every k-th customer id (`sample`)."""
    c = schema.customers.c
    with store.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count(c.phone))).scalar())
    stmt = sa.select(c.customer_id, c.phone, c.country).where(c.phone.is_not(None))
    step = math.ceil(total / LIBRARY_ROWS) if sample and total > LIBRARY_ROWS else 1
    if step > 1:
        stmt = stmt.where(c.customer_id % step == 0)
    ids: list[int] = []
    checked = 0
    for chunk in _chunks(store, stmt, size):
        checked += len(chunk)
        valid = contacts.phone_valid(chunk["phone"], chunk["country"])
        ids += chunk.loc[~valid.fillna(True).astype(bool), "customer_id"].astype(int).tolist()
        if limit is not None and len(ids) >= limit:
            break
    return ids, checked, total, step > 1


def _email_block(col: sa.Column) -> Any:
    local = sa.func.split_part(sa.func.lower(sa.func.regexp_replace(col, r"\s", "", "g")), "@", 1)
    return sa.func.regexp_replace(sa.func.split_part(local, "+", 1), r"\.", "", "g")


def _phone_block(col: sa.Column) -> Any:
    digits = sa.func.regexp_replace(col, "[^0-9]", "", "g")
    return sa.func.right(digits, PHONE_TAIL_DIGITS)


def duplicate_groups(store: Store, kind: str) -> pd.DataFrame:
    """Customers who share an e-mail (kind "email") or phone ("phone") key with another:
    customer_id and group (a number per shared key), ordered by group."""
    c = schema.customers.c
    col = c.email if kind == "email" else c.phone
    block = (_email_block if kind == "email" else _phone_block)(col)
    live = sa.and_(col.is_not(None), c.erased_at.is_(None))
    shared = sa.select(block).where(live).group_by(block).having(sa.func.count() > 1)
    stmt = sa.select(c.customer_id, col.label("value"), c.country).where(live, block.in_(shared))
    frame = store.read_df(stmt)
    if frame.empty:
        return pd.DataFrame(
            {"customer_id": pd.Series(dtype="int64"), "group": pd.Series(dtype="int64")}
        )
    if kind == "email":
        keys = contacts.email_key(frame["value"])
    else:
        keys = contacts.phone_key(frame["value"], frame["country"])
    frame = frame.assign(key=keys).dropna(subset=["key"])
    sizes = frame.groupby("key")["customer_id"].transform("size")
    frame = frame[sizes > 1]
    frame = frame.assign(group=frame.groupby("key", sort=True).ngroup())
    return (
        frame[["customer_id", "group"]]
        .sort_values(["group", "customer_id"])
        .astype("int64")
        .reset_index(drop=True)
    )


@functools.cache
def _country_codes() -> frozenset[str]:
    import pycountry

    return frozenset(country.alpha_2 for country in pycountry.countries)


def bad_countries(store: Store) -> pd.DataFrame:
    """Country values that are no ISO 3166 alpha-2 code, with their customers."""
    c = schema.customers.c
    stmt = (
        sa.select(c.country, sa.func.count().label("customers"))
        .where(c.country.is_not(None))
        .group_by(c.country)
    )
    frame = store.read_df(stmt)
    codes = _country_codes()
    bad = ~frame["country"].astype(str).isin(codes)
    return frame[bad].sort_values("customers", ascending=False).reset_index(drop=True)


def _customer_checks(store: Store, rows: int) -> list[Finding]:
    c = schema.customers.c
    out = []
    failing, _, checked = _email_offenders(store, ids=False)
    out.append(Finding(_CUSTOMERS, "email", "email_format", failing, checked))
    ids, checked, total, estimated = _phone_offenders(store)
    failing = round(len(ids) * total / checked) if estimated and checked else len(ids)
    detail = f"estimated from {checked:,} of {total:,} numbers" if estimated else ""
    out.append(Finding(_CUSTOMERS, "phone", "phone_format", failing, total, detail, estimated))
    bad = bad_countries(store)
    with store.connect() as conn:
        with_country = int(conn.execute(sa.select(sa.func.count(c.country))).scalar())
    shown = ", ".join(f"{v!r}" for v in bad["country"].head(5))
    out.append(
        Finding(
            _CUSTOMERS,
            "country",
            "country_code",
            int(bad["customers"].sum()),
            with_country,
            f"values: {shown}" if shown else "",
        )
    )
    live = sa.select(sa.func.count()).where(c.erased_at.is_(None))
    with store.connect() as conn:
        live_rows = int(conn.execute(live).scalar())
    for kind in ("email", "phone"):
        groups = duplicate_groups(store, kind)
        n_groups = int(groups["group"].nunique())
        what = "addresses" if kind == "email" else "numbers"
        detail = f"{len(groups):,} customers share {n_groups:,} {what}"
        out.append(Finding(_CUSTOMERS, kind, f"duplicate_{kind}", len(groups), live_rows, detail))
    del rows
    return out


# --- assessing ---------------------------------------------------------------------------


def _assess_table(store: Store, name: str, now: datetime, batches: pd.DataFrame) -> TableQuality:
    started = time.perf_counter()
    tbl = schema.table(name)
    cols = _columns(tbl)
    conds = _sql_conditions(tbl, now)
    exprs = [sa.func.count().label("rows")]
    exprs += [sa.func.count(col).label(f"n{i}") for i, col in enumerate(cols)]
    exprs += [sa.func.count().filter(where).label(f"f{i}") for i, (_, _, where) in enumerate(conds)]
    exprs += [
        _checked_expr(check, tbl.c[column]).label(f"k{i}")
        for i, (check, column, _) in enumerate(conds)
    ]
    with store.connect() as conn:
        got = conn.execute(sa.select(*exprs).select_from(tbl)).mappings().one()
    rows = int(got["rows"])
    completeness = {
        col.name: (int(got[f"n{i}"]) / rows if rows else 1.0) for i, col in enumerate(cols)
    }
    checks = [
        Finding(name, column, check, int(got[f"f{i}"]), int(got[f"k{i}"]))
        for i, (check, column, _) in enumerate(conds)
    ]
    for finding in checks:
        if finding.check == "future_date" and finding.failing:
            finding.detail = f"after {now:%Y-%m-%d %H:%M} UTC"
        if finding.check == "below_minimum":
            finding.detail = f"below {tbl.c[finding.column].info['min']}"
    if rows:
        checks += _references(store, tbl)
        checks += _outliers(store, tbl)
        if name == _CUSTOMERS:
            checks += _customer_checks(store, rows)
    last_import_at, last_batch = _last_import(batches, name)
    categories = _categories(checks)
    return TableQuality(
        table=name,
        rows=rows,
        score=_score(categories) if rows else None,
        categories=categories,
        completeness=completeness,
        findings=[f for f in checks if f.failing],
        checks=checks,
        last_import_at=last_import_at,
        last_batch_id=last_batch,
        last_record_at=_freshness(store, tbl) if rows else None,
        seconds=time.perf_counter() - started,
    )


def _categories(checks: list[Finding]) -> dict[str, float | None]:
    """Passing share per category: 1 - failing / checked over the category's checks."""
    out: dict[str, float | None] = {}
    for category in CATEGORIES:
        mine = [f for f in checks if CHECKS[f.check][1] == category]
        checked = sum(f.checked for f in mine)
        failing = sum(min(f.failing, f.checked) for f in mine)
        out[category] = None if not mine else (1.0 - failing / checked if checked else 1.0)
    return out


def _score(categories: dict[str, float | None]) -> float:
    """Weighted mean of the categories' passing shares, 0-100 (WEIGHTS)."""
    present = {c: v for c, v in categories.items() if v is not None}
    if not present:
        return 100.0
    total = sum(WEIGHTS[c] for c in present)
    return round(100.0 * sum(WEIGHTS[c] * v for c, v in present.items()) / total, 1)


def assess(store: Store, tables: Iterable[str] | None = None) -> QualityReport:
    """Measure the quality of `tables` (default: every data table)."""
    chosen = _check_tables(tables)
    store.require_tables(*chosen, "import_batches")
    started = time.perf_counter()
    now = utcnow()
    batches = _batches(store)
    results = [_assess_table(store, name, now, batches) for name in chosen]
    batch_id = int(batches["batch_id"].iloc[-1]) if not batches.empty else None
    return QualityReport(now, batch_id, results, time.perf_counter() - started)


# --- trend -------------------------------------------------------------------------------


def record(
    store: Store, report: QualityReport | None = None, *, tables: Iterable[str] | None = None
) -> QualityReport:
    """Store the scores of `report` (assessed now if not given) in quality_scores."""
    report = report or assess(store, tables)
    rows = [
        {
            "recorded_at": report.assessed_at,
            "table_name": t.table,
            "batch_id": report.batch_id,
            "rows": t.rows,
            "score": t.score if t.score is not None else 100.0,
            "checks": json.dumps(
                {
                    "categories": t.categories,
                    "checks": [_finding_dict(f) for f in t.checks],
                },
                default=str,
            ),
        }
        for t in report.tables
    ]
    if rows:
        with store.begin() as conn:
            conn.execute(schema.quality_scores.insert(), rows)
    return report


def trend(store: Store, tables: Iterable[str] | None = None) -> pd.DataFrame:
    """Recorded scores, oldest first: recorded_at, table, batch_id, rows, quality_score."""
    q = schema.quality_scores.c
    stmt = sa.select(
        q.recorded_at,
        q.table_name.label("table"),
        q.batch_id,
        q.rows,
        q.score.label("quality_score"),
    ).order_by(q.recorded_at, q.table_name)
    if tables is not None:
        stmt = stmt.where(q.table_name.in_(_check_tables(tables)))
    return store.read_df(stmt)


def record_if_new_import(store: Store) -> bool:
    """Record every table's score when the latest import batch has none yet (the trend's
    point per import, taken lazily); True when it recorded."""
    batches = _batches(store)
    if batches.empty:
        return False
    latest = int(batches["batch_id"].iloc[-1])
    q = schema.quality_scores.c
    with store.connect() as conn:
        seen = conn.execute(sa.select(sa.func.count()).where(q.batch_id == latest)).scalar()
    if seen:
        return False
    record(store)
    return True


# --- drilling ----------------------------------------------------------------------------


def finding_rows(
    store: Store,
    table: str,
    check: str,
    column: str,
    *,
    limit: int = 500,
    role: str = "admin",
) -> pd.DataFrame:
    """Up to `limit` rows of `table` that fail `check` on `column`, in key order, personal
    columns masked unless `role` may see personal data (privacy.mask_pii)."""
    (name,) = _check_tables([table])
    tbl = schema.table(name)
    if check not in CHECKS:
        raise QualityError(
            f"Data quality: there is no check {check!r}; allowed: {', '.join(CHECKS)}. "
            "Fix: pick a finding from the report."
        )
    if column not in tbl.c:
        names = ", ".join(c.name for c in _columns(tbl))
        raise QualityError(
            f"Data quality: {name} has no column {column!r}; allowed: {names}. "
            "Fix: pick a finding from the report."
        )
    col = tbl.c[column]
    key = [tbl.c[k] for k in schema.primary_key(name)]
    stmt = sa.select(*_columns(tbl))
    order: list[Any] = list(key)
    if check in ("email_format", "phone_format", "duplicate_email", "duplicate_phone"):
        if name != _CUSTOMERS:
            raise QualityError(f"Data quality: {check} is a check of customers, not {name}.")
        ids = _library_ids(store, check, limit)
        if not ids:
            return store.read_df(stmt.where(sa.false()))
        stmt = stmt.where(tbl.c.customer_id.in_(ids))
        if check.startswith("duplicate_"):
            position = sa.case({cid: i for i, cid in enumerate(ids)}, value=tbl.c.customer_id)
            order = [position]
    else:
        stmt = stmt.where(_drill_where(store, tbl, check, col))
    frame = store.read_df(stmt.order_by(*order).limit(limit))
    masked = privacy.mask_pii(frame, role)
    if privacy.may_see_pii(role):
        return masked
    for column in masked.columns:  # a masked date keeps its year, as text: "2003", not 2,003
        if column in privacy.PII_COLUMNS and _is_time(tbl.c[column]):
            years = pd.to_datetime(frame[column], errors="coerce").dt.year
            masked[column] = years.astype("Int64").astype("string")
    return masked


def _library_ids(store: Store, check: str, limit: int) -> list[int]:
    if check == "email_format":
        return _email_offenders(store, limit, size=max(1_000, 10 * limit))[1][:limit]
    if check == "phone_format":
        return _phone_offenders(store, limit, sample=False, size=max(1_000, 4 * limit))[0][:limit]
    groups = duplicate_groups(store, check.removeprefix("duplicate_"))
    return groups["customer_id"].head(limit).astype(int).tolist()


def _drill_where(store: Store, tbl: sa.Table, check: str, col: sa.Column) -> Any:
    if check == "orphan_reference":
        target = col.info.get("references")
        if not target:
            raise QualityError(f"Data quality: {tbl.name}.{col.name} references nothing.")
        ref_table, ref_col = target.split(".")
        parent = schema.table(ref_table)
        return sa.and_(col.is_not(None), ~sa.exists().where(parent.c[ref_col] == col))
    if check == "outlier":
        fences = outlier_fences(store, col)
        return sa.false() if fences is None else _outlier_where(col, fences)
    if check == "country_code":
        values = bad_countries(store)["country"].astype(str).tolist()
        return col.in_(values) if values else sa.false()
    for name, column, where in _sql_conditions(tbl, utcnow()):
        if name == check and column == col.name:
            return where
    raise QualityError(
        f"Data quality: the check {check!r} does not apply to {tbl.name}.{col.name}. "
        "Fix: pick a finding from the report."
    )


# --- checks of rows being imported ----------------------------------------------------------

IMPORT_CHECKS = ("future_date", "email_format", "phone_format", "country_code")
"""The validity checks an import runs on its rows: they load, but are warned about."""


def _emails_invalid(email: pd.Series) -> pd.Series:
    """Whether each e-mail is not well formed; plain addresses are judged by their domain,
    so email-validator reads only the distinct domains and the odd addresses (Arrow's
    regular expressions do the rest, about 0.5 s per million addresses)."""
    text = pa.array(email.astype("object").where(email.notna(), None), type=pa.string())
    parts = pc.extract_regex(text, r"^(?P<local>[^@]*)@(?P<domain>.*)$")
    local, domain = pc.struct_field(parts, "local"), pc.struct_field(parts, "domain")
    plain = pc.and_kleene(
        pc.match_substring_regex(text, EMAIL_PATTERN),
        pc.and_kleene(
            pc.less_equal(pc.utf8_length(local), 64), pc.less_equal(pc.utf8_length(text), 254)
        ),
    )
    plain = plain.fill_null(False).to_numpy(zero_copy_only=False)
    bad = np.zeros(len(email), dtype=bool)
    lower = pc.utf8_lower(domain).to_numpy(zero_copy_only=False)
    domains = pd.unique(lower[plain])
    if len(domains):
        valid = contacts.email_valid(pd.Series(["x@" + d for d in domains])).fillna(True)
        refused = set(domains[~valid.astype(bool).to_numpy()])
        bad[plain] = pd.Series(lower[plain]).isin(refused).to_numpy()
    odd = email.notna().to_numpy() & ~plain
    if odd.any():
        bad[odd] = ~contacts.email_valid(email[odd]).fillna(True).astype(bool).to_numpy()
    return pd.Series(bad, index=email.index)


def import_checks(
    table_name: str, frame: pd.DataFrame, *, now: datetime, phones: int | None = None
) -> list[tuple[str, str, pd.Series]]:
    """(check, column, rows that fail) of IMPORT_CHECKS on typed rows about to be imported.

    Only what the Data quality view would count as invalid: dates after `now`, e-mails
    and phones that are not well formed, countries that are no ISO code. Phones are read
    by phonenumbers for the first `phones` rows only (None: all), as it is slow at scale.
    """
    tbl = schema.metadata.tables[table_name]
    out: list[tuple[str, str, pd.Series]] = []
    for col in _columns(tbl):
        if col.name not in frame.columns or not _is_time(col):
            continue
        bound = pd.Timestamp(_future_bound(col, now))
        values = pd.to_datetime(frame[col.name], errors="coerce")
        out.append(("future_date", col.name, (values > bound).fillna(False).astype(bool)))
    if table_name != _CUSTOMERS:
        return out
    if "email" in frame.columns:
        out.append(("email_format", "email", _emails_invalid(frame["email"])))
    if "phone" in frame.columns:
        shown = frame if phones is None else frame.head(max(phones, 0))
        country = shown["country"] if "country" in shown.columns else None
        valid = contacts.phone_valid(shown["phone"], country).fillna(True).astype(bool)
        bad = pd.Series(False, index=frame.index)
        bad.loc[shown.index] = ~valid.to_numpy()
        out.append(("phone_format", "phone", bad))
    if "country" in frame.columns:
        country = frame["country"].astype("string")
        bad = country.notna() & ~country.isin(_country_codes())
        out.append(("country_code", "country", bad.fillna(False).astype(bool)))
    return out

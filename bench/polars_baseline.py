"""The polars baseline: the same figures as crm_core and the pandas baseline, with polars.

Polars is the dataframe library a dashboard written today would likely use. Like the pandas
baseline (bench/baseline.py) it reads each table from its CSV file once (typed: the store's
declared column types, dates parsed), keeps the frames in memory and computes every figure
with polars expressions; it reads nothing from the store and calls no crm_core code besides
the business rules that are data (RFM segment table, NPS/CSAT thresholds, the 90-day
window). Its import is the idiomatic polars path into DuckDB: `pl.read_csv` with the
declared types, then `INSERT INTO orders SELECT * FROM frame` through Arrow into a copy of
the same target store ours imports into (customers and campaigns present; DuckDB checks the
primary key, NOT NULL and the column types; the store declares no foreign keys, ingest checks
references itself, so this baseline does not).

The harness runs it in a child process of its own, after the pandas child has ended: `load`
once, then `results` (checked against crm_core, same tolerances as pandas') and
`time_steps`; the frames stay loaded in the child between calls.
"""

from __future__ import annotations

import shutil
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl
import sqlalchemy as sa

from bench.baseline import (
    COMPARED_360,
    CSV_TABLES,
    CUSTOMER_COLUMNS,
    _kpi_values,
    peak_rss_bytes,
)
from crm_core import schema
from crm_core.analytics.rfm import RFM_SEGMENTS
from crm_core.features import RECENT_DAYS
from crm_core.metrics import CSAT_SATISFIED_MIN, NPS_DETRACTOR_MAX, NPS_PROMOTER_MIN

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def _dtype(column: sa.Column) -> Any:
    """The polars type of a declared column (money as Float64, as in the pandas baseline)."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return pl.Boolean
    if isinstance(kind, sa.DateTime):
        return pl.Datetime("us")
    if isinstance(kind, sa.Date):
        return pl.Date
    if isinstance(kind, sa.Integer):
        return pl.Int64
    if isinstance(kind, (sa.Numeric, sa.Float)):  # not one class in SQLAlchemy 2.1
        return pl.Float64
    return pl.String


TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S%.f"
DATE_FORMAT = "%Y-%m-%d"
"""How the CSV files write times and dates (DuckDB's COPY; fractions of a second optional)."""


def table_schema(name: str) -> dict[str, Any]:
    """Column name -> polars type of a store table, from its declaration."""
    return {c.name: _dtype(c) for c in schema.metadata.tables[name].columns}


def _read_schema(name: str) -> dict[str, Any]:
    """The types to read with: dates and times as text, parsed afterwards with their format
    (several times faster in polars than letting the reader infer each value's format)."""
    return {
        c: pl.String if t in (pl.Date, pl.Datetime("us")) else t
        for c, t in table_schema(name).items()
    }


def _parse_dates(frame: FrameT, name: str, columns: list[str]) -> FrameT:
    """Dates and times parsed with their known format (strict: a bad value raises)."""
    parsed = []
    for column, kind in table_schema(name).items():
        if column not in columns:
            continue
        if kind == pl.Datetime("us"):
            parsed.append(pl.col(column).str.to_datetime(TIMESTAMP_FORMAT, time_unit="us"))
        elif kind == pl.Date:
            parsed.append(pl.col(column).str.to_date(DATE_FORMAT))
    return frame.with_columns(parsed)


def read_csv_table(path: Path, name: str) -> pl.DataFrame:
    """One table from its CSV file with the declared types (a typed dashboard load step)."""
    frame = pl.read_csv(path, schema_overrides=_read_schema(name))
    return _parse_dates(frame, name, frame.columns)


def scan_csv_table(path: Path, name: str) -> pl.LazyFrame:
    """The same as a lazy scan (a query then reads only the columns it needs)."""
    scan = pl.scan_csv(path, schema_overrides=_read_schema(name))
    return _parse_dates(scan, name, scan.collect_schema().names())


class PolarsCRM:
    """Every table as a polars DataFrame in memory (or a lazy CSV scan), and the figures
    computed over them."""

    def __init__(self, frames: dict[str, pl.DataFrame | pl.LazyFrame]) -> None:
        self.frames = frames

    @classmethod
    def from_csv(cls, csv_dir: Path) -> PolarsCRM:
        """Read every table the figures need from `csv_dir`/<table>.csv into memory."""
        return cls({n: read_csv_table(csv_dir / f"{n}.csv", n) for n in CSV_TABLES})

    @classmethod
    def scan_csv(cls, csv_dir: Path) -> PolarsCRM:
        """Lazy scans of the same files (polars then reads only the columns a query needs)."""
        return cls({n: scan_csv_table(csv_dir / f"{n}.csv", n) for n in CSV_TABLES})

    def _lazy(self, name: str) -> pl.LazyFrame:
        return self.frames[name].lazy()

    # --- KPI overview ----------------------------------------------------------------------

    def kpis(self, start: date, end: date) -> dict[str, tuple[float | None, float | None]]:
        """The overview's KPIs for [start, end] and the previous period: name -> (now, before)."""
        days = (end - start).days + 1
        end_ts = datetime.combine(end + timedelta(days=1), datetime.min.time())
        starts = [
            datetime.combine(start - timedelta(days=days * i), datetime.min.time())
            for i in range(3)
        ]
        bounds = [(starts[0], end_ts), (starts[1], starts[0]), (starts[2], starts[1])]
        o = self.frames["orders"].filter(
            (pl.col("status") == "completed") & (pl.col("ordered_at") < end_ts)
        )
        first_at = o.group_by("customer_id").agg(pl.col("ordered_at").min())["ordered_at"]
        periods = []
        for lo, hi in bounds:
            inside = o.filter(pl.col("ordered_at").is_between(lo, hi, closed="left"))
            per_customer = inside.group_by("customer_id").len()
            periods.append(
                {
                    "revenue": float(inside["amount"].sum()),
                    "orders": float(inside.height),
                    "buyers": per_customer["customer_id"],
                    "active": float(per_customer.height),
                    "repeat": float((per_customer["len"] >= 2).sum()),
                    "new": float(first_at.is_between(lo, hi, closed="left").sum()),
                }
            )
        for now, before in zip(periods[:2], periods[1:], strict=True):
            now["active_before"] = before["active"]
            now["retained"] = float(now["buyers"].is_in(before["buyers"].implode()).sum())
        s = self.frames["survey_responses"]
        for (lo, hi), figures in zip(bounds[:2], periods[:2], strict=True):
            inside = s.filter(pl.col("answered_at").is_between(lo, hi, closed="left"))
            nps = inside.filter(pl.col("survey") == "nps")["score"]
            csat = inside.filter(pl.col("survey") == "csat")["score"]
            figures["nps_n"] = float(nps.len())
            figures["promoters"] = float((nps >= NPS_PROMOTER_MIN).sum())
            figures["detractors"] = float((nps <= NPS_DETRACTOR_MAX).sum())
            figures["csat_n"] = float(csat.len())
            figures["satisfied"] = float((csat >= CSAT_SATISFIED_MIN).sum())
        now, before = (_kpi_values(p) for p in periods[:2])
        return {name: (now[name], before[name]) for name in now}

    # --- customer 360 ----------------------------------------------------------------------

    def as_of(self) -> date:
        """Day of the last completed order."""
        last = (
            self._lazy("orders")
            .filter(pl.col("status") == "completed")
            .select(pl.col("ordered_at").max())
            .collect()
            .item()
        )
        return last.date()

    def customer_360(self) -> pl.DataFrame:
        """One row per customer: attributes, order aggregates, RFM, surveys, tickets, contacts,
        scores (everything crm_core's customer_360 holds except saved k-means clusters); one
        lazy query, collected at the end."""
        as_of = self.as_of()
        end = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
        recent = end - timedelta(days=RECENT_DAYS)
        o = self._lazy("orders")
        is_recent = pl.col("ordered_at") >= recent
        ords = (
            o.filter((pl.col("status") == "completed") & (pl.col("ordered_at") < end))
            .group_by("customer_id")
            .agg(
                first_order_at=pl.col("ordered_at").min(),
                last_order_at=pl.col("ordered_at").max(),
                frequency=pl.len(),
                monetary=pl.col("amount").sum(),
                orders_90d=is_recent.sum(),
                revenue_90d=pl.col("amount").filter(is_recent).sum(),
            )
            # Float sums of cents differ in the last bit with the order of the terms; rounded
            # to cents, equal totals are equal again (they tie in the M score, as in the store).
            .with_columns(
                pl.col("monetary").round(2),
                pl.col("revenue_90d").round(2),
                recency_days=(pl.lit(as_of) - pl.col("last_order_at").dt.date()).dt.total_days(),
            )
        )
        ords = _with_rfm(ords)

        s = self._lazy("survey_responses").filter(pl.col("answered_at") < end)
        nps = (
            s.filter(pl.col("survey") == "nps")
            .sort(["customer_id", "answered_at", "response_id"], descending=[False, True, False])
            .unique("customer_id", keep="first", maintain_order=True)
            .select("customer_id", nps_latest=pl.col("score"))
        )
        csat = (
            s.filter(pl.col("survey") == "csat")
            .group_by("customer_id")
            .agg(csat_avg=pl.col("score").mean())
        )
        open_tickets = (
            self._lazy("support_tickets")
            .filter(pl.col("status").fill_null("open") != "closed")
            .group_by("customer_id")
            .agg(open_tickets=pl.len())
        )
        contacts = (
            self._lazy("campaign_contacts")
            .filter(pl.col("test_group") == "treatment")
            .group_by("customer_id")
            .agg(
                campaigns_received=pl.len(),
                campaign_opens=pl.col("opened_at").count(),
                campaign_clicks=pl.col("clicked_at").count(),
            )
        )
        scores = self._lazy("customer_scores").select(
            "customer_id", "clv", "p_alive", "churn_risk", "churn_band"
        )
        out = self._lazy("customers").select("customer_id", *CUSTOMER_COLUMNS)
        for part in (ords, nps, csat, open_tickets, contacts, scores):
            out = out.join(part, on="customer_id", how="left")
        counts = (
            "frequency",
            "monetary",
            "orders_90d",
            "revenue_90d",
            "open_tickets",
            "campaigns_received",
            "campaign_opens",
            "campaign_clicks",
        )
        return (
            out.with_columns(pl.col(c).fill_null(0) for c in counts)
            .with_columns(
                # Unrounded; the store keeps it as DECIMAL(12,2), the check allows half a cent.
                avg_order_value=pl.when(pl.col("frequency") > 0).then(
                    pl.col("monetary") / pl.col("frequency")
                ),
                tenure_days=(pl.lit(as_of) - pl.col("signup_at").dt.date()).dt.total_days(),
                as_of=pl.lit(as_of),
            )
            .collect()
        )


def _quintile(column: str, higher_is_better: bool) -> pl.Expr:
    """Tie-aware 1-5 quintile score: 1 + floor(5 * (lowest tied rank - 1) / n)."""
    rank = pl.col(column).rank(method="min", descending=not higher_is_better)
    return (1 + ((rank - 1) * 5.0 / pl.len()).floor()).cast(pl.Int64)


def _with_rfm(ords: pl.LazyFrame) -> pl.LazyFrame:
    """r/f/m scores, the 3-digit rfm_score and the first matching RFM segment per buyer."""
    scored = ords.with_columns(
        r_score=_quintile("recency_days", higher_is_better=False),
        f_score=_quintile("frequency", higher_is_better=True),
        m_score=_quintile("monetary", higher_is_better=True),
    )
    r, f = pl.col("r_score"), pl.col("f_score")
    first, *rest = RFM_SEGMENTS
    segment: Any = pl.when(r.is_between(*first.r) & f.is_between(*first.f)).then(pl.lit(first.name))
    for rule in rest:
        segment = segment.when(r.is_between(*rule.r) & f.is_between(*rule.f)).then(
            pl.lit(rule.name)
        )
    return scored.with_columns(
        rfm_score=pl.concat_str(
            [pl.col(c).cast(pl.String) for c in ("r_score", "f_score", "m_score")]
        ),
        rfm_segment=segment.otherwise(pl.lit(None, dtype=pl.String)),
    )


# --- import --------------------------------------------------------------------------------


def read_orders_csv(path: Path) -> pl.DataFrame:
    """The import's read step: the whole orders CSV, typed (a bad value raises)."""
    return read_csv_table(path, "orders")


def insert_orders(frame: pl.DataFrame, store_file: Path) -> None:
    """The import's write step: the frame into the store's orders table through Arrow, in one
    transaction (DuckDB checks the primary key, NOT NULL and the types)."""
    conn = duckdb.connect(str(store_file))
    try:
        conn.execute("SET enable_progress_bar = false")
        arrow = frame.to_arrow()  # noqa: F841 (DuckDB reads the local Arrow table by name)
        columns = ", ".join(frame.columns)
        conn.execute("BEGIN")
        conn.execute(f"INSERT INTO orders ({columns}) SELECT {columns} FROM arrow")  # noqa: S608
        conn.execute("COMMIT")
    finally:
        conn.close()


def import_orders(orders_csv: Path, store_file: Path) -> int:
    """Read the orders CSV and insert it into `store_file`; rows."""
    frame = read_orders_csv(orders_csv)
    insert_orders(frame, store_file)
    return frame.height


# --- the child process's entry points --------------------------------------------------------

_STATE: dict[str, Any] = {}


def load(csv_dir: str) -> dict[str, Any]:
    """Read every CSV into memory (kept for the calls that follow); rows and seconds."""
    started = time.perf_counter()
    crm = PolarsCRM.from_csv(Path(csv_dir))
    _STATE["crm"] = crm
    return {
        "seconds": time.perf_counter() - started,
        "rows": {name: frame.height for name, frame in crm.frames.items()},
    }


def results(start: date, end: date, out_360: str) -> dict[str, Any]:
    """The figures the harness checks against crm_core; the 360 frame goes to `out_360`."""
    crm: PolarsCRM = _STATE["crm"]
    frame = crm.customer_360()
    frame.select("customer_id", *COMPARED_360).write_parquet(out_360)
    orders = crm.frames["orders"]
    return {
        "kpis": crm.kpis(start, end),
        "as_of": crm.as_of(),
        "customers_360": frame.height,
        "orders_rows": orders.height,
        "orders_amount": float(orders["amount"].sum()),
    }


def _timed(fn: Any, *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def time_steps(
    repeats: int, start: date, end: date, orders_csv: str, import_template: str, workdir: str
) -> dict[str, Any]:
    """Time each step `repeats` times (after one warm-up for the warm steps).

    The import runs on a fresh copy of `import_template` (the target store without orders)
    each time; the copy is not timed. Its result is checked: the rows and total amount the
    store then holds equal the frame's.
    """
    crm: PolarsCRM = _STATE["crm"]
    out: dict[str, Any] = {}
    crm.kpis(start, end)  # warm-up, as ours gets one
    out["kpis"] = [_timed(crm.kpis, start, end) for _ in range(repeats)]
    out["refresh_360_compute"] = [_timed(crm.customer_360) for _ in range(repeats)]
    # A refresh follows new data: a polars dashboard re-reads its CSV files, then groups;
    # one lazy query over the scans, so polars reads only the columns the figures need.
    csv_dir = Path(orders_csv).parent
    out["refresh_360"] = [
        _timed(lambda: PolarsCRM.scan_csv(csv_dir).customer_360()) for _ in range(repeats)
    ]
    target = Path(workdir) / "polars_import.duckdb"
    seconds, rows = [], 0
    for _ in range(repeats):
        target.unlink(missing_ok=True)
        shutil.copyfile(import_template, target)
        started = time.perf_counter()
        rows = import_orders(Path(orders_csv), target)
        seconds.append(time.perf_counter() - started)
    conn = duckdb.connect(str(target), read_only=True)
    try:
        stored = conn.execute("SELECT count(*), sum(amount) FROM orders").fetchone()
    finally:
        conn.close()
    target.unlink(missing_ok=True)
    out["import"] = seconds
    out["import_detail"] = {"rows": rows, "stored": (int(stored[0]), float(stored[1] or 0))}
    out["peak_rss"] = peak_rss_bytes()
    return out

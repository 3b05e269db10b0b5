"""The plain-pandas baseline: the same figures as crm_core, from CSV files, with groupby.

This is how dashboards like this one are usually written: read each table from a CSV file
into a DataFrame once, keep the frames in memory, and compute every figure with pandas.
It reads nothing from the store and calls no crm_core code; it borrows only the business
rules that are data (RFM segment table, NPS/CSAT thresholds, the 90-day window), so a
change of rule changes both sides. Import is `pd.read_csv` + `DataFrame.to_sql` through
SQLAlchemy.

The harness runs it in a child process of its own (see `bench.harness`): `load` once, then
`results` (checked against crm_core) and `time_steps`; the frames stay loaded in the child
between calls, as in a dashboard process that caches them.
"""

from __future__ import annotations

import resource
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crm_core import features, schema
from crm_core.analytics.rfm import RFM_SEGMENTS
from crm_core.features import RECENT_DAYS
from crm_core.metrics import CSAT_SATISFIED_MIN, NPS_DETRACTOR_MAX, NPS_PROMOTER_MIN

CSV_TABLES: dict[str, list[str]] = {
    "customers": ["birth_date", "signup_at", "erased_at"],
    "orders": ["ordered_at"],
    "survey_responses": ["answered_at"],
    "support_tickets": ["opened_at", "closed_at"],
    "campaign_contacts": ["sent_at", "opened_at", "clicked_at"],
    "customer_scores": ["scored_at"],
}
"""The tables the baseline reads (file <name>.csv) and their date/time columns."""

CUSTOMER_COLUMNS = tuple(
    c.name
    for c in features.customer_360.columns
    if c.name in schema.customers.c and c.name != "customer_id"
)
"""Customer attributes the 360 table copies."""

COMPARED_360 = (
    "first_order_at",
    "last_order_at",
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "orders_90d",
    "revenue_90d",
    "tenure_days",
    "r_score",
    "f_score",
    "m_score",
    "rfm_score",
    "rfm_segment",
    "nps_latest",
    "csat_avg",
    "open_tickets",
    "campaigns_received",
    "campaign_opens",
    "campaign_clicks",
)
"""The derived 360 columns checked against crm_core's customer_360, besides customer_id."""


def read_csv_table(path: Path, dates: list[str]) -> pd.DataFrame:
    """One table from its CSV file, date/time columns parsed (a dashboard's load step)."""
    header = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, parse_dates=[c for c in dates if c in header])


class PandasCRM:
    """Every table as a DataFrame in memory, and the figures computed over them."""

    def __init__(self, frames: dict[str, pd.DataFrame]) -> None:
        self.frames = frames

    @classmethod
    def from_csv(cls, csv_dir: Path) -> PandasCRM:
        """Read every table the figures need from `csv_dir`/<table>.csv."""
        return cls({n: read_csv_table(csv_dir / f"{n}.csv", d) for n, d in CSV_TABLES.items()})

    # --- KPI overview ----------------------------------------------------------------------

    def kpis(self, start: date, end: date) -> dict[str, tuple[float | None, float | None]]:
        """The overview's KPIs for [start, end] and the previous period: name -> (now, before)."""
        days = (end - start).days + 1
        end_ts = pd.Timestamp(end + timedelta(days=1))
        starts = [pd.Timestamp(start - timedelta(days=days * i)) for i in range(3)]
        bounds = [(starts[0], end_ts), (starts[1], starts[0]), (starts[2], starts[1])]
        o = self.frames["orders"]
        o = o[(o["status"] == "completed") & (o["ordered_at"] < end_ts)]
        first_at = o.groupby("customer_id")["ordered_at"].min()
        periods = []
        for lo, hi in bounds:
            inside = o[(o["ordered_at"] >= lo) & (o["ordered_at"] < hi)]
            per_customer = inside.groupby("customer_id").size()
            periods.append(
                {
                    "revenue": float(inside["amount"].sum()),
                    "orders": float(len(inside)),
                    "buyers": per_customer.index,
                    "active": float(len(per_customer)),
                    "repeat": float((per_customer >= 2).sum()),
                    "new": float(((first_at >= lo) & (first_at < hi)).sum()),
                }
            )
        for now, before in zip(periods[:2], periods[1:], strict=True):
            now["active_before"] = before["active"]
            now["retained"] = float(len(now["buyers"].intersection(before["buyers"])))
        s = self.frames["survey_responses"]
        for (lo, hi), figures in zip(bounds[:2], periods[:2], strict=True):
            inside = s[(s["answered_at"] >= lo) & (s["answered_at"] < hi)]
            nps = inside.loc[inside["survey"] == "nps", "score"]
            csat = inside.loc[inside["survey"] == "csat", "score"]
            figures["nps_n"] = float(len(nps))
            figures["promoters"] = float((nps >= NPS_PROMOTER_MIN).sum())
            figures["detractors"] = float((nps <= NPS_DETRACTOR_MAX).sum())
            figures["csat_n"] = float(len(csat))
            figures["satisfied"] = float((csat >= CSAT_SATISFIED_MIN).sum())
        now, before = (_kpi_values(p) for p in periods[:2])
        return {name: (now[name], before[name]) for name in now}

    # --- customer 360 ----------------------------------------------------------------------

    def as_of(self) -> date:
        """Day of the last completed order."""
        o = self.frames["orders"]
        return o.loc[o["status"] == "completed", "ordered_at"].max().date()

    def customer_360(self) -> pd.DataFrame:
        """One row per customer: attributes, order aggregates, RFM, surveys, tickets, contacts,
        scores (everything crm_core's customer_360 holds except saved k-means clusters)."""
        as_of = self.as_of()
        as_of_ts = pd.Timestamp(as_of)
        end = pd.Timestamp(as_of + timedelta(days=1))
        recent = end - pd.Timedelta(days=RECENT_DAYS)
        o = self.frames["orders"]
        done = o.loc[(o["status"] == "completed") & (o["ordered_at"] < end)]
        done = done[["customer_id", "ordered_at", "amount"]]
        is_recent = done["ordered_at"] >= recent
        done = done.assign(
            recent_n=is_recent.astype("int64"), recent_amount=done["amount"].where(is_recent, 0.0)
        )
        ords = done.groupby("customer_id").agg(
            first_order_at=("ordered_at", "min"),
            last_order_at=("ordered_at", "max"),
            frequency=("amount", "size"),
            monetary=("amount", "sum"),
            orders_90d=("recent_n", "sum"),
            revenue_90d=("recent_amount", "sum"),
        )
        # Float sums of cents differ in the last bit with the order of the terms; rounded to
        # cents, equal totals are equal again (they tie in the M score, as in the store).
        ords[["monetary", "revenue_90d"]] = ords[["monetary", "revenue_90d"]].round(2)
        ords["recency_days"] = (as_of_ts - ords["last_order_at"].dt.normalize()).dt.days
        ords = ords.join(_rfm_scores(ords))

        s = self.frames["survey_responses"]
        s = s[s["answered_at"] < end]
        nps = (
            s[s["survey"] == "nps"]
            .sort_values(
                ["customer_id", "answered_at", "response_id"], ascending=[True, False, True]
            )
            .drop_duplicates("customer_id")
            .set_index("customer_id")["score"]
            .rename("nps_latest")
        )
        csat = s[s["survey"] == "csat"].groupby("customer_id")["score"].mean().rename("csat_avg")
        t = self.frames["support_tickets"]
        open_tickets = (
            t[t["status"].fillna("open") != "closed"].groupby("customer_id").size()
        ).rename("open_tickets")
        cc = self.frames["campaign_contacts"]
        contacts = (
            cc[cc["test_group"] == "treatment"]
            .groupby("customer_id")
            .agg(
                campaigns_received=("campaign_id", "size"),
                campaign_opens=("opened_at", "count"),
                campaign_clicks=("clicked_at", "count"),
            )
        )
        scores = self.frames["customer_scores"].set_index("customer_id")[
            ["clv", "p_alive", "churn_risk", "churn_band"]
        ]

        c = self.frames["customers"].set_index("customer_id")[list(CUSTOMER_COLUMNS)]
        out = c.join([ords, nps, csat, open_tickets, contacts, scores], how="left")
        for col in (
            "frequency",
            "monetary",
            "orders_90d",
            "revenue_90d",
            "open_tickets",
            "campaigns_received",
            "campaign_opens",
            "campaign_clicks",
        ):
            out[col] = out[col].fillna(0)
        # Unrounded; the store keeps it as DECIMAL(12,2), the check allows half a cent.
        out["avg_order_value"] = out["monetary"] / out["frequency"].replace(0, np.nan)
        out["tenure_days"] = (as_of_ts - out["signup_at"].dt.normalize()).dt.days
        out["as_of"] = as_of_ts
        return out.reset_index()


def _kpi_values(a: dict[str, Any]) -> dict[str, float | None]:
    """The KPI formulas over one period's aggregates (None where a denominator is 0)."""

    def ratio(num: float, den: float) -> float | None:
        return None if not den else num / den

    retention = ratio(a["retained"], a["active_before"])
    return {
        "revenue": a["revenue"],
        "orders": a["orders"],
        "aov": ratio(a["revenue"], a["orders"]),
        "active_customers": a["active"],
        "new_customers": a["new"],
        "repeat_purchase_rate": ratio(a["repeat"], a["active"]),
        "retention_rate": retention,
        "churn_rate": None if retention is None else 1.0 - retention,
        "nps": (
            None if not a["nps_n"] else 100.0 * (a["promoters"] - a["detractors"]) / a["nps_n"]
        ),
        "csat": ratio(a["satisfied"], a["csat_n"]),
    }


def _quintile(values: pd.Series, higher_is_better: bool) -> pd.Series:
    """Tie-aware 1-5 quintile score: 1 + floor(5 * (lowest tied rank - 1) / n)."""
    rank = values.rank(method="min", ascending=higher_is_better)
    return (1 + np.floor((rank - 1) * 5.0 / len(values))).astype("int64")


def _rfm_scores(ords: pd.DataFrame) -> pd.DataFrame:
    """r/f/m scores, the 3-digit rfm_score and the first matching RFM segment per buyer."""
    r = _quintile(ords["recency_days"], higher_is_better=False)
    f = _quintile(ords["frequency"], higher_is_better=True)
    m = _quintile(ords["monetary"], higher_is_better=True)
    conditions = [
        r.between(*rule.r).to_numpy() & f.between(*rule.f).to_numpy() for rule in RFM_SEGMENTS
    ]
    segment = np.select(conditions, [rule.name for rule in RFM_SEGMENTS], default=None)
    return pd.DataFrame(
        {
            "r_score": r,
            "f_score": f,
            "m_score": m,
            "rfm_score": r.astype(str) + f.astype(str) + m.astype(str),
            "rfm_segment": segment,
        },
        index=ords.index,
    )


# --- import --------------------------------------------------------------------------------


def read_orders_csv(path: Path) -> pd.DataFrame:
    """The import's read step: the whole orders CSV into a DataFrame."""
    return read_csv_table(path, CSV_TABLES["orders"])


def to_sql_rows(frame: pd.DataFrame, url: str) -> float:
    """The import's write step: `frame.to_sql` into a new table through SQLAlchemy; seconds."""
    engine = sa.create_engine(url)
    try:
        started = time.perf_counter()
        frame.to_sql("orders", engine, index=False, if_exists="replace")
        return time.perf_counter() - started
    finally:
        engine.dispose()


# --- the child process's entry points --------------------------------------------------------

_STATE: dict[str, Any] = {}


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far: VmHWM where /proc has it.

    Not ru_maxrss, which Linux carries from a parent into a child across fork and exec: a
    child spawned by a large process would report at least the parent's peak. ru_maxrss
    (KiB on Linux) only where /proc is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load(csv_dir: str) -> dict[str, Any]:
    """Read every CSV into memory (kept for the calls that follow); rows and seconds."""
    started = time.perf_counter()
    crm = PandasCRM.from_csv(Path(csv_dir))
    _STATE["crm"] = crm
    return {
        "seconds": time.perf_counter() - started,
        "rows": {name: len(frame) for name, frame in crm.frames.items()},
    }


def results(start: date, end: date, out_360: str) -> dict[str, Any]:
    """The figures the harness checks against crm_core; the 360 frame goes to `out_360`."""
    crm: PandasCRM = _STATE["crm"]
    frame = crm.customer_360()
    frame[["customer_id", *COMPARED_360]].to_parquet(out_360, index=False)
    orders = crm.frames["orders"]
    return {
        "kpis": crm.kpis(start, end),
        "as_of": crm.as_of(),
        "customers_360": len(frame),
        "orders_rows": len(orders),
        "orders_amount": float(orders["amount"].sum()),
    }


def _timed(fn: Any, *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def time_steps(
    repeats: int,
    start: date,
    end: date,
    orders_csv: str,
    sample_rows: int,
    workdir: str,
    duckdb_sample_rows: int,
) -> dict[str, Any]:
    """Time each baseline step `repeats` times (after one warm-up for the warm steps)."""
    crm: PandasCRM = _STATE["crm"]
    out: dict[str, Any] = {}
    crm.kpis(start, end)  # warm-up, as ours gets one
    out["kpis"] = [_timed(crm.kpis, start, end) for _ in range(repeats)]
    out["refresh_360_compute"] = [_timed(crm.customer_360) for _ in range(repeats)]
    # A refresh follows new data: a pandas dashboard re-reads its CSV files, then groups.
    csv_dir = Path(orders_csv).parent
    out["refresh_360"] = [
        _timed(lambda: PandasCRM.from_csv(csv_dir).customer_360()) for _ in range(repeats)
    ]

    read_seconds, sql_seconds = [], []
    total_rows = 0
    for _ in range(repeats):
        started = time.perf_counter()
        frame = read_orders_csv(Path(orders_csv))
        read_seconds.append(time.perf_counter() - started)
        total_rows = len(frame)
        sample = frame.head(min(sample_rows, total_rows)).copy()
        del frame
        sqlite = Path(workdir) / "baseline_import.sqlite"
        sqlite.unlink(missing_ok=True)
        sql_seconds.append(to_sql_rows(sample, f"sqlite:///{sqlite}"))
    duck = Path(workdir) / "baseline_import.duckdb"
    duck.unlink(missing_ok=True)
    duck_rows = min(duckdb_sample_rows, len(sample))
    duck_seconds = to_sql_rows(sample.head(duck_rows), f"duckdb:///{duck}")
    rows_done = len(sample)
    out["import"] = [
        r + total_rows / (rows_done / s) for r, s in zip(read_seconds, sql_seconds, strict=True)
    ]
    out["import_detail"] = {
        "total_rows": total_rows,
        "sample_rows": rows_done,
        "read_csv_seconds": read_seconds,
        "to_sql_seconds": sql_seconds,
        "to_sql_rows_per_second": [rows_done / s for s in sql_seconds],
        "duckdb_sample_rows": duck_rows,
        "duckdb_rows_per_second": duck_rows / duck_seconds,
    }
    out["peak_rss"] = peak_rss_bytes()
    return out

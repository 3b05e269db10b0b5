"""Runs the CLV and churn models and writes `customer_scores` (all rows replaced at once).

The 360 table, the segment builder and exports read the scores from there, so they never
refit a model; `model_version` says which models and data produced a row.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from crm_core import features
from crm_core.analytics import churn, clv
from crm_core.schema import customer_scores
from crm_core.store import Store, lock_tables, utcnow

Progress = Callable[[float, str], None]


@dataclass
class ScoreResult:
    """What `score` wrote, and the reports behind it (for a printed fit summary)."""

    rows: int
    model_version: str
    scored_at: datetime
    seconds: float
    clv_report: clv.CLVReport
    churn_report: churn.ChurnReport

    def summary_lines(self) -> list[str]:
        """A short human-readable fit summary."""
        c, k = self.clv_report, self.churn_report
        params = ", ".join(f"{name} {value:.3g}" for name, value in c.params.items())
        bt = c.backtest
        return [
            f"Scored {self.rows:,} customers in {self.seconds:.1f} s; model version "
            f"{self.model_version}",
            f"CLV ({clv.PURCHASE_MODELS[c.settings.model]} + Gamma-Gamma, data to "
            f"{c.observation_end}): {params}",
            f"  backtest at {bt.calibration_end}: holdout purchases predicted "
            f"{bt.predicted_total:,.0f} vs actual {bt.actual_total:,.0f} "
            f"({bt.total_error:+.1%}), MAE per customer {bt.mae:.2f}",
            f"  mean CLV over {c.settings.horizon_months} months: {c.customers['clv'].mean():,.2f}",
            f"Churn ({churn.MODELS[k.settings.model]}, {k.settings.window_days}-day window): "
            f"validation ROC AUC {k.metric('roc_auc'):.3f} (recency baseline "
            f"{k.metric('roc_auc', 'baseline'):.3f}), PR AUC {k.metric('pr_auc'):.3f}, "
            f"Brier {k.metric('brier'):.3f}",
            "  bands: "
            + ", ".join(
                f"{b} {n:,}" for b, n in k.scores["churn_band"].value_counts().sort_index().items()
            ),
            *(f"Note: {note}" for note in [*c.notes, *k.notes]),
        ]


TABLES_WRITTEN = ("customer_scores",)
"""What a scoring run writes (the 360 table is rebuilt from it), for the app's caches."""


def model_version(clv_report: clv.CLVReport, churn_report: churn.ChurnReport) -> str:
    """Which models, settings and data produced the scores, e.g.
    `clv=bgnbd+gg;churn=hgb;window=90d;data_to=2026-06-30;#3f2a9c1b`."""
    settings = {"clv": clv_report.params, "churn": churn_report.as_dict()["metrics"]}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return (
        f"clv={clv_report.settings.model}+gg;churn={churn_report.settings.model};"
        f"window={churn_report.settings.window_days}d;data_to={clv_report.observation_end};"
        f"#{digest}"
    )


def build_scores(
    clv_report: clv.CLVReport, churn_report: churn.ChurnReport, version: str, scored_at: datetime
) -> pd.DataFrame:
    """One row per customer with a purchase: CLV and P(alive) for all, churn risk and band
    for those active in the last year (NULL for lapsed customers)."""
    values = clv_report.customers[["customer_id", "clv", "p_alive"]]
    risk = churn_report.scores[["customer_id", "churn_risk", "churn_band", "churn_reasons"]]
    frame = values.merge(risk, on="customer_id", how="outer")
    for text in ("churn_band", "churn_reasons"):
        frame[text] = frame[text].astype(object).where(frame[text].notna(), None)
    frame["clv"] = frame["clv"].astype(float).round(2)
    frame["model_version"] = version
    frame["scored_at"] = pd.Timestamp(scored_at)
    frame["customer_id"] = frame["customer_id"].astype(np.int64)
    return frame.sort_values("customer_id").reset_index(drop=True)


def write_scores(store: Store, frame: pd.DataFrame) -> int:
    """Replace every row of customer_scores with `frame`, in one transaction."""
    with store.begin() as conn:
        lock_tables(conn, customer_scores)  # another process may be scoring too
        conn.execute(customer_scores.delete())
        rows = store.insert_df(conn, "customer_scores", frame)
        features.mark_stale(conn)
        return rows


def score(
    store: Store,
    clv_settings: clv.CLVSettings | None = None,
    churn_settings: churn.ChurnSettings | None = None,
    progress: Progress | None = None,
) -> ScoreResult:
    """Fit both models on the whole store and write customer_scores."""
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    store.require_tables("orders", "customers", "customer_scores")
    clv_report = clv.analyse(
        store, clv_settings or clv.CLVSettings(), lambda f, m: report(0.5 * f, f"CLV: {m}")
    )
    churn_report = churn.analyse(
        store,
        churn_settings or churn.ChurnSettings(),
        lambda f, m: report(0.5 + 0.45 * f, f"churn: {m}"),
    )
    scored_at = utcnow()
    version = model_version(clv_report, churn_report)
    frame = build_scores(clv_report, churn_report, version, scored_at)
    report(0.97, f"Writing {len(frame):,} scores")
    rows = write_scores(store, frame)
    report(1.0, "Done")
    return ScoreResult(
        rows=rows,
        model_version=version,
        scored_at=scored_at,
        seconds=time.perf_counter() - started,
        clv_report=clv_report,
        churn_report=churn_report,
    )

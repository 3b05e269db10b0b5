"""Runs the CLV and churn models and writes `customer_scores` (all rows replaced at once).

The 360 table, the segment builder and exports read the scores from there, so they never
refit a model; `model_version` says which models and data produced a row.

A model the data cannot support (`NotReadyError`: too short a history, no repeat buyers,
too few customers...) is left out with its reason and the other is still written: without
CLV, clv and p_alive are empty; without churn, churn_risk and churn_band are. Only when
neither model can be fitted does scoring stop, with both reasons, and the scores already in
the store stay as they were.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from crm_core import features
from crm_core.analytics import churn, clv, lead_scoring
from crm_core.schema import customer_scores, score_runs
from crm_core.store import Store, lock_tables, utcnow

Progress = Callable[[float, str], None]


LEFT_OUT_COLUMNS: dict[str, str] = {
    "clv": "clv and p_alive are empty",
    "churn": "churn_risk and churn_band are empty",
    "leads": "lead_scores and the 360 lead_score are as the last lead scoring left them",
}
"""What stays empty in customer_scores when a model is left out."""


@dataclass
class ScoreResult:
    """What `score` wrote, the reports behind it (for a printed fit summary), the models
    left out with their reasons and the models' notes (for the CLI and the Data import page)."""

    rows: int
    model_version: str
    scored_at: datetime
    seconds: float
    clv_report: clv.CLVReport | None
    churn_report: churn.ChurnReport | None
    left_out: dict[str, str] = field(default_factory=dict)
    """Model ("clv", "churn") -> why it was not fitted (a NotReadyError's message)."""
    lead_report: lead_scoring.LeadReport | None = None
    """Lead scoring (written to lead_scores), when the store has leads."""

    @property
    def notes(self) -> list[str]:
        """The fitted models' notes: customers left out of a model, convergence, drift."""
        reports = (self.clv_report, self.churn_report)
        return [note for report in reports if report is not None for note in report.notes]

    def messages(self) -> list[str]:
        """What the user should read besides the numbers: each model left out and why,
        then the notes."""
        return [*self.left_out_lines(), *self.notes]

    def left_out_lines(self) -> list[str]:
        """Each model left out, why, and what stays empty because of it."""
        return [f"{reason} So {LEFT_OUT_COLUMNS[m]}." for m, reason in self.left_out.items()]

    def summary_lines(self) -> list[str]:
        """A short human-readable fit summary."""
        c, k = self.clv_report, self.churn_report
        lines = [
            f"Scored {self.rows:,} customers in {self.seconds:.1f} s; model version "
            f"{self.model_version}"
        ]
        if c is not None:
            params = ", ".join(f"{name} {value:.3g}" for name, value in c.params.items())
            bt = c.backtest
            lines += [
                f"CLV ({clv.PURCHASE_MODELS[c.settings.model]} + Gamma-Gamma, data to "
                f"{c.observation_end}): {params}",
                f"  backtest at {bt.calibration_end}: holdout purchases predicted "
                f"{bt.predicted_total:,.0f} vs actual {bt.actual_total:,.0f} "
                f"({bt.total_error:+.1%}), MAE per customer {bt.mae:.2f}",
                f"  mean CLV over {c.settings.horizon_months} months: "
                f"{c.customers['clv'].mean():,.2f}",
            ]
        if k is not None:
            bands = k.scores["churn_band"].value_counts().sort_index().items()
            lines += [
                f"Churn ({churn.MODELS[k.settings.model]}, {k.settings.window_days}-day window): "
                f"validation ROC AUC {k.metric('roc_auc'):.3f} (recency baseline "
                f"{k.metric('roc_auc', 'baseline'):.3f}), PR AUC {k.metric('pr_auc'):.3f}, "
                f"Brier {k.metric('brier'):.3f}",
                "  bands: " + ", ".join(f"{b} {n:,}" for b, n in bands),
            ]
        if (ld := self.lead_report) is not None:
            lines.append(
                f"Leads ({lead_scoring.MODELS[ld.settings.model]}, won within "
                f"{ld.settings.window_days} days): validation ROC AUC "
                f"{ld.metric('roc_auc'):.3f} (source-only baseline "
                f"{ld.metric('roc_auc', 'baseline'):.3f}); {len(ld.scores):,} open leads scored"
            )
        left = [f"Left out: {line}" for line in self.left_out_lines()]
        return [*lines, *left, *(f"Note: {note}" for note in self.notes)]


TABLES_WRITTEN = ("customer_scores", "score_runs", "lead_scores")
"""What a scoring run writes (the 360 table is rebuilt from it), for the app's caches."""


def model_version(clv_report: clv.CLVReport | None, churn_report: churn.ChurnReport | None) -> str:
    """Which models, settings and data produced the scores, e.g.
    `clv=bgnbd+gg;churn=hgb;window=90d;data_to=2026-06-30;#3f2a9c1b` (`clv=none` or
    `churn=none` for a model left out)."""
    settings = {
        "clv": clv_report.params if clv_report else None,
        "churn": churn_report.as_dict()["metrics"] if churn_report else None,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    clv_part = f"{clv_report.settings.model}+gg" if clv_report else "none"
    churn_part = (
        f"{churn_report.settings.model};window={churn_report.settings.window_days}d"
        if churn_report
        else "none"
    )
    data_to = clv_report.observation_end if clv_report else churn_report.as_of
    return f"clv={clv_part};churn={churn_part};data_to={data_to};#{digest}"


_CLV_COLUMNS = ["customer_id", "clv", "p_alive", *clv.NEXT_PURCHASE_COLUMNS]
_CHURN_COLUMNS = ["customer_id", "churn_risk", "churn_band", "churn_reasons"]


def build_scores(
    clv_report: clv.CLVReport | None,
    churn_report: churn.ChurnReport | None,
    version: str,
    scored_at: datetime,
) -> pd.DataFrame:
    """One row per customer with a purchase: CLV and P(alive) for all, churn risk and band
    for those active in the last year (NULL for lapsed customers). A model left out (None)
    leaves its columns NULL; without CLV the rows are the churn model's customers."""
    if clv_report is None:
        frame = churn_report.scores[_CHURN_COLUMNS].assign(
            clv=np.nan, p_alive=np.nan, **dict.fromkeys(clv.NEXT_PURCHASE_COLUMNS, np.nan)
        )
    elif churn_report is None:
        frame = clv_report.customers[_CLV_COLUMNS].assign(
            churn_risk=np.nan, churn_band=None, churn_reasons=None
        )
    else:
        values = clv_report.customers[_CLV_COLUMNS]
        frame = values.merge(churn_report.scores[_CHURN_COLUMNS], on="customer_id", how="outer")
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


def run_aggregates(frame: pd.DataFrame) -> dict[str, float | None]:
    """A scoring run's aggregates (the `score_runs` columns alerts watch); None when a model
    was left out."""

    def value(x: float) -> float | None:
        return None if pd.isna(x) else float(x)

    risk, clv_ = frame["churn_risk"].astype(float), frame["clv"].astype(float)
    at_risk = (risk * clv_).sum(min_count=1)
    return {
        "customers": len(frame),
        "mean_churn_risk": value(risk.mean()),
        "value_at_risk": value(at_risk),
        "mean_clv": value(clv_.mean()),
        "total_clv": value(clv_.sum(min_count=1)),
        "mean_p_alive": value(frame["p_alive"].astype(float).mean()),
    }


def record_run(store: Store, frame: pd.DataFrame, scored_at: datetime, version: str) -> None:
    """Append the run's aggregates to `score_runs` (one row per scoring run)."""
    if "score_runs" not in store.table_names():  # a store from before schema version 4
        with store.begin() as conn:
            score_runs.create(conn, checkfirst=True)
    with store.begin() as conn:
        conn.execute(
            score_runs.insert().values(
                scored_at=scored_at, model_version=version, **run_aggregates(frame)
            )
        )


def score(
    store: Store,
    clv_settings: clv.CLVSettings | None = None,
    churn_settings: churn.ChurnSettings | None = None,
    progress: Progress | None = None,
) -> ScoreResult:
    """Fit both models on the whole store and write customer_scores.

    A model the data cannot support is left out (`ScoreResult.left_out` says why) and the
    other is written; when neither can be fitted, NotReadyError gives both reasons and
    nothing is written.
    """
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    store.require_tables("orders", "customers", "customer_scores")
    left_out: dict[str, str] = {}
    clv_report: clv.CLVReport | None = None
    churn_report: churn.ChurnReport | None = None
    try:
        clv_report = clv.analyse(
            store, clv_settings or clv.CLVSettings(), lambda f, m: report(0.5 * f, f"CLV: {m}")
        )
    except clv.NotReadyError as exc:
        left_out["clv"] = _reason(exc, "CLV")
    try:
        churn_report = churn.analyse(
            store,
            churn_settings or churn.ChurnSettings(),
            lambda f, m: report(0.5 + 0.45 * f, f"churn: {m}"),
        )
    except clv.NotReadyError as exc:
        left_out["churn"] = _reason(exc, "Churn")
    if clv_report is None and churn_report is None:
        raise clv.NotReadyError(
            [*left_out.values(), "Nothing was scored; the scores in the store are unchanged."],
            "Scoring",
        )
    scored_at = utcnow()
    version = model_version(clv_report, churn_report)
    frame = build_scores(clv_report, churn_report, version, scored_at)
    report(0.97, f"Writing {len(frame):,} scores")
    rows = write_scores(store, frame)
    record_run(store, frame, scored_at, version)
    lead_report = None
    try:
        lead_report = lead_scoring.score_if_any(
            store, lambda f, m: report(0.98 + 0.02 * f, f"leads: {m}")
        )
    except clv.NotReadyError as exc:
        left_out["leads"] = _reason(exc, "Lead scoring")
    report(1.0, "Done")
    return ScoreResult(
        rows=rows,
        model_version=version,
        scored_at=scored_at,
        seconds=time.perf_counter() - started,
        clv_report=clv_report,
        churn_report=churn_report,
        left_out=left_out,
        lead_report=lead_report,
    )


def _reason(exc: clv.NotReadyError, model: str) -> str:
    """The error's message, naming the model ("CLV: ...")."""
    return str(exc) if exc.model else f"{model}: " + " ".join(exc.problems)

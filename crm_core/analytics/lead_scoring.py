"""Lead scoring: the chance that an open lead is won within `window_days`, from its source,
its engagement (`lead_activities`) and its stage and time in stage (`lead_stage_changes`).

Every feature is computed as of a cutoff from what was recorded before it (no leakage). A
cutoff's rows are the leads open then (created in the `ACTIVE_DAYS` before it, not yet won or
lost); the label is 1 when the lead was won within `window_days` after the cutoff. Training
uses cutoffs every `SNAPSHOT_DAYS` whose outcome windows end by the validation start (so only
leads decided before it teach the model); validation uses the cutoffs of the next
`VALID_DAYS` (outcomes decided after the validation start), against a source-only baseline.
The model is then refitted on every labelled cutoff and scores the leads open on the last
day. A lead appears once per cutoff at which it was open (rows are lead-cutoffs).

Without stage history (no `lead_stage_changes` rows for a lead), its stage at a past cutoff
is taken as `lead` since its creation unless its last change (`stage_changed_at`) came before.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from threadpoolctl import threadpool_limits

from crm_core import display
from crm_core.analytics.churn import classifier, evaluate, log_odds_contributions
from crm_core.analytics.clv import NotReadyError
from crm_core.errors import CRMError
from crm_core.schema import (
    LEAD_ACTIVITY_KINDS,
    LEAD_STAGES,
    lead_activities,
    lead_scores,
    lead_stage_changes,
    leads,
)
from crm_core.store import Store, lock_tables, utcnow

SOURCE_TABLES = ("leads", "lead_activities", "lead_stage_changes")
"""What the lead features are built from."""

Progress = Callable[[float, str], None]

DEFAULT_WINDOW_DAYS = 120
"""A lead counts as won when it is won within this many days after the cutoff."""
ACTIVE_DAYS = 365
"""Open leads created more than this many days before a cutoff are stale: not scored."""
SNAPSHOT_DAYS = 28
"""Days between two cutoffs (training and validation)."""
VALID_DAYS = 182
"""The validation cutoffs span this many days, ending `window_days` before the last day."""
RECENT_DAYS = 14
"""Recent engagement: activities in this many days before the cutoff."""
CAPACITY_WEEKS = 8
"""Weekly lead volume (for the MQL threshold) is averaged over this many weeks."""

OPEN_STAGES = tuple(s for s in LEAD_STAGES if s not in ("won", "lost"))
STAGE_RANK = {stage: i for i, stage in enumerate(OPEN_STAGES)}

MODELS: dict[str, str] = {
    "hgb": "Histogram gradient boosting",
    "logit": "Logistic regression",
}
"""Lead models that can be chosen."""

MIN_ROWS = 100
"""Fewer open lead-cutoffs than this in training or validation: not enough to fit or judge."""
MIN_PER_CLASS = 10
"""Fewer won (or not won) lead-cutoffs than this: the metrics mean nothing."""
TRAIN_ROWS = 250_000
"""At most this many lead-cutoffs train a model (a random sample)."""

_PLURAL = {
    "email_open": "e-mail opens",
    "email_click": "e-mail clicks",
    "page_view": "page views",
    "meeting": "meetings",
    "call": "calls",
}
ENGAGEMENT: dict[str, str] = {f"{kind}s": f"{_PLURAL[kind]} so far" for kind in LEAD_ACTIVITY_KINDS}
FEATURES: dict[str, str] = {
    "stage_rank": "stage",
    "days_in_stage": "days in the current stage",
    "age_days": "days since the lead was created",
    **ENGAGEMENT,
    "activities_recent": f"activities in the last {RECENT_DAYS} days",
    "days_since_activity": "days since the last activity",
}
"""Model features other than the source (all as of the cutoff), in a marketer's words."""

SOURCE_PREFIX = "source_"
REASON_MIN_ODDS = 1.1
"""A feature is a reason when it multiplies a lead's odds of being won by at least this."""
REASONS_SHOWN = 3
DECILES = 10

THREADS = 1
"""OpenMP threads for training (more threads busy-wait on shared cores; see churn.THREADS)."""


# --- data ---------------------------------------------------------------------------------


def _seconds(values: pd.Series) -> np.ndarray:
    """Timestamps as int64 seconds since the epoch (NaT: int64 min)."""
    stamps = pd.to_datetime(values)
    out = stamps.to_numpy(dtype="datetime64[s]").astype(np.int64)
    return np.where(stamps.isna().to_numpy(), np.iinfo(np.int64).min, out)


def _ts(day: date) -> datetime:
    """The first instant after `day` (a cutoff is the end of that day)."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time())


_SHIFT = np.int64(1) << np.int64(34)  # seconds fit in 34 bits until the year 2514


@dataclass
class LeadData:
    """The leads, their activities and stage changes, read once, as sorted numpy keys."""

    leads: pd.DataFrame  # lead_id, customer_id, created_at, source, stage, stage_changed_at
    created: np.ndarray  # seconds
    decided: np.ndarray  # seconds when won or lost, else int64 max
    won: np.ndarray  # bool: won (at `decided`)
    last_change: np.ndarray  # seconds of stage_changed_at
    activity_keys: dict[str, np.ndarray]  # kind -> sorted lead_index << 34 | seconds
    all_keys: np.ndarray
    change_keys: np.ndarray  # sorted keys of stage changes
    change_rank: np.ndarray  # the stage entered (rank; won/lost -1), aligned with change_keys
    has_history: np.ndarray  # bool per lead
    last_day: date | None

    def key(self, index: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """The sort key of (lead index, time)."""
        return (index.astype(np.int64) << np.int64(34)) + seconds


def read_leads(store: Store) -> LeadData:
    """Read what lead scoring needs from the store."""
    frame = store.read_df(
        sa.select(
            leads.c.lead_id,
            leads.c.customer_id,
            leads.c.created_at,
            leads.c.source,
            leads.c.stage,
            leads.c.stage_changed_at,
        ).order_by(leads.c.lead_id)
    )
    frame["source"] = frame["source"].astype("object").fillna("unknown").astype(str)
    frame["stage"] = frame["stage"].astype(str)
    position = pd.Series(np.arange(len(frame)), index=frame["lead_id"].to_numpy())
    created = _seconds(frame["created_at"])
    changed = _seconds(frame["stage_changed_at"])
    changed = np.where(changed == np.iinfo(np.int64).min, created, changed)
    closed = frame["stage"].isin(("won", "lost")).to_numpy()
    decided = np.where(closed, changed, np.iinfo(np.int64).max)

    def keys_of(table: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
        index = position.reindex(table["lead_id"].to_numpy()).to_numpy()
        known = ~np.isnan(index)
        keys = (index[known].astype(np.int64) << np.int64(34)) + _seconds(table[column])[known]
        order = np.argsort(keys, kind="stable")
        return keys[order], np.flatnonzero(known)[order]

    acts = store.read_df(
        sa.select(lead_activities.c.lead_id, lead_activities.c.occurred_at, lead_activities.c.kind)
    )
    activity_keys = {}
    for kind in LEAD_ACTIVITY_KINDS:
        activity_keys[kind], _ = keys_of(acts[acts["kind"] == kind], "occurred_at")
    all_keys = np.sort(np.concatenate(list(activity_keys.values())))
    chg = store.read_df(
        sa.select(
            lead_stage_changes.c.lead_id,
            lead_stage_changes.c.changed_at,
            lead_stage_changes.c.stage,
        )
    )
    change_keys, rows = keys_of(chg, "changed_at")
    change_rank = chg["stage"].astype(str).map(STAGE_RANK).fillna(-1).to_numpy(dtype=np.int64)
    has_history = np.zeros(len(frame), dtype=bool)
    has_history[(change_keys >> np.int64(34)).astype(np.int64)] = True
    stamps = [frame["created_at"].max(), frame["stage_changed_at"].max()]
    if len(acts):
        stamps.append(acts["occurred_at"].max())
    stamps = [pd.Timestamp(s) for s in stamps if pd.notna(s)]
    return LeadData(
        leads=frame,
        created=created,
        decided=decided,
        won=(frame["stage"] == "won").to_numpy(),
        last_change=changed,
        activity_keys=activity_keys,
        all_keys=all_keys,
        change_keys=change_keys,
        change_rank=change_rank[rows],
        has_history=has_history,
        last_day=max(stamps).date() if stamps else None,
    )


def _count_before(keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.searchsorted(keys, hi, side="left") - np.searchsorted(keys, lo, side="left")


def snapshot(data: LeadData, cutoff: date, window_days: int | None) -> pd.DataFrame:
    """Features as of the end of `cutoff` of the leads open then (created in the ACTIVE_DAYS
    before it, not won or lost yet), and (if `window_days`) `won`: 1 when won within
    `window_days` after it."""
    ct = int(pd.Timestamp(_ts(cutoff)).value // 10**9)
    day = 86_400
    open_then = (
        (data.created < ct) & (data.created >= ct - ACTIVE_DAYS * day) & (data.decided >= ct)
    )
    index = np.flatnonzero(open_then)
    frame = data.leads.iloc[index][["lead_id", "customer_id", "source", "created_at"]]
    n = len(index)
    start = data.key(index, np.zeros(n, dtype=np.int64))
    at = data.key(index, np.full(n, ct, dtype=np.int64))
    out = pd.DataFrame({"lead_id": frame["lead_id"].to_numpy()})
    out["source"] = frame["source"].to_numpy()
    out["customer_id"] = frame["customer_id"].to_numpy()
    out["created_at"] = frame["created_at"].to_numpy()
    out["cutoff"] = cutoff
    created = data.created[index]
    out["age_days"] = (ct - created) / day
    # stage at the cutoff: the last change before it, else `lead` since creation
    found, last = _last_before(data.change_keys, at, index)
    entered = np.where(found, data.change_keys[last] & (_SHIFT - 1) if found.any() else 0, created)
    rank = np.where(found, data.change_rank[last] if found.any() else 0, 0)
    # leads without history: their current stage counts from `stage_changed_at` if earlier
    plain = ~data.has_history[index]
    current = data.leads["stage"].to_numpy()[index]
    known = plain & (data.last_change[index] < ct) & np.isin(current, OPEN_STAGES)
    rank = np.where(known, pd.Series(current).map(STAGE_RANK).fillna(0).to_numpy(), rank)
    entered = np.where(known, data.last_change[index], entered)
    out["stage_rank"] = rank.astype(float)
    out["days_in_stage"] = (ct - entered) / day
    for kind in LEAD_ACTIVITY_KINDS:
        out[f"{kind}s"] = _count_before(data.activity_keys[kind], start, at).astype(float)
    recent = data.key(index, np.full(n, ct - RECENT_DAYS * day, dtype=np.int64))
    out["activities_recent"] = _count_before(data.all_keys, recent, at).astype(float)
    any_before, last = _last_before(data.all_keys, at, index)
    last_seen = data.all_keys[last] & (_SHIFT - 1) if any_before.any() else 0
    out["days_since_activity"] = np.where(any_before, (ct - last_seen) / day, np.nan)
    if window_days is not None:
        decided = data.decided[index]
        out["won"] = (data.won[index] & (decided < ct + window_days * day)).astype(int)
    return out


def _last_before(
    keys: np.ndarray, at: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each lead, whether it has a key (lead << 34 | time, sorted) before `at`, and the
    position of its last one (0 where it has none; `keys` may be empty: no history)."""
    pos = np.searchsorted(keys, at, side="left") - 1
    last = np.maximum(pos, 0)
    if not len(keys):
        return np.zeros(len(at), dtype=bool), last
    return (pos >= 0) & ((keys[last] >> np.int64(34)) == index), last


def dataset(data: LeadData, cutoffs: list[date], window_days: int | None) -> pd.DataFrame:
    """The snapshots at several cutoffs, one after the other."""
    frames = [snapshot(data, c, window_days) for c in cutoffs]
    frames = [f for f in frames if len(f)]
    if not frames:
        return snapshot(data, cutoffs[0] if cutoffs else date.today(), window_days).iloc[:0]
    return pd.concat(frames, ignore_index=True)


# --- the model ----------------------------------------------------------------------------


@dataclass
class LeadModel:
    """Won-lead classifier (scikit-learn contract: `fit` returns self). The source is one-hot
    coded over the sources seen in training (`source_<name>`); with `engagement=False` the
    model sees the source only (the baseline)."""

    kind: str = "hgb"
    engagement: bool = True
    random_state: int = 0

    def _estimator(self):
        found = classifier(self.kind, self.random_state, learning_rate=0.08, min_samples_leaf=30)
        if found is not None:
            return found
        raise CRMError(
            f"Lead model {self.kind!r} is not known; allowed: {', '.join(MODELS)}. "
            "Pick one of those (`leads score --model`)."
        )

    def matrix(self, data: pd.DataFrame) -> pd.DataFrame:
        """The model's feature columns for `data` (sources one-hot, unseen sources all 0)."""
        X = pd.DataFrame(index=data.index)
        for source in self.sources_:
            X[SOURCE_PREFIX + source] = (data["source"] == source).astype(float)
        if self.engagement:
            for name in FEATURES:
                X[name] = data[name].astype(float)
        fitted = getattr(self, "feature_names_in_", None)
        return X if fitted is None else X[fitted]

    def fit(self, data: pd.DataFrame) -> LeadModel:
        """Fit on labelled snapshots (`dataset`)."""
        if len(data) > TRAIN_ROWS:
            data = data.sample(n=TRAIN_ROWS, random_state=self.random_state)
        self.sources_ = sorted(data["source"].unique())
        self.feature_names_in_ = None
        X = self.matrix(data)
        # a feature nobody has (no activity recorded at all) tells nothing, and the
        # gradient boosting cannot bin a column of missing values
        X = X.loc[:, X.notna().any()]
        self.feature_names_in_ = list(X.columns)
        self.estimator_ = self._estimator().fit(X, data["won"].to_numpy())
        self.win_rate_ = float(data["won"].mean())
        return self

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        """Probability that each lead is won within the window."""
        if data.empty:
            return np.zeros(0)
        return self.estimator_.predict_proba(self.matrix(data))[:, 1]


LEADS_NEED = (
    f"lead scoring needs at least {MIN_ROWS} open leads over the training cutoffs and as many "
    f"over the validation cutoffs, {MIN_PER_CLASS} of them won and {MIN_PER_CLASS} not."
)


def _check(data: pd.DataFrame, what: str) -> None:
    n = len(data)
    won = int(data["won"].sum()) if n else 0
    if n < MIN_ROWS or won < MIN_PER_CLASS or n - won < MIN_PER_CLASS:
        raise NotReadyError(
            [
                f"the {what} cutoffs have {n:,} open leads of which {won:,} were won in the "
                f"window after; {LEADS_NEED} Import `leads` over a longer span (with "
                "`lead_activities` and `lead_stage_changes`), or choose a shorter window."
            ],
            "Lead scoring",
        )


# --- validation figures -------------------------------------------------------------------


def calibration(y: np.ndarray, p: np.ndarray, bins: int = DECILES) -> pd.DataFrame:
    """Predicted against actual win rate by band of the prediction (equal-sized bands,
    lowest first): band, leads, predicted, actual."""
    order = np.argsort(p, kind="stable")
    rows = []
    for i, part in enumerate(np.array_split(order, min(bins, max(len(p), 1)))):
        if len(part):
            rows.append(
                {
                    "band": i + 1,
                    "leads": len(part),
                    "predicted": float(p[part].mean()),
                    "actual": float(y[part].mean()),
                }
            )
    return pd.DataFrame(rows, columns=["band", "leads", "predicted", "actual"])


# --- reasons ------------------------------------------------------------------------------


def _shown(feature: str, value: float) -> str:
    if feature == "stage_rank":
        return display.value_label("stage", OPEN_STAGES[int(value)])
    if np.isnan(value):
        return "none"
    return f"{value:,.0f}"


def lead_reasons(model: LeadModel, data: pd.DataFrame, top: int = REASONS_SHOWN) -> pd.Series:
    """Per lead, what raises its chance of being won most, in words, e.g. "source Referral
    (odds x2.3); meetings so far 3 (odds x1.6)"."""
    if data.empty:
        return pd.Series([], index=data.index, dtype=object)
    X = model.matrix(data)
    contributions = log_odds_contributions(model, X)
    names = list(contributions.columns)
    parts = contributions.to_numpy()
    values = X[names].to_numpy(dtype=float)
    floor = np.log(REASON_MIN_ODDS)
    texts = []
    for i, best in enumerate(np.argsort(-parts, axis=1, kind="stable")):
        shown = []
        for j in best:
            if parts[i, j] < floor or len(shown) == top:
                break
            name = names[j]
            if name.startswith(SOURCE_PREFIX):
                if values[i, j] < 0.5:
                    continue  # "not from paid search" is no reason to call
                words = "source " + display.value_label("source", name[len(SOURCE_PREFIX) :])
            elif name == "days_since_activity" and np.isnan(values[i, j]):
                words = "no activity yet"
            else:
                words = f"{FEATURES[name]} {_shown(name, values[i, j])}"
            shown.append(f"{words} (odds x{np.exp(parts[i, j]):.1f})")
        texts.append("; ".join(shown) or None)
    return pd.Series(texts, index=data.index, dtype=object)


# --- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadSettings:
    """What the analyst picks: model, outcome window and as-of day."""

    model: str = "hgb"
    window_days: int = DEFAULT_WINDOW_DAYS
    as_of: date | None = None
    random_state: int = 0


@dataclass
class Capacity:
    """The MQL threshold that fills a weekly call capacity, and what it is expected to win."""

    per_week: int
    weekly_volume: float
    share: float  # of new leads called
    threshold: float
    leads_above: int  # open leads scored at or above the threshold
    expected_wins: float  # sum of their win probabilities
    open_leads: int
    window_days: int  # the wins are those within this many days of as_of
    as_of: date

    @property
    def calls_everyone(self) -> bool:
        """Sales can call at least every new lead: no threshold is needed."""
        return self.share >= 1.0

    def sentence(self) -> str:
        """The threshold, whom it picks and the wins expected, with their time frame."""
        weeks, pct = CAPACITY_WEEKS, display.format_share
        if self.calls_everyone:
            pick = (
                f"Call every new lead: a capacity of {self.per_week:,} a week is more than the "
                f"{self.weekly_volume:,.1f} new leads a week of the last {weeks} weeks. "
                f"{self.leads_above:,} of the {self.open_leads:,} open leads score at least "
                f"as high as the lowest-scored new lead ({pct(self.threshold)})"
            )
        else:
            pick = (
                f"Calling {self.per_week:,} lead{'s' * (self.per_week != 1)} a week out of "
                f"{self.weekly_volume:,.1f} new ones a week (the last {weeks} weeks) means "
                "calling the top "
                f"{pct(self.share)} of them: a win probability of {pct(self.threshold)} or "
                f"more. {self.leads_above:,} of the {self.open_leads:,} open leads are at or "
                "above it"
            )
        return (
            f"{pick}; the model expects {self.expected_wins:,.1f} of them to be won within "
            f"{self.window_days} days of {self.as_of:%d %b %Y} (the sum of their win "
            "probabilities)."
        )


@dataclass
class LeadReport:
    """Validation figures (model against the source-only baseline) and the open leads' scores."""

    settings: LeadSettings
    as_of: date
    train_cutoffs: list[date]
    valid_cutoffs: list[date]
    n_train: int
    n_valid: int
    win_rate_valid: float
    metrics: pd.DataFrame  # model/baseline x roc_auc, pr_auc, brier
    calibration: pd.DataFrame  # band, leads, predicted, actual (model)
    baseline_calibration: pd.DataFrame
    scores: pd.DataFrame  # open leads: lead_id, ..., win_probability, lead_score_reasons
    stale_leads: int  # open leads older than ACTIVE_DAYS, not scored
    weekly_volume: float  # leads created per week over the last CAPACITY_WEEKS weeks
    recent_scores: np.ndarray  # win probabilities of the open leads created in those weeks
    seconds: float
    by_source: pd.DataFrame = field(default_factory=pd.DataFrame)

    def metric(self, name: str, who: str = "model") -> float:
        """One validation figure of the model or the baseline."""
        return float(self.metrics.loc[who, name])

    def capacity(self, per_week: int) -> Capacity:
        """The score threshold that gives `per_week` of the new leads a week (from the last
        CAPACITY_WEEKS weeks' volume and their scores) and the expected wins above it."""
        if per_week < 1:
            raise CRMError(
                f"Sales capacity must be at least 1 lead a week; got {per_week}. "
                "Say how many leads sales can call a week."
            )
        volume = self.weekly_volume
        share = 1.0 if volume <= 0 else min(1.0, per_week / volume)
        pool = self.recent_scores
        if len(pool) == 0:
            pool = self.scores["win_probability"].to_numpy(dtype=float)
        threshold = float(np.quantile(pool, 1.0 - share)) if len(pool) else 0.0
        above = self.scores["win_probability"].to_numpy(dtype=float) >= threshold
        return Capacity(
            per_week=int(per_week),
            weekly_volume=float(volume),
            share=share,
            threshold=threshold,
            leads_above=int(above.sum()),
            expected_wins=float(self.scores["win_probability"].to_numpy()[above].sum()),
            open_leads=len(self.scores),
            window_days=self.settings.window_days,
            as_of=self.as_of,
        )

    def as_dict(self, top: int = 10) -> dict[str, Any]:
        """Validation figures and the top leads as plain JSON-able values."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [
                {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                for row in frame.to_dict(orient="records")
            ]

        head = self.scores.head(top)
        return {
            "model": self.settings.model,
            "window_days": self.settings.window_days,
            "as_of": str(self.as_of),
            "train_cutoffs": [str(self.train_cutoffs[0]), str(self.train_cutoffs[-1])],
            "valid_cutoffs": [str(self.valid_cutoffs[0]), str(self.valid_cutoffs[-1])],
            "train_rows": self.n_train,
            "valid_rows": self.n_valid,
            "valid_win_rate": round(self.win_rate_valid, 4),
            "metrics": {
                who: {k: round(float(v), 4) for k, v in row.items()}
                for who, row in self.metrics.iterrows()
            },
            "calibration": records(self.calibration),
            "baseline_calibration": records(self.baseline_calibration),
            "scored_leads": len(self.scores),
            "stale_leads": self.stale_leads,
            "weekly_volume": round(self.weekly_volume, 2),
            "top_leads": [
                {
                    "lead_id": int(r.lead_id),
                    "source": r.source,
                    "stage": r.stage,
                    "win_probability": round(float(r.win_probability), 4),
                    "reasons": r.lead_score_reasons,
                }
                for r in head.itertuples()
            ],
            "seconds": round(self.seconds, 2),
        }


def _cutoffs(first: date, as_of: date, window_days: int) -> tuple[list[date], list[date]]:
    """Training and validation cutoffs: validation every SNAPSHOT_DAYS over VALID_DAYS ending
    `window_days` before `as_of`; training every SNAPSHOT_DAYS before that, each ending its
    outcome window by the validation start."""
    step = timedelta(days=SNAPSHOT_DAYS)
    valid_end = as_of - timedelta(days=window_days)
    valid_start = valid_end - timedelta(days=VALID_DAYS)
    valid = []
    c = valid_end
    while c >= valid_start:
        valid.append(c)
        c -= step
    train = []
    c = valid_start - timedelta(days=window_days)
    while c > first:
        train.append(c)
        c -= step
    return train[::-1], valid[::-1]


def analyse(
    store: Store, settings: LeadSettings = LeadSettings(), progress: Progress | None = None
) -> LeadReport:
    """Train on early cutoffs, validate on later ones against a source-only baseline, refit
    on all and score the leads open on the last day."""
    with threadpool_limits(limits=THREADS):
        return _analyse(store, settings, progress)


def _analyse(store: Store, settings: LeadSettings, progress: Progress | None) -> LeadReport:
    report = progress or (lambda fraction, message: None)
    started = _time.perf_counter()
    if settings.window_days < 7:
        raise CRMError(
            f"The lead outcome window must be at least 7 days; got {settings.window_days}. "
            "Choose a longer window."
        )
    if settings.model not in MODELS:
        LeadModel(kind=settings.model)._estimator()  # raises with the allowed models
    store.require_tables(*SOURCE_TABLES)
    report(0.05, "Reading leads")
    data = read_leads(store)
    if data.last_day is None:
        raise NotReadyError(
            [f"the store has no leads; import `leads`: {LEADS_NEED}"], "Lead scoring"
        )
    as_of = min(settings.as_of or data.last_day, data.last_day)
    first = pd.Timestamp(data.leads["created_at"].min()).date()
    train_cuts, valid_cuts = _cutoffs(first, as_of, settings.window_days)
    if not train_cuts:
        needed = 2 * settings.window_days + VALID_DAYS + SNAPSHOT_DAYS
        raise NotReadyError(
            [
                f"the leads span {first} to {as_of}; a {settings.window_days}-day window needs "
                f"at least {needed} days (training cutoffs, their outcome window, "
                f"{VALID_DAYS} days of validation cutoffs and theirs). Import leads going back "
                f"further, or choose a shorter window."
            ],
            "Lead scoring",
        )
    report(0.15, "Features at the training cutoffs")
    train = dataset(data, train_cuts, settings.window_days)
    report(0.3, "Features at the validation cutoffs")
    valid = dataset(data, valid_cuts, settings.window_days)
    _check(train, "training")
    _check(valid, "validation")

    report(0.45, "Training the model and the source-only baseline")
    rs = settings.random_state
    model = LeadModel(kind=settings.model, random_state=rs).fit(train)
    baseline = LeadModel(kind="logit", engagement=False, random_state=rs).fit(train)
    y = valid["won"].to_numpy()
    p_model, p_base = model.predict_proba(valid), baseline.predict_proba(valid)
    metrics = pd.DataFrame({"model": evaluate(y, p_model), "baseline": evaluate(y, p_base)}).T

    report(0.7, "Refitting on every labelled cutoff and scoring the open leads")
    labelled = pd.concat([train, valid], ignore_index=True)
    final = LeadModel(kind=settings.model, random_state=rs).fit(labelled)
    current = snapshot(data, as_of, None)
    current["win_probability"] = final.predict_proba(current)
    current["lead_score_reasons"] = lead_reasons(final, current)
    stage_of = data.leads.set_index("lead_id")["stage"]
    current["stage"] = current["lead_id"].map(stage_of)
    current["activities"] = current[list(ENGAGEMENT)].sum(axis=1)
    scores = current.sort_values(["win_probability", "lead_id"], ascending=[False, True])
    scores = scores.reset_index(drop=True)

    ct = int(pd.Timestamp(_ts(as_of)).value // 10**9)
    open_now = (data.decided >= ct) & (data.created < ct)
    stale = int((open_now & (data.created < ct - ACTIVE_DAYS * 86_400)).sum())
    recent_from = ct - CAPACITY_WEEKS * 7 * 86_400
    new = (data.created >= recent_from) & (data.created < ct)
    recent_ids = set(data.leads["lead_id"].to_numpy()[new])
    recent_scores = scores.loc[scores["lead_id"].isin(recent_ids), "win_probability"].to_numpy()
    by_source = (
        scores.groupby("source")
        .agg(open_leads=("lead_id", "size"), mean_win_probability=("win_probability", "mean"))
        .sort_values("mean_win_probability", ascending=False)
        .reset_index()
    )
    report(1.0, "Done")
    return LeadReport(
        settings=settings,
        as_of=as_of,
        train_cutoffs=train_cuts,
        valid_cutoffs=valid_cuts,
        n_train=len(train),
        n_valid=len(valid),
        win_rate_valid=float(y.mean()),
        metrics=metrics,
        calibration=calibration(y, p_model),
        baseline_calibration=calibration(y, p_base),
        scores=scores[
            [
                "lead_id",
                "customer_id",
                "created_at",
                "source",
                "stage",
                "days_in_stage",
                "age_days",
                "activities",
                "activities_recent",
                "meetings",
                "win_probability",
                "lead_score_reasons",
            ]
        ],
        stale_leads=stale,
        weekly_volume=float(new.sum()) / CAPACITY_WEEKS,
        recent_scores=recent_scores,
        seconds=_time.perf_counter() - started,
        by_source=by_source,
    )


def model_version(report: LeadReport) -> str:
    """Which model and data produced the scores, e.g. `leads=hgb;window=120d;data_to=...`."""
    s = report.settings
    return f"leads={s.model};window={s.window_days}d;data_to={report.as_of}"


def write_scores(store: Store, report: LeadReport) -> int:
    """Replace `lead_scores` with the report's open leads (one transaction); returns rows."""
    scored_at = utcnow()
    frame = pd.DataFrame(
        {
            "lead_id": report.scores["lead_id"].astype("int64"),
            "customer_id": report.scores["customer_id"].astype("Int64"),
            "created_at": report.scores["created_at"],
            "win_probability": report.scores["win_probability"].astype(float),
            "lead_score_reasons": report.scores["lead_score_reasons"].astype(object),
            "model_version": model_version(report),
            "scored_at": scored_at,
        }
    )
    with store.begin() as conn:
        lock_tables(conn, lead_scores)
        conn.execute(lead_scores.delete())
        rows = store.insert_df(conn, "lead_scores", frame) if len(frame) else 0
    return int(rows)


def scored_at(store: Store) -> datetime | None:
    """When `lead_scores` was last written (UTC; None when leads were never scored)."""
    if "lead_scores" not in store.table_names():
        return None
    value = store.scalar(sa.select(sa.func.max(lead_scores.c.scored_at)))
    return None if value is None else pd.Timestamp(value).to_pydatetime()


def score(
    store: Store, settings: LeadSettings = LeadSettings(), progress: Progress | None = None
) -> LeadReport:
    """Fit, validate and write `lead_scores` (the customer 360's `lead_score` reads them)."""
    result = analyse(store, settings, progress)
    write_scores(store, result)
    return result


def score_if_any(store: Store, progress: Progress | None = None) -> LeadReport | None:
    """`score` with the default settings when the store has leads (None when it has none:
    a store without a sales pipeline is not short of anything)."""
    if SOURCE_TABLES[0] not in store.table_names() or not store.scalar(
        sa.select(sa.func.count()).select_from(leads)
    ):
        return None
    return score(store, LeadSettings(), progress)

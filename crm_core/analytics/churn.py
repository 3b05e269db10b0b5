"""Churn risk: who, of the customers active before a cutoff, will not buy in the next N days.

The label is data: a customer with a completed order in the year before the cutoff churns
when they place no completed order in the `window_days` after it. Features are computed
from what was known before the cutoff only (no leakage). Validation is out of time: train
on cutoff c1 (labels from (c1, c1 + N]), validate on c2 = c1 + N (labels (c2, c2 + N], the
latest labelled window), then refit on c2 and score current customers as of the last day.
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
from sklearn.calibration import calibration_curve
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import partial_dependence, permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from crm_core.analytics.clv import NotReadyError, data_span, no_purchases
from crm_core.errors import CRMError
from crm_core.filters import IS_PURCHASE, Filters, customer_scope, plural
from crm_core.schema import (
    campaign_contacts,
    customers,
    events,
    orders,
    support_tickets,
    survey_responses,
)
from crm_core.store import Store

SOURCE_TABLES = (
    "orders",
    "customers",
    "events",
    "survey_responses",
    "support_tickets",
    "campaign_contacts",
)
"""What the churn features are built from."""

Progress = Callable[[float, str], None]

DEFAULT_WINDOW_DAYS = 90
"""A customer churns when they make no purchase within this many days after the cutoff."""
ACTIVE_LOOKBACK_DAYS = 365
"""Customers with a completed order in this many days before the cutoff are 'active'."""
RECENT_DAYS = 90
"""'Recent' behaviour features (orders, visits, e-mail) look back this many days."""
SERVICE_DAYS = 180
"""Tickets, refunds and campaign contacts look back this many days."""
SURVEY_DAYS = 365
"""NPS and CSAT are averaged over the answers of this many days."""

CHURN_BANDS: tuple[tuple[float, str], ...] = ((0.6, "high"), (0.3, "medium"), (0.0, "low"))
"""Risk bands: high from 60%, medium from 30%, low below."""

MODELS: dict[str, str] = {
    "hgb": "Histogram gradient boosting",
    "logit": "Logistic regression",
}
"""Churn models that can be chosen."""

MIN_CUSTOMERS = 100
"""Fewer active customers than this in a window: not enough data to train or validate."""
MIN_PER_CLASS = 10
"""Fewer churners (or stayers) than this in a window: the metrics mean nothing."""

FEATURES: dict[str, str] = {
    "recency_days": "days since the last order",
    "frequency": "orders placed so far",
    "orders_recent": f"orders in the last {RECENT_DAYS} days",
    "monetary": "total spend so far",
    "aov": "average order value",
    "spend_trend": f"spend in the last {RECENT_DAYS} days minus the {RECENT_DAYS} days before",
    "tenure_days": "days since sign-up",
    "refunds": f"refunded orders in the last {SERVICE_DAYS} days",
    "visits": f"web and app visits in the last {RECENT_DAYS} days",
    "email_opens": f"e-mail opens in the last {RECENT_DAYS} days",
    "email_clicks": f"e-mail clicks in the last {RECENT_DAYS} days",
    "nps": f"average NPS answer (0-10) in the last {SURVEY_DAYS} days",
    "csat": f"average CSAT answer (1-5) in the last {SURVEY_DAYS} days",
    "tickets": f"support tickets in the last {SERVICE_DAYS} days",
    "open_tickets": "open support tickets",
    "consent_email": "e-mail consent (1 yes, 0 no)",
    "consent_sms": "SMS consent (1 yes, 0 no)",
    "campaigns": f"campaign messages received in the last {SERVICE_DAYS} days",
}
"""Model features (all as of the cutoff) and how a marketer would say them."""

BASELINE_FEATURE = "recency_days"

TRAIN_ROWS = 250_000
"""A model trains on at most this many customers (a random sample of the window): beyond
that the validation AUC hardly moves while training time grows with every row."""

THREADS = 1
"""OpenMP threads for training and scoring. More threads busy-wait when the cores are shared
(measured on a loaded 2-core box: 113 s with all threads, 1.7 s with one, 1,000 rows)."""


# --- features and labels ------------------------------------------------------------------


def _ts(day: date) -> datetime:
    """The first instant after `day` (the cutoff is the end of that day)."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time())


def build_dataset(
    store: Store,
    cutoff: date,
    window_days: int = DEFAULT_WINDOW_DAYS,
    *,
    labelled: bool = True,
    filters: Filters | None = None,
) -> pd.DataFrame:
    """Features as of the end of `cutoff` for customers active before it, and (if
    `labelled`) `churned`: 1 when they made no completed order in the next `window_days`."""
    ct = _ts(cutoff)
    days = timedelta(days=1)
    recent, service = ct - RECENT_DAYS * days, ct - SERVICE_DAYS * days
    completed = IS_PURCHASE
    before = orders.c.ordered_at < ct
    when = orders.c.ordered_at
    cols: list[Any] = [
        orders.c.customer_id,
        sa.func.count(sa.case((completed & before, 1))).label("frequency"),
        sa.func.sum(sa.case((completed & before, orders.c.amount))).label("monetary"),
        sa.func.max(sa.case((completed & before, when))).label("last_order"),
        sa.func.count(sa.case((completed & before & (when >= recent), 1))).label("orders_recent"),
        sa.func.sum(sa.case((completed & before & (when >= recent), orders.c.amount))).label(
            "spend_recent"
        ),
        sa.func.sum(
            sa.case(
                (
                    completed & (when >= recent - RECENT_DAYS * days) & (when < recent),
                    orders.c.amount,
                )
            )
        ).label("spend_before"),
        sa.func.count(
            sa.case((completed & before & (when >= ct - ACTIVE_LOOKBACK_DAYS * days), 1))
        ).label("orders_year"),
        sa.func.count(
            sa.case(((orders.c.status == "refunded") & before & (when >= service), 1))
        ).label("refunds"),
    ]
    if labelled:
        future = completed & (when >= ct) & (when < ct + window_days * days)
        cols.append(sa.func.count(sa.case((future, 1))).label("future_orders"))
    upper = ct + window_days * days if labelled else ct
    # Ordered: the fit depends on row order, which GROUP BY leaves to the backend.
    frame = store.read_df(
        sa.select(*cols)
        .where(when < upper)
        .group_by(orders.c.customer_id)
        .order_by(orders.c.customer_id)
    )
    frame = frame[frame["orders_year"] > 0]

    people = [customers.c.signup_at < ct]
    people += [(customers.c.erased_at.is_(None)) | (customers.c.erased_at >= ct)]
    if filters is not None:
        people += customer_scope(customers.c.customer_id, filters)
    who = store.read_df(
        sa.select(
            customers.c.customer_id,
            customers.c.signup_at,
            customers.c.consent_email,
            customers.c.consent_sms,
        ).where(*people)
    )
    frame = frame.merge(who, on="customer_id", how="inner")

    ev = store.read_df(
        sa.select(
            events.c.customer_id,
            sa.func.count(sa.case((events.c.event_type.in_(("visit", "app_open")), 1))).label(
                "visits"
            ),
            sa.func.count(sa.case((events.c.event_type == "email_open", 1))).label("email_opens"),
            sa.func.count(sa.case((events.c.event_type == "email_click", 1))).label("email_clicks"),
        )
        .where(events.c.occurred_at >= recent, events.c.occurred_at < ct)
        .group_by(events.c.customer_id)
    )
    sv = survey_responses
    surveys = store.read_df(
        sa.select(
            sv.c.customer_id,
            sa.func.avg(sa.case((sv.c.survey == "nps", sv.c.score))).label("nps"),
            sa.func.avg(sa.case((sv.c.survey == "csat", sv.c.score))).label("csat"),
        )
        .where(sv.c.answered_at >= ct - SURVEY_DAYS * days, sv.c.answered_at < ct)
        .group_by(sv.c.customer_id)
    )
    tk = support_tickets
    still_open = tk.c.closed_at.is_(None) | (tk.c.closed_at >= ct)
    tickets = store.read_df(
        sa.select(
            tk.c.customer_id,
            sa.func.count(sa.case((tk.c.opened_at >= service, 1))).label("tickets"),
            sa.func.count(sa.case((still_open, 1))).label("open_tickets"),
        )
        .where(tk.c.opened_at < ct, (tk.c.opened_at >= service) | still_open)
        .group_by(tk.c.customer_id)
    )
    cc = campaign_contacts
    contacts = store.read_df(
        sa.select(cc.c.customer_id, sa.func.count().label("campaigns"))
        .where(cc.c.sent_at >= service, cc.c.sent_at < ct, cc.c.test_group == "treatment")
        .group_by(cc.c.customer_id)
    )
    for extra in (ev, surveys, tickets, contacts):
        frame = frame.merge(extra, on="customer_id", how="left")
    return _finish_features(frame, ct, labelled)


def _finish_features(frame: pd.DataFrame, ct: datetime, labelled: bool) -> pd.DataFrame:
    """Turn aggregates into model features (numbers; NaN only where nothing is known)."""
    out = pd.DataFrame({"customer_id": frame["customer_id"].astype("int64")})
    cutoff = pd.Timestamp(ct)
    out["recency_days"] = (cutoff - pd.to_datetime(frame["last_order"])).dt.total_seconds() / 86400
    out["frequency"] = frame["frequency"].astype(float)
    out["orders_recent"] = frame["orders_recent"].astype(float)
    money = {
        c: pd.to_numeric(frame[c]).astype(float).fillna(0.0)
        for c in ("monetary", "spend_recent", "spend_before")
    }
    out["monetary"] = money["monetary"]
    out["aov"] = money["monetary"] / out["frequency"].clip(lower=1)
    out["spend_trend"] = money["spend_recent"] - money["spend_before"]
    out["tenure_days"] = (cutoff - pd.to_datetime(frame["signup_at"])).dt.total_seconds() / 86400
    out["refunds"] = frame["refunds"].astype(float)
    for col in ("visits", "email_opens", "email_clicks", "tickets", "open_tickets", "campaigns"):
        out[col] = pd.to_numeric(frame[col]).astype(float).fillna(0.0)
    for col in ("nps", "csat"):
        out[col] = pd.to_numeric(frame[col]).astype(float)  # NaN: never answered
    for col in ("consent_email", "consent_sms"):
        out[col] = frame[col].astype("boolean").fillna(False).astype(float)
    if labelled:
        out["churned"] = (frame["future_orders"].to_numpy() == 0).astype(int)
    return out.reset_index(drop=True)


# --- the model ----------------------------------------------------------------------------


def classifier(kind: str, random_state: int, **hgb_params: Any) -> Any:
    """An unfitted "hgb" (histogram gradient boosting, `hgb_params` over its defaults here)
    or "logit" (imputed, scaled logistic regression) classifier; None for another kind. The
    churn and lead models share it."""
    if kind == "hgb":
        params = {
            "max_iter": 200,
            "learning_rate": 0.1,
            "max_leaf_nodes": 15,
            "min_samples_leaf": 40,
            "l2_regularization": 1.0,
            "early_stopping": True,
            **hgb_params,
        }
        return HistGradientBoostingClassifier(random_state=random_state, **params)
    if kind == "logit":
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(max_iter=2000, random_state=random_state),
        )
    return None


@dataclass
class ChurnModel:
    """Churn classifier over FEATURES (scikit-learn contract: `fit` returns self).

    `kind` "hgb" is histogram gradient boosting (handles missing NPS/CSAT natively);
    "logit" is a logistic regression on median-imputed, standardised features.
    """

    kind: str = "hgb"
    features: tuple[str, ...] = tuple(FEATURES)
    random_state: int = 0

    def _estimator(self):
        found = classifier(self.kind, self.random_state, learning_rate=0.1, min_samples_leaf=40)
        if found is None:
            raise CRMError(f"Churn model {self.kind!r} is not known; allowed: {', '.join(MODELS)}.")
        return found

    def fit(self, data: pd.DataFrame) -> ChurnModel:
        """Fit on a labelled dataset from `build_dataset`; features with no value at all in
        it (e.g. NPS in a store without surveys) are left out (`feature_names_in_`)."""
        _check_labelled(data, "training")
        self.feature_names_in_ = [f for f in self.features if data[f].notna().any()]
        if not self.feature_names_in_:
            raise CRMError("No churn feature has a value; import `orders` first.")
        if len(data) > TRAIN_ROWS:
            data = data.sample(n=TRAIN_ROWS, random_state=self.random_state)
        self.estimator_ = self._estimator().fit(
            data[self.feature_names_in_], data["churned"].to_numpy()
        )
        self.churn_rate_ = float(data["churned"].mean())
        self.reference_ = data[self.feature_names_in_].median()
        return self

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        """Probability of churn per row."""
        return self.estimator_.predict_proba(data[self.feature_names_in_])[:, 1]


CHURN_NEEDS = (
    f"the classifier needs at least {MIN_CUSTOMERS} customers active in each window, "
    f"{MIN_PER_CLASS} of whom buy again and {MIN_PER_CLASS} who do not."
)


def _check_labelled(data: pd.DataFrame, what: str, window_days: int | None = None) -> None:
    n = len(data)
    churners = int(data["churned"].sum()) if n else 0
    stayers = n - churners
    window = f"{window_days}-day " if window_days else ""
    problems = []
    if n < MIN_CUSTOMERS:
        problems.append(
            f"the {what} window has {n:,} active customers (a purchase in the year before its "
            f"cutoff); at least {MIN_CUSTOMERS} are needed. Import more customers' orders."
        )
    elif stayers < MIN_PER_CLASS:
        problems.append(
            f"in the {what} window {churners:,} of {n:,} active customers bought nothing in the "
            f"{window}window after the cutoff and {stayers:,} bought again; at least "
            f"{MIN_PER_CLASS} of each are needed. With one-time buyers nobody stays: import a "
            "longer history, or choose a longer churn window (the page's churn window, or "
            "`score --window DAYS`)."
        )
    elif churners < MIN_PER_CLASS:
        problems.append(
            f"in the {what} window {stayers:,} of {n:,} active customers bought again in the "
            f"{window}window after the cutoff and {churners:,} did not; at least "
            f"{MIN_PER_CLASS} of each are needed. Choose a shorter churn window (the page's "
            "churn window, or `score --window DAYS`)."
        )
    if problems:
        raise NotReadyError(problems, "Churn")


def band(risk: np.ndarray) -> np.ndarray:
    """The risk band (low, medium, high) of each churn probability."""
    risk = np.asarray(risk, dtype=float)
    return np.select(
        [risk >= lo for lo, _ in CHURN_BANDS], [name for _, name in CHURN_BANDS], "low"
    )


# --- per-customer reasons and drift -------------------------------------------------------

REASON_BANDS = ("high",)
"""Bands whose customers get reasons: the ones someone acts on."""
REASON_MIN_ODDS = 1.1
"""A feature is a reason when it multiplies a customer's odds of churning by at least this."""
REASONS_SHOWN = 3
MISSING_REASON = {
    "nps": f"no NPS answer in the last {SURVEY_DAYS} days",
    "csat": f"no CSAT answer in the last {SURVEY_DAYS} days",
}
"""How a reason reads when the feature has no value (the customer never answered)."""


def _shown_value(feature: str, value: float) -> str:
    if np.isnan(value):
        return "none"
    if feature in ("consent_email", "consent_sms"):
        return "yes" if value >= 0.5 else "no"
    if feature in ("monetary", "aov", "spend_trend"):
        return f"${value:,.0f}"
    return f"{value:,.1f}" if feature in ("nps", "csat") else f"{value:,.0f}"


def _reason(feature: str, value: float) -> str:
    if np.isnan(value) and feature in MISSING_REASON:
        return MISSING_REASON[feature]
    return f"{FEATURES[feature]} {_shown_value(feature, value)}"


def _tree_contributions(estimator: HistGradientBoostingClassifier, X: np.ndarray) -> np.ndarray:
    """Each feature's share of each row's log-odds, from the trees themselves (Saabas): on
    every split a row passes, the change in the tree's expected output (the count-weighted
    mean of the leaves below) goes to the split's feature. Per row, the parts plus the
    trees' expected output at the root add up to the model's log-odds exactly."""
    n, k = X.shape
    out = np.zeros((n, k))
    rows = np.arange(n)
    for (tree,) in estimator._predictors:
        nodes = tree.nodes
        if nodes["is_categorical"].any():
            raise CRMError("Churn reasons need numeric features; a categorical split was found.")
        expected = nodes["value"].astype(float)  # leaves: their (shrunk) values
        for i in range(len(nodes) - 1, -1, -1):  # children come after their parent
            if not nodes["is_leaf"][i]:
                left, right = nodes["left"][i], nodes["right"][i]
                n_left, n_right = float(nodes["count"][left]), float(nodes["count"][right])
                expected[i] = (n_left * expected[left] + n_right * expected[right]) / max(
                    n_left + n_right, 1.0
                )
        at = np.zeros(n, dtype=np.intp)
        while True:
            inner = ~nodes["is_leaf"][at].astype(bool)
            if not inner.any():
                break
            idx, node = rows[inner], at[inner]
            feature = nodes["feature_idx"][node]
            x = X[idx, feature]
            go_left = np.where(
                np.isnan(x),
                nodes["missing_go_to_left"][node].astype(bool),
                x <= nodes["num_threshold"][node],
            )
            child = np.where(go_left, nodes["left"][node], nodes["right"][node]).astype(np.intp)
            out[idx, feature] += expected[child] - expected[node]  # one split per row
            at[inner] = child
    return out


def log_odds_contributions(model: ChurnModel, data: pd.DataFrame) -> pd.DataFrame:
    """How much each feature adds to each customer's log-odds of churning, from the model:
    for gradient boosting the trees' own split contributions, for the logistic regression
    coefficient x standardised value (missing-value indicators added to their feature).
    Positive pushes risk up; exp(part) is the factor by which it multiplies the odds."""
    frame = data[model.feature_names_in_].astype(float)
    if model.kind == "hgb":
        parts = _tree_contributions(model.estimator_, frame.to_numpy())
    else:
        imputer, scaler, logit = (step for _, step in model.estimator_.steps)
        z = scaler.transform(imputer.transform(frame))
        terms = z * logit.coef_[0]
        k = len(model.feature_names_in_)
        parts = terms[:, :k].copy()
        indicator = getattr(imputer, "indicator_", None)
        for j, feature in enumerate(indicator.features_ if indicator is not None else []):
            parts[:, feature] += terms[:, k + j]
    return pd.DataFrame(parts, index=data.index, columns=model.feature_names_in_)


def churn_reasons(model: ChurnModel, data: pd.DataFrame, top: int = REASONS_SHOWN) -> pd.Series:
    """Per customer, the features that push their risk up most, in words, e.g.
    "days since the last order 214 (odds x3.1); support tickets in the last 180 days 5
    (odds x1.8)"."""
    if data.empty:
        return pd.Series([], index=data.index, dtype=object)
    contributions = log_odds_contributions(model, data)
    names = list(contributions.columns)
    parts = contributions.to_numpy()
    values = data[names].to_numpy(dtype=float)
    order = np.argsort(-parts, axis=1, kind="stable")[:, :top]
    floor = np.log(REASON_MIN_ODDS)
    texts = []
    for i, best in enumerate(order):
        shown = [
            f"{_reason(names[j], values[i, j])} (odds x{np.exp(parts[i, j]):.1f})"
            for j in best
            if parts[i, j] >= floor
        ]
        texts.append("; ".join(shown) or None)
    return pd.Series(texts, index=data.index, dtype=object)


PSI_MOVED = 0.1
"""Population stability index from which a feature's distribution has moved."""
PSI_SHIFTED = 0.25
"""... and from which it has shifted so much that the scores should not be trusted as is."""


def population_stability(expected: pd.Series, actual: pd.Series, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected`: sum over bins of
    (a - e) * ln(a / e), bins from the quantiles of `expected` (missing values a bin)."""
    e, a = expected.to_numpy(dtype=float), actual.to_numpy(dtype=float)
    known = e[~np.isnan(e)]
    if len(known) == 0 or len(a) == 0:
        return 0.0
    edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1]))

    def shares(x: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, x[~np.isnan(x)], side="right"),
                             minlength=len(edges) + 1).astype(float)  # fmt: skip
        counts = np.append(counts, np.isnan(x).sum())
        return np.clip(counts / len(x), 1e-4, None)

    pe, pa = shares(e), shares(a)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def feature_drift(
    model: ChurnModel, trained_on: pd.DataFrame, scored: pd.DataFrame
) -> pd.DataFrame:
    """Each model feature's distribution at scoring against the data the scoring model was
    trained on: PSI, means, and a status (stable, moved, shifted), most moved first."""
    rows = []
    for feature in model.feature_names_in_:
        psi = population_stability(trained_on[feature], scored[feature])
        status = "shifted" if psi >= PSI_SHIFTED else "moved" if psi >= PSI_MOVED else "stable"
        rows.append(
            {
                "feature": feature,
                "label": FEATURES[feature],
                "psi": psi,
                "trained_mean": float(trained_on[feature].mean()),
                "scoring_mean": float(scored[feature].mean()) if len(scored) else np.nan,
                "status": status,
            }
        )
    return pd.DataFrame(rows).sort_values("psi", ascending=False).reset_index(drop=True)


# --- validation ---------------------------------------------------------------------------


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision) and Brier score."""
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
    }


def gains(y: np.ndarray, scores: dict[str, np.ndarray], bins: int = 10) -> pd.DataFrame:
    """Share of churners found when contacting the top x% by each score (x in 10% steps)."""
    rows = [{"contacted": 0.0, **{name: 0.0 for name in scores}}]
    total = max(int(np.sum(y)), 1)
    order = {name: np.argsort(-s, kind="stable") for name, s in scores.items()}
    for k in range(1, bins + 1):
        top = int(round(len(y) * k / bins))
        row = {"contacted": k / bins}
        for name, idx in order.items():
            row[name] = float(np.sum(y[idx[:top]]) / total)
        rows.append(row)
    return pd.DataFrame(rows)


def describe_driver(data: pd.DataFrame, feature: str) -> str:
    """A sentence on how the churn rate differs across `feature` (observed, not modelled)."""
    x = data[feature].to_numpy(dtype=float)
    y = data["churned"].to_numpy()
    known = ~np.isnan(x)
    label = FEATURES.get(feature, feature)
    best = None
    values = np.unique(x[known])
    if len(values) > 12:
        candidates = np.unique(np.nanquantile(x[known], [0.2, 0.35, 0.5, 0.65, 0.8]))
    else:
        candidates = values[1:]
    min_group = max(int(0.05 * known.sum()), 5)
    for t in candidates:
        hi = known & (x >= t)
        lo = known & (x < t)
        if hi.sum() < min_group or lo.sum() < min_group:
            continue
        rate_hi, rate_lo = y[hi].mean(), y[lo].mean()
        if rate_hi <= 0 or rate_lo <= 0:
            continue
        score = abs(np.log(rate_hi / rate_lo))
        if best is None or score > best[0]:
            best = (score, t, rate_hi, rate_lo)
    if best is None:
        return f"Churn varies little with {label}."
    _, t, rate_hi, rate_lo = best
    shown = f"{t:,.0f}" if abs(t) >= 10 or t == int(t) else f"{t:,.1f}"
    if rate_hi >= rate_lo:
        return (
            f"Customers with {label} of {shown} or more churn {rate_hi / rate_lo:.1f}x as "
            f"often as the others ({rate_hi:.0%} against {rate_lo:.0%})."
        )
    return (
        f"Customers with {label} below {shown} churn {rate_lo / rate_hi:.1f}x as often "
        f"as those with {shown} or more ({rate_lo:.0%} against {rate_hi:.0%})."
    )


@dataclass(frozen=True)
class ChurnSettings:
    """What the analyst picks: model, churn window, as-of day, countries and channels."""

    model: str = "hgb"
    window_days: int = DEFAULT_WINDOW_DAYS
    as_of: date | None = None
    countries: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    random_state: int = 0
    top_drivers: int = 5
    importance_rows: int = 10_000


@dataclass
class ChurnReport:
    """Validation figures, drivers and current risk per customer."""

    settings: ChurnSettings
    train_cutoff: date
    valid_cutoff: date
    as_of: date
    n_train: int
    n_valid: int
    churn_rate_valid: float
    metrics: pd.DataFrame  # model/baseline x roc_auc, pr_auc, brier
    calibration: pd.DataFrame  # predicted, observed (model)
    gains: pd.DataFrame
    drivers: pd.DataFrame  # feature, label, importance, sentence
    dependence: dict[str, pd.DataFrame]
    scores: pd.DataFrame  # customer_id, churn_risk, churn_band, churn_reasons, key features
    train_seconds: float
    drift: pd.DataFrame = field(default_factory=pd.DataFrame)  # feature, psi, means, status
    notes: list[str] = field(default_factory=list)

    def metric(self, name: str, who: str = "model") -> float:
        """One validation figure of the model or the baseline."""
        return float(self.metrics.loc[who, name])

    def as_dict(self) -> dict[str, Any]:
        """Validation metrics and top drivers as plain JSON-able values."""
        return {
            "model": self.settings.model,
            "window_days": self.settings.window_days,
            "train_cutoff": str(self.train_cutoff),
            "valid_cutoff": str(self.valid_cutoff),
            "as_of": str(self.as_of),
            "train_customers": self.n_train,
            "valid_customers": self.n_valid,
            "valid_churn_rate": round(self.churn_rate_valid, 4),
            "metrics": {
                who: {k: round(float(v), 4) for k, v in row.items()}
                for who, row in self.metrics.iterrows()
            },
            "drivers": [
                {
                    "feature": r.feature,
                    "importance": round(float(r.importance), 4),
                    "says": r.sentence,
                }
                for r in self.drivers.itertuples()
            ],
            "scored_customers": len(self.scores),
            "drift": [
                {"feature": r.feature, "psi": round(float(r.psi), 4), "status": r.status}
                for r in self.drift.itertuples()
            ],
            "bands": self.scores["churn_band"].value_counts().to_dict(),
            "train_seconds": round(self.train_seconds, 2),
        }


def analyse(
    store: Store, settings: ChurnSettings = ChurnSettings(), progress: Progress | None = None
) -> ChurnReport:
    """Train at c1, validate at c2 against a recency baseline, explain, score as of today."""
    with threadpool_limits(limits=THREADS):
        return _analyse(store, settings, progress)


def _analyse(store: Store, settings: ChurnSettings, progress: Progress | None) -> ChurnReport:
    report = progress or (lambda fraction, message: None)
    started = _time.perf_counter()
    if settings.window_days < 7:
        raise CRMError(f"The churn window must be at least 7 days; got {settings.window_days}.")
    scope = Filters(date.min, date.max, settings.countries, settings.channels)
    span = data_span(store, scope)
    if span is None:
        raise no_purchases(store, "Churn", CHURN_NEEDS, scope)
    first, last = span
    as_of = min(settings.as_of or last, last)
    n = timedelta(days=settings.window_days)
    valid_cutoff = as_of - n
    train_cutoff = valid_cutoff - n
    if train_cutoff - first < timedelta(days=RECENT_DAYS):
        needed = 2 * settings.window_days + RECENT_DAYS
        days = (as_of - first).days
        span_text = f"{first}" if days == 0 else f"{first} to {as_of}"
        raise NotReadyError(
            [
                f"the purchases span {plural(days + 1, 'day')} ({span_text}); a "
                f"{settings.window_days}-day churn window needs at least {needed} days: "
                f"{RECENT_DAYS} of history before the training cutoff, then a window to train "
                "and one to validate. Import orders going back to "
                f"{train_cutoff - timedelta(RECENT_DAYS)} or earlier, or choose a shorter churn "
                "window (the page's churn window, or `score --window DAYS`)."
            ],
            "Churn",
        )
    report(0.05, "Features at the training cutoff")
    train = build_dataset(store, train_cutoff, settings.window_days, filters=scope)
    report(0.2, "Features at the validation cutoff")
    valid = build_dataset(store, valid_cutoff, settings.window_days, filters=scope)
    _check_labelled(train, "training", settings.window_days)
    _check_labelled(valid, "validation", settings.window_days)

    report(0.35, "Training")
    model = ChurnModel(kind=settings.model, random_state=settings.random_state).fit(train)
    baseline = ChurnModel(
        kind="logit", features=(BASELINE_FEATURE,), random_state=settings.random_state
    ).fit(train)
    y = valid["churned"].to_numpy()
    p_model, p_base = model.predict_proba(valid), baseline.predict_proba(valid)
    metrics = pd.DataFrame({"model": evaluate(y, p_model), "baseline": evaluate(y, p_base)}).T
    observed, predicted = calibration_curve(y, p_model, n_bins=10, strategy="quantile")
    calibration = pd.DataFrame({"predicted": predicted, "observed": observed})
    gains_table = gains(y, {"model": p_model, "baseline": p_base})

    report(0.55, "Drivers (permutation importance)")
    sample = valid.sample(
        n=min(len(valid), settings.importance_rows), random_state=settings.random_state
    )
    importance = permutation_importance(
        model.estimator_,
        sample[model.feature_names_in_],
        sample["churned"].to_numpy(),
        scoring="roc_auc",
        n_repeats=3,
        random_state=settings.random_state,
    )
    drivers = (
        pd.DataFrame(
            {"feature": model.feature_names_in_, "importance": importance.importances_mean}
        )
        .query("importance > 0")
        .sort_values("importance", ascending=False)
        .head(settings.top_drivers)
        .reset_index(drop=True)
    )
    drivers["label"] = drivers["feature"].map(FEATURES)
    drivers["sentence"] = [describe_driver(valid, f) for f in drivers["feature"]]
    report(0.7, "Partial dependence")
    dependence = _dependence(model, sample, list(drivers["feature"].head(3)))

    report(0.8, "Refitting on the latest window and scoring current customers")
    final = ChurnModel(kind=settings.model, random_state=settings.random_state).fit(valid)
    current = build_dataset(store, as_of, labelled=False, filters=scope)
    scores = current[
        ["customer_id", "recency_days", "frequency", "monetary", "open_tickets", "nps"]
    ].copy()
    scores["churn_risk"] = final.predict_proba(current) if len(current) else []
    scores["churn_band"] = band(scores["churn_risk"].to_numpy())
    report(0.9, "Reasons for the customers at risk, feature drift")
    at_risk = scores["churn_band"].isin(REASON_BANDS).to_numpy()
    scores["churn_reasons"] = None
    scores.loc[at_risk, "churn_reasons"] = churn_reasons(final, current.loc[at_risk])
    drift = feature_drift(final, valid, current)
    report(1.0, "Done")
    return ChurnReport(
        settings=settings,
        train_cutoff=train_cutoff,
        valid_cutoff=valid_cutoff,
        as_of=as_of,
        n_train=len(train),
        n_valid=len(valid),
        churn_rate_valid=float(y.mean()),
        metrics=metrics,
        calibration=calibration,
        gains=gains_table,
        drivers=drivers,
        dependence=dependence,
        scores=scores,
        train_seconds=_time.perf_counter() - started,
        drift=drift,
        notes=drift_notes(drift),
    )


def drift_notes(drift: pd.DataFrame) -> list[str]:
    """Warnings for features whose distribution at scoring moved from training."""
    moved = drift[drift["status"] != "stable"] if not drift.empty else drift
    if moved.empty:
        return []
    listed = "; ".join(
        f"{r.label} ({r.status}: PSI {r.psi:.2f}, mean {r.trained_mean:,.1f} in training, "
        f"{r.scoring_mean:,.1f} now)"
        for r in moved.head(5).itertuples()
    )
    return [
        f"{len(moved)} feature(s) look different at scoring than in training, so risks that "
        f"lean on them are less reliable: {listed}."
    ]


DEPENDENCE_ROWS = 5_000
"""Customers (of the importance sample) averaged over for each partial-dependence point."""


def _dependence(
    model: ChurnModel, sample: pd.DataFrame, features: list[str]
) -> dict[str, pd.DataFrame]:
    """Average predicted churn across the range of each feature (partial dependence)."""
    out = {}
    X = sample[model.feature_names_in_].head(DEPENDENCE_ROWS)
    for feature in features:
        column = X[feature].dropna()
        if column.nunique() < 2:
            continue
        result = partial_dependence(
            model.estimator_,
            X.fillna(X.median()),
            [feature],
            grid_resolution=20,
            kind="average",
            method="brute",
            response_method="predict_proba",
        )
        out[feature] = pd.DataFrame(
            {"value": result["grid_values"][0], "churn_probability": result["average"][0]}
        )
    return out


def value_at_risk(scores: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """Churn risk beside CLV and P(alive); value at risk = churn risk x CLV."""
    keep = ["customer_id", "clv", "p_alive", "first_name", "last_name", "email", "country"]
    merged = scores.merge(
        values[[c for c in keep if c in values.columns]], on="customer_id", how="left"
    )
    merged["value_at_risk"] = merged["churn_risk"] * merged["clv"].fillna(0.0)
    return merged.sort_values("value_at_risk", ascending=False).reset_index(drop=True)


def band_summary(at_risk: pd.DataFrame) -> pd.DataFrame:
    """Customers, mean risk, total CLV and value at risk per band."""
    grouped = at_risk.groupby("churn_band").agg(
        customers=("customer_id", "size"),
        mean_risk=("churn_risk", "mean"),
        total_clv=("clv", "sum"),
        value_at_risk=("value_at_risk", "sum"),
    )
    order = [name for _, name in reversed(CHURN_BANDS)]
    return grouped.reindex([b for b in order if b in grouped.index]).reset_index()

"""Customer lifetime value: BG/NBD (or Pareto/NBD, MBG/NBD) purchases x Gamma-Gamma spend.

Time convention (the one that reproduces Fader, Hardie & Lee 2005 on CDNOW, see
`crm_core.datasets`): purchases on the same day count as one; a customer's calibration
history runs from their first purchase day to the calibration end day (inclusive);
`frequency` = distinct purchase days - 1, `recency` = last - first purchase day, `T` =
calibration end - first purchase day, in days or weeks (days / 7). `monetary_value` is the
mean spend of the repeat purchase days (the first purchase is excluded, as in lifetimes).

The models are fitted on the unique (frequency, recency, T) rows with their counts as
weights: lifetimes' likelihood is a weighted mean, so the parameters equal those of the
unweighted fit while a million customers collapse to a few hundred thousand rows or less.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crm_core import features
from crm_core.analytics import next_purchase
from crm_core.errors import CRMError
from crm_core.filters import IS_PURCHASE, Filters, completed_orders_where, plural
from crm_core.schema import customers, orders
from crm_core.store import Store

SOURCE_TABLES = ("orders", "customers")
"""What the CLV models are fitted on (orders; customers for the filter scope)."""

Progress = Callable[[float, str], None]

TIME_UNITS: dict[str, int] = {"days": 1, "weeks": 7}
"""Length of one model time unit in days."""

PURCHASE_MODELS: dict[str, str] = {
    "bgnbd": "BG/NBD (Fader, Hardie & Lee 2005)",
    "pareto": "Pareto/NBD (Schmittlein, Morrison & Colombo 1987)",
    "mbgnbd": "MBG/NBD (Batislam, Denizel & Filiztekin 2007)",
}
"""Purchase models that can be chosen, with their source."""

PENALIZER_RETRIES: tuple[float, ...] = (0.001, 0.01, 0.1)
"""Penalizers tried in turn when a fit without one does not converge."""

DAYS_PER_MONTH = 365.25 / 12

MIN_CUSTOMERS = 50
"""Fewer customers with a purchase in the calibration period than this: not enough data."""
MIN_REPEAT_CUSTOMERS = 20
"""Fewer customers with a repeat purchase than this: the models cannot be identified."""
MIN_CALIBRATION_DAYS = 60
"""Shortest calibration period (first purchase to calibration end) that is worth fitting."""
MIN_HOLDOUT_DAYS = 14
"""Shortest holdout period for the backtest."""
MIN_HISTORY_DAYS = 2 * MIN_CALIBRATION_DAYS
"""Shortest history (first to last purchase) with the default calibration end: half of it
fits the models, the other half checks them."""
MAX_HOLDOUT_DAYS = 365
"""Default holdout: half the history, at most this many days."""

FREQUENCY_GROUPS = 7
"""Backtest groups: 0, 1, ..., 6 and 7+ repeat purchases in the calibration period."""


NEXT_PURCHASE_COLUMNS = (
    "p_purchase_7d",
    "p_purchase_30d",
    "p_purchase_90d",
    "next_purchase_from",
    "next_purchase_to",
)
"""What `value_customers` adds from `next_purchase.predictions`, written with the scores."""


class NotReadyError(CRMError):
    """The data are not enough for a model; `problems` says what is missing and `model`
    which model it is ("CLV", "Churn"; empty when the view names it)."""

    def __init__(self, problems: list[str], model: str = "") -> None:
        self.problems = problems
        self.model = model
        head = f"{model}:" if model else "Not enough data for this model:"
        super().__init__(f"{head} " + " ".join(problems))


def no_purchases(
    store: Store, model: str, needs: str, filters: Filters | None = None
) -> NotReadyError:
    """The NotReadyError for a store (or filter) without purchases: no orders at all, or
    orders none of which counts (`filters.IS_PURCHASE`), with their statuses."""
    conditions = completed_orders_where(filters) if filters is not None else []
    scope = [c for c in conditions if c is not IS_PURCHASE]  # countries and channels only
    where = " in the chosen countries and channels" if scope else ""
    stmt = sa.select(orders.c.status, sa.func.count().label("n")).where(*scope)
    counts = store.read_df(stmt.group_by(orders.c.status).order_by(sa.desc("n")))
    total = int(counts["n"].sum()) if len(counts) else 0
    if total == 0:
        return NotReadyError([f"the store has no orders{where}; import `orders`: {needs}"], model)
    statuses = ", ".join(f"{int(r.n):,} {r.status}" for r in counts.itertuples())
    return NotReadyError(
        [
            f"none of the {total:,} orders{where} is a purchase ({statuses}): refunded and "
            f"cancelled orders never count; {needs} Import the completed orders (or map the "
            "file's paid status to `completed` when importing `orders`)."
        ],
        model,
    )


CLV_NEEDS = (
    f"the models need purchases of at least {MIN_CUSTOMERS} customers, "
    f"{MIN_REPEAT_CUSTOMERS} of them on 2 or more days."
)


# --- the RFM summary ----------------------------------------------------------------------


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min)


def rfm_summary(
    store: Store,
    calibration_end: date,
    *,
    observation_end: date | None = None,
    time_unit: str = "days",
    filters: Filters | None = None,
) -> pd.DataFrame:
    """One row per customer who bought by `calibration_end`: frequency, recency, T, monetary
    value in the calibration period and repeat purchase days in the holdout up to
    `observation_end` (vectorised SQL: two GROUP BYs, no per-customer Python).

    `filters` keeps only its countries and sales channels; its dates are not used.
    """
    unit = _unit_days(time_unit)
    observation_end = observation_end or calibration_end
    if observation_end < calibration_end:
        raise CRMError(
            f"The calibration end {calibration_end} is after the last data day "
            f"{observation_end}; pick a calibration end on or before {observation_end}."
        )
    where = completed_orders_where(filters) if filters is not None else [IS_PURCHASE]
    day = sa.cast(orders.c.ordered_at, sa.Date)
    daily = (
        sa.select(
            orders.c.customer_id,
            day.label("day"),
            sa.func.sum(orders.c.amount).label("amount"),
        )
        .where(*where, orders.c.ordered_at < _day_start(observation_end + timedelta(days=1)))
        .group_by(orders.c.customer_id, day)
        .subquery("daily")
    )
    ranked = sa.select(
        daily,
        sa.func.row_number()
        .over(partition_by=daily.c.customer_id, order_by=daily.c.day)
        .label("rn"),
    ).subquery("ranked")
    in_cal = ranked.c.day <= calibration_end
    stmt = (
        sa.select(
            ranked.c.customer_id,
            sa.func.count(sa.case((in_cal, 1))).label("cal_days"),
            sa.func.min(sa.case((in_cal, ranked.c.day))).label("first_day"),
            sa.func.max(sa.case((in_cal, ranked.c.day))).label("last_day"),
            sa.func.sum(sa.case((in_cal & (ranked.c.rn > 1), ranked.c.amount))).label("repeat"),
            sa.func.count(sa.case((~in_cal, 1))).label("holdout_purchases"),
        )
        .group_by(ranked.c.customer_id)
        .having(sa.func.count(sa.case((in_cal, 1))) > 0)
        .order_by(ranked.c.customer_id)
    )
    raw = store.read_df(stmt)
    return _summary_from_days(raw, calibration_end, unit)


def _summary_from_days(raw: pd.DataFrame, calibration_end: date, unit: int) -> pd.DataFrame:
    """frequency/recency/T/monetary_value from per-customer purchase-day aggregates."""
    first = pd.to_datetime(raw["first_day"])
    last = pd.to_datetime(raw["last_day"])
    end = pd.Timestamp(calibration_end)
    frequency = raw["cal_days"].astype("int64") - 1
    repeat = pd.to_numeric(raw["repeat"], errors="coerce").astype(float).fillna(0.0)
    summary = pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype("int64"),
            "frequency": frequency,
            "recency": (last - first).dt.days / unit,
            "T": (end - first).dt.days / unit,
            "monetary_value": np.where(frequency > 0, repeat / frequency.clip(lower=1), 0.0),
            "holdout_purchases": raw["holdout_purchases"].astype("int64"),
        }
    )
    return summary.reset_index(drop=True)


def _unit_days(time_unit: str) -> int:
    if time_unit not in TIME_UNITS:
        raise CRMError(f"Time unit {time_unit!r} is not known; allowed: {', '.join(TIME_UNITS)}.")
    return TIME_UNITS[time_unit]


# --- the model ----------------------------------------------------------------------------


def _without_hessian(fitter_class: type) -> type:
    """`fitter_class` whose fit skips lifetimes' autograd Hessian (and standard errors).

    lifetimes computes the Hessian after every fit for its standard errors, which this app
    does not show; its second derivatives of gammaln (polygamma) cost as much as the fit
    itself at a million customers. The optimisation is lifetimes' own, unchanged.
    """
    from autograd import value_and_grad
    from lifetimes.fitters import BaseFitter
    from lifetimes.utils import ConvergenceError
    from scipy.optimize import minimize

    if fitter_class._fit is not BaseFitter._fit:  # Pareto/NBD: its own Nelder-Mead, no Hessian
        return fitter_class

    def _fit(self, args, initial_params, params_size, disp, tol=1e-7, bounds=None, **kwargs):
        x0 = 0.1 * np.ones(params_size) if initial_params is None else initial_params
        output = minimize(
            value_and_grad(self._negative_log_likelihood),
            jac=True,
            tol=tol,
            x0=x0,
            args=args,
            options={"disp": disp, **kwargs},
            bounds=bounds,
        )
        if not output.success:
            raise ConvergenceError(f"The model did not converge: {output.message}")
        return output.x, output.fun, None

    def _skipped(self) -> None:
        return None

    overrides = {
        "_fit": _fit,
        "_compute_variance_matrix": _skipped,
        "_compute_standard_errors": _skipped,
        "_compute_confidence_intervals": _skipped,
    }
    return type(fitter_class.__name__, (fitter_class,), overrides)


def _fitter_class(model: str):
    from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter

    classes = {"bgnbd": BetaGeoFitter, "pareto": ParetoNBDFitter, "mbgnbd": ModifiedBetaGeoFitter}
    if model not in classes:
        raise CRMError(
            f"Purchase model {model!r} is not known; allowed: {', '.join(PURCHASE_MODELS)}."
        )
    return _without_hessian(classes[model])


def check_summary(summary: pd.DataFrame) -> None:
    """Raise CRMError (what, got, allowed, fix) when an RFM summary cannot be fitted."""
    needed = {"frequency", "recency", "T"}
    missing = needed - set(summary.columns)
    if missing:
        raise CRMError(
            f"The RFM summary lacks the column(s) {', '.join(sorted(missing))}; it needs "
            "frequency, recency and T (and monetary_value for spend)."
        )
    if len(summary) < 2:
        raise CRMError(
            f"A CLV model needs many customers; got {len(summary)}. Import more orders "
            f"(at least {MIN_CUSTOMERS} customers, {MIN_REPEAT_CUSTOMERS} of them repeat buyers)."
        )
    f, r, t = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    bad = [
        (np.isnan(f) | np.isnan(r) | np.isnan(t), "have a missing frequency, recency or T"),
        (f < 0, "have a negative frequency"),
        (f != np.floor(f), "have a non-integer frequency"),
        (r < 0, "have a negative recency (last purchase before the first)"),
        (r > t, "have recency greater than T (a purchase after the calibration end)"),
        ((f == 0) & (r != 0), "have recency > 0 but no repeat purchase"),
    ]
    for mask, what in bad:
        if mask.any():
            raise CRMError(
                f"{int(mask.sum())} customer(s) {what}, e.g. customer row "
                f"{int(np.flatnonzero(mask)[0])}; allowed: 0 <= recency <= T, integer "
                "frequency >= 0, recency 0 when frequency is 0. Fix: rebuild the summary "
                "with `rfm_summary` up to the calibration end."
            )
    if not (f > 0).any():
        raise NotReadyError(
            [
                f"all {len(summary):,} customers bought only once in the calibration period; "
                "BG/NBD needs repeat buyers. Pick a later calibration end or import more orders."
            ],
            "CLV",
        )


@dataclass
class CLVModel:
    """Purchase model (BG/NBD, Pareto/NBD or MBG/NBD) plus Gamma-Gamma spend model.

    scikit-learn contract: parameters here, `fit` returns self, learned state ends in `_`.
    lifetimes' fits are deterministic; `random_state` seeds only the simulated
    period-transactions histogram.
    """

    model: str = "bgnbd"
    penalizer: float = 0.0
    weighted: bool = True
    random_state: int = 0

    def fit(self, summary: pd.DataFrame) -> CLVModel:
        """Fit both models on an RFM summary (see `rfm_summary`); CRMError on bad input."""
        check_summary(summary)
        fitter_class = _fitter_class(self.model)
        rows, weights = _unique_rows(summary, ["frequency", "recency", "T"], self.weighted)

        def fit_purchases(pen: float, extra: dict[str, Any], take: slice | np.ndarray = _ALL):
            if self.model == "pareto" and "initial_params" not in extra:
                # lifetimes starts Pareto/NBD from numpy's unseeded global generator (a normal
                # around 1): start at that mean instead, so that the same data give one fit.
                extra = {**extra, "initial_params": np.ones(len(self.params_names_("pareto")))}
            return fitter_class(penalizer_coef=pen).fit(
                rows["frequency"].to_numpy()[take],
                rows["recency"].to_numpy()[take],
                rows["T"].to_numpy()[take],
                weights=weights[take],
                **extra,
            )

        self.purchase_model_, self.penalizer_, self.fit_note_ = _fit_with_retries(
            fit_purchases,
            self.penalizer,
            list(self.params_names_(self.model)),
            _warm_start(fit_purchases, len(rows), self.penalizer, self.random_state),
        )
        self.spend_model_ = None
        self.spend_penalizer_ = 0.0
        self.spend_note_ = ""
        self.spend_left_out_ = 0
        if "monetary_value" in summary.columns:
            self._fit_spend(summary)
        self.n_customers_ = len(summary)
        self.n_repeat_ = int((summary["frequency"] > 0).sum())
        self.n_fit_rows_ = len(rows)
        return self

    def _fit_spend(self, summary: pd.DataFrame) -> None:
        from lifetimes import GammaGammaFitter

        repeat = summary[summary["frequency"] > 0]
        spend = repeat["monetary_value"].to_numpy(dtype=float)
        unpaid = ~(spend > 0)  # zero, negative or missing: Gamma-Gamma cannot take them
        self.spend_left_out_ = int(unpaid.sum())
        repeat = repeat[~unpaid]
        if len(repeat) < MIN_REPEAT_CUSTOMERS:
            raise NotReadyError([_unpaid_problem(len(repeat), self.spend_left_out_)], "CLV")
        rows, weights = _unique_rows(repeat, ["frequency", "monetary_value"], self.weighted)

        def fit_spend(pen: float, extra: dict[str, Any], take: slice | np.ndarray = _ALL):
            return _without_hessian(GammaGammaFitter)(penalizer_coef=pen).fit(
                rows["frequency"].to_numpy()[take],
                rows["monetary_value"].to_numpy()[take],
                weights=weights[take],
                **extra,
            )

        self.spend_model_, self.spend_penalizer_, self.spend_note_ = _fit_with_retries(
            fit_spend,
            self.penalizer,
            ["p", "q", "v"],
            _warm_start(fit_spend, len(rows), self.penalizer, self.random_state),
        )
        self.population_aov_ = self._population_aov()
        if self.spend_left_out_:
            left_out = (
                f"{self.spend_left_out_:,} repeat customer(s) with a zero or negative average "
                "spend (free or credit orders, refunds entered as negative amounts) were left "
                "out of the spend model and are valued at zero spend: their own purchases "
                "show no paid spend to project."
            )
            self.spend_note_ = f"{self.spend_note_} {left_out}".strip()

    @staticmethod
    def params_names_(model: str) -> tuple[str, ...]:
        """Names of the purchase model's parameters."""
        return ("r", "alpha", "s", "beta") if model == "pareto" else ("r", "alpha", "a", "b")

    @property
    def params(self) -> dict[str, float]:
        """Fitted purchase and spend parameters by name."""
        found = {k: float(v) for k, v in self.purchase_model_.params_.items()}
        if self.spend_model_ is not None:
            found.update({k: float(v) for k, v in self.spend_model_.params_.items()})
        return found

    def _population_aov(self) -> float:
        p, q, v = (float(self.spend_model_.params_[k]) for k in ("p", "q", "v"))
        return p * v / (q - 1) if q > 1 else float("nan")

    # -- predictions (on unique rows, mapped back) ------------------------------------------

    def expected_purchases(self, summary: pd.DataFrame, t: float) -> np.ndarray:
        """Expected repeat purchases in the next `t` time units, per customer."""
        return self.expected_purchases_by_horizon(summary, [t])[0]

    def expected_purchases_by_horizon(
        self, summary: pd.DataFrame, horizons: Sequence[float]
    ) -> np.ndarray:
        """Expected repeat purchases up to each horizon (rows) for every customer (columns)."""
        per_pair, codes, alive = self._per_pair(summary, horizons)
        expected = per_pair[:, codes] * alive
        bad = ~np.isfinite(expected).all(axis=0)
        if bad.any():
            expected[:, bad] = self._direct(summary[bad], horizons)
        return expected

    def _direct(self, summary: pd.DataFrame, horizons: Sequence[float]) -> np.ndarray:
        """lifetimes' own per-customer formula, for the few customers whose (frequency, T)
        pair has P(alive | x, T, T) too close to 0 for the shortcut (Pareto/NBD)."""
        x, tx, T = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
        predict = self.purchase_model_.conditional_expected_number_of_purchases_up_to_time
        with np.errstate(all="ignore"):
            return np.vstack([predict(t, x, tx, T) for t in horizons])

    def _per_pair(
        self, summary: pd.DataFrame, horizons: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """E(t | x, T, T) / P(alive | x, T, T) per unique (frequency, T) pair and horizon,
        each customer's pair code, and each customer's P(alive | x, t_x, T).

        BG/NBD, MBG/NBD and Pareto/NBD all factor as P(alive | x, t_x, T) g(x, T, t), so
        E(t | x, t_x, T) = E(t | x, T, T) P(alive | x, t_x, T) / P(alive | x, T, T): the
        costly part (hyp2f1) runs once per unique (frequency, T) pair and horizon, not per
        customer. A test checks this against lifetimes' own per-customer formula.
        """
        fitted = self.purchase_model_
        codes, first = _row_codes(summary, ["frequency", "T"])
        x = summary["frequency"].to_numpy(dtype=float)[first]
        T = summary["T"].to_numpy(dtype=float)[first]
        alive = self.p_alive(summary)
        with np.errstate(all="ignore"):
            alive_at_T = self._alive(x, T, T)
            per_pair = np.vstack(
                [
                    fitted.conditional_expected_number_of_purchases_up_to_time(t, x, T, T)
                    / alive_at_T
                    for t in horizons
                ]
            )
            if self.model == "pareto" and not np.isfinite(per_pair).all():
                # lifetimes' 0/0 at t_x = T for frequent buyers: Fader & Hardie (2005) eq. 41
                # without its P(alive) factor, which is 1 there.
                r, alpha, s, beta = (
                    self.purchase_model_.params_[k] for k in ("r", "alpha", "s", "beta")
                )
                exact = np.vstack(
                    [
                        (r + x)
                        * (beta + T)
                        / ((alpha + T) * (s - 1))
                        * (1 - ((beta + T) / (beta + T + t)) ** (s - 1))
                        for t in horizons
                    ]
                )
                per_pair = np.where(np.isfinite(per_pair), per_pair, exact)
        return per_pair, codes, alive

    def _alive(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        """lifetimes' P(alive | x, t_x, T), set to its exact value 1 where the last purchase is
        at T and lifetimes' Pareto/NBD formula gives 0/0 (frequent buyers: NaN otherwise)."""
        with np.errstate(all="ignore"):
            alive = np.asarray(
                self.purchase_model_.conditional_probability_alive(x, tx, T), dtype=float
            )
        return np.where(~np.isfinite(alive) & (np.asarray(tx) >= np.asarray(T)), 1.0, alive)

    def p_alive(self, summary: pd.DataFrame) -> np.ndarray:
        """Probability each customer is still active at the end of their history."""
        return _per_row(summary, ["frequency", "recency", "T"], self._alive)

    def expected_aov(self, summary: pd.DataFrame) -> np.ndarray:
        """Expected average order value: the customer's own mean shrunk to the population's."""
        p, q, v = (float(self.spend_model_.params_[k]) for k in ("p", "q", "v"))
        x = summary["frequency"].to_numpy(dtype=float)
        m = summary["monetary_value"].to_numpy(dtype=float)
        weight = p * x / (p * x + q - 1)
        expected = (1 - weight) * self.population_aov_ + weight * m
        return np.where((x > 0) & ~(m > 0), 0.0, expected)  # left out of the spend model

    def clv(
        self, summary: pd.DataFrame, months: int, monthly_discount: float, unit_days: int
    ) -> np.ndarray:
        """Discounted value of the next `months` months: sum of monthly purchases x AOV."""
        step = DAYS_PER_MONTH / unit_days
        horizons = [i * step for i in range(1, months + 1)]
        discount = 1.0 / (1.0 + monthly_discount) ** np.arange(1, months + 1)

        def discounted(cumulative: np.ndarray) -> np.ndarray:
            return (np.diff(cumulative, axis=0, prepend=0.0) * discount[:, None]).sum(axis=0)

        per_pair, codes, alive = self._per_pair(summary, horizons)
        value = discounted(per_pair)[codes] * alive
        bad = ~np.isfinite(value)
        if bad.any():
            value[bad] = discounted(self._direct(summary[bad], horizons))
        return value * self.expected_aov(summary)

    def simulate_frequency(self, T: np.ndarray) -> np.ndarray:
        """Repeat purchases simulated from the fitted model for customers of ages `T`."""
        rng = np.random.default_rng(self.random_state)
        prm = self.purchase_model_.params_
        n = len(T)
        lam = rng.gamma(prm["r"], 1.0 / prm["alpha"], n)
        if self.model == "pareto":
            mu = rng.gamma(prm["s"], 1.0 / prm["beta"], n)
            lifetime = rng.exponential(1.0 / np.maximum(mu, 1e-12))
            return rng.poisson(lam * np.minimum(lifetime, T))
        p = rng.beta(prm["a"], prm["b"], n)
        purchases = rng.poisson(lam * T)
        dropout = rng.geometric(np.clip(p, 1e-12, 1.0))  # purchase after which they leave
        if self.model == "mbgnbd":
            dropout = dropout - 1  # MBG/NBD may also leave right after the first purchase
        return np.minimum(purchases, dropout)


def _unique_rows(
    frame: pd.DataFrame, columns: list[str], weighted: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    """Unique rows of `columns` and how many customers each stands for."""
    if not weighted:
        return frame[columns].reset_index(drop=True), np.ones(len(frame), dtype=np.int64)
    codes, first = _row_codes(frame, columns)
    return frame[columns].iloc[first].reset_index(drop=True), np.bincount(codes)


def _row_codes(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A code per row for its combination of `columns`, and one row index per code.

    Each column is factorised on its own and the codes combined into one integer (a
    MultiIndex over a million rows takes ten times as long).
    """
    combined = np.zeros(len(frame), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(frame[column].to_numpy())
        combined = combined * len(uniques) + codes
    codes, uniques = pd.factorize(combined)
    first = np.zeros(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    return codes, first


def _per_row(summary: pd.DataFrame, columns: list[str], compute: Callable[..., Any]) -> np.ndarray:
    """Compute on the unique rows of `columns` and broadcast back to every customer."""
    codes, first = _row_codes(summary, columns)
    values = compute(*(summary[c].to_numpy(dtype=float)[first] for c in columns))
    return np.asarray(values, dtype=float)[codes]


_ALL = slice(None)

WARM_START_ROWS = 50_000
"""Above this many unique rows, a fit starts from the optimum of a random sample of them."""


def _warm_start(
    fit: Callable[..., Any], n_rows: int, penalizer: float, seed: int
) -> np.ndarray | None:
    """Log-parameters fitted on WARM_START_ROWS random rows, as the full fit's starting point.

    The optimum is the full data's either way; the optimiser just needs a fraction of the
    iterations over all rows (a million customers: about a third of the fit time).
    """
    if n_rows <= 2 * WARM_START_ROWS:
        return None
    sample = np.sort(np.random.default_rng(seed).choice(n_rows, WARM_START_ROWS, replace=False))
    try:
        fitted = _quietly(lambda pen, extra: fit(pen, extra, sample), penalizer, {})
    except Exception:  # noqa: BLE001 - only a starting point; the full fit decides
        return None
    start = np.log(fitted.params_.to_numpy(dtype=float))
    return start if np.all(np.isfinite(start)) else None


def _fit_with_retries(
    fit: Callable[[float, dict], Any],
    penalizer: float,
    names: list[str],
    start: np.ndarray | None = None,
):
    """Fit (from `start`, log-parameters, when given); when the optimiser stops early retry
    from other starting points, then with growing penalizers (saying so), until the
    parameters are finite and positive."""
    from lifetimes.utils import ConvergenceError

    restarts: list[dict[str, Any]] = [{}, {"tol": 1e-6}, {"initial_params": np.zeros(len(names))}]
    if start is not None:
        restarts.insert(0, {"initial_params": start})
    tries = [(penalizer, extra) for extra in restarts]
    tries += [(p, {}) for p in PENALIZER_RETRIES if p > penalizer]
    failure = ""
    for pen, extra in tries:
        try:
            fitted = _quietly(fit, pen, extra)
        except (ConvergenceError, np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
            failure = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            continue
        values = fitted.params_.to_numpy(dtype=float)
        if not np.all(np.isfinite(values)) or np.any(values <= 0) or np.any(values > 1e6):
            failure = "parameters out of range: " + ", ".join(
                f"{k}={v:.3g}" for k, v in zip(names, values, strict=False)
            )
            continue
        note = ""
        if pen != penalizer:
            note = (
                f"The fit without a penalizer did not converge ({failure}); refitted with "
                f"penalizer {pen:g}, which shrinks the parameters a little."
            )
        return fitted, pen, note
    raise CRMError(
        f"The model did not converge even with penalizer {tries[-1][0]:g} ({failure}). "
        "Pick a longer calibration period or check the orders for outliers."
    )


def _quietly(fit: Callable[[float, dict], Any], pen: float, extra: dict[str, Any]):
    """Run a lifetimes fit without its print() of the optimiser state on failure."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        return fit(pen, extra)


# --- readiness, backtest, report ----------------------------------------------------------


def _unpaid_problem(paying: int, unpaid: int) -> str:
    return (
        f"{paying:,} repeat customers have a positive average spend (and {unpaid:,} zero or "
        f"negative: their repeat orders are all of zero value); the spend model (Gamma-Gamma) "
        f"needs at least {MIN_REPEAT_CUSTOMERS}. Import the orders' amounts: a zero-value "
        "order counts as a purchase but adds no spend."
    )


def history_problems(summary: pd.DataFrame, first: date, last: date) -> list[str]:
    """Why the whole history (an RFM summary up to the last day) cannot fit the models with
    the default calibration end: too short, too few (repeat, paying) buyers; [] when it can."""
    days = (last - first).days
    if days < MIN_HISTORY_DAYS:
        span = f"{first}" if days == 0 else f"{first} to {last}"
        return [
            f"the purchases span {plural(days + 1, 'day')} ({span}); the models need at least "
            f"{MIN_HISTORY_DAYS} days of history, half to fit them and half to check their "
            "predictions. Import a longer history."
        ]
    n = len(summary)
    repeat = summary["frequency"].to_numpy() > 0
    if not repeat.any():
        return [
            f"each of the {n:,} customers has purchases on one day only (no repeat buyer); "
            f"the purchase model needs repeat buyers (at least {MIN_REPEAT_CUSTOMERS} with "
            "purchases on 2 or more days). "
            "Import a longer history."
        ]
    if n < MIN_CUSTOMERS or repeat.sum() < MIN_REPEAT_CUSTOMERS:
        return [
            f"{n:,} customers have a purchase, {int(repeat.sum()):,} of them on 2 or more days; "
            f"the models need at least {MIN_CUSTOMERS} customers and {MIN_REPEAT_CUSTOMERS} "
            "repeat buyers. Import more customers' orders."
        ]
    paying = repeat & (summary["monetary_value"].to_numpy(dtype=float) > 0)
    if paying.sum() < MIN_REPEAT_CUSTOMERS:
        return [_unpaid_problem(int(paying.sum()), int(repeat.sum() - paying.sum()))]
    return []


def readiness(summary: pd.DataFrame, calibration_days: int, holdout_days: int) -> list[str]:
    """What is missing before a CLV model is worth showing (empty list: ready)."""
    problems = []
    if len(summary) < MIN_CUSTOMERS:
        problems.append(
            f"{len(summary):,} customers bought in the calibration period; at least "
            f"{MIN_CUSTOMERS} are needed."
        )
    repeat = int((summary["frequency"] > 0).sum()) if len(summary) else 0
    if repeat < MIN_REPEAT_CUSTOMERS:
        problems.append(
            f"{repeat:,} customers bought again in the calibration period; at least "
            f"{MIN_REPEAT_CUSTOMERS} repeat buyers are needed."
        )
    if calibration_days < MIN_CALIBRATION_DAYS:
        problems.append(
            f"The calibration period covers {calibration_days} days of history; at least "
            f"{MIN_CALIBRATION_DAYS} are needed (pick a later calibration end)."
        )
    if holdout_days < MIN_HOLDOUT_DAYS:
        problems.append(
            f"The holdout after the calibration end is {holdout_days} days; at least "
            f"{MIN_HOLDOUT_DAYS} are needed (pick an earlier calibration end)."
        )
    return problems


def default_calibration_end(first: date, last: date) -> date:
    """Half the history for calibration, but a holdout of at most MAX_HOLDOUT_DAYS."""
    span = (last - first).days
    return max(first + timedelta(days=span // 2), last - timedelta(days=MAX_HOLDOUT_DAYS))


@dataclass(frozen=True)
class CLVSettings:
    """What the analyst picks: model, time unit, calibration end, horizon, discount."""

    model: str = "bgnbd"
    time_unit: str = "days"
    calibration_end: date | None = None
    observation_end: date | None = None
    horizon_months: int = 12
    monthly_discount: float = 0.01
    countries: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()


@dataclass
class Backtest:
    """Calibration fit predicting the holdout, against what customers really did."""

    calibration_end: date
    observation_end: date
    holdout_units: float
    params: dict[str, float]
    by_frequency: pd.DataFrame  # frequency group, customers, actual, predicted (mean)
    period_histogram: pd.DataFrame  # repeat purchases, customers (data), model
    actual_total: float
    predicted_total: float
    mae: float
    note: str = ""

    @property
    def total_error(self) -> float:
        """Relative error of the predicted total holdout purchases."""
        return (self.predicted_total - self.actual_total) / max(self.actual_total, 1.0)


@dataclass
class CLVReport:
    """Everything the CLV view and CLI show: parameters, backtest, per-customer values."""

    settings: CLVSettings
    calibration_end: date
    observation_end: date
    params: dict[str, float]
    backtest: Backtest
    customers: pd.DataFrame
    expected_matrix: pd.DataFrame
    alive_matrix: pd.DataFrame
    fit_seconds: float
    notes: list[str] = field(default_factory=list)
    next_purchase: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The next-purchase backtest at the calibration end (`next_purchase.backtest`)."""

    def as_dict(self) -> dict[str, Any]:
        """Parameters and backtest figures as plain JSON-able values."""
        bt = self.backtest
        return {
            "model": self.settings.model,
            "time_unit": self.settings.time_unit,
            "calibration_end": str(bt.calibration_end),
            "observation_end": str(bt.observation_end),
            "calibration_params": {k: round(v, 4) for k, v in bt.params.items()},
            "params": {k: round(v, 4) for k, v in self.params.items()},
            "backtest": {
                "holdout_units": round(bt.holdout_units, 2),
                "actual_total_purchases": bt.actual_total,
                "predicted_total_purchases": round(bt.predicted_total, 1),
                "total_error": round(bt.total_error, 4),
                "mae_per_customer": round(bt.mae, 4),
                "by_frequency": bt.by_frequency.round(4).to_dict(orient="records"),
            },
            "customers": len(self.customers),
            "mean_clv": round(float(self.customers["clv"].mean()), 2),
            "next_purchase_backtest": (
                next_purchase.calibration_error(self.next_purchase).round(4).to_dict("records")
                if not self.next_purchase.empty
                else []
            ),
            "horizon_months": self.settings.horizon_months,
            "monthly_discount": self.settings.monthly_discount,
            "fit_seconds": round(self.fit_seconds, 2),
            "notes": self.notes,
        }


def data_span(store: Store, filters: Filters | None = None) -> tuple[date, date] | None:
    """First and last day with a completed order (in the filters' countries and channels)."""
    where = completed_orders_where(filters) if filters is not None else [IS_PURCHASE]
    stmt = sa.select(sa.func.min(orders.c.ordered_at), sa.func.max(orders.c.ordered_at)).where(
        *where
    )
    first, last = store.row(stmt)
    if first is None:
        return None
    return pd.Timestamp(first).date(), pd.Timestamp(last).date()


def value_customers(
    store: Store, settings: CLVSettings = CLVSettings()
) -> tuple[CLVModel, pd.DataFrame]:
    """Fit on all orders up to the last day and value every customer who bought (no
    backtest, no attributes): the model and one row per customer with P(alive), expected
    purchases over the horizon, expected order value and CLV."""
    scope = Filters(date.min, date.max, settings.countries, settings.channels)
    span = data_span(store, scope)
    if span is None:
        raise no_purchases(store, "CLV", CLV_NEEDS, scope)
    return _value(store, settings, min(settings.observation_end or span[1], span[1]), scope)


def _value(
    store: Store,
    settings: CLVSettings,
    observation_end: date,
    scope: Filters,
    full: pd.DataFrame | None = None,
) -> tuple[CLVModel, pd.DataFrame]:
    unit = _unit_days(settings.time_unit)
    if full is None:
        full = rfm_summary(store, observation_end, time_unit=settings.time_unit, filters=scope)
    model = CLVModel(model=settings.model).fit(full)
    horizon = settings.horizon_months * DAYS_PER_MONTH / unit
    values = full[["customer_id", "frequency", "recency", "T", "monetary_value"]].copy()
    values["expected_purchases"] = model.expected_purchases(full, horizon)
    values["p_alive"] = model.p_alive(full)
    values["expected_aov"] = model.expected_aov(full)
    values["clv"] = model.clv(full, settings.horizon_months, settings.monthly_discount, unit)
    upcoming = next_purchase.predictions(model, full, unit, observation_end)
    for name in NEXT_PURCHASE_COLUMNS:
        values[name] = upcoming[name].to_numpy()
    return model, values


def analyse(
    store: Store, settings: CLVSettings = CLVSettings(), progress: Progress | None = None
) -> CLVReport:
    """Backtest at the calibration end, refit on all data, value every customer.

    Raises NotReadyError (a CRMError) listing what is missing when the data are too thin.
    """
    import time as _time

    report = progress or (lambda fraction, message: None)
    started = _time.perf_counter()
    unit = _unit_days(settings.time_unit)
    scope = Filters(date.min, date.max, settings.countries, settings.channels)
    span = data_span(store, scope)
    if span is None:
        raise no_purchases(store, "CLV", CLV_NEEDS, scope)
    first, last = span
    observation_end = min(settings.observation_end or last, last)
    calibration_end = settings.calibration_end or default_calibration_end(first, observation_end)
    report(0.05, "Building the RFM summary")
    full = rfm_summary(store, observation_end, time_unit=settings.time_unit, filters=scope)
    if settings.calibration_end is None and (
        problems := history_problems(full, first, observation_end)
    ):
        raise NotReadyError(problems, "CLV")
    summary = rfm_summary(
        store,
        calibration_end,
        observation_end=observation_end,
        time_unit=settings.time_unit,
        filters=scope,
    )
    problems = readiness(
        summary, (calibration_end - first).days, (observation_end - calibration_end).days
    )
    if problems:
        raise NotReadyError(problems, "CLV")

    report(0.15, "Fitting the calibration model (backtest)")
    cal_model = CLVModel(model=settings.model).fit(summary)
    holdout_units = (observation_end - calibration_end).days / unit
    backtest = _backtest(cal_model, summary, calibration_end, observation_end, holdout_units)

    bought = next_purchase.first_purchase_after(store, calibration_end, observation_end, scope)
    upcoming = next_purchase.backtest(
        cal_model, summary, bought, unit, (observation_end - calibration_end).days
    )

    report(0.5, "Refitting on all data up to the last day")
    model, values = _value(store, settings, observation_end, scope, full)
    report(0.8, "Adding the customers' attributes")
    values = _with_attributes(store, values)
    notes = _fit_notes(
        [n for n in (cal_model.fit_note_, cal_model.spend_note_) if n],
        [n for n in (model.fit_note_, model.spend_note_) if n],
        calibration_end,
        observation_end,
    )
    report(0.9, "Frequency-recency matrices")
    horizon = settings.horizon_months * DAYS_PER_MONTH / unit
    expected_matrix, alive_matrix = frequency_recency_matrices(model, values, horizon)
    report(1.0, "Done")
    return CLVReport(
        settings=settings,
        calibration_end=calibration_end,
        observation_end=observation_end,
        params=model.params,
        backtest=backtest,
        customers=values,
        expected_matrix=expected_matrix,
        alive_matrix=alive_matrix,
        fit_seconds=_time.perf_counter() - started,
        notes=notes,
        next_purchase=upcoming,
    )


def _fit_notes(
    backtest: list[str], full: list[str], calibration_end: date, observation_end: date
) -> list[str]:
    """The two fits' notes, each saying which fit it is about (their counts differ)."""
    both = [n for n in backtest if n in full]
    return [
        *(f"CLV backtest fit (data to {calibration_end}): {n}" for n in backtest if n not in both),
        *(f"CLV fit on all data (to {observation_end}): {n}" for n in full if n not in both),
        *(f"CLV backtest fit and fit on all data: {n}" for n in both),
    ]


def _backtest(
    model: CLVModel,
    summary: pd.DataFrame,
    calibration_end: date,
    observation_end: date,
    holdout_units: float,
) -> Backtest:
    """Predicted against actual holdout purchases, by calibration frequency and in total."""
    predicted = model.expected_purchases(summary, holdout_units)
    actual = summary["holdout_purchases"].to_numpy(dtype=float)
    group = np.minimum(summary["frequency"].to_numpy(), FREQUENCY_GROUPS)
    frame = pd.DataFrame({"group": group, "actual": actual, "predicted": predicted})
    by_frequency = frame.groupby("group").agg(
        customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean")
    )
    by_frequency = by_frequency.reset_index()
    by_frequency["frequency"] = [
        f"{g}+" if g == FREQUENCY_GROUPS else str(g) for g in by_frequency["group"]
    ]
    by_frequency = by_frequency[["frequency", "customers", "actual", "predicted"]]
    simulated = np.minimum(
        model.simulate_frequency(summary["T"].to_numpy(dtype=float)), FREQUENCY_GROUPS
    )
    observed = np.minimum(summary["frequency"].to_numpy(), FREQUENCY_GROUPS)
    labels = [str(k) if k < FREQUENCY_GROUPS else f"{k}+" for k in range(FREQUENCY_GROUPS + 1)]
    histogram = pd.DataFrame(
        {
            "repeat_purchases": labels,
            "data": np.bincount(observed, minlength=FREQUENCY_GROUPS + 1),
            "model": np.bincount(simulated, minlength=FREQUENCY_GROUPS + 1),
        }
    )
    notes = " ".join(n for n in (model.fit_note_, model.spend_note_) if n)
    return Backtest(
        calibration_end=calibration_end,
        observation_end=observation_end,
        holdout_units=holdout_units,
        params=model.params,
        by_frequency=by_frequency,
        period_histogram=histogram,
        actual_total=float(actual.sum()),
        predicted_total=float(predicted.sum()),
        mae=float(np.abs(predicted - actual).mean()),
        note=notes,
    )


def frequency_recency_matrices(
    model: CLVModel, summary: pd.DataFrame, horizon: float, size: int = 25
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Expected purchases over `horizon` and P(alive) for a grid of frequency x recency,
    for a customer whose first purchase was the longest T ago (rows: frequency)."""
    t_max = float(summary["T"].max())
    f_max = int(max(1, min(summary["frequency"].quantile(0.99), 60)))
    freqs = np.arange(0, f_max + 1)
    recs = np.unique(np.round(np.linspace(0, t_max, size), 1))
    grid = pd.DataFrame(
        [(f, r, t_max) for f in freqs for r in recs], columns=["frequency", "recency", "T"]
    )
    grid["T"] = t_max
    valid = (grid["frequency"] > 0) | (grid["recency"] == 0)
    expected = np.full(len(grid), np.nan)
    alive = np.full(len(grid), np.nan)
    fitted = model.purchase_model_
    g = grid[valid]
    expected[valid.to_numpy()] = fitted.conditional_expected_number_of_purchases_up_to_time(
        horizon, g["frequency"].to_numpy(), g["recency"].to_numpy(), g["T"].to_numpy()
    )
    alive[valid.to_numpy()] = fitted.conditional_probability_alive(
        g["frequency"].to_numpy(), g["recency"].to_numpy(), g["T"].to_numpy()
    )
    shape = (len(freqs), len(recs))
    index = pd.Index(freqs, name="frequency")
    columns = pd.Index(recs, name="recency")
    return (
        pd.DataFrame(expected.reshape(shape), index=index, columns=columns),
        pd.DataFrame(alive.reshape(shape), index=index, columns=columns),
    )


def _with_attributes(store: Store, values: pd.DataFrame) -> pd.DataFrame:
    """Add country, acquisition channel, names and e-mail, and the customer's RFM segment."""
    attrs = store.read_df(
        sa.select(
            customers.c.customer_id,
            customers.c.first_name,
            customers.c.last_name,
            customers.c.email,
            customers.c.country,
            customers.c.acquisition_channel,
        )
    )
    merged = values.merge(attrs, on="customer_id", how="left")
    for col in ("country", "acquisition_channel"):
        merged[col] = merged[col].fillna("unknown")
    features.ensure_fresh(store)
    segments = store.read_df(
        sa.select(features.customer_360.c.customer_id, features.customer_360.c.rfm_segment)
    )
    merged = merged.merge(segments, on="customer_id", how="left")
    merged["rfm_segment"] = merged["rfm_segment"].astype(object).fillna("(none)")
    return merged


def group_clv(values: pd.DataFrame, by: str) -> pd.DataFrame:
    """Customers, mean and total CLV and mean P(alive) per value of column `by`."""
    grouped = (
        values.groupby(by, observed=True)
        .agg(
            customers=("clv", "size"),
            mean_clv=("clv", "mean"),
            total_clv=("clv", "sum"),
            mean_p_alive=("p_alive", "mean"),
        )
        .reset_index()
        .sort_values("total_clv", ascending=False)
    )
    return grouped.reset_index(drop=True)


def top_customers(values: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """The `n` customers with the highest CLV, with what drives it."""
    columns = [
        "customer_id",
        "first_name",
        "last_name",
        "email",
        "country",
        "acquisition_channel",
        "frequency",
        "expected_purchases",
        "p_alive",
        "expected_aov",
        "clv",
    ]
    return values.nlargest(n, "clv")[columns].reset_index(drop=True)


def clv_histogram_values(values: pd.DataFrame) -> pd.Series:
    """CLV per customer, clipped at the 99th percentile so the histogram stays readable."""
    clv = values["clv"]
    return clv.clip(upper=float(clv.quantile(0.99))) if len(clv) else clv


def horizon_units(months: int, time_unit: str) -> float:
    """Months in model time units."""
    return months * DAYS_PER_MONTH / _unit_days(time_unit)

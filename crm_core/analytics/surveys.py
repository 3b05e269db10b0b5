"""NPS and CSAT: scores with confidence intervals, trends, breakdowns, verbatims and value.

Buckets and thresholds are the ones the KPI overview uses (crm_core.metrics): promoters
9-10, passives 7-8, detractors 0-6; CSAT counts 4-5 on a 1-5 scale as satisfied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.feature_extraction.text import TfidfVectorizer

from crm_core import features
from crm_core.filters import IS_PURCHASE, Filters, customer_scope
from crm_core.metrics import CSAT_SATISFIED_MIN, NPS_DETRACTOR_MAX, NPS_PROMOTER_MIN
from crm_core.schema import customer_scores, customers, orders, survey_responses
from crm_core.store import Store

SOURCE_TABLES = ("survey_responses", "customers", "orders", "customer_360")
"""What the survey figures read: answers; customers and orders for the filter scope; the 360
table for the RFM breakdown."""

MIN_RESPONSES = 30
"""Below this many answers a score is shown with a warning: its interval is too wide."""

Z_95 = 1.959963984540054
"""Two-sided 95% normal quantile."""

BREAKDOWNS = {
    "touchpoint": survey_responses.c.touchpoint,
    "country": customers.c.country,
    "acquisition channel": customers.c.acquisition_channel,
    "RFM segment": features.customer_360.c.rfm_segment,
}
"""Dimensions the survey view can break scores down by (the RFM segment is today's)."""


@dataclass(frozen=True)
class ScoreSummary:
    """A score with its 95% confidence interval and the number of answers behind it."""

    value: float | None
    low: float | None
    high: float | None
    responses: int

    @property
    def enough(self) -> bool:
        """Whether there are at least MIN_RESPONSES answers."""
        return self.responses >= MIN_RESPONSES


def nps_from_counts(promoters: int, passives: int, detractors: int) -> ScoreSummary:
    """NPS (-100..100) with a 95% interval from the multinomial variance of P - D."""
    n = promoters + passives + detractors
    if n == 0:
        return ScoreSummary(None, None, None, 0)
    p_promoter, p_detractor = promoters / n, detractors / n
    nps = p_promoter - p_detractor
    variance = (p_promoter + p_detractor - nps**2) / n
    half = Z_95 * math.sqrt(max(variance, 0.0))
    return ScoreSummary(100 * nps, 100 * max(-1.0, nps - half), 100 * min(1.0, nps + half), n)


def csat_from_counts(satisfied: int, responses: int) -> ScoreSummary:
    """CSAT share with a 95% Wilson score interval (sound for small samples and 0%/100%)."""
    if responses == 0:
        return ScoreSummary(None, None, None, 0)
    share = satisfied / responses
    z2 = Z_95**2
    centre = (share + z2 / (2 * responses)) / (1 + z2 / responses)
    half = (
        Z_95
        * math.sqrt(share * (1 - share) / responses + z2 / (4 * responses**2))
        / (1 + z2 / responses)
    )
    return ScoreSummary(share, max(0.0, centre - half), min(1.0, centre + half), responses)


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _bucket_columns() -> list[sa.ColumnElement]:
    sr = survey_responses.c
    nps = sr.survey == "nps"
    csat = sr.survey == "csat"
    return [
        _count_if(sa.and_(nps, sr.score >= NPS_PROMOTER_MIN)).label("promoters"),
        _count_if(sa.and_(nps, sr.score > NPS_DETRACTOR_MAX, sr.score < NPS_PROMOTER_MIN)).label(
            "passives"
        ),
        _count_if(sa.and_(nps, sr.score <= NPS_DETRACTOR_MAX)).label("detractors"),
        _count_if(sa.and_(csat, sr.score >= CSAT_SATISFIED_MIN)).label("satisfied"),
        _count_if(csat).label("csat_responses"),
    ]


def _in_period(filters: Filters) -> list[sa.ColumnElement[bool]]:
    sr = survey_responses.c
    return [
        sr.answered_at >= filters.start_ts,
        sr.answered_at < filters.end_ts,
        *customer_scope(sr.customer_id, filters),
    ]


def _summaries(row: pd.Series) -> dict[str, ScoreSummary]:
    return {
        "nps": nps_from_counts(int(row.promoters), int(row.passives), int(row.detractors)),
        "csat": csat_from_counts(int(row.satisfied), int(row.csat_responses)),
    }


def has_responses(store: Store) -> bool:
    """Whether the store holds any survey answer at all (else the view shows an empty state)."""
    stmt = sa.select(sa.func.count()).select_from(survey_responses)
    return bool(store.scalar(stmt))


def summary(store: Store, filters: Filters) -> dict[str, ScoreSummary]:
    """NPS and CSAT over the period, each with its interval and number of answers."""
    frame = store.read_df(sa.select(*_bucket_columns()).where(*_in_period(filters)))
    return _summaries(frame.fillna(0).iloc[0])


def _summary_frame(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    rows = []
    for _, row in frame.fillna({c: 0 for c in frame.columns if c != key}).iterrows():
        scores = _summaries(row)
        rows.append(
            {
                key: row[key],
                "nps": scores["nps"].value,
                "nps_low": scores["nps"].low,
                "nps_high": scores["nps"].high,
                "nps_responses": scores["nps"].responses,
                "csat": scores["csat"].value,
                "csat_low": scores["csat"].low,
                "csat_high": scores["csat"].high,
                "csat_responses": scores["csat"].responses,
            }
        )
    return pd.DataFrame(rows)


def monthly_trend(store: Store, filters: Filters) -> pd.DataFrame:
    """NPS and CSAT per calendar month, with intervals and answer counts."""
    month = sa.func.date_trunc("month", survey_responses.c.answered_at).label("month")
    stmt = (
        sa.select(month, *_bucket_columns())
        .where(*_in_period(filters))
        .group_by(month)
        .order_by(month)
    )
    frame = store.read_df(stmt)
    if frame.empty:
        return _summary_frame(frame, "month")
    frame["month"] = pd.to_datetime(frame["month"]).dt.tz_localize(None)
    return _summary_frame(frame, "month")


def breakdown(store: Store, filters: Filters, by: str) -> pd.DataFrame:
    """NPS and CSAT per value of one dimension (see BREAKDOWNS), largest groups first."""
    if by not in BREAKDOWNS:
        raise KeyError(by)
    dimension = sa.func.coalesce(BREAKDOWNS[by], "(unknown)").label(by)
    stmt = sa.select(dimension, *_bucket_columns()).join_from(
        survey_responses, customers, survey_responses.c.customer_id == customers.c.customer_id
    )
    if BREAKDOWNS[by].table is features.customer_360:  # only the RFM segment needs the 360
        features.ensure_fresh(store)
        c360 = features.customer_360
        stmt = stmt.join(c360, c360.c.customer_id == survey_responses.c.customer_id, isouter=True)
    stmt = stmt.where(*_in_period(filters)).group_by(dimension)
    frame = _summary_frame(store.read_df(stmt), by)
    if frame.empty:
        return frame
    frame["responses"] = frame["nps_responses"] + frame["csat_responses"]
    return frame.sort_values("responses", ascending=False).reset_index(drop=True)


def score_distribution(store: Store, filters: Filters) -> pd.DataFrame:
    """How many answers gave each score, per survey (nps 0-10, csat 1-5)."""
    sr = survey_responses.c
    stmt = (
        sa.select(sr.survey, sr.score, sa.func.count().label("responses"))
        .where(*_in_period(filters))
        .group_by(sr.survey, sr.score)
        .order_by(sr.survey, sr.score)
    )
    return store.read_df(stmt)


def nps_bucket(score: pd.Series) -> pd.Series:
    """promoter, passive or detractor for NPS scores."""
    return pd.Series(
        np.select(
            [score >= NPS_PROMOTER_MIN, score <= NPS_DETRACTOR_MAX],
            ["promoter", "detractor"],
            "passive",
        ),
        index=score.index,
    )


def verbatims(
    store: Store, filters: Filters, *, survey: str = "nps", limit: int = 5_000
) -> pd.DataFrame:
    """Answers with a comment in the period, newest first, with their NPS bucket."""
    sr = survey_responses.c
    stmt = (
        sa.select(sr.answered_at, sr.customer_id, sr.score, sr.touchpoint, sr.comment)
        .where(*_in_period(filters), sr.survey == survey, sr.comment.is_not(None), sr.comment != "")
        .order_by(sr.answered_at.desc())
        .limit(limit)
    )
    frame = store.read_df(stmt)
    if survey == "nps":
        frame["bucket"] = nps_bucket(frame["score"])
    return frame


def distinguishing_terms(comments: pd.DataFrame, top: int = 12) -> pd.DataFrame:
    """Words and phrases most typical of detractors against promoters (mean TF-IDF gap).

    `comments` is what `verbatims` returns; the result has term, side (detractors or
    promoters) and weight (how much more it weighs in that side's comments).
    """
    labelled = comments[comments["bucket"].isin(["detractor", "promoter"])]
    if labelled["bucket"].nunique() < 2 or len(labelled) < 4:
        return pd.DataFrame(columns=["term", "side", "weight"])
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, stop_words="english")
    try:
        matrix = vectorizer.fit_transform(labelled["comment"].astype(str))
    except ValueError:  # every word was a stop word or appeared once
        return pd.DataFrame(columns=["term", "side", "weight"])
    is_detractor = (labelled["bucket"] == "detractor").to_numpy()
    gap = np.asarray(matrix[is_detractor].mean(axis=0) - matrix[~is_detractor].mean(axis=0))[0]
    terms = vectorizer.get_feature_names_out()
    order = np.argsort(gap)
    rows = [
        {"term": terms[i], "side": "detractors", "weight": float(gap[i])}
        for i in order[::-1][:top]
        if gap[i] > 0
    ]
    rows += [
        {"term": terms[i], "side": "promoters", "weight": float(-gap[i])}
        for i in order[:top]
        if gap[i] < 0
    ]
    return pd.DataFrame(rows)


def respondents(store: Store, filters: Filters, churn_days: int = 90) -> pd.DataFrame:
    """Each NPS respondent's latest answer in the period, bucket, and whether they churned.

    A respondent churned when they placed no completed order within `churn_days` after
    answering; answers less than `churn_days` before the last order in the store are too
    recent to tell (churned is missing).
    """
    sr = survey_responses.c
    latest = (
        sa.select(
            sr.customer_id,
            sr.score,
            sr.answered_at,
            sa.func.row_number()
            .over(
                partition_by=sr.customer_id,
                order_by=(sr.answered_at.desc(), sr.response_id.desc()),
            )
            .label("nth"),
        )
        .where(*_in_period(filters), sr.survey == "nps")
        .subquery("latest")
    )
    window = sa.bindparam("churn_window", timedelta(days=churn_days), type_=sa.Interval())
    answer = (
        sa.select(latest.c.customer_id, latest.c.score, latest.c.answered_at)
        .where(latest.c.nth == 1)
        .subquery("answer")
    )
    # The purchases within the window after each answer, as a join and a count: a correlated
    # subquery per respondent becomes a nested-loop join on engines such as Spark.
    bought_after = (
        sa.select(
            answer.c.customer_id,
            answer.c.score,
            answer.c.answered_at,
            sa.func.count(orders.c.order_id).label("purchases"),
        )
        .select_from(
            answer.outerjoin(
                orders,
                sa.and_(
                    orders.c.customer_id == answer.c.customer_id,
                    IS_PURCHASE,
                    orders.c.ordered_at > answer.c.answered_at,
                    orders.c.ordered_at <= answer.c.answered_at + window,
                ),
            )
        )
        .group_by(answer.c.customer_id, answer.c.score, answer.c.answered_at)
        .subquery("bought_after")
    )
    data_end = sa.select(sa.func.max(orders.c.ordered_at)).scalar_subquery()
    b = bought_after.c
    stmt = sa.select(
        b.customer_id,
        b.score,
        b.answered_at,
        sa.case((b.answered_at + window > data_end, None), else_=b.purchases == 0).label("churned"),
    ).order_by(b.customer_id)
    frame = store.read_df(stmt)
    frame["bucket"] = nps_bucket(frame["score"])
    return frame


def churn_by_bucket(frame: pd.DataFrame) -> pd.DataFrame:
    """Churn rate of promoters, passives and detractors (answers old enough to tell)."""
    known = frame.dropna(subset=["churned"])
    if known.empty:
        return pd.DataFrame(columns=["bucket", "respondents", "churn_rate"])
    grouped = known.groupby("bucket")["churned"].agg(["size", "mean"]).reset_index()
    grouped.columns = ["bucket", "respondents", "churn_rate"]
    return grouped


def detractor_value(store: Store, filters: Filters) -> dict[str, object]:
    """NPS weighted by customer value, and the value of detractors ("revenue at risk").

    Value is the predicted CLV once scoring has run, else each respondent's completed
    revenue in the 365 days up to the period's end; `basis` says which.
    """
    frame = respondents(store, filters)
    if frame.empty:
        return {"weighted_nps": None, "revenue_at_risk": None, "basis": None, "detractors": 0}
    ids = {"ids": frame["customer_id"].astype(int).tolist()}
    scores = store.read_df(
        sa.select(customer_scores.c.customer_id, customer_scores.c.clv.label("value")).where(
            customer_scores.c.customer_id.in_(sa.bindparam("ids", expanding=True)),
            customer_scores.c.clv.is_not(None),
        ),
        ids,
    )
    basis = "predicted CLV"
    if scores.empty:
        basis = "revenue in the last 12 months"
        scores = store.read_df(
            sa.select(orders.c.customer_id, sa.func.sum(orders.c.amount).label("value"))
            .where(
                orders.c.customer_id.in_(sa.bindparam("ids", expanding=True)),
                IS_PURCHASE,
                orders.c.ordered_at >= filters.end_ts - timedelta(days=365),
                orders.c.ordered_at < filters.end_ts,
            )
            .group_by(orders.c.customer_id),
            ids,
        )
    valued = frame.merge(scores, on="customer_id", how="left").fillna({"value": 0.0})
    total = float(valued["value"].sum())
    sign = valued["bucket"].map({"promoter": 1.0, "detractor": -1.0, "passive": 0.0})
    detractors = valued["bucket"] == "detractor"
    return {
        "weighted_nps": 100 * float((sign * valued["value"]).sum()) / total if total else None,
        "revenue_at_risk": float(valued.loc[detractors, "value"].sum()),
        "basis": basis,
        "detractors": int(detractors.sum()),
    }


def detractor_ids(store: Store, filters: Filters) -> list[int]:
    """Customers whose latest NPS answer in the period is a detractor's."""
    frame = respondents(store, filters)
    return frame.loc[frame["bucket"] == "detractor", "customer_id"].astype(int).tolist()

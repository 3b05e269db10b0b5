"""Cached wrappers for the survey, campaign, funnel and customer-profile views."""

from __future__ import annotations

import pandas as pd

from crm_core import merge, profile
from crm_core.analytics import campaigns, funnels, surveys
from crm_core.filters import Filters
from crm_ui import data
from crm_ui.data import store

TTL = 600


@data.reads("survey_responses", show_spinner=False, ttl=TTL)
def has_surveys() -> bool:
    """Whether any survey answer exists."""
    return surveys.has_responses(store())


@data.reads(
    *surveys.SOURCE_TABLES,
    show_spinner="Scoring surveys...",
    ttl=TTL,
)
def survey_summary(filters: Filters) -> dict[str, surveys.ScoreSummary]:
    """NPS and CSAT with intervals."""
    return surveys.summary(store(), filters)


@data.reads(*surveys.SOURCE_TABLES, show_spinner=False, ttl=TTL)
def survey_trend(filters: Filters) -> pd.DataFrame:
    """NPS and CSAT per month."""
    return surveys.monthly_trend(store(), filters)


@data.reads(*surveys.SOURCE_TABLES, show_spinner=False, ttl=TTL)
def survey_breakdown(filters: Filters, by: str) -> pd.DataFrame:
    """NPS and CSAT per value of a dimension."""
    return surveys.breakdown(store(), filters, by)


@data.reads(*surveys.SOURCE_TABLES, show_spinner=False, ttl=TTL)
def score_distribution(filters: Filters) -> pd.DataFrame:
    """Answers per score."""
    return surveys.score_distribution(store(), filters)


@data.reads(
    *surveys.SOURCE_TABLES,
    show_spinner="Reading comments...",
    ttl=TTL,
)
def verbatims(filters: Filters) -> pd.DataFrame:
    """NPS comments with buckets."""
    return surveys.verbatims(store(), filters)


@data.reads(*surveys.SOURCE_TABLES, show_spinner=False, ttl=TTL)
def distinguishing_terms(filters: Filters) -> pd.DataFrame:
    """Terms typical of detractors against promoters."""
    return surveys.distinguishing_terms(verbatims(filters))


@data.reads(
    *surveys.SOURCE_TABLES,
    "customer_scores",
    show_spinner="Following respondents...",
    ttl=TTL,
)
def survey_value(filters: Filters) -> tuple[pd.DataFrame, dict]:
    """Churn by NPS bucket and the value of detractors."""
    churn = surveys.churn_by_bucket(surveys.respondents(store(), filters))
    return churn, surveys.detractor_value(store(), filters)


@data.reads(
    *campaigns.SOURCE_TABLES,
    show_spinner="Attributing revenue...",
    ttl=TTL,
)
def campaign_roi(filters: Filters, model: str, lookback_days: int) -> pd.DataFrame:
    """Per-campaign ROI under an attribution model, spend sliced like revenue."""
    return campaigns.campaign_roi(store(), filters, model, lookback_days)


@data.reads(
    *campaigns.SOURCE_TABLES,
    show_spinner="Comparing treatment and control...",
    ttl=TTL,
)
def incrementality(filters: Filters, window_days: int) -> pd.DataFrame:
    """Lift of every campaign with a control group that overlaps the period, in scope."""
    return campaigns.incrementality(store(), filters, window_days)


@data.reads(
    *funnels.EVENT_SOURCE_TABLES,
    show_spinner="Following customers through the funnel...",
    ttl=TTL,
)
def event_funnel(
    filters: Filters, steps: tuple[str, ...], order: str, window_days: int
) -> funnels.FunnelResult:
    """The event funnel for the chosen steps."""
    return funnels.event_funnel(store(), filters, list(steps), order=order, window_days=window_days)


@data.reads(*funnels.EVENT_SOURCE_TABLES, "customer_360", show_spinner=False, ttl=TTL)
def funnel_breakdown(
    filters: Filters, steps: tuple[str, ...], order: str, window_days: int, by: str
) -> pd.DataFrame:
    """Funnel steps per channel or country."""
    result = event_funnel(filters, steps, order, window_days)
    return funnels.funnel_breakdown(store(), result, by)


@data.reads("leads", show_spinner=False, ttl=TTL)
def lead_views(filters: Filters) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Lead stage funnel, time in stage and results by source."""
    return (
        funnels.lead_funnel(store(), filters),
        funnels.lead_stage_ages(store(), filters),
        funnels.leads_by_source(store(), filters),
    )


@data.reads("customers", show_spinner=False, ttl=60)
def search_customers(text: str, role: str) -> pd.DataFrame:
    """Customers matching a name, e-mail, phone or id (only an id for roles without PII)."""
    return profile.search(store(), text, role)


@data.reads(
    *profile.SOURCE_TABLES,
    show_spinner="Loading the profile...",
    ttl=60,
)
def customer_profile(customer_id: int, role: str) -> tuple[dict | None, dict[str, pd.DataFrame]]:
    """A customer's profile and history, personal data masked for `role`."""
    return (
        profile.customer(store(), customer_id, role),
        profile.history(store(), customer_id, role),
    )


@data.reads("customer_360", "segments", show_spinner=False, ttl=60)
def customer_segments(customer_id: int) -> dict[str, object]:
    """The customer's RFM segment, cluster and saved segments."""
    return profile.segment_facts(store(), customer_id)


@data.reads("merges", show_spinner=False, ttl=60)
def merge_links(customer_id: int) -> tuple[merge.Merge | None, list[int]]:
    """The merge that folded this customer into another (if any), and the ids folded into it."""
    return merge.merged_into(store(), customer_id), merge.merged_from(store(), customer_id)

"""How a field is labelled and formatted: one place that every table, chart and export reads.

A name is looked up, in this order, in
1. the customer 360 table's columns (``crm_core.schema.customer_360``),
2. the KPI declarations (``crm_core.metrics.METRICS``: label and format),
3. ``COLUMNS`` below: the columns analytics modules output that are no store column
   (customers, share, conversion, win_rate, lift, roi, ...),
4. every other store table's columns (``crm_core.schema.metadata``),
and else guessed from the name (``_days`` -> days, ``_at`` -> date and time, ...).

A schema column says how it reads with two optional ``info`` keys: ``label`` (when the
humanised name is not good: ``p_alive`` -> "P(alive)") and ``kind`` (when the type does not
say it: a Double that is money). Without them the type decides: Money -> money, ``share`` ->
percent, Integer -> count (``_score`` -> score, ``_days`` -> days, ``_id`` -> id), Date ->
date, DateTime -> date and time, Boolean -> yes/no. To label a new column, add ``label=`` to
its schema declaration, or one line to ``COLUMNS`` if it is no store column.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from functools import cache

import pandas as pd
import sqlalchemy as sa

CURRENCY = "$"
"""The store's currency symbol (money is DECIMAL(12,2) in one currency; no setting yet)."""

KINDS = (
    "money",
    "count",
    "percent",
    "number",
    "score",
    "days",
    "date",
    "datetime",
    "text",
    "id",
    "customer_id",
    "boolean",
)
"""How a value is shown: money with currency, shares as percent, counts with separators..."""

UNITS = {
    "money": CURRENCY,
    "percent": "%",
    "days": "days",
}
"""The unit an axis title adds to a label ("Revenue ($)"); counts name their unit."""


@dataclass(frozen=True)
class Display:
    """A field as people read it: its label, its kind (KINDS) and a help text."""

    name: str
    label: str
    kind: str = "text"
    help: str = ""


# name: (label, kind, help). Columns analytics modules output that are no store column.
COLUMNS: dict[str, tuple[str, str, str]] = {
    # counts and shares of customers
    "customers": ("Customers", "count", ""),
    "share": ("Share of customers", "percent", ""),
    "respondents": ("Respondents", "count", "Customers who answered."),
    "responses": ("Answers", "count", ""),
    "segment": ("Segment", "text", ""),
    "precedence": ("Rule order", "id", "The first rule a customer matches decides."),
    "meaning": ("Meaning", "text", ""),
    "bucket": ("NPS group", "text", "Promoter (9-10), passive (7-8) or detractor (0-6)."),
    "cluster": ("Cluster", "id", ""),
    "period": ("Period", "date", ""),
    "month": ("Month", "date", ""),
    "rows": ("Rows", "count", ""),
    "table": ("Table", "text", ""),
    "field": ("Field", "text", ""),
    "value": ("Value", "text", ""),
    "reason": ("Reason", "text", ""),
    "active": ("Active", "boolean", ""),
    "available": ("File kept", "boolean", ""),
    "campaign": ("Campaign", "text", ""),
    # funnels and leads
    "step": ("Step", "id", ""),
    "conversion": ("Conversion", "percent", "Share of entrants who reached the last step."),
    "conversion_from_start": ("Conversion from entry", "percent", "Share of entrants."),
    "conversion_from_previous": ("Conversion from previous step", "percent", ""),
    "dropped": ("Dropped here", "count", "Reached the previous step but not this one."),
    "entered": ("Entered", "count", "Customers who entered the funnel."),
    "median_minutes_from_previous": ("Median minutes from previous step", "number", ""),
    "leads": ("Leads", "count", ""),
    "won": ("Won", "count", ""),
    "lost": ("Lost", "count", ""),
    "open_leads": ("Open leads", "count", ""),
    "median_days_in_stage": ("Median days in stage", "days", ""),
    "win_rate": ("Win rate", "percent", "Won leads / decided (won or lost) leads."),
    "won_value": ("Won value", "money", ""),
    "avg_deal": ("Average won deal", "money", ""),
    # campaigns
    "total_spend": ("Campaign spend (all)", "money", "The campaign's whole spend."),
    "spend": ("Spend", "money", "Spend in the filter."),
    "spend_share": (
        "Share in filter",
        "percent",
        "Share of the campaign's contacts (or reached customers) in the filter.",
    ),
    "spend_basis": ("Spend split by", "text", ""),
    "conversions": ("Conversions", "count", "Attributed orders (split between touches)."),
    "audience": ("Audience", "count", ""),
    "in_scope": ("In filter", "count", ""),
    "roi": ("ROI", "percent", "(attributed revenue - spend) / spend"),
    "roas": ("ROAS", "number", "Attributed revenue / spend."),
    "cpa": ("CPA", "money", "Spend per conversion."),
    "treatment_customers": ("Treatment customers", "count", "Contacted."),
    "control_customers": ("Control customers", "count", "Held out at random."),
    "conversion_treatment": ("Conversion (treatment)", "percent", ""),
    "conversion_control": ("Conversion (control)", "percent", ""),
    "lift": ("Lift", "percent", "Treatment minus control conversion (percentage points)."),
    "lift_low": ("Lift, 95% low", "percent", ""),
    "lift_high": ("Lift, 95% high", "percent", ""),
    "relative_lift": ("Relative lift", "percent", "Lift / control conversion."),
    "revenue_per_customer_treatment": ("Revenue per customer (treatment)", "money", ""),
    "revenue_per_customer_control": ("Revenue per customer (control)", "money", ""),
    "incremental_revenue": ("Incremental revenue", "money", "Revenue beyond control."),
    "incremental_revenue_low": ("Incremental revenue, 95% low", "money", ""),
    "incremental_revenue_high": ("Incremental revenue, 95% high", "money", ""),
    "incremental_roi": ("Incremental ROI", "percent", "(incremental revenue - spend) / spend"),
    "outcome_days_observed": (
        "Days of outcome seen",
        "days",
        "Less than the outcome window: the lift is provisional.",
    ),
    "outcome_complete": ("Outcome complete", "boolean", ""),
    # CLV
    "expected_purchases": ("Expected purchases", "number", "In the CLV horizon."),
    "expected_aov": ("Expected order value", "money", "Gamma-Gamma expected spend per order."),
    "total_clv": ("Total CLV", "money", ""),
    "mean_clv": ("Mean CLV per customer", "money", ""),
    # churn
    "value_at_risk": ("Value at risk", "money", "Churn risk x CLV."),
    "churn_probability": ("Predicted churn risk", "percent", ""),
    "mean_risk": ("Mean churn risk", "percent", "The churn model's mean probability."),
    "mean_p_alive": ("Mean P(alive)", "percent", "The CLV model's mean P(alive)."),
    "importance": ("Importance", "number", "Drop in ROC AUC when the feature is shuffled."),
    "feature": ("Feature", "text", ""),
    "label": ("Feature", "text", ""),
    "psi": ("PSI", "number", "Population stability index: under 0.1 stable."),
    "trained_mean": ("Mean in training", "number", ""),
    "scoring_mean": ("Mean at scoring", "number", ""),
    "status": ("Status", "text", ""),
    "nps": ("NPS", "score", ""),
    # segments and exports
    "saved_at": ("Saved", "datetime", ""),
    "size_measured_at": ("Size measured", "datetime", ""),
    "measured_at": ("Measured", "datetime", ""),
    "version": ("Version", "id", ""),
    "segment_version": ("Version", "id", ""),
    "segment_name": ("Segment", "text", ""),
    "file": ("File", "text", ""),
    "file_sha256": ("File SHA-256", "text", ""),
    "column_names": ("Columns", "text", ""),
    "batch_id": ("Batch", "id", ""),
    "failed_logins": ("Failed sign-ins", "count", ""),
    "last_login_at": ("Last sign-in (UTC)", "datetime", ""),
    "created_at": ("Created (UTC)", "datetime", ""),
    # data quality (crm_core/quality.py)
    "quality_score": ("Quality score", "score", "0-100: weighted share of values that pass."),
    "check_label": ("Check", "text", ""),
    "column": ("Column", "text", ""),
    "failing": ("Failing rows", "count", ""),
    "checked": ("Rows checked", "count", "Rows with a value the check could look at."),
    "failing_share": ("Share failing", "percent", "Failing rows / rows checked."),
    "detail": ("Detail", "text", ""),
    "completeness": ("Completeness", "percent", "Required values filled in."),
    "validity": ("Validity", "percent", "Values that pass the format and range checks."),
    "integrity": ("References resolve", "percent", "References that point to a row."),
    "uniqueness": ("Uniqueness", "percent", "Customers sharing no e-mail or phone."),
    "in_range": ("Amounts in range", "percent", "Amounts inside the outlier fences."),
    "findings": ("Findings", "count", "Checks with failing rows."),
    "last_import_at": ("Last import (UTC)", "datetime", ""),
    "last_record_at": ("Newest record (UTC)", "datetime", ""),
    "recorded_at": ("Measured (UTC)", "datetime", ""),
    "filled": ("Filled in", "percent", "Share of rows with a value."),
    "required": ("Required", "boolean", ""),
}

_WORDS = {
    "id": "ID",
    "nps": "NPS",
    "csat": "CSAT",
    "clv": "CLV",
    "roi": "ROI",
    "roas": "ROAS",
    "cpa": "CPA",
    "rfm": "RFM",
    "aov": "AOV",
    "psi": "PSI",
    "sms": "SMS",
    "sql": "SQL",
    "mql": "MQL",
    "utc": "UTC",
    "sku": "SKU",
    "pc1": "PC1",
    "pc2": "PC2",
}


def humanise(name: str) -> str:
    """A readable label from a snake_case name ("orders_90d" -> "Orders (90 days)")."""
    text = re.sub(r"_(\d+)d$", r" (\1 days)", name)
    text = re.sub(r"(?<=.)_at$", "", text)
    words = [_WORDS.get(w.lower(), w) for w in re.split(r"[_\s]+", text) if w]
    if not words:
        return name
    first = words[0]
    words[0] = first if first.isupper() else first[:1].upper() + first[1:]
    return " ".join(words)


CODED = frozenset(
    {
        "acquisition_channel",
        "loyalty_tier",
        "channel",
        "objective",
        "category",
        "status",
        "event_type",
        "survey",
        "touchpoint",
        "priority",
        "source",
        "stage",
        "churn_band",
        "bucket",
        "kind",
        "role",
        "grain",
        "group",
        "contact_group",
        "spend_basis",
        "model",
        "mode",
    }
)
"""Fields whose values are codes (``paid_search``), shown in words by `value_label`; so is
every store column declared with ``allowed`` values."""

VALUE_LABELS = {
    "post_purchase": "Post-purchase",
    "paid_search": "Paid search",
    "organic_search": "Organic search",
    "paid_social": "Paid social",
    "hgb": "Gradient boosting",
    "logit": "Logistic regression",
    "logistic": "Logistic regression",
    "bgnbd": "BG/NBD",
    "pareto": "Pareto/NBD",
    "mbgnbd": "MBG/NBD",
    "kpi": "KPI",
    "winback": "Win-back",
    "won": "Won",
    "lost": "Lost",
}
"""Codes whose humanised form is not good enough; the rest go through `humanise` (which
keeps MQL, SQL, NPS, CSAT, SMS in capitals)."""

_CODE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@cache
def _allowed_fields() -> frozenset[str]:
    from crm_core import schema  # noqa: PLC0415

    return frozenset(
        column.name
        for table in schema.metadata.tables.values()
        for column in table.columns
        if column.info.get("allowed")
    )


def is_coded(name: str) -> bool:
    """Whether field `name` holds codes that read better in words (see `value_label`)."""
    key = name.replace(" ", "_")  # "acquisition channel" (a breakdown's column)
    return key in CODED or key in _allowed_fields()


def value_label(name: str, value: object) -> str:
    """A value of field `name` in words: codes of a coded field humanised ("paid_search" ->
    "Paid search", "mql" -> "MQL", "high" -> "High"), anything else as `format_value` shows
    it. Names, countries and segment names are left as they are."""
    if isinstance(value, str):
        if is_coded(name) and _CODE.match(value):
            return VALUE_LABELS.get(value) or humanise(value)
        return value
    return format_value(name, value)


def value_labels(name: str, values: object) -> list[str]:
    """`value_label` of each value (a chart's category axis or legend)."""
    return [value_label(name, v) for v in values]  # type: ignore[union-attr]


def category_ticks(name: str, values: object) -> dict[str, object]:
    """Plotly axis settings that show the codes of a category axis in words while the data
    (and what a click returns) keeps the codes."""
    codes = list(dict.fromkeys(values))  # type: ignore[call-overload]
    return {"tickmode": "array", "tickvals": codes, "ticktext": value_labels(name, codes)}


def _guess_kind(name: str) -> str:
    if name == "customer_id":
        return "customer_id"
    if name.endswith("_id") or name == "id":
        return "id"
    if name.endswith("_days") or name.startswith("days_"):
        return "days"
    if name.endswith("_at"):
        return "datetime"
    if name.endswith(("_date", "_on")) or name == "as_of":
        return "date"
    if name.endswith(("_rate", "_share", "_pct")):
        return "percent"
    if name.endswith("_score") or name == "score":
        return "score"
    if name.startswith(("n_", "num_")) or name.endswith("_count"):
        return "count"
    return "text"


def _column_kind(column: sa.Column) -> str:
    info, name, type_ = column.info, column.name, column.type
    if info.get("kind"):
        return info["kind"]
    if info.get("share"):
        return "percent"
    if name == "customer_id":
        return "customer_id"
    if isinstance(type_, sa.Boolean):
        return "boolean"
    if isinstance(type_, sa.DateTime):
        return "datetime"
    if isinstance(type_, sa.Date):
        return "date"
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float):
        return "money" if type_.scale == 2 else "number"
    if isinstance(type_, sa.Integer):
        guess = _guess_kind(name)
        return guess if guess in ("id", "score", "days") else "count"
    if isinstance(type_, sa.Float):
        guess = _guess_kind(name)
        return guess if guess in ("score", "days", "percent") else "number"
    return "text"


def _from_column(column: sa.Column) -> Display:
    doc = column.info.get("doc", "")
    label_ = column.info.get("label") or humanise(column.name)
    return Display(column.name, label_, _column_kind(column), doc)


_METRIC_KINDS = {"money": "money", "count": "count", "percent": "percent", "score": "score"}


@cache
def _declared() -> dict[str, Display]:
    from crm_core import metrics, schema  # noqa: PLC0415 (schema imports are heavy; once)

    found: dict[str, Display] = {}
    docs: dict[str, set[str]] = {}
    for table in schema.metadata.tables.values():  # declaration order: data tables first
        if table is schema.customer_360:
            continue
        for column in table.columns:
            found.setdefault(column.name, _from_column(column))
            docs.setdefault(column.name, set()).add(column.info.get("doc", ""))
    for name, texts in docs.items():  # a help text only where every table means the same
        if len(texts) > 1:
            found[name] = Display(name, found[name].label, found[name].kind)
    for name, (label_, kind, help_) in COLUMNS.items():
        found[name] = Display(name, label_, kind, help_)
    for metric in metrics.METRICS.values():
        found[metric.name] = Display(
            metric.name,
            metric.label,
            _METRIC_KINDS.get(metric.format, "number"),
            metric.description,
        )
    for column in schema.customer_360.columns:
        found[column.name] = _from_column(column)
    return found


def describe(name: str) -> Display:
    """The label and kind of a column or field name (a readable guess for unknown names)."""
    known = _declared().get(name)
    if known is not None:
        return known
    return Display(name, humanise(name), _guess_kind(name))


def label(name: str) -> str:
    """The label a marketer reads for a column or field name."""
    return describe(name).label


def unit(name: str) -> str:
    """The unit of a field's values ("$", "%", "days"; "" when the label says it)."""
    return UNITS.get(describe(name).kind, "")


def axis_title(name: str, title: str | None = None) -> str:
    """An axis title with its unit: "Revenue ($)", "Share of customers (%)", "Customers"."""
    shown = title or label(name)
    suffix = unit(name)
    if not suffix or suffix.lower() in shown.lower():
        return shown
    return f"{shown} ({suffix})"


_TICK = {
    "money": ",.2~s",
    "count": ",~r",
    "percent": ".0%",
    "number": ",.3~r",
    "score": ",.3~r",
    "days": ",~r",
}
_HOVER = {
    "money": ",.2f",
    "count": ",.0f",
    "percent": ".1%",
    "number": ",.2f",
    "score": ".1f",
    "days": ",.0f",
}


def tick_format(name: str) -> dict[str, object]:
    """Plotly axis settings for a field: tick format and prefix (money), integer steps for
    counts (no "1,872.5 customers"), dates as dates."""
    kind = describe(name).kind
    if kind in ("date", "datetime"):
        return {"tickformat": "%d %b %Y"}
    settings: dict[str, object] = {"tickformat": _TICK.get(kind, "")}
    if kind == "money":
        settings["tickprefix"] = CURRENCY
    if kind in ("count", "id", "days"):
        settings["tickformat"] = ",d"
    return settings


def hover_format(name: str) -> str:
    """A Plotly hover template piece for a field's value, e.g. "$%{y:,.2f}" (axis "y")."""
    return hover_template(name, "y")


def hover_template(name: str, axis: str = "y") -> str:
    """``%{axis:...}`` with the field's format and currency or unit."""
    kind = describe(name).kind
    if kind in ("date", "datetime"):
        return f"%{{{axis}|%d %b %Y}}"
    body = f"%{{{axis}:{_HOVER.get(kind, '')}}}" if kind in _HOVER else f"%{{{axis}}}"
    return f"{CURRENCY}{body}" if kind == "money" else body


def _missing(value: object) -> bool:
    """None, NaN, NaT or pd.NA (a list or array is not missing)."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_share(share: float, decimals: int = 1) -> str:
    """A share in percent, never rounded up to all or down to none (0.995 is "99.5%",
    0.9996 is ">99.9%", not "100.0%"; with no decimals 0.996 is ">99%")."""
    shown = f"{share:.{decimals}%}"
    step = 10.0**-decimals
    if shown == f"{100:.{decimals}f}%" and share < 1:
        return f">{100 - step:.{decimals}f}%"
    if shown == f"{0:.{decimals}f}%" and share > 0:
        return f"<{step:.{decimals}f}%"
    return shown


def format_money(value: float, *, short: bool = False) -> str:
    """Money with the currency: "$1,234.50"; short: "$1.2k", "$3.45M" (cards)."""
    amount = float(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if short and amount >= 1_000_000:
        return f"{sign}{CURRENCY}{amount / 1_000_000:,.2f}M"
    if short and amount >= 10_000:
        return f"{sign}{CURRENCY}{amount / 1_000:,.1f}k"
    return f"{sign}{CURRENCY}{amount:,.2f}"


def _format_number(value: float, decimals: int) -> str:
    if float(value).is_integer():
        return f"{float(value):,.0f}"
    return f"{float(value):,.{decimals}f}"


def format_value(name: str, value: object, *, short: bool = False) -> str:
    """A value of field `name` as text ("" for a missing value); `short` abbreviates money."""
    if _missing(value):
        return ""
    kind = describe(name).kind
    try:
        if kind == "money":
            return format_money(float(value), short=short)
        if kind == "percent":  # 12.3%, 3,004.9%
            return f"{100 * float(value):,.1f}%"
        if kind in ("count", "days"):
            return _format_number(float(value), 1)
        if kind == "score":
            return _format_number(float(value), 1)
        if kind == "number":
            return _format_number(float(value), 2) if math.isfinite(float(value)) else ""
        if kind in ("id", "customer_id"):
            return str(int(value)) if float(value).is_integer() else str(value)
    except (TypeError, ValueError):
        return str(value)
    if kind == "boolean":
        return "Yes" if bool(value) else "No"
    if kind in ("date", "datetime"):
        return _format_when(value, kind)
    return str(value)


def _format_when(value: object, kind: str) -> str:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if kind == "date" or (value.hour, value.minute, value.second) == (0, 0, 0):
            return f"{value:%d %b %Y}"
        return f"{value:%d %b %Y, %H:%M}"
    if isinstance(value, dt.date):
        return f"{value:%d %b %Y}"
    return str(value)


def spreadsheet_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as people read it in a spreadsheet (the app's CSV downloads and the CSVs of
    e-mailed reports): headers are labels with their unit ("Revenue ($)", "Share of
    customers (%)"), shares in percent, whole numbers without ".0", money in cents, other
    numbers to 4 decimals; numbers stay numbers (a spreadsheet can still add them up)."""
    out = frame.copy()
    names = {}
    for column in frame.columns:
        name = str(column)
        values = frame[column]
        kind = describe(name).kind
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = pd.to_numeric(values, errors="coerce")
            if kind == "percent":
                out[column] = (100 * numbers).round(2)
            elif pd.api.types.is_float_dtype(numbers):
                whole = numbers.dropna()
                if len(whole) and (whole == whole.round()).all() and whole.abs().max() < 2**53:
                    out[column] = numbers.round().astype("Int64")
                else:
                    out[column] = numbers.round(2 if kind == "money" else 4)
        names[column] = axis_title(name)
    return out.rename(columns=names)

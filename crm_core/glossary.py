"""The words the app uses, as data: what each figure means, how it is computed, where it is
shown and what it is not.

One place for every definition, so the KPI help, a page's help texts and the Glossary page
say the same thing. Above all it keeps three different numbers apart that are all loosely
called "churn": the **churn rate** (a KPI: last period's buyers who did not buy in this one),
the **churn risk** (the churn model's probability that a customer buys nothing in the churn
window) and **P(alive)** (the CLV model's probability that a customer is still a customer);
the churn page's **validation churn share** is a fourth, the share who really left in the
window the model is checked on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crm_core.analytics import churn, lead_scoring, next_purchase, rfm, surveys
from crm_core.errors import CRMError
from crm_core.metrics import CSAT_SATISFIED_MIN, METRICS, NPS_DETRACTOR_MAX, NPS_PROMOTER_MIN

_HIGH, _MEDIUM = (threshold for threshold, _ in churn.CHURN_BANDS[:2])
_WINDOWS = ", ".join(str(d) for d in next_purchase.WINDOWS_DAYS[:-1])
_WINDOWS += f" and {next_purchase.WINDOWS_DAYS[-1]}"
_FROM, _TO = (f"{q:.0%}" for q in next_purchase.WINDOW_QUANTILES)
_K = 5
"""The recommendations offered per customer and judged (precision@5, hit rate@5)."""


@dataclass(frozen=True)
class Term:
    """One glossary entry: a short definition, how it is computed, where it is shown and
    what it is not (the terms people confuse it with)."""

    key: str
    name: str
    definition: str
    computed: str
    shown: str
    not_: str = ""
    confused_with: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default=())

    def text(self) -> str:
        """All of the entry's words in one string, for searching."""
        return " ".join(
            [self.key, self.name, *self.aliases, self.definition, self.computed, self.not_]
        )


def _kpi(name: str) -> str:
    """The KPI's own description, so the KPI card and the glossary say the same."""
    return METRICS[name].description


TERMS: tuple[Term, ...] = (
    Term(
        "churn_rate",
        "Churn rate",
        _kpi("churn_rate"),
        "Customers with a completed order in the previous period of equal length and none in "
        "this one, divided by all customers with a completed order in the previous period. "
        "Observed, not predicted; 1 - retention rate.",
        "KPI overview (KPI card).",
        "Not the churn risk (a model's probability for one customer, about the future) and "
        "not P(alive) (the CLV model's probability that a customer is still a customer). "
        "It counts what already happened, over whole periods.",
        ("churn_risk", "p_alive", "validation_churn_share", "retention_rate"),
        ("churn", "lost customers"),
    ),
    Term(
        "churn_risk",
        "Churn risk",
        "The churn model's probability that a customer active in the last year buys nothing "
        f"in the churn window (by default the next {churn.DEFAULT_WINDOW_DAYS} days).",
        "A classifier (gradient boosting or logistic regression) trained on an earlier window "
        "with features known at its cutoff (recency, frequency, spend, visits, tickets, NPS, "
        "...), checked on the next window, then refitted and applied as of the last day with "
        f"data. Bands: high from {_HIGH:.0%}, medium from {_MEDIUM:.0%}, low below.",
        "Churn risk page, Customer 360 (model scores), Segment builder (average churn risk, "
        "the churn_risk field).",
        "Not the churn rate (a KPI: the share of last period's buyers who did not buy this "
        "period) and not P(alive) (from the CLV model: whether the customer is still a "
        "customer at all). A mean churn risk is a forecast, not a count of who left.",
        ("churn_rate", "p_alive", "validation_churn_share", "churn_band"),
        ("churn probability", "risk", "churn score"),
    ),
    Term(
        "p_alive",
        "P(alive)",
        "The CLV model's probability that a customer is still a customer: that they have not "
        "silently stopped buying for good.",
        "From the purchase model (BG/NBD, Pareto/NBD or MBG/NBD) and the customer's number of "
        "repeat purchase days, the time since the last one and the time since the first one.",
        "Lifetime value page (frequency-recency matrix), Churn risk page (beside the risk), "
        "Customer 360, Segment builder (the p_alive field).",
        "Not 1 - churn risk: the churn risk is about buying in a fixed window (a customer who "
        "buys twice a year can have a high churn risk and still a high P(alive)); and not the "
        "churn rate, which counts buyers of the last period.",
        ("churn_risk", "churn_rate", "clv"),
        ("probability alive", "still active", "alive"),
    ),
    Term(
        "validation_churn_share",
        "Validation churn share",
        "On the Churn risk page: the share of the customers active before the validation "
        "cutoff who bought nothing in the churn window after it, i.e. who really left in the "
        "window the model is checked on.",
        "Customers with a completed order in the year before the validation cutoff and none "
        "in the churn window after it, divided by all those customers.",
        "Churn risk page (the caption above the validation figures).",
        "Not the churn rate KPI (its periods and its base differ: last period's buyers "
        "against this period) and not the mean churn risk (a forecast of the next window).",
        ("churn_rate", "churn_risk"),
        ("validation churn", "churned share"),
    ),
    Term(
        "churn_band",
        "Churn-risk band",
        f"Low, medium or high churn risk: high from {_HIGH:.0%}, medium from {_MEDIUM:.0%}.",
        "The churn risk cut at fixed thresholds.",
        "Churn risk page (risk bands), Customer 360, Segment builder (churn_band).",
        "Not an RFM segment: RFM describes past buying, the band a forecast.",
        ("churn_risk", "rfm"),
        ("risk band", "high risk"),
    ),
    Term(
        "value_at_risk",
        "Value at risk",
        "The part of a customer's 12-month value that the churn risk puts in doubt: churn "
        "risk x CLV.",
        "Churn risk x the customer's CLV over 12 months, summed over customers for a band.",
        "Churn risk page (risk bands, high-risk customers).",
        "Not revenue lost: it is an expectation, and it counts only customers scored by both "
        "models.",
        ("churn_risk", "clv"),
    ),
    Term(
        "clv",
        "Customer lifetime value (CLV)",
        "What a customer is expected to spend over a horizon (12 months by default), in "
        "today's money.",
        "Expected purchases per month (the purchase model) x expected order value "
        "(Gamma-Gamma), discounted monthly and added up over the horizon.",
        "Lifetime value page, Churn risk page, Customer 360, Segment builder (clv).",
        "Not past revenue (that is spend so far, the M of RFM) and not a guarantee: the "
        "backtest on the Lifetime value page shows how far off it was on held-out data.",
        ("p_alive", "backtest_error", "value_at_risk"),
        ("lifetime value", "ltv"),
    ),
    Term(
        "backtest_error",
        "Backtest error (CLV)",
        "How far the CLV model's purchase forecast was off on data it did not see: the "
        "predicted total purchases after the calibration end against the real ones.",
        "(predicted - actual) / actual total holdout purchases; the model is fitted on orders "
        "up to the calibration end only.",
        "Lifetime value page (Backtest error, Backtest tab).",
        "Not the error of one customer's value (see Backtest MAE), and not about spend: it "
        "checks the number of purchases.",
        ("backtest_mae", "clv"),
        ("holdout error",),
    ),
    Term(
        "backtest_mae",
        "Backtest MAE (CLV)",
        "The average miss per customer, in purchases, of the CLV model's holdout forecast.",
        "Mean over customers of |predicted - actual purchases after the calibration end|.",
        "Lifetime value page (Backtest MAE).",
        "Not a relative error: most customers buy 0-2 times in a holdout, so 0.5 is a miss of "
        "half a purchase each.",
        ("backtest_error",),
        ("mean absolute error",),
    ),
    Term(
        "next_purchase",
        "Next purchase",
        "When a customer is expected to buy again: the chance of at least one purchase in the "
        f"next {_WINDOWS} days (p_purchase_7d, p_purchase_30d, p_purchase_90d), and the "
        f"window from the day that chance reaches {_FROM} (next_purchase_from) to the day it "
        f"reaches {_TO} (next_purchase_to).",
        "From the CLV purchase model (BG/NBD, Pareto/NBD or MBG/NBD): the customer's "
        "P(alive) and purchase rate give the chance of no purchase in the days after the "
        "data's end, and 1 minus it is the chance of one. The window's ends are empty "
        f"when the chance stays below {_FROM} (or {_TO}) within "
        f"{next_purchase.MAX_DAYS // 365} years. Backtested at the calibration end: predicted "
        "against actual share buying in each window, by decile of the prediction.",
        "Lifetime value page (Next purchase), Customer 360, Segment builder (e.g. next purchase "
        "from within the next 14 days), exports.",
        "Not a promise of a date: the chance of the next purchase falling inside the window "
        "is only about 50% (from 25% to 75%). And not the churn risk (buying nothing in the "
        "churn window, from another model).",
        ("p_alive", "clv", "churn_risk"),
        ("p_purchase", "due", "expected next order", "next order date"),
    ),
    Term(
        "rfm",
        "RFM segment",
        "A customer's group by recency (days since the last order), frequency (orders) and "
        "monetary value (spend), e.g. Champions or At risk.",
        "R, F and M are scored 1-5 by quintiles over every buyer; the segment is the first "
        f"row of the rule table whose R and F ranges match ({len(rfm.SEGMENT_NAMES)} segments).",
        "Segmentation page, Lifetime value page (CLV by RFM segment), Customer 360, Segment "
        "builder (rfm_segment).",
        "Not a cluster (found by k-means on chosen fields) and not a forecast: it describes "
        "past buying only.",
        ("churn_band", "cohort"),
        ("recency frequency monetary", "segment"),
    ),
    Term(
        "nps",
        "NPS",
        _kpi("nps"),
        f"% of NPS answers of {NPS_PROMOTER_MIN}-10 (promoters) minus % of 0-"
        f"{NPS_DETRACTOR_MAX} (detractors); shown with a 95% interval, and with a warning "
        f"under {surveys.MIN_RESPONSES} answers.",
        "KPI overview, NPS & CSAT page, Customer 360 (latest answer).",
        "Not a percentage of satisfied customers (that is CSAT) and not an average score: "
        "passives (7-8) count for nothing.",
        ("csat",),
        ("net promoter score",),
    ),
    Term(
        "csat",
        "CSAT",
        _kpi("csat"),
        f"Answers of {CSAT_SATISFIED_MIN} or 5 divided by all CSAT answers in the period.",
        "KPI overview, NPS & CSAT page.",
        "Not NPS: CSAT asks about one contact (1-5), NPS about recommending the business (0-10).",
        ("nps",),
        ("customer satisfaction",),
    ),
    Term(
        "retention_rate",
        "Retention rate",
        _kpi("retention_rate"),
        "Customers with a completed order in both the previous period of equal length and "
        "this one, divided by those with one in the previous period.",
        "KPI overview.",
        "Not the repeat rate (orders within one period) and not a cohort's retention (the "
        "heatmap follows the customers of a first-purchase month).",
        ("churn_rate", "repeat_purchase_rate", "cohort"),
        ("retention",),
    ),
    Term(
        "repeat_purchase_rate",
        "Repeat rate",
        _kpi("repeat_purchase_rate"),
        "Active customers with 2 or more completed orders in the period, divided by all "
        "active customers.",
        "KPI overview.",
        "Not the retention rate: it looks inside one period, not from one period to the next.",
        ("retention_rate",),
        ("repeat purchase rate",),
    ),
    Term(
        "aov",
        "Average order value (AOV)",
        _kpi("aov"),
        "Revenue of completed orders / number of completed orders.",
        "KPI overview, Customer 360.",
        "Not spend per customer (a customer can place several orders) and not the expected "
        "order value of the CLV model (a forecast per customer).",
        ("clv",),
        ("aov", "basket value"),
    ),
    Term(
        "cohort",
        "Cohort retention",
        "The customers whose first purchase fell in one month, and the share of them who "
        "bought again N months later.",
        "Per first-purchase month in the period: buyers in month N / customers in the cohort.",
        "KPI overview (cohort heatmap).",
        "Not the retention rate KPI, which compares two whole periods of all buyers.",
        ("retention_rate",),
        ("cohort",),
    ),
    Term(
        "roc_auc",
        "ROC AUC",
        "How well a model ranks: for the churn model, in how many of 100 pairs of a customer "
        "who left and one who stayed it ranks the leaver as riskier; for the lead model, in "
        "how many of 100 pairs of a lead that was won and one that was not it scores the won "
        "lead higher.",
        "Area under the ROC curve on the validation window (customers or leads the model did "
        "not learn from); 0.5 is a coin flip, 1 a perfect ranking. Each model is shown beside "
        "a baseline: days since the last order (churn), the lead's source alone (leads).",
        "Churn risk page (churn model); Funnels page, Lead lifecycle tab (lead scores).",
        "Not an accuracy or a share of customers: it says nothing about whether the "
        "probabilities are right (see Brier score and calibration).",
        ("pr_auc", "brier", "calibration"),
        ("auc", "area under the curve"),
    ),
    Term(
        "pr_auc",
        "PR AUC",
        "How precise the churn model is when you contact customers from the riskiest down: "
        "the average share of real leavers among those picked.",
        "Average precision on the validation window. Picking at random gives the validation "
        "churn share, so compare with that.",
        "Churn risk page.",
        "Not ROC AUC: it depends on how many customers leave, so compare it with the "
        "validation churn share, not with 0.5.",
        ("roc_auc", "validation_churn_share"),
        ("average precision",),
    ),
    Term(
        "brier",
        "Brier score",
        "How close the predicted churn risks are to what happened: the mean squared gap "
        "between each risk and 1 (left) or 0 (stayed). Lower is better.",
        "Mean of (churn risk - outcome)^2 over the validation customers. Always guessing the "
        "validation churn share p scores p x (1 - p).",
        "Churn risk page.",
        "Not a ranking measure (see ROC AUC): a model can rank well and still give risks "
        "that are too high or too low.",
        ("calibration", "roc_auc"),
        ("brier",),
    ),
    Term(
        "calibration",
        "Calibration",
        "Whether a predicted churn risk of 70% means that about 70 in 100 such customers leave.",
        "Validation customers in ten groups by predicted risk: the mean predicted risk "
        "against the share who really left in each group.",
        "Churn risk page (calibration curve).",
        "Not ranking quality (ROC AUC): calibration is about the probabilities themselves.",
        ("brier", "churn_risk"),
        ("reliability",),
    ),
    Term(
        "lead_score",
        "Lead score (win probability)",
        "The lead model's chance that an open lead is won within the window (by default "
        f"{lead_scoring.DEFAULT_WINDOW_DAYS} days), with the reasons that raise it most.",
        "A classifier (gradient boosting or logistic regression) on the lead's source, its "
        "engagement (activities, recent activities, meetings) and its stage and time in stage, "
        "each as of a cutoff; trained on earlier cutoffs, validated on later ones against a "
        "source-only baseline (ROC AUC, calibration), then refitted to score the leads open "
        f"on the last day and created in the {lead_scoring.ACTIVE_DAYS} days before.",
        "Funnels page (Lead lifecycle tab: the open leads, highest chance first), Customer "
        "360 and Segment builder (lead_score: the customer's latest open lead, as of the last "
        "lead scoring), exports.",
        "Not a share of leads that will be won this week, and not a customer's chance to buy "
        "(see next purchase): it is about one open lead being won within the window.",
        ("mql_threshold", "roc_auc", "calibration"),
        ("win probability", "lead scoring"),
    ),
    Term(
        "mql_threshold",
        "MQL threshold",
        "The lead score from which a lead is worth a call (a marketing-qualified lead), set "
        "from how many leads sales can call a week.",
        f"Capacity / new leads a week (over the last {lead_scoring.CAPACITY_WEEKS} weeks) is "
        "the share of new leads to call; the threshold is the score of the new leads at that "
        "top share. When the capacity is at least the new leads a week there is no threshold: "
        "call every new lead. Expected wins: the sum of the win probabilities of the open "
        "leads at or above it (won within the window, not a week).",
        "Funnels page (Lead lifecycle tab: MQL threshold, leads above it, expected wins).",
        "Not a fixed rule (it moves with the capacity and the lead volume) and not the stage "
        "MQL of the lead funnel (a stage a lead was moved to by people).",
        ("lead_score",),
        ("mql", "sales capacity", "expected wins"),
    ),
    Term(
        "roi",
        "ROI",
        "Return on a campaign's spend: (attributed revenue - spend) / spend.",
        "Revenue credited to the campaign by the chosen attribution model and lookback "
        "window, against its spend in the filter.",
        "Campaign ROI page.",
        "Not incremental ROI: attributed revenue credits every order after a touch, also "
        "those the customer would have placed anyway (see lift).",
        ("lift", "roas"),
        ("return on investment", "attributed roi"),
    ),
    Term(
        "roas",
        "ROAS",
        "Attributed revenue per unit of spend (return on ad spend).",
        "Attributed revenue / spend in the filter.",
        "Campaign ROI page (campaign table).",
        "Not ROI: ROAS 2.0 is ROI 100%.",
        ("roi",),
        ("return on ad spend",),
    ),
    Term(
        "lift",
        "Lift (incrementality)",
        "What a campaign changed: how much more often customers who got it bought than a "
        "random control group who did not.",
        "Conversion of the treatment group minus that of the control group within the outcome "
        "window, with a 95% interval (Newcombe); incremental revenue and ROI follow from it.",
        "Campaign ROI page (Incrementality).",
        "Not attributed ROI, which credits every order after a touch. An interval that "
        "includes 0 means the campaign's effect is not shown.",
        ("roi",),
        ("incrementality", "uplift", "incremental roi"),
    ),
    Term(
        "funnel_conversion",
        "Funnel conversion",
        "The share of customers who did the funnel's first step and went on to do the later "
        "steps within the conversion window.",
        "Customers who reached a step / customers who did the first step (from start), or / "
        "customers who reached the step before (from previous); counted by customer.",
        "Funnels page.",
        "Not the conversion of a campaign (a campaign's orders) and not a count of events: a "
        "customer counts once.",
        ("roi",),
        ("conversion", "drop-off"),
    ),
    Term(
        "precision_at_k",
        f"Precision@{_K}",
        f"Of the {_K} products recommended to a customer, the share they bought in their next "
        "order: how many offers were right.",
        "Each customer with at least two purchases with order lines has their last order "
        f"hidden; the model is fitted on every other order and recommends {_K} products on "
        f"the day of the hidden order. Precision = products bought / ({_K} x customers), "
        f"against a popularity baseline (the {_K} products most customers bought that the "
        "customer had not bought, nor another variant of, such as another price level).",
        "Recommendations page (validation on held-out last orders).",
        "Not the hit rate (customers with at least one right offer): few next orders hold "
        f"{_K} new products, so a precision of 5-10% can be good. Compare with the baseline.",
        ("hit_rate_at_k", "recommendation_coverage", "recommendation_score"),
        ("precision@5", "precision at 5"),
    ),
    Term(
        "hit_rate_at_k",
        f"Hit rate@{_K}",
        f"The share of customers who bought at least one of the {_K} products recommended to "
        "them, in their next order.",
        "On the same held-out last orders as precision@5: customers with at least one "
        "recommended product in the hidden order / customers evaluated, against the "
        "popularity baseline.",
        "Recommendations page (validation on held-out last orders).",
        "Not precision (the share of offers bought, not of customers) and not a conversion "
        "rate of a campaign: nobody was sent the offers.",
        ("precision_at_k", "recommendation_coverage"),
        ("hit rate@5", "hit rate at 5"),
    ),
    Term(
        "recommendation_coverage",
        "Coverage (recommendations)",
        "The share of customers with a completed order who have at least one stored "
        "recommendation.",
        "Customers with a row in the stored recommendations / customers with a completed "
        "order, as of the last recompute.",
        "Recommendations page (Stored recommendations).",
        "Not a quality measure (see precision@5 and hit rate@5): a customer whose products "
        "are neither due nor bought with others gets no offer, which is better than a poor one.",
        ("precision_at_k", "hit_rate_at_k"),
        ("coverage",),
    ),
    Term(
        "recommendation_score",
        "Recommendation score",
        "How strongly one recommendation is supported, 0-100, to rank a customer's offers.",
        "Cross-sell: the rule's confidence (the share of orders with the product bought that "
        "also held the offer), halved for each order since the customer bought it. "
        "Replenishment: (n - 1) / n for n purchase days of the product (the more repeats, the "
        "surer the cycle), fading once more than two cycles have passed. Shown x 100.",
        "Recommendations page (a customer's list).",
        "Not a probability that the customer buys the product: the two methods' scores only "
        "order the offers (see precision@5 for how often offers are bought).",
        ("precision_at_k",),
        ("score", "offer score"),
    ),
)
"""Every term, in the order the Glossary page lists them."""

BY_KEY: dict[str, Term] = {term.key: term for term in TERMS}


def term(key: str) -> Term:
    """The entry for `key` (e.g. "churn_rate"); CRMError naming the known keys if unknown."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise CRMError(f"Glossary: no term {key!r}; known terms: {', '.join(BY_KEY)}.") from None


def help_for(key: str) -> str:
    """The help text of a figure: the glossary's definition and what it is not."""
    entry = term(key)
    return f"{entry.definition} {entry.not_}".strip()


def search(text: str) -> list[Term]:
    """The terms whose words contain every word of `text` (case-insensitive; all for "")."""
    words = text.lower().split()
    return [t for t in TERMS if all(w in t.text().lower() for w in words)]


def kpi_help(metric_name: str) -> str:
    """The help of a KPI card: the glossary's words when it has the term, else the KPI's own
    description (crm_core.metrics)."""
    if metric_name in BY_KEY:
        return help_for(metric_name)
    return METRICS[metric_name].description

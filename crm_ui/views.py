"""The views the app offers: where each lives, its title and icon, and its section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class View:
    """One page of the app; `key` is the name the role matrix uses (crm_core.auth.VIEW_ROLES)."""

    key: str
    title: str
    icon: str
    section: str
    path: str
    filters_note: str = ""
    """What the sidebar filters do on this view, and which it does not use and why (shown
    under the title)."""


VIEWS: tuple[View, ...] = (
    View(
        "home",
        "Home",
        ":material/home:",
        "Overview",
        "app_pages/home.py",
        (
            "Each pin keeps the filters it was pinned with (said under it), not the sidebar's: "
            "a period preset such as Last 30 days counts back from the last day with data."
        ),
    ),
    View(
        "overview",
        "KPI overview",
        ":material/dashboard:",
        "Overview",
        "app_pages/overview.py",
        "Every figure uses the sidebar's period, comparison, country and sales channel.",
    ),
    View(
        "alerts",
        "Alerts & schedules",
        ":material/notifications:",
        "Overview",
        "app_pages/alerts.py",
        (
            "A new KPI alert starts from the sidebar's countries and channels (kept in the rule); "
            "the period is not used: a rule watches the latest complete day, week or month, and "
            "its backtest the 12 months before."
        ),
    ),
    View(
        "customer_360",
        "Customer 360",
        ":material/person_search:",
        "Customers",
        "app_pages/customer_360.py",
        "The sidebar filters are not used: a profile shows the customer's whole history.",
    ),
    View(
        "segmentation",
        "Segmentation",
        ":material/donut_small:",
        "Customers",
        "app_pages/segmentation.py",
        (
            "RFM uses the period's last day as its as-of date and counts the customers of the "
            "chosen countries and channels (scores are ranked over all customers, so a customer's"
            " segment is the same on every page). Clusters use every buyer in the customer 360 "
            "table."
        ),
    ),
    View(
        "segment_builder",
        "Segment builder",
        ":material/group_add:",
        "Marketing",
        "app_pages/segment_builder.py",
        (
            "The sidebar filters are not used: a segment's own rules decide who is in it (add a "
            "country rule to narrow it), so a saved segment means the same for everyone who "
            "exports it."
        ),
    ),
    View(
        "campaigns",
        "Campaign ROI",
        ":material/campaign:",
        "Marketing",
        "app_pages/campaigns.py",
        (
            "Period, country and sales channel apply: revenue and spend are both scoped to the "
            "customers in the filter (spend by their share of each campaign's contacts), and "
            "incrementality uses the campaigns running in the period."
        ),
    ),
    View(
        "recommendations",
        "Recommendations",
        ":material/recommend:",
        "Marketing",
        "app_pages/recommendations.py",
        (
            "The sidebar filters are not used: products are recommended from every customer's "
            "whole purchase history, as of the last day with a completed order."
        ),
    ),
    View(
        "surveys",
        "NPS & CSAT",
        ":material/sentiment_satisfied:",
        "Analysis",
        "app_pages/surveys.py",
        (
            "Uses answers given in the period by customers of the chosen countries (and who "
            "bought through the chosen channels)."
        ),
    ),
    View(
        "funnels",
        "Funnels",
        ":material/filter_alt:",
        "Analysis",
        "app_pages/funnels.py",
        (
            "The event funnel uses the period and the customers of the chosen countries and "
            "channels; the lead funnel uses the period only (a lead has no country or channel "
            "until it becomes a customer)."
        ),
    ),
    View(
        "clv",
        "Lifetime value",
        ":material/savings:",
        "Analysis",
        "app_pages/clv.py",
        (
            "The models use the orders of the chosen countries and channels up to the period's "
            "last day; the calibration end and horizon are chosen below."
        ),
    ),
    View(
        "churn",
        "Churn risk",
        ":material/person_remove:",
        "Analysis",
        "app_pages/churn.py",
        (
            "The model scores customers as of the period's last day, using the customers and "
            "orders of the chosen countries and channels; its training windows are set by the "
            "churn window below."
        ),
    ),
    View(
        "data_import",
        "Data import",
        ":material/upload_file:",
        "Admin",
        "app_pages/data_import.py",
        "The sidebar filters are not used here: an import loads whole files into the store.",
    ),
    View(
        "admin",
        "Users & audit",
        ":material/admin_panel_settings:",
        "Admin",
        "app_pages/admin.py",
        "The sidebar filters are not used here: users and the export log concern the whole store.",
    ),
    View(
        "data_quality",
        "Data quality",
        ":material/fact_check:",
        "Admin",
        "app_pages/data_quality.py",
        (
            "The sidebar filters are not used here: data quality is measured on whole tables "
            "(every row of each data table), so a problem outside the period still shows."
        ),
    ),
    View(
        "duplicates",
        "Duplicates",
        ":material/join_inner:",
        "Admin",
        "app_pages/duplicates.py",
        (
            "The sidebar filters are not used here: duplicates are looked for among every live "
            "customer, and a merge moves a customer's whole history."
        ),
    ),
    View(
        "privacy",
        "Privacy",
        ":material/shield_person:",
        "Admin",
        "app_pages/privacy.py",
        (
            "The sidebar filters are not used here: privacy concerns every person and every "
            "row, whatever the period."
        ),
    ),
    View(
        "glossary",
        "Glossary",
        ":material/menu_book:",
        "Help",
        "app_pages/glossary.py",
        (
            "The sidebar filters are not used here: the glossary defines the words and figures "
            "every view uses (churn rate, churn risk, P(alive), ...)."
        ),
    ),
)

SECTIONS = ("Overview", "Customers", "Marketing", "Analysis", "Admin", "Help")

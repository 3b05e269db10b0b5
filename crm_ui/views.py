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


VIEWS: tuple[View, ...] = (
    View("overview", "KPI overview", ":material/dashboard:", "Overview", "app_pages/overview.py"),
    View(
        "customer_360",
        "Customer 360",
        ":material/person_search:",
        "Customers",
        "app_pages/customer_360.py",
    ),
    View(
        "segmentation",
        "Segmentation",
        ":material/donut_small:",
        "Customers",
        "app_pages/segmentation.py",
    ),
    View(
        "segment_builder",
        "Segment builder",
        ":material/group_add:",
        "Marketing",
        "app_pages/segment_builder.py",
    ),
    View("campaigns", "Campaign ROI", ":material/campaign:", "Marketing", "app_pages/campaigns.py"),
    View(
        "surveys",
        "NPS & CSAT",
        ":material/sentiment_satisfied:",
        "Analysis",
        "app_pages/surveys.py",
    ),
    View("funnels", "Funnels", ":material/filter_alt:", "Analysis", "app_pages/funnels.py"),
    View("clv", "Lifetime value", ":material/savings:", "Analysis", "app_pages/clv.py"),
    View("churn", "Churn risk", ":material/person_remove:", "Analysis", "app_pages/churn.py"),
    View(
        "data_import", "Data import", ":material/upload_file:", "Admin", "app_pages/data_import.py"
    ),
    View(
        "admin", "Users & audit", ":material/admin_panel_settings:", "Admin", "app_pages/admin.py"
    ),
)

SECTIONS = ("Overview", "Customers", "Marketing", "Analysis", "Admin")

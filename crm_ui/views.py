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
        "data_import", "Data import", ":material/upload_file:", "Admin", "app_pages/data_import.py"
    ),
    View(
        "admin", "Users & audit", ":material/admin_panel_settings:", "Admin", "app_pages/admin.py"
    ),
)

SECTIONS = ("Overview", "Customers", "Marketing", "Analysis", "Admin")

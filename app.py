"""CRM Insights: the router, the login gate and the shared sidebar filters."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from crm_core import auth
from crm_core.errors import SparkError
from crm_ui import auth_ui, filters_ui, style
from crm_ui.views import SECTIONS, VIEWS

# A file of our own: a material icon as page icon is fetched from Google's font server.
ICON = Path(__file__).parent / "crm_ui" / "assets" / "icon.png"
ABOUT = (
    "**CRM Insights**: self-hosted customer analytics. Your data stays on this machine. "
    "Choose light or dark under Settings in this menu."
)
# An About entry shows the app menu (hidden by toolbarMode = "minimal"), and with it the
# theme choice: light, dark or the system's setting.
st.set_page_config(
    page_title="CRM Insights",
    page_icon=str(ICON),
    layout="wide",
    menu_items={"About": ABOUT},
)
style.inject()  # the few CSS rules Streamlit has no option for (crm_ui/style.py)

user = auth_ui.login_gate()
if user is None:
    st.stop()

# Every view is registered so that a direct URL reaches the page's own role check and shows
# "not allowed"; only the role's own views are listed in the navigation.
pages: dict[str, list[st.Page]] = {}
for view in VIEWS:
    page = st.Page(
        view.path,
        title=view.title,
        icon=view.icon,
        url_path=view.key,
        default=view.key == "home",
        visibility="visible" if auth.may_view(user.role, view.key) else "hidden",
    )
    pages.setdefault(view.section, []).append(page)
navigation = st.navigation(
    {section: pages[section] for section in SECTIONS if section in pages}, expanded=True
)

with st.sidebar:
    st.caption(f"Signed in as **{user.name}** ({user.role})")
    auth_ui.logout_button()
try:
    filters_ui.sidebar_filters()
    navigation.run()
except SparkError as exc:  # Spark gone or a lake table missing: every view needs them
    st.error(
        "**The figures cannot be read right now:** the analytics engine (Apache Spark) is "
        "not available. Please tell your administrator what it says:\n\n" + str(exc),
        icon=":material/cloud_off:",
    )

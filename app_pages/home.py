"""Home: the KPIs and charts a user pinned from the views, or their role's published default."""

import streamlit as st

from crm_core import auth
from crm_ui import auth_ui, pins, widgets

user = auth_ui.require_view("home")
st.title("Home")
widgets.filter_note("home")
pins.show_flash()

shown = pins.pins_for(user)
is_default = bool(shown) and shown[0].is_role_default
if not shown:
    st.info(
        "Your Home page is empty. Open a view (KPI overview, Churn risk, Funnels, ...) and "
        "press **Pin to home** under a chart (or **Pin KPIs to home** under the KPI cards): it "
        "appears here with that view's "
        "settings and the sidebar filters you had, until you remove it. Move pins up and down "
        "here to arrange them.",
        icon=":material/push_pin:",
    )
elif is_default:
    st.caption(
        f"The default Home of the {user.role} role, published by an admin. Your first "
        "**Pin to home** starts your own page from it; or make it your own now to rearrange it."
    )
    st.button(
        "Make this Home page my own",
        on_click=pins.adopt,
        help="Copies these pins to your own Home page, so you can move and remove them.",
    )

place = 0
for row in pins.rows(shown):
    pins.show_row(row, place, len(shown), editable=not is_default)
    place += len(row)

if user.can("publish_home"):
    st.divider()
    st.subheader("Default Home for a role")
    published = pins.published_roles()
    st.caption(
        "Publish your pins as the Home page of a role: its users who have no pins of their own "
        "see them (pins of views the role may not open are left out). Publishing again "
        "replaces the default; users who already copied it keep their copy."
    )
    role = st.selectbox(
        "Role",
        auth.ROLES,
        index=auth.ROLES.index("manager"),
        format_func=lambda r: (
            f"{r} ({published[r]} pins published)"
            if r in published
            else f"{r} (no default published)"
        ),
        key="home_publish_role",
    )
    own = shown and not is_default
    with st.container(horizontal=True):
        st.button(
            f"Publish as the default for role {role}",
            on_click=pins.publish,
            args=(role,),
            key="home_publish",
            type="primary",
            disabled=not own,
            help="Copies your pins, in this order, with their settings and filters."
            if own
            else "Pin something to your own Home page first.",
        )
        st.button(
            "Remove the published default",
            on_click=pins.unpublish,
            args=(role,),
            key="home_unpublish",
            disabled=role not in published,
            help=f"Users of the {role} role without pins of their own then see an empty Home.",
        )

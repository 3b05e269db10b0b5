"""AppTest: Home is the default page; pin from a view, see it on Home, rearrange, remove;
an admin publishes a role's default Home and a new user of that role sees it."""

from __future__ import annotations

import pytest

from crm_core import auth, home
from crm_core.home import PINNABLE
from crm_core.store import get_store
from tests.app.conftest import errors, sign_in

HOME = "app_pages/home.py"


def info_texts(at) -> list[str]:
    return [i.value for i in at.info]


def home_pin_ids(at, action: str) -> list[int]:
    """Pin ids on Home, in page order, from the keys of their `action` buttons."""
    prefix = f"home_{action}_"
    return [int(b.key.removeprefix(prefix)) for b in at.button if (b.key or "").startswith(prefix)]


def pin_kpis(at, *names: str) -> None:
    """Pin KPIs of the overview through its "Pin KPIs to home" menu."""
    at.multiselect(key="pin_overview_kpis").set_value(list(names)).run()
    at.button(key="pin_overview_kpis_add").click().run()


def test_home_is_the_default_page_and_explains_how_to_pin(own_store):
    at = sign_in("manager", page=None)
    assert not at.exception and not errors(at)
    assert [t.value for t in at.title] == ["Home"]
    assert any("press **Pin to home**" in text for text in info_texts(at))


def test_pin_from_the_overview_see_it_on_home_move_and_remove_it(own_store):
    at = sign_in("manager")  # on the KPI overview
    revenue = next(m.value for m in at.metric if m.label == "Revenue")
    pin_kpis(at, "revenue")
    assert not at.exception and not errors(at)
    assert any("Pinned Revenue" in t.value for t in at.toast)
    at.button(key="pin_overview_revenue_trend").click().run()

    at.switch_page(HOME).run()
    assert not at.exception and not errors(at)
    assert [(m.label, m.value) for m in at.metric] == [("Revenue", revenue)]
    assert len(at.get("plotly_chart")) == 1
    assert any("Last 12 months" in c.value and "all countries" in c.value for c in at.caption)
    first, second = home_pin_ids(at, "remove")

    at.button(key=f"home_up_{second}").click().run()
    assert home_pin_ids(at, "remove") == [second, first]
    assert at.button(key=f"home_up_{second}").disabled

    at.button(key=f"home_remove_{first}").click().run()
    assert not at.exception
    assert not at.metric and home_pin_ids(at, "remove") == [second]
    assert any("Removed Revenue" in s.value for s in at.success)
    at.button(key=f"home_remove_{second}").click().run()
    assert any("press **Pin to home**" in text for text in info_texts(at))


def test_a_pin_keeps_its_filters_when_the_sidebar_changes(own_store):
    at = sign_in("analyst")
    at.sidebar.multiselect(key="filter_countries").select("US").run()
    in_us = next(m.value for m in at.metric if m.label == "Orders")
    pin_kpis(at, "orders")
    at.sidebar.multiselect(key="filter_countries").unselect("US").run()
    at.switch_page(HOME).run()
    assert [(m.label, m.value) for m in at.metric] == [("Orders", in_us)]
    assert any("countries: US" in c.value for c in at.caption)


def test_admin_publishes_a_default_that_a_new_manager_sees(own_store):
    at = sign_in("admin")
    pin_kpis(at, "revenue")
    at.switch_page("app_pages/segmentation.py").run()
    at.button(key="pin_segmentation_rfm_treemap").click().run()
    assert not at.exception and not errors(at)
    at.switch_page(HOME).run()
    assert len(at.get("plotly_chart")) == 1  # the treemap, drawn on Home
    assert at.selectbox(key="home_publish_role").value == "manager"
    at.button(key="home_publish").click().run()
    assert not at.exception and not errors(at)
    published = next(s.value for s in at.success)
    assert "Published 1 pin(s) as the default Home of the manager role" in published
    assert "RFM segment size and revenue" in published  # left out: managers may not open it

    auth.add_user(get_store(), "mona", "manager", "mona-password-123", name="Mona")
    at = sign_in("mona", "mona-password-123", page=None)
    assert not at.exception and not errors(at)
    assert [m.label for m in at.metric] == ["Revenue"]
    assert not at.get("plotly_chart")
    assert any("default Home of the manager role" in c.value for c in at.caption)
    assert not home_pin_ids(at, "remove")  # a default is not hers to rearrange
    assert not [b for b in at.button if b.key == "home_publish"]  # managers do not publish

    at = sign_in("admin", page=None)
    at.button(key="home_unpublish").click().run()
    assert any("Removed the default Home of the manager role" in s.value for s in at.success)
    at = sign_in("mona", "mona-password-123", page=None)
    assert not at.metric and any("press **Pin to home**" in t for t in info_texts(at))


def test_every_pinnable_item_knows_how_to_draw_itself():
    from crm_ui.pins import DRAW

    assert set(DRAW) == set(PINNABLE)


@pytest.mark.slow
def test_every_chart_pin_draws_on_home(own_store):
    """One pin of every chart (models included), drawn with the page's own reads and
    builders: no error, one chart each."""
    admin = auth.get_user(get_store(), "admin")
    charts = [p for p in PINNABLE.values() if p.kind == "chart"]
    for spec in charts:
        home.add_pin(get_store(), admin, spec.view, spec.item)
    at = sign_in("admin", page=None)
    assert not at.exception and not errors(at), (at.exception, errors(at))
    assert not at.warning, [w.value for w in at.warning]
    assert len(at.get("plotly_chart")) == len(charts)
    assert [s.value for s in at.subheader][: len(charts)] == [p.title for p in charts]

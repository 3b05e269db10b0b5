"""Home pages: pins added, moved and removed; role defaults published by admins."""

from __future__ import annotations

import json
from datetime import date

import pytest
import sqlalchemy as sa

from crm_core import home
from crm_core.auth import User
from crm_core.errors import CRMError, NotAllowedError
from crm_core.filters import Filters
from crm_core.metrics import METRICS
from crm_core.schema import home_pins

pytestmark = pytest.mark.both_stores

ADMIN = User("ada", "Ada", "admin")
MANAGER = User("max", "Max", "manager")
NEW_MANAGER = User("mo", "Mo", "manager")
ANALYST = User("ann", "Ann", "analyst")
FILTERS = Filters(
    date(2026, 1, 1),
    date(2026, 3, 31),
    countries=("DE", "US"),
    channels=("web",),
    compare="year_ago",
    preset="last_quarter",
)


def titles(pins: list[home.Pin]) -> list[str]:
    return [p.title for p in pins]


def test_pins_are_added_in_order_moved_and_removed(store):
    revenue = home.add_pin(store, MANAGER, "overview", "revenue", filters=FILTERS)
    home.add_pin(store, MANAGER, "overview", "orders")
    trend = home.add_pin(store, MANAGER, "overview", "revenue_trend")
    assert titles(home.pins_for(store, MANAGER)) == [
        "Revenue",
        "Orders",
        "Revenue and active customers",
    ]
    assert revenue.kind == "kpi" and trend.kind == "chart"

    assert home.move_pin(store, MANAGER, trend.pin_id, "up") == 1
    assert titles(home.pins_for(store, MANAGER)) == [
        "Revenue",
        "Revenue and active customers",
        "Orders",
    ]
    home.move_pin(store, MANAGER, revenue.pin_id, "bottom")
    home.move_pin(store, MANAGER, trend.pin_id, "up")  # already first: stays
    assert titles(home.pins_for(store, MANAGER)) == [
        "Revenue and active customers",
        "Orders",
        "Revenue",
    ]
    home.move_pin(store, MANAGER, revenue.pin_id, 0)
    assert titles(home.pins_for(store, MANAGER))[0] == "Revenue"

    home.remove_pin(store, MANAGER, revenue.pin_id)
    pins = home.pins_for(store, MANAGER)
    assert titles(pins) == ["Revenue and active customers", "Orders"]
    assert [p.position for p in pins] == [0, 1]  # the others close up
    assert home.pins_for(store, ANALYST) == []  # pins are personal


def test_filters_and_settings_round_trip(store):
    steps = ["visit", "add_to_cart", "purchase"]
    home.add_pin(
        store,
        ANALYST,
        "funnels",
        "event_funnel",
        {"steps": steps, "order": "strict", "window_days": 7},
        FILTERS,
    )
    home.add_pin(
        store,
        ANALYST,
        "clv",
        "clv_histogram",
        {"calibration_end": date(2026, 1, 31), "horizon_months": 12},
    )
    funnel, clv = home.pins_for(store, ANALYST)
    assert funnel.filters == FILTERS
    assert funnel.settings == {"steps": steps, "order": "strict", "window_days": 7}
    assert clv.filters is None and clv.settings["calibration_end"] == "2026-01-31"
    stored = json.loads(store.scalar(sa.select(home_pins.c.filters).limit(1)))
    assert stored["start"] == "2026-01-01" and stored["countries"] == ["DE", "US"]
    assert Filters.from_dict(FILTERS.to_dict()) == FILTERS
    words = home.filters_in_words(FILTERS)
    assert words == (
        "Last full quarter (01 Jan 2026 – 31 Mar 2026), compared with the same period last "
        "year; countries: DE, US; channels: web."
    )
    words = home.settings_in_words(funnel.settings)
    assert "steps: Visit > Add to cart > Purchase" in words
    assert "_" not in words
    assert home.settings_in_words({"model": "hgb", "window_days": 90}) == (
        "model: gradient boosting · window: 90 days"
    )
    assert home.settings_in_words({"model": "last_touch", "lookback_days": 30}) == (
        "model: last touch · lookback: 30 days"
    )


def test_a_preset_follows_the_data_custom_dates_stay():
    later = home.current(FILTERS, date(2026, 8, 15))
    assert (later.start, later.end) == (date(2026, 4, 1), date(2026, 6, 30))
    custom = Filters(date(2026, 1, 1), date(2026, 1, 31))
    assert home.current(custom, date(2026, 8, 15)) == custom


@pytest.mark.parametrize(
    "view,item,settings,message",
    [
        ("nowhere", "revenue", None, "Cannot pin from view 'nowhere'.*Views with pins: "),
        ("overview", "profit", None, "View 'overview' has no item 'profit'.*Allowed: revenue"),
        ("churn", "risk_bands", {"colour": "red"}, "unknown setting.*colour; allowed: model"),
        ("churn", "risk_bands", {"model": object()}, "cannot be stored"),
    ],
)
def test_unknown_items_and_settings_are_refused(store, view, item, settings, message):
    with pytest.raises(CRMError, match=message):
        home.add_pin(store, ANALYST, view, item, settings)
    assert home.pins_for(store, ANALYST) == []


def test_the_same_pin_twice_is_refused_another_filter_is_not(store):
    home.add_pin(store, MANAGER, "overview", "aov", filters=FILTERS)
    with pytest.raises(CRMError, match="already on your Home page"):
        home.add_pin(store, MANAGER, "overview", "aov", filters=FILTERS)
    home.add_pin(store, MANAGER, "overview", "aov", filters=Filters(date(2026, 1, 1), date.today()))
    assert len(home.pins_for(store, MANAGER)) == 2


def test_a_role_cannot_pin_from_a_view_it_may_not_open(store):
    with pytest.raises(NotAllowedError, match="manager role may not open the segmentation"):
        home.add_pin(store, MANAGER, "segmentation", "rfm_treemap", {"window": "All history"})


def test_role_default_is_shown_to_users_without_pins_of_their_own(store):
    home.add_pin(store, ADMIN, "overview", "revenue", filters=FILTERS)
    home.add_pin(store, ADMIN, "segmentation", "rfm_treemap", {"window": "All history"})
    home.add_pin(store, ADMIN, "churn", "risk_bands", {"model": "hgb", "window_days": 90})
    published = home.publish(store, ADMIN, "ada", "manager")
    # Managers may not open segmentation: that pin is left out, and said so.
    assert (published.copied, published.left_out) == (2, ("RFM segment size and revenue",))
    assert home.published_roles(store) == {"manager": 2}

    shown = home.pins_for(store, NEW_MANAGER)
    assert titles(shown) == ["Revenue", "Churn risk bands"]
    assert all(p.is_role_default for p in shown) and shown[0].filters == FILTERS
    assert home.pins_for(store, ANALYST) == []  # another role: nothing published

    # A manager's first pin starts from a copy of the default.
    home.add_pin(store, MANAGER, "overview", "orders")
    mine = home.pins_for(store, MANAGER)
    assert titles(mine) == ["Revenue", "Churn risk bands", "Orders"]
    assert not any(p.is_role_default for p in mine)

    # Publishing again replaces the default; users with their own pins keep them.
    home.remove_pin(store, ADMIN, home.own_pins(store, "ada")[0].pin_id)
    home.publish(store, ADMIN, "ada", "manager")
    assert titles(home.pins_for(store, NEW_MANAGER)) == ["Churn risk bands"]
    assert len(home.pins_for(store, MANAGER)) == 3

    assert home.adopt_default(store, NEW_MANAGER) == 1
    assert not home.pins_for(store, NEW_MANAGER)[0].is_role_default

    assert home.unpublish(store, ADMIN, "manager") == 1
    assert home.published_roles(store) == {}
    assert home.pins_for(store, User("mia", "Mia", "manager")) == []


def test_pins_of_views_a_role_may_not_open_are_not_shown(store):
    home.add_pin(store, ANALYST, "segmentation", "rfm_treemap", {"window": "All history"})
    home.add_pin(store, ANALYST, "overview", "nps")
    with store.begin() as conn:  # the analyst became a manager
        conn.execute(home_pins.update().values(owner="max"))
    assert titles(home.pins_for(store, MANAGER)) == ["NPS"]


def test_only_admins_publish(store):
    home.add_pin(store, ANALYST, "overview", "revenue")
    with pytest.raises(NotAllowedError, match="analyst role may not publish.*allowed: admin"):
        home.publish(store, ANALYST, "ann", "manager")
    with pytest.raises(NotAllowedError):
        home.unpublish(store, MANAGER, "manager")
    with pytest.raises(CRMError, match="Unknown role 'boss'"):
        home.publish(store, ADMIN, "ann", "boss")
    with pytest.raises(CRMError, match="Nothing to publish from ada.*they have no pins"):
        home.publish(store, ADMIN, "ada", "manager")
    assert home.publish(store, ADMIN, "ann", "analyst").copied == 1


def test_only_own_pins_are_moved_or_removed(store):
    pin = home.add_pin(store, ANALYST, "overview", "revenue")
    with pytest.raises(CRMError, match=f"Pin {pin.pin_id} is not on your Home page"):
        home.remove_pin(store, MANAGER, pin.pin_id)
    with pytest.raises(CRMError, match="Cannot move a pin 'sideways'"):
        home.move_pin(store, ANALYST, pin.pin_id, "sideways")
    assert len(home.pins_for(store, ANALYST)) == 1


def test_every_kpi_is_pinnable():
    kpis = {item for (view, item), p in home.PINNABLE.items() if p.kind == "kpi"}
    assert kpis == set(METRICS)
    charts = {view for (view, _), p in home.PINNABLE.items() if p.kind == "chart"}
    assert {"overview", "segmentation", "churn", "clv", "funnels", "campaigns", "surveys"} <= (
        charts
    )


def test_bad_stored_filters_say_what_is_wrong():
    with pytest.raises(CRMError, match="cannot be read.*Pin the item again"):
        Filters.from_dict({"start": "yesterday", "end": "2026-01-01"})
    with pytest.raises(CRMError, match="compare must be one of"):
        Filters.from_dict({"start": "2026-01-01", "end": "2026-01-31", "compare": "never"})


def test_removing_a_user_removes_their_pins_not_the_role_default(store):
    from crm_core import auth

    auth.add_user(store, "max", "manager", "a long enough password 1", name="Max")
    auth.add_user(store, "ada", "admin", "a long enough password 2", name="Ada")
    home.add_pin(store, MANAGER, "overview", "revenue")
    home.add_pin(store, ADMIN, "overview", "orders")
    home.publish(store, ADMIN, "ada", "manager")
    auth.remove_user(store, "max", by="ada")
    auth.add_user(store, "max", "manager", "a long enough password 3", name="Max again")
    assert titles(home.pins_for(store, MANAGER)) == ["Orders"]  # the role's default only
    assert all(p.is_role_default for p in home.pins_for(store, MANAGER))

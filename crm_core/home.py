"""Home pages as data: KPIs and charts pinned from the views, with their settings and filters.

A pin belongs to a user (`owner` = username) or is part of a role's published default
(`owner` = ``role:<role>``). A user's Home shows their own pins in order; a user with none
sees their role's published default, and their first pin starts from a copy of it. Only
admins publish (`auth.ACTION_ROLES["publish_home"]`), and nobody sees a pin of a view their
role may not open.

What can be pinned is declared here (`PINNABLE`: view, item, kind, title and the settings it
takes); crm_ui.pins knows how to draw each one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from crm_core import auth, display
from crm_core.errors import CRMError, NotAllowedError
from crm_core.filters import COMPARISONS, PRESETS, Filters, preset_range
from crm_core.metrics import METRICS
from crm_core.schema import home_pins
from crm_core.store import Store, lock_tables, next_id, utcnow

KINDS = ("kpi", "chart")
ROLE_PREFIX = "role:"
MOVES = ("up", "down", "top", "bottom")


@dataclass(frozen=True)
class Pinnable:
    """A KPI or chart a view offers to pin, and the settings of the view it keeps."""

    view: str
    item: str
    kind: str
    title: str
    settings: tuple[str, ...] = ()


_CHARTS = (
    Pinnable("overview", "revenue_trend", "chart", "Revenue and active customers"),
    Pinnable("overview", "cohort_retention", "chart", "Cohort retention"),
    Pinnable("segmentation", "rfm_treemap", "chart", "RFM segment size and revenue", ("window",)),
    Pinnable("churn", "risk_bands", "chart", "Churn risk bands", ("model", "window_days")),
    Pinnable(
        "clv",
        "clv_histogram",
        "chart",
        "CLV distribution",
        ("model", "time_unit", "calibration_end", "horizon_months", "monthly_discount"),
    ),
    Pinnable("funnels", "event_funnel", "chart", "Event funnel", ("steps", "order", "window_days")),
    Pinnable("campaigns", "campaign_roi", "chart", "Campaign ROI", ("model", "lookback_days")),
    Pinnable("surveys", "nps_trend", "chart", "NPS by month"),
)

PINNABLE: dict[tuple[str, str], Pinnable] = {
    **{
        ("overview", m.name): Pinnable("overview", m.name, "kpi", m.label) for m in METRICS.values()
    },
    **{(p.view, p.item): p for p in _CHARTS},
}
"""Everything that can be pinned, by (view, item): every KPI of the overview and the main
chart of each view."""


@dataclass(frozen=True)
class Pin:
    """One KPI or chart on a Home page."""

    pin_id: int
    owner: str
    position: int
    kind: str
    view: str
    item: str
    title: str
    settings: dict[str, Any] = field(default_factory=dict)
    filters: Filters | None = None
    created_by: str | None = None
    created_at: datetime | None = None

    @property
    def is_role_default(self) -> bool:
        """Whether the pin belongs to a role's published default, not to a user."""
        return self.owner.startswith(ROLE_PREFIX)


@dataclass(frozen=True)
class Published:
    """What `publish` copied, and the titles it left out (views the role may not open)."""

    role: str
    copied: int
    left_out: tuple[str, ...] = ()


def role_owner(role: str) -> str:
    """The owner name of `role`'s published default (CRMError for an unknown role)."""
    if role not in auth.ROLES:
        raise CRMError(f"Unknown role {role!r}; allowed: {', '.join(auth.ROLES)}.")
    return f"{ROLE_PREFIX}{role}"


def pinnable(view: str, item: str) -> Pinnable:
    """The declaration of `item` of `view` (CRMError naming what can be pinned there)."""
    views = sorted({v for v, _ in PINNABLE})
    if view not in views:
        raise CRMError(
            f"Cannot pin from view {view!r}: it has nothing to pin. Views with pins: "
            f"{', '.join(views)}."
        )
    found = PINNABLE.get((view, item))
    if found is None:
        items = ", ".join(i for v, i in PINNABLE if v == view)
        raise CRMError(f"View {view!r} has no item {item!r} to pin. Allowed: {items}.")
    return found


def _settings_json(spec: Pinnable, settings: Mapping[str, Any] | None) -> str:
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(spec.settings))
    if unknown:
        allowed = ", ".join(spec.settings) or "none"
        raise CRMError(
            f"Pin {spec.view}/{spec.item}: unknown setting(s) {', '.join(unknown)}; "
            f"allowed: {allowed}."
        )

    def plain(value: Any) -> Any:
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, tuple):
            return list(value)
        raise TypeError(f"{type(value).__name__} is not JSON")

    try:
        return json.dumps(settings, sort_keys=True, default=plain)
    except (TypeError, ValueError) as exc:
        raise CRMError(
            f"Pin {spec.view}/{spec.item}: settings {settings!r} cannot be stored ({exc}); "
            "use text, numbers, dates and lists."
        ) from exc


def _filters_json(filters: Filters | None) -> str | None:
    return None if filters is None else json.dumps(filters.to_dict(), sort_keys=True)


def _pin(row: sa.Row) -> Pin:
    return Pin(
        pin_id=int(row.pin_id),
        owner=row.owner,
        position=int(row.position),
        kind=row.kind,
        view=row.view,
        item=row.item,
        title=row.title,
        settings=json.loads(row.settings) if row.settings else {},
        filters=Filters.from_dict(json.loads(row.filters)) if row.filters else None,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _owned(conn: sa.Connection, owner: str) -> list[Pin]:
    rows = conn.execute(
        sa.select(home_pins)
        .where(home_pins.c.owner == owner)
        .order_by(home_pins.c.position, home_pins.c.pin_id)
    )
    return [_pin(row) for row in rows]


def own_pins(store: Store, username: str) -> list[Pin]:
    """The user's own pins, in order (empty: none of their own)."""
    with store.connect() as conn:
        return _owned(conn, username)


def role_default(store: Store, role: str) -> list[Pin]:
    """The default Home published for `role`, in order (empty: none published)."""
    with store.connect() as conn:
        return _owned(conn, role_owner(role))


def pins_for(store: Store, user: auth.User) -> list[Pin]:
    """What `user`'s Home shows: their own pins, or their role's published default when
    they have none; pins of views their role may not open are left out."""
    with store.connect() as conn:
        pins = _owned(conn, user.username) or _owned(conn, role_owner(user.role))
    return [p for p in pins if auth.may_view(user.role, p.view)]


def published_roles(store: Store) -> dict[str, int]:
    """Roles with a published default, and how many pins each has."""
    stmt = (
        sa.select(home_pins.c.owner, sa.func.count())
        .where(home_pins.c.owner.like(f"{ROLE_PREFIX}%"))
        .group_by(home_pins.c.owner)
    )
    with store.connect() as conn:
        counts = {owner.removeprefix(ROLE_PREFIX): int(n) for owner, n in conn.execute(stmt)}
    return {role: counts[role] for role in auth.ROLES if role in counts}


def _copy(conn: sa.Connection, pins: list[Pin], owner: str, by: str) -> int:
    """Insert copies of `pins` for `owner`, positions 0.., fresh ids."""
    first_id, now = next_id(conn, home_pins.c.pin_id), utcnow()
    for position, pin in enumerate(pins):
        conn.execute(
            home_pins.insert().values(
                pin_id=first_id + position,
                owner=owner,
                position=position,
                kind=pin.kind,
                view=pin.view,
                item=pin.item,
                title=pin.title,
                settings=json.dumps(pin.settings, sort_keys=True),
                filters=_filters_json(pin.filters),
                created_by=by,
                created_at=now,
            )
        )
    return len(pins)


def add_pin(
    store: Store,
    user: auth.User,
    view: str,
    item: str,
    settings: Mapping[str, Any] | None = None,
    filters: Filters | None = None,
    title: str | None = None,
) -> Pin:
    """Pin `item` of `view` with the view's `settings` and the sidebar `filters` to the end
    of `user`'s Home. A user without pins of their own starts from a copy of their role's
    published default, so the first pin adds to what they saw."""
    spec = pinnable(view, item)
    if not auth.may_view(user.role, view):
        raise NotAllowedError(
            f"Not allowed: the {user.role} role may not open the {view} view, so it cannot "
            "pin from it."
        )
    settings_json = _settings_json(spec, settings)
    filters_json = _filters_json(filters)
    with store.begin() as conn:
        lock_tables(conn, home_pins)
        mine = _owned(conn, user.username)
        if not mine:
            default = [
                p for p in _owned(conn, role_owner(user.role)) if auth.may_view(user.role, p.view)
            ]
            _copy(conn, default, user.username, user.username)
            mine = _owned(conn, user.username)
        for pin in mine:
            same = (pin.view, pin.item, json.dumps(pin.settings, sort_keys=True))
            if same == (view, item, settings_json) and _filters_json(pin.filters) == filters_json:
                raise CRMError(
                    f"{pin.title} is already on your Home page with these settings and filters "
                    f"(place {pin.position + 1}). Change a filter or setting to pin another one."
                )
        pin = Pin(
            pin_id=next_id(conn, home_pins.c.pin_id),
            owner=user.username,
            position=max((p.position for p in mine), default=-1) + 1,
            kind=spec.kind,
            view=view,
            item=item,
            title=(title or spec.title).strip() or spec.title,
            settings=json.loads(settings_json),
            filters=filters,
            created_by=user.username,
            created_at=utcnow(),
        )
        conn.execute(
            home_pins.insert().values(
                pin_id=pin.pin_id,
                owner=pin.owner,
                position=pin.position,
                kind=pin.kind,
                view=pin.view,
                item=pin.item,
                title=pin.title,
                settings=settings_json,
                filters=filters_json,
                created_by=pin.created_by,
                created_at=pin.created_at,
            )
        )
    return pin


def _own_pin(conn: sa.Connection, user: auth.User, pin_id: int) -> list[Pin]:
    """The user's pins, after checking that `pin_id` is one of them."""
    mine = _owned(conn, user.username)
    if pin_id not in {p.pin_id for p in mine}:
        raise CRMError(
            f"Pin {pin_id} is not on your Home page (it was removed, or it belongs to someone "
            "else or to a role's default). Reload the page."
        )
    return mine


def _renumber(conn: sa.Connection, ordered: list[Pin]) -> None:
    for position, pin in enumerate(ordered):
        if pin.position != position:
            conn.execute(
                home_pins.update().where(home_pins.c.pin_id == pin.pin_id).values(position=position)
            )


def remove_pin(store: Store, user: auth.User, pin_id: int) -> None:
    """Remove one of `user`'s own pins; the others close up."""
    with store.begin() as conn:
        lock_tables(conn, home_pins)
        mine = _own_pin(conn, user, pin_id)
        conn.execute(home_pins.delete().where(home_pins.c.pin_id == pin_id))
        _renumber(conn, [p for p in mine if p.pin_id != pin_id])


def move_pin(store: Store, user: auth.User, pin_id: int, to: int | str) -> int:
    """Move one of `user`'s pins "up", "down", to the "top" or "bottom", or to a position
    (0 = first); returns its new position."""
    with store.begin() as conn:
        lock_tables(conn, home_pins)
        mine = _own_pin(conn, user, pin_id)
        index = next(i for i, p in enumerate(mine) if p.pin_id == pin_id)
        if isinstance(to, str):
            if to not in MOVES:
                raise CRMError(
                    f"Cannot move a pin {to!r}; allowed: {', '.join(MOVES)}, or a place."
                )
            target = {"up": index - 1, "down": index + 1, "top": 0, "bottom": len(mine) - 1}[to]
        else:
            target = int(to)
        target = max(0, min(target, len(mine) - 1))
        ordered = [p for p in mine if p.pin_id != pin_id]
        ordered.insert(target, mine[index])
        _renumber(conn, ordered)
    return target


def adopt_default(store: Store, user: auth.User) -> int:
    """Copy the role's published default to `user`'s own pins (so they can rearrange it);
    returns the pins copied (0 when the user already has pins or there is no default)."""
    with store.begin() as conn:
        lock_tables(conn, home_pins)
        if _owned(conn, user.username):
            return 0
        default = [
            p for p in _owned(conn, role_owner(user.role)) if auth.may_view(user.role, p.view)
        ]
        return _copy(conn, default, user.username, user.username)


def _require_publisher(admin: auth.User) -> None:
    if not admin.can("publish_home"):
        allowed = ", ".join(sorted(auth.ACTION_ROLES["publish_home"]))
        raise NotAllowedError(
            f"Not allowed: the {admin.role} role may not publish a Home page as a role's "
            f"default (allowed: {allowed}). Ask an admin."
        )


def publish(store: Store, admin: auth.User, from_user: str, role: str) -> Published:
    """Make a copy of `from_user`'s own pins the default Home of `role` (replacing the one
    published before); pins of views the role may not open are left out."""
    _require_publisher(admin)
    owner = role_owner(role)
    with store.begin() as conn:
        lock_tables(conn, home_pins)
        source = _owned(conn, from_user)
        kept = [p for p in source if auth.may_view(role, p.view)]
        left_out = tuple(p.title for p in source if p not in kept)
        if not kept:
            why = (
                f"none of them is on a view the {role} role may open ({', '.join(left_out)})"
                if source
                else "they have no pins"
            )
            raise CRMError(
                f"Nothing to publish from {from_user} for the {role} role: {why}. Pin KPIs or "
                "charts to that Home page first."
            )
        conn.execute(home_pins.delete().where(home_pins.c.owner == owner))
        copied = _copy(conn, kept, owner, admin.username)
    return Published(role, copied, left_out)


def unpublish(store: Store, admin: auth.User, role: str) -> int:
    """Remove the default Home published for `role`; returns the pins removed. Users who
    copied it keep their copies."""
    _require_publisher(admin)
    with store.begin() as conn:
        lock_tables(conn, home_pins)
        return conn.execute(
            home_pins.delete().where(home_pins.c.owner == role_owner(role))
        ).rowcount


# --- words --------------------------------------------------------------------------------


def current(filters: Filters, last_day: date | None) -> Filters:
    """The filters a pin is drawn with today: a period preset ("Last 30 days") counts back
    from the store's last day with data, as in the sidebar; custom dates stay as pinned."""
    if filters.preset is None or last_day is None:
        return filters
    start, end = preset_range(filters.preset, last_day)
    return replace(filters, start=start, end=end)


def filters_in_words(filters: Filters | None) -> str:
    """The filters a pin uses, in a sentence ("Last 30 days (1 – 30 Nov 2026), compared
    with the previous period; countries: DE, US; all channels")."""
    if filters is None:
        return "No filters: the whole store."
    days = f"{filters.start:%d %b %Y} – {filters.end:%d %b %Y}"
    period = f"{PRESETS[filters.preset]} ({days})" if filters.preset else f"Custom dates {days}"
    countries = (
        f"countries: {', '.join(filters.countries)}" if filters.countries else "all countries"
    )
    channels = f"channels: {', '.join(filters.channels)}" if filters.channels else "all channels"
    compare = COMPARISONS.get(filters.compare, filters.compare).lower()
    return f"{period}, compared with the {compare}; {countries}; {channels}."


SETTING_LABELS: dict[str, str] = {
    "model": "model",
    "window": "window",
    "window_days": "window",
    "lookback_days": "lookback",
    "steps": "steps",
    "order": "steps counted",
    "time_unit": "time unit",
    "calibration_end": "calibration ends",
    "horizon_months": "horizon",
    "monthly_discount": "monthly discount",
}
"""How each pinnable setting is named in a pin's settings line."""

SETTING_VALUES: dict[str, str] = {
    "hgb": "gradient boosting",
    "logit": "logistic regression",
    "bgnbd": "BG/NBD",
    "pareto": "Pareto/NBD",
    "mbgnbd": "MBG/NBD",
    "strict": "in this order",
    "any": "in any order",
}
"""Setting values (model and option codes) in words; other codes are humanised."""


def _setting_value(key: str, value: Any) -> str:
    if isinstance(value, list):
        return " > ".join(display.value_label("event_type", v) for v in value)
    if key.endswith("_days") and isinstance(value, int | float):
        return f"{value:,.0f} days"
    if key == "horizon_months" and isinstance(value, int | float):
        return f"{value:,.0f} months"
    if key == "monthly_discount" and isinstance(value, int | float):
        return f"{100 * value:.1f}%"
    if key == "calibration_end" and isinstance(value, str):
        try:
            return f"{date.fromisoformat(value):%d %b %Y}"
        except ValueError:
            return value
    if isinstance(value, str):
        if value in SETTING_VALUES:
            return SETTING_VALUES[value]
        return display.humanise(value).lower() if "_" in value else value
    return str(value)


def settings_in_words(settings: Mapping[str, Any]) -> str:
    """A pin's view settings, in words ("model: gradient boosting · window: 90 days");
    empty when none."""
    parts = []
    for key, value in settings.items():
        name = SETTING_LABELS.get(key) or display.humanise(key).lower()
        parts.append(f"{name}: {_setting_value(key, value)}")
    return " · ".join(parts)

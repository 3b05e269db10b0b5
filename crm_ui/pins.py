"""Pins in the app: the Pin to home button, how each pinnable KPI or chart redraws itself on
Home from its filters and settings, and the Home page's actions.

What can be pinned is declared in crm_core.home.PINNABLE; DRAW has one function per entry,
drawing with the same cached reads (crm_ui.data, segment_ui, model_ui, insight_ui) and chart
builders as the view the pin came from, so a pin shows what the view shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

import streamlit as st

from crm_core import auth, home, pinned
from crm_core.analytics import clv, rfm
from crm_core.errors import CRMError
from crm_core.figures import charts, insight_charts, model_charts, segment_charts
from crm_core.filters import Filters
from crm_core.metrics import METRICS, format_change, format_value
from crm_ui import data, filters_ui, insight_ui, model_ui, segment_ui
from crm_ui.auth_ui import current_user

_FLASH = "crm_home_flash"

# --- drawing a pin ------------------------------------------------------------------------


def _chart(pin: home.Pin, figure: Any) -> None:
    st.plotly_chart(figure, width="stretch", key=f"pin_chart_{pin.pin_id}")


def _kpi(pin: home.Pin, filters: Filters) -> None:
    kpi = data.kpis(filters)[pin.item]
    st.metric(
        pin.title,
        format_value(kpi.metric, kpi.value),
        delta=format_change(kpi),
        delta_color="normal" if kpi.metric.higher_is_better else "inverse",
        help=f"{kpi.metric.description} Change against the {_compared(filters)}.",
        border=True,
    )


def _compared(filters: Filters) -> str:
    other = filters.comparison()
    return f"{other.start:%d %b %Y} – {other.end:%d %b %Y}"


def _revenue_trend(pin: home.Pin, filters: Filters) -> None:
    trend = data.revenue_trend(filters)
    if not trend["orders"].any():
        st.info("No completed orders in this period and filter.")
        return
    _chart(pin, charts.revenue_active_trend(trend))


def _cohorts(pin: home.Pin, filters: Filters) -> None:
    grid = data.cohort_retention(filters)
    if grid.empty:
        st.info("No first purchases in this period and filter.")
        return
    _chart(pin, charts.cohort_heatmap(grid))


def _rfm_treemap(pin: home.Pin, filters: Filters) -> None:
    last_order = segment_ui.ensure_360()
    if last_order is None:
        st.info("No orders in the store yet.")
        return
    scores = segment_ui.rfm_scores(min(filters.end, last_order), pinned.rfm_window(pin), filters)
    if scores.empty:
        st.info("No customer in this filter has bought by the end of the period.")
        return
    _chart(pin, segment_charts.segment_treemap(rfm.segment_summary(scores)))


def _model_end(filters: Filters) -> tuple[date, date] | None:
    span = pinned.model_span(data.store(), filters)
    if span is None:
        st.info("No completed orders to model in these countries and channels.")
    return span


def _risk_bands(pin: home.Pin, filters: Filters) -> None:
    span = _model_end(filters)
    if span is None:
        return
    bands = model_ui.band_summary(
        pinned.churn_settings(pin, filters, span), pinned.risk_clv_settings(filters, span)
    )
    if bands.empty:
        st.info("No customers active in the last year to score.")
        return
    _chart(pin, model_charts.risk_bands(bands))


def _clv_histogram(pin: home.Pin, filters: Filters) -> None:
    span = _model_end(filters)
    if span is None:
        return
    parts = model_ui.clv_breakdowns(pinned.clv_settings(pin, filters, span))
    _chart(pin, model_charts.clv_histogram(parts["histogram"], "$"))


def _event_funnel(pin: home.Pin, filters: Filters) -> None:
    steps, order, window_days = pinned.funnel_options(pin)
    result = insight_ui.event_funnel(filters, steps, order, window_days)
    if not result.steps["customers"].iloc[0]:
        st.info(f"No customer did '{steps[0]}' in this period.")
        return
    st.caption(f"Overall conversion {result.overall_conversion:.1%}")
    _chart(pin, insight_charts.funnel(result.steps))


def _campaign_roi(pin: home.Pin, filters: Filters) -> None:
    roi = insight_ui.campaign_roi(filters, *pinned.campaign_options(pin))
    if roi.empty:
        st.info("No campaigns ran in this period.")
        return
    _chart(pin, insight_charts.roi_bars(roi))


def _nps_trend(pin: home.Pin, filters: Filters) -> None:
    if not insight_ui.has_surveys():
        st.info("No survey answers yet.")
        return
    _chart(pin, insight_charts.score_trend(insight_ui.survey_trend(filters), "nps", pin.title))


DRAW: dict[tuple[str, str], Callable[[home.Pin, Filters], None]] = {
    **{("overview", name): _kpi for name in METRICS},
    ("overview", "revenue_trend"): _revenue_trend,
    ("overview", "cohort_retention"): _cohorts,
    ("segmentation", "rfm_treemap"): _rfm_treemap,
    ("churn", "risk_bands"): _risk_bands,
    ("clv", "clv_histogram"): _clv_histogram,
    ("funnels", "event_funnel"): _event_funnel,
    ("campaigns", "campaign_roi"): _campaign_roi,
    ("surveys", "nps_trend"): _nps_trend,
}
"""How each pinnable item (crm_core.home.PINNABLE) draws itself."""


def pin_filters(pin: home.Pin) -> Filters | None:
    """The filters `pin` is drawn with now (a preset counts back from the last data day)."""
    return pinned.pin_filters(pin, data.defaults())


def draw(pin: home.Pin) -> None:
    """Draw `pin` (a KPI card or a chart) with its own filters and settings."""
    filters = pin_filters(pin)
    drawer = DRAW.get((pin.view, pin.item))
    if drawer is None:
        st.warning(f"{pin.title} can no longer be pinned ({pin.view}/{pin.item}); remove it.")
        return
    if filters is None:
        st.info("No orders in the store yet.")
        return
    try:
        drawer(pin, filters)
    except clv.NotReadyError as exc:
        st.warning("Not enough data for this model yet: " + "; ".join(exc.problems))
    except CRMError as exc:
        st.error(str(exc))


# --- reading and changing pins --------------------------------------------------------------


@data.reads("home_pins", show_spinner=False, ttl=60)
def pins_for(user: auth.User) -> list[home.Pin]:
    """What `user`'s Home shows: their pins, or their role's published default."""
    return home.pins_for(data.store(), user)


@data.reads("home_pins", show_spinner=False, ttl=60)
def published_roles() -> dict[str, int]:
    """Roles with a published default Home, and its number of pins."""
    return home.published_roles(data.store())


def flash(kind: str, text: str) -> None:
    """Remember a message to show once at the top of Home after the rerun."""
    st.session_state[_FLASH] = (kind, text)


def show_flash() -> None:
    """Show (and forget) the message of the last action."""
    kind, text = st.session_state.pop(_FLASH, (None, None))
    if kind:
        getattr(st, kind)(text)


def _act(action: Callable[[], object], done: str) -> None:
    try:
        action()
    except CRMError as exc:
        flash("error", str(exc))
    else:
        data.tables_changed("home_pins")
        if done:
            flash("success", done)


def move(pin_id: int, to: str) -> None:
    """on_click: move one of the signed-in user's pins."""
    _act(lambda: home.move_pin(data.store(), current_user(), pin_id, to), "")


def remove(pin_id: int, title: str) -> None:
    """on_click: remove one of the signed-in user's pins."""
    _act(
        lambda: home.remove_pin(data.store(), current_user(), pin_id),
        f"Removed {title} from your Home page.",
    )


def adopt() -> None:
    """on_click: copy the role's default to the user's own pins, to rearrange it."""
    _act(
        lambda: home.adopt_default(data.store(), current_user()),
        "This Home page is now your own: move and remove its pins as you like.",
    )


def publish(role: str) -> None:
    """on_click: publish the admin's own pins as `role`'s default Home."""
    user = current_user()
    try:
        result = home.publish(data.store(), user, user.username, role)
    except CRMError as exc:
        flash("error", str(exc))
        return
    data.tables_changed("home_pins")
    left_out = (
        f" Left out (the {role} role may not open their views): {', '.join(result.left_out)}."
        if result.left_out
        else ""
    )
    flash(
        "success",
        f"Published {result.copied} pin(s) as the default Home of the {role} role: its users "
        f"without pins of their own see them.{left_out}",
    )


def unpublish(role: str) -> None:
    """on_click: remove `role`'s published default Home."""
    _act(
        lambda: home.unpublish(data.store(), current_user(), role),
        f"Removed the default Home of the {role} role (copies users made stay theirs).",
    )


# --- the button on the views -----------------------------------------------------------------


def settings_of(settings: Any, view: str, item: str) -> dict[str, Any]:
    """The fields of a view's settings object (e.g. clv.CLVSettings) that `item` keeps."""
    return {name: getattr(settings, name) for name in home.pinnable(view, item).settings}


def _add(view: str, item: str, settings: Mapping[str, Any] | None, filters: Filters | None) -> str:
    """Pin one item for the signed-in user; the words of the toast."""
    user = current_user()
    if user is None:
        return "Sign in to pin."
    chosen = filters if filters is not None else filters_ui.current_filters()
    try:
        home.add_pin(data.store(), user, view, item, settings, chosen)
    except CRMError as exc:
        return str(exc)
    data.tables_changed("home_pins")
    return f"Pinned {home.pinnable(view, item).title} to your Home page."


def pin_button(
    view: str,
    item: str,
    settings: Mapping[str, Any] | None = None,
    filters: Filters | None = None,
    *,
    where: Any = None,
) -> None:
    """A small "Pin to home" button after a chart of `view`: pins `item` with the view's
    `settings` and the sidebar filters (or `filters`) to the user's Home page.
    `where` is the column or container to put it in (default: the current one)."""
    spec = home.pinnable(view, item)
    target = where if where is not None else st
    if target.button(
        "Pin to home",
        key=f"pin_{view}_{item}",
        icon=":material/push_pin:",
        type="tertiary",
        help=f"Add {spec.title} to your Home page, with this view's settings and the "
        "sidebar filters it uses now.",
    ):
        st.toast(_add(view, item, settings, filters), icon=":material/push_pin:")


def pin_kpis(view: str, items: Sequence[str], filters: Filters | None = None) -> None:
    """One "Pin KPIs to home" menu under a view's KPI cards (a button under each of ten
    cards crowded them): choose the KPIs, pin them with the sidebar filters."""
    with st.popover(
        "Pin KPIs to home",
        icon=":material/push_pin:",
        help="Add some of these KPIs to your Home page, with the sidebar filters they use now.",
    ):
        chosen = st.multiselect(
            "KPIs to pin",
            list(items),
            format_func=lambda item: home.pinnable(view, item).title,
            key=f"pin_{view}_kpis",
            placeholder="Choose KPIs",
        )
        if st.button("Pin", key=f"pin_{view}_kpis_add", type="primary", disabled=not chosen):
            for item in chosen:
                st.toast(_add(view, item, None, filters), icon=":material/push_pin:")


# --- the Home page's cards -------------------------------------------------------------------


def rows(shown: list[home.Pin], per_row: int = 4) -> list[list[home.Pin]]:
    """Pins in page order, grouped into rows: runs of KPIs side by side (up to `per_row`),
    each chart on a row of its own."""
    grouped: list[list[home.Pin]] = []
    for pin in shown:
        last = grouped[-1] if grouped else None
        if pin.kind == "kpi" and last and last[0].kind == "kpi" and len(last) < per_row:
            last.append(pin)
        else:
            grouped.append([pin])
    return grouped


def show_row(row: list[home.Pin], place: int, count: int, editable: bool) -> None:
    """One row of Home (see `rows`): a chart in a bordered box, or KPI cards side by side
    with the filters said once under them when they all use the same."""
    if row[0].kind == "chart":
        with st.container(border=True):
            card(row[0], place, count, editable)
        return
    shared = len(row) > 1 and len({pin_filters(pin) for pin in row}) == 1
    for offset, (column, pin) in enumerate(zip(st.columns(len(row)), row, strict=True)):
        with column:
            card(pin, place + offset, count, editable, words=not shared)
    if shared:
        st.caption(f":material/filter_alt: {home.filters_in_words(pin_filters(row[0]))}")


def card(pin: home.Pin, place: int, count: int, editable: bool, *, words: bool = True) -> None:
    """One pin: its figure or chart, the filters it uses in words (unless `words` is off),
    and (for the user's own pins) Move up / Move down / Remove."""
    if pin.kind == "chart":
        st.subheader(pin.title)
    draw(pin)
    settings = home.settings_in_words(pin.settings)
    if words or settings:
        said = home.filters_in_words(pin_filters(pin)) if words else ""
        st.caption(
            f":material/filter_alt: {said}" + (f" Settings: {settings}." if settings else "")
        )
    if not editable:
        return
    with st.container(horizontal=True, gap="small"):
        st.button(
            "Move up",
            key=f"home_up_{pin.pin_id}",
            icon=":material/arrow_upward:",
            type="tertiary",
            disabled=place == 0,
            on_click=move,
            args=(pin.pin_id, "up"),
            help=f"Move {pin.title} one place up",
        )
        st.button(
            "Move down",
            key=f"home_down_{pin.pin_id}",
            icon=":material/arrow_downward:",
            type="tertiary",
            disabled=place == count - 1,
            on_click=move,
            args=(pin.pin_id, "down"),
            help=f"Move {pin.title} one place down",
        )
        st.button(
            "Remove",
            key=f"home_remove_{pin.pin_id}",
            icon=":material/close:",
            type="tertiary",
            on_click=remove,
            args=(pin.pin_id, pin.title),
            help=f"Remove {pin.title} from your Home page",
        )

"""Drill-down in the app: click a chart element (or pick it in "Drill into...") or a table
row, see the customers behind it, open one in Customer 360, save them as a rule segment.

Streamlit 1.67 reports clicks on a Plotly chart drawn with ``on_select="rerun"`` as
selection points: a treemap tile gives its label (and id/parent), a funnel bar its y label
and point index. A heatmap reports no clicks (Plotly's heatmap has no point selection), so
`clickable_cells` lays an invisible marker on each cell whose click does. Every drillable
chart also has a "Drill into..." select box listing the same elements (for the keyboard).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from crm_core import auth, display, drill, segments
from crm_core.analytics import clustering, funnels, rfm
from crm_core.errors import CRMError
from crm_core.filters import Filters
from crm_core.privacy import may_see_pii
from crm_ui import audit_ui, data, links, segment_ui, tables
from crm_ui.auth_ui import current_user
from crm_ui.data import store

CUSTOMER_360_PAGE = "app_pages/customer_360.py"
NOTHING = "__none__"


def clicked_points(event: Any) -> list[dict[str, Any]]:
    """The points a chart's selection event holds (empty when nothing is clicked)."""
    try:
        return list(event["selection"]["points"] or [])
    except (KeyError, TypeError):
        return []


def drill_chart(
    figure: go.Figure,
    key: str,
    options: Mapping[str, str],
    from_point: Callable[[dict[str, Any]], str | None] | None,
    *,
    label: str = "Drill into...",
    help_: str = "Click an element of the chart, or pick it here, to see its customers.",
) -> str | None:
    """Draw `figure` with click selection and a "Drill into..." select box of `options`
    (element key -> words); the chosen element's key, or None."""
    clicked = None
    if from_point is None:  # a trace that reports no clicks (heatmap): the select box only
        st.plotly_chart(figure, width="stretch", key=key)
    else:
        event = st.plotly_chart(
            figure, on_select="rerun", selection_mode=("points",), key=key, width="stretch"
        )
        points = clicked_points(event)
        clicked = from_point(points[0]) if points else None
    return drill_select(label, options, f"{key}_pick", clicked, help_=help_)


def clickable_cells(figure: go.Figure, key_of: Callable[[str, str], str]) -> go.Figure:
    """Plotly's heatmap reports no clicks: lay an invisible marker on the centre of each
    filled cell, carrying the cell's drill key (`key_of(x label, y label)`) and showing the
    heatmap's own hover text, whose click does."""
    heat = next(trace for trace in figure.data if trace.type == "heatmap")
    cells = [
        (x, y, value)
        for y, row in zip(heat.y, heat.z, strict=True)
        for x, value in zip(heat.x, row, strict=True)
        if value is not None and not pd.isna(value)
    ]
    figure.add_scatter(
        x=[x for x, _, _ in cells],
        y=[y for _, y, _ in cells],
        customdata=[[key_of(str(x), str(y)), float(value)] for x, y, value in cells],
        mode="markers",
        marker={"size": 24, "opacity": 0, "symbol": "square"},
        selected={"marker": {"opacity": 0}},
        unselected={"marker": {"opacity": 0}},
        hovertemplate=(heat.hovertemplate or "%{y} %{x}: %{z}").replace("%{z", "%{customdata[1]"),
        showlegend=False,
    )
    return figure


def _cell_key(point: dict[str, Any]) -> str | None:
    key = point.get("customdata")
    if isinstance(key, list):
        key = key[0] if key else None
    return None if key is None else str(key)


def drill_select(
    label: str,
    options: Mapping[str, str],
    key: str,
    clicked: str | None = None,
    *,
    help_: str = "Pick an element to see its customers.",
) -> str | None:
    """A select box of drillable elements that follows the latest click on the chart."""
    last = f"{key}_last_click"
    if clicked is not None and clicked in options and st.session_state.get(last) != clicked:
        st.session_state[key] = clicked
    st.session_state[last] = clicked
    if st.session_state.get(key) not in (NOTHING, *options):
        st.session_state.pop(key, None)
    choice = st.selectbox(
        label,
        [NOTHING, *options],
        key=key,
        format_func=lambda k: "Choose an element..." if k == NOTHING else options[k],
        help=help_,
    )
    return None if choice == NOTHING else choice


@data.reads(
    "customer_360",
    "orders",
    "events",
    "customers",
    "customer_scores",
    "campaign_contacts",
    "survey_responses",
    show_spinner=False,
    ttl=300,
)
def _agreement_of(definition_json: str | None, page_ids: tuple[int, ...] | None) -> drill.Agreement:
    """The rule's customers against the page's (cached by the exact rules and ids)."""
    definition = None if definition_json is None else json.loads(definition_json)
    selection = drill.Selection("", definition, page_ids)
    return drill.agreement(store(), selection)


def _agreement(selection: drill.Selection) -> drill.Agreement:
    rules = selection.definition
    return _agreement_of(
        None if rules is None else segment_ui.definition_json(rules), selection.page_ids
    )


def open_in_360(customer_id: int, key: str) -> None:
    """A button that opens the customer's 360 profile (for roles that may open it)."""
    user = current_user()
    if user is None or not auth.may_view(user.role, "customer_360"):
        return
    if st.button(
        f"Open #{int(customer_id)} in Customer 360",
        key=f"{key}_open_{int(customer_id)}",
        icon=":material/person_search:",
        help="Opens the customer's profile (Customer 360).",
    ):
        st.switch_page(CUSTOMER_360_PAGE, query_params={links.CUSTOMER_PARAM: int(customer_id)})


def panel(selection: drill.Selection, key: str) -> None:
    """Count, masked sample, open one in Customer 360, and save as a segment (rules)."""
    user = current_user()
    role = user.role if user else "analyst"
    may_save = user is not None and user.can("save_segments")
    may_open = user is not None and auth.may_view(user.role, "customer_360")
    with st.container(border=True, key=f"{key}_panel"):
        st.markdown(f"**Customers behind: {selection.title}**")
        segment_ui.ensure_360()  # rules read the customer 360 table: rebuilt if stale
        try:
            agreement = _agreement(selection)
        except CRMError as exc:
            st.error(str(exc))
            return
        fixed = False
        if selection.rule_based:
            st.caption("Rules: " + segments.describe(selection.definition))
        else:
            st.info(
                f"No rule can express this selection ({selection.fixed_reason})"
                + (
                    f"; it can be saved only as a fixed list of {agreement.page_count:,} "
                    "customer ids, which does not change with new data."
                    if may_save
                    else "."
                )
            )
            fixed = True
        if selection.rule_based and not agreement.same:
            st.warning(
                f"{selection.page_basis or ''} The rule selects {agreement.rule_count:,} "
                f"customers now; the page counted {agreement.page_count:,}.",
                icon=":material/compare_arrows:",
            )
            fixed = may_save and (
                st.radio(
                    "Save",
                    ["rule", "fixed"],
                    index=1 if agreement.rule_count == 0 else 0,  # an empty rule: the page's
                    key=f"{key}_what",
                    horizontal=True,
                    format_func={
                        "rule": f"the rule ({agreement.rule_count:,} now; follows new data)",
                        "fixed": f"the {agreement.page_count:,} customers the page counted "
                        "(a fixed list)",
                    }.get,
                )
                == "fixed"
            )
        try:
            definition, description = drill.to_save(selection, fixed=fixed)
            shown = segment_ui.preview(segment_ui.definition_json(definition), role)
        except CRMError as exc:
            st.error(str(exc))
            return
        st.metric("Customers", f"{shown.customers:,}")
        if shown.customers:
            picking = {"on_select": "rerun", "selection_mode": "single-row"} if may_open else {}
            event = tables.show_table(shown.sample, hide_index=True, key=f"{key}_sample", **picking)
            st.caption(
                "The top spenders among them"
                + ("" if may_see_pii(role) else "; personal data masked for your role")
                + (". Pick a row to open that customer in Customer 360." if may_open else ".")
            )
            rows = _selected_rows(event)
            if rows:
                open_in_360(int(shown.sample["customer_id"].iloc[rows[0]]), key)
        if may_save:
            _save_form(definition, description, key, fixed, selection.name or selection.title)


def _selected_rows(event: Any) -> list[int]:
    try:
        return list(event["selection"]["rows"] or [])
    except (KeyError, TypeError):
        return []


def _save_form(
    definition: dict[str, Any], description: str, key: str, fixed: bool, title: str
) -> None:
    kind = "a fixed list of ids" if fixed else "the rules above (it follows new data)"
    segment_ui.save_as_segment(
        definition,
        title,
        description,
        key,
        help_=f"Saves {kind}.",
        saved_as=" as a fixed list" if fixed else " as rules",
    )


def customer_rows(frame: Any, key: str, **options: Any) -> None:
    """A table whose rows are customers: pick one to open their 360 profile (for roles that
    may open Customer 360; a plain table for the others)."""
    user = current_user()
    if user is None or not auth.may_view(user.role, "customer_360"):
        tables.show_table(frame, key=key, **options)
        return
    event = tables.show_table(
        frame, on_select="rerun", selection_mode="single-row", key=key, **options
    )
    st.caption("Pick a row to open that customer in Customer 360.")
    rows = _selected_rows(event)
    if rows and "customer_id" in frame.columns:
        open_in_360(int(frame["customer_id"].iloc[rows[0]]), key)


# --- one drillable chart per view (the pages call these where the chart is drawn) -----------


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _download(download: tuple[pd.DataFrame, str, str] | None) -> None:
    if download is not None:
        frame, file_name, label = download
        st.download_button(
            label,
            tables.csv_bytes(frame),
            file_name,
            mime="text/csv",
            on_click=audit_ui.record_download,
            args=("customer list (drill-down)", file_name, {"rows": len(frame)}),
        )


def rfm_treemap(
    figure: go.Figure,
    summary: pd.DataFrame,
    scores: pd.DataFrame,
    filters: Filters,
    as_of: date,
    window_days: int | None,
    download: tuple[pd.DataFrame, str, str] | None = None,
) -> None:
    """The RFM treemap: click a tile (or pick it) for its customers."""
    options = {
        str(r.segment): f"{r.segment} ({r.customers:,} customers)" for r in summary.itertuples()
    }
    tile = drill_chart(figure, "rfm_treemap", options, lambda p: p.get("label"))
    _download(download)
    if tile:
        page = scores.loc[scores["rfm_segment"] == tile, "customer_id"].astype(int).tolist()
        selection = drill.rfm_tile(
            tile, filters, as_of=as_of, window_days=window_days, page_ids=page
        )
        panel(selection, "drill_rfm_tile")


def rf_grid(
    figure: go.Figure,
    scores: pd.DataFrame,
    filters: Filters,
    as_of: date,
    window_days: int | None,
) -> None:
    """The R x F grid: click a cell (or pick it) for its customers."""
    counts = scores.groupby(["r_score", "f_score"]).size()
    options = {
        f"{r}-{f}": f"R{r} F{f} ({int(n):,} customers)"
        for (r, f), n in counts.sort_index(ascending=[False, True]).items()
    }
    # the grid's labels are R<score> (rows) and F<score> (columns)
    figure = clickable_cells(figure, lambda x, y: f"{y[1:]}-{x[1:]}")
    cell = drill_chart(figure, "rf_grid", options, _cell_key)
    if cell:
        r, f = (int(part) for part in cell.split("-"))
        inside = (scores["r_score"] == r) & (scores["f_score"] == f)
        page = scores.loc[inside, "customer_id"].astype(int).tolist()
        selection = drill.rf_cell(
            r, f, filters, as_of=as_of, window_days=window_days, page_ids=page
        )
        panel(selection, "drill_rf_cell")


def _funnel_step(point: dict[str, Any]) -> str | None:
    index = point.get("point_index", point.get("point_number"))
    if index is None and isinstance(point.get("y"), str):
        index = int(point["y"].split(".")[0]) - 1
    return None if index is None or int(index) < 1 else str(int(index))


def funnel(
    figure: go.Figure,
    result: funnels.FunnelResult,
    order: str,
    window_days: int,
    filters: Filters,
    download: tuple[pd.DataFrame, str, str] | None = None,
) -> None:
    """The event funnel: click a step's bar for the customers who dropped just before it."""
    steps = result.step_names
    words = display.value_labels("event_type", steps)  # "product_view" -> "Product view"
    dropped = result.steps["dropped"].astype(int).tolist()
    options = {
        str(k): f"Dropped after step {k} ({words[k - 1]}; did not reach {words[k].lower()}): "
        f"{dropped[k]:,} customers"
        for k in range(1, len(steps))
    }
    step = drill_chart(
        figure,
        "event_funnel",
        options,
        _funnel_step,
        label="Drill into a drop-off",
        help_="Click a step's bar (from step 2) for the customers who dropped just before "
        "it, or pick the drop-off here.",
    )
    _download(download)
    if step:
        k = int(step)
        selection = drill.funnel_dropoff(
            steps, order, window_days, filters, k, page_ids=result.dropped_at(k)
        )
        panel(selection, "drill_funnel")


def risk_bands(
    figure: go.Figure,
    at_risk: pd.DataFrame,
    filters: Filters,
    download: tuple[pd.DataFrame, str, str] | None = None,
) -> None:
    """The churn-risk bands: click a band's bar for its customers."""
    counts = at_risk.groupby("churn_band").size()
    order = {"high": 0, "medium": 1, "low": 2}  # as the bars run, riskiest first
    options = {
        str(b): f"{display.value_label('churn_band', b)} risk ({int(n):,} customers)"
        for b, n in sorted(counts.items(), key=lambda item: order.get(str(item[0]), 3))
    }
    band = drill_chart(figure, "risk_bands", options, lambda p: p.get("x"))
    _download(download)
    if band:
        page = at_risk.loc[at_risk["churn_band"] == band, "customer_id"].astype(int).tolist()
        panel(drill.churn_band(band, filters, page_ids=page), "drill_band")


def cohort_grid(
    figure: go.Figure,
    grid: pd.DataFrame,
    filters: Filters,
    download: tuple[pd.DataFrame, str, str] | None = None,
) -> None:
    """The cohort heatmap: click a cell (or pick it) for its customers."""
    options = {}
    for cohort, row in grid.iterrows():
        for months in [c for c in grid.columns if c != "customers"]:
            share = row[months]
            if pd.notna(share) and share > 0:
                count = round(float(share) * int(row["customers"]))
                options[f"{cohort[:7]}|{months}"] = (
                    f"{drill.month_words(cohort)}, month {months}: {count:,} customers "
                    f"({share:.0%})"
                )
    # rows are labelled "2025-07 (44)" (cohort month, customers), columns by months since
    figure = clickable_cells(figure, lambda x, y: f"{y[:7]}|{x}")
    cell = drill_chart(figure, "cohort_grid", options, _cell_key)
    _download(download)
    if cell:
        cohort, months = cell.split("|")
        panel(drill.cohort_cell(cohort, int(months), filters), "drill_cohort")


def _point_index(point: dict[str, Any]) -> int | None:
    index = point.get("point_index", point.get("point_number"))
    return None if index is None else int(index)


def _row_key(
    keys: list[str], labels: Mapping[str, str] | None = None
) -> Callable[[dict[str, Any]], str | None]:
    """A click's element key: the row of the clicked point (bars and markers drawn in the
    frame's order), else the element whose label is the point's x."""
    by_label = {v: k for k, v in (labels or {}).items()}

    def key(point: dict[str, Any]) -> str | None:
        index = _point_index(point)
        if index is not None and 0 <= index < len(keys):
            return keys[index]
        return by_label.get(str(point.get("x")))

    return key


def clv_group(
    figure: go.Figure,
    groups: pd.DataFrame,
    values: pd.DataFrame,
    by: str,
    filters: Filters,
    observation_end: date,
    download: tuple[pd.DataFrame, str, str] | None = None,
) -> None:
    """A CLV-by-group bar chart (RFM segment, acquisition channel, country): click a bar
    (or pick it) for the customers whose `by` is that group."""
    keys = [str(g) for g in groups[by]]
    words = dict(zip(keys, display.value_labels(by, groups[by]), strict=True))
    options = {
        k: f"{words[k]} ({int(n):,} customers valued)"
        for k, n in zip(keys, groups["customers"], strict=True)
    }
    group = drill_chart(figure, f"clv_by_{by}", options, _row_key(keys, words))
    _download(download)
    if group:
        page = values.loc[values[by].astype(str) == group, "customer_id"].astype(int).tolist()
        basis = (
            f"The page counts only the {len(values):,} customers the CLV model valued (a "
            f"purchase by {observation_end:%d %b %Y} in the sidebar's scope); the rule takes "
            f"every customer whose {display.label(by).lower()} is {words[group]}, buyers or not."
        )
        selection = drill.field_group(
            by, group, filters, page_name="Customer lifetime value", page_ids=page, page_basis=basis
        )
        panel(selection, f"drill_clv_{by}")


def revenue_trend(
    figure: go.Figure,
    trend: pd.DataFrame,
    filters: Filters,
    download: tuple[pd.DataFrame, str, str] | None = None,
) -> None:
    """The revenue trend: click a day, week or month for the customers who bought in it."""
    grain = str(trend["grain"].iloc[0])
    keys = [f"{p:%Y-%m-%d}" for p in trend["period"]]
    options = {
        k: f"{_upper_first(drill.period_words(p.date(), grain))}: {int(n):,} active customers"
        for k, p, n in zip(keys, trend["period"], trend["active_customers"], strict=True)
        if n > 0
    }

    def from_point(point: dict[str, Any]) -> str | None:
        index = _point_index(point)
        if index is not None and 0 <= index < len(keys):
            return keys[index]
        return str(point.get("x", ""))[:10] or None

    period = drill_chart(
        figure,
        "revenue_trend",
        options,
        from_point,
        help_=f"Click a {grain}'s bar or point, or pick it here, for the customers who bought "
        "in it.",
    )
    _download(download)
    if period:
        selection = drill.trend_period(date.fromisoformat(period), grain, filters)
        panel(selection, "drill_trend")


@data.reads("campaign_contacts", show_spinner=False, ttl=600)
def contacted_campaigns() -> frozenset[int]:
    """The campaigns with contacts (the others reach customers only by tagged visits)."""
    return frozenset(drill.contacted_campaigns(store()))


def campaign_roi(
    figure: go.Figure,
    roi: pd.DataFrame,
    filters: Filters,
    download: tuple[pd.DataFrame, str, str] | None = None,
) -> None:
    """The campaign ROI bars: click a campaign for the customers it was sent to (for a paid
    campaign without contacts: those it reached, by a visit or order tagged with it)."""
    keys = [str(int(c)) for c in roi["campaign_id"]]
    names = dict(zip(keys, roi["name"].astype(str), strict=True))
    sent = contacted_campaigns()
    options = {
        k: f"{names[k]} (#{k})" + ("" if int(k) in sent else ": reached, no contacts") for k in keys
    }
    chosen = drill_chart(
        figure,
        "campaign_roi",
        options,
        _row_key(keys, names),  # the chart draws the table's rows in order (its top 20)
        help_="Click a campaign's bars, or pick it here, for the customers it was sent to.",
    )
    _download(download)
    if chosen:
        group = "treatment" if int(chosen) in sent else "reached"
        selection = drill.campaign_contacts(int(chosen), names[chosen], filters, group)
        panel(selection, "drill_campaign")


BUCKETS = ("all", "detractor", "passive", "promoter")


def nps_breakdown(
    figure: go.Figure,
    table: pd.DataFrame,
    by: str,
    filters: Filters,
    download: tuple[pd.DataFrame, str, str] | None = None,
) -> str | None:
    """The NPS-by-group bars: click a group (or pick it) for who answered the NPS survey in
    it; returns the chosen group for `nps_panel` (drawn full width, below the charts)."""
    shown = table.dropna(subset=["nps"])  # what the chart draws, in its order
    keys = [str(v) for v in shown[by]]
    words = dict(zip(keys, display.value_labels(by, shown[by]), strict=True))
    options = {
        k: f"{words[k]}: NPS {nps:.0f} ({int(n):,} answers)"
        for k, nps, n in zip(keys, shown["nps"], shown["nps_responses"], strict=True)
        if not (by == "touchpoint" and k in drill.NULL_GROUPS)  # no rule for a missing one
    }
    group = drill_chart(
        figure,
        f"nps_by_{by.replace(' ', '_')}",
        options,
        _row_key(keys, words),
        help_="Click a group's bar, or pick it here, for the customers who answered the NPS "
        "survey in it.",
    )
    _download(download)
    return group


def nps_panel(group: str | None, table: pd.DataFrame, by: str, filters: Filters) -> None:
    """The customers behind an NPS group of the breakdown `table`: all respondents, or its
    detractors, passives or promoters."""
    if group:
        counted = table.loc[table[by].astype(str) == group, "nps_responses"]
        answers = int(counted.iloc[0]) if len(counted) else None
        bucket = st.radio(
            "Who",
            BUCKETS,
            key="drill_nps_bucket",
            horizontal=True,
            format_func=lambda b: "All respondents" if b == "all" else drill.BUCKET_WORDS[b],
            help="Detractors scored 0-6, passives 7-8, promoters 9-10 (any answer in the period).",
        )
        selection = drill.survey_group(
            by, group, filters, bucket=None if bucket == "all" else bucket
        )
        if answers:
            st.caption(
                f"The bar counts {answers:,} answers; below are customers, each counted once "
                "however often they answered."
            )
        panel(selection, "drill_nps")


@data.reads("orders", "customers", show_spinner="Finding who moved...", ttl=600)
def movers(
    as_of: date, window_days: int | None, compare_days: int, filters: Filters | None = None
) -> pd.DataFrame:
    """Each customer's RFM segment `compare_days` before `as_of` and at `as_of`."""
    return rfm.segment_moves(store(), as_of, window_days, compare_days, filters)


def movement(
    figure: go.Figure,
    moves: pd.DataFrame,
    as_of: date,
    window_days: int | None,
    compare_days: int,
    filters: Filters,
) -> None:
    """The RFM movement heatmap: click a cell (or pick it) for the customers who moved from
    one segment to the other; only a fixed list, as no rule can say it."""
    options = {
        f"{r.from_segment}|{r.to_segment}": f"{r.from_segment} → {r.to_segment}: "
        f"{int(r.customers):,} customers"
        for r in moves.sort_values("customers", ascending=False).itertuples()
        if r.customers > 0
    }
    figure = clickable_cells(figure, lambda x, y: f"{y}|{x}")  # rows: before; columns: now
    cell = drill_chart(figure, "rfm_movement", options, _cell_key)
    if cell:
        before, now = cell.split("|")
        people = movers(as_of, window_days, compare_days, filters)
        inside = (people["from_segment"] == before) & (people["to_segment"] == now)
        ids = people.loc[inside, "customer_id"].astype(int).tolist()
        panel(drill.movement_cell(before, now, ids, compare_days, as_of), "drill_movement")


def cluster_profile(
    figure: go.Figure,
    result: clustering.Clustering,
    download: tuple[pd.DataFrame, str, str] | None = None,
) -> None:
    """The cluster profile heatmap: click any cell of a cluster's row (or pick it) for the
    cluster's customers."""
    profile = result.profile
    options = {
        str(int(c)): f"Cluster {int(c)} ({int(n):,} customers)"
        for c, n in zip(profile["cluster"], profile["customers"], strict=True)
    }
    # rows are labelled "Cluster 2 (1,234)": any cell of the row selects the cluster
    figure = clickable_cells(figure, lambda x, y: y.split()[1])
    chosen = drill_chart(figure, "cluster_profile", options, _cell_key)
    _download(download)
    if chosen:
        k = int(chosen)
        page = result.labels[result.labels == k].index.astype(int).tolist()
        fit = f"k={result.k} on {', '.join(display.label(f).lower() for f in result.features)}"
        selection = drill.cluster(k, page, fit_words=fit, n_clusters=result.k)
        panel(selection, "drill_cluster")

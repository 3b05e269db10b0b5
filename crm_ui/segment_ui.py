"""Segments in the app: cached wrappers over crm_core, and the rule-builder widgets."""

from __future__ import annotations

import contextlib
import json
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from crm_core import display, export, features, segments
from crm_core.analytics import clustering, rfm
from crm_core.auth import User
from crm_core.errors import CRMError
from crm_core.filters import Filters
from crm_core.privacy import may_see_pii
from crm_ui import data, tables
from crm_ui.auth_ui import current_user
from crm_ui.data import store

_LAYOUT = "seg_layout"  # [{"id": n} | {"id": n, "group": [child ids]}]
_NEXT = "seg_next_id"
OPENED = "seg_opened"  # name of the saved segment loaded into the builder, or None
DESCRIPTION = "seg_description"  # the builder's Description box (kept when a segment opens)
RULE_PARTS = ("field", "op", "value")  # a rule row's parts: container keys rule_<part>_<id>


# --- cached reads ---------------------------------------------------------------------------


@data.reads("customer_360", show_spinner="Refreshing the customer 360 table...", ttl=60)
def ensure_360() -> date | None:
    """Rebuild the 360 table if its sources changed; its as-of date (None: no orders)."""
    features.ensure_fresh(store())
    return segments.store_as_of(store())


def clear() -> None:
    """Forget cached segment reads after a segment write (save, delete, restore): KPIs,
    CLV and churn fits stay cached."""
    data.tables_changed(*segments.TABLES_WRITTEN)


@data.reads(
    "customer_360", "customers", "customer_scores", show_spinner="Counting customers...", ttl=300
)
def preview(definition_json: str, role: str) -> segments.Preview:
    """Preview of a definition (JSON text, so the cache key is exact) for `role`."""
    return segments.preview(store(), definition_json, role)


@data.reads("segments", "segment_sizes", show_spinner=False, ttl=60)
def saved_segments() -> pd.DataFrame:
    """Saved segments, latest versions."""
    return segments.list_segments(store())


def _as_dict(definition: Any) -> Any:
    return json.loads(definition) if isinstance(definition, str) else definition


@data.reads("segments", show_spinner=False, ttl=60)
def versions(segment_id: int, role: str) -> pd.DataFrame:
    """Every version of a saved segment, personal rule values hidden from `role` if it
    may not see them."""
    table = segments.segment_versions(store(), segment_id)
    table["definition"] = [
        json.dumps(segments.redact_definition(_as_dict(d), role)) for d in table["definition"]
    ]
    return table


@data.reads("segment_sizes", show_spinner=False, ttl=60)
def sizes(segment_id: int) -> pd.DataFrame:
    """Recorded sizes of a saved segment."""
    return segments.size_history(store(), segment_id)


@data.reads("segments", show_spinner=False, ttl=60)
def deleted_segments(user: User) -> pd.DataFrame:
    """Deleted segments `user` may restore (their own; an admin's: all)."""
    return segments.deleted_segments(store(), user)


def deleted_labels(gone: pd.DataFrame) -> dict[int, str]:
    """segment_id -> "name (deleted <when> by <who>)" for the restore picker."""
    return {
        int(r.segment_id): f"{r.name} (deleted {r.deleted_at:%Y-%m-%d %H:%M} UTC by "
        f"{r.deleted_by or 'unknown'})"
        for r in gone.itertuples()
    }


@data.reads("customer_360", show_spinner=False, ttl=600)
def field_choices(field: str) -> list[str]:
    """The values offered for a field with few of them (empty: a free value instead)."""
    return segments.field_choices(store(), field)


@data.reads("orders", "customers", show_spinner="Scoring RFM...", ttl=600)
def rfm_scores(
    as_of: date, window_days: int | None, filters: Filters | None = None
) -> pd.DataFrame:
    """RFM scores as of `as_of` (ranked over every buyer) of the customers in `filters`."""
    return rfm.rfm_scores(store(), as_of, window_days, filters)


@data.reads("orders", "customers", show_spinner="Comparing with the previous period...", ttl=600)
def movement(
    as_of: date, window_days: int | None, compare_days: int, filters: Filters | None = None
) -> pd.DataFrame:
    """Customers in `filters` moving between RFM segments since `compare_days` ago."""
    return rfm.segment_movement(store(), as_of, window_days, compare_days, filters)


@data.reads("customer_360", show_spinner="Reading features...", ttl=600)
def cluster_features(columns: tuple[str, ...]) -> pd.DataFrame:
    """The chosen 360 features of every buyer."""
    return clustering.load_features(store(), columns)


@data.reads("customer_360", show_spinner="Trying k = 2..8...", ttl=600)
def choose_k(columns: tuple[str, ...]) -> pd.DataFrame:
    """Elbow and silhouette for k = 2..8."""
    return clustering.choose_k(cluster_features(columns))


@data.reads("customer_360", show_spinner="Clustering...", ttl=600)
def clusters(columns: tuple[str, ...], k: int) -> clustering.Clustering:
    """k-means with k clusters on the chosen features."""
    return clustering.fit_clusters(cluster_features(columns), k)


# --- rule builder ---------------------------------------------------------------------------


def _new_id() -> int:
    st.session_state[_NEXT] = st.session_state.get(_NEXT, 0) + 1
    return st.session_state[_NEXT]


def _clear_builder() -> None:
    for key in [k for k in st.session_state if str(k).startswith(("r_", "g_"))]:
        del st.session_state[key]
    st.session_state[_LAYOUT] = []
    st.session_state["seg_match"] = "all"


def _percent(share: Any) -> float:
    """A stored 0-1 share as the percent the builder shows (0.6 -> 60.0)."""
    return round(float(share) * 100, 8)


def _share(percent: Any) -> Any:
    """A percent typed in the builder as the 0-1 share a rule stores (60 -> 0.6); text that
    is not a number is passed on for crm_core to report."""
    try:
        return round(float(str(percent).replace("%", "").strip()) / 100, 10)
    except ValueError:
        return percent


def _choice(value: Any, choices: list[str]) -> str:
    """`value` in the spelling of the choice it names (case does not matter in rules)."""
    text = str(value)
    return next((c for c in choices if c.lower() == text.lower()), text)


def _load_rule(rule: dict[str, Any]) -> int:
    rid = _new_id()
    if segments.rule_kind(rule) in ("activity", "funnel"):  # shown in words, read-only
        st.session_state[f"r_{rid}_fixed"] = rule
        return rid
    field, op, value = rule["field"], rule["op"], rule.get("value")
    key = f"r_{rid}_value"
    st.session_state[f"r_{rid}_field"] = field
    st.session_state[f"r_{rid}_op"] = op
    share = field in segments.SHARE_FIELDS
    choices = field_choices(field) if op in ("eq", "ne", "in", "not_in") else []
    if op == "between":
        low, high = (_percent(v) for v in value) if share else map(str, value)
        st.session_state[key], st.session_state[f"r_{rid}_to"] = low, high
    elif op in ("in", "not_in") and choices:
        st.session_state[key] = [_choice(v, choices) for v in value]
    elif op in ("in", "not_in"):
        st.session_state[key] = ", ".join(f"{_percent(v):g}" if share else str(v) for v in value)
    elif segments.FIELDS[field] == "boolean":
        st.session_state[key] = "true" if value else "false"
    elif value is not None and share and op not in segments.DAY_COUNT_OPS:
        st.session_state[key] = _percent(value)
    elif value is not None and choices:
        st.session_state[key] = _choice(value, choices)
    elif value is not None:
        st.session_state[key] = str(value)
    return rid


def load_definition(
    definition: dict[str, Any] | None, opened: str | None = None, description: str | None = None
) -> None:
    """Put a definition (and its description) into the builder's widgets (None: empty)."""
    _clear_builder()
    st.session_state[OPENED] = opened
    st.session_state[DESCRIPTION] = description or ""
    if not definition:
        return
    st.session_state["seg_match"] = definition["match"]
    for rule in definition["rules"]:
        if "rules" in rule:
            gid = _new_id()
            st.session_state[f"g_{gid}_match"] = rule["match"]
            children = [_load_rule(child) for child in rule["rules"]]
            st.session_state[_LAYOUT].append({"id": gid, "group": children})
        else:
            st.session_state[_LAYOUT].append({"id": _load_rule(rule)})


NEW_RULE = {"field": "frequency", "op": "gte", "value": 1}
"""A new rule starts valid ("bought at least once"), so the preview never starts in error."""


def _add_rule(group_id: int | None = None) -> None:
    layout = st.session_state.setdefault(_LAYOUT, [])
    if group_id is None:
        layout.append({"id": _load_rule(NEW_RULE)})
    else:
        next(n for n in layout if n["id"] == group_id)["group"].append(_load_rule(NEW_RULE))


def _add_group() -> None:
    layout = st.session_state.setdefault(_LAYOUT, [])
    layout.append({"id": _new_id(), "group": [_load_rule(NEW_RULE)]})


def _remove(node_id: int) -> None:
    layout = st.session_state[_LAYOUT]
    st.session_state[_LAYOUT] = [n for n in layout if n["id"] != node_id]
    for node in st.session_state[_LAYOUT]:
        if "group" in node and node_id in node["group"]:
            node["group"].remove(node_id)


def _fixed_row(rid: int) -> dict[str, Any]:
    """An activity or funnel rule (from a drill-down): shown in words, removable, not edited
    here (its parameters come from the view it was saved from)."""
    rule = st.session_state[f"r_{rid}_fixed"]
    row = st.container(horizontal=True, vertical_alignment="center")
    kind = "Funnel rule" if "funnel" in rule else "Activity rule"
    row.markdown(
        f"**{kind}:** {segments.describe_rule(rule)}",
        help="Saved from a drill-down; it is evaluated on the current data each time. It "
        "cannot be edited here: remove it, or drill down again from its view.",
    )
    row.container(width="content").button(
        "Remove",
        key=f"r_{rid}_remove",
        on_click=_remove,
        args=(rid,),
        icon=":material/delete:",
        type="tertiary",
        help="Remove this rule",
    )
    return rule


def _rule_row(rid: int) -> dict[str, Any]:
    if f"r_{rid}_fixed" in st.session_state:
        return _fixed_row(rid)
    # A row that wraps on a narrow screen (field and operator, then the value) instead of
    # clipping its controls; each part keeps a readable width (crm_ui/style.py).
    row = st.container(horizontal=True, vertical_alignment="bottom")
    field_col, op_col, value_col = (row.container(key=f"rule_{p}_{rid}") for p in RULE_PARTS)
    remove_col = row.container(width="content")
    user = current_user()
    allowed = segments.fields_for_role(user.role if user else None)
    opened = st.session_state.get(f"r_{rid}_field")
    if opened in segments.FIELDS and opened not in allowed:  # shown as saved; preview refuses
        allowed = [opened, *allowed]
    field = field_col.selectbox(
        "Field",
        allowed,
        key=f"r_{rid}_field",
        format_func=display.label,
        help="Any field of the customer 360 table"
        + ("." if len(allowed) >= len(segments.FIELDS) else " except personal data."),
    )
    ops = list(segments.OPS_BY_KIND[segments.FIELDS[field]])
    if st.session_state.get(f"r_{rid}_op") not in ops:
        st.session_state.pop(f"r_{rid}_op", None)
    op = op_col.selectbox(
        "Operator",
        ops,
        key=f"r_{rid}_op",
        format_func=segments.OP_LABELS.get,
        help="Operators that fit the field's type.",
    )
    remove_col.button(
        "Remove",
        key=f"r_{rid}_remove",
        on_click=_remove,
        args=(rid,),
        icon=":material/delete:",
        type="tertiary",
        help="Remove this rule",
    )
    value = _value_input(value_col, rid, field, op)
    return {"field": field, "op": op, "value": value}


def _fit(key: str, fits: Any, convert: Any = None) -> None:
    """Drop (or convert) a widget's kept value that does not fit the widget now drawn for it,
    e.g. after the rule's field changed from a text field to a share."""
    if key not in st.session_state or fits(st.session_state[key]):
        return
    value = st.session_state.pop(key)
    if convert is not None:
        with contextlib.suppress(TypeError, ValueError):
            st.session_state[key] = convert(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _percent_input(col: Any, label: str, key: str, help_: str) -> float:
    _fit(key, _is_number, lambda v: float(str(v).replace("%", "")))
    return col.number_input(
        label, min_value=0.0, max_value=100.0, step=1.0, key=key, help=help_, format="%g"
    )


def _value_input(col: Any, rid: int, field: str, op: str) -> Any:
    kind, key = segments.FIELDS[field], f"r_{rid}_value"
    if op in segments.NO_VALUE_OPS:
        col.caption("no value needed")
        return None
    if kind == "boolean":
        _fit(key, lambda v: v in ("true", "false"))
        return col.selectbox("Value", ["true", "false"], key=key)
    share = field in segments.SHARE_FIELDS and op not in segments.DAY_COUNT_OPS
    choices = field_choices(field) if op in ("eq", "ne", "in", "not_in") else []
    if op in ("in", "not_in") and choices:
        _fit(key, lambda v: isinstance(v, list) and set(v) <= set(choices))
        return col.multiselect("Values", choices, key=key, help="Pick one or more.")
    if choices:
        _fit(key, lambda v: v in choices, lambda v: _choice(v, choices))
        _fit(key, lambda v: v in choices)
        return col.selectbox("Value", choices, key=key, help="Values found in the store.")
    if share and op == "between":
        low, high = col.columns(2)
        tip = "Inclusive; percent 0-100 (stored as a share 0-1)."
        return [
            _share(_percent_input(low, "From (%)", key, tip)),
            _share(_percent_input(high, "To (%)", f"r_{rid}_to", tip)),
        ]
    if share and op not in ("in", "not_in"):
        tip = "Percent 0-100; the rule stores it as a share 0-1 (60 -> 0.6)."
        return _share(_percent_input(col, "Value (%)", key, tip))
    hint = {"date": "YYYY-MM-DD", "number": "a number", "text": "text"}[kind]
    _fit(key, lambda v: isinstance(v, str), _text)
    if op == "between":
        low, high = col.columns(2)
        _fit(f"r_{rid}_to", lambda v: isinstance(v, str), _text)
        return [
            low.text_input("From", key=key, help=f"Inclusive; {hint}."),
            high.text_input("To", key=f"r_{rid}_to", help=f"Inclusive; {hint}."),
        ]
    if op == "within_last_days":
        hint = "days up to the as-of date (last order in the store)"
    elif op == "within_next_days":
        hint = "days after the as-of date (last order in the store), e.g. 14: due in two weeks"
    elif op in ("in", "not_in") and share:
        text = col.text_input(
            "Values (%)", key=key, help="Comma-separated percents 0-100 (stored as shares 0-1)."
        )
        return [_share(v) for v in text.split(",") if v.strip()]
    elif op in ("in", "not_in"):
        hint = f"comma-separated values ({hint})"
    return col.text_input("Value", key=key, help=hint.capitalize() + ".")


def rule_builder() -> dict[str, Any]:
    """Draw the editable rules; return the definition as typed (checked by crm_core)."""
    layout = st.session_state.setdefault(_LAYOUT, [])
    match = st.radio(
        "Customers must match",
        segments.MATCHES,
        key="seg_match",
        horizontal=True,
        format_func={"all": "all rules (AND)", "any": "any rule (OR)"}.get,
        help="How the rules and groups below combine.",
    )
    rules: list[dict[str, Any]] = []
    for node in list(layout):
        if "group" not in node:
            rules.append(_rule_row(node["id"]))
            continue
        with st.container(border=True):
            gid = node["id"]
            top = st.container(horizontal=True, vertical_alignment="bottom")
            head, remove = top.container(), top.container(width="content")
            group_match = head.radio(
                "Group: customers must match",
                segments.MATCHES,
                key=f"g_{gid}_match",
                horizontal=True,
                format_func={"all": "all (AND)", "any": "any (OR)"}.get,
                help="A nested group counts as one rule of the outer list.",
            )
            remove.button(
                "Remove group",
                key=f"g_{gid}_remove",
                on_click=_remove,
                args=(gid,),
                icon=":material/delete:",
                type="tertiary",
                help="Remove this group and its rules",
            )
            children = [_rule_row(rid) for rid in node["group"]]
            st.button("Add rule to group", key=f"g_{gid}_add", on_click=_add_rule, args=(gid,))
            rules.append({"match": group_match, "rules": children})
    buttons = st.container(horizontal=True)  # wraps on a narrow screen instead of clipping
    buttons.button("Add rule", on_click=_add_rule, icon=":material/add:")
    buttons.button("Add group", on_click=_add_group, icon=":material/add_box:")
    return {"match": match, "rules": rules}


def definition_json(definition: dict[str, Any]) -> str:
    """Stable JSON of a definition (the preview cache key)."""
    return json.dumps(definition, sort_keys=True, default=str)


def export_columns(role: str) -> tuple[list[str], list[str]]:
    """(columns `role` may export, the default choice)."""
    return export.allowed_columns(role), export.default_columns(role)


def save_clusters(result: clustering.Clustering) -> int:
    """Save cluster assignments to the store and forget cached 360 reads."""
    saved = clustering.save_clusters(store(), result)
    data.tables_changed(*clustering.TABLES_WRITTEN)
    return saved


def preview_panel(result: segments.Preview) -> None:
    """Size, share, revenue, CLV and churn risk, the masked sample and the SQL."""
    cards = st.container(horizontal=True)  # cards wrap on a narrow screen, figures whole
    cols = [cards.container() for _ in range(5)]
    cols[0].metric("Customers", f"{result.customers:,}", border=True)
    cols[1].metric("Share of base", f"{result.share:.1%}", border=True)
    revenue = result.revenue
    shown = f"${revenue / 1e6:,.2f}M" if revenue >= 1e6 else f"${revenue:,.0f}"
    cols[2].metric("Revenue (all history)", shown, border=True, help=f"${revenue:,.2f}")
    for col, label, value, fmt in (
        (cols[3], "Average CLV", result.avg_clv, "${:,.0f}"),
        (cols[4], "Average churn risk", result.avg_churn_risk, "{:.0%}"),
    ):
        shown = "n/a" if value is None else fmt.format(value)
        col.metric(label, shown, border=True, help="n/a until the CLV/churn models have run.")
    for warning in result.warnings:
        st.warning(warning, icon=":material/search_off:")
    if result.customers == 0:
        st.warning("No customer matches these rules.")
        return
    tables.show_table(result.sample)
    user = current_user()
    masked = user is None or not may_see_pii(user.role)
    st.caption(
        "The 10 members with the highest spend"
        + ("; personal data masked for your role." if masked else ".")
    )
    with st.expander("Show SQL"):
        st.code(result.sql, language="sql")
        st.caption("Values shown for reading only; the app always sends them as parameters.")


def save_as_segment(
    definition: dict[str, Any],
    default_name: str,
    description: str,
    key: str,
    *,
    help_: str = "Saved segments can be previewed and exported in the builder.",
    saved_as: str = "",
) -> None:
    """A one-click form that saves `definition` as a segment, ready to export in the builder
    (`saved_as`, e.g. " as rules", is said in the confirmation)."""
    user = current_user()
    if user is None or not user.can("save_segments"):
        st.caption("Saving these customers as a segment is for admins, marketers and analysts.")
        return
    with st.form(key, border=False):
        name = st.text_input(  # name above the button: neither is cut in a narrow panel
            "Segment name", value=default_name[: segments.MAX_NAME_LENGTH], key=f"{key}_name"
        )
        if st.form_submit_button("Save as segment", help=help_):
            try:
                saved = segments.save_segment(
                    store(),
                    name,
                    definition,
                    owner=user.username,
                    description=description,
                    role=user.role,
                )
            except CRMError as exc:
                st.error(str(exc))
            else:
                clear()
                st.success(
                    f"Saved segment '{saved.name}' (version {saved.version}){saved_as}. "
                    "Preview and export it in the Segment builder."
                )

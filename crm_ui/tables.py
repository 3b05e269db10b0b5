"""Tables as people read them: labels and formats from crm_core.display, ids that link.

Every table of the app goes through `show_table`: each column gets its label, format and
help from `crm_core.display` (money with the currency, shares as percent, counts with
separators, dates as dates, no "None" for a missing value), the index is hidden, and customer
ids link to their Customer 360 profile (a new tab at ``customer_360?customer_id=42``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from crm_core import auth, display
from crm_ui.links import CUSTOMER_PARAM, customer_url
from crm_ui.session import current_user

_MONEY_FORMATS = {"$": "dollar", "€": "euro", "¥": "yen"}
MONEY_FORMAT = _MONEY_FORMATS.get(display.CURRENCY, f"{display.CURRENCY}%,.2f")
"""Streamlit's number format for money in the store's currency."""
PERCENT_FORMAT = "%,.1f%%"
"""Shares: the table holds them in percent (see `shown_frame`) and printf rounds them. Not
Streamlit's named "percent" format with a step: in 1.67 the step truncates (0.84598 ->
"84.5%"), and without one the decimals vary ("44.58%", "50%")."""
DATE_FORMAT = "D MMM YYYY"
DATETIME_FORMAT = "D MMM YYYY, HH:mm"
MISSING = ""
"""What a missing value shows (Streamlit draws "None" by default)."""


def _integral(series: pd.Series) -> bool:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return bool(values.empty or (values == values.round()).all())


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _is_time(series: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(series)


def _all_midnight(series: pd.Series) -> bool:
    stamps = pd.to_datetime(series, errors="coerce").dropna()
    return bool(stamps.empty or (stamps == stamps.dt.normalize()).all())


def _number_format(kind: str, series: pd.Series) -> tuple[str | None, float | None]:
    """(format, step) of a number column of `kind`."""
    whole = _integral(series)
    if kind == "money":
        return MONEY_FORMAT, None
    if kind == "percent":
        return PERCENT_FORMAT, None  # the values are in percent (shown_frame): rounds
    if kind in ("id", "customer_id"):
        return "%d", None
    if kind == "days":
        return "%,.0f", None
    if kind == "count":
        return ("%,d" if whole else "%,.1f"), None
    if kind == "score":
        return ("%d" if whole else "%.1f"), None
    return ("%,d" if whole else "%,.2f"), None


def _links_allowed() -> bool:
    """Whether customer ids link to Customer 360: not for a role that may not open it."""
    user = current_user()
    return user is None or auth.may_view(user.role, "customer_360")


def column_spec(name: str, series: pd.Series) -> Any:
    """The Streamlit column config of column `name` holding `series` (label, format, help)."""
    info = display.describe(str(name))
    label, help_ = info.label, info.help or None
    kind = info.kind
    if kind == "customer_id" and _is_number(series) and _links_allowed():
        return st.column_config.LinkColumn(
            label,
            help=help_ or "Opens the customer's 360 profile in a new tab.",
            display_text=rf"{CUSTOMER_PARAM}=(\d+)",
        )
    if pd.api.types.is_bool_dtype(series):
        return st.column_config.CheckboxColumn(label, help=help_)
    if _is_time(series):
        date_only = kind == "date" or _all_midnight(series)
        return st.column_config.DatetimeColumn(
            label, help=help_, format=DATE_FORMAT if date_only else DATETIME_FORMAT
        )
    if _is_number(series):
        fmt, step = _number_format(kind, series)
        return st.column_config.NumberColumn(label, help=help_, format=fmt, step=step)
    if kind in ("date", "datetime") and series.map(lambda v: hasattr(v, "year")).any():
        return st.column_config.DateColumn(label, help=help_, format=DATE_FORMAT)
    return st.column_config.TextColumn(label, help=help_)


def column_config(frame: pd.DataFrame, overrides: dict[str, Any] | None = None) -> dict:
    """Column configs for every column of `frame`; `overrides` (a label, a config or None to
    hide) win over the declared ones."""
    config = {str(name): column_spec(str(name), frame[name]) for name in frame.columns}
    for name, given in (overrides or {}).items():
        if isinstance(given, str) and isinstance(config.get(name), dict):
            config[name] = {**config[name], "label": given}
        elif isinstance(given, dict) and isinstance(config.get(name), dict):
            base = config[name]
            same_type = given.get("type_config", {}).get("type") == base.get("type_config", {}).get(
                "type"
            )
            config[name] = (
                {**base, **{k: v for k, v in given.items() if v is not None}}
                if same_type or "type_config" not in given
                else {"label": base.get("label"), "help": base.get("help"), **given}
            )
        else:
            config[name] = given
    return config


def _percent_columns(frame: pd.DataFrame) -> list:
    return [
        c
        for c in frame.columns
        if display.describe(str(c)).kind == "percent" and _is_number(frame[c])
    ]


def shown_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the table shows it: customer ids as links to their 360 profile, shares
    in percent (0.84598 -> 84.598, shown "84.6%" by `PERCENT_FORMAT`), codes in words."""
    links = [
        c
        for c in frame.columns
        if display.describe(str(c)).kind == "customer_id" and _is_number(frame[c])
    ]
    if links and not _links_allowed():
        links = []
    shares = _percent_columns(frame)
    coded = [
        c
        for c in frame.columns
        if display.is_coded(str(c))
        and (pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c]))
    ]
    if not links and not shares and not coded:
        return frame
    shown = frame.copy()
    for column in coded:  # codes in words: "paid_search" -> "Paid search"
        shown[column] = [
            None if pd.isna(v) else display.value_label(str(column), v) for v in frame[column]
        ]
    for column in links:
        shown[column] = [None if pd.isna(v) else customer_url(int(v)) for v in frame[column]]
    for column in shares:
        shown[column] = 100 * pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return shown


ROW_HEIGHT = 35
"""Streamlit 1.67's row height in px (2.1875rem); the header row is as high."""


def full_height(rows: int) -> int:
    """A table height that shows `rows` rows and the header with no scrolling and no empty
    row below them (Streamlit's own formula: (rows + 1) x 35 + 3 px of border)."""
    return ROW_HEIGHT * (rows + 1) + 3


def show_table(frame: pd.DataFrame | dict, **dataframe_options: Any) -> Any:
    """st.dataframe with human labels and formats for every known column; returns what
    st.dataframe returns (the selection event when `on_select` is given). Options are
    st.dataframe's; `column_config` entries override the declared ones (a string relabels)."""
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    overrides = dataframe_options.pop("column_config", None)
    dataframe_options.setdefault("hide_index", True)
    dataframe_options.setdefault("placeholder", MISSING)
    return st.dataframe(
        shown_frame(frame), column_config=column_config(frame, overrides), **dataframe_options
    )


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as people read it in a spreadsheet (crm_core.display.spreadsheet_frame)."""
    return display.spreadsheet_frame(frame)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as a CSV download (UTF-8, human headers; see `csv_frame`)."""
    return csv_frame(frame).to_csv(index=False).encode()

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

from crm_core import display
from crm_ui.links import CUSTOMER_PARAM, customer_url

_MONEY_FORMATS = {"$": "dollar", "€": "euro", "¥": "yen"}
MONEY_FORMAT = _MONEY_FORMATS.get(display.CURRENCY, f"{display.CURRENCY}%,.2f")
"""Streamlit's number format for money in the store's currency."""
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
        return "percent", 0.001  # 12.3%: the step sets the decimals of a named format
    if kind in ("id", "customer_id"):
        return "%d", None
    if kind == "days":
        return "%,.0f", None
    if kind == "count":
        return ("%,d" if whole else "%,.1f"), None
    if kind == "score":
        return ("%d" if whole else "%.1f"), None
    return ("%,d" if whole else "%,.2f"), None


def column_spec(name: str, series: pd.Series) -> Any:
    """The Streamlit column config of column `name` holding `series` (label, format, help)."""
    info = display.describe(str(name))
    label, help_ = info.label, info.help or None
    kind = info.kind
    if kind == "customer_id" and _is_number(series):
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


def shown_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the table shows it: customer ids as links to their 360 profile."""
    links = [
        c
        for c in frame.columns
        if display.describe(str(c)).kind == "customer_id" and _is_number(frame[c])
    ]
    if not links:
        return frame
    shown = frame.copy()
    for column in links:
        shown[column] = [None if pd.isna(v) else customer_url(int(v)) for v in frame[column]]
    return shown


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
    """The frame as people read it in a spreadsheet: headers are labels with their unit
    ("Revenue ($)", "Share of customers (%)"), shares in percent, numbers left unformatted
    (a spreadsheet can still add them up). Scripts use the CLI's ``--json`` instead."""
    out = frame.copy()
    names = {}
    for column in frame.columns:
        name = str(column)
        if display.describe(name).kind == "percent" and _is_number(frame[column]):
            out[column] = (100 * pd.to_numeric(frame[column], errors="coerce")).round(2)
        names[column] = display.axis_title(name)
    return out.rename(columns=names)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as a CSV download (UTF-8, human headers; see `csv_frame`)."""
    return csv_frame(frame).to_csv(index=False).encode()

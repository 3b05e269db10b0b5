"""Personal data by role: which columns are PII and how they are masked for other roles."""

from __future__ import annotations

import pandas as pd

from crm_core import auth, schema

PII_COLUMNS: frozenset[str] = frozenset(
    name
    for table_name in schema.DATA_TABLES
    for name in schema.pii_columns(table_name)
    if name != "comment"
) | {"name", "full_name"}
"""Column names that hold personal data wherever they appear (declared in schema.py)."""

FREE_TEXT_PII: frozenset[str] = frozenset(
    name
    for table_name in schema.DATA_TABLES
    for name in schema.pii_columns(table_name)
    if name not in PII_COLUMNS
)
"""Personal free text (survey comments): it may name anyone, so it is left out, not masked."""


MASK = "***"
"""What stands for a masked value (after its first character when it has more than 2)."""


def _mask_text(value: object) -> object:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return value
    text = str(value)
    if "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}{MASK}@{domain}"
    if len(text) <= 2:
        return MASK
    return text[:1] + MASK  # the same mask for any length: a length tells about a name


def may_see_pii(role: str) -> bool:
    """Whether `role` sees names, e-mails, phones and comments unmasked."""
    return auth.can(role, "see_pii")


def mask_pii(frame: pd.DataFrame, role: str) -> pd.DataFrame:
    """`frame` with personal columns masked, and personal free text left out, unless `role`
    may see personal data."""
    if may_see_pii(role):
        return frame
    masked = frame.drop(columns=[c for c in frame.columns if c in FREE_TEXT_PII])
    for column in masked.columns:
        if column not in PII_COLUMNS:
            continue
        if pd.api.types.is_datetime64_any_dtype(masked[column]):
            masked[column] = masked[column].dt.year.astype("Int64")  # keep only the year
        else:
            masked[column] = masked[column].astype(object).map(_mask_text)
    return masked

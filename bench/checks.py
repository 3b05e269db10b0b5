"""Equality checks between crm_core and the baseline, run before anything is timed.

A mismatch raises `MismatchError` naming the figure or column and showing the first
differing rows of both sides, so a wrong result can never be reported as a fast one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

REL_TOL = 1e-9
"""Relative tolerance of every compared number (money is exact in the store, float in pandas)."""

ABS_TOL: dict[str, float] = {"avg_order_value": 0.005 + 1e-9}
"""avg_order_value is stored as DECIMAL(12,2), rounded; the baseline's is the exact quotient."""

SHOWN_ROWS = 5


class MismatchError(AssertionError):
    """Our result and the baseline's differ."""


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def compare_kpis(
    ours: Mapping[str, tuple[float | None, float | None]],
    baseline: Mapping[str, tuple[float | None, float | None]],
) -> int:
    """Each KPI's value and previous value equal within REL_TOL; number of figures checked."""
    if set(ours) != set(baseline):
        raise MismatchError(f"KPI names differ: ours {sorted(ours)}, baseline {sorted(baseline)}")
    bad = [
        f"  {name} ({period}): ours {o!r}, baseline {b!r}"
        for name in ours
        for period, o, b in zip(("value", "previous"), ours[name], baseline[name], strict=True)
        if not _close(o, b)
    ]
    if bad:
        raise MismatchError("KPI figures differ from the baseline:\n" + "\n".join(bad))
    return 2 * len(ours)


def compare_import(ours: tuple[int, float], baseline: tuple[int, float]) -> None:
    """Imported rows and total amount equal."""
    if ours[0] != baseline[0] or not _close(ours[1], baseline[1]):
        raise MismatchError(
            f"Orders import differs: ours {ours[0]:,} rows, amount {ours[1]:,.2f}; "
            f"baseline {baseline[0]:,} rows, amount {baseline[1]:,.2f}"
        )


def _equal(a: pd.Series, b: pd.Series, column: str) -> np.ndarray:
    """Row-wise equality of two columns (missing equals missing)."""
    missing = a.isna().to_numpy() & b.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(a) or pd.api.types.is_datetime64_any_dtype(b):
        same = (pd.to_datetime(a) == pd.to_datetime(b)).to_numpy()
        return same | missing
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
        x = a.astype("float64").to_numpy()
        y = b.astype("float64").to_numpy()
        return np.isclose(x, y, rtol=REL_TOL, atol=ABS_TOL.get(column, 0.0), equal_nan=True)
    x = a.astype(object).where(a.notna(), None).map(lambda v: None if v is None else str(v))
    y = b.astype(object).where(b.notna(), None).map(lambda v: None if v is None else str(v))
    return (x.to_numpy() == y.to_numpy()) | missing


def compare_frames(
    ours: pd.DataFrame, baseline: pd.DataFrame, key: str, columns: list[str], what: str
) -> int:
    """Frames sorted by `key` equal in every column (numbers within REL_TOL); rows checked."""
    ours = ours.sort_values(key).reset_index(drop=True)
    baseline = baseline.sort_values(key).reset_index(drop=True)
    if len(ours) != len(baseline) or not (ours[key].to_numpy() == baseline[key].to_numpy()).all():
        only_ours = sorted(set(ours[key]) - set(baseline[key]))[:SHOWN_ROWS]
        only_base = sorted(set(baseline[key]) - set(ours[key]))[:SHOWN_ROWS]
        raise MismatchError(
            f"{what}: ours has {len(ours):,} rows, the baseline {len(baseline):,}; "
            f"{key} only in ours: {only_ours}, only in the baseline: {only_base}"
        )
    bad = np.zeros(len(ours), dtype=bool)
    differing = []
    for column in columns:
        same = _equal(ours[column], baseline[column], column)
        if not same.all():
            differing.append(f"{column} ({int((~same).sum()):,} rows)")
            bad |= ~same
    if differing:
        rows = np.flatnonzero(bad)[:SHOWN_ROWS]
        shown = [key, *[c.split(" ")[0] for c in differing]]
        side_by_side = pd.concat(
            {"ours": ours.loc[rows, shown], "baseline": baseline.loc[rows, shown]}, axis=1
        )
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            raise MismatchError(
                f"{what} differs from the baseline in {', '.join(differing)}; first rows:\n"
                f"{side_by_side.to_string()}"
            )
    return len(ours)

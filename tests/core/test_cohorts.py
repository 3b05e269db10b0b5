"""Cohort retention on the tiny exact store."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from crm_core.analytics.cohorts import cohort_retention
from crm_core.filters import Filters
from tests.core import tiny


def test_cohort_grid_matches_hand_count(store):
    tiny.load(store)
    grid = cohort_retention(store, Filters(start=date(2024, 1, 1), end=date(2024, 2, 29)))
    # c4's first order is in December, before the period: not a cohort shown.
    assert list(grid.index) == ["2024-01", "2024-02"]
    assert list(grid["customers"]) == [2, 1]
    assert grid.loc["2024-01", 0] == 1.0
    assert grid.loc["2024-01", 1] == 1.0  # c1 and c2 both bought in February
    assert pd.isna(grid.loc["2024-01", 2])  # March is after the period
    assert grid.loc["2024-02", 0] == 1.0
    assert pd.isna(grid.loc["2024-02", 1])


def test_month_without_purchases_is_zero_not_missing(store):
    tiny.load(store)
    grid = cohort_retention(store, Filters(start=date(2023, 12, 1), end=date(2024, 2, 29)))
    # c4: first December, no January purchase, February order refunded.
    assert grid.loc["2023-12", 1] == 0.0
    assert grid.loc["2023-12", 2] == 0.0


def test_empty_store_gives_empty_grid(store):
    assert cohort_retention(store, tiny.PERIOD).empty


@pytest.mark.parametrize("country,size", [("US", 2), ("GB", 0)])
def test_cohorts_honour_country_filter(store, country, size):
    tiny.load(store)
    grid = cohort_retention(
        store, Filters(start=date(2024, 1, 1), end=date(2024, 1, 31), countries=(country,))
    )
    assert (grid["customers"].sum() if not grid.empty else 0) == size

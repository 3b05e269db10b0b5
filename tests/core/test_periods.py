"""Period presets anchored on the store's last data day, comparisons and freshness."""

from __future__ import annotations

from datetime import date

import pytest

from crm_core.filters import PRESETS, Filters, freshness, preset_range

D = date.fromisoformat


@pytest.mark.parametrize(
    "preset,last_day,start,end",
    [
        ("last_7_days", "2026-06-30", "2026-06-24", "2026-06-30"),
        ("last_30_days", "2026-06-30", "2026-06-01", "2026-06-30"),
        ("last_90_days", "2026-06-30", "2026-04-02", "2026-06-30"),
        ("last_12_months", "2026-06-30", "2025-07-01", "2026-06-30"),
        ("month_to_date", "2026-06-30", "2026-06-01", "2026-06-30"),
        ("month_to_date", "2026-06-01", "2026-06-01", "2026-06-01"),
        ("quarter_to_date", "2026-06-30", "2026-04-01", "2026-06-30"),
        ("quarter_to_date", "2026-11-28", "2026-10-01", "2026-11-28"),
        ("year_to_date", "2026-06-30", "2026-01-01", "2026-06-30"),
        # A full month/quarter/year ending on the last data day counts as the last full one.
        ("last_month", "2026-06-30", "2026-06-01", "2026-06-30"),
        ("last_month", "2026-06-29", "2026-05-01", "2026-05-31"),
        ("last_month", "2026-03-15", "2026-02-01", "2026-02-28"),
        ("last_month", "2026-01-10", "2025-12-01", "2025-12-31"),
        ("last_quarter", "2026-06-30", "2026-04-01", "2026-06-30"),
        ("last_quarter", "2026-06-29", "2026-01-01", "2026-03-31"),
        ("last_quarter", "2026-02-10", "2025-10-01", "2025-12-31"),
        ("last_year", "2026-06-30", "2025-01-01", "2025-12-31"),
        ("last_year", "2025-12-31", "2025-01-01", "2025-12-31"),
    ],
)
def test_presets_count_back_from_the_last_data_day(preset, last_day, start, end):
    assert preset_range(preset, D(last_day)) == (D(start), D(end))


def test_every_preset_is_a_whole_period_ending_by_the_last_data_day():
    for last_day in (D("2024-02-29"), D("2026-06-30"), D("2026-11-28")):
        for preset in PRESETS:
            start, end = preset_range(preset, last_day)
            assert start <= end <= last_day, preset


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown period preset"):
        preset_range("past_6_months", D("2026-06-30"))


def test_year_ago_comparison_keeps_the_days_and_handles_leap_day():
    period = Filters(D("2024-02-01"), D("2024-02-29"), compare="year_ago")
    assert (period.comparison().start, period.comparison().end) == (
        D("2023-02-01"),
        D("2023-02-28"),
    )
    previous = Filters(D("2024-02-01"), D("2024-02-29"))
    assert (previous.comparison().start, previous.comparison().end) == (
        D("2024-01-03"),
        D("2024-01-31"),
    )


def test_freshness_says_how_old_the_data_is():
    assert freshness(D("2026-06-30"), D("2026-11-29")) == (
        "Data through 30 Jun 2026 (152 days before today)."
    )
    assert freshness(D("2026-11-28"), D("2026-11-29")) == "Data through 28 Nov 2026 (yesterday)."
    assert freshness(D("2026-11-29"), D("2026-11-29")) == "Data through 29 Nov 2026 (today)."


@pytest.mark.parametrize(
    "preset,last_day,start,end",
    [
        ("month_to_date", "2026-11-28", "2026-10-01", "2026-10-28"),
        ("month_to_date", "2026-03-31", "2026-02-01", "2026-02-28"),
        ("last_month", "2026-11-28", "2026-09-01", "2026-09-30"),
        ("quarter_to_date", "2026-11-28", "2026-07-01", "2026-08-28"),
        ("last_quarter", "2026-11-28", "2026-04-01", "2026-06-30"),
        ("year_to_date", "2026-11-28", "2025-01-01", "2025-11-28"),
        ("last_year", "2026-11-28", "2024-01-01", "2024-12-31"),
        ("last_30_days", "2026-11-28", "2026-09-30", "2026-10-29"),
    ],
)
def test_calendar_presets_compare_with_the_calendar_period_before(preset, last_day, start, end):
    first, last = preset_range(preset, D(last_day))
    period = Filters(first, last, preset=preset)
    compared = period.comparison()
    assert (compared.start, compared.end) == (D(start), D(end))

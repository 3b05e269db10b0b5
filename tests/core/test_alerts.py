"""Alert rules: validation, words, save/version/load, threshold and change on the tiny exact
store, segment-size and score histories, and the anomaly backtest on the demo's planted drop."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from crm_core import alerts, auth, demo, scoring, segments
from crm_core.cli import main
from crm_core.errors import AlertError
from crm_core.filters import Filters
from crm_core.metrics import METRICS, compute_kpis
from crm_core.schema import score_runs, segment_sizes
from tests.core import seg_tiny, tiny

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL


def kpi(metric="revenue", grain="month", condition=None, **scope):
    measure = {"kind": "kpi", "metric": metric, "grain": grain, **scope}
    return {"measure": measure, "condition": condition or {"kind": "anomaly"}}


BELOW_200 = {"kind": "threshold", "op": "below", "value": 200}


# --- validation and words -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "words"),
    [
        ({"measure": {"kind": "kpi"}}, "Add a condition"),
        (kpi("revnue"), "measure.metric: got 'revnue'; allowed: revenue, orders"),
        (kpi(grain="fortnight"), "measure.grain: got 'fortnight'; allowed: day, week, month"),
        ({"measure": {"kind": "gauge"}, "condition": {}}, "measure.kind: got 'gauge'"),
        (kpi(condition={"kind": "threshold", "op": "under", "value": 1}), "condition.op"),
        (kpi(condition={"kind": "threshold", "op": "below", "value": "x"}), "a finite number"),
        (kpi(condition={"kind": "change", "against": "previous", "direction": "down"}), "percent"),
        (
            kpi(condition={"kind": "change", "against": "last", "direction": "down", "percent": 5}),
            "condition.against: got 'last'; allowed: previous, year_ago",
        ),
        (kpi(condition={"kind": "anomaly", "level": 95}), "condition.level: got 95.0"),
        (kpi(condition={"kind": "anomaly", "lvl": 0.9}), "key lvl"),
        ({"measure": {"kind": "score", "aggregate": "clv"}, "condition": BELOW_200}, "mean_clv"),
        ({"measure": {"kind": "segment_size"}, "condition": BELOW_200}, "measure.segment"),
        ("{not json", "Fix the JSON"),
    ],
)
def test_invalid_rules_say_what_got_allowed_and_fix(definition, words):
    with pytest.raises(AlertError, match="Alert rule") as caught:
        alerts.validate(definition)
    assert words in str(caught.value)


def test_rules_normalise_and_read_in_words():
    rule = alerts.validate(kpi("orders", "week", countries=["US"], channels="web"))
    assert rule["measure"] == {
        "kind": "kpi",
        "metric": "orders",
        "grain": "week",
        "countries": ["US"],
        "channels": ["web"],
    }
    assert rule["condition"] == {"kind": "anomaly", "level": 0.95}
    assert alerts.describe(rule) == (
        "Orders per week in US through web: alert when outside the 95% range of a seasonal "
        "forecast fitted on its own history."
    )
    change = {"kind": "change", "against": "year_ago", "direction": "down", "percent": 20}
    assert alerts.describe(kpi(condition=change)) == (
        "Revenue per month: alert when it falls by 20% or more against the same period a "
        "year earlier."
    )
    score = {"measure": {"kind": "score", "aggregate": "value_at_risk"}, "condition": BELOW_200}
    assert alerts.describe(score) == "Value at risk at each scoring run: alert when below $200.00."


# --- saved rules ----------------------------------------------------------------------------


def test_save_version_load_list_delete_round_trip(store):
    for name, role in (("ana", "analyst"), ("bob", "manager"), ("ada", "admin")):
        auth.add_user(store, name, role, "a long enough password")
    first = alerts.save_alert(store, "Revenue drop", kpi(condition=BELOW_200), owner="ana")
    assert (first.alert_id, first.version, first.owner) == (1, 1, "ana")
    other = alerts.save_alert(store, "orders", kpi("orders", "week"), owner="bob")
    again = alerts.save_alert(
        store, "revenue DROP", kpi(grain="week", condition=BELOW_200), owner="ana", description="w"
    )
    assert (again.alert_id, again.version) == (1, 2)
    loaded = alerts.load_alert(store, "Revenue drop")
    assert loaded.version == 2 and loaded.definition["measure"]["grain"] == "week"
    assert loaded.description == "w"
    assert alerts.load_alert(store, "Revenue drop", version=1).definition["measure"]["grain"] == (
        "month"
    )
    listed = alerts.list_alerts(store)
    assert listed["name"].tolist() == ["orders", "revenue DROP"]  # a version may rename
    assert listed["version"].tolist() == [1, 2]
    assert listed["rule"].iloc[1] == "Revenue per week: alert when below $200.00."
    assert alerts.delete_alert(store, "orders", by="ada") == other.alert_id
    assert alerts.list_alerts(store)["name"].tolist() == ["revenue DROP"]
    with pytest.raises(AlertError, match="No saved alert 'orders'. Saved alerts: revenue DROP"):
        alerts.load_alert(store, "orders")
    kept = store.read_df("select deleted_by from alert_rules where alert_id = 2")
    assert kept["deleted_by"].tolist() == ["ada"]  # soft: the version stays for the record
    assert alerts.save_alert(store, "orders", kpi("orders"), owner="bob").alert_id == 3
    with pytest.raises(AlertError, match="name"):
        alerts.save_alert(store, " ", kpi(), owner="bob")


def test_only_the_owner_or_an_admin_changes_a_rule(store):
    """Saving under another user's rule name must not take the rule over: their schedules
    evaluate it. Roles that may not create rules are refused, in the core."""
    for name, role in (
        ("ana", "analyst"),
        ("bob", "manager"),
        ("ada", "admin"),
        ("mia", "marketer"),
    ):
        auth.add_user(store, name, role, "a long enough password")
    alerts.save_alert(store, "Revenue drop", kpi(condition=BELOW_200), owner="ana")
    with pytest.raises(AlertError, match="belongs to ana; only its owner or an admin"):
        alerts.save_alert(store, "revenue drop", kpi("orders"), owner="bob")
    with pytest.raises(AlertError, match="marketer role may not create or change alert rules"):
        alerts.save_alert(store, "Mine", kpi(), owner="mia")
    with pytest.raises(AlertError, match="no user 'ghost'"):
        alerts.save_alert(store, "Mine", kpi(), owner="ghost")
    edited = alerts.save_alert(store, "Revenue drop", kpi(grain="week"), owner="ada")
    assert (edited.version, edited.owner) == (2, "ana")  # an admin's edit keeps the owner
    with pytest.raises(AlertError, match="belongs to ana"):
        alerts.delete_alert(store, "Revenue drop", by="bob")
    assert alerts.list_alerts(store)["name"].tolist() == ["Revenue drop"]
    alerts.delete_alert(store, "Revenue drop", by="ana")
    assert alerts.list_alerts(store).empty


# --- threshold and change on the tiny exact store -------------------------------------------
# Completed orders by month: Dec 2023 $60 (1), Jan 2024 $300 (2), Feb 2024 $170 (4; c4's
# refund excluded), Mar 2024 $999 (1, on 1 March: an incomplete month until 31 March).


@pytest.fixture
def tiny_store(store):
    return tiny.load(store)


def test_threshold_reads_the_last_complete_month(tiny_store):
    result = alerts.evaluate(tiny_store, kpi(condition=BELOW_200), at=date(2024, 3, 1))
    assert result.fired and result.value == 170.0 and result.period == "February 2024"
    assert result.message == (
        "Revenue in February 2024: $170.00, below the alert threshold of $200.00."
    )
    assert result.detail["period_start"] == "2024-02-01"
    quiet = alerts.evaluate(tiny_store, kpi(condition=BELOW_200), at=date(2024, 1, 31))
    assert not quiet.fired and quiet.value == 300.0
    assert quiet.message.endswith("not below the alert threshold of $200.00; all normal.")
    us = alerts.evaluate(
        tiny_store, kpi(condition=BELOW_200, countries=["us"]), at=date(2024, 3, 1)
    )
    assert us.value == 90.0  # c1 $50 + $30, c2 $10
    assert alerts.evaluate(tiny_store, kpi("orders", condition=BELOW_200)).value == 4.0  # default


def test_change_against_the_previous_period_and_a_year_ago(tiny_store):
    down = {"kind": "change", "against": "previous", "direction": "down", "percent": 40}
    result = alerts.evaluate(tiny_store, kpi(condition=down), at=date(2024, 2, 29))
    assert result.fired and (result.value, result.reference) == (170.0, 300.0)
    assert result.lower == pytest.approx(180.0) and result.upper is None
    assert result.message == (
        "Revenue in February 2024: $170.00, down 43.3% from $300.00 in January 2024 (the "
        "alert fires at a 40% change down)."
    )
    assert not alerts.evaluate(
        tiny_store, kpi(condition={**down, "percent": 50}), at=date(2024, 2, 29)
    ).fired
    up = {**down, "direction": "up", "percent": 100}
    jan = alerts.evaluate(tiny_store, kpi(condition=up), at=date(2024, 1, 31))
    assert jan.fired and jan.reference == 60.0  # $300 against December's $60: +400%
    year = {**down, "against": "year_ago"}
    none = alerts.evaluate(tiny_store, kpi(condition=year), at=date(2024, 2, 29))
    assert not none.fired and none.reference is None
    assert "no value for the same period a year earlier" in none.message


def test_weekly_and_daily_buckets_end_on_or_before_the_day(tiny_store):
    above = {"kind": "threshold", "op": "above", "value": 1}
    # the week of Mon 26 Feb 2024 ends Sun 3 Mar: on 1 March the last complete week is 19-25 Feb
    week = alerts.evaluate(tiny_store, kpi("orders", "week", above), at=date(2024, 3, 1))
    assert (week.period, week.value, week.fired) == ("the week of 19 Feb 2024", 1.0, False)
    day = alerts.evaluate(tiny_store, kpi("revenue", "day", above), at=date(2024, 2, 29))
    assert (day.period, day.value, day.fired) == ("29 Feb 2024", 10.0, True)
    frame = alerts.series(tiny_store, kpi("orders", "week"), at=date(2024, 3, 1))
    assert frame["period_start"].iloc[0] == pd.Timestamp("2023-12-18")
    assert frame["value"].sum() == 6.0  # every completed order up to 25 Feb
    assert (frame["value"] == 0).sum() == len(frame) - 5  # empty weeks are zeros


def test_backtest_of_a_change_rule_lists_its_firings(tiny_store):
    down = {"kind": "change", "against": "previous", "direction": "down", "percent": 40}
    result = alerts.backtest(tiny_store, kpi(condition=down), end=date(2024, 2, 29), months=3)
    assert result.frame["period_start"].dt.date.tolist() == [
        date(2023, 12, 1),
        date(2024, 1, 1),
        date(2024, 2, 1),
    ]
    assert result.frame["fired"].tolist() == [False, False, True]
    assert result.frame["expected"].tolist()[1:] == [60.0, 300.0]
    assert result.firings == [date(2024, 2, 1)]
    assert result.summary == (
        "Would have fired once in the last 3 months (2 months checked): February 2024."
    )  # December 2023 has no month before it in the store: it cannot be judged


def test_kpi_series_match_compute_kpis(demo_store):
    """The grouped series and the overview's figures come from the same formulas."""
    week = Filters(date(2026, 3, 2), date(2026, 3, 8), ("US", "DE"), ("web",))
    kpis = compute_kpis(demo_store, week)
    for name in METRICS:
        rule = kpi(name, "week", countries=["US", "DE"], channels=["web"])
        value = alerts.series(demo_store, rule, at=week.end)["value"].iloc[-1]
        assert value == pytest.approx(kpis[name].value), name


# --- segment sizes and score runs read their history tables ---------------------------------


def test_segment_size_reads_segment_sizes(store):
    seg_tiny.load(store)
    saved = segments.save_segment(
        store,
        "US buyers",
        {"match": "all", "rules": [{"field": "country", "op": "eq", "value": "US"}]},
        owner="ana",
    )
    with store.begin() as conn:
        conn.execute(segment_sizes.delete())
        for day, hour, size in ((1, 8, 100), (2, 8, 90), (3, 8, 95), (3, 17, 60)):  # the last
            conn.execute(  # of a day counts
                segment_sizes.insert().values(
                    segment_id=saved.segment_id,
                    version=1,
                    measured_at=datetime(2024, 3, day, hour),
                    customers=size,
                )
            )
    rule = {
        "measure": {"kind": "segment_size", "segment": "us buyers"},
        "condition": {"kind": "change", "against": "previous", "direction": "down", "percent": 30},
    }
    result = alerts.evaluate(store, rule)
    assert result.fired and (result.value, result.reference) == (60.0, 90.0)
    assert result.message.startswith("Size of segment us buyers on 03 Mar 2024 (latest")
    earlier = alerts.evaluate(store, rule, at=date(2024, 3, 2))
    assert (earlier.value, earlier.reference, earlier.fired) == (90.0, 100.0, False)
    missing = {**rule, "measure": {"kind": "segment_size", "segment": "nobody"}}
    with pytest.raises(AlertError, match="measure.segment: No saved segment called 'nobody'"):
        alerts.evaluate(store, missing)


def test_score_aggregates_read_score_runs_and_scoring_appends_them(store):
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "clv": [100.0, 50.0, 10.0],
            "p_alive": [0.9, 0.5, 0.1],
            "churn_risk": [0.1, 0.5, None],
        }
    )
    assert scoring.run_aggregates(frame) == {
        "customers": 3,
        "mean_churn_risk": pytest.approx(0.3),
        "value_at_risk": pytest.approx(35.0),  # 0.1 x 100 + 0.5 x 50; no risk for the third
        "mean_clv": pytest.approx(160 / 3),
        "total_clv": pytest.approx(160.0),
        "mean_p_alive": pytest.approx(0.5),
    }
    for month in range(1, 13):  # a monthly run, value at risk growing slowly, then a jump
        run = frame.assign(clv=frame["clv"] * (1 + month / 100) * (3 if month == 12 else 1))
        scoring.record_run(store, run, datetime(2025, month, 3, 6), f"v{month}")
    runs = store.read_df(score_runs.select().order_by(score_runs.c.scored_at))
    assert len(runs) == 12 and runs["model_version"].iloc[-1] == "v12"
    above = {"kind": "threshold", "op": "above", "value": 100}
    rule = {"measure": {"kind": "score", "aggregate": "value_at_risk"}, "condition": above}
    result = alerts.evaluate(store, rule)
    assert result.fired and result.value == pytest.approx(35.0 * 1.12 * 3)
    assert result.period == "03 Dec 2025 (latest measurement)"
    anomaly = {**rule, "condition": {"kind": "anomaly", "level": 0.99}}
    jump = alerts.evaluate(store, anomaly)
    assert jump.fired and jump.upper < jump.value
    assert jump.detail["model"].startswith("ARIMA(0, 1, 1) without seasonality")
    assert jump.detail["history_points"] == 11
    assert not alerts.evaluate(store, anomaly, at=date(2025, 11, 30)).fired


# --- the anomaly backtest on the demo -------------------------------------------------------


def test_anomaly_backtest_finds_the_planted_drop_and_not_the_seasonal_peaks(demo_store):
    rule = kpi("orders", "week", {"kind": "anomaly", "level": 0.95})
    result = alerts.backtest(demo_store, rule)
    frame = result.frame.set_index("period_start")
    drop = pd.Timestamp(demo.PLANTED_DROP[0])
    assert frame.loc[drop, "fired"] and frame.loc[drop, "value"] < frame.loc[drop, "lower"]
    assert frame.loc[drop, "value"] < 0.6 * frame.loc[drop, "expected"]
    peaks = frame[frame.index.month.isin([11, 12])]
    assert len(peaks) >= 8 and not peaks["fired"].any()
    assert peaks["value"].max() > 1.5 * frame["value"].median()  # real peaks, read as normal
    assert demo.PLANTED_DROP[0] in result.firings and len(result.firings) <= 2
    assert len(frame) == 51 and frame["expected"].notna().all()
    assert result.summary.startswith("Would have fired once in the last 12 months (51 weeks")
    assert "the week of 13 Apr 2026" in result.summary
    assert result.detail["models"] == [
        "SARIMAX(1, 1, 1)x(0,1,0,52) (seasonal period 52 weeks) on log(1 + value)"
    ]
    at_drop = alerts.evaluate(demo_store, rule, at=demo.PLANTED_DROP[1])
    assert at_drop.fired and "below the expected range" in at_drop.message
    assert at_drop.period == "the week of 13 Apr 2026"
    after = alerts.evaluate(demo_store, rule, at=demo.PLANTED_DROP[1] + timedelta(days=7))
    assert not after.fired, after.message  # the outage is left out of the fit, not learned
    assert after.detail["outliers_left_out"] >= 1


# --- CLI ------------------------------------------------------------------------------------


def test_cli_adds_lists_tests_and_backtests(tiny_store, capsys):
    auth.add_user(tiny_store, "ana", "analyst", "a long enough password")
    assert main(["alerts", "add", "rev", "--kpi", "revenue", "--grain", "month", "--below",
                 "200", "--owner", "ana"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "Would have fired" in out and "Saved alert 'rev' version 1" in out
    assert main(["alerts", "list"]) == 0
    assert "Revenue per month: alert when below $200.00." in capsys.readouterr().out
    assert main(["alerts", "test", "rev", "--at", "2024-03-01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FIRES: Revenue in February 2024: $170.00") and "--at replays" in out
    assert main(["alerts", "backtest", "rev", "--end", "2024-02-29", "--months", "2"]) == 0
    assert "Would have fired once in the last 2 months" in capsys.readouterr().out
    rule = '{"measure": {"kind": "kpi"}}'
    assert main(["alerts", "add", "bad", "--rule", rule, "--owner", "ana"]) == 2
    assert "Add a condition" in capsys.readouterr().err


# --- daily anomaly rules: the year's peaks are normal -----------------------------------------

YEARLY_WORDS = (
    "SARIMAX(1, 1, 1) with yearly regressors (last year's value on the same weekday, "
    "4 Fourier pairs of the year, 2 of the week) on log(1 + value)"
)


def test_daily_anomaly_backtest_reads_black_friday_as_normal_and_finds_the_drop(demo_store):
    """Daily revenue: last year's value on the same weekday and Fourier terms of the year make
    Black Friday and the holiday season normal, and the planted outage still fires. A daily
    rule checks 365 days a year, so it is tested at 99% (at 95% a perfect model would still
    raise about 18 false alarms a year)."""
    rule = kpi("revenue", "day", {"kind": "anomaly", "level": 0.99})
    result = alerts.backtest(demo_store, rule)
    frame = result.frame.set_index("period_start")
    assert len(frame) == 365 and frame["expected"].notna().all()
    assert result.detail["models"] == [YEARLY_WORDS]
    # Black Friday to Cyber Monday 2025 (Thanksgiving was 27 Nov): real peaks, read as normal.
    black_friday = frame.loc["2025-11-28":"2025-12-01"]
    assert (black_friday["value"] > 2 * frame["value"].median()).all()
    peaks = frame[frame.index.month.isin([11, 12])]
    assert len(peaks) == 61 and not peaks["fired"].any(), peaks[peaks["fired"]]
    # The outage week: every day below its forecast, the worst days outside the interval.
    drop = frame.loc[pd.Timestamp(demo.PLANTED_DROP[0]) : pd.Timestamp(demo.PLANTED_DROP[1])]
    assert len(drop) == 7 and (drop["value"] < drop["expected"]).all()
    assert drop["value"].sum() < 0.5 * drop["expected"].sum()
    fired = drop[drop["fired"]]
    assert demo.PLANTED_DROP[0] in result.firings and len(fired) >= 2
    assert (fired["value"] < fired["lower"]).all()
    assert len(result.firings) <= 4, result.summary  # the drop days and at most one other
    # Evaluated on the day (a one-step forecast), Black Friday is normal and the outage is not.
    friday = alerts.evaluate(demo_store, rule, at=date(2025, 11, 28))
    assert not friday.fired and friday.detail["model"] == YEARLY_WORDS, friday.message
    monday = alerts.evaluate(demo_store, rule, at=demo.PLANTED_DROP[0])
    assert monday.fired and "below the expected range" in monday.message


def test_daily_anomaly_without_a_year_of_history_uses_the_week_only(demo_store):
    """Under YEARLY_MIN_DAYS of history the daily forecast falls back to the weekly period."""
    rule = kpi("revenue", "day", {"kind": "anomaly", "level": 0.99})
    early = alerts.evaluate(demo_store, rule, at=date(2024, 3, 1))
    assert early.detail["history_points"] < alerts.YEARLY_MIN_DAYS
    assert early.detail["model"] == (
        "SARIMAX(1, 1, 1)x(0,1,0,7) (seasonal period 7 days; no yearly terms: under "
        f"{alerts.YEARLY_MIN_DAYS} days of history) on log(1 + value)"
    )

"""The filter matrix: each view's `report` under a country, a channel and a short period
equals an independent pandas computation over the same tables."""

from __future__ import annotations

import html
import io
import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_core import delivery, metrics, reports
from crm_core.config import Settings
from crm_core.errors import CRMError
from crm_core.filters import Filters, default_filters
from crm_core.store import Store
from tests.core.receivers import smtp_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(demo_store_path: Path):
    store = Store(f"duckdb:///{demo_store_path}")
    frames = {
        name: store.read_df(f"SELECT * FROM {name}")
        for name in ("customers", "orders", "events", "survey_responses")
    }
    yield store, frames
    store.dispose()


def scenarios(store: Store) -> dict[str, Filters]:
    year = default_filters(store)
    short = replace(year, start=year.end - timedelta(days=13))
    return {
        "country": replace(year, countries=("DE",)),
        "channel": replace(year, channels=("app",)),
        "short period": replace(short, countries=("US", "GB")),
    }


def in_scope(frames: dict[str, pd.DataFrame], filters: Filters) -> set[int]:
    """Customers in the filter's scope: its countries, and who ever ordered via its channels."""
    people = frames["customers"]
    ids = set(people["customer_id"])
    if filters.countries:
        ids &= set(people.loc[people["country"].isin(filters.countries), "customer_id"])
    if filters.channels:
        o = frames["orders"]
        ids &= set(o.loc[o["channel"].isin(filters.channels), "customer_id"])
    return ids


def completed_in_scope(frames: dict[str, pd.DataFrame], filters: Filters) -> pd.DataFrame:
    """Completed orders of the filter's countries and channels (order-level channel)."""
    o = frames["orders"]
    o = o[o["status"] == "completed"]
    if filters.channels:
        o = o[o["channel"].isin(filters.channels)]
    if filters.countries:
        c = frames["customers"]
        o = o[o["customer_id"].isin(c.loc[c["country"].isin(filters.countries), "customer_id"])]
    return o


def between(frame: pd.DataFrame, column: str, filters: Filters) -> pd.DataFrame:
    start, end = pd.Timestamp(filters.start), pd.Timestamp(filters.end + timedelta(days=1))
    return frame[(frame[column] >= start) & (frame[column] < end)]


@pytest.mark.parametrize("case", ["country", "channel", "short period"])
def test_overview_matches_pandas(demo, case):
    store, frames = demo
    filters = scenarios(store)[case]
    got = reports.report(store, "overview", filters)
    json.dumps(got, allow_nan=False)
    orders = completed_in_scope(frames, filters)
    now = between(orders, "ordered_at", filters)
    first = orders.groupby("customer_id")["ordered_at"].min()
    new = between(first.rename("ordered_at").reset_index(), "ordered_at", filters)
    kpis = got["kpis"]
    assert kpis["revenue"]["value"] == pytest.approx(float(now["amount"].sum()))
    assert kpis["orders"]["value"] == len(now)
    assert kpis["active_customers"]["value"] == now["customer_id"].nunique()
    assert kpis["new_customers"]["value"] == len(new)
    assert sum(row["customers"] for row in got["cohorts"]) == len(new)
    trend = pd.DataFrame(got["trend"])
    assert trend["revenue"].sum() == pytest.approx(float(now["amount"].sum()))
    assert got["filters"]["countries"] == list(filters.countries)


@pytest.mark.parametrize("case", ["country", "channel", "short period"])
def test_segmentation_matches_pandas(demo, case):
    store, frames = demo
    filters = scenarios(store)[case]
    got = reports.report(store, "segmentation", filters)
    json.dumps(got, allow_nan=False)
    o = frames["orders"]
    bought = o[(o["status"] == "completed") & (o["ordered_at"] < pd.Timestamp(filters.end_ts))]
    bought = bought[bought["customer_id"].isin(in_scope(frames, filters))]
    assert got["customers"] == bought["customer_id"].nunique()
    segments = pd.DataFrame(got["segments"])
    assert segments["customers"].sum() == got["customers"]
    assert segments["revenue"].sum() == pytest.approx(float(bought["amount"].sum()))
    grid_total = sum(sum(row.values()) for row in got["rf_grid"].values())
    assert grid_total == got["customers"]


@pytest.mark.parametrize("case", ["country", "channel", "short period"])
def test_surveys_match_pandas(demo, case):
    store, frames = demo
    filters = scenarios(store)[case]
    got = reports.report(store, "surveys", filters)
    json.dumps(got, allow_nan=False, default=str)
    answers = between(frames["survey_responses"], "answered_at", filters)
    answers = answers[answers["customer_id"].isin(in_scope(frames, filters))]
    nps = answers[answers["survey"] == "nps"]["score"]
    csat = answers[answers["survey"] == "csat"]["score"]
    assert got["scores"]["nps"]["responses"] == len(nps)
    if len(nps):
        expected = 100 * ((nps >= 9).mean() - (nps <= 6).mean())
        assert got["scores"]["nps"]["value"] == pytest.approx(expected)
    assert got["scores"]["csat"]["responses"] == len(csat)
    if len(csat):
        assert got["scores"]["csat"]["value"] == pytest.approx((csat >= 4).mean())


@pytest.mark.parametrize("case", ["country", "channel", "short period"])
def test_funnels_match_pandas(demo, case):
    store, frames = demo
    filters = scenarios(store)[case]
    got = reports.report(store, "funnels", filters)
    visits = between(frames["events"], "occurred_at", filters)
    visits = visits[
        (visits["event_type"] == "visit") & visits["customer_id"].isin(in_scope(frames, filters))
    ]
    steps = pd.DataFrame(got["steps"])
    assert steps["customers"].iloc[0] == visits["customer_id"].nunique()
    assert (np.diff(steps["customers"]) <= 0).all()


@pytest.mark.parametrize("case", ["country", "channel", "short period"])
def test_campaign_slices_scope_spend_and_add_up(demo, case):
    store, frames = demo
    filters = scenarios(store)[case]
    got = reports.report(store, "campaigns", filters)
    json.dumps(got, allow_nan=False, default=str)
    unfiltered = reports.report(store, "campaigns", replace(filters, countries=(), channels=()))
    total = unfiltered["totals"]["spend"]
    assert got["totals"]["spend"] < total
    countries = sorted(frames["customers"]["country"].dropna().unique())
    sliced = sum(
        reports.report(store, "campaigns", replace(filters, countries=(c,), channels=()))["totals"][
            "spend"
        ]
        for c in countries
    )
    assert sliced == pytest.approx(total)


@pytest.mark.parametrize("view", ["clv", "churn"])
def test_models_use_the_filters_customers(demo, view):
    store, frames = demo
    filters = scenarios(store)["country"]
    everyone = reports.report(store, view, replace(filters, countries=()))
    got = reports.report(store, view, filters)
    orders = completed_in_scope(frames, filters)
    orders = orders[orders["ordered_at"] < pd.Timestamp(filters.end_ts)]
    if view == "clv":
        assert got["customers"] == orders["customer_id"].nunique()
        assert got["customers"] < everyone["customers"]
    else:
        year_back = pd.Timestamp(filters.end_ts) - pd.Timedelta(days=365)
        erased = frames["customers"].loc[frames["customers"]["erased_at"].notna(), "customer_id"]
        active_orders = orders[(orders["ordered_at"] >= year_back)]
        active = active_orders.loc[~active_orders["customer_id"].isin(erased), "customer_id"]
        active = active.nunique()  # erased customers are not scored
        assert got["scored_customers"] == active
        assert got["scored_customers"] < everyone["scored_customers"]


def test_unknown_view_and_reversed_period_are_refused(demo):
    store, _ = demo
    with pytest.raises(CRMError, match="Unknown view 'kpi'"):
        reports.report(store, "kpi", default_filters(store))
    with pytest.raises(CRMError, match="before --start"):
        reports.report(store, "overview", Filters(date(2024, 2, 1), date(2024, 1, 1)))


def test_cli_report_matches_countries_in_any_case_and_refuses_unknown_ones(
    demo, capsys, monkeypatch
):
    from crm_core.cli import main

    store, _ = demo
    monkeypatch.setenv("CRM_DATABASE_URL", str(store.engine.url))
    assert main(["report", "overview", "--country", "de", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["filters"]["countries"] == ["DE"]
    assert printed["kpis"]["revenue"]["value"] > 0
    assert main(["report", "overview", "--country", "GBR"]) == 2
    assert "--country 'GBR' is not in the store. Did you mean GB?" in capsys.readouterr().err
    assert main(["kpis", "--channel", "bogus"]) == 2
    assert "Allowed: app, store, web." in capsys.readouterr().err


# --- the KPI overview as an e-mail (scheduled reports) ------------------------------------


def _chromium_available() -> bool:
    return Path(Settings.from_env().chromium).is_file()


def test_overview_report_email_reaches_a_real_smtp_server(demo, store):
    """Drawn from the demo store, sent through a real SMTP server on loopback (the delivery
    row goes to an empty store of its own)."""
    data, _ = demo
    filters = default_filters(data)
    message = reports.overview_report(data, filters, title="Daily KPIs")
    with smtp_server() as inbox:
        settings = Settings(smtp_url=f"smtp://127.0.0.1:{inbox.port}", mail_from="crm@example.com")
        [result] = delivery.deliver(
            store,
            message,
            [{"kind": "email", "to": ["ops@example.com"]}],
            settings=settings,
            sleep=lambda seconds: None,
        )
    assert result.ok, result.error
    [mail] = inbox.messages
    assert mail["Subject"] == f"Daily KPIs: {filters.start:%d %b %Y} – {filters.end:%d %b %Y}"
    body = mail.get_body(("html",)).get_content()
    kpis = metrics.compute_kpis(data, filters)
    compared = filters.comparison()
    assert f"{compared.start:%d %b %Y} – {compared.end:%d %b %Y}" in body
    for kpi in kpis.values():
        assert kpi.metric.label in body
        assert metrics.format_value(kpi.metric, kpi.value) in body
        if metrics.format_change(kpi):
            assert metrics.format_change(kpi) in body
    # e-mail friendly: inline styles only, nothing fetched, nothing run
    lowered = body.lower()
    for banned in ("<script", "<link", "<style", "http://", "https://", "<iframe"):
        assert banned not in lowered
    text = mail.get_body(("plain",)).get_content()
    assert "Revenue: " + metrics.format_value(kpis["revenue"].metric, kpis["revenue"].value) in text
    if _chromium_available():
        [image] = [p for p in mail.walk() if p.get_content_type() == "image/png"]
        png = image.get_content()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
        assert image["Content-ID"] == "<revenue-trend.png>"
        assert 'src="cid:revenue-trend.png"' in body
        assert "is not included" not in body
    else:
        assert "is not included: no Chromium" in body
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_filename() == f"kpis_{filters.start}_{filters.end}.csv"
    table = pd.read_csv(io.BytesIO(attachment.get_content().encode()))
    assert list(table["kpi"]) == list(metrics.METRICS)
    for row in table.itertuples():
        expected = kpis[row.kpi].value
        assert (pd.isna(row.value) and expected is None) or row.value == pytest.approx(expected)
        assert row.compared_start == compared.start.isoformat()


def test_overview_report_without_chromium_is_sent_without_the_chart_and_says_so(demo, monkeypatch):
    data, _ = demo
    monkeypatch.setenv("CRM_CHROMIUM", "/nowhere/chromium")
    message = reports.overview_report(data, default_filters(data))
    assert message.images == []
    assert 'The chart "Revenue and active customers by month" is not included' in message.html
    assert "no Chromium at '/nowhere/chromium'" in html.unescape(message.html)
    assert "The trend chart is not included" in message.text
    assert [a.name for a in message.attachments] == [
        f"kpis_{default_filters(data).start}_{default_filters(data).end}.csv"
    ]
    assert message.payload["kpis"]["revenue"]["value"] > 0 and message.kind == "report"


def test_overview_report_of_a_period_without_orders_draws_no_chart(demo, monkeypatch):
    data, _ = demo
    monkeypatch.setenv("CRM_CHROMIUM", "/nowhere/chromium")  # never reached: nothing to draw
    message = reports.overview_report(data, Filters(date(1990, 1, 1), date(1990, 1, 31)))
    assert message.images == []
    assert "No completed orders in this period and filter" in message.html
    assert "n/a" in message.html and "is not included" not in message.html


# --- a Home page (pinned KPIs and charts) as an e-mail ------------------------------------


@pytest.fixture
def home_store(demo_store_path: Path, tmp_path: Path):
    """A copy of the demo store (pins are written) with a manager who pinned a KPI under a
    country filter, the revenue trend, NPS by month and campaign ROI."""
    import shutil

    from crm_core import auth, home

    path = tmp_path / "crm.duckdb"
    shutil.copy(demo_store_path, path)
    store = Store(f"duckdb:///{path}")
    auth.add_user(store, "max", "manager", "a long enough password")
    user = auth.get_user(store, "max")
    germany = replace(default_filters(store), countries=("DE",), preset="last_90_days")
    home.add_pin(store, user, "overview", "revenue", filters=germany)
    home.add_pin(store, user, "overview", "active_customers")
    home.add_pin(store, user, "overview", "revenue_trend")
    home.add_pin(store, user, "surveys", "nps_trend")
    home.add_pin(store, user, "campaigns", "campaign_roi", {"model": "linear"})
    yield store, user, germany
    store.dispose()


def test_home_report_sends_every_pin_with_its_own_filters(home_store):
    from crm_core import home, pinned
    from crm_core.analytics import campaigns

    store, user, germany = home_store
    message = reports.home_report(store, user)
    pins = home.pins_for(store, user)
    latest = default_filters(store)
    # KPIs: the German pin is computed under its own filters (the last 90 days up to the last
    # order) and says so under its name; the other KPI uses the default period.
    german = home.current(germany, latest.end)
    revenue = metrics.compute_kpis(store, german)["revenue"]
    assert german.countries == ("DE",) and (german.end - german.start).days == 89
    assert metrics.format_value(revenue.metric, revenue.value) in message.html
    assert html.escape(home.filters_in_words(german)) in message.html
    active = metrics.compute_kpis(store, pinned.pin_filters(pins[1], latest))["active_customers"]
    assert metrics.format_value(active.metric, active.value) in message.html
    # Every chart pin has its heading, its image (or a line why not) and its numbers as CSV.
    charts = [p for p in pins if p.kind == "chart"]
    for pin in charts:
        assert f">{html.escape(pin.title)}</h2>" in message.html
    csvs = {a.name.split("-", 3)[-1]: a for a in message.attachments}
    assert set(csvs) == {
        "kpis.csv",
        "03-revenue-and-active-customers.csv",
        "04-nps-by-month.csv",
        "05-campaign-roi.csv",
    }
    kpi_table = pd.read_csv(io.BytesIO(csvs["kpis.csv"].data))
    assert list(kpi_table["kpi"]) == ["revenue", "active_customers"]
    assert kpi_table["value"].iloc[0] == pytest.approx(revenue.value)
    assert f",{active.value:.0f}," in csvs["kpis.csv"].data.decode()  # a count, not 2124.0
    assert list(kpi_table["countries"].fillna("")) == ["DE", ""]
    roi = pd.read_csv(io.BytesIO(csvs["05-campaign-roi.csv"].data))
    expected = campaigns.campaign_roi(store, pinned.pin_filters(charts[2], latest), "linear", 30)
    assert len(roi) == len(expected) > 0
    # the app's spreadsheet rules: labelled headers with units, money in cents, counts whole
    assert roi["Revenue ($)"].sum() == pytest.approx(expected["revenue"].sum(), abs=0.01 * len(roi))
    assert "Conversions" in roi.columns and "revenue" not in roi.columns
    if _chromium_available():
        assert len(message.images) == 3
        for image in message.images:
            assert image.data.startswith(b"\x89PNG") and f'src="cid:{image.name}"' in message.html
    # The webhook payload carries the same numbers.
    assert [p["title"] for p in message.payload["pins"]] == [p.title for p in pins]
    assert message.payload["pins"][0]["rows"][0]["value"] == pytest.approx(revenue.value)
    assert "Campaign ROI" in message.text and "Attached:" in message.text


def test_home_report_of_an_empty_home_says_what_to_do(home_store):
    from crm_core import auth

    store, _, _ = home_store
    auth.add_user(store, "nia", "analyst", "a long enough password")
    with pytest.raises(CRMError, match="nia has no pins"):
        reports.home_report(store, auth.get_user(store, "nia"))

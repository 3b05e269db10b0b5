"""AppTest: every table on every view reaches the browser with human labels and formats."""

from __future__ import annotations

import json
import re

import pandas as pd

from crm_core import display
from crm_ui.views import VIEWS
from tests.app.conftest import errors

SNAKE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")


def _tables(at) -> list[tuple[pd.DataFrame, dict]]:
    """(data, column config as the browser gets it) of every table on the page."""
    return [(d.value, json.loads(d.proto.columns or "{}")) for d in at.dataframe]


def _problems(view: str, frame: pd.DataFrame, config: dict) -> list[str]:
    found = []
    for name in frame.columns:
        spec = config.get(str(name))
        where = f"{view}: column {name!r}"
        if not spec or not spec.get("label"):
            found.append(f"{where} has no label")
            continue
        label = spec["label"]
        if SNAKE.match(label) or "_" in label:
            found.append(f"{where} is labelled {label!r}")
        kind = spec.get("type_config", {}).get("type")
        series = frame[name]
        if pd.api.types.is_float_dtype(series) and not spec["type_config"].get("format"):
            found.append(f"{where}: a float without a format")
        if pd.api.types.is_datetime64_any_dtype(series) and kind not in ("datetime", "date"):
            found.append(f"{where}: a timestamp shown as {kind}")
        if display.is_coded(str(name)) and not pd.api.types.is_numeric_dtype(series):
            codes = {v for v in series.dropna() if isinstance(v, str) and SNAKE.match(v)}
            if codes:
                found.append(f"{where} shows codes {sorted(codes)[:3]}")
    if config.get("_index", {}).get("hidden") is not True:
        found.append(f"{view}: the index is shown")
    return found


def test_every_table_on_every_view_has_human_labels_and_formats(signed_in):
    at = signed_in("admin")
    problems, seen = [], 0
    for view in VIEWS:
        at.switch_page(view.path).run()
        if view.key == "customer_360":
            at.text_input[0].input("5").run()
        assert not at.exception and not errors(at), view.key
        for frame, config in _tables(at):
            seen += 1
            problems += _problems(view.key, frame, config)
    assert seen >= 15, seen
    assert problems == []


def test_customer_ids_link_to_the_360_profile(signed_in):
    at = signed_in("analyst")
    at.switch_page("app_pages/churn.py").run()
    frame, config = _tables(at)[-1]
    spec = config["customer_id"]
    assert spec["type_config"]["type"] == "link"
    assert spec["label"] == "Customer ID"
    first = frame["customer_id"].iloc[0]
    assert re.fullmatch(r"customer_360\?customer_id=\d+", first)
    assert re.search(spec["type_config"]["display_text"], first).group(1).isdigit()


def test_the_clv_column_of_top_customers_comes_first(signed_in):
    at = signed_in("manager")
    at.switch_page("app_pages/clv.py").run()
    proto = at.dataframe[-1].proto
    assert list(proto.column_order)[:2] == ["customer_id", "clv"]
    config = json.loads(proto.columns)
    assert config["clv"]["label"] == "Predicted CLV"
    assert config["clv"]["type_config"]["format"] == "dollar"


def test_customer_profile_shows_labels_and_no_none(signed_in):
    at = signed_in("admin")
    at.switch_page("app_pages/customer_360.py").run()
    at.text_input[0].input("5").run()
    profile = at.dataframe[0].value
    assert "Signed up" in set(profile["field"])
    assert not profile["value"].isin(["None", "nan", "NaT"]).any()
    assert not profile["value"].str.contains("00:00:00").any()


def test_dual_axes_start_at_zero_with_the_same_ticks():
    from crm_core.figures import charts

    trend = pd.DataFrame(
        {
            "period": pd.date_range("2026-01-01", periods=6, freq="MS"),
            "revenue": [38_000.0, 41_000, 88_000, 51_000, 45_000, 60_000],
            "active_customers": [250.0, 270, 352, 300, 290, 310],
            "partial": [False] * 6,
            "grain": ["month"] * 6,
        }
    )
    layout = charts.revenue_active_trend(trend).layout
    left, right = layout.yaxis, layout.yaxis2
    assert left.range[0] == right.range[0] == 0
    assert left.range[1] / left.dtick == right.range[1] / right.dtick  # one grid for both
    assert right.dtick == int(right.dtick) and left.tickprefix == "$"
    assert left.title.text == "Revenue ($)"


def test_one_point_size_history_has_a_date_range_and_whole_customers():
    from crm_core.figures import segment_charts

    history = pd.DataFrame(
        {
            "measured_at": [pd.Timestamp("2026-11-30 19:21:24.4055")],
            "customers": [1872],
            "version": [1],
            "as_of": [None],
        }
    )
    layout = segment_charts.size_history(history).layout
    start, end = (pd.Timestamp(v) for v in layout.xaxis.range)
    assert end - start >= pd.Timedelta(days=6)
    assert layout.xaxis.tickformat == "%d %b %Y"
    assert layout.yaxis.dtick == int(layout.yaxis.dtick) and layout.yaxis.tickformat == ",d"
    assert layout.yaxis.range[0] == 0 and layout.yaxis.range[1] > 1872


def test_cluster_colours_are_distinct_and_ratios_start_at_zero():
    from crm_core.figures import segment_charts

    profile = pd.DataFrame(
        {
            "cluster": [0, 1, 2],
            "customers": [10, 20, 30],
            "recency_days vs base": [0.5, 1.0, 3.0],
            "monetary vs base": [1.2, 0.1, 2.0],
        }
    )
    heatmap = segment_charts.cluster_profile(profile).data[0]
    assert heatmap.zmin == 0 and heatmap.zmax >= 3
    assert list(heatmap.x) == ["Days since last order", "Total spend"]
    projection = pd.DataFrame({"pc1": [0.0, 1, 2], "pc2": [0.0, 1, 2], "cluster": [0, 1, 2]})
    colours = {t.marker.color for t in segment_charts.pca_scatter(projection).data}
    assert len(colours) == 3


def test_shares_are_rounded_not_truncated():
    """Streamlit 1.67 truncates a number column to its step's decimals before formatting
    (0.84598 with step 0.001 read "84.5%"): shares reach the browser in percent with a
    printf format that rounds (sprintf-js uses toFixed, as Python's % does) and no step."""
    from crm_ui import tables

    frame = pd.DataFrame({"churn_probability": [0.84598, 0.5], "customers": [1358, 3046]})
    shown = tables.shown_frame(frame)
    spec = tables.column_config(frame)["churn_probability"]
    fmt = spec["type_config"]["format"]
    assert spec["type_config"].get("step") is None
    assert [fmt.replace(",", "") % v for v in shown["churn_probability"]] == ["84.6%", "50.0%"]
    assert fmt.replace(",", "") % (100 * 1358 / 3046) == "44.6%"
    assert list(shown["customers"]) == [1358, 3046]
    assert list(frame["churn_probability"]) == [0.84598, 0.5]  # the caller's frame is kept


def test_every_share_on_every_table_rounds(signed_in):
    at = signed_in("analyst")
    at.switch_page("app_pages/churn.py").run()
    shares = [
        spec
        for _frame, config in _tables(at)
        for spec in config.values()
        if isinstance(spec, dict)
        and str(spec.get("type_config", {}).get("format", "")).endswith(("%%", "percent"))
    ]
    assert len(shares) >= 2
    assert {s["type_config"]["format"] for s in shares} == {"%,.1f%%"}
    assert all(s["type_config"].get("step") is None for s in shares)


def test_funnel_hover_says_count_and_shares_and_steps_in_words():
    from crm_core.figures import insight_charts

    steps = pd.DataFrame(
        {"step": [1, 2], "event_type": ["product_view", "add_to_cart"], "customers": [3046, 1358]}
    )
    trace = insight_charts.funnel(steps).data[0]
    assert list(trace.y) == ["1. Product view", "2. Add to cart"]
    assert "of entrants" in trace.hovertemplate and "previous step" in trace.hovertemplate
    assert "%{x:,} customers" in trace.hovertemplate


def test_a_full_height_table_has_no_empty_row():
    from crm_ui import tables

    assert tables.full_height(11) == 35 * 12 + 3  # Streamlit 1.67 rows are 35 px (2.1875rem)

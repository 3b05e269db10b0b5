"""The benchmark harness end to end on a tiny store, its equality checks, the polars
baseline against the pandas one, and the import-memory child (no timings)."""

from __future__ import annotations

import shutil
import sys
import types
from datetime import timedelta

import duckdb
import pandas as pd
import pytest

from bench import checks, import_memory, polars_baseline, steps
from bench.baseline import COMPARED_360, PandasCRM
from bench.harness import Config, run
from bench.polars_baseline import PolarsCRM
from bench.report import STEPS


@pytest.mark.slow
def test_harness_runs_every_step_and_writes_results(tmp_path, monkeypatch):
    # The harness points the app at its own store; monkeypatch puts the environment back.
    monkeypatch.setenv("CRM_DATABASE_URL", "duckdb:///:memory:")
    # AppTest runs earlier in the session leave app.py as __main__, which the harness's
    # spawned children would run again on start; `python -m bench` has bench as __main__.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    out = tmp_path / "RESULTS.md"
    printed: list[str] = []
    report = run(
        Config(customers=2_000, repeats=1, workdir=tmp_path / "work", out=out, spark=False),
        echo=printed.append,
    )
    text = out.read_text()
    for step in STEPS.values():
        assert step.label.split("{")[0] in text
    assert "peak memory of the whole run" in text
    assert [r.step.key for r in report.results] == list(STEPS)
    assert all(r.seconds and all(s > 0 for s in r.seconds) for r in report.results)
    for key in ("import", "kpis", "refresh_360"):
        result = next(r for r in report.results if r.step.key == key)
        assert result.baseline and result.ratio is not None
        assert result.polars and result.polars_ratio is not None
    assert "| pandas (median) | ratio | polars (median) | ratio | Spark local[2] (median) |" in text
    assert "No Spark column: the run was started with --no-spark." in text  # test_spark_parity
    assert "peak memory of the import of " in text and "Polars import:" in text
    assert 0 < report.import_rss_before < report.import_peak_rss
    assert report.import_rows == report.counts["orders"] and report.polars_peak_rss > 0
    assert [c.split(":")[0] for c in report.checks] == ["Import", "KPI overview", "Customer 360"]
    customers = report.counts["customers"]  # 2,000 people and the planted duplicates
    assert 2_040 <= customers <= 2_090
    assert "## Checked before timing" in text and f"{customers:,} customers, sorted" in text
    assert "against the planted duplicates" in text
    assert text.count("peak memory of the child") == 2  # recommendations and duplicates
    assert 0.5 < report.churn_auc <= 1
    assert any(line.startswith("| overview page render") for line in printed)


def test_frame_mismatch_shows_the_first_differing_rows():
    ours = pd.DataFrame({"customer_id": [2, 1, 3], "frequency": [5, 1, 2], "seg": ["a", "b", None]})
    theirs = pd.DataFrame(
        {"customer_id": [1, 2, 3], "frequency": [1, 4, 2], "seg": ["b", "a", None]}
    )
    with pytest.raises(checks.MismatchError, match=r"frequency \(1 rows\)") as caught:
        checks.compare_frames(ours, theirs, "customer_id", ["frequency", "seg"], "360")
    assert "ours" in str(caught.value) and "baseline" in str(caught.value)
    assert checks.compare_frames(ours, ours.iloc[::-1], "customer_id", ["frequency", "seg"], "x")


def test_kpi_mismatch_names_the_figure():
    ours = {"revenue": (100.0, 90.0), "nps": (None, 12.5)}
    assert checks.compare_kpis(ours, {"revenue": (100.0 + 1e-8, 90.0), "nps": (None, 12.5)}) == 4
    with pytest.raises(checks.MismatchError, match=r"nps \(value\): ours None, baseline 3.0"):
        checks.compare_kpis(ours, {"revenue": (100.0, 90.0), "nps": (3.0, 12.5)})


@pytest.fixture(scope="module")
def demo_csvs(demo_store_path, tmp_path_factory):
    """The session's demo store written as the benchmark's CSV files."""
    csv_dir = tmp_path_factory.mktemp("bench_csv")
    steps.write_csvs(demo_store_path, csv_dir)
    return csv_dir


def test_polars_baseline_computes_the_pandas_figures(demo_csvs):
    pandas_crm, polars_crm = PandasCRM.from_csv(demo_csvs), PolarsCRM.from_csv(demo_csvs)
    end = polars_crm.as_of()
    assert end == pandas_crm.as_of()
    start = end - timedelta(days=364)
    assert checks.compare_kpis(polars_crm.kpis(start, end), pandas_crm.kpis(start, end)) == 20
    ours = polars_crm.customer_360().select("customer_id", *COMPARED_360).to_pandas()
    theirs = pandas_crm.customer_360()
    columns = list(COMPARED_360)
    rows = checks.compare_frames(ours, theirs, "customer_id", columns, "customer_360")
    assert rows == len(pandas_crm.frames["customers"])
    assert ours["rfm_segment"].notna().any() and ours["frequency"].eq(0).any()
    scanned = PolarsCRM.scan_csv(demo_csvs).customer_360().select("customer_id", *COMPARED_360)
    assert checks.compare_frames(scanned.to_pandas(), theirs, "customer_id", columns, "360")


def test_polars_import_fills_the_target_store_and_duckdb_checks_the_key(demo_csvs, tmp_path):
    template = tmp_path / "template.duckdb"
    steps.import_store(template, demo_csvs).dispose()
    target = tmp_path / "target.duckdb"
    shutil.copyfile(template, target)
    rows = polars_baseline.import_orders(demo_csvs / "orders.csv", target)
    frame = pd.read_csv(demo_csvs / "orders.csv")
    assert rows == len(frame)
    stored = import_memory.orders_stats(target)
    checks.compare_import(stored, (len(frame), float(frame["amount"].sum())))

    twice = tmp_path / "orders.csv"
    row = "1,1,2024-01-01 10:00:00,5.00,1,web,beauty,completed,\n"
    twice.write_text(
        "order_id,customer_id,ordered_at,amount,items,channel,category,status,campaign_id\n"
        + row * 2
    )
    shutil.copyfile(template, target)
    with pytest.raises(duckdb.ConstraintException):
        polars_baseline.import_orders(twice, target)
    assert import_memory.orders_stats(target) == (0, 0.0)


def test_import_memory_measures_an_import_alone_in_a_child(demo_csvs, tmp_path):
    target = tmp_path / "alone.duckdb"
    import_memory.prepare_target(target, demo_csvs)
    measured = import_memory.measure_import(target, demo_csvs / "orders.csv")
    rows = len(pd.read_csv(demo_csvs / "orders.csv"))
    assert measured["rows"] == rows == import_memory.orders_stats(target)[0]
    assert 0 < measured["rss_before_import"] <= measured["peak_rss"] < 4 * 1024**3
    assert measured["seconds"] > 0

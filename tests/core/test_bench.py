"""The benchmark harness end to end on a tiny store, and its equality checks (no timings)."""

from __future__ import annotations

import sys
import types

import pandas as pd
import pytest

from bench import checks
from bench.harness import Config, run
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
        Config(customers=2_000, repeats=1, workdir=tmp_path / "work", out=out),
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
    assert [c.split(":")[0] for c in report.checks] == ["Import", "KPI overview", "Customer 360"]
    assert "## Checked before timing" in text and "2,000 customers, sorted" in text
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

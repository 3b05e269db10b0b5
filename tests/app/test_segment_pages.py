"""AppTest: segmentation and segment builder for each role; build, preview, save and export."""

from __future__ import annotations

import shutil

import pytest

from crm_core.export import read_export_log
from crm_core.segments import list_segments
from crm_core.store import get_store
from tests.app.conftest import errors, sign_in, use_store


@pytest.fixture
def own_store(app_store_path, tmp_path, monkeypatch):
    path = tmp_path / "crm.duckdb"
    shutil.copy(app_store_path, path)
    use_store(monkeypatch, path)
    return path


@pytest.mark.parametrize("role", ["admin", "manager", "marketer", "analyst"])
@pytest.mark.parametrize("page", ["app_pages/segmentation.py", "app_pages/segment_builder.py"])
def test_segment_pages_per_role(own_store, role, page):
    at = sign_in(role)
    at.switch_page(page).run()
    assert not at.exception
    if role == "manager":
        assert any("Not allowed" in e for e in errors(at))
        return
    assert not errors(at)
    if page.endswith("segmentation.py"):
        assert len(at.get("plotly_chart")) == 3  # treemap, R x F grid, movement
        at.toggle(key="run_clustering").set_value(True).run()
        assert not at.exception and len(at.get("plotly_chart")) == 6  # + elbow, profile, PCA
        if role != "analyst":
            return
        next(b for b in at.button if b.label.startswith("Save clusters")).click().run()
        assert any("Saved the cluster of" in s.value for s in at.success), errors(at)
    else:
        assert any("Add a rule" in i.value or "no rules" in i.value for i in at.info)


def test_marketer_builds_previews_saves_and_exports(own_store):
    at = sign_in("marketer")
    at.switch_page("app_pages/segment_builder.py").run()
    next(b for b in at.button if b.label == "Add rule").click().run()
    next(b for b in at.button if b.label == "Add rule").click().run()
    at.selectbox(key="r_1_field").select("country").run()
    at.selectbox(key="r_1_op").select("eq").run()
    at.text_input(key="r_1_value").input("US").run()
    at.selectbox(key="r_2_field").select("frequency").run()
    at.selectbox(key="r_2_op").select("gte").run()
    at.text_input(key="r_2_value").input("3").run()
    assert not at.exception and not errors(at)
    customers = next(m for m in at.metric if m.label == "Customers").value
    assert customers != "0"
    assert any("frequency >= 3" in c.value for c in at.code)
    next(t for t in at.text_input if t.label == "Name").input("US repeat buyers")
    next(b for b in at.button if b.label == "Save segment").click().run()
    assert not at.exception
    assert any("Saved US repeat buyers version 1" in s.value for s in at.success), errors(at)
    saved = list_segments(get_store())
    assert saved["name"].tolist() == ["US repeat buyers"]
    assert int(saved.loc[0, "customers"]) == int(customers.replace(",", ""))
    next(s for s in at.selectbox if s.label == "Channel").select("email")
    next(b for b in at.button if b.label == "Export").click().run()
    assert not at.exception
    assert any("Exported" in s.value for s in at.success), errors(at)
    log = read_export_log(get_store())
    assert (
        log.loc[0, "segment_name"] == "US repeat buyers" and log.loc[0, "exported_by"] == "marketer"
    )


def test_bad_value_shows_the_rule_error(own_store):
    at = sign_in("analyst")
    at.switch_page("app_pages/segment_builder.py").run()
    next(b for b in at.button if b.label == "Add rule").click().run()
    at.selectbox(key="r_1_field").select("clv").run()
    at.selectbox(key="r_1_op").select("gt").run()
    at.text_input(key="r_1_value").input("abc").run()
    assert not at.exception
    assert any("rule 1 (clv gt 'abc'): 'abc' is not a number" in e for e in errors(at))

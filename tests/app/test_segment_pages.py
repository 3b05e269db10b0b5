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
    at.selectbox(key="r_1_value").select("US").run()  # few values: offered as choices
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


def _score_everyone(path) -> None:
    """Churn risk 0.00-0.99 by customer id (as scoring would write it), then the 360 table."""
    import pandas as pd

    from crm_core import features
    from crm_core.store import Store

    store = Store(f"duckdb:///{path}")
    ids = store.read_df("SELECT customer_id FROM customers")["customer_id"]
    scores = pd.DataFrame(
        {"customer_id": ids, "churn_risk": (ids % 100) / 100, "p_alive": 1 - (ids % 100) / 100}
    )
    with store.begin() as conn:
        store.insert_df(conn, "customer_scores", scores)
    features.refresh(store)
    store.dispose()


def _builder(role: str):
    at = sign_in(role)
    at.switch_page("app_pages/segment_builder.py").run()
    next(b for b in at.button if b.label == "Add rule").click().run()
    return at


def _customers(at) -> int:
    return int(next(m for m in at.metric if m.label == "Customers").value.replace(",", ""))


def test_a_share_is_entered_as_percent_and_stored_as_0_1(own_store):
    from crm_core import segments

    _score_everyone(own_store)
    at = _builder("marketer")
    at.selectbox(key="r_1_field").select("churn_risk").run()
    at.selectbox(key="r_1_op").select("gt").run()
    value = at.number_input(key="r_1_value")
    assert value.label == "Value (%)" and value.max == 100
    value.set_value(60).run()
    assert not at.exception and not errors(at)
    shown = _customers(at)
    by_json = segments.preview(
        get_store(), {"rules": [{"field": "churn_risk", "op": "gt", "value": 0.6}]}, "marketer"
    )
    assert shown == by_json.customers > 0
    next(t for t in at.text_input if t.label == "Name").input("Likely to churn")
    next(b for b in at.button if b.label == "Save segment").click().run()
    saved = segments.load_segment(get_store(), "Likely to churn")
    assert saved.definition["rules"] == [{"field": "churn_risk", "op": "gt", "value": 0.6}]
    next(b for b in at.button if b.label == "Open in the builder").click().run()
    assert at.number_input(key=f"r_{at.session_state['seg_next_id']}_value").value == 60


def test_fields_with_few_values_are_choices_and_unknown_values_warn(own_store):
    at = _builder("analyst")
    at.selectbox(key="r_1_field").select("country").run()
    at.selectbox(key="r_1_op").select("eq").run()
    assert "US" in at.selectbox(key="r_1_value").options  # a choice, not free text
    at.selectbox(key="r_1_op").select("in").run()
    assert "US" in at.multiselect(key="r_1_value").options
    at.selectbox(key="r_1_field").select("rfm_score").run()  # > 60 values: typed
    at.selectbox(key="r_1_op").select("eq").run()
    at.text_input(key="r_1_value").input("5555").run()
    assert not at.exception and not errors(at)
    warned = [w.value for w in at.warning]
    assert any(
        w.startswith("rule 1: no customer has rfm_score '5555'; nearest values: 555")
        for w in warned
    ), warned


def test_only_the_owner_deletes_after_confirming_and_can_restore(own_store):
    from crm_core import auth, segments

    store = get_store()
    us = {"rules": [{"field": "country", "op": "eq", "value": "us"}]}
    segments.save_segment(store, "US buyers", us, owner="marketer")

    at = sign_in("analyst")
    at.switch_page("app_pages/segment_builder.py").run()
    assert any("Owned by **marketer**" in c.value for c in at.caption)
    confirm = at.checkbox(key="confirm_delete_1")
    assert confirm.disabled
    assert next(b for b in at.button if b.label == "Delete").disabled  # not clickable
    with pytest.raises(segments.NotAllowedError, match="belongs to marketer"):
        segments.delete_segment(store, "US buyers", user=auth.get_user(store, "analyst"))

    at = sign_in("marketer")
    at.switch_page("app_pages/segment_builder.py").run()
    assert next(b for b in at.button if b.label == "Delete").disabled  # until confirmed
    assert not at.checkbox(key="confirm_delete_1").disabled
    at.checkbox(key="confirm_delete_1").check().run()
    next(b for b in at.button if b.label == "Delete").click().run()
    assert not at.exception and not errors(at)
    assert list_segments(get_store()).empty
    assert any("Deleted US buyers" in s.value for s in at.success)
    next(b for b in at.button if b.label == "Restore").click().run()
    assert any("Restored US buyers (version 1)" in s.value for s in at.success), errors(at)
    assert list_segments(get_store())["name"].tolist() == ["US buyers"]


def test_saving_a_segment_keeps_the_kpis_cached(own_store, monkeypatch):
    from crm_core import metrics

    calls = []
    compute = metrics.compute_kpis

    def counted(*args, **kwargs):
        calls.append(1)
        return compute(*args, **kwargs)

    monkeypatch.setattr(metrics, "compute_kpis", counted)
    at = sign_in("marketer")  # lands on the KPI overview
    assert not at.exception and len(calls) == 1
    at.switch_page("app_pages/segment_builder.py").run()
    next(b for b in at.button if b.label == "Add rule").click().run()
    next(t for t in at.text_input if t.label == "Name").input("Repeat buyers")
    next(b for b in at.button if b.label == "Save segment").click().run()
    assert any("Saved Repeat buyers version 1" in s.value for s in at.success), errors(at)
    at.switch_page("app_pages/overview.py").run()
    assert not at.exception and len(calls) == 1  # served from the cache: no recomputation


def _rendered(at) -> str:
    """Every element's protobuf text (labels, messages, table bytes) and every table's values."""
    parts = []

    def walk(node):
        if getattr(node, "proto", None) is not None:
            parts.append(str(node.proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    parts += [frame.value.to_string() for frame in at.dataframe]
    return "\n".join(parts)


def test_export_result_stays_after_reruns_and_downloads_without_server_paths(own_store):
    from crm_core import segments

    segments.save_segment(
        get_store(),
        "Repeat buyers",
        {"rules": [{"field": "frequency", "op": "gte", "value": 3}]},
        owner="marketer",
    )
    at = sign_in("marketer")
    at.switch_page("app_pages/segment_builder.py").run()
    assert any("No exports yet" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Export").click().run()
    assert not at.exception and not errors(at)
    downloads = [b.label for b in at.get("download_button")]
    name = read_export_log(get_store()).loc[0, "file_name"].rsplit("/", 1)[-1]
    assert downloads[:2] == [f"Download {name}", "Download the manifest (JSON)"], downloads
    at.download_button[0].click().run()  # a download (a rerun in AppTest) keeps the result
    assert not at.exception and any("Exported" in s.value for s in at.success), errors(at)
    at.run()  # so does any other rerun
    assert any("Exported" in s.value for s in at.success), errors(at)
    assert [b.label for b in at.get("download_button")] == downloads
    history = next(d.value for d in at.dataframe if "file" in d.value.columns)
    assert history["file"].tolist() == [name] and history["available"].tolist() == [True]
    page = _rendered(at)
    assert str(own_store.parent) not in page and "/exports/" not in page
    next(b for b in at.button if b.label == "Hide this result").click().run()
    assert not any("Exported" in s.value for s in at.success)


def test_admin_export_log_lists_everyones_exports_by_file_name(own_store):
    from crm_core import auth, export, segments

    store = get_store()
    segments.save_segment(
        store,
        "Everyone",
        {"rules": [{"field": "frequency", "op": "gte", "value": 1}]},
        owner="marketer",
    )
    done = export.export_segment(
        store, "Everyone", user=auth.User("marketer", "Marketer", "marketer"), channel="none"
    )
    at = sign_in("admin")
    at.switch_page("app_pages/admin.py").run()
    assert not at.exception
    log = next(d.value for d in at.dataframe if "file" in d.value.columns)
    assert log["file"].tolist() == [done.path.name] and log["exported_by"].tolist() == ["marketer"]
    assert "file_name" not in log.columns
    labels = [b.label for b in at.get("download_button")]
    assert labels == [f"Download {done.path.name}", "Download the manifest (JSON)"]
    assert str(own_store.parent) not in _rendered(at)


def test_an_opened_segment_keeps_its_description_and_sizes_can_be_measured(own_store):
    from crm_core import drill, segments

    store = get_store()
    fixed = drill.fixed_list("Movers", [1, 2, 3], "no rule can say who moved")
    definition, description = drill.to_save(fixed, fixed=True)
    segments.save_segment(store, "Movers", definition, owner="marketer", description=description)
    at = _builder("marketer")
    next(box for box in at.selectbox if box.label == "Segment").select("Movers").run()
    next(b for b in at.button if b.label == "Open in the builder").click().run()
    assert at.text_input(key="seg_description").value == description
    next(b for b in at.button if b.label == "Save segment").click().run()
    assert not errors(at)
    again = segments.load_segment(store, "Movers")
    assert again.version == 2 and again.description.startswith("Movers. FIXED LIST of 3")

    before = len(segments.size_history(store, again.segment_id))
    next(b for b in at.button if b.label == "Measure all sizes now").click().run()
    assert not errors(at)
    assert len(segments.size_history(store, again.segment_id)) == before + 1

"""AppTest: the Glossary page for every role, and every model and analysis view opening with
its plain-language summary before any figure."""

from __future__ import annotations

import pytest

from crm_core import glossary, summaries
from tests.app.conftest import errors

ROLES = ["admin", "manager", "marketer", "analyst"]
SUMMARY_START = f"**{summaries.MARKER}:**"
FIGURES = {"metric", "plotly_chart", "arrow_data_frame"}

SUMMARY_PAGES = [
    "app_pages/overview.py",
    "app_pages/segmentation.py",
    "app_pages/clv.py",
    "app_pages/churn.py",
    "app_pages/surveys.py",
    "app_pages/campaigns.py",
    "app_pages/funnels.py",
]


@pytest.mark.parametrize("role", ROLES)
def test_glossary_page_lists_and_searches_terms(signed_in, role):
    at = signed_in(role)
    at.switch_page("app_pages/glossary.py").run()
    assert not at.exception and not errors(at)
    shown = " ".join(md.value for md in at.main.markdown)
    for key in ("churn_rate", "churn_risk", "p_alive"):
        entry = glossary.term(key)
        assert f"#### {entry.name}" in shown and entry.not_ in shown
    assert f"{len(glossary.TERMS)} of {len(glossary.TERMS)} terms" in [c.value for c in at.caption]
    at.text_input[0].input("AUC").run()
    headings = [md.value.split("\n")[0] for md in at.main.markdown if md.value.startswith("####")]
    assert headings == [f"#### {t.name}" for t in glossary.search("AUC")]
    assert "#### ROC AUC" in headings and "#### Churn rate" not in headings
    at.text_input[0].input("zzz nothing").run()
    assert any("No term matches" in i.value for i in at.info)


def _first_index(nodes: list, test) -> int:
    return next((i for i, node in enumerate(nodes) if test(node)), len(nodes))


@pytest.mark.parametrize("page", SUMMARY_PAGES, ids=lambda p: p.split("/")[-1])
def test_each_view_opens_with_its_summary(signed_in, page):
    at = signed_in("analyst")
    at.switch_page(page).run()
    assert not at.exception and not errors(at)
    nodes = list(at.main)
    summary_at = _first_index(
        nodes,
        lambda n: getattr(n, "type", "") == "markdown" and n.value.startswith(SUMMARY_START),
    )
    figure_at = _first_index(nodes, lambda n: getattr(n, "type", "") in FIGURES)
    assert summary_at < len(nodes), f"{page}: no summary"
    assert summary_at < figure_at, f"{page}: a figure comes before the summary"
    text = nodes[summary_at].value
    assert any(ch.isdigit() for ch in text), text  # computed from the figures


def test_kpi_help_and_churn_help_say_what_the_glossary_says(signed_in):
    at = signed_in("manager")
    at.switch_page("app_pages/overview.py").run()
    helps = {m.label: m.proto.help for m in at.metric}
    assert helps["Churn rate"] == glossary.kpi_help("churn_rate")
    at.switch_page("app_pages/churn.py").run()
    assert not at.exception
    helps = {m.label: m.proto.help for m in at.metric}
    assert helps["ROC AUC"] == glossary.help_for("roc_auc")
    captions = " ".join(c.value for c in at.caption)
    assert "pairs of a customer who left and one who stayed" in captions
    assert "validation churn share" in captions


def _summary(at) -> str:
    return next(md.value for md in at.main.markdown if md.value.startswith(SUMMARY_START))


def test_summary_follows_the_sidebar_filter(signed_in):
    at = signed_in("manager")
    at.switch_page("app_pages/overview.py").run()
    everyone = _summary(at)
    country = at.sidebar.multiselect(key="filter_countries").options[0]
    at.sidebar.multiselect(key="filter_countries").select(country).run()
    assert not at.exception and not errors(at)
    assert _summary(at) != everyone
    revenue = next(m.value for m in at.metric if m.label == "Revenue")
    assert f"Revenue was {revenue}" in _summary(at)

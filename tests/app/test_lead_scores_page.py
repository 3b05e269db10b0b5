"""AppTest: the lead scores on the Funnels page (validation, capacity threshold, open leads)."""

from __future__ import annotations

import pytest

from tests.app.conftest import errors

ROLES = ["admin", "manager", "marketer", "analyst"]


def open_funnels(signed_in, role: str):
    at = signed_in(role)
    at.switch_page("app_pages/funnels.py").run()
    assert not at.exception, at.exception
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.parametrize("role", ROLES)
def test_funnels_page_shows_lead_scores_beside_their_validation(signed_in, role):
    at = open_funnels(signed_in, role)
    assert not errors(at)
    model, baseline = metric(at, "ROC AUC (validation)"), metric(at, "ROC AUC, source only")
    assert float(model) > float(baseline)
    assert metric(at, "MQL threshold").endswith("%")
    assert any("validated on those open at cutoffs" in c.value for c in at.caption)
    assert any("expected wins" in c.value for c in at.caption)
    shown = [df.value for df in at.dataframe]
    assert any("lead_score_reasons" in str(list(frame.columns)) for frame in shown)


def test_more_sales_capacity_lowers_the_threshold_and_wins_more(signed_in):
    at = open_funnels(signed_in, "marketer")
    before = float(metric(at, "Expected wins among them").replace(",", ""))
    threshold = float(metric(at, "MQL threshold").rstrip("%"))
    at.number_input(key="lead_capacity").set_value(1).run()
    assert not at.exception
    after = float(metric(at, "Expected wins among them").replace(",", ""))
    assert float(metric(at, "MQL threshold").rstrip("%")) > threshold
    assert after < before

"""AppTest: the CLV and churn views for every role, PII masking, and their empty states."""

from __future__ import annotations

import pytest

from tests.app.conftest import errors, private_store, sign_in

ROLES = ["admin", "manager", "marketer", "analyst"]


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.mark.parametrize("role", ROLES)
def test_clv_view_shows_values_and_backtest(signed_in, role):
    at = signed_in(role)
    at.switch_page("app_pages/clv.py").run()
    assert not at.exception and not errors(at)
    figures = _metrics(at)
    assert figures["Mean CLV"].startswith("$") and figures["Mean CLV"] != "$0.00"
    assert figures["Backtest error"].endswith("%")
    assert float(figures["Backtest MAE"]) > 0
    assert len(at.get("plotly_chart")) >= 8  # distribution, 3 groups, 2 backtest, 2 matrices
    top = at.dataframe[-1].value
    masked = top["email"].dropna().str.contains(r"\*\*\*").all()
    assert masked == (role in ("manager", "analyst"))


def test_clv_view_reacts_to_its_settings(signed_in):
    at = signed_in("analyst")
    at.switch_page("app_pages/clv.py").run()
    before = _metrics(at)["Mean CLV"]
    at.slider[0].set_value(24).run()
    assert not at.exception
    assert _metrics(at)["Mean CLV"] != before
    at.selectbox[0].select("pareto").run()
    assert not at.exception and any("Pareto/NBD" in c.value for c in at.caption)


@pytest.mark.parametrize("role", ROLES)
def test_churn_view_shows_validation_drivers_and_risk(signed_in, role):
    at = signed_in(role)
    at.switch_page("app_pages/churn.py").run()
    assert not at.exception and not errors(at)
    figures = _metrics(at)
    assert float(figures["ROC AUC"]) > 0.7
    assert {"PR AUC", "Brier score", "High-risk customers"} <= set(figures)
    assert any("churn" in md.value and "as often" in md.value for md in at.markdown)
    assert len(at.get("plotly_chart")) >= 4  # calibration, gains, importance, risk bands
    table = at.dataframe[-1].value
    assert {"churn_risk", "p_alive", "clv", "value_at_risk"} <= set(table.columns)
    masked = table["email"].dropna().str.contains(r"\*\*\*").all()
    assert masked == (role in ("manager", "analyst"))


def test_churn_view_logistic_regression(signed_in):
    at = signed_in("manager")
    at.switch_page("app_pages/churn.py").run()
    at.selectbox[0].select("logit").run()
    assert not at.exception and float(_metrics(at)["ROC AUC"]) > 0.7


@pytest.mark.parametrize("page", ["app_pages/clv.py", "app_pages/churn.py"])
def test_empty_store_names_the_table_to_import(tmp_path, monkeypatch, page):
    private_store(tmp_path, monkeypatch)
    at = sign_in("analyst")
    at.switch_page(page).run()
    assert not at.exception
    assert any("`orders`" in i.value for i in at.info)


def test_too_little_history_says_what_is_missing(tmp_path, monkeypatch):
    from tests.core import tiny

    private_store(tmp_path, monkeypatch, tiny.load)
    at = sign_in("analyst")
    for page in ("app_pages/clv.py", "app_pages/churn.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert any("Not enough data" in w.value for w in at.warning), page


def test_clv_top_customers_and_matrices_read_as_words(signed_in):
    at = signed_in("analyst")
    at.switch_page("app_pages/clv.py").run()
    assert not at.exception
    assert any("Pick a row to open that customer in Customer 360" in c.value for c in at.caption)
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("recency, days)" in spec for spec in charts)
    assert any('"Paid search"' in spec for spec in charts)  # CLV by acquisition channel
    assert not any('"paid_search"' in spec for spec in charts)
    assert not any('"tickformat":".2f"' in spec for spec in charts)  # colour bar 0, 5, 10

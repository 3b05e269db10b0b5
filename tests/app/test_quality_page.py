"""AppTest: the Data quality page as admin (personal data shown), analyst (masked) and a
refused role; findings drill to their rows; the trend gets a point per import."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_core import auth, display, ingest, quality
from crm_core.store import Store, get_store
from crm_ui import quality_ui
from tests.app.conftest import errors, private_store, sign_in

PAGE = "app_pages/data_quality.py"

CUSTOMERS = pd.DataFrame(
    {
        "customer_id": [1, 2, 3],
        "email": ["ann.lee@example.com", "ANN.LEE@example.com", "not-an-email"],
        "first_name": ["Annabel", "Annabel", "Cyrus"],
        "country": ["GB", "GB", "XX"],
        "signup_at": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
    }
)
ORDERS = pd.DataFrame(
    {
        "order_id": [1, 2],
        "customer_id": [1, 99],
        "ordered_at": pd.to_datetime(["2024-02-01", "2024-02-02"]),
        "amount": [10.0, -5.0],
    }
)


def _fill(store: Store) -> None:
    with store.begin() as conn:
        store.insert_df(conn, "customers", CUSTOMERS)
        store.insert_df(conn, "orders", ORDERS)


@pytest.fixture
def bad_app(tmp_path, monkeypatch):
    return private_store(tmp_path, monkeypatch, _fill)


def _open(role: str):
    at = sign_in(role)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _table(at, column: str) -> pd.DataFrame:
    """The first table on the page with `column`."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _rows(at) -> pd.DataFrame:
    """The offending rows shown (the table after the findings)."""
    return at.dataframe[1].value


def _pick(at, prefix: str):
    box = at.selectbox(key="dq_finding")
    index = next(i for i, label in enumerate(box.options) if label.startswith(prefix))
    return box.set_value(index).run()


def test_admin_sees_scores_findings_and_unmasked_rows(bad_app):
    at = _open("admin")
    assert not errors(at)
    cards = {m.label: m.value for m in at.metric}
    assert set(cards) == {display.label(t) for t in quality.quality_tables()}
    assert cards["Events"] == "empty"
    assert float(cards["Customers"]) < 100
    findings = _table(at, "check_label")
    assert {"Customers", "Orders"} == set(findings["table"])  # labels, not raw names
    assert findings["check_label"].iloc[0] != "Unusual amount"  # real errors first
    assert quality_ui.share_text(0.0004) == "<0.1%" and quality_ui.share_text(0.25) == "25.0%"
    assert {"Shared e-mail address", "E-mail not well formed", "Country not an ISO code"} <= set(
        findings["check_label"]
    )
    at = _pick(at, f"{quality_ui.where('customers', 'email')}: Shared e-mail address")
    assert not at.exception and not errors(at)
    rows = _rows(at)
    assert rows["email"].tolist() == ["ann.lee@example.com", "ANN.LEE@example.com"]
    assert any(b.label == "Download these rows (CSV)" for b in at.get("download_button"))
    at = _pick(at, f"{quality_ui.where('orders', 'customer_id')}: Reference points nowhere")
    assert _rows(at)["order_id"].tolist() == [2]


def test_analyst_sees_personal_columns_masked(bad_app):
    at = _open("analyst")
    assert not errors(at)
    at = _pick(at, f"{quality_ui.where('customers', 'email')}: Shared e-mail address")
    rows = _rows(at)
    assert rows["email"].tolist() == ["a***@example.com", "A***@example.com"]
    assert rows["first_name"].tolist() == ["A***", "A***"]
    assert any("masked for your role" in c.value for c in at.caption)


@pytest.mark.parametrize("role", [r for r in auth.ROLES if not auth.may_view(r, "data_quality")])
def test_other_roles_are_refused(bad_app, role):
    at = _open(role)
    assert any(e.startswith("Not allowed") for e in errors(at)), errors(at)
    assert not at.metric


def test_an_import_adds_a_point_to_the_trend_and_record_now_adds_another(bad_app, tmp_path):
    at = _open("admin")
    assert any("No scores recorded yet" in i.value for i in at.info)
    path = tmp_path / "orders.csv"
    path.write_text("order_id,customer_id,ordered_at,amount\n3,1,2024-02-03,12.00\n")
    ingest.import_file(get_store(), "orders", path)
    at.run()
    assert not at.exception and not errors(at)
    trend = quality.trend(get_store())
    assert set(trend["table"]) == set(quality.quality_tables())
    assert len(at.get("plotly_chart")) == 2  # scores and trend
    next(b for b in at.button if b.label == "Record scores now").click().run()
    assert not at.exception and not errors(at)
    assert len(quality.trend(get_store())) == 2 * len(quality.quality_tables())


def test_an_empty_store_says_so(tmp_path, monkeypatch):
    private_store(tmp_path, monkeypatch)
    at = _open("admin")
    assert not errors(at)
    assert any("hold no data yet" in i.value for i in at.info)

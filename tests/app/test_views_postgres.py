"""AppTest: every view on a PostgreSQL store, signed in as admin, shows its key figure with
no exception or error, and the same figures as the same view on the same data in DuckDB.

The store is a copy of the session's PostgreSQL demo store (tests/stores.py) with one user
per role; the app reaches it through `CRM_DATABASE_URL`, as a deployment would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from crm_core.metrics import METRICS
from crm_core.store import Store, close_all
from crm_ui.views import VIEWS, View
from tests.app.conftest import add_role_users, errors, sign_in, use_store
from tests.stores import PgSchemas


@pytest.fixture(scope="module")
def pg_app_url(pg_schemas: PgSchemas, pg_demo_schema: tuple[str, str]) -> Iterator[str]:
    """A copy of the PostgreSQL demo store with one user per role, for this module."""
    name, url = pg_schemas.copy(pg_demo_schema[0], "app")
    store = Store(url)
    add_role_users(store)
    store.dispose()
    yield url
    pg_schemas.drop(name)


def use_url(monkeypatch: pytest.MonkeyPatch, url: str, data_dir: Path) -> None:
    """Point the app at the store at `url` (data_dir holds its cookie key), fresh caches."""
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    st.cache_data.clear()
    st.cache_resource.clear()
    close_all()


def figures(at: AppTest) -> dict[str, str]:
    """The view's metric cards, label -> shown value."""
    return {m.label: m.value for m in at.metric}


def check_overview(at: AppTest) -> None:
    assert list(figures(at)) == [m.label for m in METRICS.values()]
    assert at.metric[0].value.startswith("$") and at.metric[0].value != "$0.00"
    assert all(m.value != "n/a" for m in at.metric), figures(at)
    assert len(at.get("plotly_chart")) == 2  # trend and cohorts


def check_customer_360(at: AppTest) -> None:
    assert any("Type a name" in i.value for i in at.info)
    at.text_input[0].input("1").run()
    assert not at.exception and not errors(at)
    assert at.metric[0].label == "Completed orders"


def check_segmentation(at: AppTest) -> None:
    assert len(at.get("plotly_chart")) == 3  # treemap, R x F grid, movement
    at.toggle(key="run_clustering").set_value(True).run()
    assert not at.exception and not errors(at)
    assert len(at.get("plotly_chart")) == 6  # + elbow, profile, PCA


def check_segment_builder(at: AppTest) -> None:
    assert any("Add a rule" in i.value or "no rules" in i.value for i in at.info)


def check_campaigns(at: AppTest) -> None:
    assert list(figures(at)) == ["Spend", "Attributed revenue", "ROI", "Conversions"]
    assert at.metric[0].value.startswith("$") and at.metric[0].value != "$0.00"
    assert len(at.dataframe) == 2  # attributed and incremental tables


def check_surveys(at: AppTest) -> None:
    assert list(figures(at))[:3] == ["NPS", "CSAT", "Revenue at risk from detractors"]
    assert at.metric[0].value != "n/a"
    assert any("95% interval" in c.value for c in at.caption)


def check_funnels(at: AppTest) -> None:
    assert at.metric[0].label == "Overall conversion"
    assert at.metric[0].value.endswith("%") and at.metric[0].value != "0.0%"


def check_clv(at: AppTest) -> None:
    shown = figures(at)
    assert shown["Mean CLV"].startswith("$") and shown["Mean CLV"] != "$0.00"
    assert shown["Backtest error"].endswith("%") and float(shown["Backtest MAE"]) > 0


def check_churn(at: AppTest) -> None:
    shown = figures(at)
    assert float(shown["ROC AUC"]) > 0.7
    assert {"PR AUC", "Brier score", "High-risk customers"} <= set(shown)


def check_data_import(at: AppTest) -> None:
    """A Shopify export recognised and previewed (a dry run: the shared store is untouched)."""
    from tests.app.test_data_import import SHOPIFY

    at.file_uploader[0].set_value(("orders_export.csv", SHOPIFY.encode(), "text/csv")).run()
    assert not at.exception
    assert next(s for s in at.selectbox if s.label == "Start from").value == "shopify-orders"
    assert any("first 20 rows read without problems" in s.value for s in at.success)
    assert any("Columns of `orders`" in e.label for e in at.expander)


def check_admin(at: AppTest) -> None:
    assert any("No exports yet" in i.value for i in at.info)
    assert len(at.dataframe) == 3  # users, the role matrix and the audit log


def check_privacy(at: AppTest) -> None:
    """The retention dry run counts the demo's old events on PostgreSQL as on DuckDB."""
    plan = next(df.value for df in at.dataframe if "Rows now" in df.value.columns)
    assert plan["Table"].tolist() == ["Events", "Survey responses"]
    assert any("Suppression list" in h.value for h in at.subheader)


def check_home(at: AppTest) -> None:
    assert any("press **Pin to home**" in i.value for i in at.info)  # no pins yet
    at.switch_page("app_pages/overview.py").run()
    at.multiselect(key="pin_overview_kpis").set_value(["revenue"]).run()
    at.button(key="pin_overview_kpis_add").click().run()
    revenue = figures(at)["Revenue"]
    at.switch_page("app_pages/home.py").run()
    assert not at.exception and not errors(at)
    assert figures(at) == {"Revenue": revenue}


def check_glossary(at: AppTest) -> None:
    assert any(md.value.startswith("#### Churn risk") for md in at.markdown)


def check_alerts(at: AppTest) -> None:
    """The default rule's 12-month backtest (revenue per week) reads the store's orders."""
    next(b for b in at.button if b.label == "Backtest").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert any(i.value.startswith("Would") for i in at.info), [i.value for i in at.info]
    assert len(at.get("plotly_chart")) == 1


def check_data_quality(at: AppTest) -> None:
    """A score card per data table, and findings that drill to their rows."""
    from crm_core import display, quality

    assert set(figures(at)) == {display.label(t) for t in quality.quality_tables()}
    assert any("check_label" in d.value.columns for d in at.dataframe)


def check_recommendations(at: AppTest) -> None:
    """The held-out validation (the same demo data: the same figures on both stores)."""
    assert figures(at)["Precision@5"].endswith("%")
    assert "vs popularity" in next(m for m in at.metric if m.label == "Hit rate@5").delta


def check_duplicates(at: AppTest) -> None:
    """Find duplicates runs the record-linkage model on PostgreSQL's customers (read into
    DuckDB in memory) and the review queue lists the demo's planted copies."""
    from crm_core import merge
    from crm_core.store import get_store

    next(b for b in at.button if b.label == "Find duplicates").click().run(timeout=300)
    assert not at.exception and not errors(at), (at.exception, errors(at))
    assert len(merge.review_queue(get_store())) > 0


CHECKS: dict[str, Callable[[AppTest], None]] = {
    "data_quality": check_data_quality,
    "duplicates": check_duplicates,
    "home": check_home,
    "alerts": check_alerts,
    "overview": check_overview,
    "customer_360": check_customer_360,
    "segmentation": check_segmentation,
    "segment_builder": check_segment_builder,
    "campaigns": check_campaigns,
    "recommendations": check_recommendations,
    "surveys": check_surveys,
    "funnels": check_funnels,
    "clv": check_clv,
    "churn": check_churn,
    "data_import": check_data_import,
    "admin": check_admin,
    "privacy": check_privacy,
    "glossary": check_glossary,
}
"""The key figure of each view, as the DuckDB AppTests check it (same demo data)."""


def open_view(view: View) -> AppTest:
    """Sign in as admin and open `view`; fail on an exception or an error box."""
    at = sign_in("admin")
    assert not at.exception and not errors(at), (at.exception, errors(at))
    at.switch_page(view.path).run()
    assert not at.exception, (view.key, at.exception)
    assert not errors(at), (view.key, errors(at))
    return at


def test_every_view_has_a_check():
    assert set(CHECKS) == {view.key for view in VIEWS}


@pytest.mark.parametrize("view", VIEWS, ids=lambda view: view.key)
def test_view_on_postgresql_matches_duckdb(
    view: View, pg_app_url: str, app_store_path: Path, tmp_path: Path, monkeypatch
):
    use_url(monkeypatch, pg_app_url, tmp_path)
    at = open_view(view)
    CHECKS[view.key](at)
    on_postgresql = figures(at)
    if not on_postgresql:
        return  # no figures to compare; tests/app checks this view on DuckDB

    use_store(monkeypatch, app_store_path)
    at = open_view(view)
    CHECKS[view.key](at)
    assert figures(at) == on_postgresql, f"{view.key}: DuckDB and PostgreSQL differ"
    close_all()

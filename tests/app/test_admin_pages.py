"""AppTest: the admin pages (users form, role matrix, import page) work for an admin."""

from __future__ import annotations

from crm_core import auth
from crm_core.store import get_store
from tests.app.conftest import errors, sign_in


def test_admin_adds_a_user_who_can_sign_in(own_store):
    at = sign_in("admin")
    at.switch_page("app_pages/admin.py").run()
    assert not at.exception
    form_inputs = [t for t in at.text_input if t.label in ("Username", "Full name", "Password")]
    values = {"Username": "newbie", "Full name": "New Bie", "Password": "newbie-password-1"}
    for box in form_inputs:
        box.input(values[box.label])
    role_box = next(s for s in at.selectbox if s.label == "Role")
    role_box.select("analyst")
    next(b for b in at.button if b.label == "Add user").click().run()
    assert not at.exception
    assert any("Added newbie (analyst)" in s.value for s in at.success), errors(at)
    assert auth.get_user(get_store(), "newbie").role == "analyst"
    again = sign_in("newbie", "newbie-password-1")
    assert not errors(again) and again.metric


def test_admin_add_user_shows_errors_inline(own_store):
    at = sign_in("admin")
    at.switch_page("app_pages/admin.py").run()
    next(t for t in at.text_input if t.label == "Username").input("Bad Name")
    next(t for t in at.text_input if t.label == "Password").input("short")
    next(b for b in at.button if b.label == "Add user").click().run()
    assert not at.exception
    assert any("not valid" in e for e in errors(at))


def test_admin_page_shows_role_matrix_and_empty_export_log(signed_in):
    at = signed_in("admin")
    at.switch_page("app_pages/admin.py").run()
    assert not at.exception
    assert any("No exports yet" in i.value for i in at.info)
    assert len(at.dataframe) == 2  # users and the role matrix


def test_import_page_lists_tables_and_columns(signed_in):
    at = signed_in("admin")
    at.switch_page("app_pages/data_import.py").run()
    assert not at.exception
    table_box = next(s for s in at.selectbox if s.label == "Table")
    table_box.select("orders").run()
    assert not at.exception
    assert any("orders" in e.label for e in at.expander)


def test_admin_scores_customers_from_the_import_page(own_store):
    at = sign_in("admin")
    at.switch_page("app_pages/data_import.py").run()
    next(b for b in at.button if b.label == "Score customers").click().run(timeout=300)
    assert not at.exception and not errors(at)
    done = next(s.value for s in at.success if s.value.startswith("Scored "))
    status = (
        get_store()
        .read_df(
            "SELECT count(*) AS n, count(DISTINCT scored_at) AS runs, max(model_version) AS v "
            "FROM customer_scores"
        )
        .iloc[0]
    )
    assert done == f"Scored {status['n']:,} customers (model version {status['v']})."
    assert status["runs"] == 1

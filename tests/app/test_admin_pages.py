"""AppTest: the admin pages (users and their lifecycle, role matrix, import page) for an admin."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from crm_core import auth
from crm_core.schema import audit_log
from crm_core.store import get_store
from tests.app.conftest import PASSWORDS, errors, sign_in


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
    assert len(at.dataframe) == 3  # users, the role matrix and the audit log (users added)


def test_admin_reads_the_audit_log_filters_it_and_verifies_the_chain(own_store):
    store = get_store()
    auth.set_role(store, "analyst", "marketer", by="admin")
    at = sign_in("admin")
    at.switch_page("app_pages/admin.py").run()
    assert not at.exception
    log = at.dataframe[2].value
    assert log.iloc[0]["what"] == "Role changed" and log.iloc[0]["who"] == "admin"
    assert log.iloc[0]["details"] == "new role: marketer; old role: analyst"
    actions = next(m for m in at.multiselect if m.label == "Actions")
    actions.select("user_added").run()
    shown = at.dataframe[2].value
    assert set(shown["what"]) == {"User added"} and len(shown) >= 4
    next(b for b in at.button if b.label == "Verify the chain").click().run()
    assert any(s.value.startswith("The audit log is intact") for s in at.success), errors(at)
    with store.begin() as conn:  # tamper with one row by SQL
        conn.execute(audit_log.update().where(audit_log.c.seq == 2).values(actor="eve"))
    next(b for b in at.button if b.label == "Verify the chain").click().run()
    assert any("row 2 was edited" in e for e in errors(at))


def test_import_page_lists_tables_and_columns(signed_in):
    at = signed_in("admin")
    at.switch_page("app_pages/data_import.py").run()
    assert not at.exception
    assert any("Upload a file to start" in i.value for i in at.info)
    at.file_uploader[0].set_value(("c.csv", b"customer_id,signup_at\n1,2024-01-01\n", "text/csv"))
    at.run()
    table_box = next(s for s in at.selectbox if s.label == "Into table")
    assert table_box.value == "customers"
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


def _signed_in(at: AppTest) -> bool:
    """Whether the app drew a signed-in page (the sidebar names the user)."""
    return any(c.value.startswith("Signed in as") for c in at.sidebar.caption)


def _admin_page() -> AppTest:
    at = sign_in("admin")
    at.switch_page("app_pages/admin.py").run()
    assert not at.exception
    return at


def _pick(at: AppTest, username: str, action: str) -> AppTest:
    next(s for s in at.selectbox if s.label == "User").select(username).run()
    next(r for r in at.radio if r.label == "Action").set_value(action).run()
    assert not at.exception
    return at


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _successes(at: AppTest) -> list[str]:
    return [s.value for s in at.success]


def test_reset_password_needs_a_chosen_user_and_a_confirmation(own_store):
    at = _admin_page()
    user_box = next(s for s in at.selectbox if s.label == "User")
    assert user_box.value is None and user_box.placeholder == "Choose a user"
    assert not [b for b in at.button if b.label == "Reset password"]
    _pick(at, "analyst", "Reset password")
    assert _button(at, "Reset password").disabled  # until "Yes, ..." is ticked
    stored = auth.authenticator_credentials(get_store())["usernames"]["analyst"]["password"]
    assert auth.check_password(PASSWORDS["analyst"], stored)
    assert not _successes(at)
    next(c for c in at.checkbox if c.label == "Yes, reset the password of analyst").check().run()
    assert not _button(at, "Reset password").disabled
    _button(at, "Reset password").click().run()
    assert not at.exception and not errors(at)
    message = next(s for s in _successes(at) if s.startswith("New password for analyst"))
    new_password = message.split("`")[1]
    assert not _signed_in(sign_in("analyst"))  # the old password no longer works
    assert _signed_in(sign_in("analyst", new_password))


def test_admin_deactivates_a_user_after_confirming_and_the_table_says_so(own_store):
    at = _admin_page()
    _pick(at, "marketer", "Deactivate")
    assert _button(at, "Deactivate").disabled
    next(c for c in at.checkbox if c.label == "Yes, deactivate marketer").check().run()
    _button(at, "Deactivate").click().run()
    assert not at.exception and not errors(at)
    assert "Deactivated marketer: they can no longer sign in." in _successes(at)
    assert auth.get_user(get_store(), "marketer").active is False
    table = at.dataframe[0].value.set_index("username")
    assert not table.loc["marketer", "active"] and table.loc["admin", "active"]
    assert table.loc["admin", "last_login_at"] is not None  # this sign-in was recorded
    assert "Reactivate" in next(r for r in at.radio if r.label == "Action").options
    again = sign_in("marketer")
    assert not _signed_in(again) and "Username or password is incorrect." in errors(again)
    _pick(at, "marketer", "Reactivate")
    _button(at, "Reactivate").click().run()
    assert auth.get_user(get_store(), "marketer").active
    assert _signed_in(sign_in("marketer"))


def test_admin_changes_a_role_and_removes_a_user(own_store):
    at = _admin_page()
    _pick(at, "manager", "Change role")
    next(s for s in at.selectbox if s.label == "New role").select("analyst").run()
    _button(at, "Change role").click().run()
    assert "manager is now analyst." in _successes(at)
    assert auth.get_user(get_store(), "manager").role == "analyst"
    _pick(at, "manager", "Remove")
    next(c for c in at.checkbox if c.label == "Yes, remove manager").check().run()
    _button(at, "Remove").click().run()
    assert not at.exception and not errors(at)
    assert auth.get_user(get_store(), "manager") is None
    assert "manager" not in next(s for s in at.selectbox if s.label == "User").options
    assert next(s for s in at.selectbox if s.label == "User").value is None


def test_admin_cannot_deactivate_remove_or_demote_themselves(own_store):
    at = _admin_page()
    next(s for s in at.selectbox if s.label == "User").select("admin").run()
    assert next(r for r in at.radio if r.label == "Action").options == ["Reset password"]
    assert any("This is you" in c.value for c in at.caption)


def test_a_deactivated_users_open_session_is_signed_out_on_the_next_run(own_store):
    at = sign_in("analyst")
    assert _signed_in(at)
    auth.deactivate_user(get_store(), "analyst")
    at.run()
    assert not _signed_in(at) and not at.metric
    assert any("You were signed out" in e for e in errors(at))
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    auth.activate_user(get_store(), "analyst")
    at.run()
    assert not _signed_in(at)  # signed out for good: signing in again takes the password
    assert _signed_in(sign_in("analyst"))


def test_a_download_of_a_target_list_or_personal_data_writes_an_audit_row(own_store):
    import streamlit as st

    from crm_core import audit
    from crm_ui import audit_ui
    from crm_ui.session import USER_KEY

    st.session_state[USER_KEY] = auth.get_user(get_store(), "marketer")
    try:
        audit_ui.record_download("export 7", "vips_v1.csv", {"rows": 12})
    finally:
        del st.session_state[USER_KEY]
    row = audit.entries(get_store(), actions=["download"]).iloc[0]
    assert (row["actor"], row["target"]) == ("marketer", "export 7")
    assert audit.details_words(row["details"]) == "file name: vips_v1.csv; rows: 12"

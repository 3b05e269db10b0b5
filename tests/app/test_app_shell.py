"""AppTest: login, lockout, navigation per role, direct URLs, logout."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from crm_core import auth
from crm_ui.views import VIEWS
from tests.app.conftest import APP, errors, sign_in


def test_login_form_first(app_env):
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert len(at.text_input) == 2
    assert not at.metric  # nothing shown before signing in


def test_wrong_password_is_refused(app_env):
    at = sign_in("manager", "not-the-password")
    assert "Username or password is incorrect." in errors(at)
    assert not at.metric


def test_repeated_failures_lock_the_account(app_env):
    for _ in range(5):
        at = sign_in("analyst", "guess-guess-guess")
    at = sign_in("analyst")  # the right password, too late
    assert any("locked" in e for e in errors(at)), errors(at)
    assert not at.metric
    from crm_core import audit
    from crm_core.store import get_store

    refused = audit.entries(get_store(), actions=["sign_in_failed"], limit=1).iloc[0]
    assert refused["target"] == "user analyst" and "while_locked" in refused["details"]

    auth.reset_password(get_store(), "analyst", "analyst-password-123")
    at = sign_in("analyst")
    assert not errors(at) and at.metric


@pytest.mark.parametrize("role", auth.ROLES)
def test_each_role_sees_only_its_views(signed_in, role):
    at = signed_in(role)
    assert not at.exception, at.exception
    for view in VIEWS:
        at.switch_page(view.path).run()
        assert not at.exception, (view.key, at.exception)
        shown = errors(at)
        if auth.may_view(role, view.key):
            assert not any("Not allowed" in e for e in shown), (view.key, shown)
        else:
            assert any(e.startswith("Not allowed: the " + role) for e in shown), (view.key, shown)


def test_sign_out(signed_in):
    at = signed_in("marketer")
    assert at.metric
    at.sidebar.button(key="sign_out").click().run()
    assert not at.metric
    assert len(at.text_input) == 2


def test_an_unknown_username_is_audited_without_what_was_typed(own_store):
    from crm_core import audit
    from crm_core.store import get_store

    at = sign_in("someone@example.com", "whatever-it-was")
    assert "Username or password is incorrect." in errors(at)
    refused = audit.entries(get_store(), actions=["sign_in_failed"], limit=5)
    assert refused.iloc[0]["target"] == "an unknown username"
    assert "someone" not in refused.to_string()

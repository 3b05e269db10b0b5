"""AppTest: unsubscribe files on the Data import page (suppressed, customers opted out of
e-mail with a consent-history row) and the admins' suppression section (add, search,
remove after a tick), against a private copy of the demo store."""

from __future__ import annotations

import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from crm_core import consent
from crm_core.schema import customers, suppressions
from crm_core.store import get_store
from tests.app.conftest import errors, sign_in


def _customer_with_consent() -> tuple[int, str]:
    row = get_store().read_df(
        sa.select(customers.c.customer_id, customers.c.email)
        .where(customers.c.consent_email.is_(True), customers.c.email.is_not(None))
        .where(  # not suppressed already (the demo suppresses some consenting addresses)
            sa.func.lower(customers.c.email).not_in(
                sa.select(sa.func.lower(suppressions.c.value)).where(suppressions.c.kind == "email")
            )
        )
        .order_by(customers.c.customer_id)
        .limit(1)
    )
    return int(row["customer_id"].iloc[0]), str(row["email"].iloc[0])


def test_an_unsubscribe_file_goes_on_the_list_and_opts_the_customer_out(own_store):
    customer_id, email = _customer_with_consent()
    content = (
        "Email Address,First Name,UNSUB_TIME,UNSUB_REASON\n"
        f"{email.upper()},X,2026-01-05 10:00:00,Too many e-mails\n"
        "someone.else@example.org,Y,2026-01-06 10:00:00,\n"
    ).encode()
    at = sign_in("admin")
    at.switch_page("app_pages/data_import.py").run()
    assert "Unsubscribes and bounces" in [t.label for t in at.tabs]
    uploader = next(u for u in at.file_uploader if u.label == "Unsubscribe or bounce file")
    uploader.set_value(("mailchimp_unsubscribed.csv", content, "text/csv")).run()
    assert not at.exception, at.exception
    boxes = {s.label: s.value for s in at.selectbox if s.key and s.key.startswith("sup:")}
    assert boxes["E-mail column"] == "Email Address"
    assert boxes["Date column (optional)"] == "UNSUB_TIME"
    assert boxes["Reason column (optional)"] == "UNSUB_REASON"
    assert any("would add 2 address(es)" in i.value for i in at.info), [i.value for i in at.info]
    next(b for b in at.button if b.label == "Add to the suppression list").click().run()
    assert not at.exception and not errors(at)
    assert any("added 2 address(es)" in s.value for s in at.success), errors(at)
    store = get_store()
    values = set(store.read_df(sa.select(suppressions.c.value))["value"])
    assert {email.upper(), "someone.else@example.org"} <= values
    kept = store.scalar(
        sa.select(customers.c.consent_email).where(customers.c.customer_id == customer_id)
    )
    assert bool(kept) is False
    newest = consent.history(store, customer_id).iloc[0]
    assert (newest.source, newest.changed_by) == ("unsubscribe_file", "admin")


def _section() -> None:
    from crm_core import auth
    from crm_ui import suppressions_ui

    suppressions_ui.suppressions_section(auth.User("admin", "Admin", "admin"))


def test_admins_add_search_and_remove_suppressions(own_store):
    at = AppTest.from_function(_section, default_timeout=60).run()
    assert not at.exception
    form_inputs = {t.label: t for t in at.text_input}
    form_inputs["E-mail address or phone number"].input("Blocked.Person@Example.com")
    form_inputs["Reason"].input("asked by phone")
    next(b for b in at.button if b.label == "Add to the suppression list").click().run()
    assert not at.exception
    assert any("Added Blocked.Person@Example.com" in s.value for s in at.success)
    next(t for t in at.text_input if t.label == "Search").input("blocked.person").run()
    assert "Blocked.Person@Example.com" in at.dataframe[0].value.iloc[:, 0].tolist()
    next(s for s in at.selectbox if s.label == "Listed address").select(
        "Blocked.Person@Example.com"
    )
    next(b for b in at.button if b.label == "Remove").click().run()
    assert any("Tick the box" in w.value for w in at.warning)  # not without the tick
    next(c for c in at.checkbox if c.label.startswith("Yes, remove it")).check()
    next(b for b in at.button if b.label == "Remove").click().run()
    assert not at.exception
    assert any("Removed Blocked.Person@Example.com" in s.value for s in at.success)
    left = get_store().scalar(
        sa.select(sa.func.count())
        .select_from(suppressions)
        .where(suppressions.c.value == "Blocked.Person@Example.com")
    )
    assert left == 0

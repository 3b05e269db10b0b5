"""AppTest: the Privacy page (admins) and the profile's privacy actions: an access archive to
download, an erasure with its proof, consent history; other roles are refused."""

from __future__ import annotations

import pytest

from crm_core import erasure
from crm_core.store import get_store
from tests.app.conftest import errors, sign_in

PAGE = "app_pages/privacy.py"
PROFILE = "app_pages/customer_360.py"


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


def _live_customer() -> int:
    return int(
        get_store().scalar(
            "SELECT min(customer_id) FROM customers WHERE erased_at IS NULL AND email IS NOT NULL"
        )
    )


def test_admin_hands_over_data_then_erases_with_proof(own_store):
    customer = _live_customer()
    at = sign_in("admin", page=PROFILE)
    at.text_input[0].input(str(customer)).run()
    assert not at.exception and not errors(at), errors(at)
    assert any(e.label == "Consent history" for e in at.expander)
    email = next(b for b in at.selectbox if b.label == "E-mail consent")
    email.select(email.value is False).run()  # yes or unknown -> no; no -> yes
    _button(at, "Save consent").click().run()
    assert not at.exception and not errors(at), errors(at)
    history = next(df.value for df in at.dataframe if "Source" in df.value.columns)
    assert history.iloc[0]["Source"] == "Preference update" and history.iloc[0]["By"] == "admin"
    _button(at, "Prepare the personal-data archive").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert any(s.value.startswith("Access request 1:") for s in at.success)
    assert erasure.requests(get_store()).iloc[0]["kind"] == "access"
    erase = _button(at, "Erase this person")
    assert erase.disabled  # not before the confirmation
    next(c for c in at.checkbox if "cannot be undone" in c.label).check()
    next(t for t in at.text_input if t.label == "Type the customer id to confirm").input(
        str(customer)
    )
    at.run()
    _button(at, "Erase this person").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert any(s.value.startswith("Erasure 2:") for s in at.success)
    assert any("of the former values" in m.value and "**0**" in m.value for m in at.markdown)
    assert erasure.erased_at(get_store(), customer) is not None
    later = sign_in("admin", page=PROFILE)  # searched again: said erased, not "no match"
    later.text_input[0].input(str(customer)).run()
    assert any(f"Customer #{customer} was erased" in i.value for i in later.info)

    page = sign_in("admin", page=PAGE)
    assert not page.exception and not errors(page), errors(page)
    assert page.dataframe[0].value["Kind"].tolist() == ["Erasure", "Access (archive handed over)"]
    assert any("of the former values" in m.value for m in page.markdown)  # the proof
    assert any("Rows now" in str(df.value.columns.tolist()) for df in page.dataframe)


def test_retention_dry_run_and_apply_from_the_page(own_store):
    at = sign_in("admin", page=PAGE)
    plan = next(df.value for df in at.dataframe if "Rows now" in df.value.columns)
    assert plan["Table"].tolist() == ["Events", "Survey responses"]
    due = int(plan["Rows now"].sum())
    if not due:
        assert any(s.value.startswith("Nothing to delete") for s in at.success)
        return
    assert _button(at, "Apply retention now").disabled  # not before the confirmation
    if due:
        next(c for c in at.checkbox if c.label.startswith("Yes, delete or anonymise")).check()
        at.run()
        _button(at, "Apply retention now").click().run()
        assert not at.exception and not errors(at), errors(at)
        assert any(s.value.startswith("Retention applied") for s in at.success)


@pytest.mark.parametrize("role", ["manager", "marketer", "analyst"])
def test_other_roles_are_refused_and_see_no_privacy_actions(signed_in, role):
    at = signed_in(role, page=PAGE)
    assert any(e.startswith("Not allowed") for e in errors(at)), errors(at)
    if role == "manager":
        return
    at.switch_page(PROFILE).run()
    at.text_input[0].input(str(_live_customer())).run()
    assert not at.exception
    assert not [b for b in at.button if b.label == "Erase this person"]

"""AppTest: the Recommendations view for every role (managers are refused); an admin
computes the lists, then coverage, top products and a customer's list with reasons show."""

from __future__ import annotations

import pytest

from tests.app.conftest import errors, sign_in

PAGE = "app_pages/recommendations.py"


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.parametrize("role", ["admin", "marketer", "analyst"])
def test_each_allowed_role_sees_the_validation(signed_in, role):
    at = signed_in(role, page=PAGE)
    assert not at.exception, at.exception
    assert not errors(at)
    assert _metric(at, "Precision@5").endswith("%")
    assert "vs popularity" in next(m for m in at.metric if m.label == "Hit rate@5").delta
    assert at.dataframe  # the model against the baseline, offers and hits by method
    # Nothing stored in the demo store yet: said, and only admins may compute.
    assert any("recommend --score" in i.value for i in at.info)
    computes = [b for b in at.button if b.label == "Recompute for every customer"]
    assert bool(computes) == (role == "admin")


def test_manager_is_refused(signed_in):
    at = signed_in("manager", page=PAGE)
    assert any(e.startswith("Not allowed") for e in errors(at)), errors(at)
    assert not at.metric


def test_admin_computes_then_sees_coverage_products_and_a_customer_list(own_store):
    at = sign_in("admin", page=PAGE)
    next(b for b in at.button if b.label == "Recompute for every customer").click().run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("Recommended to") for s in at.success)
    assert float(_metric(at, "Coverage").rstrip("%")) > 80
    customer = at.number_input[0].value
    table = at.dataframe[-1].value
    assert len(table) >= 1 and "reason" in table.columns
    assert table["reason"].str.startswith("due: every").iloc[0]  # the example is due again
    assert any(f"customer_360?customer_id={customer}" in m.value for m in at.markdown)
    # Another role sees the stored lists too (no button), and a customer without any.
    other = sign_in("analyst", page=PAGE)
    assert not other.exception
    other.number_input[0].set_value(999_999).run()
    assert any("No recommendation for customer 999999" in i.value for i in other.info)

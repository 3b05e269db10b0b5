"""AppTest: the Recommendations view for every role (managers are refused); an admin
computes the lists, then coverage, top products and a customer's list with reasons show."""

from __future__ import annotations

import pytest

from crm_core import glossary, ingest
from crm_core.store import get_store
from crm_ui import data
from tests.app.conftest import errors, sign_in

PAGE = "app_pages/recommendations.py"
RECOMPUTE = "Recompute for every customer"
COMPUTED = "These recommendations were computed"


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.parametrize("role", ["admin", "marketer", "analyst"])
def test_each_allowed_role_sees_the_validation(signed_in, role):
    at = signed_in(role, page=PAGE)
    assert not at.exception, at.exception
    assert not errors(at)
    assert _metric(at, "Precision@5").endswith("%")
    assert "vs popularity" in next(m for m in at.metric if m.label == "Hit rate@5").delta
    helps = {m.label: m.proto.help for m in at.metric}
    assert helps["Precision@5"] == glossary.help_for("precision_at_k")  # said in the Glossary
    assert "Hit rate@5: the share of customers" in " ".join(c.value for c in at.caption)
    assert [t.value for t in at.title] == ["Recommended products"]
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
    table = at.table[-1].value  # a static table: the reasons wrap instead of being cut
    assert len(table) >= 1 and "Why" in table.columns
    assert table["Why"].str.startswith("due: every").iloc[0]  # the example is due again
    # The score is a 0-100 index (it ranks the offers), not a percent; any offer shows >= 1.
    score = table["Score (0-100)"].astype(int)
    assert score.between(1, 100).all()
    assert any("not a chance of buying" in c.value for c in at.caption)
    assert any(c.value.startswith(COMPUTED) for c in at.caption)
    assert any(f"customer_360?customer_id={customer}" in m.value for m in at.markdown)
    # Another role sees the stored lists too (no button), and a customer without any.
    other = sign_in("analyst", page=PAGE)
    assert not other.exception
    other.number_input[0].set_value(999_999).run()
    assert any("No recommendation for customer 999999" in i.value for i in other.info)


def test_lists_computed_before_an_import_say_so_until_recomputed(own_store, tmp_path):
    at = sign_in("admin", page=PAGE)
    next(b for b in at.button if b.label == RECOMPUTE).click().run()
    assert not at.exception, at.exception
    assert not [w for w in at.warning if COMPUTED in w.value]
    # A product imported after the lists were computed (the import page forgets the caches).
    path = tmp_path / "products.csv"
    path.write_text("product_id,name\n99000001,Test kettle\n")
    ingest.import_file(get_store(), "products", path, user="admin")
    data.tables_changed("products", "import_batches")
    other = sign_in("analyst", page=PAGE)
    assert not other.exception, other.exception
    notes = [w.value for w in other.warning if COMPUTED in w.value]
    assert notes and "before the import of" in notes[0] and "An admin recomputes" in notes[0]
    at = sign_in("admin", page=PAGE)
    notes = [w.value for w in at.warning if COMPUTED in w.value]
    assert notes and "Recompute them with the button below" in notes[0]
    next(b for b in at.button if b.label == RECOMPUTE).click().run()
    assert not at.exception, at.exception
    assert not [w for w in at.warning if COMPUTED in w.value]
    assert any(c.value.startswith(COMPUTED) for c in at.caption)

"""AppTest: the Duplicates view (admins): the review queue, merge, decisions and unmerge;
other roles are refused."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from crm_core import merge, schema
from crm_core.store import get_store, utcnow
from tests.app.conftest import errors, sign_in

PAGE = "app_pages/duplicates.py"


def _plant_run(pairs: list[tuple[int, int, float]]) -> None:
    """A duplicate run written straight into its tables (as dedupe.find_duplicates would)."""
    store = get_store()
    comparisons = json.dumps(
        [
            {"comparison": "email", "label": "exact match", "weight": 9.5},
            {"comparison": "city", "label": "different", "weight": -2.0},
        ]
    )
    with store.begin() as conn:
        conn.execute(
            schema.table("duplicate_runs")
            .insert()
            .values(
                run_id=1,
                created_at=utcnow(),
                created_by="admin",
                threshold=0.9,
                customers=100,
                pairs=len(pairs),
                clusters=len(pairs),
                seconds=0.5,
                model="{}",
            )
        )
        conn.execute(
            schema.table("duplicate_pairs").insert(),
            [
                {
                    "run_id": 1,
                    "customer_id_l": lo,
                    "customer_id_r": hi,
                    "match_probability": p,
                    "match_weight": 7.5,
                    "cluster_id": lo,
                    "comparisons": comparisons,
                }
                for lo, hi, p in pairs
            ],
        )


def _live_ids(n: int) -> list[int]:
    return (
        get_store()
        .read_df(
            sa.select(schema.customers.c.customer_id)
            .where(schema.customers.c.erased_at.is_(None))
            .order_by(schema.customers.c.customer_id)
            .limit(n)
        )["customer_id"]
        .astype(int)
        .tolist()
    )


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


def test_admin_reviews_merges_and_unmerges(own_store):
    a, b, c, d = _live_ids(4)
    _plant_run([(a, b, 0.99), (c, d, 0.95)])
    at = sign_in("admin", page=PAGE)
    assert not at.exception and not errors(at), errors(at)
    assert any("2 cluster(s) to review" in cap.value for cap in at.caption)
    assert any(f"Why {a} and {b} match" in e.label for e in at.expander)
    names = merge.customer_names(get_store(), [a, b])
    assert any(names[a] and names[a] in o for o in at.selectbox[0].options)  # names beside ids
    side = at.dataframe[1].value  # one row per field, deciding ones first; a column each
    assert side.iloc[:3, 0].tolist() == ["Name", "E-mail consent", "SMS consent"]
    assert list(side.columns[1:]) == [f"Customer {a}", f"Customer {b}"]
    reasons = at.dataframe[2].value
    assert reasons.iloc[0, 0].startswith("Starting point")
    assert abs(reasons["match_weight"].sum() - 7.5) < 0.01  # the rows add up to the total
    _button(at, "Later").click().run()
    assert not at.exception
    queue = merge.review_queue(get_store())
    assert queue["cluster_key"].tolist() == [f"{c},{d}", f"{a},{b}"]  # later ones last
    assert at.selectbox[0].value == f"{c},{d}"
    _button(at, "Merge").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert any("merged into" in s.value for s in at.success)
    history = merge.history(get_store())
    assert len(history) == 1 and history.iloc[0]["status"] == "in force"
    _button(at, "Not the same").click().run()
    assert any("Nothing to review" in s.value for s in at.success)
    next(x for x in at.checkbox if x.label == "Yes, undo this merge").check()
    _button(at, "Unmerge").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert merge.history(get_store()).iloc[0]["status"] == "undone"
    assert any("Every merge listed is undone" in cap.value for cap in at.caption)


def test_empty_states(own_store):
    at = sign_in("admin", page=PAGE)
    assert not at.exception
    infos = [i.value for i in at.info]
    assert any("No duplicate search yet" in i for i in infos)
    assert any("No merges yet" in i for i in infos)


@pytest.mark.parametrize("role", ["manager", "marketer", "analyst"])
def test_other_roles_are_refused(signed_in, role):
    at = signed_in(role, page=PAGE)
    assert not at.exception
    assert any(e.startswith("Not allowed") for e in errors(at)), errors(at)


def test_find_duplicates_button_stores_a_run(own_store):
    at = sign_in("admin", page=PAGE)
    _button(at, "Find duplicates").click().run(timeout=300)
    assert not at.exception and not errors(at), errors(at)
    assert at.success, "the run's summary is shown"
    assert at.success[0].value.startswith("Found ") and "to review" in at.success[0].value
    assert "cluster " not in at.success[0].value  # counts only, the queue lists them
    assert any(cap.value.startswith("Last run 1:") for cap in at.caption)


def test_customer_360_follows_a_merge(own_store):
    keep, copy = _live_ids(2)
    merge.merge_customers(get_store(), keep, [copy], by="admin", reason="same person")
    at = sign_in("admin", page="app_pages/customer_360.py")
    at.text_input[0].input(str(copy)).run()
    assert not at.exception
    warned = " ".join(w.value for w in at.warning)
    assert f"Customer #{copy} was merged into [#{keep}](customer_360?customer_id={keep})" in warned
    at.text_input[0].input(str(keep)).run()
    assert not at.exception and not errors(at)
    assert any(c.value.startswith(f"Also known as #{copy}:") for c in at.caption)

"""Consent history: rows for imports (append, upsert, undo), preference updates, merges and
unmerges, on DuckDB and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import audit, consent, merge
from crm_core.errors import CRMError
from crm_core.ingest import import_file, undo
from crm_core.schema import audit_log, consent_changes, customers

pytestmark = pytest.mark.both_stores

HEADER = "customer_id,email,country,signup_at,consent_email,consent_sms\n"


def write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content, encoding="utf-8")
    return path


def changes(store) -> pd.DataFrame:
    c = consent_changes.c
    frame = store.read_df(
        sa.select(
            c.customer_id, c.channel, c.old_value, c.new_value, c.source, c.changed_by, c.batch_id
        ).order_by(c.change_id)
    )
    for name in ("old_value", "new_value"):
        frame[name] = [consent.as_bool(v) for v in frame[name]]
    return frame


def rows(frame: pd.DataFrame) -> list[tuple]:
    return [
        (int(r.customer_id), r.channel, r.old_value, r.new_value, r.source)
        for r in frame.itertuples()
    ]


@pytest.fixture
def imported(store, tmp_path):
    """Customers 1-3 appended: 1 yes/no, 2 no/unknown, 3 unknown/unknown."""
    content = HEADER + (
        "1,ann@example.com,US,2024-01-01,true,false\n"
        "2,bob@example.com,GB,2024-01-02,false,\n"
        "3,cy@example.com,GB,2024-01-03,,\n"
    )
    import_file(store, "customers", write(tmp_path, "c.csv", content), user="ada")
    return store


def test_an_append_records_the_consent_of_its_new_customers(imported):
    found = changes(imported)
    assert sorted(rows(found)) == [
        (1, "email", None, True, "import"),
        (1, "sms", None, False, "import"),
        (2, "email", None, False, "import"),
    ]
    assert set(found["changed_by"]) == {"ada"}
    assert found["batch_id"].nunique() == 1 and pd.notna(found["batch_id"].iloc[0])


def test_an_upsert_records_what_it_changed_and_its_undo_the_reverse(imported, tmp_path):
    content = HEADER + (
        "1,ann@example.com,US,2024-01-01,false,false\n"  # e-mail yes -> no, sms unchanged
        "2,bob@example.com,GB,2024-01-02,false,\n"  # unchanged
        "4,di@example.com,GB,2024-01-04,true,true\n"  # new
    )
    import_file(imported, "customers", write(tmp_path, "u.csv", content), mode="upsert", user="bo")
    after = changes(imported)
    upsert = after[after["changed_by"] == "bo"]
    assert sorted(rows(upsert)) == [
        (1, "email", True, False, "import"),
        (4, "email", None, True, "import"),
        (4, "sms", None, True, "import"),
    ]
    batch = int(upsert["batch_id"].iloc[0])
    undo(imported, batch_id=batch, user="cy")
    reverse = changes(imported)
    reverse = reverse[reverse["source"] == "import_undo"]
    assert sorted(rows(reverse)) == [
        (1, "email", False, True, "import_undo"),
        (4, "email", True, None, "import_undo"),
        (4, "sms", True, None, "import_undo"),
    ]
    assert set(reverse["changed_by"]) == {"cy"} and set(reverse["batch_id"]) == {batch}
    # the undo itself left the customers as before
    kept = imported.scalar(sa.select(customers.c.consent_email).where(customers.c.customer_id == 1))
    assert kept is True or kept == 1


def test_undo_after_a_preference_update_records_the_value_then_in_force(imported, tmp_path):
    content = HEADER + "1,ann@example.com,US,2024-01-01,false,false\n"
    import_file(imported, "customers", write(tmp_path, "u.csv", content), mode="upsert")
    consent.set_consent(imported, 1, "email", None, by="mia")  # after the import
    undo(imported, table="customers", user="cy")
    last = changes(imported).iloc[-1]
    assert (last.old_value, last.new_value, last.source) == (None, True, "import_undo")


def test_set_consent_updates_records_and_audits(imported):
    assert consent.set_consent(imported, 2, "email", True, by="mia") is True
    assert consent.set_consent(imported, 2, "email", True, by="mia") is False  # no change
    value = imported.scalar(
        sa.select(customers.c.consent_email).where(customers.c.customer_id == 2)
    )
    assert bool(value) is True
    shown = consent.history(imported, 2)
    assert list(shown.columns) == list(consent.HISTORY_COLUMNS)
    newest = shown.iloc[0]
    assert (newest.channel, newest.source, newest.changed_by) == ("email", "preference", "mia")
    assert consent.as_bool(newest.old_value) is False and consent.as_bool(newest.new_value)
    assert len(shown) == 2  # newest first: the preference, then the import
    assert shown.iloc[1].source == "import"
    words = consent.history_for_display(shown)
    assert words.iloc[0]["Before"] == "No" and words.iloc[0]["After"] == "Yes"
    assert words.iloc[0]["Source"] == "Preference update"
    logged = imported.read_df(
        sa.select(audit_log.c.actor, audit_log.c.target, audit_log.c.details).where(
            audit_log.c.action == "consent_changed"
        )
    )
    assert len(logged) == 1 and logged.iloc[0]["target"] == "customer 2"
    assert "bob@" not in logged.iloc[0]["details"]
    assert audit.verify(imported).ok


def test_set_consent_refuses_unknown_customers_and_channels(imported):
    with pytest.raises(CRMError, match="Customer 99 does not exist"):
        consent.set_consent(imported, 99, "email", True, by="mia")
    with pytest.raises(CRMError, match="allowed: email, sms"):
        consent.set_consent(imported, 1, "fax", True, by="mia")
    assert consent.history(imported, 99).empty


def test_merge_and_unmerge_record_the_consent_they_changed(imported, tmp_path):
    content = HEADER + "5,ANN@example.com,US,2024-02-01,false,true\n"
    import_file(imported, "customers", write(tmp_path, "copy.csv", content))
    done = merge.merge_customers(imported, 1, [5], by="ada")
    found = changes(imported)
    merged = found[found["source"] == "merge"]
    assert rows(merged) == [(1, "email", True, False, "merge")]  # sms stays no
    assert set(merged["changed_by"]) == {"ada"}
    merge.unmerge(imported, done.merge_id, by="bo")
    back = changes(imported)
    back = back[back["source"] == "unmerge"]
    assert rows(back) == [(1, "email", False, True, "unmerge")]
    assert set(back["changed_by"]) == {"bo"}


def test_record_skips_rows_without_a_change(store):
    with store.begin() as conn:
        written = consent.record(
            conn,
            [
                {
                    "customer_id": 1,
                    "channel": "email",
                    "old_value": True,
                    "new_value": True,
                    "source": "preference",
                    "changed_by": "x",
                },
                {
                    "customer_id": 1,
                    "channel": "sms",
                    "old_value": None,
                    "new_value": False,
                    "source": "preference",
                    "changed_by": "x",
                },
            ],
        )
    assert written == 1
    assert rows(changes(store)) == [(1, "sms", None, False, "preference")]

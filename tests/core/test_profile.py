"""Customer search and profile."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import profile
from crm_core.errors import NotAllowedError
from crm_core.schema import customers
from tests.core import tiny

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL


def test_search_by_id_email_and_name(store):
    tiny.load(store)
    assert profile.search(store, "2", "marketer")["customer_id"].tolist()[0] == 2
    assert profile.search(store, "BOB@", "marketer")["customer_id"].tolist() == [2]
    assert profile.search(store, "   ", "marketer").empty
    assert profile.search(store, "nobody", "admin").empty


def test_search_by_phone_ignores_formatting(store):
    tiny.load(store)
    with store.begin() as conn:
        conn.execute(
            sa.update(customers).where(customers.c.customer_id == 3).values(phone="+15551234567")
        )
    assert profile.search(store, "555 123 4567", "marketer")["customer_id"].tolist() == [3]
    assert profile.search(store, "(555) 123-45", "admin")["customer_id"].tolist() == [3]


def test_roles_without_personal_data_search_by_id_only_and_see_it_masked(store):
    tiny.load(store)
    for text in ("bob@example.com", "BOB@", "bob", "+1 555"):
        with pytest.raises(NotAllowedError, match="customer id"):
            profile.search(store, text, "analyst")
    found = profile.search(store, "2", "analyst")
    assert found["customer_id"].tolist() == [2]
    assert found["email"].tolist() == ["b***@example.com"]


def test_profile_and_history(store):
    tiny.load(store)
    person = profile.customer(store, 1, "marketer")
    assert person["email"] == "ann@example.com"
    assert pd.isna(person["clv"])  # no scores until scoring runs
    history = profile.history(store, 1, "marketer")
    assert history["orders"]["order_id"].tolist() == [3, 2, 1]  # newest first
    assert len(history["surveys"]) == 3
    assert "comment" in history["surveys"].columns
    spend = profile.monthly_spend(history["orders"])
    assert spend["revenue"].tolist() == [100.0, 80.0]
    assert profile.customer(store, 999, "marketer") is None


def test_profile_hides_personal_data_and_comments_from_other_roles(store):
    tiny.load(store)
    assert profile.customer(store, 1, "analyst")["email"] == "a***@example.com"
    history = profile.history(store, 1, "manager")
    assert len(history["surveys"]) == 3
    assert "comment" not in history["surveys"].columns


def test_segment_facts_name_rfm_segment_and_saved_segments(store):
    from crm_core import segments

    tiny.load(store)
    segments.save_segment(
        store,
        "Big spenders",
        {"match": "all", "rules": [{"field": "monetary", "op": "gte", "value": 150}]},
        owner="test",
        role="marketer",
    )
    segments.save_segment(
        store,
        "Brits",
        {"match": "all", "rules": [{"field": "country", "op": "eq", "value": "GB"}]},
        owner="test",
        role="marketer",
    )
    facts = profile.segment_facts(store, 1)
    assert facts["rfm_segment"] is not None
    assert facts["segments"] == ["Big spenders"]
    # c3 spent 80 + 999; c4 only 60 (its other order was refunded)
    assert profile.segment_facts(store, 3)["segments"] == ["Big spenders", "Brits"]
    assert profile.segment_facts(store, 4)["segments"] == ["Brits"]

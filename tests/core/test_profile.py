"""Customer search and profile."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_core import profile
from tests.core import tiny

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL


def test_search_by_id_email_and_name(store):
    tiny.load(store)
    assert profile.search(store, "2")["customer_id"].tolist()[0] == 2
    assert profile.search(store, "BOB@")["customer_id"].tolist() == [2]
    assert profile.search(store, "   ").empty
    assert profile.search(store, "nobody").empty


def test_profile_and_history(store):
    tiny.load(store)
    person = profile.customer(store, 1)
    assert person["email"] == "ann@example.com"
    assert pd.isna(person["clv"])  # no scores until scoring runs
    history = profile.history(store, 1)
    assert history["orders"]["order_id"].tolist() == [3, 2, 1]  # newest first
    assert len(history["surveys"]) == 3
    spend = profile.monthly_spend(history["orders"])
    assert spend["revenue"].tolist() == [100.0, 80.0]
    assert profile.customer(store, 999) is None


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

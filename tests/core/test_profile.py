"""Customer search and profile."""

from __future__ import annotations

import pandas as pd

from crm_core import profile
from tests.core import tiny


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

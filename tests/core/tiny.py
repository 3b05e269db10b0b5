"""A tiny exact store: four customers, nine orders, a few survey answers (hand-computed KPIs).

Period under test: 2024-02-01 .. 2024-02-29 (29 days); previous: 2024-01-03 .. 2024-01-31;
before that: 2023-12-05 .. 2024-01-02.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from crm_core.filters import Filters
from crm_core.store import Store

PERIOD = Filters(start=date(2024, 2, 1), end=date(2024, 2, 29))

CUSTOMERS = pd.DataFrame(
    {
        "customer_id": [1, 2, 3, 4],
        "email": ["ann@example.com", "bob@example.com", "cy@example.com", "di@example.com"],
        "country": ["US", "US", "GB", "GB"],
        "signup_at": pd.to_datetime(["2023-11-01", "2023-11-02", "2024-02-01", "2023-12-01"]),
        "consent_email": [True, True, False, True],
    }
)

ORDERS = pd.DataFrame(
    {
        "order_id": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "customer_id": [1, 1, 1, 2, 3, 4, 4, 2, 3],
        "ordered_at": pd.to_datetime(
            [
                "2024-01-10 10:00",  # c1 previous
                "2024-02-05 09:00",  # c1 current
                "2024-02-20 18:30",  # c1 current (app)
                "2024-01-15 12:00",  # c2 previous (store)
                "2024-02-10 08:00",  # c3 current: first order ever -> new
                "2023-12-20 15:00",  # c4 before previous
                "2024-02-12 11:00",  # c4 refunded: excluded everywhere
                "2024-02-29 23:59",  # c2 current, last minute of the period
                "2024-03-01 00:00",  # c3 after the period: excluded
            ]
        ),
        "amount": [100.0, 50.0, 30.0, 200.0, 80.0, 60.0, 40.0, 10.0, 999.0],
        "channel": ["web", "web", "app", "store", "web", "web", "web", "web", "web"],
        "status": ["completed"] * 6 + ["refunded", "completed", "completed"],
    }
)

SURVEYS = pd.DataFrame(
    {
        "response_id": range(1, 11),
        "customer_id": [1, 2, 3, 4, 1, 2, 3, 1, 2, 3],
        "answered_at": pd.to_datetime(["2024-02-02"] * 5 + ["2024-01-20"] * 2 + ["2024-02-03"] * 3),
        "survey": ["nps"] * 7 + ["csat"] * 3,
        "score": [10, 9, 7, 3, 0, 10, 8, 5, 4, 2],
    }
)


def load(store: Store, *, surveys: bool = True) -> Store:
    """Put the tiny data set into `store`."""
    with store.begin() as conn:
        store.insert_df(conn, "customers", CUSTOMERS)
        store.insert_df(conn, "orders", ORDERS)
        if surveys:
            store.insert_df(conn, "survey_responses", SURVEYS)
    return store

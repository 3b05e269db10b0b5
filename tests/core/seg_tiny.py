"""The tiny store plus names, phones, a suppression and an erasure, with its 360 table built.

As of 2024-03-01 (the last completed order), hand-computed:
customer  recency  frequency  monetary  R F M  segment
1         10       3          180       2 4 2  At risk
2         1        2          210       3 2 3  About to sleep
3         0        2          1079      4 2 4  Potential loyalist
4         72       1          60        1 1 1  Lost
"""

from __future__ import annotations

from crm_core import features
from crm_core.store import Store
from tests.core import tiny


def load(store: Store) -> Store:
    """Tiny data, then the 360 table."""
    tiny.load(store)
    features.refresh(store)
    return store

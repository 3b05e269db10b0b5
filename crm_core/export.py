"""Target-list exports and their audit trail (`export_log`)."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from crm_core.schema import export_log
from crm_core.store import Store


def read_export_log(store: Store, limit: int = 500) -> pd.DataFrame:
    """The most recent exports, newest first (admins read this)."""
    stmt = sa.select(export_log).order_by(export_log.c.exported_at.desc()).limit(limit)
    return store.read_df(stmt)

"""Plain language on the page: the summary block a view opens with, the sentence under a
technical metric (the words come from crm_core.summaries and crm_core.glossary), shares that
never round to a lie, and the note that stored figures predate a later import."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

import pandas as pd
import streamlit as st

from crm_core import ingest, summaries
from crm_core.display import format_share as percent  # noqa: F401 - the pages' name for it
from crm_ui import data

SUMMARY_KEY = "plain_summary"
"""Key of the summary container (its CSS class is `st-key-plain_summary`)."""
IMPORTS_READ = 200
"""Import batches read (newest first) to find the last one that changed some tables."""


def summary(sentences: list[str], part: str = "") -> None:
    """The two or three sentences for a manager, in a bordered box, starting "In short:"
    (`part` names a second summary on the same page, e.g. a tab's)."""
    with st.container(border=True, key=f"{SUMMARY_KEY}_{part}" if part else SUMMARY_KEY):
        st.markdown(f"**{summaries.MARKER}:** " + " ".join(sentences))


def meaning(column, sentence: str | None) -> None:
    """Under a technical metric: what it means for the business, in one sentence."""
    if sentence:
        column.caption(sentence)


def when(moment: datetime) -> str:
    """A store time (naive UTC) as the pages write it: "30 Nov 2026 13:05 UTC"."""
    return f"{moment:%d %b %Y %H:%M} UTC"


@data.reads("import_batches", show_spinner=False, ttl=60)
def last_import(tables: tuple[str, ...]) -> datetime | None:
    """When an import (or the undo of one) last changed one of `tables` (None: never).
    Short-lived, so that an import from the command line shows within a minute."""
    batches = ingest.history(data.store(), limit=IMPORTS_READ)
    latest = None
    for row in batches.itertuples(index=False):
        try:
            written = json.loads(row.rows or "{}")
        except ValueError:
            continue
        if not any(written.get(table) for table in tables):
            continue
        for moment in (row.imported_at, row.undone_at):
            if not pd.isna(moment):
                stamp = pd.Timestamp(moment).to_pydatetime()
                latest = stamp if latest is None else max(latest, stamp)
    return latest


def stale_note(
    what: str, computed_at: datetime | None, tables: Iterable[str], recompute: str
) -> bool:
    """Say when `what` was computed and, when an import changed `tables` since, that it
    predates that import and how to recompute; True when it does."""
    if computed_at is None:
        return False
    imported = last_import(tuple(sorted(tables)))
    if imported is None or imported <= computed_at:
        st.caption(f"{what} computed {when(computed_at)}.")
        return False
    st.warning(
        f"{what} computed {when(computed_at)}, before the import of {when(imported)}: "
        f"they do not include it yet. {recompute}",
        icon=":material/update:",
    )
    return True

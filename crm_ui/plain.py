"""Plain language on the page: the summary block a view opens with, and the sentence under a
technical metric (the words come from crm_core.summaries and crm_core.glossary)."""

from __future__ import annotations

import streamlit as st

from crm_core import summaries

SUMMARY_KEY = "plain_summary"
"""Key of the summary container (its CSS class is `st-key-plain_summary`)."""


def summary(sentences: list[str], part: str = "") -> None:
    """The two or three sentences for a manager, in a bordered box, starting "In short:"
    (`part` names a second summary on the same page, e.g. a tab's)."""
    with st.container(border=True, key=f"{SUMMARY_KEY}_{part}" if part else SUMMARY_KEY):
        st.markdown(f"**{summaries.MARKER}:** " + " ".join(sentences))


def meaning(column, sentence: str | None) -> None:
    """Under a technical metric: what it means for the business, in one sentence."""
    if sentence:
        column.caption(sentence)

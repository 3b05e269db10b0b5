"""The app's few CSS rules, each where Streamlit has no option for it; injected once per run
by app.py (`style.inject()`). Layout comes from Streamlit itself (horizontal containers that
wrap); colours come from the theme, so every rule here reads in light and in dark."""

from __future__ import annotations

import streamlit as st

# Captions: Streamlit draws them in a faded text colour that falls below the WCAG AA
# contrast of 4.5:1 for small text (axe-core rule color-contrast). The body text colour at
# 80% opacity is about 6:1 on the light background and 11:1 on the dark one.
CAPTIONS = """
[data-testid="stCaptionContainer"] { color: inherit; opacity: 0.8; }
"""

# The segment builder's rule rows (crm_ui/segment_ui.py: containers keyed rule_<part>_<id>):
# each part keeps a readable width, so on a narrow screen the row wraps (field and operator,
# then the value) instead of squeezing the controls until their text is cut off.
RULE_ROW = """
[data-testid="stLayoutWrapper"]:has(> [class*="st-key-rule_field_"]) { flex: 3 1 11rem; }
[data-testid="stLayoutWrapper"]:has(> [class*="st-key-rule_op_"]) { flex: 2 1 9rem; }
[data-testid="stLayoutWrapper"]:has(> [class*="st-key-rule_value_"]) { flex: 4 1 12rem; }
"""

# Metric cards in a horizontal container (`st.container(horizontal=True)`, one container per
# card): Streamlit lets a card shrink to 8rem and then cuts its label and figure with "…"
# ("R… $… +…" at 800 px). Here a card is at least as wide as its metric (label, figure,
# change; a caption below it wraps), so a row of cards wraps onto more lines instead. Cards
# in st.columns are not touched (columns cannot wrap).
_ROW = '[data-testid="stHorizontalBlock"]'
_METRIC = '[data-testid="stElementContainer"] > [data-testid="stMetric"]'
CARDS = f"""
{_ROW} > [data-testid="stLayoutWrapper"]:has(> [data-testid="stVerticalBlock"] > {_METRIC})
  {{ min-width: min-content; }}
{_ROW} > [data-testid="stLayoutWrapper"] > [data-testid="stVerticalBlock"] > {_METRIC},
{_ROW} > {_METRIC} {{ min-width: max-content; }}
"""

# Containers side by side in a horizontal container, keyed wrap_* (one share of the row) or
# wide_* (two shares): next to each other while each gets about 24rem, else one under the
# other (Segmentation's R x F grid and movement; Customer 360's profile table and chart).
WRAP = """
[data-testid="stLayoutWrapper"]:has(> [class*="st-key-wrap_"]) { flex: 1 1 24rem; }
[data-testid="stLayoutWrapper"]:has(> [class*="st-key-wide_"]) { flex: 2 1 24rem; }
"""


CSS = CAPTIONS + RULE_ROW + CARDS + WRAP


def inject() -> None:
    """Add the app's CSS to the page (a style-only st.html takes no space)."""
    st.html(f"<style>{CSS}</style>")

"""The audit log on the Users & audit page, and the audit row of every download of a target
list or of personal data (`record_download`, a download button's on_click)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from crm_core import audit
from crm_core.errors import CRMError
from crm_ui import tables
from crm_ui.data import store
from crm_ui.session import current_user

ROWS_SHOWN = 500
"""Audit rows the page lists at most (newest first); the CLI lists any number."""


def record_download(what: str, file_name: str, details: dict[str, Any] | None = None) -> None:
    """Audit one download (a download button's on_click): what, which file, who."""
    user = current_user()
    audit.record_now(
        store(),
        "download",
        actor=getattr(user, "username", None),
        target=what,
        details={"file_name": file_name, **(details or {})},
    )


def _labelled(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "seq": rows["seq"],
            "at": rows["at"],
            "who": [a if isinstance(a, str) and a else "(system)" for a in rows["actor"]],
            "what": [audit.ACTION_LABELS.get(a, a) for a in rows["action"]],
            "target": rows["target"],
            "details": [audit.details_words(d) for d in rows["details"]],
        }
    )


def audit_section() -> None:
    """Filters (actions in words, user), the newest rows, and *Verify the chain*."""
    current = store()
    st.caption(
        "Every sensitive action (sign-in failures and lockouts, user and role changes, imports "
        "and undos, exports and downloads, merges, erasures, access requests, consent and "
        "suppression changes, retention runs), newest first. Each row is chained to the one "
        "before by a hash, so an edited or deleted row is found by *Verify the chain*."
    )
    left, right = st.columns([3, 1])
    picked = left.multiselect(
        "Actions",
        list(audit.ACTION_LABELS),
        format_func=audit.ACTION_LABELS.get,
        placeholder="All actions",
        key="audit_actions",
    )
    who = right.selectbox(
        "Done by", audit.actors(current), index=None, placeholder="Everyone", key="audit_user"
    )
    rows = audit.entries(current, actions=picked, actor=who, limit=ROWS_SHOWN)
    if rows.empty:
        st.info("No audit rows match." if picked or who else "The audit log is empty so far.")
    else:
        tables.show_table(
            _labelled(rows),
            column_config={
                "seq": st.column_config.NumberColumn("Row", format="%d"),
                "at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                "who": "Who",
                "what": "What",
                "target": "To what",
                "details": st.column_config.TextColumn("Details", width="large"),
            },
        )
        if len(rows) == ROWS_SHOWN:
            st.caption(
                f"The newest {ROWS_SHOWN} rows; narrow the filters, or use "
                "`python -m crm_core audit list --limit N`."
            )
    if st.button("Verify the chain", key="audit_verify"):
        try:
            check = audit.verify(current)
        except CRMError as exc:
            st.error(str(exc))
            return
        if check.ok:
            st.success(check.summary())
        else:
            st.error(check.summary())
            for problem in check.problems[1:]:
                st.caption(f"• {problem}")

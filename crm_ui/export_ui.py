"""Exports in the app: the Segment builder's export form, its result, and the export history.

The result of an export is kept in session state, so it stays on screen after a download
(download buttons do not rerun the page either) and after any other widget rerun. Files are
fetched through `export.open_export`, which checks the owner (or admin) and that the file
still exists; only file names are shown, never a server path.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from crm_core import auth, export
from crm_core.errors import CRMError
from crm_ui import audit_ui, data, segment_ui, tables
from crm_ui.data import store

RESULT_KEY = "export_result"
"""Session-state key of the last export's summary (plain values, no paths)."""

HISTORY_COLUMNS = {
    "export_id": st.column_config.NumberColumn("Export", format="%d"),
    "exported_at": st.column_config.DatetimeColumn("When (UTC)", format=tables.DATETIME_FORMAT),
    "exported_by": "By",
    "segment_name": "Segment",
    "segment_version": st.column_config.NumberColumn("Version", format="%d"),
    "channel": "Channel",
    "format": "Format",
    "rows": st.column_config.NumberColumn("Rows", format="%d"),
    "available": st.column_config.CheckboxColumn(
        "File kept", help="The file is still on the server and can be downloaded again."
    ),
    "file": "File",
}


def export_tab(user: auth.User, names: list[str]) -> None:
    """The Segment builder's Export tab: form, last result, the user's own past exports."""
    if not user.can("export_lists"):
        st.info(f"The {user.role} role may not export target lists.")
        return
    if names:
        _export_form(user, names)
    else:
        st.info("Save a segment first; exports are made from saved segments.")
    last_result(user)
    st.subheader("Your exports")
    history_panel(user, own_only=True)


def _export_form(user: auth.User, names: list[str]) -> None:
    allowed, default = segment_ui.export_columns(user.role)
    with st.form("export"):
        target = st.selectbox("Segment to export", names, help="Its latest version.")
        channel = st.selectbox(
            "Channel",
            export.CHANNELS,
            help="email/sms keep only customers with consent and an address "
            "for it; suppressed and erased customers are always left out.",
        )
        columns = st.multiselect(
            "Columns",
            allowed,
            default=default,
            help="Personal columns are offered only to roles allowed to export them.",
        )
        fmt = st.selectbox("Format", export.FORMATS)
        control = st.slider(
            "Control group (%)",
            0,
            50,
            0,
            help="Randomly held out and recorded, to measure the lift later.",
        )
        go = st.form_submit_button("Export")
    if not go:
        return
    try:
        done = export.export_segment(
            store(),
            target,
            user=user,
            channel=channel,
            fmt=fmt,
            columns=columns,
            control_share=control / 100,
        )
    except CRMError as exc:
        st.error(str(exc))
        return
    data.tables_changed(*done.tables_written)
    st.session_state[RESULT_KEY] = _summary(done, user)


def _summary(done: export.ExportResult, user: auth.User) -> dict[str, Any]:
    """What the result panel shows, as plain values (the file's name, not its path)."""
    return {
        "username": user.username,
        "export_id": done.export_id,
        "segment": done.segment_name,
        "version": done.segment_version,
        "channel": done.channel,
        "file": done.path.name,
        "rows": done.rows,
        "selected": done.selected,
        "control": done.control,
        "campaign_id": done.campaign_id,
        "excluded": dict(done.excluded),
        "neutralised": dict(done.neutralised),
        "sha256": done.sha256,
    }


def last_result(user: auth.User) -> None:
    """The last export of this session (counts, exclusions, downloads), until dismissed."""
    result = st.session_state.get(RESULT_KEY)
    if not result or result["username"] != user.username:
        return
    with st.container(border=True):
        st.success(
            f"Exported {result['rows']:,} of {result['selected']:,} customers of "
            f"{result['segment']} v{result['version']} for {result['channel']} "
            f"({result['control']:,} held out as control). File {result['file']}, "
            f"sha256 {result['sha256'][:16]}..."
        )
        excluded = pd.DataFrame(
            {
                "reason": list(export.EXCLUSION_REASONS.values()),
                "customers": [result["excluded"].get(k, 0) for k in export.EXCLUSION_REASONS],
            }
        )
        tables.show_table(excluded)
        if result["neutralised"]:
            cells = ", ".join(f"{c}: {n:,}" for c, n in result["neutralised"].items())
            st.caption(
                "Text that a spreadsheet would run as a formula got a leading ' "
                f"(cells per column: {cells})."
            )
        download_buttons(user, result["export_id"], key="export_last")
        st.button("Hide this result", key="export_hide", on_click=_forget_result)


def _forget_result() -> None:
    st.session_state.pop(RESULT_KEY, None)


def download_buttons(user: auth.User, export_id: int, *, key: str) -> None:
    """Download the file of a past export and its manifest (owner or admin, while it exists)."""
    try:
        opened = export.open_export(store(), export_id, user)
    except CRMError as exc:
        st.warning(str(exc))
        return
    left, right = st.columns(2)
    left.download_button(
        f"Download {opened.name}",
        opened.read,  # read when clicked: a large file is not held in memory per rerun
        file_name=opened.name,
        mime=opened.mime,
        key=f"{key}_file_{export_id}",
        on_click=audit_ui.record_download,
        args=(f"export {export_id}", opened.name),
    )
    if opened.has_manifest:
        right.download_button(
            "Download the manifest (JSON)",
            opened.read_manifest,
            file_name=opened.manifest_name,
            mime="application/json",
            key=f"{key}_manifest_{export_id}",
            on_click="ignore",
            help="Counts, exclusions, definition, columns and the file's sha256.",
        )


def history_panel(user: auth.User, *, own_only: bool) -> None:
    """Past exports (own, or everyone's for an admin) and downloads of the ones still kept."""
    history = export.export_history(store(), user, own_only=own_only)
    if history.empty:
        st.info("No exports yet. Every export of a target list will be recorded here.")
        return
    order = [
        c for c in HISTORY_COLUMNS if c in history.columns and (c != "exported_by" or not own_only)
    ]
    shown = history[order]
    tables.show_table(
        shown, column_config={k: v for k, v in HISTORY_COLUMNS.items() if k in shown.columns}
    )
    kept = history.loc[history["available"]]
    if kept.empty:
        st.caption("None of these files is still on the server; export the segment again.")
        return
    labels = {}
    for r in kept.itertuples():
        by = "" if own_only else f" (by {r.exported_by})"
        labels[int(r.export_id)] = (
            f"#{r.export_id} {r.segment_name} v{r.segment_version}, "
            f"{r.exported_at:%Y-%m-%d %H:%M}, {r.file}{by}"
        )
    scope = "own" if own_only else "all"
    pick = st.selectbox(
        "Download a past export",
        list(labels),
        format_func=labels.get,
        key=f"export_pick_{scope}",
        help="Files stay on the server until an admin removes them.",
    )
    download_buttons(user, int(pick), key=f"export_{scope}")

"""The suppression list in the app: the admins' section (search, add, remove with
confirmation) that the Privacy page shows, and the Data import page's upload of
unsubscribe and bounce files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from crm_core import auth, suppression
from crm_core.errors import CRMError
from crm_ui import data
from crm_ui.tables import show_table

FLASH = "suppressions_flash"
WRITTEN = ("suppressions", "audit_log", "schema_meta")
WRITTEN_BY_UNSUBSCRIBES = (*WRITTEN, "customers", "consent_changes")
NOT_IN_FILE = "— not in the file —"
KIND_LABELS = {"email": "E-mail", "phone": "Phone"}
SHOWN = 500
"""Entries listed at most (the search narrows them)."""


def _safe(text: str) -> str:
    """A file-name-safe version of `text` (no separators, no leading dots)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in text).lstrip(".")
    return cleaned or "upload"


def _flash() -> None:
    if text := st.session_state.pop(FLASH, None):
        st.success(text)


def _done(text: str, *tables: str) -> None:
    data.tables_changed(*tables)
    st.session_state[FLASH] = text
    st.rerun()


def suppressions_section(user: auth.User) -> None:
    """Search the suppression list, add an address, remove one after a "Yes, ..." tick."""
    if not auth.can(user.role, "privacy_requests"):
        st.info("Only admins manage the suppression list.")
        return
    _flash()
    st.caption(
        "Addresses on this list are never exported, whichever customer holds them; e-mails "
        "are compared ignoring case (and, for Gmail, dots and +tags), phones as numbers. An "
        "erased person's addresses are kept only as salted hashes: they show as "
        f"{suppression.HASHED_LABEL!r}, and searching for the address finds its entry."
    )
    store = data.store()
    search = st.text_input(
        "Search", key="sup:search", help="Part of an address, or a whole address (hashed too)."
    )
    try:
        listed = suppression.listing(store, search or None)
    except CRMError as exc:
        st.error(str(exc))
        return
    st.caption(f"{len(listed):,} entr{'y' if len(listed) == 1 else 'ies'}.")
    if not listed.empty:
        shown = listed.head(SHOWN).assign(kind=lambda f: f["kind"].map(KIND_LABELS))
        show_table(
            shown.drop(columns="hashed"),
            column_config={"address": "Address", "kind": "Kind", "reason": "Reason"},
        )
    add_col, remove_col = st.columns(2)
    with add_col, st.form("sup:add", clear_on_submit=True):
        st.markdown("**Add an address**")
        kind = st.radio("Kind", list(KIND_LABELS), format_func=KIND_LABELS.get, horizontal=True)
        value = st.text_input("E-mail address or phone number")
        reason = st.text_input("Reason", placeholder="e.g. asked not to be contacted")
        if st.form_submit_button("Add to the suppression list"):
            try:
                added = suppression.add(store, kind, value, reason=reason, by=user.username)
            except CRMError as exc:
                st.error(str(exc))
            else:
                if added:
                    _done(f"Added {value.strip()} to the suppression list.", *WRITTEN)
                st.info(f"{value.strip()} is on the suppression list already.")
    with remove_col, st.form("sup:remove"):
        st.markdown("**Remove an address**")
        plain = listed.loc[~listed["hashed"], "address"].head(SHOWN).tolist()
        picked = st.selectbox("Listed address", ["", *plain], help="Or type it below.")
        typed = st.text_input("Or the address", help="An erased person's hashed entry too.")
        sure = st.checkbox("Yes, remove it: it may be exported again")
        if st.form_submit_button("Remove"):
            target = (typed or picked or "").strip()
            if not target:
                st.warning("Pick or type the address to remove.")
            elif not sure:
                st.warning("Tick the box to confirm.")
            else:
                try:
                    removed = suppression.remove(store, target, by=user.username)
                except CRMError as exc:
                    st.error(str(exc))
                else:
                    if removed:
                        _done(f"Removed {target} from the suppression list.", *WRITTEN)
                    st.info(f"{target} is not on the suppression list.")


def list_upload_section(user: auth.User) -> None:
    """Unsubscribe and bounce files into the suppression list (unsubscribes also opt the
    customers with that e-mail out of e-mail)."""
    _flash()
    st.caption(
        "An e-mail tool's export of unsubscribed or bounced addresses (Mailchimp "
        "*Email Address*, Klaviyo *Email*, or any file with an e-mail column; a date and a "
        "reason column are kept when the file has them). Every new address goes on the "
        "suppression list; for unsubscribes the customers with that e-mail are also opted "
        "out of e-mail, each change in their consent history (source: unsubscribe file)."
    )
    kind = st.radio(
        "The file holds",
        list(suppression.LIST_KINDS),
        format_func=suppression.LIST_KINDS.get,
        horizontal=True,
        key="sup:list_kind",
    )
    upload = st.file_uploader(
        "Unsubscribe or bounce file", type=["csv", "gz", "txt", "tsv", "parquet"], key="sup:file"
    )
    if upload is None:
        return
    file_id = _safe(upload.file_id)
    folder = Path(tempfile.gettempdir()) / "crm_uploads" / file_id
    path = folder / _safe(Path(upload.name).name)
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(upload.getvalue())
    try:
        header = suppression.file_header(path, upload.name)
    except CRMError as exc:
        st.error(str(exc))
        return
    suggested = suppression.suggest_columns(header)
    choices = [NOT_IN_FILE, *header]
    key = f"sup:{file_id}"

    def pick(label: str, field: str, required: bool = False) -> str | None:
        options = header if required else choices
        default = suggested[field]
        index = options.index(default) if default in options else 0
        chosen = st.selectbox(label, options, index=index, key=f"{key}:{field}")
        return None if chosen == NOT_IN_FILE else chosen

    left, middle, right = st.columns(3)
    with left:
        email = pick("E-mail column", "email", required=True)
    with middle:
        date = pick("Date column (optional)", "date")
    with right:
        reason = pick("Reason column (optional)", "reason")
    options = dict(
        list_kind=kind,
        by=user.username,
        file_name=upload.name,
        email_column=email,
        date_column=date,
        reason_column=reason,
    )
    try:
        preview = suppression.import_list(data.store(), path, dry_run=True, **options)
    except CRMError as exc:
        st.error(str(exc))
        return
    st.info(preview.summary())
    if st.button("Add to the suppression list", type="primary", key=f"{key}:go"):
        try:
            done = suppression.import_list(data.store(), path, **options)
        except CRMError as exc:
            st.error(str(exc))
        else:
            tables = WRITTEN_BY_UNSUBSCRIBES if kind == "unsubscribes" else WRITTEN
            _done(done.summary(), *tables)

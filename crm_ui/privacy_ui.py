"""Privacy operations in the app: the profile's access request, erasure and consent history,
and the Privacy page's requests, proofs and retention policies (admins)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
import streamlit as st

from crm_core import auth, consent, display, erasure, merge, retention, schema
from crm_core.errors import CRMError
from crm_ui import audit_ui, data
from crm_ui.tables import csv_bytes, show_table

ERASED_KEY = "privacy_erased"
ARCHIVE_KEY = "privacy_archive"
WRITTEN_BY_ERASURE = tuple(
    sorted(
        {t.name for t, _ in schema.customer_key_columns()}
        | {
            "customers",
            "external_ids",
            "suppressions",
            "merge_rows",
            "duplicate_pairs",
            "consent_changes",
            "privacy_requests",
            "audit_log",
            "schema_meta",
        }
    )
)
PROOF_COLUMNS = {
    "table": "Table",
    "column": "Column",
    "looked_for": "Looked for",
    "rows": "In",
    "found": "Found",
}


@data.reads("consent_changes", "merges", show_spinner=False, ttl=60)
def consent_history(customer_id: int) -> pd.DataFrame:
    """A customer's consent changes in words, newest first, with those of the records merged
    into them (a Record column says whose, when there are several)."""
    ids = [customer_id, *merge.merged_from(data.store(), customer_id)]
    frames = [consent.history(data.store(), i).assign(record=i) for i in ids]
    merged = pd.concat(frames, ignore_index=True).sort_values("changed_at", ascending=False)
    shown = consent.history_for_display(merged.drop(columns="record"))
    if len(ids) > 1:
        shown.insert(0, "Record", [f"#{i}" for i in merged["record"]])
    return shown.reset_index(drop=True)


CONSENT_CHOICES = {True: "Yes", False: "No", None: "Unknown"}


def consent_section(customer_id: int, person: dict[str, Any], user: auth.User) -> None:
    """The profile's consent history; admins record a preference the person gave them."""
    if user.can("privacy_requests"):
        current = {ch: consent.as_bool(person.get(f"consent_{ch}")) for ch in ("email", "sms")}
        left, right, go = st.columns([2, 2, 1], vertical_alignment="bottom")
        chosen = {
            "email": left.selectbox(
                "E-mail consent",
                list(CONSENT_CHOICES),
                index=list(CONSENT_CHOICES).index(current["email"]),
                format_func=CONSENT_CHOICES.get,
                key=f"consent_email_{customer_id}",
                help="A preference the person gave you (by phone, letter, in a shop): "
                "recorded in the history with your name.",
            ),
            "sms": right.selectbox(
                "SMS consent",
                list(CONSENT_CHOICES),
                index=list(CONSENT_CHOICES).index(current["sms"]),
                format_func=CONSENT_CHOICES.get,
                key=f"consent_sms_{customer_id}",
            ),
        }
        changed = [ch for ch in chosen if chosen[ch] != current[ch]]
        if go.button("Save consent", disabled=not changed, key=f"consent_save_{customer_id}"):
            for channel in changed:
                consent.set_consent(
                    data.store(), customer_id, channel, chosen[channel], by=user.username
                )
            data.tables_changed("customers", "consent_changes", "audit_log", "schema_meta")
            st.rerun()
    history = consent_history(customer_id)
    if history.empty:
        st.caption("No consent change recorded for this customer yet.")
        return
    show_table(history, hide_index=True)


def _archive(customer_id: int, user: auth.User) -> None:
    """Build the archive in a temporary folder and keep it only in this session: the server
    keeps no copy of the person's data (the request and the archive's SHA-256 are kept)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"customer-{customer_id}-personal-data.zip"
        with st.spinner(f"Collecting every row about customer {customer_id}..."):
            result = erasure.access_archive(data.store(), customer_id, out, by=user.username)
        content = out.read_bytes()
    data.tables_changed("privacy_requests", "audit_log")
    st.session_state[ARCHIVE_KEY] = {
        "customer_id": customer_id,
        "name": out.name,
        "bytes": content,
        "summary": result.summary(),
        "sha256": result.sha256,
    }


def privacy_actions(customer_id: int, user: auth.User) -> None:
    """Admins: hand the person their data (a zip), or erase them with proof."""
    if not user.can("privacy_requests"):
        return
    with st.expander("Privacy: access request and erasure", icon=":material/shield_person:"):
        st.caption(
            "An access request hands the person every row held about them (JSON and CSV in a "
            "zip, with a readme). An erasure clears their personal data everywhere, keeps "
            "their orders anonymous, suppresses their addresses for good, and proves it."
        )
        if st.button(
            "Prepare the personal-data archive",
            key=f"archive_{customer_id}",
            help="Every table with a customer id is searched (found from the schema).",
        ):
            try:
                _archive(customer_id, user)
            except CRMError as exc:
                st.error(str(exc))
        ready = st.session_state.get(ARCHIVE_KEY)
        if ready and ready["customer_id"] == customer_id:
            st.success("\n".join(ready["summary"][:1]))
            st.download_button(
                "Download the archive (.zip)",
                ready["bytes"],
                file_name=ready["name"],
                mime="application/zip",
                on_click=audit_ui.record_download,
                args=(f"customer {customer_id}", ready["name"], {"what": "personal data"}),
            )
        st.divider()
        sure = st.checkbox(
            "I understand that an erasure cannot be undone",
            key=f"erase_sure_{customer_id}",
        )
        typed = st.text_input(
            "Type the customer id to confirm",
            key=f"erase_id_{customer_id}",
            help="The same id as in the title, so the wrong person is never erased by a click.",
        )
        if st.button(
            "Erase this person",
            type="primary",
            disabled=not (sure and typed.strip() == str(customer_id)),
            key=f"erase_{customer_id}",
        ):
            try:
                with st.spinner("Erasing and scanning every table for what was there..."):
                    result = erasure.erase(data.store(), customer_id, by=user.username)
            except CRMError as exc:
                st.error(str(exc))
                return
            data.tables_changed(*WRITTEN_BY_ERASURE)
            st.session_state[ERASED_KEY] = result.as_dict() | {
                "summary": result.summary(),
                "query": st.session_state.get("profile_query"),
            }
            st.rerun()


def just_erased(query: str) -> bool:
    """Right after an erasure (the same search): its outcome and proof, instead of the
    profile, which is gone (True when shown)."""
    done = st.session_state.get(ERASED_KEY)
    if not done or done.get("query") != query:
        st.session_state.pop(ERASED_KEY, None)
        return False
    st.success("\n\n".join(done["summary"][:2]))
    show_erasure(done)
    st.caption("Search for another customer above to open their profile.")
    return True


def erased_notice(customer_id: int) -> bool:
    """An erased customer searched by id: when they were erased (True when shown)."""
    when = erasure.erased_at(data.store(), customer_id)
    if when is None:
        return False
    st.info(
        f"Customer #{customer_id} was erased on {when:%d %b %Y}: their personal data is gone "
        "and their orders stay, anonymous. Admins find the proof on the Privacy page."
    )
    with st.expander("Consent history"):
        history = consent_history(customer_id)
        if history.empty:
            st.caption("No consent change recorded for this customer.")
        else:
            show_table(history, hide_index=True)
    return True


def show_erasure(done: dict[str, Any]) -> None:
    """An erasure's proof and the exports to recall."""
    proof = pd.DataFrame(done["proof"], columns=list(PROOF_COLUMNS))
    tables = proof["table"].nunique()
    st.markdown(
        f"**Proof:** {len(proof):,} checks over {tables} tables found "
        f"**{int(proof['found'].sum())}** of the former values "
        f"({', '.join(f'{n} {k}' for k, n in done['looked_for'].items() if n) or 'none'})."
    )
    with st.expander("Every check of the proof"):
        show_table(proof.rename(columns=PROOF_COLUMNS), hide_index=True)
        st.download_button(
            "Download the proof (CSV)",
            csv_bytes(proof.rename(columns=PROOF_COLUMNS)),
            file_name=f"erasure-{done['request_id']}-proof.csv",
            mime="text/csv",
            on_click="ignore",
            key=f"proof_csv_{done['request_id']}",
        )
    exports = pd.DataFrame(
        done["exports"],
        columns=["export_id", "file_name", "exported_at", "exported_by", "segment_name"],
    )
    exports["exported_at"] = pd.to_datetime(exports["exported_at"])
    st.caption(
        "The database file may still hold the old values in its free space until it is "
        "compacted: with the app stopped, run `python -m crm_core privacy compact`."
    )
    if done.get("files_removed"):
        st.caption(
            "Files this server kept that held the person, deleted: "
            + ", ".join(done["files_removed"])
            + "."
        )
    if exports.empty:
        st.caption("No earlier export held this person: there is nothing to recall.")
        return
    st.warning(
        f"{len(exports)} earlier export(s) held this person. Ask whoever received them to "
        "delete the person's row (or the file):"
    )
    show_table(
        exports.rename(
            columns={
                "export_id": "Export",
                "file_name": "File",
                "exported_at": "Exported (UTC)",
                "exported_by": "By",
                "segment_name": "Segment",
            }
        ),
        hide_index=True,
    )


# --- the Privacy page ---------------------------------------------------------------------


@data.reads("privacy_requests", show_spinner=False, ttl=60)
def request_list() -> pd.DataFrame:
    """Requests carried out, newest first."""
    return erasure.requests(data.store())


def requests_section() -> None:
    """Access requests and erasures carried out; an erasure's proof and exports to recall."""
    frame = request_list()
    if frame.empty:
        st.info(
            "No access request or erasure yet. Open a customer's profile (Customer 360) to hand "
            "them their data or erase them."
        )
        return
    kinds = {"access": "Access (archive handed over)", "erasure": "Erasure"}
    shown = pd.DataFrame(
        {
            "Request": frame["request_id"],
            "Kind": [kinds.get(k, k) for k in frame["kind"]],
            "Customer": [f"#{int(v)}" for v in frame["customer_id"]],
            "By": frame["requested_by"],
            "When (UTC)": frame["requested_at"],
        }
    )
    show_table(shown, hide_index=True)
    erasures = frame[frame["kind"] == "erasure"]
    if erasures.empty:
        return
    picked = st.selectbox(
        "Erasure to look at",
        erasures["request_id"].tolist(),
        format_func=lambda r: (
            f"Erasure {r}: customer "
            f"{int(erasures.loc[erasures['request_id'] == r, 'customer_id'].iloc[0])}"
        ),
        help="Its proof (every table and column scanned for the former values) and the "
        "exports that held the person.",
    )
    proof, exports, looked_for = erasure.request_proof(data.store(), int(picked))
    show_erasure(
        {
            "request_id": int(picked),
            "proof": proof.to_dict("records"),
            "looked_for": looked_for,
            "exports": exports.to_dict("records"),
        }
    )


ACTION_WORDS = {"delete": "Delete the rows", "anonymise": "Clear columns, keep the rows"}


@data.reads(*retention.POLICY_TABLES, "retention_policies", show_spinner=False, ttl=60)
def retention_plan() -> pd.DataFrame:
    """The dry run of the retention policies (counts now)."""
    return retention.plan(data.store())


def retention_section(user: auth.User) -> None:
    """The retention policies with their dry run; change, remove, apply."""
    plan = retention_plan()
    if plan.empty:
        st.info("No retention policy: no row is ever deleted by age. Add one below.")
    else:
        show_table(
            pd.DataFrame(
                {
                    "Table": [display.label(t) for t in plan["table_name"]],
                    "Date column": [display.label(c) for c in plan["date_column"]],
                    "Keep (months)": plan["age_months"],
                    "Then": [
                        ACTION_WORDS["delete"]
                        if a == "delete"
                        else "Clear " + ", ".join(display.label(c) for c in cols)
                        for a, cols in zip(plan["action"], plan["columns"], strict=True)
                    ],
                    "Dated before": [f"{v:%d %b %Y}" for v in plan["older_than"]],
                    "Rows now": plan["rows"],
                }
            ),
            hide_index=True,
        )
        due = int(plan["rows"].sum())
        st.caption(
            f"Dry run: {due:,} row(s) are older than their policy allows now. Nothing changes "
            "until you apply, or a retention schedule (Alerts & schedules) runs."
        )
    if plan.empty or not int(plan["rows"].sum()):
        if not plan.empty:
            st.success("Nothing to delete or anonymise now: every row is within its policy.")
    else:
        sure = st.checkbox(
            f"Yes, delete or anonymise these {due:,} row(s) now",
            key="ret_sure",
            disabled=not due,
        )
        if st.button("Apply retention now", disabled=not (due and sure), key="ret_apply"):
            try:
                with st.spinner("Applying the retention policies..."):
                    run = retention.apply(data.store(), by=user.username)
            except CRMError as exc:
                st.error(str(exc))
            else:
                data.tables_changed(*run.rows, "audit_log", "schema_meta")
                st.success(" ".join(run.summary()))
    with st.expander("Add or change a policy"):
        table_name = st.selectbox(
            "Table",
            list(retention.POLICY_TABLES),
            format_func=display.label,
            key="ret_table",
            help="A policy per table; saving replaces the table's policy.",
        )
        tbl = schema.table(table_name)
        dates = [c.name for c in tbl.columns if isinstance(c.type, sa.Date | sa.DateTime)]
        left, right = st.columns(2)
        date_column = left.selectbox(
            "Age from", dates, format_func=display.label, key=f"ret_date_{table_name}"
        )
        months = right.number_input(
            "Keep for (months)",
            min_value=1,
            max_value=1200,
            value=25,
            step=1,
            key="ret_months",
            help="Rows whose date is older than this many months before today go.",
        )
        action = st.radio(
            "Then",
            schema.RETENTION_ACTIONS,
            format_func=ACTION_WORDS.get,
            horizontal=True,
            key="ret_action",
            help="Delete removes the rows; clearing columns keeps the rows (and their figures) "
            "without the text that could identify someone.",
        )
        columns: list[str] = []
        if action == "anonymise":
            columns = st.multiselect(
                "Columns to clear",
                retention.anonymisable_columns(table_name),
                format_func=display.label,
                key=f"ret_cols_{table_name}",
            )
        save, remove = st.columns(2)
        if save.button("Save policy", key="ret_save"):
            try:
                retention.set_policy(
                    data.store(),
                    table_name,
                    date_column=date_column,
                    age_months=int(months),
                    action=action,
                    columns=columns,
                    by=user.username,
                )
            except CRMError as exc:
                st.error(str(exc))
            else:
                data.tables_changed("retention_policies", "audit_log")
                st.rerun()
        if remove.button("Remove the policy of this table", key="ret_remove"):
            if retention.remove_policy(data.store(), table_name, by=user.username):
                data.tables_changed("retention_policies", "audit_log")
                st.rerun()
            st.info(f"{display.label(table_name)} has no policy.")

"""Duplicates view: find likely duplicate customers, review each cluster (merge, not the
same person, later), and the merge history with unmerge."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from crm_core import auth, dedupe, merge
from crm_core.errors import CRMError
from crm_ui import data
from crm_ui.tables import show_table

FLASH = "duplicates_flash"
WRITTEN_BY_FIND = ("duplicate_runs", "duplicate_pairs")
WRITTEN_BY_MERGE = (
    "customers",
    *{t.name for t, _ in merge.customer_columns()},
    "external_ids",
    "schema_meta",
    *merge.DERIVED_TABLES,
    "merges",
    "merge_rows",
)
REASON_COLUMNS = {
    "comparison": "Comparison",
    "values": "What each record holds",
    "outcome": "Outcome",
    "match_weight": st.column_config.NumberColumn(
        "Evidence (points; + means same person)",
        help="Points for (+) or against (-) the two records being one person. Each point "
        "doubles (or halves) the odds; the first row is where every pair starts, since two "
        "random customers are very rarely one person. The rows add up to the pair's total.",
        format="%+.1f",
    ),
}
"""How `dedupe.pair_reasons` reads in the app."""
QUEUE_SHOWN = 200
"""Clusters listed in the queue's table at most (the picker offers them all)."""


def _flash() -> None:
    if text := st.session_state.pop(FLASH, None):
        st.success(text)


def _done(text: str, *tables: str) -> None:
    data.tables_changed(*tables)
    st.session_state[FLASH] = text
    st.rerun()


@data.reads("duplicate_runs", "duplicate_pairs", show_spinner=False, ttl=600)
def latest_run() -> dedupe.DuplicateRun | None:
    """The newest duplicate run with its pairs, read once per change, not per widget."""
    return dedupe.latest_run(data.store())


def find_panel(user: auth.User) -> None:
    """Threshold and the Find duplicates button, with a progress bar."""
    _flash()
    run = latest_run()
    if run is not None:
        st.caption(
            f"Last run {run.run_id}: {run.created_at:%Y-%m-%d %H:%M} UTC by {run.created_by}, "
            f"{run.customers:,} customers compared, {len(run.pairs):,} pairs in "
            f"{len(run.clusters):,} clusters at match probability >= {run.threshold:.2f} "
            f"({run.seconds:.1f} s)."
        )
    threshold = st.slider(
        "Match probability threshold",
        min_value=0.50,
        max_value=0.99,
        value=float(dedupe.DEFAULT_THRESHOLD),
        step=0.01,
        help="A pair of customers is listed when the model's probability that they are one "
        "person is at least this. Lower finds more pairs, and more pairs that are not.",
    )
    if not st.button("Find duplicates", type="primary", help="Compare every live customer."):
        return
    bar = st.progress(0.0, "Starting...")
    try:
        found = dedupe.find_duplicates(
            data.store(),
            threshold=threshold,
            by=user.username,
            progress=lambda fraction, message: bar.progress(min(fraction, 1.0), message),
        )
    except CRMError as exc:
        bar.empty()
        st.error(str(exc))
        return
    bar.empty()
    _done(found_message(found, data.store()), *WRITTEN_BY_FIND)


def found_message(found: dedupe.DuplicateRun, store) -> str:
    """Counts only: pairs, clusters, how many to review and how many were decided before."""
    to_review = len(merge.review_queue(store, found.run_id))
    decided = merge.decisions(store)
    keys = [merge.cluster_key(ids) for ids in found.clusters["customer_ids"]]
    not_same = sum(decided.get(k) == "not_same" for k in keys)
    other = len(keys) - to_review - not_same
    left_out = []
    if not_same:
        left_out.append(f"{not_same:,} marked not the same person earlier")
    if other > 0:
        left_out.append(f"{other:,} merged already or with a customer gone")
    text = (
        f"Found {len(found.pairs):,} likely duplicate pairs in {len(found.clusters):,} "
        f"clusters; {to_review:,} to review"
    )
    return text + (f" ({' and '.join(left_out)} left out)." if left_out else ".")


def _people(ids, names: dict[int, str]) -> str:
    return ", ".join(f"{i} {names.get(int(i), '')}".strip() for i in ids)


def _label(row: pd.Series, names: dict[int, str]) -> str:
    later = " (later)" if row["decision"] == "later" else ""
    who = _people(row["customer_ids"], names)
    return f"{who}: match probability up to {row['max_probability']:.3f}{later}"


def queue_panel(user: auth.User) -> None:
    """The clusters still to review, and the chosen one side by side with its decisions."""
    store = data.store()
    try:
        queue = merge.review_queue(store)
    except CRMError as exc:
        st.error(str(exc))
        return
    if queue.empty:
        if latest_run() is None:
            st.info("No duplicate search yet: press Find duplicates above to look for them.")
        else:
            st.success(
                "Nothing to review: every cluster of the last run is merged or marked not the "
                "same person. Find duplicates again after importing customers."
            )
        return
    st.caption(
        f"{len(queue):,} cluster(s) to review, the most likely first; those put off with "
        "Later come last."
    )
    names = merge.customer_names(store, {i for ids in queue["customer_ids"] for i in ids})
    listed = queue.head(QUEUE_SHOWN).assign(
        customers=lambda f: [_people(ids, names) for ids in f["customer_ids"]]
    )
    show_table(
        listed[["customers", "size", "min_probability", "max_probability", "decision"]],
        hide_index=True,
        column_config={"customers": "Customers (id and name)"},
    )
    labels = {row["cluster_key"]: _label(row, names) for _, row in queue.iterrows()}
    key = st.selectbox("Cluster to review", list(labels), format_func=labels.get)
    cluster = queue[queue["cluster_key"] == key].iloc[0]
    review_cluster(user, [int(i) for i in cluster["customer_ids"]])


def review_cluster(user: auth.User, ids: list[int]) -> None:
    """One cluster: its customers side by side, why they match, which to keep, decisions."""
    store = data.store()
    show_table(merge.side_by_side(store, ids), hide_index=True, column_config={"field": ""})
    run = latest_run()
    if run is not None:
        pairs = run.pairs[
            run.pairs["customer_id_l"].isin(ids) & run.pairs["customer_id_r"].isin(ids)
        ]
        for pair in pairs.itertuples(index=False):
            title = (
                f"Why {pair.customer_id_l} and {pair.customer_id_r} match: probability "
                f"{pair.match_probability:.3f}, evidence {pair.match_weight:+.1f} points"
            )
            with st.expander(title):
                try:
                    reasons = dedupe.pair_reasons(
                        store, pair.customer_id_l, pair.customer_id_r, run.run_id
                    )
                except CRMError as exc:
                    st.caption(str(exc))
                else:
                    show_table(reasons, hide_index=True, column_config=REASON_COLUMNS)
                    st.caption(
                        "The rows add up to the pair's evidence: start from how rare a "
                        "duplicate is, then each comparison adds points for (+) or against "
                        "(-) one person. Every +1 doubles the odds."
                    )
    suggested, why = merge.suggested_keep(store, ids)
    keep = st.radio(
        "Record to keep",
        ids,
        index=ids.index(suggested),
        horizontal=True,
        key=f"keep:{merge.cluster_key(ids)}",
        help=f"Suggested: {suggested} ({why}). The kept record's id stays; the others' "
        "orders, events, surveys, tickets, leads and campaign contacts move to it, its empty "
        "fields are filled from them, and an opt-out on any of them wins.",
    )
    reason = st.text_input("Reason (kept in the history)", key=f"why:{merge.cluster_key(ids)}")
    merge_col, not_col, later_col = st.columns(3)
    others = [i for i in ids if i != keep]
    if merge_col.button("Merge", type="primary", key=f"merge:{merge.cluster_key(ids)}"):
        try:
            done = merge.merge_customers(store, keep, others, by=user.username, reason=reason)
        except CRMError as exc:
            st.error(str(exc))
        else:
            _done(" ".join(done.summary()), *WRITTEN_BY_MERGE)
    if not_col.button(
        "Not the same",
        key=f"not:{merge.cluster_key(ids)}",
        help="Not the same person: never offer this cluster again.",
    ):
        merge.decide(store, ids, "not_same", by=user.username)
        _done(f"Customers {merge.cluster_key(ids)}: not the same person.", "duplicate_decisions")
    if later_col.button("Later", key=f"later:{merge.cluster_key(ids)}"):
        merge.decide(store, ids, "later", by=user.username)
        _done(f"Customers {merge.cluster_key(ids)}: put off for later.", "duplicate_decisions")


def history_panel(user: auth.User) -> None:
    """Every merge, newest first, and Unmerge of one in force."""
    store = data.store()
    history = merge.history(store)
    if history.empty:
        st.info("No merges yet. Each merge shows here, with who, when, why and rows moved.")
        return
    show_table(
        history.assign(merged_ids=[", ".join(map(str, m)) for m in history["merged_ids"]]),
        hide_index=True,
    )
    active = history[history["status"] == "in force"]
    if active.empty:
        st.caption("Every merge listed is undone already.")
        return
    st.caption(
        "Unmerge puts every row the merge changed or deleted back exactly as it was. A merge "
        "can be undone while no later merge of the same customers is in force."
    )
    labels = {
        int(row.merge_id): (
            f"Merge {int(row.merge_id)}: {', '.join(map(str, row.merged_ids))} into "
            f"{int(row.kept_id)}"
        )
        for row in active.itertuples(index=False)
    }
    with st.form("unmerge"):
        chosen = st.selectbox("Merge", list(labels), format_func=labels.get)
        sure = st.checkbox("Yes, undo this merge")
        if st.form_submit_button("Unmerge"):
            if not sure:
                st.warning("Tick the box to confirm.")
                return
            try:
                done = merge.unmerge(store, chosen, by=user.username)
            except CRMError as exc:
                st.error(str(exc))
            else:
                _done(" ".join(done.summary()), *WRITTEN_BY_MERGE)

"""Data import for admins: a file in any common layout, detected, mapped, previewed and
loaded in one transaction; the import history with undo; scoring."""

import pandas as pd
import streamlit as st

from crm_core import mapping, scoring
from crm_core.errors import CRMError, ImportValidationError
from crm_ui import auth_ui, data, import_ui, suppressions_ui, tables, widgets

user = auth_ui.require_view("data_import")
st.title("Data import")
widgets.filter_note("data_import")
st.caption(
    "Load customers, orders with their lines, events, surveys and more, as your shop or CRM "
    "exports them. Nothing is written until you press Import; then the whole file goes in at "
    "once or not at all (or, if you choose, the valid rows, with the rejected ones to "
    "download). Every import can be undone from the history."
)

if data.store().analytics_engine:
    from crm_core import spark

    st.info(
        f"The views read customers, orders and the other facts from "
        f"{data.store().analytics_engine}, not from this store. An import writes this store; "
        "the views show it once it is published to Spark: with the button below, "
        "`python -m crm_core lake sync` while the app is stopped, or your own pipeline.",
        icon=":material/info:",
    )
    if st.button(
        "Publish to Spark",
        icon=":material/publish:",
        help="Writes this store's facts, its customer 360 and the scores to the lake that "
        "Spark reads (what `lake sync` does), so every view shows the store's latest data. "
        "A few seconds per million rows.",
    ):
        with st.spinner("Publishing the store to Spark..."):
            try:
                written = spark.publish(data.store())
            except CRMError as exc:
                st.error(str(exc))
            else:
                data.tables_changed(*spark.LAKE_TABLES)
                st.success(
                    f"Published {sum(written.values()):,} rows of {len(written)} tables; "
                    "the views show them now.",
                    icon=":material/check_circle:",
                )

counts = data.row_counts()
with st.expander("Rows in the store", expanded=False):
    tables.show_table(
        pd.DataFrame({"table": list(counts), "rows": list(counts.values())}), width="content"
    )

import_tab, lists_tab, history_tab, scores_tab = st.tabs(
    ["Import a file", "Unsubscribes and bounces", "History and undo", "Scores"]
)

with import_tab:
    upload = import_ui.upload_step()
    if upload is None:
        st.info("Upload a file to start: its layout is detected and its columns are matched.")
    else:
        try:
            sample = import_ui.read_sample(upload)
            base = import_ui.start_step(upload, sample.column_names)
            key = f"imp:{upload.file_id}:{base.name or 'by-name'}:{base.table}"
            st.subheader("How the file is written")
            fmt = import_ui.format_step(upload, base, key)
            if fmt is None:
                st.stop()
            sample = import_ui.read_sample(upload, fmt)
        except ImportValidationError as exc:
            st.error(f"{upload.name} cannot be read: {len(exc.problems)} problem(s).")
            import_ui.show_problems(exc.problems)
            st.stop()
        except CRMError as exc:
            st.error(str(exc))
            st.stop()
        st.subheader("Columns")
        columns = import_ui.columns_step(base, sample.column_names, key)
        source, options = import_ui.options_step(base, key)
        st.subheader("Values")
        values = import_ui.values_step(base, columns, sample, key)
        current = mapping.Mapping(
            table=base.table,
            columns=columns,
            name=base.name,
            source=source,
            values=values,
            defaults=base.defaults,
            options=options,
        )
        st.subheader("Preview")
        mode = st.radio(
            "Mode",
            ("append", "upsert"),
            horizontal=True,
            help="append: add new rows; a key that already exists is a problem. "
            "upsert: rows whose key exists replace the stored row (undo restores them).",
        )
        try:
            current.validate(sample.column_names)
        except CRMError as exc:
            st.error(str(exc))
        else:
            import_ui.preview_step(upload, current, fmt, mode)
            st.subheader("Import")
            import_ui.import_step(upload, current, fmt, user, mode)
            import_ui.save_step(current, user, key)

with lists_tab:
    suppressions_ui.list_upload_section(user)

with history_tab:
    import_ui.history_panel(user)

with scores_tab:
    st.caption(
        "CLV, P(alive) and churn risk of every customer, written to the store for the "
        "customer 360, the segment builder and exports. Score again after importing orders. "
        "Other people keep working meanwhile; they see the old scores until the new ones are "
        "written at once."
    )
    if st.button("Score customers", help="Fit the CLV and churn models on the whole store."):
        bar = st.progress(0.0, "Starting...")
        try:
            result = scoring.score(
                data.store(),
                progress=lambda fraction, message: bar.progress(min(fraction, 1.0), message),
            )
        except CRMError as exc:
            bar.empty()
            st.error(str(exc))
        else:
            bar.empty()
            data.tables_changed(*scoring.TABLES_WRITTEN)
            st.success(f"Scored {result.rows:,} customers (model version {result.model_version}).")
            for line in result.left_out_lines():
                st.warning(line)
            for note in result.notes:
                st.caption(f"• {note}")

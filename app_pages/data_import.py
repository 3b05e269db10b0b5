"""Data import for admins: upload CSV or Parquet into a table, validated, all or nothing."""

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from crm_core import ingest, schema, scoring
from crm_core.errors import CRMError, ImportValidationError
from crm_ui import auth_ui, data, widgets

auth_ui.require_view("data_import")
st.title("Data import")
widgets.filter_note("data_import")
st.caption(
    "Load your own customers, orders, events, surveys and more. A file is checked in full "
    "first; if anything is wrong nothing is loaded and every problem is listed with its row "
    "and column."
)

counts = data.row_counts()
st.dataframe(
    pd.DataFrame({"table": list(counts), "rows": list(counts.values())}),
    hide_index=True,
    width="content",
    column_config={"rows": st.column_config.NumberColumn(format="localized")},
)

table_name = st.selectbox(
    "Table",
    schema.IMPORTABLE_TABLES,
    help="Import customers before the tables that refer to them (orders, events, ...).",
)
with st.expander(f"Columns of `{table_name}`", expanded=False):
    st.dataframe(pd.DataFrame(schema.column_docs(table_name)), hide_index=True)
mode = st.radio(
    "Mode",
    ("append", "upsert"),
    horizontal=True,
    help="append: add new rows; a key that already exists is an error. "
    "upsert: rows whose key exists replace the stored row.",
)
upload = st.file_uploader(
    "CSV (UTF-8, comma-separated, may be gzipped) or Parquet file",
    type=["csv", "gz", "txt", "parquet"],
)

if upload is not None and st.button("Import", type="primary"):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(upload.name).name
        path.write_bytes(upload.getvalue())
        try:
            with st.spinner(f"Checking and loading {upload.name}..."):
                result = ingest.import_file(
                    data.store(), table_name, path, mode=mode, file_name=upload.name
                )
        except ImportValidationError as exc:
            st.error(f"{upload.name}: {len(exc.problems)} problem(s); nothing was imported.")
            st.code("\n".join(exc.problems[: exc.max_shown]), language=None, wrap_lines=True)
            if len(exc.problems) > exc.max_shown:
                st.caption(f"... and {len(exc.problems) - exc.max_shown} more.")
        except CRMError as exc:
            st.error(str(exc))
        else:
            data.tables_changed(result.table)
            st.success(f"Imported {result.rows:,} rows into {result.table} ({result.mode}).")

st.subheader("Customer scores")
st.caption(
    "CLV, P(alive) and churn risk of every customer, written to the store for the customer "
    "360, the segment builder and exports. Score again after importing orders. Other people "
    "keep working meanwhile; they see the old scores until the new ones are written at once."
)
if st.button("Score customers", help="Fit the CLV and churn models on the whole store."):
    bar = st.progress(0.0, "Starting...")
    try:
        result = scoring.score(
            data.store(),
            progress=lambda fraction, message: bar.progress(min(fraction, 1.0), message),
        )
    except CRMError as exc:
        st.error(str(exc))
    else:
        data.tables_changed(*scoring.TABLES_WRITTEN)
        st.success(f"Scored {result.rows:,} customers (model version {result.model_version}).")

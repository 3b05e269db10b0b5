"""Segment builder: rules over the customer 360 table, live preview, save/version, export."""

import pandas as pd
import streamlit as st

from crm_core import export, segments
from crm_core.errors import CRMError
from crm_ui import auth_ui, segment_charts, segment_ui
from crm_ui.data import store

user = auth_ui.require_view("segment_builder")
st.title("Segment builder")
as_of = segment_ui.ensure_360()
if as_of is None:
    st.info("No orders in the store yet: import `customers` and `orders` to build segments.")
    st.stop()
saved = segment_ui.saved_segments()
names = saved["name"].tolist()
may_save = user.can("save_segments")
flash_box = st.container()  # always drawn, so the tabs below keep their place (and selection)
if flash := st.session_state.pop("seg_flash", None):
    flash_box.success(flash)
build_tab, saved_tab, export_tab = st.tabs(["Build", "Saved segments", "Export"])

with build_tab:
    opened = st.session_state.get(segment_ui.OPENED)
    st.caption(f"Editing **{opened}** (saving makes a new version)." if opened else "New segment.")
    definition = segment_ui.rule_builder()
    st.subheader("Preview")
    try:
        result = segment_ui.preview(segment_ui.definition_json(definition), user.role)
    except CRMError as exc:
        show = st.error if definition["rules"] else st.info
        show(str(exc))
        result = None
    if result is not None:
        segment_ui.preview_panel(result)
    if may_save:
        with st.form("save_segment"):
            name = st.text_input("Name", value=opened or "", help="Unique among saved segments.")
            description = st.text_input("Description", help="What the segment is for.")
            as_new = st.checkbox(
                "Save as a new segment",
                value=opened is None,
                help="Untick to save a new version of the opened segment.",
            )
            if st.form_submit_button("Save segment"):
                try:
                    segment_id = None
                    if opened and not as_new:
                        segment_id = int(saved.loc[saved["name"] == opened, "segment_id"].iloc[0])
                    done = segments.save_segment(
                        store(),
                        name,
                        definition,
                        owner=user.username,
                        description=description,
                        segment_id=segment_id,
                        role=user.role,
                    )
                    st.session_state[segment_ui.OPENED] = done.name
                    segment_ui.clear()
                    st.session_state["seg_flash"] = f"Saved {done.name} version {done.version}."
                    st.rerun()
                except CRMError as exc:
                    st.error(str(exc))

with saved_tab:
    if saved.empty:
        st.info("No saved segments yet: build one and save it.")
    else:
        st.dataframe(saved.drop(columns=["definition", "segment_id"]), hide_index=True)
        pick = st.selectbox("Segment", names, help="Open, duplicate or delete this segment.")
        row = saved.loc[saved["name"] == pick].iloc[0]
        st.button(
            "Open in the builder",
            on_click=segment_ui.load_definition,
            args=(segments.load_segment(store(), pick).definition, pick),
        )
        history = segment_ui.sizes(int(row["segment_id"]))
        if not history.empty:
            st.plotly_chart(segment_charts.size_history(history), width="stretch")
        with st.expander("Versions"):
            st.dataframe(segment_ui.versions(int(row["segment_id"])), hide_index=True)
        if may_save:
            copy_name = st.text_input("Name of the copy", value=f"{pick} (copy)")
            left, right = st.columns(2)
            try:
                if left.button("Duplicate"):
                    segments.duplicate_segment(
                        store(), pick, copy_name, owner=user.username, role=user.role
                    )
                    segment_ui.clear()
                    st.rerun()
                if right.button(
                    "Delete",
                    type="primary",
                    help="Hides every version; past exports keep their record.",
                ):
                    segments.delete_segment(store(), pick, role=user.role)
                    segment_ui.clear()
                    st.rerun()
            except CRMError as exc:
                st.error(str(exc))

with export_tab:
    if not user.can("export_lists") or saved.empty:
        st.info("Save a segment first; exports are made from saved segments.")
        st.stop()
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
    if go:
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
            st.stop()
        segment_ui.clear()
        st.success(
            f"Exported {done.rows:,} of {done.selected:,} customers "
            f"({done.control:,} held out as control). sha256 {done.sha256[:16]}..."
        )
        excluded = pd.DataFrame(
            {"reason": export.EXCLUSION_REASONS.values(), "customers": done.excluded.values()}
        )
        st.dataframe(excluded, hide_index=True)
        st.download_button(f"Download {done.path.name}", done.path.read_bytes(), done.path.name)

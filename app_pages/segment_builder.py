"""Segment builder: rules over the customer 360 table, live preview, save/version, export."""

import streamlit as st

from crm_core import segments
from crm_core.errors import CRMError
from crm_core.figures import segment_charts
from crm_ui import auth_ui, export_ui, segment_ui, tables, widgets
from crm_ui.data import store

user = auth_ui.require_view("segment_builder")
st.title("Segment builder")
widgets.filter_note("segment_builder")
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
            description = st.text_input(
                "Description",
                key=segment_ui.DESCRIPTION,
                help="What the segment is for (a fixed list of ids says so here: keep that).",
            )
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
    gone = segment_ui.deleted_segments(user) if may_save else None
    if saved.empty:
        restorable = gone is not None and not gone.empty
        st.info(
            "No saved segments: build one and save it, or restore a deleted one below."
            if restorable
            else "No saved segments yet: build one and save it."
        )
    else:
        tables.show_table(
            saved.drop(columns=["definition", "segment_id"]),
            column_order=[  # name, size and owner first: they fit on screen at 1440 px
                "name",
                "customers",
                "owner",
                "description",
                "version",
                "saved_at",
                "size_measured_at",
            ],
            column_config={
                "customers": "Customers (last measured)",
                "size_measured_at": "Size measured at",
            },
        )
        st.caption(
            "Sizes as last measured (at a save, an export or a measure). Rules follow new "
            "data: open a segment to see its size now, or measure them all."
        )
        if st.button(
            "Measure all sizes now",
            icon=":material/refresh:",
            help="Counts every saved segment on today's data and adds a point to its history.",
        ):
            with st.spinner("Measuring the saved segments..."):
                segments.record_all_sizes(store())
            segment_ui.clear()
            st.rerun()
        pick = st.selectbox("Segment", names, help="Open, duplicate or delete this segment.")
        row = saved.loc[saved["name"] == pick].iloc[0]
        opened_segment = segments.load_segment(store(), pick)
        st.button(
            "Open in the builder",
            on_click=segment_ui.load_definition,
            args=(
                segments.redact_definition(opened_segment.definition, user.role),
                pick,
                opened_segment.description,
            ),
        )
        history = segment_ui.sizes(int(row["segment_id"]))
        if not history.empty:
            st.plotly_chart(segment_charts.size_history(history), width="stretch")
        with st.expander("Versions"):
            tables.show_table(segment_ui.versions(int(row["segment_id"]), user.role))
        owner = row["owner"] or "nobody"
        st.caption(f"Owned by **{owner}**; only its owner or an admin may delete it.")
        if may_save:
            copy_name = st.text_input("Name of the copy", value=f"{pick} (copy)")
            left, right = st.columns(2)
            may_delete = user.role == "admin" or user.username == row["owner"]
            sure = right.checkbox(
                f"Yes, delete {pick}",
                key=f"confirm_delete_{row['segment_id']}",
                disabled=not may_delete,
                help="Hides every version; it can be restored below, past exports keep "
                "their record."
                if may_delete
                else f"Owned by {owner}: ask them or an admin.",
            )
            try:
                if left.button("Duplicate"):
                    segments.duplicate_segment(
                        store(), pick, copy_name, owner=user.username, role=user.role
                    )
                    segment_ui.clear()
                    st.rerun()
                if right.button("Delete", type="primary", disabled=not sure) and sure:
                    segments.delete_segment(store(), pick, user=user)
                    segment_ui.clear()
                    st.session_state["seg_flash"] = (
                        f"Deleted {pick}. Restore it under Deleted segments if that was a mistake."
                    )
                    st.rerun()
            except CRMError as exc:
                st.error(str(exc))
    if gone is not None and not gone.empty:
        st.subheader("Deleted segments")
        st.caption("Yours (all of them for admins); restoring brings back every version.")
        tables.show_table(gone.drop(columns=["segment_id"]))
        labels = segment_ui.deleted_labels(gone)
        back = st.selectbox("Deleted segment", list(labels), format_func=labels.get)
        if st.button("Restore", icon=":material/restore_from_trash:"):
            try:
                name = gone.set_index("segment_id").at[back, "name"]
                done = segments.restore_segment(store(), name, user=user, segment_id=back)
            except CRMError as exc:
                st.error(str(exc))
            else:
                segment_ui.clear()
                st.session_state["seg_flash"] = f"Restored {done.name} (version {done.version})."
                st.rerun()

with export_tab:  # form, result kept across reruns and downloads, own past exports
    export_ui.export_tab(user, names)

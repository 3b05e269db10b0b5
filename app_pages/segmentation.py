"""Segmentation: RFM segments (rule table, treemap, R x F grid, movement) and k-means clusters."""

import streamlit as st

from crm_core import display, summaries
from crm_core.analytics import clustering, rfm
from crm_core.errors import CRMError
from crm_core.figures import segment_charts
from crm_ui import auth_ui, drill_ui, filters_ui, pins, plain, segment_ui, tables, widgets

user = auth_ui.require_view("segmentation")
st.title("Segmentation")
widgets.filter_note("segmentation")
last_order = segment_ui.ensure_360()
filters = filters_ui.current_filters()
if last_order is None or filters is None:
    st.info("No orders in the store yet: import `customers` and `orders` to segment them.")
    st.stop()
as_of = min(filters.end, last_order)
rfm_tab, cluster_tab = st.tabs(["RFM segments", "Clusters"])

with rfm_tab:
    left, right = st.columns(2)
    window = left.selectbox(
        "Frequency and monetary window",
        list(rfm.WINDOWS),
        help="Orders counted for F and M. Recency always looks at all history. "
        "'All history' matches the customer 360 table.",
    )
    compare = right.selectbox(
        "Compare with",
        [30, 90, 180, 365],
        index=1,
        format_func=lambda d: f"{d} days earlier",
        help="Segments as of this many days before, to show who moved where.",
    )
    scores = segment_ui.rfm_scores(as_of, rfm.WINDOWS[window], filters)
    st.caption(f"RFM as of {as_of:%d %b %Y}: {len(scores):,} customers with an order by then.")
    if scores.empty:
        st.info("No customer in this filter has bought by the end of the period.")
        st.stop()
    summary = rfm.segment_summary(scores)
    plain.summary(summaries.segmentation(summary))
    st.markdown(
        "R, F and M are scored 1-5 by quintiles (ties share a score). Each customer gets the "
        "**first** segment in this table whose R and F ranges match."
    )
    tables.show_table(rfm.rule_table(), height=tables.full_height(len(rfm.RFM_SEGMENTS)))
    st.subheader("Segment size and revenue")
    drill_ui.rfm_treemap(
        segment_charts.segment_treemap(summary),
        summary,
        scores,
        filters,
        as_of,
        rfm.WINDOWS[window],
        (summary, f"rfm_segments_{as_of}.csv", "Download segment sizes (CSV)"),
    )
    pins.pin_button("segmentation", "rfm_treemap", {"window": window})
    # side by side where both are readable, one under the other where not (in st.columns
    # both heatmaps were squeezed to ~100 px at 800-1024 px)
    row = st.container(horizontal=True)
    grid_col, move_col = row.container(key="wrap_rf_grid"), row.container(key="wrap_movement")
    with grid_col:
        st.subheader("R x F grid")
        drill_ui.rf_grid(
            segment_charts.rf_heatmap(rfm.rf_grid(scores)),
            scores,
            filters,
            as_of,
            rfm.WINDOWS[window],
        )
    with move_col:
        st.subheader(f"Movement in the last {compare} days")
        moves = segment_ui.movement(as_of, rfm.WINDOWS[window], compare, filters)
        drill_ui.movement(
            segment_charts.movement_heatmap(moves),
            moves,
            as_of,
            rfm.WINDOWS[window],
            compare,
            filters,
        )

with cluster_tab:
    chosen = st.multiselect(
        "Features",
        clustering.CANDIDATE_FEATURES,
        default=list(clustering.DEFAULT_FEATURES),
        format_func=display.label,
        help="Customer 360 fields to cluster buyers on. Skewed money and count fields are "
        "log-transformed, then every feature is standardised.",
    )
    run = st.toggle(
        "Run clustering",
        key="run_clustering",
        help="k-means on every buyer takes a few seconds, so it runs only when switched on.",
    )
    if len(chosen) < 2 or not run:
        st.info("Choose at least two features, then switch on 'Run clustering'.")
        st.stop()
    columns = tuple(chosen)
    try:
        st.plotly_chart(segment_charts.elbow(segment_ui.choose_k(columns)), width="stretch")
        k = st.slider(
            "Number of clusters (k)",
            2,
            8,
            4,
            help="Pick k where inertia stops falling fast (the elbow) and silhouette is high.",
        )
        result = segment_ui.clusters(columns, k)
    except CRMError as exc:
        st.error(str(exc))
        st.stop()
    # saved before the profile's drill panel is drawn, so that its rule sees them at once
    if user.can("save_segments") and st.button(
        "Save clusters to the customer 360 table",
        help="Writes each buyer's cluster to the `cluster` field, usable in segment rules.",
    ):
        saved = segment_ui.save_clusters(result)
        st.success(f"Saved the cluster of {saved:,} customers; use the `cluster` field in rules.")
    st.subheader("Cluster profiles (mean against the base)")
    drill_ui.cluster_profile(
        segment_charts.cluster_profile(result.profile),
        result,
        (result.profile, f"clusters_k{k}.csv", "Download cluster profiles (CSV)"),
    )
    st.subheader("Two-dimensional projection (PCA)")
    st.plotly_chart(segment_charts.pca_scatter(result.projection), width="stretch")

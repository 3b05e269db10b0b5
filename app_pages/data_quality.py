"""Data quality: a score per data table and its trend over imports; every finding drills to
the rows that fail it (personal data masked for roles that may not see it)."""

import streamlit as st

from crm_core import quality
from crm_core.errors import CRMError
from crm_core.figures import quality_charts
from crm_ui import auth_ui, quality_ui, tables, widgets

user = auth_ui.require_view("data_quality")
st.title("Data quality")
widgets.filter_note("data_quality")
quality_ui.record_new_import()

chosen = quality_ui.table_picker()
if not chosen:
    st.info("Choose at least one table to check.")
    st.stop()
try:
    report = quality_ui.report(chosen)
except CRMError as exc:
    st.error(str(exc))
    st.stop()
if all(t.rows == 0 for t in report.tables):
    st.info("The chosen tables hold no data yet: import some on the Data import page.")
    st.stop()

history = quality_ui.trend()
st.subheader("Score per table")
st.caption(
    "0-100: the weighted share of checked values that pass (completeness 30, validity 30, "
    "references 20, uniqueness 15, amounts in range 5); checked "
    f"{report.assessed_at:%d %b %Y %H:%M} UTC in {report.seconds:.1f} s."
)
quality_ui.score_cards(report, history)
scores = report.scores()
widgets.chart_with_download(
    quality_charts.score_bars(scores), scores, "quality_scores.csv", "Download scores (CSV)"
)

st.subheader("Score trend over imports")
if history.empty:
    st.info(
        "No scores recorded yet. A point is added for each import when this page opens "
        "after it, or press **Record scores now** (or run `python -m crm_core quality --record`)."
    )
else:
    mine = history[history["table"].isin(chosen)]
    widgets.chart_with_download(
        quality_charts.score_trend(mine), mine, "quality_trend.csv", "Download trend (CSV)"
    )
if st.button("Record scores now", help="Store the scores above as a point of the trend."):
    quality_ui.record_now(report)
    st.success(f"Recorded the scores of {len(report.tables)} table(s).")
    st.rerun()

st.subheader("Findings")
findings = report.findings()
if findings.empty:
    st.success("No findings: every check passes on the chosen tables.")
else:
    st.caption(
        "Each check with failing rows: real errors first (invalid values, references to "
        "nothing), then gaps, shared contacts and unusual amounts; the most rows first."
    )
    with st.expander("What each check means"):
        st.markdown(
            "\n".join(f"- **{label}**: {meaning}" for label, _, meaning in quality.CHECKS.values())
        )
    tables.show_table(quality_ui.findings_table(findings))
    finding = quality_ui.finding_picker(findings)
    if finding is not None:
        try:
            rows = quality_ui.offending_rows(
                finding["table"], finding["check"], finding["column"], user.role
            )
        except CRMError as exc:
            st.error(str(exc))
        else:
            if not user.can("see_pii"):
                st.caption("Personal data is masked for your role.")
            quality_ui.show_rows(rows, finding)

with st.expander("Completeness per column"):
    tables.show_table(quality_ui.completeness_table(report))

with st.expander("Freshness"):
    st.caption(
        "Last import: the newest import batch that wrote the table (not undone). "
        "Newest record: the latest time the table records (not after now)."
    )
    tables.show_table(quality_ui.freshness_table(scores))

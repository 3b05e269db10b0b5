"""The data quality view in the app: cached reports, the trend, offending rows, widgets."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from crm_core import display, quality, schema
from crm_core.errors import CRMError
from crm_ui import audit_ui, data, tables
from crm_ui.data import store

READS = (*quality.quality_tables(), "import_batches")
"""What a quality report reads: every data table and the import history."""

DRILL_LIMIT = 500
"""Offending rows shown (and downloaded) per finding."""


@data.reads(*READS, show_spinner="Checking the data...", ttl=600)
def report(tables_: tuple[str, ...]) -> quality.QualityReport:
    """The quality report of `tables_`."""
    return quality.assess(store(), tables_)


@data.reads("quality_scores", show_spinner=False, ttl=600)
def trend() -> pd.DataFrame:
    """Recorded scores of every table, oldest first."""
    return quality.trend(store())


@data.reads(*READS, show_spinner="Finding the rows...", ttl=600)
def offending_rows(table: str, check: str, column: str, role: str) -> pd.DataFrame:
    """Up to DRILL_LIMIT rows failing the check, masked for `role`."""
    return quality.finding_rows(store(), table, check, column, limit=DRILL_LIMIT, role=role)


def record_new_import() -> None:
    """Add the trend's point for an import that has none yet (scores recorded lazily)."""
    try:
        if quality.record_if_new_import(store()):
            data.tables_changed("quality_scores")
    except CRMError as exc:
        st.warning(f"Could not record the scores of the latest import: {exc}")


def record_now(report_: quality.QualityReport) -> None:
    """Store the shown scores as a point of the trend."""
    quality.record(store(), report_)
    data.tables_changed("quality_scores")


def table_picker() -> tuple[str, ...]:
    """The data tables to check (all by default)."""
    names = quality.quality_tables()
    chosen = st.multiselect(
        "Tables",
        names,
        default=list(names),
        format_func=display.label,
        key="dq_tables",
        help="The data tables to check. Fewer tables check faster.",
    )
    return tuple(n for n in names if n in chosen)


def score_cards(report_: quality.QualityReport, history: pd.DataFrame) -> None:
    """A card per table: its score, the change since the previous recorded score, its rows."""
    # A row of cards that wraps on a narrow screen, each as wide as its label and figure.
    cards = st.container(horizontal=True)
    for t in report_.tables:
        previous = history[history["table"] == t.table]["quality_score"]
        delta = None
        if t.score is not None and len(previous):
            change = t.score - float(previous.iloc[-1])
            delta = f"{change:+.1f} since last recorded" if abs(change) >= 0.05 else None
        cards.container().metric(
            display.label(t.table),
            "empty" if t.score is None else f"{t.score:.1f}",
            delta,
            help=f"{t.rows:,} rows; {len(t.findings)} finding(s). Score 0-100: "
            + ", ".join(f"{c} {w}" for c, w in quality.WEIGHTS.items()),
            border=True,
        )


def where(table: str, column: str) -> str:
    """A table and column as people read them: "Order items · Unit price"."""
    return f"{display.label(table)} · {display.label(column)}"


def share_text(share: float) -> str:
    """A failing share in words: "<0.1%" for a few rows among many, never "0.0%"."""
    if share <= 0:
        return "0%"
    if share < 0.001:
        return "<0.1%"
    return f"{100 * share:.1f}%"


def findings_table(findings: pd.DataFrame) -> pd.DataFrame:
    """The findings as the page shows them: table and column labels, shares in words."""
    return findings.drop(columns=["check"]).assign(
        table=[display.label(t) for t in findings["table"]],
        column=[display.label(c) for c in findings["column"]],
        failing_share=[share_text(v) for v in findings["failing_share"]],
    )


def freshness_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows, last import ("never" when none) and newest record of each table, labelled."""
    frame = scores[["table", "rows", "last_import_at", "last_record_at"]].copy()
    frame["table"] = [display.label(t) for t in frame["table"]]
    frame["last_import_at"] = [
        "never" if pd.isna(v) else f"{pd.Timestamp(v):%d %b %Y, %H:%M}"
        for v in frame["last_import_at"]
    ]
    return frame


def finding_picker(findings: pd.DataFrame) -> pd.Series | None:
    """The finding whose rows to show (the most severe first)."""
    if findings.empty:
        return None
    names = [
        f"{where(r.table, r.column)}: {r.check_label} ({r.failing:,} rows)"
        for r in findings.itertuples(index=False)
    ]
    pick = st.selectbox(
        "Finding",
        range(len(names)),
        format_func=lambda i: names[i],
        key="dq_finding",
        help=f"Shows up to {DRILL_LIMIT} rows that fail this check, with a CSV download.",
    )
    return findings.iloc[int(pick or 0)]


def completeness_table(report_: quality.QualityReport) -> pd.DataFrame:
    """Share filled in per column of every checked table."""
    rows = []
    for t in report_.tables:
        tbl = schema.table(t.table)
        for column, filled in t.completeness.items():
            col = tbl.c[column]
            rows.append(
                {
                    "table": display.label(t.table),
                    "column": display.label(column),
                    "required": bool(col.primary_key or not col.nullable),
                    "filled": filled,
                }
            )
    return pd.DataFrame(rows, columns=["table", "column", "required", "filled"])


def show_rows(rows: pd.DataFrame, finding: pd.Series) -> None:
    """The offending rows and their CSV download."""
    if rows.empty:
        st.info("No rows fail this check any more.")
        return
    tables.show_table(rows)
    st.download_button(
        "Download these rows (CSV)",
        tables.csv_bytes(rows),
        f"quality_{finding['table']}_{finding['column']}_{finding['check']}.csv",
        mime="text/csv",
        on_click=audit_ui.record_download,
        args=(
            f"data quality rows of {finding['table']}",
            f"quality_{finding['table']}_{finding['column']}_{finding['check']}.csv",
            {"rows": len(rows)},
        ),
        help="The rows shown above, as a spreadsheet (personal data as you see it).",
    )

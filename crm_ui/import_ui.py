"""The Data import page's steps: upload, detect, map columns, map values, preview, import;
and the import history with undo.

Widget keys carry the uploaded file's id, the chosen starting mapping and the table, so a
new file or another choice starts from fresh suggestions instead of stale selections. The
upload is written once to a private temporary folder named by Streamlit's file id; the
result of the last import stays in session state (its download survives reruns).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import streamlit as st

from crm_core import auth, detect, ingest, mapping, presets, schema
from crm_core.errors import CRMError, ImportValidationError
from crm_ui import audit_ui, data
from crm_ui.tables import DATETIME_FORMAT, show_table

RESULT_KEY = "import_result"
UNDO_FLASH = "import_undone"
PREVIEW_ROWS = 20
SAMPLE_ROWS = 5_000
"""Rows read to offer the file's values for the value map."""
MAX_VALUES = 30
"""Distinct values per field offered in the value map."""
NOT_MAPPED = "— not in the file —"
AS_WRITTEN = "(as written)"
BY_NAME = "Match columns by name"
_DELIMITERS = {",": "comma ,", ";": "semicolon ;", "\t": "tab", "|": "pipe |"}
_THOUSANDS = {"": "none", ",": "comma ,", ".": "dot .", " ": "space", "'": "apostrophe '"}
_DATE_ORDERS = {
    "YMD": "year-month-day (2024-03-05)",
    "DMY": "day first (05.03.2024 = 5 March)",
    "MDY": "month first (03/05/2024 = 5 March)",
}


@dataclass
class Upload:
    """The uploaded file as the steps use it."""

    path: Path
    name: str
    file_id: str


def upload_step() -> Upload | None:
    """Step 1: the file; written once to a temporary folder of its own."""
    upload = st.file_uploader(
        "File to import",
        type=["csv", "gz", "txt", "tsv", "parquet"],
        help="CSV in any common layout (comma, semicolon or tab separated; UTF-8, Latin-1 or "
        "Windows-1252; gzipped is fine) or Parquet. Nothing is written until you press Import. "
        "Files over 200 MB go in from the command line: python -m crm_core import TABLE FILE "
        "--mapping NAME (read in batches, any size).",
    )
    if upload is None:
        return None
    folder = Path(tempfile.gettempdir()) / "crm_uploads" / _safe(upload.file_id)
    path = folder / _safe(Path(upload.name).name)
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(upload.getvalue())
    return Upload(path=path, name=upload.name, file_id=_safe(upload.file_id))


def _safe(text: str) -> str:
    """A file-name-safe version of `text` (no separators, no leading dots)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in text).lstrip(".")
    return cleaned or "upload"


def start_step(upload: Upload, header: list[str]) -> mapping.Mapping:
    """Step 2: what the file is: a preset, a saved mapping, or columns matched by name; and
    the table it goes into."""
    saved = mapping.names(data.store())
    choices = [BY_NAME, *presets.PRESETS, *saved]
    fitting = _fitting_preset(header)
    left, right = st.columns(2)
    start = left.selectbox(
        "Start from",
        choices,
        index=choices.index(fitting) if fitting else 0,
        key=f"imp:{upload.file_id}:start",
        help="A preset reads a platform's export as it writes it (Shopify orders, Shopify "
        "customers, HubSpot contacts, Online Retail); a saved mapping is one you saved "
        "below. Matching by name suits files whose columns are already named like ours.",
    )
    chosen = None if start == BY_NAME else mapping.resolve(data.store(), start)
    guess = mapping.guess_table(header)
    guessed = chosen.table if chosen else (guess or "customers")
    tables = list(schema.IMPORTABLE_TABLES)
    table = right.selectbox(
        "Into table",
        tables,
        index=tables.index(guessed),
        key=f"imp:{upload.file_id}:{start}:table",
        help="Import customers before the tables that refer to them (orders, events, ...), "
        "or identify customers by e-mail or platform id in the mapping.",
    )
    if chosen is not None and chosen.table == table:
        base = chosen
    else:
        base = mapping.Mapping(table=table, columns=mapping.suggest(table, header))
        if guess and guess != table:
            st.warning(
                f"This file looks like it belongs in **{guess}** (its columns match that "
                f"table best), not {table}. Choose *{guess}* under *Into table* if so."
            )
    with st.expander(f"Columns of `{table}`"):
        show_table(pd.DataFrame(schema.column_docs(table)))
    return base


def _fitting_preset(header: list[str]) -> str | None:
    """The preset whose every mapped column the file has, if one does."""
    have = {c.strip().lower() for c in header}
    for name, preset in presets.PRESETS.items():
        if {c.strip().lower() for c in preset.columns.values()} <= have:
            return name
    return None


def format_step(upload: Upload, base: mapping.Mapping, key: str) -> detect.FileFormat | None:
    """Step 3: how the file is written, as detected; each choice can be changed. None while
    the dates could be day-first or month-first and the user has not said which."""
    detected = _detected(str(upload.path), upload.name, json.dumps(base.format, sort_keys=True))
    ambiguous = detected.date_order_ambiguous
    if ambiguous:
        st.warning(
            "Every date in the file could be read day-first or month-first (e.g. 03/04/2024 "
            "is 3 April or 4 March). Choose the date order under *How the file is read*."
        )
    st.caption("\n".join(f"- {note}" for note in detected.notes))
    with st.expander("How the file is read", expanded=detected.date_order_ambiguous):
        cols = st.columns(3)
        delimiter = cols[0].selectbox(
            "Separator",
            list(_DELIMITERS),
            index=list(_DELIMITERS).index(detected.delimiter),
            format_func=_DELIMITERS.get,
            key=f"{key}:delimiter",
        )
        encoding = cols[1].selectbox(
            "Encoding",
            list(detect.ENCODINGS),
            index=list(detect.ENCODINGS).index(detected.encoding),
            key=f"{key}:encoding",
            help="UTF-8 (a byte-order mark is fine), Latin-1 or Windows-1252 (Excel's usual "
            "save on Windows).",
        )
        decimal = cols[2].selectbox(
            "Decimal mark",
            list(detect.DECIMALS),
            index=list(detect.DECIMALS).index(detected.decimal),
            format_func=lambda d: "dot (12.50)" if d == "." else "comma (12,50)",
            key=f"{key}:decimal",
        )
        thousands = cols[0].selectbox(
            "Thousands separator",
            list(_THOUSANDS),
            index=list(_THOUSANDS).index(detected.thousands),
            format_func=_THOUSANDS.get,
            key=f"{key}:thousands",
        )
        date_order = cols[1].selectbox(
            "Date order",
            list(_DATE_ORDERS),
            index=None if ambiguous else list(_DATE_ORDERS).index(detected.date_order),
            format_func=_DATE_ORDERS.get,
            placeholder="Choose: the file does not show it",
            key=f"{key}:date_order",
            help="Decided from the data when some date shows it (a day above 12); asked when "
            "every date fits both.",
        )
        timezone = cols[2].text_input(
            "Time zone of times without one",
            detected.timezone,
            key=f"{key}:timezone",
            help="An IANA name such as UTC, Europe/Berlin or America/New_York. Times written "
            "with an offset (Z, +02:00, -0500) keep theirs. Everything is stored in UTC.",
        )
    if date_order is None:
        return None
    return detect.FileFormat(
        delimiter=delimiter,
        encoding=encoding,
        decimal=decimal,
        thousands=thousands,
        date_order=date_order,
        timezone=timezone.strip() or "UTC",
        notes=detected.notes,
    )


@st.cache_data(show_spinner=False, max_entries=20)
def _detected(path: str, name: str, format_json: str) -> detect.FileFormat:
    """How the uploaded file is written (detected once per file and mapping format)."""
    return mapping.file_format(path, json.loads(format_json), name)


def read_sample(upload: Upload, fmt: detect.FileFormat | None = None) -> pa.Table:
    """The file's first rows as text (the header and the values offered in the value map);
    `fmt` None: as detected."""
    fmt = fmt or _detected(str(upload.path), upload.name, "{}")
    return _sample(str(upload.path), upload.name, fmt)


@st.cache_data(show_spinner=False, max_entries=20)
def _sample(path: str, name: str, fmt: detect.FileFormat) -> pa.Table:
    for batch, _first_row in detect.read_batches(path, fmt, name, SAMPLE_ROWS):
        return batch
    raise ImportValidationError(name, [f"{name}: has no data rows"])


def columns_step(base: mapping.Mapping, header: list[str], key: str) -> dict[str, str]:
    """Step 4: our fields on one side, the file's columns on the other (suggested)."""
    lookup = {c.strip().lower(): c for c in header}
    options = [NOT_MAPPED, *header]
    table_fields = [f for f in mapping.fields(base.table) if not f.virtual]
    extra_fields = [f for f in mapping.fields(base.table) if f.virtual]
    chosen: dict[str, str] = {}

    def pick(fields: list[mapping.Field]) -> None:
        cols = st.columns(3)
        for i, f in enumerate(fields):
            current = lookup.get(str(base.columns.get(f.name, "")).strip().lower())
            required = " *" if f.required else ""
            instead = f" (or {', '.join(f.instead)})" if f.instead else ""
            column = cols[i % 3].selectbox(
                f"{f.name}{required}",
                options,
                index=options.index(current) if current else 0,
                key=f"{key}:col:{f.name}",
                help=f"{f.doc}{' Required' + instead + '.' if f.required else ''}",
            )
            if column != NOT_MAPPED:
                chosen[f.name] = column

    alternatives = [
        f"{f.name} can come from {' or '.join(f.instead)} instead"
        for f in table_fields
        if f.required and f.instead
    ]
    st.caption(
        "Fields marked * are required"
        + (f" ({'; '.join(alternatives)})" if alternatives else "")
        + ". Each of the file's columns goes to one field; columns not chosen are not imported."
    )
    pick(table_fields)
    if extra_fields:
        with st.expander(
            "Customer by e-mail or platform id, order lines",
            expanded=any(f.name in base.columns for f in extra_fields),
        ):
            st.caption(
                "Map these when the file names customers by e-mail or by the platform's id "
                "instead of our customer_id, or when it has one row per order line."
            )
            pick(extra_fields)
    left_out = [c for c in header if c not in chosen.values()]
    if left_out:
        st.caption(f"Not imported (no field chosen): {', '.join(left_out)}.")
    return chosen


def options_step(base: mapping.Mapping, key: str) -> tuple[str | None, dict[str, Any]]:
    """The platform (source) whose ids the file uses, and the options of line-item files."""
    cols = st.columns(3)
    source = (
        cols[0]
        .text_input(
            "Platform (source of ids)",
            base.source or "",
            key=f"{key}:source",
            help="Set it when the file's ids are another platform's (e.g. shopify): they are "
            "linked to ours, so the next export of the same platform lands on the same "
            "customers and orders. Leave empty when the ids are ours.",
        )
        .strip()
    )
    opts = dict(base.options)
    if base.table in ("orders", "events", "survey_responses", "support_tickets"):
        skip = cols[1].checkbox(
            "Leave out rows without a customer",
            opts.get("missing_customer") == "skip",
            key=f"{key}:skip_missing",
            help="Counted and reported. Otherwise such a row is a problem to fix.",
        )
        opts["missing_customer"] = "skip" if skip else "error"
    if base.table == "orders":
        prefix = (
            cols[2]
            .text_input(
                "Cancellation prefix of order ids",
                opts.get("cancelled_prefix") or "",
                key=f"{key}:cancelled_prefix",
                help="Order ids starting with it are cancellations (Online Retail writes C536379).",
            )
            .strip()
        )
        opts["cancelled_prefix"] = prefix or None
    return source or None, opts


def values_step(
    base: mapping.Mapping, columns: dict[str, str], sample: pa.Table, key: str
) -> dict[str, dict[str, str]]:
    """Step 5: for each mapped field with fixed values, the file's values -> ours."""
    values = {name: dict(vmap) for name, vmap in base.values.items() if name in columns}
    enums = [f for f in mapping.fields(base.table) if f.kind == "enum" and f.name in columns]
    if not enums:
        st.caption("No mapped field has a fixed list of values.")
        return values
    for f in enums:
        found = _distinct(sample, columns[f.name])
        existing = {str(k).strip().lower(): v for k, v in values.get(f.name, {}).items()}
        st.markdown(f"**{f.name}**: allowed {', '.join(f.allowed)}")
        cols = st.columns(3)
        choices = [AS_WRITTEN, *f.allowed]
        for i, value in enumerate(found):
            lowered = value.lower()
            default = existing.get(lowered) or (lowered if lowered in f.allowed else None)
            default = default or existing.get("*")
            picked = cols[i % 3].selectbox(
                value,
                choices,
                index=choices.index(default) if default in choices else 0,
                key=f"{key}:val:{f.name}:{value}",
                help=f"Store {value!r} as this {f.name}.",
            )
            if picked != AS_WRITTEN and picked != lowered:
                values.setdefault(f.name, {})[value] = picked
    return values


def _distinct(sample: pa.Table, column: str) -> list[str]:
    """Up to MAX_VALUES distinct trimmed values of a sample column, most frequent first."""
    lookup = {c.strip().lower(): c for c in sample.column_names}
    actual = lookup.get(column.strip().lower())
    if actual is None:
        return []
    series = pd.Series(sample.column(actual).to_pylist(), dtype="object").dropna()
    series = series.astype(str).str.strip()
    return series[series != ""].value_counts().index[:MAX_VALUES].tolist()


def show_problems(problems: list[str], limit: int = 50) -> None:
    """Problems by row and column, in a code block (the first `limit`)."""
    st.code("\n".join(problems[:limit]), language=None, wrap_lines=True)
    if len(problems) > limit:
        st.caption(f"... and {len(problems) - limit:,} more.")


@data.reads(*schema.LOADED_TABLES, show_spinner=False, max_entries=20)
def _preview(
    path: str, name: str, mapping_json: str, fmt: detect.FileFormat, mode: str
) -> ingest.ImportReport:
    """The preview's dry run, once per file, mapping, format and mode until an import or an
    undo changes the tables it reads (not again on every widget change)."""
    chosen = mapping.Mapping.from_json(mapping_json)
    return mapping.preview(
        data.store(), path, chosen, rows=PREVIEW_ROWS, mode=mode, file_name=name, fmt=fmt
    )


def preview_step(
    upload: Upload, current: mapping.Mapping, fmt: detect.FileFormat, mode: str
) -> None:
    """Step 6: the first rows as they will be stored, and every problem in them."""
    try:
        with st.spinner("Checking the first rows..."):
            report = _preview(str(upload.path), upload.name, current.to_json(), fmt, mode)
    except ImportValidationError as exc:
        st.error(f"{upload.name}: {len(exc.problems)} problem(s) before any row is read.")
        show_problems(exc.problems)
        return
    except CRMError as exc:
        st.error(str(exc))
        return
    row_notes = [n for n in report.notes if n[:1].isdigit()]  # rows left out or changed
    if row_notes:
        st.caption("\n".join(f"- {note} (in the first {PREVIEW_ROWS} rows)" for note in row_notes))
    if report.problems:
        st.warning(
            f"{len(report.problems)} problem(s) in the first {PREVIEW_ROWS} rows "
            "(row numbers as in the file; the header is row 1):"
        )
        show_problems(report.problems)
    else:
        st.success(f"The first {PREVIEW_ROWS} rows read without problems.")
    show_warnings(report.warnings)
    shown = {t: f for t, f in report.preview.items() if not f.empty}
    if not shown:
        st.info("No row would be stored from the first rows.")
        return
    for tab, (table, frame) in zip(st.tabs(list(shown)), shown.items(), strict=True):
        with tab:
            st.caption(f"`{table}`: the first rows as they will be stored.")
            show_table(frame)


def show_warnings(warnings: list[str]) -> None:
    """Rows that load but look invalid (a future date, a malformed e-mail or phone)."""
    if warnings:
        st.warning(
            "Rows that load as they are but look wrong:\n"
            + "\n".join(f"- {text}" for text in warnings)
        )


def import_step(
    upload: Upload, current: mapping.Mapping, fmt: detect.FileFormat, user: auth.User, mode: str
) -> None:
    """Step 7: check the whole file, or import it; the result stays on screen."""
    on_error = st.radio(
        "If some rows are wrong",
        ("stop", "skip"),
        format_func=lambda v: (
            "Import nothing (fix the file first)"
            if v == "stop"
            else "Import the valid rows; download the rejected ones"
        ),
        horizontal=True,
        key=f"imp:{upload.file_id}:on_error",
        help="Either way it is one transaction: a failure leaves the store as it was.",
    )
    check, go = st.columns(2)
    dry_run = check.button("Check the whole file", help="A dry run: nothing is written.")
    if go.button("Import", type="primary") or dry_run:
        try:
            with st.spinner(f"{'Checking' if dry_run else 'Importing'} {upload.name}..."):
                report = mapping.import_mapped(
                    data.store(),
                    upload.path,
                    current,
                    mode=mode,
                    on_error=on_error,
                    dry_run=dry_run,
                    user=user.username,
                    file_name=upload.name,
                    fmt=fmt,
                )
        except ImportValidationError as exc:
            st.session_state[RESULT_KEY] = {"failed": exc.problems, "name": upload.name}
        except CRMError as exc:
            st.session_state[RESULT_KEY] = {"failed": [str(exc)], "name": upload.name}
        else:
            if not report.dry_run:
                data.tables_changed(*report.rows, "import_batches")
            st.session_state[RESULT_KEY] = {"report": report, "name": upload.name}
    last_result()


def last_result() -> None:
    """The last import's or check's outcome, with the rejected rows to download."""
    result = st.session_state.get(RESULT_KEY)
    if not result:
        return
    name = result["name"]
    if "failed" in result:
        problems = result["failed"]
        st.error(f"{name}: {len(problems)} problem(s); nothing was imported.")
        show_problems(problems)
        return
    report: ingest.ImportReport = result["report"]
    written = ", ".join(f"{rows:,} {table}" for table, rows in report.rows.items() if rows)
    if report.dry_run:
        if report.problems:
            st.warning(f"Checked {name}: {len(report.problems)} problem(s); nothing was written.")
            show_problems(report.problems)
        else:
            st.success(f"Checked {name}: would write {written or 'nothing'}; no problems.")
    else:
        st.success(f"Imported {name} as batch {report.batch_id}: {written or 'no rows'}.")
    for note in report.notes:
        st.caption(f"• {note}")
    show_warnings(report.warnings)
    if report.rejected:
        st.warning(f"{report.rejected:,} row(s) rejected{' (would be)' if report.dry_run else ''}.")
        st.download_button(
            "Download the rejected rows (CSV, with the reason per row)",
            report.rejects_csv or b"",
            file_name=f"{Path(name).stem}.rejected.csv",
            mime="text/csv",
            on_click=audit_ui.record_download,
            args=(
                f"rejected rows of import {report.batch_id or '(check)'}",
                f"{Path(name).stem}.rejected.csv",
                {"rows": int(report.rejected)},
            ),
        )


def save_step(current: mapping.Mapping, user: auth.User, key: str) -> None:
    """Save the mapping by name, for the next file and for the CLI."""
    with st.form(f"{key}:save", border=False):
        cols = st.columns([3, 1])
        name = cols[0].text_input(
            "Save this mapping as",
            current.name if current.name not in presets.PRESETS else "",
            help="Then pick it under 'Start from', or use it from the command line: "
            "python -m crm_core import TABLE FILE --mapping NAME",
        )
        if cols[1].form_submit_button("Save mapping"):
            try:
                current.name = name.strip()
                mapping.save(data.store(), current, user=user.username)
            except CRMError as exc:
                st.error(str(exc))
            else:
                st.success(f"Saved the mapping {current.name!r}.")


HISTORY_COLUMNS = {
    "batch_id": st.column_config.NumberColumn("Batch", format="%d"),
    "imported_at": st.column_config.DatetimeColumn("When (UTC)", format=DATETIME_FORMAT),
    "imported_by": "By",
    "file_name": "File",
    "mode": "Mode",
    "rows": "Rows per table",
    "rejected_rows": st.column_config.NumberColumn("Rejected", format="%d"),
    "undone_at": st.column_config.DatetimeColumn("Undone (UTC)", format=DATETIME_FORMAT),
    "undone_by": "Undone by",
}


def history_panel(user: auth.User) -> None:
    """Past imports, newest first, and undo of the last import of a table."""
    if flash := st.session_state.pop(UNDO_FLASH, None):
        st.success(flash)
    history = ingest.history(data.store())
    if history.empty:
        st.info("No imports yet. Each import shows here, with who, when and rows per table.")
        return
    history["rows"] = [ingest.rows_text(text) for text in history["rows"]]
    shown = [c for c in HISTORY_COLUMNS if c in history.columns]
    show_table(history[shown], column_config=HISTORY_COLUMNS)
    st.subheader("Undo an import")
    st.caption(
        "Undo removes the rows an import added and restores the rows it replaced, in one "
        "transaction. An import can be undone while it is the last one of its tables and no "
        "later import refers to its rows."
    )
    active = history[history["undone_at"].isna()]
    if active.empty:
        st.caption("Every import listed is undone already.")
        return
    labels = {
        int(row.batch_id): f"Batch {int(row.batch_id)}: {row.file_name} ({row.rows})"
        for row in active.itertuples(index=False)
    }
    with st.form("undo_import"):
        batch = st.selectbox("Import", list(labels), format_func=labels.get, help="Newest first.")
        sure = st.checkbox("Yes, undo this import")
        if st.form_submit_button("Undo import"):
            if not sure:
                st.warning("Tick the box to confirm.")
                return
            try:
                undone = ingest.undo(data.store(), batch_id=batch, user=user.username)
            except CRMError as exc:
                st.error(str(exc))
            else:
                data.tables_changed(*undone.removed, *undone.restored, "import_batches")
                st.session_state[UNDO_FLASH] = str(undone)
                st.rerun()  # the history above shows the batch undone

"""Load CSV or Parquet files into store tables: read, validate, load all or nothing.

Every rule comes from `crm_core.schema`: which columns exist and are required
(``nullable=False``), their SQLAlchemy types, and the ``allowed``, ``min`` and
``references`` entries of each column's ``info``. Nothing here is written per table.

Error messages follow one convention, ``<file> row <n>, column <col>: <what is wrong>``,
for example ``orders.csv row 17, column amount: 'abc' is not a number``. Problems about
the whole file have no row: ``orders.csv: missing required column 'amount'; required: ...``.

Row numbers count as a spreadsheet does: the header is row 1, so the first data row is
row 2 (for Parquet too, as if the file were opened as a sheet with a header). A quoted value
that spans several lines still counts as one row; blank lines are skipped and not counted.
A `Chunk` carries the file row of each of its rows (a mapping may fold several into one).

`load` validates and loads a file chunk by chunk (`BATCH_ROWS` rows at a time, read by
`crm_core.detect.read_batches`) inside ONE transaction, keeping only the keys of earlier
chunks: keys stay unique and references resolve across chunks, and the problems listed are
the same as for one chunk. Every problem in a file is collected (vectorised over whole
columns; messages are built for the first `MAX_ROWS_PER_CHECK` offending rows of each
check, plus one line counting the rest) and raised together as one `ImportValidationError`,
so when anything fails no table changes; or, with ``on_error="skip"``, the valid rows load
and the rejected ones come back with their reasons. Each load is a batch in
`import_batches`; `undo` takes the last one of a table back.

Reading rules (`import_file`): CSV must be UTF-8 (a byte-order mark is fine),
comma-separated, with a header row; ``.csv.gz`` is decompressed (`crm_core.mapping` reads
other formats). Values are read as text, then converted: surrounding whitespace is trimmed
and an empty value means "missing". Column names are matched after trimming and
lower-casing. Numbers use ``.`` as the decimal point and no thousands separator; booleans
accept true/false, 1/0, yes/no (any case); dates and timestamps are ISO 8601
(``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS[.ffffff]]``, with ``T`` or a space; a zone offset
such as ``Z`` or ``+02:00`` is converted to UTC). Money (``Numeric``) is rounded to 2
decimals. Columns an optional file leaves out are not touched (NULL for new rows; kept as
they were by an upsert).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crm_core import audit, consent, detect, features, quality, schema
from crm_core.errors import CRMError, ImportValidationError
from crm_core.store import Store, lock_tables, next_id, utcnow

MODES = ("append", "upsert")
"""append: every key must be new; upsert: rows whose key exists replace the stored row."""

MAX_FIELD_CHARS = 10_000
"""A value longer than this is refused as a "huge field" (usually a broken quote)."""

MAX_ROWS_PER_CHECK = 100
"""Messages are written for this many offending rows per check; the rest are counted."""

_TRUE = ("true", "1", "yes", "y", "t")
_FALSE = ("false", "0", "no", "n", "f")
_INT_RE = r"^[+-]?[0-9]{1,18}(\.0*)?$"
_FLOAT_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_INT_LIMITS = {"SmallInteger": 2**15 - 1, "Integer": 2**31 - 1}


@dataclass(frozen=True)
class ImportResult:
    """What one file added to the store."""

    table: str
    rows: int
    mode: str  # "append" or "upsert"
    file_name: str


# --- reading ---------------------------------------------------------------------------


def read_table_file(path: Path | str, file_name: str | None = None) -> pd.DataFrame:
    """Read a whole CSV (.csv, .csv.gz, .txt) or Parquet (.parquet) file, as `load` sees it.

    CSV columns are all text (empty = missing); Parquet keeps its types. Raises
    ImportValidationError for unreadable files (encoding, delimiter, empty, ragged rows).
    Holds the whole file: imports read it in batches instead (`detect.read_batches`).
    """
    tables = [table for table, _first_row in detect.read_batches(path, None, file_name)]
    return _frame(pa.concat_tables(tables) if len(tables) > 1 else tables[0])


def _frame(table: pa.Table) -> pd.DataFrame:
    """A batch as read, as pandas (zero-copy for text; Parquet types kept nullable)."""
    return table.to_pandas(types_mapper=_parquet_types)


def _parquet_types(arrow_type: pa.DataType) -> Any:
    """Keep Parquet's typed columns nullable and exact in pandas."""
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow", na_value=np.nan)
    return None


# --- validation ------------------------------------------------------------------------


class _Problems:
    """Problems found in one file, over all its batches and tables: whole-file ones first,
    then row ones sorted by file row, then counts of rows not listed.

    `begin` sets the frame being checked (its table and the file row of each of its rows);
    `add` marks offending rows in `bad` and, when `collect` is set (partial mode), keeps a
    reason for every offending row, not only the listed ones.
    """

    def __init__(
        self,
        file_name: str,
        *,
        collect: bool = False,
        labels: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.file_name = file_name
        self.collect = collect
        self.labels = labels or {}
        self.general: list[str] = []
        self.rows: list[tuple[int, int, int, str]] = []
        self.checks: dict[tuple[str, str, str], list[int]] = {}  # -> [ordinal, listed, more]
        self.table_order: dict[str, int] = {}
        self.begin("", [], np.zeros(0, dtype=np.int64))

    def begin(self, table: str, columns: Sequence[str], rows: np.ndarray) -> None:
        """Check a new frame of `table` whose rows are the file rows `rows`."""
        self.table = table
        self.table_labels = self.labels.get(table, {})
        self.table_order.setdefault(table, len(self.table_order))
        self.order = {c: i for i, c in enumerate(columns)}
        self.frame_rows = rows
        self.bad = np.zeros(len(rows), dtype=bool)
        self.reasons: list[tuple[np.ndarray, int, list[str]]] = []

    def file(self, text: str) -> None:
        message = f"{self.file_name}: {text}"
        if message not in self.general:
            self.general.append(message)

    def add(
        self, mask: np.ndarray, column: str, message: Callable[[np.ndarray], list[str]], what: str
    ) -> None:
        """Record the rows where `mask` holds; `message(positions)` says what is wrong."""
        positions = np.flatnonzero(mask)
        column_pos = self.order.get(column, 0)
        if column in self.table_labels:  # the file's own column name first (a mapping)
            column = f"{self.table_labels[column]} ({column})"
        check = self.checks.setdefault((self.table, column, what), [len(self.checks), 0, 0])
        if not len(positions):
            return
        self.bad[positions] = True
        room = max(MAX_ROWS_PER_CHECK - check[1], 0)
        shown = positions[:room]
        table_pos = self.table_order[self.table]
        if self.collect:
            texts = message(positions)
            self.reasons.append((positions, column_pos, [f"column {column}: {t}" for t in texts]))
            texts = texts[: len(shown)]
        else:
            texts = message(shown) if len(shown) else []
        for pos, text in zip(shown, texts, strict=True):
            row = int(self.frame_rows[pos])
            self.rows.append(
                (row, table_pos, column_pos, f"{self.file_name} row {row}, column {column}: {text}")
            )
        check[1] += len(shown)
        check[2] += len(positions) - len(shown)

    def count(self) -> int:
        return len(self.general) + len(self.rows) + sum(1 for c in self.checks.values() if c[2])

    def all(self) -> list[str]:
        totals = [
            f"{self.file_name} column {column}: {more:,} more rows where {what}"
            for (_table, column, what), (_ordinal, _listed, more) in sorted(
                self.checks.items(), key=lambda item: item[1][0]
            )
            if more
        ]
        return self.general + [text for *_, text in sorted(self.rows)] + totals

    def raise_if_any(self) -> None:
        problems = self.all()
        if problems:
            raise ImportValidationError(self.file_name, problems)


def validate(
    frame: pd.DataFrame,
    table_name: str,
    file_name: str,
    store: Store,
    conn: Connection | None = None,
    mode: str = "append",
    pending: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Check and convert `frame` for `table_name`: the typed frame, or ImportValidationError.

    The error lists every problem found (rows numbered as in a file: the first is row 2).
    `conn` reads existing keys inside the caller's transaction; `pending` holds typed frames
    of tables loaded earlier in the same batch, whose keys count as existing for `references`.
    """
    table = _importable_table(table_name, file_name)
    _check_mode(mode, file_name)
    problems = _Problems(file_name)
    names = _column_names(frame)
    problems.begin(table_name, _allowed_columns(table), np.arange(len(frame), dtype=np.int64) + 2)
    readable = _check_header(names, table, problems)
    if len(frame) == 0:
        problems.file("has no data rows")
    if not readable or len(frame) == 0:
        problems.raise_if_any()
    known = {}
    for ref_table, keys in (pending or {}).items():
        for col in keys.columns:
            known[(ref_table, col)] = _KeySet.of(keys[[col]], np.zeros(len(keys), dtype=np.int64))
    result = _check_frame(
        frame,
        names,
        table,
        problems,
        mode=mode,
        run_query=_query_runner(store, conn),
        log=_KeySet(schema.primary_key(table_name)),
        known=known,
        rejected={},
    )
    problems.raise_if_any()
    return result


def _allowed_columns(table: sa.Table) -> list[str]:
    """Columns an import file may hold for `table` (bookkeeping columns are not among them)."""
    return [c.name for c in table.columns if not c.info.get("bookkeeping")]


def _column_names(frame: pd.DataFrame) -> list[str]:
    return [str(c).strip().lower().lstrip("\ufeff") for c in frame.columns]


def _check_header(names: list[str], table: sa.Table, problems: _Problems) -> bool:
    """Whole-file checks of the column names; False when the columns cannot be read at all
    (a name repeated)."""
    declared = _allowed_columns(table)
    seen: set[str] = set()
    repeated = sorted({n for n in names if n in seen or seen.add(n)})
    if repeated:
        problems.file(f"column(s) {_quoted(repeated)} appear more than once in the header")
    required = [c.name for c in table.columns if not c.nullable and c.name in declared]
    missing = [c for c in required if c not in names]
    ignored = {c.name for c in table.columns if c.info.get("bookkeeping")}
    unknown = [n for n in names if n not in declared and n not in ignored]
    if missing or unknown:
        hint = _looks_like(names, table)
        if hint:
            problems.file(hint)
    for col in missing:
        problems.file(f"missing required column '{col}'; required: {', '.join(required)}")
    if unknown:
        problems.file(
            f"unknown column(s) {_quoted(unknown)}; allowed: {', '.join(declared)} "
            "(remove or rename them)"
        )
    return not repeated


def _looks_like(names: list[str], chosen: sa.Table) -> str | None:
    """'this looks like an orders file (...)' when the header fits another table better."""
    header = set(names)
    fits = len(header & set(_allowed_columns(chosen)))
    best: tuple[int, str, list[str]] | None = None
    for name in schema.IMPORTABLE_TABLES:
        other = schema.table(name)
        if other is chosen:
            continue
        columns = _allowed_columns(other)
        required = [c.name for c in other.columns if not c.nullable and c.name in columns]
        if not required or not set(required) <= header:
            continue
        score = len(header & set(columns))
        if score > fits and (best is None or score > best[0]):
            own = set(_allowed_columns(chosen))
            telling = [c for c in required if c not in own] or required
            best = (score, name, telling)
    if best is None:
        return None
    _score, name, telling = best
    article = "an" if name[0] in "aeiou" else "a"
    return (
        f"this looks like {article} {name} file ({', '.join(telling)}), not {chosen.name}; "
        f"choose table {name}"
    )


def _check_frame(
    frame: pd.DataFrame,
    names: list[str],
    table: sa.Table,
    problems: _Problems,
    *,
    mode: str,
    run_query: Callable[[Any], pd.DataFrame],
    log: _KeySet,
    known: dict[tuple[str, str], _KeySet],
    rejected: dict[tuple[str, str], _KeySet],
) -> pd.DataFrame:
    """Convert and check one frame (the header already checked): the typed frame; problems
    and `problems.bad` hold what is wrong. `log` holds the keys of earlier batches (updated
    here), `known` the referenced keys loaded earlier in this import, `rejected` those
    rejected earlier (partial mode)."""
    position = {n: i for i, n in enumerate(names)}
    raws = {
        c.name: _arrow(frame.iloc[:, position[c.name]])
        for c in table.columns
        if c.name in position and not c.info.get("bookkeeping")
    }
    del frame
    typed: dict[str, pd.Series] = {}
    for column in table.columns:
        if column.name in raws:
            typed[column.name] = _convert(raws.pop(column.name), column, problems)
    if typed:
        result = pd.DataFrame(typed, copy=False)
        result.index = pd.RangeIndex(len(result))
    else:
        result = pd.DataFrame(index=pd.RangeIndex(len(problems.frame_rows)))
    _check_keys(result, table, mode, problems, run_query, log)
    _check_references(result, table, problems, run_query, known, rejected)
    return result


def _importable_table(table_name: str, file_name: str) -> sa.Table:
    if table_name not in schema.IMPORTABLE_TABLES:
        raise ImportValidationError(
            file_name,
            [
                f"{file_name}: cannot import into table '{table_name}'; "
                f"allowed: {', '.join(schema.IMPORTABLE_TABLES)}"
            ],
        )
    return schema.table(table_name)


def _check_mode(mode: str, file_name: str) -> None:
    if mode not in MODES:
        raise ImportValidationError(
            file_name, [f"{file_name}: unknown import mode '{mode}'; allowed: {', '.join(MODES)}"]
        )


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _arrow(series: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A pandas column as an Arrow array (zero-copy for Arrow-backed columns)."""
    try:
        arr = pa.array(series, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        arr = pa.array(series.astype("str"), from_pandas=True)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_null(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _is_text(arr: pa.Array | pa.ChunkedArray) -> bool:
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def _mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as a numpy mask (nulls are False)."""
    filled = pc.fill_null(arr, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks() if filled.num_chunks != 1 else filled.chunk(0)
    return filled.to_numpy(zero_copy_only=False)


def _shown(value: Any) -> str:
    text = str(value)
    if len(text) > 40:
        return repr(text[:40]) + f"... ({len(text):,} characters)"
    return repr(text)


def _raw_values(raw: pa.Array | pa.ChunkedArray) -> Callable[[np.ndarray], list[str]]:
    def values(positions: np.ndarray) -> list[str]:
        return [_shown(v) for v in raw.take(pa.array(positions)).to_pylist()]

    return values


def _convert(raw: pa.Array | pa.ChunkedArray, column: sa.Column, problems: _Problems) -> pd.Series:
    """Convert one column to its declared type, recording every value that does not fit."""
    name, col_type, info = column.name, column.type, column.info
    values_of = _raw_values(raw)

    if _is_text(raw):
        lengths = pc.binary_length(raw)
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > MAX_FIELD_CHARS:
            chars = pc.utf8_length(raw)
            huge = _mask(pc.greater(chars, MAX_FIELD_CHARS))

            def huge_msg(positions: np.ndarray) -> list[str]:
                counts = chars.take(pa.array(positions)).to_pylist()
                return [
                    f"huge field of {n:,} characters; the limit is {MAX_FIELD_CHARS:,} "
                    "(often a missing closing quote)"
                    for n in counts
                ]

            problems.add(huge, name, huge_msg, f"a field is longer than {MAX_FIELD_CHARS:,}")
            raw = pc.if_else(pa.array(huge), pa.scalar(None, raw.type), raw)
        else:
            huge = None
        text = pc.utf8_trim_whitespace(raw)
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)
    else:
        text, huge = raw, None
    present = _mask(pc.is_valid(text))
    if huge is not None:
        present |= huge  # reported as huge, not also as missing

    if isinstance(col_type, sa.Boolean):
        values, bad = _to_bool(text)
        expected = "true/false (allowed: true, false, 1, 0, yes, no)"
        problems.add(
            bad, name, lambda p: [f"{v} is not {expected}" for v in values_of(p)], "not true/false"
        )
    elif isinstance(col_type, sa.Integer):
        values, bad = _to_int(text)
        problems.add(
            bad,
            name,
            lambda p: [f"{v} is not a whole number" for v in values_of(p)],
            "the value is not a whole number",
        )
        limit = _INT_LIMITS.get(type(col_type).__name__)
        if limit is not None:
            too_big = _mask(pc.greater(pc.abs(values), limit))
            problems.add(
                too_big,
                name,
                lambda p: [f"{v} is too large (at most {limit:,})" for v in values_of(p)],
                "the number is too large",
            )
            values = pc.if_else(pa.array(too_big), pa.scalar(None, pa.int64()), values)
    elif isinstance(col_type, sa.Numeric):  # Numeric and Float
        values, bad = _to_float(text)
        problems.add(
            bad,
            name,
            lambda p: [f"{v} is not a number" for v in values_of(p)],
            "the value is not a number",
        )
        if not isinstance(col_type, sa.Float) and col_type.precision is not None:
            scale = col_type.scale or 0
            limit = 10 ** (col_type.precision - scale)
            values = _round_money(text, values, bad, scale)
            too_big = _mask(pc.greater_equal(pc.abs(values), limit))
            problems.add(
                too_big,
                name,
                lambda p: [f"{v} is too large (must be below {limit:,})" for v in values_of(p)],
                "the number is too large",
            )
    elif isinstance(col_type, sa.DateTime | sa.Date):
        is_date = not isinstance(col_type, sa.DateTime)
        values, bad = _to_timestamp(text, date_only=is_date)
        kind = "a date" if is_date else "a date/time"
        example = "YYYY-MM-DD" if is_date else "YYYY-MM-DD or YYYY-MM-DD HH:MM:SS"
        problems.add(
            bad,
            name,
            lambda p: [f"{v} is not {kind} (expected {example})" for v in values_of(p)],
            f"the value is not {kind}",
        )
    elif isinstance(col_type, sa.String):  # String and Text
        values = text if _is_text(text) else pc.cast(text, pa.string())
    else:  # a type schema.py uses but this module does not know: a programming error
        raise TypeError(f"ingest cannot convert {column.table.name}.{name} of type {col_type!r}")

    if not column.nullable:
        missing = ~present

        def missing_msg(positions: np.ndarray) -> list[str]:
            return ["value is missing; this column is required"] * len(positions)

        problems.add(missing, name, missing_msg, "the required value is missing")

    allowed = info.get("allowed")
    if allowed:
        outside = _mask(pc.invert(pc.is_in(values, value_set=pa.array(list(allowed)))))
        problems.add(
            outside & present,
            name,
            lambda p: [f"{v} is not allowed; allowed: {', '.join(allowed)}" for v in values_of(p)],
            f"the value is not one of {', '.join(allowed)}",
        )

    minimum = info.get("min")
    if minimum is not None:
        below = _mask(pc.less(values, minimum))
        problems.add(
            below,
            name,
            lambda p: [f"{v} is below the minimum {minimum}" for v in values_of(p)],
            f"the value is below the minimum {minimum}",
        )

    return _to_pandas(values)


def _to_int(text: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    if pa.types.is_integer(text.type):
        return pc.cast(text, pa.int64()), np.zeros(len(text), dtype=bool)
    if pa.types.is_floating(text.type) or pa.types.is_decimal(text.type):
        floats = pc.cast(text, pa.float64())
        whole = pc.and_(pc.is_finite(floats), pc.equal(pc.floor(floats), floats))
        ok = pc.and_(whole, pc.less(pc.abs(floats), 2.0**62))
        bad = _mask(pc.and_(pc.is_valid(floats), pc.invert(ok)))
        good = pc.if_else(ok, floats, pa.scalar(None, pa.float64()))
        return pc.cast(good, pa.int64()), bad
    text = _as_text(text)
    try:
        return pc.cast(text, pa.int64()), np.zeros(len(text), dtype=bool)
    except pa.ArrowInvalid:
        pass
    ok = pc.match_substring_regex(text, _INT_RE)
    cleaned = pc.replace_substring_regex(text, r"\.0*$", "")
    cleaned = pc.replace_substring_regex(cleaned, r"^\+", "")
    good = pc.if_else(ok, cleaned, pa.scalar(None, cleaned.type))
    return pc.cast(good, pa.int64()), _mask(pc.and_(pc.is_valid(text), pc.invert(ok)))


def _to_float(text: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    if pa.types.is_integer(text.type) or pa.types.is_decimal(text.type):
        return pc.cast(text, pa.float64()), np.zeros(len(text), dtype=bool)
    if pa.types.is_floating(text.type):
        values = pc.cast(text, pa.float64())
    else:
        text = _as_text(text)
        try:
            values = pc.cast(text, pa.float64())
        except pa.ArrowInvalid:
            ok = pc.match_substring_regex(text, _FLOAT_RE)
            good = pc.if_else(ok, text, pa.scalar(None, text.type))
            values = pc.cast(good, pa.float64())
    finite = pc.is_finite(values)  # null where missing; "nan"/"inf" are not numbers here
    bad = _mask(pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(finite, False))))
    return pc.if_else(finite, values, pa.scalar(None, pa.float64())), bad


_TRUE_SET = pa.array(list(_TRUE))
_FALSE_SET = pa.array(list(_FALSE))


def _round_money(
    text: pa.Array | pa.ChunkedArray, values: pa.Array, bad: np.ndarray, scale: int
) -> pa.Array:
    """Round to `scale` decimals, half away from zero, exactly as written ('1.005' -> 1.01).

    When a value has more decimals than that, the text goes through Arrow's decimal type so
    the rounding sees the digits as written, not their nearest binary float; if that fails
    (more than 18 decimals, huge values) the floats are rounded instead. Money written in
    cents, the usual case, skips the decimal parse (3 s for 10M orders).
    """
    mode = "half_towards_infinity"
    if _is_text(text) and _off_the_grid(values, scale):
        clean = pc.if_else(pa.array(bad), pa.scalar(None, text.type), text) if bad.any() else text
        try:
            exact = pc.round(pc.cast(clean, pa.decimal128(38, 18)), scale, round_mode=mode)
            values = pc.cast(exact, pa.float64())
        except pa.ArrowInvalid:
            pass
    return pc.round(values, scale, round_mode=mode)  # also snaps to the nearest float


def _off_the_grid(values: pa.Array | pa.ChunkedArray, scale: int) -> bool:
    """Whether some value is not, to float precision, a multiple of 10**-scale: only then
    can rounding the parsed float differ from rounding the digits as written."""
    scaled = pc.multiply(values, 10.0**scale)
    off = pc.abs(pc.subtract(scaled, pc.round(scaled)))
    tolerance = pc.add(pc.multiply(pc.abs(scaled), 4 * np.finfo(float).eps), 1e-9)
    return bool(pc.any(pc.greater(off, tolerance)).as_py())


def _to_bool(text: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    if pa.types.is_boolean(text.type):
        return text, np.zeros(len(text), dtype=bool)
    if pa.types.is_integer(text.type) or pa.types.is_floating(text.type):
        text = pc.cast(pc.cast(text, pa.int64(), safe=False), pa.string())
    lower = pc.utf8_lower(_as_text(text))
    is_true = pc.is_in(lower, value_set=_TRUE_SET)
    is_false = pc.is_in(lower, value_set=_FALSE_SET)
    known = pc.or_(is_true, is_false)
    values = pc.if_else(known, is_true, pa.scalar(None, pa.bool_()))
    return values, _mask(pc.and_(pc.is_valid(lower), pc.invert(known)))


def _to_timestamp(
    text: pa.Array | pa.ChunkedArray, *, date_only: bool
) -> tuple[pa.Array, np.ndarray]:
    """ISO 8601 text (or Arrow dates/timestamps) as naive UTC microsecond timestamps."""
    target = pa.timestamp("us")
    no_problems = np.zeros(len(text), dtype=bool)
    if pa.types.is_timestamp(text.type):
        if text.type.tz is not None:
            text = pc.cast(text, pa.timestamp(text.type.unit, "UTC")).cast(
                pa.timestamp(text.type.unit)
            )
        values = pc.cast(text, target)
    elif pa.types.is_date(text.type):
        values = pc.cast(pc.cast(text, pa.date32()), target)
    else:
        text = _as_text(text)
        try:
            values = pc.cast(text, target)
        except pa.ArrowInvalid:
            values = None
        if values is None:
            # Mixed forms, zone offsets or bad values: pandas' ISO 8601 parser, vectorised.
            parsed = pd.to_datetime(
                text.to_pandas(),
                format="ISO8601",
                errors="coerce",
                utc=True,
            )
            parsed = parsed.dt.tz_convert(None).astype("datetime64[us]")
            values = pa.array(parsed, type=target, from_pandas=True)
            bad = _mask(pc.and_(pc.is_valid(text), pc.is_null(values)))
            if date_only:
                values = pc.floor_temporal(values, unit="day")
            return values, bad
    if date_only:
        values = pc.floor_temporal(values, unit="day")
    return values, no_problems


def _as_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return arr if _is_text(arr) else pc.cast(arr, pa.string())


_PANDAS_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
    pa.string(): pd.StringDtype("pyarrow", na_value=np.nan),
    pa.large_string(): pd.StringDtype("pyarrow", na_value=np.nan),
}


def _to_pandas(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    series = values.to_pandas(types_mapper=_PANDAS_TYPES.get)
    if pa.types.is_timestamp(values.type):
        series = series.astype("datetime64[us]")
    return series


# --- keys and references ---------------------------------------------------------------


def _query_runner(store: Store, conn: Connection | None) -> Callable[[Any], pd.DataFrame]:
    def run(stmt: Any) -> pd.DataFrame:
        return store.read_df(stmt, conn=conn)

    return run


def _range_filter(column: sa.Column, values: pd.Series) -> list[Any]:
    """A bound BETWEEN on the file's smallest and largest value (numbers and times only)."""
    if isinstance(column.type, sa.String):
        return []  # text collations differ between databases: compare everything
    present = values.dropna()
    if present.empty:
        return []
    low, high = present.min(), present.max()
    if isinstance(low, pd.Timestamp):
        low, high = low.to_pydatetime(), high.to_pydatetime()
    elif hasattr(low, "item"):
        low, high = low.item(), high.item()
    return [column.between(low, high)]


class _KeySet:
    """Keys seen so far in one import, each with the file row it came from.

    Integer keys of one column, or of two non-negative ones packed into one number
    (order_items: order_id, line_no): sorted numpy arrays (12 bytes a key: 10M orders take
    120 MB), so earlier batches are checked without keeping their frames. Other keys (text,
    or numbers too large to pack): a frame.
    """

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.keys: np.ndarray | None = None
        self.rows: np.ndarray | None = None
        self.frame: pd.DataFrame | None = None
        self.shift: int | None = None  # bits of the second column when two are packed

    @classmethod
    def of(cls, keys: pd.DataFrame, rows: np.ndarray) -> _KeySet:
        """A set holding the complete keys of `keys` (file rows `rows`)."""
        result = cls(list(keys.columns))
        complete = keys.notna().all(axis=1).to_numpy()
        result.add(keys.loc[complete], np.asarray(rows)[complete])
        return result

    def __len__(self) -> int:
        if self.keys is not None:
            return len(self.keys)
        return 0 if self.frame is None else len(self.frame)

    def _codes(self, keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
        """One int64 per key and whether it could be encoded; None: not integer keys."""
        if self.frame is not None or len(self.columns) > 2:
            return None
        ints = [_ints_of(keys[c]) for c in self.columns]
        if any(v is None for v in ints):
            return None
        if len(ints) == 1:
            return ints[0], np.ones(len(ints[0]), dtype=bool)
        high, low = ints
        if self.shift is None:  # room for 4x the largest second value seen first
            largest = int(low.max()) if len(low) else 0
            self.shift = min(40, max(16, largest.bit_length() + 2))
        fits = (high >= 0) & (low >= 0) & (high < 2 ** (63 - self.shift)) & (low < 2**self.shift)
        return np.where(fits, (high << self.shift) | low, 0), fits

    def _as_frame(self) -> pd.DataFrame:
        if self.keys is None:
            return self.frame if self.frame is not None else pd.DataFrame()
        if len(self.columns) == 1:
            columns = {self.columns[0]: self.keys}
        else:
            mask = (1 << self.shift) - 1
            columns = {self.columns[0]: self.keys >> self.shift, self.columns[1]: self.keys & mask}
        return pd.DataFrame({**columns, "_row": self.rows.astype(np.int64)})

    def add(self, keys: pd.DataFrame, rows: np.ndarray) -> None:
        """Add complete keys (no missing values) and their file rows."""
        if not len(keys):
            return
        rows = np.asarray(rows, dtype=np.int64)
        coded = self._codes(keys)
        if coded is not None and coded[1].all():
            codes = coded[0]
            order = np.argsort(codes, kind="stable")
            codes = codes[order]
            rows = rows[order].astype(np.int32 if rows.max() < 2**31 else np.int64)
            if self.keys is None:
                self.keys, self.rows = codes, rows
            else:  # merge into the sorted arrays, one new copy each
                at = np.searchsorted(self.keys, codes)
                self.keys = np.insert(self.keys, at, codes)
                self.rows = np.insert(self.rows, at, rows)
            return
        new = pd.DataFrame({c: keys[c].to_numpy() for c in self.columns})
        new["_row"] = rows
        if self.keys is not None:  # keys that cannot be packed: one frame from now on
            new = pd.concat([self._as_frame(), new], ignore_index=True)
            self.keys = self.rows = None
        parts = [f for f in (self.frame, new) if f is not None]
        self.frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else new

    def lookup(self, keys: pd.DataFrame) -> np.ndarray:
        """The file row of each key of `keys` (complete keys), -1 where it is not in the set."""
        found = np.full(len(keys), -1, dtype=np.int64)
        if not len(keys) or not len(self):
            return found
        if self.keys is not None:
            coded = self._codes(keys)
            if coded is not None:  # a key that cannot be packed is not among packed ones
                codes, fits = coded
                at = np.minimum(np.searchsorted(self.keys, codes), len(self.keys) - 1)
                hit = fits & (self.keys[at] == codes)
                found[hit] = self.rows[at[hit]]
                return found
        known = self._as_frame().drop_duplicates(self.columns)
        left = pd.DataFrame({c: keys[c].to_numpy() for c in self.columns})
        right = known.copy()
        for c in self.columns:
            right[c] = _comparable(right[c], left[c])
        merged = left.merge(right, on=self.columns, how="left")
        return merged["_row"].fillna(-1).to_numpy(dtype=np.int64)


def _ints_of(values: pd.Series) -> np.ndarray | None:
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy(dtype=np.int64)
    return None


def _check_keys(
    frame: pd.DataFrame,
    table: sa.Table,
    mode: str,
    problems: _Problems,
    run_query: Callable[[Any], pd.DataFrame],
    log: _KeySet,
) -> None:
    """Duplicate keys (in this frame or an earlier batch: `log`, updated here) and, in
    append mode, keys already in the store."""
    key = [c.name for c in table.primary_key.columns]
    if not all(k in frame.columns for k in key):
        return
    complete = frame[key].notna().all(axis=1).to_numpy()
    if not complete.any():
        return
    at = np.flatnonzero(complete)
    keys = frame.loc[complete, key].reset_index(drop=True)
    rows = problems.frame_rows
    where = key[0]
    label = ", ".join(key)

    if len(key) == 1:
        codes = pd.factorize(keys[key[0]])[0]
    else:
        codes = keys.groupby(key, sort=False, dropna=False).ngroup().to_numpy()
    _, first_index = np.unique(codes, return_index=True)  # codes run 0.. in order of appearance
    first_of = first_index[codes]
    in_frame = first_of != np.arange(len(keys))
    first_row = np.full(len(keys), -1, dtype=np.int64)
    first_row[in_frame] = rows[at[first_of[in_frame]]]
    earlier = log.lookup(keys)
    first_row = np.where(earlier >= 0, earlier, first_row)
    repeated = first_row >= 0
    log.add(keys.loc[~repeated], rows[at[~repeated]])

    duplicated = np.zeros(len(frame), dtype=bool)
    duplicated[at[repeated]] = True
    first_at = np.full(len(frame), -1, dtype=np.int64)
    first_at[at] = first_row

    def key_text(positions: np.ndarray) -> list[str]:
        shown = frame.iloc[positions][key]
        return [", ".join(str(v) for v in row) for row in shown.itertuples(index=False)]

    def dup_msg(positions: np.ndarray) -> list[str]:
        return [
            f"duplicate key {label} = {text} (first in row {first_at[pos]})"
            for pos, text in zip(positions, key_text(positions), strict=True)
        ]

    problems.add(duplicated, where, dup_msg, f"the key {label} is repeated")

    if mode != "append":
        return
    filters = [f for k in key for f in _range_filter(table.c[k], keys[k])]
    stored = run_query(sa.select(*[table.c[k] for k in key]).where(*filters))
    if stored.empty:
        return
    exists = np.zeros(len(frame), dtype=bool)
    exists[complete] = _isin(keys, stored, key)
    exists &= ~duplicated

    def exists_msg(positions: np.ndarray) -> list[str]:
        return [
            f"key {label} = {text} already exists in the store "
            "(import with mode 'upsert' to replace it)"
            for text in key_text(positions)
        ]

    problems.add(exists, where, exists_msg, f"the key {label} already exists in the store")


def _isin(frame: pd.DataFrame, known: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """For each row of `frame`, whether its `columns` values appear in `known`."""
    if len(columns) == 1:
        col = columns[0]
        return frame[col].isin(_comparable(known[col], frame[col])).to_numpy(dtype=bool)
    left = pd.MultiIndex.from_frame(frame[columns])
    right = pd.MultiIndex.from_frame(
        pd.DataFrame({c: _comparable(known[c], frame[c]) for c in columns})
    )
    return np.asarray(left.isin(right), dtype=bool)


def _comparable(values: pd.Series, like: pd.Series) -> pd.Series:
    """Stored values in the dtype of the file's column, so isin compares like with like."""
    try:
        return values.dropna().astype(like.dtype)
    except (TypeError, ValueError):
        return values.dropna()


_REFERENCED = {
    (target.split(".")[0], target.split(".")[1])
    for tbl in schema.metadata.tables.values()
    for col in tbl.columns
    if (target := col.info.get("references"))
}

_ONE = {"customers": "customer", "campaigns": "campaign", "orders": "order", "products": "product"}


def _check_references(
    frame: pd.DataFrame,
    table: sa.Table,
    problems: _Problems,
    run_query: Callable[[Any], pd.DataFrame],
    known: dict[tuple[str, str], _KeySet],
    rejected: dict[tuple[str, str], _KeySet],
) -> None:
    """Each `references` value must be in the store or among the keys loaded earlier in this
    import (`known`); a value that was rejected earlier (partial mode) says so."""
    for column in table.columns:
        target = column.info.get("references")
        if not target or column.name not in frame.columns:
            continue
        ref_table_name, ref_column_name = target.split(".")
        values = frame[column.name]
        present = values.notna().to_numpy()
        if not present.any():
            continue
        wanted = pd.Series(pd.unique(values[present]), dtype=values.dtype, name=ref_column_name)
        ref_column = schema.table(ref_table_name).c[ref_column_name]
        stmt = sa.select(ref_column).distinct().where(*_range_filter(ref_column, wanted))
        found = wanted.isin(_comparable(run_query(stmt)[ref_column_name], values)).to_numpy()
        earlier = known.get((ref_table_name, ref_column_name))
        if earlier is not None and not found.all():
            found[~found] = earlier.lookup(wanted[~found].to_frame()) >= 0
        if found.all():
            continue
        missing = wanted[~found].reset_index(drop=True)
        dropped = rejected.get((ref_table_name, ref_column_name))
        dropped_rows = (
            dropped.lookup(missing.to_frame())
            if dropped is not None
            else np.full(len(missing), -1, dtype=np.int64)
        )
        gone = dropped_rows >= 0
        unknown = present & values.isin(missing[~gone]).to_numpy(dtype=bool)
        hint = f"is not a known {target} (import {ref_table_name} first, or in the same batch)"

        def ref_msg(positions: np.ndarray, column_name: str = column.name, hint: str = hint):
            return [f"{v} {hint}" for v in frame[column_name].iloc[positions]]

        problems.add(unknown, column.name, ref_msg, f"the value is not a known {target}")
        if gone.any():
            row_of = pd.Series(dropped_rows[gone], index=missing[gone].to_numpy())
            cascaded = present & values.isin(missing[gone]).to_numpy(dtype=bool)
            one = _ONE.get(ref_table_name, ref_table_name)

            def gone_msg(
                positions: np.ndarray,
                column_name: str = column.name,
                row_of: pd.Series = row_of,
                one: str = one,
            ) -> list[str]:
                return [
                    f"its {one} (row {row_of[v]}) was rejected"
                    for v in frame[column_name].iloc[positions]
                ]

            problems.add(cascaded, column.name, gone_msg, f"its {one} was rejected")


# --- loading ---------------------------------------------------------------------------


ON_ERROR = ("stop", "skip")
"""stop: any problem and nothing is imported (the default); skip: valid rows are imported
and the rejected ones are listed, with the reason, in the report's rejects file."""

LOAD_ORDER = schema.IMPORTABLE_TABLES + ("external_ids",)
"""Order the tables of one chunk load in: referenced tables first, then the external ids."""

BATCH_ROWS = 500_000
"""File rows read, validated and loaded at a time (bounds memory for large files)."""


@dataclass
class Chunk:
    """Some consecutive rows of a file, as frames per table with our column names."""

    raw: pa.Table | None  # the file's rows of this chunk as read (for the rejects file)
    first_row: int  # file row number of raw's first row
    frames: dict[str, pd.DataFrame]  # table -> rows with our column names (text or typed)
    rows: dict[str, np.ndarray] = field(default_factory=dict)  # table -> file row of each row
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows left out on purpose
    changed: dict[str, int] = field(default_factory=dict)  # what -> rows stored other than written


@dataclass
class ImportReport:
    """What a load did (or, for a dry run, would do)."""

    file_name: str
    mode: str
    on_error: str
    dry_run: bool
    rows: dict[str, int] = field(default_factory=dict)  # rows written per table
    rejected: int = 0  # file rows rejected (partial mode)
    rejects_csv: bytes | None = None  # the rejected rows with row and reason (partial mode)
    problems: list[str] = field(default_factory=list)
    batch_id: int | None = None  # None for a dry run
    notes: list[str] = field(default_factory=list)
    preview: dict[str, pd.DataFrame] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # rows loaded that look invalid


class _DryRun(Exception):  # noqa: N818 - control flow, never shown
    """Raised inside the transaction of a dry run so that it rolls back."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__("dry run")
        self.report = report


def load(
    store: Store,
    file_name: str,
    chunks: Callable[[Connection], Iterable[Chunk]],
    *,
    mode: str = "append",
    on_error: str = "stop",
    dry_run: bool = False,
    user: str | None = None,
    mapping_json: str | None = None,
    sha256: str | None = None,
    keep_rows: int = 0,
    labels: dict[str, dict[str, str]] | None = None,
) -> ImportReport:
    """Validate and load the chunks of one file in ONE transaction; what was loaded.

    `chunks(conn)` is called inside the transaction; each chunk is validated and loaded
    before the next is pulled, its tables in LOAD_ORDER. With on_error="stop" any problem
    raises ImportValidationError listing every problem of the file and nothing changes;
    with "skip" the valid rows load and the rejected ones come back in `rejects_csv`.
    `labels` (per table, our column -> the file's column, from a mapping) make messages
    name the file's column first: ``row 4, column Email (customer_id): ...``.
    A dry run changes nothing and returns the problems instead of raising. Problems that
    stop reading the file (unreadable, a column named twice) raise in every mode. Every
    load that is not a dry run is recorded in import_batches (see `history`, `undo`).
    """
    _check_mode(mode, file_name)
    _check_on_error(on_error, file_name)
    try:
        with store.begin() as conn:
            loader = _Loader(
                store,
                conn,
                file_name,
                mode=mode,
                on_error=on_error,
                dry_run=dry_run,
                keep_rows=keep_rows,
                labels=labels,
            )
            loader.run(chunks(conn))
            report = loader.finish()
            if dry_run:
                raise _DryRun(report)
            loader.record(user=user, mapping_json=mapping_json, sha256=sha256)
            features.mark_stale(conn)
            return report
    except _DryRun as done:
        return done.report


def _check_on_error(on_error: str, file_name: str) -> None:
    if on_error not in ON_ERROR:
        raise ImportValidationError(
            file_name,
            [f"{file_name}: unknown on_error '{on_error}'; allowed: {', '.join(ON_ERROR)}"],
        )


def _loadable_table(table_name: str, file_name: str) -> sa.Table:
    if table_name == "external_ids":
        return schema.external_ids
    return _importable_table(table_name, file_name)


class _Loader:
    """One file's load inside the caller's transaction: validates and inserts chunk by
    chunk, remembering only the keys of earlier chunks."""

    def __init__(
        self,
        store: Store,
        conn: Connection,
        file_name: str,
        *,
        mode: str,
        on_error: str,
        dry_run: bool,
        keep_rows: int = 0,
        known: dict[tuple[str, str], _KeySet] | None = None,
        labels: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.store, self.conn, self.file_name = store, conn, file_name
        self.mode, self.on_error, self.dry_run, self.keep_rows = mode, on_error, dry_run, keep_rows
        self.skip = on_error == "skip"
        self.problems = _Problems(file_name, collect=self.skip, labels=labels)
        self.run_query = _query_runner(store, conn)
        self.logs: dict[str, _KeySet] = {}
        self.known = known if known is not None else {}
        self.rejected: dict[tuple[str, str], _KeySet] = {}
        self.headers: dict[str, list[str]] = {}
        self.rows: dict[str, int] = {}
        self.rejects: list[pa.Table] = []
        self.rejected_rows = 0
        self.skipped: dict[str, int] = {}
        self.changed: dict[str, int] = {}
        self.preview: dict[str, list[pd.DataFrame]] = {}
        self.seen_rows = 0
        self.batch_id = None if dry_run else _next_batch_id(conn)
        self.now = utcnow()
        self.phones_read = 0
        self.warned: dict[tuple[str, str, str], list[Any]] = {}  # -> [count, examples]
        self.erased_entries: dict[str, set[str]] | None = None
        self.erased_rows: dict[str, list[Any]] = {}  # kind -> [count, file rows]

    def failed(self) -> bool:
        """Whether nothing of this file will be kept (so nothing more is inserted)."""
        if self.problems.general:
            return True
        return not self.skip and self.problems.count() > 0

    def run(self, chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            self.chunk(chunk)

    def chunk(self, chunk: Chunk) -> None:
        """Validate every table of `chunk`, then insert what is kept."""
        checked: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]] = {}
        reasons: dict[int, list[tuple[int, int, str]]] = {}
        several = len(chunk.frames) > 1
        for reason, count in chunk.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + int(count)
        for what, count in chunk.changed.items():
            self.changed[what] = self.changed.get(what, 0) + int(count)
        for name in sorted(chunk.frames, key=_load_position):
            table = _loadable_table(name, self.file_name)
            frame = chunk.frames[name]
            rows = chunk.rows.get(name)
            rows = (
                np.arange(len(frame), dtype=np.int64) + chunk.first_row
                if rows is None
                else np.asarray(rows, dtype=np.int64)
            )
            self.seen_rows += len(frame)
            names = _column_names(frame)
            self.problems.begin(name, _allowed_columns(table), rows)
            if name not in self.headers:
                self.headers[name] = names
                if not _check_header(names, table, self.problems):
                    raise ImportValidationError(self.file_name, self.problems.all())
            log = self.logs.get(name)
            if log is None:
                log = self.logs[name] = _KeySet(schema.primary_key(name))
                if not self.skip:
                    for ref_table, ref_column in _REFERENCED:
                        key = (ref_table, ref_column)
                        if ref_table == name and [ref_column] == log.columns:
                            self.known.setdefault(key, log)
            typed = _check_frame(
                frame,
                names,
                table,
                self.problems,
                mode="upsert" if name == "external_ids" else self.mode,
                run_query=self.run_query,
                log=log,
                known=self.known,
                rejected=self.rejected,
            )
            del frame
            bad = self.problems.bad
            if self.skip:
                order = _load_position(name)
                prefix = f"{name} " if several else ""
                for positions, column_pos, texts in self.problems.reasons:
                    for pos, text in zip(positions, texts, strict=True):
                        reasons.setdefault(int(rows[pos]), []).append(
                            (order, column_pos, prefix + text)
                        )
            self._remember(name, typed, rows, bad)
            keep = ~bad if self.skip else np.ones(len(typed), dtype=bool)
            if name == "customers":
                keep &= ~self._erased(typed)
            if self.skip and name == "order_items":
                self._reject_whole_orders(typed, rows, keep, checked, reasons)
            if self.skip and name == "external_ids":
                keep &= ~self._links_to_rejected(typed)
            checked[name] = (typed, rows, keep)
        if reasons:
            self._reject(chunk, reasons)
        for name, (typed, rows, keep) in checked.items():
            kept = typed if keep.all() else typed.loc[keep].reset_index(drop=True)
            self._warn(name, kept, rows[keep])
            self.rows[name] = self.rows.get(name, 0) + len(kept)
            self._keep_preview(name, kept)
            if not self.dry_run and not self.failed() and len(kept):
                self._insert(name, kept)

    def _erased(self, customers: pd.DataFrame) -> np.ndarray:
        """Rows of erased customers: left out, so an import cannot bring a person back."""
        if "customer_id" not in customers or customers.empty:
            return np.zeros(len(customers), dtype=bool)
        ids = pd.to_numeric(customers["customer_id"], errors="coerce").fillna(-1)
        ids = ids.to_numpy(dtype=np.int64)
        c = schema.customers.c
        erased: set[int] = set()
        unique = np.unique(ids)
        for i in range(0, len(unique), _IN_LIST):
            part = [int(v) for v in unique[i : i + _IN_LIST]]
            stmt = sa.select(c.customer_id).where(c.customer_id.in_(part), c.erased_at.is_not(None))
            erased |= {int(v) for v in self.conn.execute(stmt).scalars()}
        if not erased:
            return np.zeros(len(customers), dtype=bool)
        mask = np.isin(ids, list(erased))
        reason = "the customer was erased (an import may not bring their data back)"
        self.skipped[reason] = self.skipped.get(reason, 0) + int(mask.sum())
        return mask

    def _warn(self, name: str, kept: pd.DataFrame, rows: np.ndarray) -> None:
        """Count the kept rows the Data quality view would call invalid (they still load)."""
        budget = quality.LIBRARY_ROWS - self.phones_read
        checks = quality.import_checks(name, kept, now=self.now, phones=budget)
        if name == "customers" and "phone" in kept.columns:
            self.phones_read += min(len(kept), max(budget, 0))
        for check, column, bad in checks:
            positions = np.flatnonzero(bad.to_numpy())
            if not len(positions):
                continue
            label = self.problems.labels.get(name, {}).get(column)
            shown_column = f"{label} ({column})" if label else column
            entry = self.warned.setdefault((name, shown_column, check), [0, []])
            entry[0] += len(positions)
            for pos in positions[: max(_WARN_EXAMPLES - len(entry[1]), 0)]:
                entry[1].append((int(rows[pos]), _shown(kept[column].iloc[pos])))
        if name == "customers":
            self._warn_erased(kept, rows)

    def _warn_erased(self, kept: pd.DataFrame, rows: np.ndarray) -> None:
        """Rows whose e-mail or phone is an erased person's (a hashed suppression): they load,
        and no export will include them; the import says so (without the address)."""
        from crm_core import suppression

        if self.erased_entries is None:
            self.erased_entries = suppression.hashed_entries(self.store)
        columns = [c for c in ("email", "phone", "country") if c in kept.columns]
        if not any(self.erased_entries.values()) or not {"email", "phone"} & set(columns):
            return
        members = pa.table({c: pa.array(kept[c].astype("string"), pa.string()) for c in columns})
        for kind in ("email", "phone"):
            if kind not in columns:
                continue
            found = suppression.hashed_matches(self.store, members, kind, self.erased_entries)
            positions = np.flatnonzero(found)
            if len(positions):
                entry = self.erased_rows.setdefault(kind, [0, []])
                entry[0] += len(positions)
                entry[1] += [int(rows[p]) for p in positions[: _WARN_EXAMPLES - len(entry[1])]]

    def warnings(self) -> list[str]:
        """The warnings in words: table, column, how many rows, the first rows and values."""
        out = []
        for (name, column, check), (count, examples) in self.warned.items():
            what = quality.CHECKS[check][0].lower()
            shown = ", ".join(f"row {row} ({value})" for row, value in examples)
            more = f" and {count - len(examples):,} more" if count > len(examples) else ""
            phones = (
                f" (of the first {quality.LIBRARY_ROWS:,} phones; the Data quality view "
                "checks them all)"
                if check == "phone_format" and self.phones_read >= quality.LIBRARY_ROWS
                else ""
            )
            out.append(
                f"{name}, column {column}: {count:,} row(s) {what}{phones}: {shown}{more}. "
                "They are imported as they are; the Data quality view lists them."
            )
        for kind, (count, examples) in self.erased_rows.items():
            shown = ", ".join(f"row {row}" for row in examples)
            more = f" and {count - len(examples):,} more" if count > len(examples) else ""
            out.append(
                f"customers, column {kind}: {count:,} row(s) with the {kind} of a person who "
                f"was erased ({shown}{more}). They are imported, and stay suppressed: no "
                "export includes them."
            )
        return out

    def _remember(self, name: str, typed: pd.DataFrame, rows: np.ndarray, bad: np.ndarray) -> None:
        """In partial mode, the referenced keys kept and those rejected, with their rows."""
        if not self.skip:
            for ref_table, ref_column in _REFERENCED:
                if ref_table != name or ref_column not in typed.columns:
                    continue
                if (ref_table, ref_column) not in self.known:
                    self.known[(ref_table, ref_column)] = _KeySet([ref_column])
                target = self.known[(ref_table, ref_column)]
                if target is not self.logs.get(name):
                    target.add(*_complete(typed[[ref_column]], rows))
            return
        for ref_table, ref_column in _REFERENCED:
            if ref_table != name or ref_column not in typed.columns:
                continue
            keys = typed[[ref_column]]
            for store_in, mask in ((self.known, ~bad), (self.rejected, bad)):
                if not mask.any():
                    continue
                target = store_in.setdefault((ref_table, ref_column), _KeySet([ref_column]))
                target.add(*_complete(keys.loc[mask], rows[mask]))

    def _reject_whole_orders(
        self,
        items: pd.DataFrame,
        item_rows: np.ndarray,
        keep: np.ndarray,
        checked: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]],
        reasons: dict[int, list[tuple[int, int, str]]],
    ) -> None:
        """A rejected order line rejects its order and the order's other lines (partial
        mode), so that no order is stored without one of its lines."""
        if keep.all() or "order_id" not in items.columns:
            return
        bad_orders = pd.unique(items.loc[~keep, "order_id"].dropna())
        if not len(bad_orders):
            return
        first_bad = items.loc[~keep].groupby("order_id").head(1)
        bad_line_row = dict(
            zip(first_bad["order_id"].tolist(), item_rows[first_bad.index.to_numpy()], strict=True)
        )
        if "orders" in checked:
            orders, order_rows, order_keep = checked["orders"]
            hit = orders["order_id"].isin(bad_orders).to_numpy(dtype=bool) & order_keep
            order_keep[hit] = False
            position = _load_position("orders")
            for order_id, row in zip(orders.loc[hit, "order_id"], order_rows[hit], strict=True):
                text = f"orders: a line of this order (row {bad_line_row[order_id]}) was rejected"
                reasons.setdefault(int(row), []).append((position, 0, text))
            target = self.rejected.setdefault(("orders", "order_id"), _KeySet(["order_id"]))
            target.add(orders.loc[hit, ["order_id"]], order_rows[hit])
        siblings = items["order_id"].isin(bad_orders).to_numpy(dtype=bool) & keep
        keep[siblings] = False
        position = _load_position("order_items")
        sibling_orders = items.loc[siblings, "order_id"]
        for order_id, row in zip(sibling_orders, item_rows[siblings], strict=True):
            bad_row = bad_line_row[order_id]
            text = f"order_items: another line of its order (row {bad_row}) was rejected"
            reasons.setdefault(int(row), []).append((position, 0, text))

    def _links_to_rejected(self, links: pd.DataFrame) -> np.ndarray:
        """Which platform links point at a row rejected in this import (left out with it)."""
        out = np.zeros(len(links), dtype=bool)
        for entity in schema.EXTERNAL_ENTITIES:
            key = schema.primary_key(entity)[0]
            rejected = self.rejected.get((entity, key))
            if rejected is None or not len(rejected):
                continue
            mask = (links["entity"] == entity).to_numpy(dtype=bool)
            if mask.any():
                ids = pd.DataFrame({key: links.loc[mask, "internal_id"].to_numpy()})
                out[mask] = rejected.lookup(ids) >= 0
        return out

    def _reject(self, chunk: Chunk, reasons: dict[int, list[tuple[int, int, str]]]) -> None:
        file_rows = np.array(sorted(reasons), dtype=np.int64)
        self.rejected_rows += len(file_rows)
        columns = {
            "row": pa.array(file_rows),
            "reason": pa.array(
                ["; ".join(text for *_, text in sorted(reasons[int(r)])) for r in file_rows],
                pa.string(),
            ),
        }
        if chunk.raw is not None:
            at = file_rows - chunk.first_row
            inside = (at >= 0) & (at < chunk.raw.num_rows)
            taken = chunk.raw.take(pa.array(np.where(inside, at, 0)))
            for col_name, col in zip(taken.column_names, taken.columns, strict=True):
                if col_name not in columns:
                    values = col.cast(pa.string()) if not _is_text(col) else col
                    columns[col_name] = pc.if_else(
                        pa.array(inside), values, pa.scalar(None, values.type)
                    )
        self.rejects.append(pa.table(columns))

    def _keep_preview(self, name: str, kept: pd.DataFrame) -> None:
        if self.keep_rows <= 0:
            return
        parts = self.preview.setdefault(name, [])
        have = sum(len(p) for p in parts)
        if have < self.keep_rows:
            parts.append(kept.head(self.keep_rows - have).copy())

    def _insert(self, name: str, kept: pd.DataFrame) -> None:
        upsert = name == "external_ids" or self.mode == "upsert"
        kept[schema.BATCH_COLUMN] = pd.array([self.batch_id] * len(kept), dtype="Int64")
        try:
            if upsert and name == "order_items":
                self._replace_lines(kept)
                upsert = False
            elif upsert:
                self._keep_replaced(name, kept)
            self.store.insert_df(self.conn, name, kept, upsert=upsert)
        except sa.exc.IntegrityError as exc:  # e.g. a key written meanwhile by someone else
            name = self.file_name
            raise ImportValidationError(
                name,
                [f"{name}: the store refused the rows ({exc.orig}); nothing was imported"],
            ) from exc

    def _replace_lines(self, lines: pd.DataFrame) -> None:
        """Upserted order lines replace every stored line of their orders (an order that
        comes back with fewer lines loses the others); the old lines go to the shadow table."""
        table = schema.order_items
        orders = pd.Series(pd.unique(lines["order_id"].dropna()))
        stored = self.store.read_df(
            sa.select(table).where(*_range_filter(table.c.order_id, orders)), conn=self.conn
        )
        stored = _exact_ints(stored.loc[stored["order_id"].isin(orders)], table)
        if stored.empty:
            return
        stored = stored.reset_index(drop=True)
        stored.insert(0, "batch_id", self.batch_id)
        self.store.insert_df(self.conn, schema.replaced_table_name("order_items"), stored)
        ids = [int(v) for v in pd.unique(stored["order_id"])]
        for i in range(0, len(ids), _IN_LIST):
            self.conn.execute(sa.delete(table).where(table.c.order_id.in_(ids[i : i + _IN_LIST])))

    def _keep_replaced(self, name: str, kept: pd.DataFrame) -> None:
        """Copy the stored rows an upsert of `kept` is about to replace to the shadow table."""
        stored = _stored_rows(self.store, self.conn, name, kept)
        if stored.empty:
            return
        stored.insert(0, "batch_id", self.batch_id)
        self.store.insert_df(self.conn, schema.replaced_table_name(name), stored)

    def finish(self) -> ImportReport:
        """The report; raises ImportValidationError when nothing may be kept (not dry run)."""
        if self.seen_rows == 0 and not self.skipped:
            self.problems.file("has no data rows")
        problems = self.problems.all()
        if not self.dry_run and self.failed():
            raise ImportValidationError(self.file_name, problems)
        notes = [
            f"{count:,} row(s) left out on purpose: {reason}"
            for reason, count in self.skipped.items()
            if count
        ]
        notes += [f"{count:,} {what}" for what, count in self.changed.items() if count]
        if self.rejected_rows:
            notes.append(
                f"{self.rejected_rows:,} row(s) rejected; the rejects file lists them with "
                "the reason"
            )
        return ImportReport(
            file_name=self.file_name,
            mode=self.mode,
            on_error=self.on_error,
            dry_run=self.dry_run,
            rows={name: self.rows[name] for name in sorted(self.rows, key=_load_position)},
            rejected=self.rejected_rows,
            rejects_csv=_rejects_csv(self.rejects) if self.rejects else None,
            problems=problems,
            batch_id=self.batch_id,
            notes=notes,
            warnings=self.warnings(),
            preview={
                name: pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
                for name, parts in self.preview.items()
                if parts
            },
        )

    def record(self, *, user: str | None, mapping_json: str | None, sha256: str | None) -> None:
        """Write this load's import_batches row."""
        self.conn.execute(
            schema.import_batches.insert().values(
                batch_id=self.batch_id,
                imported_by=user,
                imported_at=utcnow(),
                file_name=self.file_name,
                file_sha256=sha256,
                mapping=mapping_json,
                mode=self.mode,
                on_error=self.on_error,
                rows=json.dumps(self.rows),
                rejected_rows=self.rejected_rows,
            )
        )
        if self.rows.get("customers"):  # consent of new and upserted customers, in SQL
            consent.record_import(self.conn, self.batch_id, user=user)
        audit.record(
            self.conn,
            "import",
            actor=user,
            target=f"import {self.batch_id}",
            details={
                "batch_id": self.batch_id,
                "file_name": self.file_name,
                "mode": self.mode,
                "rows": self.rows,
                "rejected_rows": self.rejected_rows,
            },
        )


_WARN_EXAMPLES = 3
"""Rows a warning names (the first ones); the rest are counted."""

_IN_LIST = 5_000
"""Text keys looked up per query (a bound IN list) when an upsert reads the rows it replaces."""


def _stored_rows(store: Store, conn: Connection, name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The stored rows of `name` whose key is one of `frame`'s keys, every column."""
    table = schema.table(name)
    key = schema.primary_key(name)
    numeric = [f for k in key for f in _range_filter(table.c[k], frame[k])]
    texts = [k for k in key if isinstance(table.c[k].type, sa.String)]
    queries = [sa.select(table).where(*numeric)]
    if texts:  # text keys: ask for the file's values (a range means nothing across collations)
        # by the text key column with the most distinct values, in lists of _IN_LIST.
        pick = max(texts, key=lambda k: frame[k].nunique())
        values = pd.unique(frame[pick].dropna()).tolist()
        queries = [
            sa.select(table).where(*numeric, table.c[pick].in_(values[i : i + _IN_LIST]))
            for i in range(0, len(values), _IN_LIST)
        ]
    parts = [store.read_df(q, conn=conn) for q in queries]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame()
    stored = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return _exact_ints(stored.loc[_isin(stored, frame, key)].reset_index(drop=True), table)


def _exact_ints(stored: pd.DataFrame, table: sa.Table) -> pd.DataFrame:
    """Whole-number columns that came back as floats (they have gaps) made exact again."""
    for column in table.columns:
        if isinstance(column.type, sa.Integer) and stored[column.name].dtype.kind == "f":
            stored[column.name] = stored[column.name].astype("Int64")
    return stored


def _complete(keys: pd.DataFrame, rows: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    complete = keys.notna().all(axis=1).to_numpy()
    if complete.all():
        return keys, rows
    return keys.loc[complete], rows[complete]


def _load_position(name: str) -> int:
    return LOAD_ORDER.index(name) if name in LOAD_ORDER else len(LOAD_ORDER)


def _rejects_csv(parts: list[pa.Table]) -> bytes:
    table = pa.concat_tables(parts, promote_options="permissive")
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def _next_batch_id(conn: Connection) -> int:
    lock_tables(conn, schema.import_batches)
    return next_id(conn, schema.import_batches.c.batch_id)


def file_chunks(
    path: Path | str,
    table_name: str,
    file_name: str | None = None,
    fmt: detect.FileFormat | None = None,
    batch_rows: int | None = None,
) -> Iterator[Chunk]:
    """A file whose own columns are the table's, as chunks of `batch_rows` file rows."""
    for raw, first_row in detect.read_batches(path, fmt, file_name, batch_rows or BATCH_ROWS):
        rows = np.arange(raw.num_rows, dtype=np.int64) + first_row
        yield Chunk(
            raw=raw, first_row=first_row, frames={table_name: _frame(raw)}, rows={table_name: rows}
        )


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def import_file(
    store: Store,
    table_name: str,
    path: Path | str,
    *,
    mode: str = "append",
    file_name: str | None = None,
    user: str | None = None,
) -> ImportResult:
    """Validate and load one file (its columns are the table's) in one transaction, all or
    nothing; recorded in the import history as `user`'s."""
    item = (table_name, Path(path), file_name or Path(path).name)
    return _import(store, [item], mode, user)[0]


def import_files(
    store: Store,
    files: Sequence[tuple[str, Path | str]],
    *,
    mode: str = "append",
    user: str | None = None,
) -> list[ImportResult]:
    """Validate and load several (table, path) pairs in ONE transaction, in DATA_TABLES order.

    Loading referenced tables first lets references between the files resolve (orders ->
    customers in the same batch). Results come back in that load order. The first file
    that fails stops the batch and its ImportValidationError is raised; nothing from any
    file of the batch is kept. Each file is one import batch in the history.
    """
    items = [(table_name, Path(path), Path(path).name) for table_name, path in files]
    return _import(store, items, mode, user)


def _import(
    store: Store, items: list[tuple[str, Path, str]], mode: str, user: str | None
) -> list[ImportResult]:
    for table_name, _path, name in items:
        _importable_table(table_name, name)
        _check_mode(mode, name)
    order = {name: i for i, name in enumerate(schema.IMPORTABLE_TABLES)}
    ordered = sorted(items, key=lambda item: order[item[0]])  # stable: same table keeps order
    results: list[ImportResult] = []
    known: dict[tuple[str, str], _KeySet] = {}
    with store.begin() as conn:
        for table_name, path, name in ordered:
            loader = _Loader(
                store, conn, name, mode=mode, on_error="stop", dry_run=False, known=known
            )
            loader.run(file_chunks(path, table_name, name))
            report = loader.finish()
            loader.record(user=user, mapping_json=None, sha256=file_sha256(path))
            results.append(
                ImportResult(
                    table=table_name, rows=report.rows.get(table_name, 0), mode=mode, file_name=name
                )
            )
        features.mark_stale(conn)  # an upsert may change fields without changing any count
    return results


# --- history and undo --------------------------------------------------------------------


@dataclass(frozen=True)
class UndoResult:
    """What undoing an import batch changed."""

    batch_id: int
    file_name: str
    removed: dict[str, int]  # rows the batch had added, now deleted, per table
    restored: dict[str, int]  # rows the batch had replaced (upsert), now back, per table

    def __str__(self) -> str:
        """In words: 'Undid import 3 (new.csv): removed customers 2; restored customers 1.'"""

        def listed(counts: dict[str, int]) -> str:
            return ", ".join(f"{t} {n:,}" for t, n in counts.items() if n) or "nothing"

        text = f"Undid import {self.batch_id} ({self.file_name}): removed {listed(self.removed)}"
        if any(self.restored.values()):
            text += f"; restored {listed(self.restored)}"
        return text + "."


def rows_text(rows_json: str | None) -> str:
    """An import's rows per table (the history's JSON) in words: "orders 2, order_items 3"."""
    counts = json.loads(rows_json or "{}")
    return ", ".join(f"{table} {rows:,}" for table, rows in counts.items() if rows) or "no rows"


def history(store: Store, limit: int = 50) -> pd.DataFrame:
    """The latest import batches, newest first: who, when, file, checksum, mapping, mode,
    rows per table (JSON), rows rejected, and when and by whom it was undone."""
    batches = schema.import_batches
    stmt = sa.select(batches).order_by(batches.c.batch_id.desc()).limit(int(limit))
    return store.read_df(stmt)


def undo(
    store: Store,
    batch_id: int | None = None,
    table: str | None = None,
    user: str | None = None,
) -> UndoResult:
    """Undo an import batch in one transaction: the rows it added are removed, the rows it
    replaced (upsert) are restored exactly as they were, and the batch is marked undone.

    Without `batch_id`, the last batch that is not undone (that wrote `table`, when given).
    Refused (CRMError) when the batch is undone already, when a later batch wrote one of its
    tables (undo that first), or when rows of other batches refer to rows it added.
    """
    batches = schema.import_batches
    with store.begin() as conn:
        lock_tables(conn, batches)
        active = store.read_df(
            sa.select(batches).where(batches.c.undone_at.is_(None)).order_by(batches.c.batch_id),
            conn=conn,
        )
        written = {
            int(row.batch_id): [t for t, n in json.loads(row.rows or "{}").items() if n]
            for row in active.itertuples(index=False)
        }
        names = {int(row.batch_id): row.file_name for row in active.itertuples(index=False)}
        batch = _batch_to_undo(store, conn, written, batch_id, table)
        tables = written[batch]
        what = f"import {batch} ({names[batch]})"
        later = [b for b in written if b > batch and set(written[b]) & set(tables)]
        if later:
            shared = sorted(set(written[later[-1]]) & set(tables), key=_load_position)
            raise CRMError(
                f"Cannot undo {what}: import {later[-1]} ({names[later[-1]]}) came later and "
                f"also wrote {', '.join(shared)}; undo import {later[-1]} first"
            )
        _refuse_referenced(store, conn, batch, tables, what)
        consent.record_import_undo(conn, batch, tables, user=user)  # the reverse, before undo
        removed: dict[str, int] = {}
        restored: dict[str, int] = {}
        for name in sorted(tables, key=_load_position, reverse=True):
            target = schema.table(name)
            shadow = schema.table(schema.replaced_table_name(name))
            mine = target.c[schema.BATCH_COLUMN] == batch
            theirs = shadow.c.batch_id == batch
            written_rows = _count(conn, target, mine)
            back = _count(conn, shadow, theirs)
            conn.execute(target.delete().where(mine))
            columns = [c.name for c in target.columns]
            conn.execute(
                target.insert().from_select(
                    columns, sa.select(*[shadow.c[c] for c in columns]).where(theirs)
                )
            )
            conn.execute(shadow.delete().where(theirs))
            removed[name] = written_rows - back
            restored[name] = back
        conn.execute(
            batches.update()
            .where(batches.c.batch_id == batch)
            .values(undone_at=utcnow(), undone_by=user)
        )
        audit.record(
            conn,
            "import_undo",
            actor=user,
            target=f"import {batch}",
            details={"batch_id": batch, "removed": removed, "restored": restored},
        )
        features.mark_stale(conn)
    order = sorted(tables, key=_load_position)
    return UndoResult(
        batch_id=batch,
        file_name=names[batch],
        removed={t: removed[t] for t in order},
        restored={t: restored[t] for t in order},
    )


def _count(conn: Connection, table: sa.Table, where: Any) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).one()[0])


def _batch_to_undo(
    store: Store,
    conn: Connection,
    written: dict[int, list[str]],
    batch_id: int | None,
    table: str | None,
) -> int:
    batches = schema.import_batches
    if batch_id is not None:
        if int(batch_id) in written:
            return int(batch_id)
        found = store.read_df(
            sa.select(batches.c.undone_at).where(batches.c.batch_id == int(batch_id)), conn=conn
        )
        state = "was undone already" if len(found) else "does not exist"
        raise CRMError(
            f"Cannot undo import {batch_id}: it {state}; see the import history for the "
            "imports that can be undone"
        )
    candidates = [b for b, tables in written.items() if table is None or table in tables]
    if not candidates:
        where = f" of table {table}" if table else ""
        raise CRMError(f"Nothing to undo: there is no import{where} that is not undone already")
    return max(candidates)


def _refuse_referenced(
    store: Store, conn: Connection, batch: int, tables: list[str], what: str
) -> None:
    """CRMError when rows written otherwise refer to rows the batch added (not replaced)."""
    for name in tables:
        target = schema.table(name)
        shadow = schema.table(schema.replaced_table_name(name))
        for other in schema.LOADED_TABLES:
            referring = schema.table(other)
            for column in referring.columns:
                ref = column.info.get("references")
                if not ref or ref.split(".")[0] != name:
                    continue
                key = target.c[ref.split(".")[1]]
                added = sa.select(key).where(
                    target.c[schema.BATCH_COLUMN] == batch,
                    key.not_in(sa.select(shadow.c[key.name]).where(shadow.c.batch_id == batch)),
                )
                theirs = referring.c[schema.BATCH_COLUMN]
                stmt = sa.select(sa.func.count(), sa.func.min(column)).where(
                    column.in_(added), sa.or_(theirs.is_(None), theirs != batch)
                )
                count, example = conn.execute(stmt).one()
                if count:
                    raise CRMError(
                        f"Cannot undo {what}: {count:,} {other} row(s) written since refer to "
                        f"{name} it added (e.g. {column.name} {example}); undo or delete "
                        "them first"
                    )

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

Every problem in a file is collected (vectorised over whole columns; messages are built for
the first `MAX_ROWS_PER_CHECK` offending rows of each check, plus one line counting the
rest) and raised together as one `ImportValidationError`. Loading happens in one
transaction, so when anything fails no table changes.

Reading rules: CSV must be UTF-8 (a byte-order mark is fine), comma-separated, with a header
row; ``.csv.gz`` is decompressed. Values are read as text, then converted: surrounding
whitespace is trimmed and an empty value means "missing". Column names are matched after
trimming and lower-casing. Numbers use ``.`` as the decimal point and no thousands
separator; booleans accept true/false, 1/0, yes/no (any case); dates and timestamps are ISO
8601 (``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS[.ffffff]]``, with ``T`` or a space; a zone
offset such as ``Z`` or ``+02:00`` is converted to UTC). Money (``Numeric``) is rounded to 2
decimals. Columns an optional file leaves out are not touched (NULL for new rows; kept as
they were by an upsert).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crm_core import features, schema
from crm_core.errors import ImportValidationError
from crm_core.store import Store

MODES = ("append", "upsert")
"""append: every key must be new; upsert: rows whose key exists replace the stored row."""

MAX_FIELD_CHARS = 10_000
"""A value longer than this is refused as a "huge field" (usually a broken quote)."""

MAX_ROWS_PER_CHECK = 100
"""Messages are written for this many offending rows per check; the rest are counted."""

MAX_BAD_LINES = 1_000
"""Rows with the wrong number of fields listed before reading stops."""

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
_OTHER_DELIMITERS = (";", "\t", "|")
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
    """Read CSV (.csv, .csv.gz, .txt) or Parquet (.parquet) as raw text-ish columns.

    CSV columns are all text (empty = missing); Parquet keeps its types. Raises
    ImportValidationError for unreadable files (encoding, delimiter, empty, ragged rows).
    """
    path = Path(path)
    name = file_name or path.name
    lower = name.lower() if file_name else path.name.lower()
    if not path.exists():
        raise ImportValidationError(name, [f"{name}: file not found ({path})"])
    if lower.endswith(PARQUET_SUFFIXES) or path.name.lower().endswith(PARQUET_SUFFIXES):
        table = _read_parquet(path, name)
        return table.to_pandas(types_mapper=_parquet_types)
    if not lower.endswith(CSV_SUFFIXES) and not path.name.lower().endswith(CSV_SUFFIXES):
        allowed = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
        raise ImportValidationError(
            name, [f"{name}: unsupported file type; allowed: {allowed} (save it as CSV UTF-8)"]
        )
    return _read_csv(path, name).to_pandas()


def _parquet_types(arrow_type: pa.DataType) -> Any:
    """Keep Parquet's typed columns nullable and exact in pandas."""
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow", na_value=np.nan)
    return None


def _read_parquet(path: Path, name: str) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ImportValidationError(
            name, [f"{name}: cannot be read as Parquet ({exc}); export it again as Parquet or CSV"]
        ) from exc
    if table.num_rows == 0:
        raise ImportValidationError(name, [f"{name}: has no data rows"])
    # Dictionary-encoded text (pandas categoricals) is plain text to us.
    columns = [
        c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns
    ]
    return pa.table(columns, names=table.column_names)


def _read_csv(path: Path, name: str) -> pa.Table:
    header = _read_header(path, name)
    if header is None:
        raise ImportValidationError(name, [f"{name}: has no data rows (the file is empty)"])
    fields = next(csv.reader([header]), [])
    if len(fields) <= 1:
        for delimiter in _OTHER_DELIMITERS:
            if delimiter in header:
                shown = "\\t" if delimiter == "\t" else delimiter
                raise ImportValidationError(
                    name,
                    [
                        f"{name}: looks like it is separated by '{shown}', expected ','; "
                        "save it as CSV (comma delimited) and try again"
                    ],
                )
    placeholders = [f"_c{i}" for i in range(len(fields))]
    bad_rows: list[tuple[int | None, int, int, str]] = []

    def on_invalid_row(row: Any) -> str:
        bad_rows.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "error" if len(bad_rows) > MAX_BAD_LINES else "skip"

    def read(use_threads: bool) -> pa.Table:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=placeholders, skip_rows=1, use_threads=use_threads
            ),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid_row
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(placeholders, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

    try:
        table = read(use_threads=True)
        if bad_rows and any(number is None for number, *_ in bad_rows):
            bad_rows.clear()  # read again in one thread: only then are row numbers known
            table = read(use_threads=False)
    except pa.ArrowInvalid as exc:
        if "UTF8" in str(exc) or "UTF-8" in str(exc):
            raise ImportValidationError(name, [_encoding_problem(path, name)]) from exc
        if not bad_rows:
            raise ImportValidationError(name, [f"{name}: cannot be read as CSV ({exc})"]) from exc
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise ImportValidationError(name, [f"{name}: cannot be read as CSV ({exc})"]) from exc
    if bad_rows:
        raise ImportValidationError(name, _bad_row_problems(name, bad_rows, len(fields)))
    if table.num_rows == 0:
        raise ImportValidationError(name, [f"{name}: has no data rows (only a header)"])
    return table.rename_columns(fields)


def _read_header(path: Path, name: str) -> str | None:
    """The first line of the file as text, or None when the file holds nothing."""
    try:
        with pa.input_stream(str(path)) as stream:  # decompresses .gz by its suffix
            head = stream.read(1 << 16)
            while head and b"\n" not in head:
                more = stream.read(1 << 16)
                if not more:
                    break
                head += more
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise ImportValidationError(name, [f"{name}: cannot be read ({exc})"]) from exc
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if not head.strip():
        return None
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportValidationError(name, [_encoding_problem(path, name)]) from None
    return text if text.strip() else None


def _encoding_problem(path: Path, name: str) -> str:
    """Where the first byte that is not UTF-8 sits (line and byte offset), in words."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    where = ""
    with pa.input_stream(str(path)) as stream:
        while chunk := stream.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                line += chunk[: exc.start].count(b"\n")
                where = f" (byte 0x{chunk[exc.start]:02x} at byte {bad + 1:,}, line {line:,})"
                break
            offset += len(chunk)
            line += chunk.count(b"\n")
    return (
        f"{name}: is not UTF-8 text{where}; it looks like another encoding "
        "(e.g. Latin-1 or Windows-1252). Save it as 'CSV UTF-8' and try again"
    )


def _bad_row_problems(
    name: str, bad_rows: list[tuple[int | None, int, int, str]], expected: int
) -> list[str]:
    problems = []
    for number, _expected, actual, _text in bad_rows[:MAX_ROWS_PER_CHECK]:
        where = f"{name} row {number}" if number is not None else f"{name} a row"
        problems.append(
            f"{where}: has {actual} field(s), expected {expected} like the header "
            "(a value containing ',' or a line break must be in double quotes)"
        )
    if len(bad_rows) > MAX_BAD_LINES:
        problems.append(f"{name}: more than {MAX_BAD_LINES:,} rows have the wrong number of fields")
    elif len(bad_rows) > MAX_ROWS_PER_CHECK:
        problems.append(
            f"{name}: {len(bad_rows) - MAX_ROWS_PER_CHECK:,} more rows have the wrong number "
            "of fields"
        )
    return problems


# --- validation ------------------------------------------------------------------------


class _Problems:
    """Problems found in one file: whole-file ones first, then row ones sorted by row."""

    def __init__(self, file_name: str, columns: Sequence[str]) -> None:
        self.file_name = file_name
        self.order = {c: i for i, c in enumerate(columns)}
        self.general: list[str] = []
        self.rows: list[tuple[int, int, str]] = []
        self.totals: list[str] = []

    def file(self, text: str) -> None:
        self.general.append(f"{self.file_name}: {text}")

    def add(
        self, mask: np.ndarray, column: str, message: Callable[[np.ndarray], list[str]], what: str
    ) -> None:
        """Record the rows where `mask` holds; `message(positions)` says what is wrong."""
        positions = np.flatnonzero(mask)
        if not len(positions):
            return
        shown = positions[:MAX_ROWS_PER_CHECK]
        for pos, text in zip(shown, message(shown), strict=True):
            row = int(pos) + 2
            self.rows.append(
                (
                    row,
                    self.order.get(column, 0),
                    f"{self.file_name} row {row}, column {column}: {text}",
                )
            )
        if len(positions) > len(shown):
            self.totals.append(
                f"{self.file_name} column {column}: {len(positions) - len(shown):,} more rows "
                f"where {what}"
            )

    def all(self) -> list[str]:
        return self.general + [text for *_, text in sorted(self.rows)] + self.totals

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

    The error lists every problem found. `conn` reads existing keys inside the caller's
    transaction; `pending` holds typed frames of tables loaded earlier in the same batch,
    whose keys count as existing for `references`.
    """
    table = _importable_table(table_name, file_name)
    _check_mode(mode, file_name)
    declared = [c.name for c in table.columns]
    problems = _Problems(file_name, declared)

    names = [str(c).strip().lower().lstrip("\ufeff") for c in frame.columns]
    seen: set[str] = set()
    repeated = sorted({n for n in names if n in seen or seen.add(n)})
    if repeated:
        problems.file(f"column(s) {_quoted(repeated)} appear more than once in the header")
    required = [c.name for c in table.columns if not c.nullable]
    for col in required:
        if col not in names:
            problems.file(f"missing required column '{col}'; required: {', '.join(required)}")
    unknown = [n for n in names if n not in declared]
    if unknown:
        problems.file(
            f"unknown column(s) {_quoted(unknown)}; allowed: {', '.join(declared)} "
            "(remove or rename them)"
        )
    if len(frame) == 0:
        problems.file("has no data rows")
    if repeated or len(frame) == 0:
        problems.raise_if_any()

    position = {n: i for i, n in enumerate(names)}
    raws = {
        c.name: _arrow(frame.iloc[:, position[c.name]]) for c in table.columns if c.name in position
    }
    del frame  # a caller that passes its frame along lets each text column go once converted
    typed: dict[str, pd.Series] = {}
    for column in table.columns:
        if column.name in raws:
            typed[column.name] = _convert(raws.pop(column.name), column, problems)
    result = pd.DataFrame(typed, copy=False)
    result.index = pd.RangeIndex(len(result))

    run_query = _query_runner(store, conn)
    _check_keys(result, table, mode, problems, run_query)
    _check_references(result, table, pending or {}, problems, run_query)
    problems.raise_if_any()
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


def _check_keys(
    frame: pd.DataFrame,
    table: sa.Table,
    mode: str,
    problems: _Problems,
    run_query: Callable[[Any], pd.DataFrame],
) -> None:
    key = [c.name for c in table.primary_key.columns]
    if not all(k in frame.columns for k in key):
        return
    complete = frame[key].notna().all(axis=1).to_numpy()
    keys = frame.loc[complete, key]
    if keys.empty:
        return
    where = key[0]
    label = ", ".join(key)

    def key_text(positions: np.ndarray) -> list[str]:
        rows = frame.iloc[positions][key]
        return [", ".join(str(v) for v in row) for row in rows.itertuples(index=False)]

    duplicated = np.zeros(len(frame), dtype=bool)
    duplicated[complete] = keys.duplicated(keep="first").to_numpy()
    if duplicated.any():
        dup_positions = np.flatnonzero(duplicated)[:MAX_ROWS_PER_CHECK]
        wanted = frame.iloc[dup_positions][key]
        firsts = (
            frame.loc[complete & ~duplicated, key]
            .reset_index()
            .merge(wanted.drop_duplicates(), on=key)
            .set_index(key)["index"]
        )

        def dup_msg(positions: np.ndarray) -> list[str]:
            texts = key_text(positions)
            out = []
            for pos, text in zip(positions, texts, strict=True):
                lookup = tuple(frame.iloc[pos][key]) if len(key) > 1 else frame.iloc[pos][key[0]]
                first = int(firsts.loc[lookup]) + 2
                out.append(f"duplicate key {label} = {text} (first in row {first})")
            return out

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


def _check_references(
    frame: pd.DataFrame,
    table: sa.Table,
    pending: dict[str, pd.DataFrame],
    problems: _Problems,
    run_query: Callable[[Any], pd.DataFrame],
) -> None:
    for column in table.columns:
        target = column.info.get("references")
        if not target or column.name not in frame.columns:
            continue
        ref_table_name, ref_column_name = target.split(".")
        values = frame[column.name]
        present = values.notna().to_numpy()
        if not present.any():
            continue
        wanted = pd.Series(pd.unique(values[present]), dtype=values.dtype)
        ref_column = schema.table(ref_table_name).c[ref_column_name]
        stmt = sa.select(ref_column).distinct().where(*_range_filter(ref_column, wanted))
        known = [run_query(stmt)[ref_column_name]]
        batch = pending.get(ref_table_name)
        if batch is not None and ref_column_name in batch.columns:
            known.append(batch[ref_column_name])
        known_values = pd.concat([_comparable(k, values) for k in known], ignore_index=True)
        missing_values = wanted[~wanted.isin(known_values)]
        if missing_values.empty:
            continue
        unknown = present & values.isin(missing_values).to_numpy(dtype=bool)

        hint = f"is not a known {target} (import {ref_table_name} first, or in the same batch)"

        def ref_msg(positions: np.ndarray, column_name: str = column.name, hint: str = hint):
            return [f"{v} {hint}" for v in frame[column_name].iloc[positions]]

        problems.add(unknown, column.name, ref_msg, f"the value is not a known {target}")


# --- loading ---------------------------------------------------------------------------


def import_file(
    store: Store,
    table_name: str,
    path: Path | str,
    *,
    mode: str = "append",
    file_name: str | None = None,
) -> ImportResult:
    """Validate and load one file in one transaction."""
    return _import(store, [(table_name, Path(path), file_name or Path(path).name)], mode)[0]


def import_files(
    store: Store, files: Sequence[tuple[str, Path | str]], *, mode: str = "append"
) -> list[ImportResult]:
    """Validate and load several (table, path) pairs in ONE transaction, in DATA_TABLES order.

    Loading referenced tables first lets references between the files resolve (orders ->
    customers in the same batch). Results come back in that load order. The first file
    that fails stops the batch and its ImportValidationError is raised; nothing from any
    file of the batch is kept.
    """
    items = [(table_name, Path(path), Path(path).name) for table_name, path in files]
    return _import(store, items, mode)


def _import(store: Store, items: list[tuple[str, Path, str]], mode: str) -> list[ImportResult]:
    for table_name, _path, name in items:
        _importable_table(table_name, name)
        _check_mode(mode, name)
    order = {name: i for i, name in enumerate(schema.IMPORTABLE_TABLES)}
    ordered = sorted(items, key=lambda item: order[item[0]])  # stable: same table keeps order
    results: list[ImportResult] = []
    pending: dict[str, pd.DataFrame] = {}
    with store.begin() as conn:
        for table_name, path, name in ordered:
            typed = validate(
                read_table_file(path, name),  # passed along: validate frees it column by column
                table_name,
                name,
                store,
                conn=conn,
                mode=mode,
                pending=pending,
            )
            try:
                rows = store.insert_df(conn, table_name, typed, upsert=mode == "upsert")
            except sa.exc.IntegrityError as exc:  # e.g. a key written meanwhile by someone else
                raise ImportValidationError(
                    name, [f"{name}: the store refused the rows ({exc.orig}); nothing was imported"]
                ) from exc
            keep = [c for t, c in _REFERENCED if t == table_name and c in typed.columns]
            if keep:
                pending[table_name] = pd.concat(
                    [f for f in (pending.get(table_name), typed[keep]) if f is not None],
                    ignore_index=True,
                )
            results.append(ImportResult(table=table_name, rows=rows, mode=mode, file_name=name))
        features.mark_stale(conn)  # an upsert may change fields without changing any count
    return results

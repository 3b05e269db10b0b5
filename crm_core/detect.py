"""Read import files as platforms write them: detect their format, read them in batches.

`detect` looks at the start of a file (the first ~1 MB) and decides how it is written: the
delimiter, the text encoding, the decimal mark and thousands separator, and the order of
day, month and year in dates. The result is a `FileFormat` whose `notes` say each decision
in words, so the user can check it (and change it: every field can be given by hand).

`read_batches` then reads the file in batches of rows, so a file of 10 million rows is never
held at once: every CSV column comes back as text (Parquet keeps its types), with the file's
header names and the file row number of each batch's first row (the header is row 1).

`normalise_numbers` and `normalise_datetimes` turn the text of one column, as written in
that format, into text Arrow (and `crm_core.ingest`) can cast: ``"1.234,56 €"`` ->
``"1234.56"``, ``"12/1/2010 8:26"`` -> ``"2010-12-01 08:26:00"`` (UTC). They work on whole
Arrow arrays (no Python loop per value); what they cannot read comes back unchanged, so the
import reports it with the user's own text.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from crm_core.errors import ConfigError, ImportValidationError

MAX_ROWS_PER_CHECK = 100
"""Messages are written for this many rows with the wrong number of fields; the rest are
counted."""

MAX_BAD_LINES = 1_000
"""Rows with the wrong number of fields listed before reading stops."""

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")

DELIMITERS = (",", ";", "\t", "|")
ENCODINGS = ("utf-8", "latin-1", "cp1252")
DECIMALS = (".", ",")
THOUSANDS = ("", ",", ".", " ", "'")
DATE_ORDERS = ("YMD", "DMY", "MDY")

SAMPLE_BYTES = 1 << 20
"""How much of the start of a file `detect` reads."""

_BLOCK_BYTES = 1 << 20
_ENCODING_NAMES = {"utf-8": "UTF-8", "latin-1": "Latin-1", "cp1252": "Windows-1252"}
_GZIP_MAGIC = b"\x1f\x8b"


def _shown(delimiter: str) -> str:
    return "\\t" if delimiter == "\t" else delimiter


@dataclass(frozen=True)
class FileFormat:
    """How a file is written: what `detect` decided, or what the user chose instead."""

    delimiter: str = ","  # ",", ";", "\t", "|"
    encoding: str = "utf-8"  # "utf-8" (a byte-order mark is skipped), "latin-1", "cp1252"
    decimal: str = "."  # "." or ","
    thousands: str = ""  # "", ",", ".", " ", "'"
    date_order: str = "YMD"  # "YMD", "DMY" or "MDY"
    date_order_ambiguous: bool = False  # the data fits DMY and MDY alike: ask the user
    timezone: str = "UTC"  # IANA zone of times written without an offset
    notes: tuple[str, ...] = ()  # what was decided and why, in words (shown to the user)

    def __post_init__(self) -> None:
        problems = []
        for name, allowed in (
            ("delimiter", DELIMITERS),
            ("encoding", ENCODINGS),
            ("decimal", DECIMALS),
            ("thousands", THOUSANDS),
            ("date_order", DATE_ORDERS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                shown = ", ".join(repr(a) for a in allowed)
                problems.append(f"{name} {value!r} is not supported; allowed: {shown}")
        if self.thousands and self.thousands == self.decimal:
            problems.append(
                f"thousands separator {self.thousands!r} is also the decimal mark; "
                "choose a different one (or none)"
            )
        if problems:
            raise ConfigError("file format: " + "; ".join(problems))
        _zone(self.timezone)
        object.__setattr__(self, "notes", tuple(self.notes))

    def to_dict(self) -> dict[str, Any]:
        """The format as plain JSON-able values (notes as a list)."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> FileFormat:
        """A format from `to_dict` output or a mapping's "format" (missing keys: defaults)."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"file format: unknown key(s) {', '.join(unknown)}; allowed: "
                f"{', '.join(sorted(known))}"
            )
        if "encoding" in d and isinstance(d["encoding"], str):
            d["encoding"] = _encoding_key(d["encoding"])
        if "notes" in d:
            d["notes"] = tuple(d["notes"] or ())
        return cls(**d)


def _encoding_key(name: str) -> str:
    """Common spellings of the three encodings mapped to ours ("UTF8" -> "utf-8")."""
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return name
    return {
        "utf-8": "utf-8",
        "utf-8-sig": "utf-8",
        "iso8859-1": "latin-1",
        "latin-1": "latin-1",
        "cp1252": "cp1252",
    }.get(codec, name)


def _zone(name: str) -> Any:
    """The ZoneInfo of an IANA zone name, or ConfigError."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(
            f"file format: time zone {name!r} is not known; use an IANA name such as "
            "'UTC', 'Europe/Berlin' or 'America/New_York'"
        ) from None


# --- file kinds --------------------------------------------------------------------------


def _is_parquet(path: Path, name: str) -> bool:
    return name.lower().endswith(PARQUET_SUFFIXES) or path.name.lower().endswith(PARQUET_SUFFIXES)


def _check_file(path: Path, name: str) -> None:
    """ImportValidationError unless `path` exists and is CSV or Parquet by its name."""
    if not path.exists():
        raise ImportValidationError(name, [f"{name}: file not found ({path})"])
    if _is_parquet(path, name):
        return
    if not name.lower().endswith(CSV_SUFFIXES) and not path.name.lower().endswith(CSV_SUFFIXES):
        allowed = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
        raise ImportValidationError(
            name, [f"{name}: unsupported file type; allowed: {allowed} (save it as CSV UTF-8)"]
        )


def _open(path: Path) -> pa.NativeFile:
    """The file as a byte stream, gzip decompressed when it starts like gzip."""
    with open(path, "rb") as f:
        magic = f.read(2)
    return pa.input_stream(str(path), compression="gzip" if magic == _GZIP_MAGIC else None)


def _head(path: Path, name: str, size: int = SAMPLE_BYTES) -> bytes:
    """The first `size` bytes (decompressed), extended to the end of a line."""
    try:
        with _open(path) as stream:
            head = stream.read(size)
            while head and not head.endswith(b"\n"):
                more = stream.read(1 << 16)
                if not more:
                    break
                cut = more.find(b"\n")
                if cut >= 0:
                    head += more[: cut + 1]
                    break
                head += more
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise ImportValidationError(name, [f"{name}: cannot be read ({exc})"]) from exc
    return head


# --- reading -----------------------------------------------------------------------------


def read_batches(
    path: Path | str,
    fmt: FileFormat | None = None,
    file_name: str | None = None,
    batch_rows: int = 500_000,
) -> Iterator[tuple[pa.Table, int]]:
    """Read a CSV (.csv, .csv.gz, .txt, .tsv) or Parquet file in batches of `batch_rows` rows.

    Yields ``(table, first_row)``: CSV columns all text (``pa.string()``, an empty value is
    null), Parquet columns typed (dictionary columns as plain values), named as the file's
    header (trimmed, byte-order mark removed); `first_row` is the file row number of the
    table's first row (the header is row 1; a quoted value spanning lines counts as one row;
    blank lines are skipped and not counted). Raises ImportValidationError, before or while
    yielding, for an unreadable file: wrong encoding, rows with the wrong number of fields
    (all of them listed by row number), an empty file or one with only a header.
    """
    path = Path(path)
    name = file_name or path.name
    fmt = fmt or FileFormat()
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    _check_file(path, name)
    if _is_parquet(path, name):
        batches = _parquet_batches(path, name, batch_rows)
    else:
        batches = _csv_batches(path, name, fmt, batch_rows)
    yield from _rebatch(batches, batch_rows, name)


def _rebatch(
    batches: Iterator[pa.RecordBatch], batch_rows: int, name: str
) -> Iterator[tuple[pa.Table, int]]:
    """Exactly `batch_rows` rows per table (the last may be shorter), with first row numbers."""
    pending: list[pa.RecordBatch] = []
    held = 0
    first_row = 2
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= batch_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, batch_rows), first_row
            first_row += batch_rows
            rest = table.slice(batch_rows)
            pending = rest.to_batches() if rest.num_rows else []
            held = rest.num_rows
    if held:
        yield pa.Table.from_batches(pending), first_row
    elif first_row == 2:
        raise ImportValidationError(name, [f"{name}: has no data rows (only a header)"])


def _parquet_batches(path: Path, name: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        parquet = pq.ParquetFile(path)
        names = [str(n).strip().lstrip("\ufeff").strip() for n in parquet.schema_arrow.names]
        if parquet.metadata.num_rows == 0:
            raise ImportValidationError(name, [f"{name}: has no data rows"])
        for batch in parquet.iter_batches(batch_size=batch_rows):
            # Dictionary-encoded text (pandas categoricals) is plain text to us.
            columns = [
                c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
                for c in batch.columns
            ]
            yield pa.RecordBatch.from_arrays(columns, names=names)
    except (pa.ArrowException, OSError) as exc:
        raise ImportValidationError(
            name, [f"{name}: cannot be read as Parquet ({exc}); export it again as Parquet or CSV"]
        ) from exc


def _header_fields(path: Path, name: str, fmt: FileFormat) -> list[str]:
    """The header's column names (trimmed, BOM removed); errors for empty or odd files."""
    head = _head(path, name, 1 << 16)
    if not head.strip():
        raise ImportValidationError(name, [f"{name}: has no data rows (the file is empty)"])
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = line.decode("utf-8-sig" if fmt.encoding == "utf-8" else fmt.encoding)
    except UnicodeDecodeError:
        raise ImportValidationError(name, [_encoding_problem(path, name, fmt.encoding)]) from None
    if not text.strip():
        raise ImportValidationError(name, [f"{name}: has no data rows (the file is empty)"])
    names = next(csv.reader([text], delimiter=fmt.delimiter), [])
    if len(names) <= 1:
        for delimiter in DELIMITERS:
            if delimiter != fmt.delimiter and delimiter in text:
                raise ImportValidationError(
                    name,
                    [
                        f"{name}: looks like it is separated by '{_shown(delimiter)}', "
                        f"expected '{_shown(fmt.delimiter)}'; "
                        + (
                            "save it as CSV (comma delimited) and try again"
                            if fmt.delimiter == ","
                            else f"choose '{_shown(delimiter)}' as the delimiter"
                        )
                    ],
                )
    return [n.strip().lstrip("\ufeff").strip() for n in names]


def _csv_batches(
    path: Path, name: str, fmt: FileFormat, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    names = _header_fields(path, name, fmt)
    placeholders = [f"_c{i}" for i in range(len(names))]
    bad_rows: list[tuple[int | None, int, int, str]] = []

    def on_invalid_row(row: Any) -> str:
        bad_rows.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "error" if len(bad_rows) > MAX_BAD_LINES else "skip"

    # Arrow's streaming reader reads about 32 blocks ahead: 4 MB blocks hold ~150 MB (16 MB
    # blocks held 540 MB), and a row may still be up to 4 MB long.
    block = max(_BLOCK_BYTES, min(4 << 20, batch_rows * 64))
    stream = _open(path)
    try:
        # One thread: only then does Arrow know the row number of a bad row. Parsing is not
        # the slow part of an import (about 0.15 s per million rows of seven columns).
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(
                column_names=placeholders,
                skip_rows=1,
                use_threads=False,
                block_size=block,
                encoding="utf8" if fmt.encoding == "utf-8" else fmt.encoding,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=fmt.delimiter,
                newlines_in_values=True,
                invalid_row_handler=on_invalid_row,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(placeholders, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        for batch in reader:
            if bad_rows:
                break
            yield batch.rename_columns(names)
        if bad_rows:
            for _ in reader:  # collect the rest of the bad rows, holding nothing
                pass
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        text = str(exc)
        if isinstance(exc, UnicodeDecodeError) or "UTF8" in text or "UTF-8" in text:
            raise ImportValidationError(
                name, [_encoding_problem(path, name, fmt.encoding)]
            ) from exc
        if not bad_rows:
            raise ImportValidationError(name, [f"{name}: cannot be read as CSV ({exc})"]) from exc
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise ImportValidationError(name, [f"{name}: cannot be read as CSV ({exc})"]) from exc
    finally:
        stream.close()
    if bad_rows:
        raise ImportValidationError(name, _bad_row_problems(name, bad_rows, len(names), fmt))


def _encoding_problem(path: Path, name: str, encoding: str = "utf-8") -> str:
    """Where the first byte that is not in `encoding` sits (line and byte offset), in words."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, line = 0, 1
    where = ""
    with _open(path) as stream:
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
    label = _ENCODING_NAMES.get(encoding, encoding)
    if encoding == "utf-8":
        return (
            f"{name}: is not UTF-8 text{where}; it looks like another encoding "
            "(e.g. Latin-1 or Windows-1252). Save it as 'CSV UTF-8' and try again"
        )
    return (
        f"{name}: is not {label} text{where}; choose its encoding (UTF-8, Latin-1 or "
        "Windows-1252), or save it as 'CSV UTF-8' and try again"
    )


def _bad_row_problems(
    name: str,
    bad_rows: list[tuple[int | None, int, int, str]],
    expected: int,
    fmt: FileFormat | None = None,
) -> list[str]:
    delimiter = _shown(fmt.delimiter if fmt else ",")
    problems = []
    for number, _expected, actual, _text in bad_rows[:MAX_ROWS_PER_CHECK]:
        where = f"{name} row {number}" if number is not None else f"{name} a row"
        problems.append(
            f"{where}: has {actual} field(s), expected {expected} like the header "
            f"(a value containing '{delimiter}' or a line break must be in double quotes)"
        )
    if len(bad_rows) > MAX_BAD_LINES:
        problems.append(f"{name}: more than {MAX_BAD_LINES:,} rows have the wrong number of fields")
    elif len(bad_rows) > MAX_ROWS_PER_CHECK:
        problems.append(
            f"{name}: {len(bad_rows) - MAX_ROWS_PER_CHECK:,} more rows have the wrong number "
            "of fields"
        )
    return problems


# --- detection ---------------------------------------------------------------------------


def detect(path: Path | str, file_name: str | None = None) -> FileFormat:
    """How the file is written, decided from its first ~1 MB; `notes` say why.

    Raises ImportValidationError when the file is missing, empty or of an unsupported type.
    """
    path = Path(path)
    name = file_name or path.name
    _check_file(path, name)
    if _is_parquet(path, name):
        return FileFormat(notes=("Parquet file: columns keep the types stored in the file",))
    head = _head(path, name)
    if not head.strip():
        raise ImportValidationError(name, [f"{name}: has no data rows (the file is empty)"])
    truncated = len(head) > SAMPLE_BYTES - 1 and _longer_than(path, len(head))
    encoding, text, note = _detect_encoding(head, truncated)
    notes = [note]
    delimiter, rows, note = _detect_delimiter(text, truncated)
    notes.append(note)
    values = [v.strip() for row in rows[1:] for v in row if v and v.strip()]
    decimal, thousands, note = _detect_numbers(values, delimiter)
    notes.append(note)
    date_order, ambiguous, date_notes = _detect_date_order(values)
    notes.extend(date_notes)
    return FileFormat(
        delimiter=delimiter,
        encoding=encoding,
        decimal=decimal,
        thousands=thousands,
        date_order=date_order,
        date_order_ambiguous=ambiguous,
        notes=tuple(n for n in notes if n),
    )


def _longer_than(path: Path, size: int) -> bool:
    with _open(path) as stream:
        stream.read(size)
        return bool(stream.read(1))


def _detect_encoding(head: bytes, truncated: bool) -> tuple[str, str, str]:
    """(encoding, decoded sample, note): UTF-8 (BOM or not), else Windows-1252 or Latin-1."""
    if head.startswith(codecs.BOM_UTF8):
        try:
            text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=not truncated)
            return "utf-8", text, "encoding UTF-8 (the file starts with a byte-order mark)"
        except UnicodeDecodeError:
            pass
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=not truncated)
    except UnicodeDecodeError as exc:
        bad = head[exc.start]
        high = bytes(range(0x80, 0xA0))
        encoding = "latin-1"
        if any(b in high for b in head):
            try:
                head.decode("cp1252")
                encoding = "cp1252"
            except UnicodeDecodeError:
                pass
        text = head.decode(encoding)
        example = _word_at(text, exc.start)
        label = _ENCODING_NAMES[encoding]
        why = (
            "it uses bytes 0x80-0x9f, which Windows-1252 reads as characters such as € and “"
            if encoding == "cp1252"
            else "no bytes 0x80-0x9f, so Latin-1 and Windows-1252 read it alike"
        )
        return (
            encoding,
            text,
            f"encoding {label}: the file is not UTF-8 (byte 0x{bad:02x}"
            + (f" in '{example}'" if example else "")
            + f"); {why}",
        )
    if text.isascii():
        return "utf-8", text, "encoding UTF-8 (the sample is plain ASCII, which reads the same)"
    return "utf-8", text, "encoding UTF-8"


def _word_at(text: str, pos: int) -> str:
    """The word around character `pos` of `text` (for notes: 'Müller')."""
    start = pos
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "-'") and pos - start < 30:
        start -= 1
    end = pos + 1
    while end < len(text) and (text[end].isalnum() or text[end] in "-'") and end - pos < 30:
        end += 1
    return text[start:end].strip()


_SAMPLE_ROWS = 5_000


def _detect_delimiter(text: str, truncated: bool) -> tuple[str, list[list[str]], str]:
    """(delimiter, sample rows, note): the delimiter whose field counts agree the most."""
    lines = text.splitlines(keepends=True)
    if truncated and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut in the middle
    best: tuple[float, int, str, list[list[str]]] | None = None
    for delimiter in DELIMITERS:
        rows = _sample_rows(lines, delimiter)
        if not rows:
            continue
        width = len(rows[0])
        if width < 2:
            continue
        data = rows[1:]
        agree = sum(len(r) == width for r in data) / len(data) if data else 1.0
        key = (agree, width, delimiter, rows)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        rows = _sample_rows(lines, ",")
        return ",", rows, "one column: no delimiter (',', ';', tab or '|') found in the header"
    agree, width, delimiter, rows = best
    data = rows[1:]
    shown = "tab" if delimiter == "\t" else f"'{delimiter}'"
    if not data:
        how = f"the header has {width} fields"
    elif agree == 1.0:
        how = f"every row has {width} fields"
    else:
        same = sum(len(r) == width for r in data)
        how = (
            f"{same:,} of {len(data):,} sampled rows have {width} fields like the header; "
            "the others are reported when reading"
        )
    return delimiter, rows, f"separated by {shown} ({how})"


def _sample_rows(lines: list[str], delimiter: str) -> list[list[str]]:
    try:
        reader = csv.reader(lines, delimiter=delimiter)
        rows = []
        for row in reader:
            if row and any(v.strip() for v in row):
                rows.append(row)
            if len(rows) > _SAMPLE_ROWS:
                break
        return rows
    except csv.Error:
        return []


_CURRENCY = r"(?:[$€£¥₹]|US\$|USD|EUR|GBP|CHF|JPY|CAD|AUD|SEK|NOK|DKK|PLN)"
_NUM_RES = {
    # (decimal, thousands) evidence, tried in this order on values without currency/sign
    "dot_grouped_comma_dec": r"^\d{1,3}(\.\d{3})+,\d+$",  # 1.234,56
    "comma_grouped_dot_dec": r"^\d{1,3}(,\d{3})+\.\d+$",  # 1,234.56
    "space_grouped": r"^\d{1,3}( \d{3})+([.,]\d+)?$",  # 1 234,56
    "apos_grouped": r"^\d{1,3}('\d{3})+(\.\d+)?$",  # 1'234.56
    "comma_dec": r"^\d+,(\d{1,2}|\d{4,})$",  # 12,50 / 0,1234
    "dot_dec": r"^\d+\.(\d{1,2}|\d{4,})$",  # 12.50
    "comma_3": r"^\d{1,3}(,\d{3})+$",  # 1,234: thousands or 1.234, by the others
    "dot_3": r"^\d{1,3}(\.\d{3})+$",  # 1.234
}


def _detect_numbers(values: list[str], delimiter: str) -> tuple[str, str, str]:
    """(decimal, thousands, note) from the number-like values of the sample."""
    import re

    currency = re.compile(rf"^[-+(]?\s*{_CURRENCY}?\s*[-+]?(.*?)\s*{_CURRENCY}?\s*[-)]?$", re.I)
    patterns = {k: re.compile(v) for k, v in _NUM_RES.items()}
    seen: dict[str, list[str]] = {k: [] for k in patterns}
    for value in values:
        if len(value) > 40 or not any(ch.isdigit() for ch in value):
            continue
        core = currency.match(value)
        number = (core.group(1) if core else value).replace("\u00a0", " ").replace("\u202f", " ")
        for kind, pattern in patterns.items():
            if pattern.match(number):
                seen[kind].append(value)
                break
    comma = len(seen["dot_grouped_comma_dec"]) + len(seen["comma_dec"])
    dot = len(seen["comma_grouped_dot_dec"]) + len(seen["dot_dec"]) + len(seen["apos_grouped"])
    decimal = "," if comma > dot else "."
    if decimal == ",":
        example = (seen["comma_dec"] or seen["dot_grouped_comma_dec"])[0]
        note = f"decimal comma: {example} means {_as_dot(example)}"
        if seen["dot_grouped_comma_dec"] or seen["dot_3"]:
            thousands = "."
            note += (
                f"; '.' groups thousands ({(seen['dot_grouped_comma_dec'] or seen['dot_3'])[0]})"
            )
        elif seen["space_grouped"]:
            thousands = " "
            note += f"; a space groups thousands ({seen['space_grouped'][0]})"
        else:
            thousands = ""
        if dot:
            note += f" ({dot} value(s) with a decimal point were also seen)"
        return decimal, thousands, note
    if seen["comma_grouped_dot_dec"] or (seen["comma_3"] and delimiter != ","):
        thousands = ","
        example = (seen["comma_grouped_dot_dec"] or seen["comma_3"])[0]
        extra = f"; ',' groups thousands ({example})"
    elif seen["apos_grouped"]:
        thousands, extra = "'", f"; an apostrophe groups thousands ({seen['apos_grouped'][0]})"
    elif seen["space_grouped"]:
        thousands, extra = " ", f"; a space groups thousands ({seen['space_grouped'][0]})"
    else:
        thousands, extra = "", ""
    if dot:
        example = (seen["dot_dec"] or seen["comma_grouped_dot_dec"] or seen["apos_grouped"])[0]
        note = f"decimal point (e.g. {example})"
    else:
        note = "decimal point (the default: no number with decimals was seen)"
    if comma:
        note += f" ({comma} value(s) with a decimal comma were also seen)"
    return decimal, thousands, note + extra


def _as_dot(value: str) -> str:
    """'1.234,56 €' -> '1234.56' (for notes)."""
    core = "".join(ch for ch in value if ch.isdigit() or ch in ",-")
    return core.replace(",", ".")


_DATE_RE = r"^(\d{1,4})([./-])(\d{1,2})([./-])(\d{1,4})(?:$|[ T,])"


def _detect_date_order(values: list[str]) -> tuple[str, bool, list[str]]:
    """(date_order, ambiguous, notes) from every date-like value of the sample."""
    import re

    pattern = re.compile(_DATE_RE)
    iso = day_first = month_first = both = 0
    first = {"DMY": "", "MDY": "", "both": "", "iso": ""}
    separators: dict[str, int] = {}
    offsets = naive_times = 0
    for value in values:
        m = pattern.match(value)
        if not m or m.group(2) != m.group(4):
            continue
        a, b, c = m.group(1), m.group(3), m.group(5)
        rest = value[m.end() :]
        if ":" in rest:
            if re.search(r"(Z|[+-]\d{2}:?\d{2}|UTC|GMT)$", value.strip()):
                offsets += 1
            else:
                naive_times += 1
        if len(a) == 4:
            iso += 1
            first["iso"] = first["iso"] or value
            continue
        if len(c) not in (2, 4) or len(a) > 2:
            continue
        separators[m.group(2)] = separators.get(m.group(2), 0) + 1
        x, y = int(a), int(b)
        if x > 12 and y <= 12:
            day_first += 1
            first["DMY"] = first["DMY"] or value
        elif y > 12 and x <= 12:
            month_first += 1
            first["MDY"] = first["MDY"] or value
        elif x <= 12 and y <= 12:
            both += 1
            first["both"] = first["both"] or value
    notes = []
    if offsets:
        notes.append(
            f"times carry their own UTC offset ({offsets:,} seen); they are converted to UTC"
        )
    if naive_times:
        notes.append(
            "times without a zone are read in the file's time zone (UTC unless you choose "
            "another), then converted to UTC"
        )
    if not (day_first or month_first or both):
        if iso:
            notes.insert(0, f"dates year first (ISO, e.g. {first['iso']})")
        return "YMD", False, notes
    if day_first and not month_first:
        notes.insert(
            0,
            f"dates day first: {first['DMY']} has {int(first['DMY'][:2].rstrip('./-'))} "
            "before the month, which cannot be a month",
        )
        return "DMY", False, notes
    if month_first and not day_first:
        second = re.match(_DATE_RE, first["MDY"]).group(3)  # type: ignore[union-attr]
        notes.insert(
            0,
            f"dates month first: {first['MDY']} has {int(second)} in the second place, "
            "which cannot be a month",
        )
        return "MDY", False, notes
    if day_first and month_first:
        order = "DMY" if day_first >= month_first else "MDY"
        notes.insert(
            0,
            f"dates mixed: {day_first:,} are day first (e.g. {first['DMY']}) and "
            f"{month_first:,} month first (e.g. {first['MDY']}); read as {order}, please "
            "check the date format",
        )
        return order, True, notes
    main_sep = max(separators, key=lambda k: separators[k])
    order = "MDY" if main_sep == "/" else "DMY"
    words = "day first" if order == "DMY" else "month first"
    notes.insert(
        0,
        f"dates ambiguous: every date (e.g. {first['both']}) reads as day first and month "
        f"first alike; assumed {words} ({order}, usual for dates written with "
        f"'{main_sep}'), please confirm",
    )
    return order, True, notes


# --- normalising values ------------------------------------------------------------------

_Arrayish = pa.Array | pa.ChunkedArray

_SPACES = r"[\s\x{00a0}\x{202f}\x{2009}]+"
_CURRENCY_RE = r"(?i:US\$|[$€£¥₹]|\b(?:USD|EUR|GBP|CHF|JPY|CAD|AUD|SEK|NOK|DKK|PLN)\b)"
_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_MISSING = ("", "-", "–", "—", "n/a", "N/A", "NA", "null", "NULL", "None")
_MISSING_SET = pa.array(list(_MISSING))


def _is_text_type(arr: _Arrayish) -> bool:
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def normalise_numbers(text: _Arrayish, fmt: FileFormat | None = None) -> _Arrayish:
    """Numbers as written in `fmt` -> text Arrow can cast ("1.234,56 €" -> "1234.56").

    Removes currency symbols and codes ($, €, £, ¥, ₹, USD, EUR, GBP, ...), spaces (also
    no-break spaces) and thousands separators, turns a decimal comma into a point, and
    writes negatives given as ``(12.50)`` or ``12.50-`` as ``-12.50``. A thousands separator
    is accepted only between groups of three digits (``1.234.567,8``); besides
    ``fmt.thousands``, the mark that is not the decimal one (``.`` or ``,``) and ``'`` are
    accepted that way too, since they cannot be decimals there. ``""``, ``-``, ``n/a``,
    ``NA`` and ``null`` become null. Anything else that does not end up a plain number comes
    back unchanged, so the import reports it as the user wrote it. Non-text arrays (typed
    Parquet columns) are returned as they are.
    """
    import pyarrow.compute as pc

    fmt = fmt or FileFormat()
    if not _is_text_type(text):
        return text
    trimmed = pc.utf8_trim_whitespace(text)
    if fmt.decimal == "." or not pc.any(pc.match_substring(trimmed, ".")).as_py():
        try:  # plain numbers everywhere (the usual case): nothing to do
            pc.cast(pc.drop_null(trimmed.slice(0, 2_000)), pa.float64())
            pc.cast(trimmed, pa.float64())
            return text
        except pa.ArrowInvalid:
            pass
    missing = pc.is_in(trimmed, value_set=_MISSING_SET)
    s = _replace_if_any(trimmed, f"{_CURRENCY_RE}|{_SPACES}", "")
    s = _replace_if_any(s, r"^\((.*)\)$", r"-\1")  # (12.50) -> -12.50
    s = _replace_if_any(s, r"^([0-9.,']*[0-9])-$", r"-\1")  # 12.50- -> -12.50
    s = _replace_if_any(s, r"^[+-]([+-])", r"\1")  # "-$-12" leftovers: one sign
    if fmt.decimal == ",":
        grouped = pc.match_substring_regex(s, r"^[+-]?[0-9]{1,3}([.'’][0-9]{3})+(,[0-9]*)?$")
        if pc.any(grouped).as_py():
            s = pc.if_else(grouped, _remove_chars(s, ".'’"), s)
        s = pc.replace_substring(s, ",", ".")
    else:
        grouped = pc.match_substring_regex(s, r"^[+-]?[0-9]{1,3}([,'’][0-9]{3})+(\.[0-9]*)?$")
        if pc.any(grouped).as_py():
            s = pc.if_else(grouped, _remove_chars(s, ",'’"), s)
    ok = pc.match_substring_regex(s, _NUMBER_RE)
    out = pc.if_else(ok, s, text)
    return pc.if_else(missing, pa.scalar(None, text.type), out)


def _remove_chars(s: _Arrayish, chars: str) -> _Arrayish:
    """`s` without any of `chars` (plain substring replaces: faster than a regex)."""
    import pyarrow.compute as pc

    for ch in chars:
        if pc.any(pc.match_substring(s, ch)).as_py():
            s = pc.replace_substring(s, ch, "")
    return s


def _replace_if_any(s: _Arrayish, pattern: str, replacement: str) -> _Arrayish:
    """replace_substring_regex, skipped when nothing matches (a match test is much faster)."""
    import pyarrow.compute as pc

    if not pc.any(pc.match_substring_regex(s, pattern)).as_py():
        return s
    return pc.replace_substring_regex(s, pattern, replacement)


_ISO_RE = (
    r"^(?P<y>[0-9]{4})[-/.](?P<m>[0-9]{1,2})[-/.](?P<d>[0-9]{1,2})"
    r"(?:(?:T|\s+)(?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?P<f>[.,][0-9]+)?)?)?"
    r"\s*(?P<ampm>)(?P<z>Z|[+-][0-9]{2}(?::?[0-9]{2})?|UTC|GMT)?$"
)
_DM_RE = (
    r"^(?P<a>[0-9]{1,2})(?P<sep>[-/.])(?P<b>[0-9]{1,2})[-/.](?P<y>[0-9]{4}|[0-9]{2})"
    r"(?:(?:T|,?\s+)(?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?P<f>[.,][0-9]+)?)?"
    r"\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?)?"
    r"\s*(?P<z>Z|[+-][0-9]{2}(?::?[0-9]{2})?|UTC|GMT)?$"
)


def normalise_datetimes(text: _Arrayish, fmt: FileFormat | None = None) -> _Arrayish:
    """Dates and times as written in `fmt` -> ISO 8601 text in UTC.

    Reads ``yyyy-mm-dd`` (also with ``/`` or ``.``), ``dd.mm.yyyy``, ``dd/mm/yyyy``,
    ``m/d/yyyy`` (day or month first by ``fmt.date_order``; for "YMD", a value written day
    or month first is read day first with ``.`` or ``-`` and month first with ``/``), 2-digit
    years (00-68 -> 20xx, 69-99 -> 19xx), each with an optional time ``h:mm[:ss[.ffffff]]``
    after a space or ``T``, an optional ``AM``/``PM`` and an optional offset (``Z``,
    ``UTC``, ``+02:00``, ``-0500``). Output: ``YYYY-MM-DD HH:MM:SS`` (with ``.ffffff`` when
    the input had fractions) converted to UTC, or ``YYYY-MM-DD`` for a date without a time
    (a date alone is not shifted between zones).

    A time without an offset is a local time in ``fmt.timezone`` (IANA, DST-aware through
    Arrow's ``assume_timezone`` and the system's time zone database): in the hour that
    occurs twice when clocks go back, the first (summer time) instant is taken; a time that
    does not exist because clocks went forward is moved to the first instant after the
    gap (02:30 on the spring-forward day in Europe/Berlin is 03:00 CEST = 01:00 UTC), as
    pandas' ``nonexistent="shift_forward"`` would. Values that are not such dates (or
    impossible ones such as 31.02.2024) come back unchanged; null stays null. Non-text
    arrays are returned as they are.
    """
    import pyarrow.compute as pc

    fmt = fmt or FileFormat()
    if not _is_text_type(text):
        return text
    chunked = isinstance(text, pa.ChunkedArray)
    arr = text.combine_chunks() if chunked else text
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    trimmed = pc.utf8_trim_whitespace(arr)
    try:  # the common case, ISO 8601 without offsets everywhere: Arrow's own parser
        head = pc.drop_null(trimmed.slice(0, 2_000))
        pc.cast(head, pa.timestamp("us"))  # a failed cast of a whole column is slow
        ts = pc.cast(trimmed, pa.timestamp("us"))
    except pa.ArrowInvalid:
        out = _normalise_by_formats(arr, trimmed, fmt)
    else:
        has_time = pc.greater(pc.utf8_length(trimmed), 10)
        out = _format_utc(pc.if_else(has_time, _local_to_utc(ts, fmt.timezone), ts), has_time)
        out = pc.if_else(pc.is_valid(out), out, arr)
    if pa.types.is_large_string(text.type):
        out = out.cast(pa.large_string())
    return pa.chunked_array([out]) if chunked else out


def _format_utc(utc: pa.Array, has_time: pa.Array) -> pa.Array:
    """'YYYY-MM-DD HH:MM:SS' (plus '.ffffff' when there are fractions), or 'YYYY-MM-DD'."""
    import pyarrow.compute as pc

    # Casts, not strftime: about 30 times faster.
    date_text = pc.cast(pc.cast(utc, pa.date32()), pa.string())
    seconds_text = pc.cast(pc.cast(utc, pa.timestamp("s"), safe=False), pa.string())
    has_fraction = pc.not_equal(pc.subsecond(utc), 0)
    if pc.any(has_fraction).as_py():
        seconds_text = pc.if_else(has_fraction, pc.cast(utc, pa.string()), seconds_text)
    return pc.if_else(has_time, seconds_text, date_text)


_DATE_FORMATS = {
    "YMD": ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d"),
    "DMY": ("%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%y", "%d/%m/%y", "%d-%m-%y"),
    "MDY": ("%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y", "%m/%d/%y", "%m-%d-%y", "%m.%d.%y"),
}
_TIME_FORMATS = (" %H:%M:%S", " %H:%M", "T%H:%M:%S", "T%H:%M", " %I:%M %p", " %I:%M:%S %p")
_ZONE_FORMATS = (("", False), ("%z", True), (" %z", True), ("Z", True), (" UTC", True))
_FORMAT_SAMPLE = 500


def _candidate_formats(fmt: FileFormat) -> list[tuple[str, bool, bool]]:
    """(strptime format, has time, has offset) for the date order of `fmt`."""
    if fmt.date_order == "YMD":
        dates = (
            _DATE_FORMATS["YMD"]
            + tuple(f for f in _DATE_FORMATS["DMY"] if "/" not in f)
            + tuple(f for f in _DATE_FORMATS["MDY"] if "/" in f)
        )
    else:
        dates = _DATE_FORMATS[fmt.date_order] + _DATE_FORMATS["YMD"]
    out = []
    for date in dates:
        out.append((date, False, False))
        for time in _TIME_FORMATS:
            for zone, zoned in _ZONE_FORMATS:
                out.append((date + time + zone, True, zoned))
    return out


def _strptime(values: pa.Array, form: str) -> pa.Array:
    """Arrow's strptime, without its readings of '24' as the year 24 under %Y."""
    import pyarrow.compute as pc

    parsed = pc.strptime(values, format=form, unit="us", error_is_null=True)
    if "%Y" in form:
        parsed = pc.if_else(pc.less(pc.year(parsed), 1000), pa.scalar(None, parsed.type), parsed)
    return parsed


def _normalise_by_formats(arr: pa.Array, trimmed: pa.Array, fmt: FileFormat) -> pa.Array:
    """Arrow's strptime with the formats a sample of the values shows (fast), then the
    regular-expression reader for whatever is left (other forms, fractions, bad values)."""
    import numpy as np
    import pyarrow.compute as pc

    s = trimmed
    present = pc.fill_null(pc.greater(pc.utf8_length(s), 0), False)
    sample = pc.unique(pc.filter(s, present).slice(0, _FORMAT_SAMPLE * 4))[:_FORMAT_SAMPLE]
    chosen = []
    for form, has_time, has_zone in _candidate_formats(fmt):
        if len(sample) == 0:
            break
        parsed = _strptime(sample, form)
        hits = len(parsed) - parsed.null_count
        if hits:
            chosen.append((hits, form, has_time, has_zone))
            sample = pc.filter(sample, pc.is_null(parsed))
    chosen.sort(key=lambda c: -c[0])
    n = len(arr)
    ts = pa.nulls(n, pa.timestamp("us"))
    has_time = pa.array(np.zeros(n, dtype=bool))
    has_zone = pa.array(np.zeros(n, dtype=bool))
    for _hits, form, timed, zoned in chosen:
        todo = pc.and_(present, pc.is_null(ts))
        if not pc.any(todo).as_py():
            break
        parsed = _strptime(pc.if_else(todo, s, pa.scalar(None, pa.string())), form)
        if parsed.type.tz is not None:
            parsed = pc.cast(parsed, pa.timestamp("us"))  # UTC already
        got = pc.is_valid(parsed)
        ts = pc.coalesce(ts, parsed)
        has_time = pc.or_(has_time, pc.and_(got, pa.scalar(timed)))
        has_zone = pc.or_(has_zone, pc.and_(got, pa.scalar(zoned)))
    # strptime reads 31.02 as 2 March: dates that land on days 1-3 are checked again below.
    unsure = pc.fill_null(pc.less_equal(pc.day(ts), 3), False)
    ts = pc.if_else(unsure, pa.scalar(None, ts.type), ts)
    local = pc.and_(has_time, pc.invert(has_zone))
    utc = pc.if_else(local, _local_to_utc(ts, fmt.timezone), ts)
    out = _format_utc(utc, has_time)
    left = pc.and_(present, pc.is_null(out))
    positions = np.flatnonzero(left.to_numpy(zero_copy_only=False))
    out = pc.if_else(pc.is_valid(out), out, arr)
    if not len(positions):
        return out
    index = pa.array(positions)
    rest = _normalise_datetimes_general(arr.take(index), trimmed.take(index), fmt)
    take = np.arange(n)
    take[positions] = n + np.arange(len(positions))
    return pa.concat_arrays([out, rest]).take(pa.array(take))


def _normalise_datetimes_general(arr: pa.Array, trimmed: pa.Array, fmt: FileFormat) -> pa.Array:
    """normalise_datetimes by regular expressions: slower, reads every form described."""
    import pyarrow.compute as pc

    iso = pc.extract_regex(trimmed, _ISO_RE)
    dm = pc.extract_regex(trimmed, _DM_RE)
    is_iso = pc.fill_null(pc.is_valid(iso), False)
    is_dm = pc.fill_null(pc.and_(pc.is_valid(dm), pc.invert(is_iso)), False)

    def part(name: str) -> pa.Array:
        """One captured group: from the ISO match, else from the day/month match."""
        if name in ("a", "b", "sep"):
            return pc.if_else(is_dm, pc.struct_field(dm, name), pa.scalar(None, pa.string()))
        if name in ("m", "d"):
            return pc.struct_field(iso, name)
        return pc.if_else(is_iso, pc.struct_field(iso, name), pc.struct_field(dm, name))

    def number(values: pa.Array) -> pa.Array:
        clean = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
        return pc.cast(clean, pa.int32())

    a, b = number(part("a")), number(part("b"))
    if fmt.date_order == "YMD":  # a value written day or month first all the same
        day_first = pc.fill_null(pc.not_equal(part("sep"), "/"), True)
    else:
        day_first = pa.scalar(fmt.date_order == "DMY")
    dm_day = pc.if_else(day_first, a, b)
    dm_month = pc.if_else(day_first, b, a)
    year = number(part("y"))
    year = pc.if_else(
        pc.less(pc.utf8_length(part("y")), 3),
        pc.add(year, pc.if_else(pc.less_equal(year, 68), 2000, 1900)),
        year,
    )
    month = pc.if_else(is_iso, number(part("m")), dm_month)
    day = pc.if_else(is_iso, number(part("d")), dm_day)
    hour_text = part("H")
    has_time = pc.fill_null(pc.not_equal(hour_text, ""), False)
    hour = pc.fill_null(number(hour_text), 0)
    minute = pc.fill_null(number(part("M")), 0)
    second = pc.fill_null(number(part("S")), 0)
    ampm = pc.utf8_lower(pc.fill_null(part("ampm"), ""))
    is_pm = pc.starts_with(ampm, "p")
    has_ampm = pc.not_equal(ampm, "")
    hour = pc.if_else(
        has_ampm,
        pc.add(pc.if_else(pc.equal(hour, 12), 0, hour), pc.if_else(is_pm, 12, 0)),
        hour,
    )

    def two(values: pa.Array) -> pa.Array:
        return pc.utf8_lpad(pc.cast(values, pa.string()), 2, "0")

    stamp = pc.binary_join_element_wise(
        pc.utf8_lpad(pc.cast(year, pa.string()), 4, "0"),
        "-",
        two(month),
        "-",
        two(day),
        " ",
        two(hour),
        ":",
        two(minute),
        ":",
        two(second),
        "",
    )
    ts = pc.strptime(stamp, format="%Y-%m-%d %H:%M:%S", unit="us", error_is_null=True)
    valid_clock = pc.and_(
        pc.and_(pc.less_equal(hour, 23), pc.less_equal(minute, 59)), pc.less_equal(second, 59)
    )
    # strptime rolls 31.02 over into March: keep only dates that read back as written.
    same_date = pc.and_(pc.equal(pc.month(ts), month), pc.equal(pc.day(ts), day))
    ts = pc.if_else(pc.and_(valid_clock, same_date), ts, pa.scalar(None, ts.type))
    # Fractions of a second: ".5" -> 500000 µs.
    frac = pc.fill_null(part("f"), "")
    has_frac = pc.not_equal(frac, "")
    digits = pc.utf8_slice_codeunits(
        pc.utf8_rpad(pc.utf8_slice_codeunits(frac, 1, 7), 6, "0"), 0, 6
    )
    micros = pc.cast(pc.if_else(has_frac, digits, "0"), pa.int64())
    ts = pc.add(ts, pc.cast(micros, pa.duration("us")))
    # Offsets: Z/UTC/GMT -> 0, "+02:00"/"-0500"/"+02" -> minutes east of UTC.
    zone = pc.fill_null(part("z"), "")
    has_zone = pc.not_equal(zone, "")
    numeric = pc.replace_substring(pc.utf8_slice_codeunits(zone, 1, 10), ":", "")
    numeric = pc.if_else(pc.match_substring_regex(zone, r"^[+-]"), numeric, "0000")
    numeric = pc.utf8_rpad(numeric, 4, "0")
    offset_minutes = pc.add(
        pc.multiply(pc.cast(pc.utf8_slice_codeunits(numeric, 0, 2), pa.int64()), 60),
        pc.cast(pc.utf8_slice_codeunits(numeric, 2, 4), pa.int64()),
    )
    offset_minutes = pc.if_else(
        pc.starts_with(zone, "-"), pc.negate(offset_minutes), offset_minutes
    )
    with_offset = pc.subtract(
        ts, pc.cast(pc.multiply(offset_minutes, 60_000_000), pa.duration("us"))
    )
    local = _local_to_utc(ts, fmt.timezone)
    utc = pc.if_else(has_zone, with_offset, local)
    utc = pc.if_else(has_time, utc, ts)  # a date alone stays that date
    out = _format_utc(utc, has_time)
    read = pc.fill_null(pc.or_(is_iso, is_dm), False)
    return pc.if_else(pc.and_(read, pc.is_valid(out)), out, arr)


def _local_to_utc(ts: pa.Array, timezone: str) -> pa.Array:
    """Naive local times in `timezone` as naive UTC times (see normalise_datetimes)."""
    import pyarrow.compute as pc

    if timezone in ("UTC", "Etc/UTC", "GMT"):
        return ts
    _zone(timezone)
    try:
        aware = pc.assume_timezone(ts, timezone, ambiguous="earliest", nonexistent="latest")
        return pc.cast(aware, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # No time zone database for Arrow: pandas (zoneinfo/tzdata) does the same.
        import numpy as np
        import pandas as pd

        series = pd.Series(ts.to_pandas(), dtype="datetime64[us]")
        local = series.dt.tz_localize(
            timezone, ambiguous=np.ones(len(series), dtype=bool), nonexistent="shift_forward"
        )
        utc = local.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
        return pa.array(utc, type=pa.timestamp("us"), from_pandas=True)

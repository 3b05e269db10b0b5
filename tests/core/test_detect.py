"""File format detection, batched reading and value normalising (crm_core.detect)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm_core import detect
from crm_core.detect import FileFormat, normalise_datetimes, normalise_numbers, read_batches
from crm_core.errors import ConfigError, ImportValidationError


def write(folder: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)
    return path


def read_all(path: Path, fmt: FileFormat | None = None, **kwargs) -> list[tuple[pa.Table, int]]:
    return list(read_batches(path, fmt or detect.detect(path), **kwargs))


def problems(excinfo: pytest.ExceptionInfo) -> list[str]:
    return excinfo.value.problems


# --- detection -------------------------------------------------------------------------

GERMAN = (
    "Bestellung;Kunde;Datum;Betrag;Artikel;Kanal;Status\n"
    "1;anna@example.de;05.03.2024;12,50;1;Web;bezahlt\n"
    "2;bernd@example.de;13.03.2024 14:22;1.234,56;3;Laden;bezahlt\n"
    "3;carla@example.de;01.04.2024;0,99;1;App;storniert\n"
)


def test_semicolon_decimal_comma_and_day_first_dates(tmp_path):
    path = write(tmp_path, "bestellungen.csv", GERMAN)
    fmt = detect.detect(path)
    assert (fmt.delimiter, fmt.encoding, fmt.decimal, fmt.thousands) == (";", "utf-8", ",", ".")
    assert (fmt.date_order, fmt.date_order_ambiguous) == ("DMY", False)
    assert "separated by ';' (every row has 7 fields)" in fmt.notes
    assert any(n.startswith("decimal comma: 12,50 means 12.50") for n in fmt.notes)
    assert any(n.startswith("dates day first: 13.03.2024") for n in fmt.notes)

    [(table, first_row)] = read_all(path, fmt)
    assert first_row == 2
    assert table.column_names[:4] == ["Bestellung", "Kunde", "Datum", "Betrag"]
    assert table.schema.types == [pa.string()] * 7
    assert normalise_numbers(table["Betrag"], fmt).to_pylist() == ["12.50", "1234.56", "0.99"]
    assert normalise_datetimes(table["Datum"], fmt).to_pylist() == [
        "2024-03-05",
        "2024-03-13 14:22:00",
        "2024-04-01",
    ]


def test_latin1_file_is_detected_and_read(tmp_path):
    text = "id;name;city\n1;Müller;São Paulo\n2;Françoise;Zürich\n"
    path = write(tmp_path, "kunden.csv", text, encoding="latin-1")
    fmt = detect.detect(path)
    assert fmt.encoding == "latin-1"
    assert any("Latin-1" in n and "Müller" in n for n in fmt.notes)
    [(table, _)] = read_all(path, fmt)
    assert table["name"].to_pylist() == ["Müller", "Françoise"]
    assert table["city"].to_pylist() == ["São Paulo", "Zürich"]


def test_windows_1252_is_chosen_when_its_extra_characters_appear(tmp_path):
    text = "id,name,price\n1,Müller – Berlin,5 €\n2,“Quoted”,7 €\n"
    path = write(tmp_path, "prices.csv", text, encoding="cp1252")
    fmt = detect.detect(path)
    assert fmt.encoding == "cp1252"
    [(table, _)] = read_all(path, fmt)
    assert table["name"].to_pylist() == ["Müller – Berlin", "“Quoted”"]
    assert normalise_numbers(table["price"], fmt).to_pylist() == ["5", "7"]


def test_utf8_with_byte_order_mark(tmp_path):
    path = write(tmp_path, "bom.csv", "\ufeffName,Email\nÅsa,asa@example.se\n")
    fmt = detect.detect(path)
    assert fmt.encoding == "utf-8"
    assert any("byte-order mark" in n for n in fmt.notes)
    [(table, _)] = read_all(path, fmt)
    assert table.column_names == ["Name", "Email"]
    assert table["Name"].to_pylist() == ["Åsa"]


def test_header_names_are_trimmed(tmp_path):
    path = write(tmp_path, "spaces.csv", " id ,  name\n1,a\n")
    [(table, _)] = read_all(path)
    assert table.column_names == ["id", "name"]


@pytest.mark.parametrize(
    ("dates", "order", "ambiguous"),
    [
        (["3/25/2024", "4/1/2024"], "MDY", False),  # 25 cannot be a month
        (["25/3/2024", "4/1/2024"], "DMY", False),  # 25 cannot be a month
        (["12/1/2010 8:26", "12/13/2010 9:01"], "MDY", False),  # Online Retail style
        (["3/4/2024", "4/1/2024"], "MDY", True),  # both fit: '/' -> month first, asked
        (["03.04.2024", "04.01.2024"], "DMY", True),  # both fit: '.' -> day first, asked
        (["2024-03-04", "2024-12-01"], "YMD", False),
    ],
)
def test_day_or_month_first_is_decided_from_the_data(tmp_path, dates, order, ambiguous):
    rows = "".join(f"{i},{d},10\n" for i, d in enumerate(dates, 1))
    path = write(tmp_path, "dates.csv", "id,when,amount\n" + rows)
    fmt = detect.detect(path)
    assert (fmt.date_order, fmt.date_order_ambiguous) == (order, ambiguous)
    if ambiguous:
        assert any("ambiguous" in n and "please confirm" in n for n in fmt.notes)


def test_day_first_and_month_first_in_one_file_is_flagged(tmp_path):
    path = write(tmp_path, "mixed.csv", "id,when\n1,25/3/2024\n2,3/25/2024\n3,26/3/2024\n")
    fmt = detect.detect(path)
    assert (fmt.date_order, fmt.date_order_ambiguous) == ("DMY", True)
    assert any(n.startswith("dates mixed") for n in fmt.notes)


@pytest.mark.parametrize(
    ("content", "delimiter"),
    [
        ("a\tb\tc\n1\t2,5\t3\n", "\t"),
        ("a|b|c\n1|2|3\n", "|"),
        ('a,b,c\n1,"x; y",3\n', ","),
        ("a;b;c\n1;2,5;x, y\n", ";"),
    ],
)
def test_delimiter_is_the_one_with_consistent_field_counts(tmp_path, content, delimiter):
    assert detect.detect(write(tmp_path, "d.csv", content)).delimiter == delimiter


def test_thousands_comma_with_decimal_point(tmp_path):
    path = write(tmp_path, "us.csv", 'id,total\n1,"1,234.50"\n2,12.00\n')
    fmt = detect.detect(path)
    assert (fmt.decimal, fmt.thousands) == (".", ",")
    [(table, _)] = read_all(path, fmt)
    assert normalise_numbers(table["total"], fmt).to_pylist() == ["1234.50", "12.00"]


def test_parquet_detection_says_types_are_kept(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1]}), path)
    assert detect.detect(path).notes == ("Parquet file: columns keep the types stored in the file",)


def test_file_format_round_trips_and_refuses_bad_values():
    fmt = FileFormat(delimiter=";", decimal=",", thousands=".", date_order="DMY", notes=("x",))
    assert FileFormat.from_dict(fmt.to_dict()) == fmt
    assert FileFormat.from_dict({"delimiter": ";", "encoding": "ISO-8859-1"}).encoding == "latin-1"
    assert FileFormat.from_dict(None) == FileFormat()
    with pytest.raises(ConfigError, match="delimiter ':' is not supported"):
        FileFormat(delimiter=":")
    with pytest.raises(ConfigError, match="time zone 'Mars/Base' is not known"):
        FileFormat(timezone="Mars/Base")
    with pytest.raises(ConfigError, match="unknown key"):
        FileFormat.from_dict({"quote": "'"})


# --- reading -----------------------------------------------------------------------------


def test_batches_have_exact_sizes_first_rows_and_the_same_content(tmp_path):
    lines = ["id,name,note"]
    for i in range(2500):
        note = '"two\nlines"' if i % 700 == 0 else f"n{i}"
        lines.append(f"{i},name {i},{note}")
    path = write(tmp_path, "many.csv", "\n".join(lines) + "\n")
    batches = read_all(path, batch_rows=1000)
    assert [(t.num_rows, first) for t, first in batches] == [(1000, 2), (1000, 1002), (500, 2002)]
    [(whole, _)] = read_all(path)
    assert pa.concat_tables([t for t, _ in batches]).equals(whole)
    assert whole["id"].to_pylist() == [str(i) for i in range(2500)]
    assert whole["note"][700].as_py() == "two\nlines"


def test_gzip_csv_is_read_like_the_plain_file(tmp_path):
    content = GERMAN.encode("latin-1")
    plain = write(tmp_path, "b.csv", content)
    packed = write(tmp_path, "b.csv.gz", gzip.compress(content))
    assert detect.detect(packed) == detect.detect(plain)
    [(a, _)] = read_all(plain)
    [(b, _)] = read_all(packed)
    assert a.equals(b)


def test_empty_values_are_null_and_everything_is_text(tmp_path):
    path = write(tmp_path, "e.csv", 'id,n,t\n1,,x\n2,007,""\n')
    [(table, _)] = read_all(path)
    assert table.to_pylist() == [
        {"id": "1", "n": None, "t": "x"},
        {"id": "2", "n": "007", "t": None},
    ]


def test_parquet_is_read_in_batches_keeping_types(tmp_path):
    path = tmp_path / "orders.parquet"
    table = pa.table(
        {
            " order_id ": pa.array(range(2500), pa.int64()),
            "channel": pa.array(["web", "app"] * 1250).dictionary_encode(),
            "amount": pa.array([1.5] * 2500),
        }
    )
    pq.write_table(table, path, row_group_size=600)
    batches = list(read_batches(path, FileFormat(), batch_rows=1000))
    assert [(t.num_rows, first) for t, first in batches] == [(1000, 2), (1000, 1002), (500, 2002)]
    whole = pa.concat_tables([t for t, _ in batches])
    assert whole.column_names == ["order_id", "channel", "amount"]
    assert whole.schema.types == [pa.int64(), pa.string(), pa.float64()]
    assert whole["order_id"].to_pylist() == list(range(2500))


def test_ragged_rows_are_reported_with_their_row_numbers(tmp_path):
    content = 'a;b;c\n1;"two\nlines";3\n4;5\n\n6;7;8\n9;10;11;12\n'
    path = write(tmp_path, "ragged.csv", content)
    with pytest.raises(ImportValidationError) as excinfo:
        read_all(path, FileFormat(delimiter=";"))
    assert problems(excinfo) == [
        "ragged.csv row 3: has 2 field(s), expected 3 like the header "
        "(a value containing ';' or a line break must be in double quotes)",
        "ragged.csv row 5: has 4 field(s), expected 3 like the header "
        "(a value containing ';' or a line break must be in double quotes)",
    ]


def test_ragged_rows_after_the_first_batch_stop_the_reading(tmp_path):
    lines = ["a,b"] + [f"{i},x" for i in range(3000)] + ["bad"] + ["1,2"] * 10
    path = write(tmp_path, "late.csv", "\n".join(lines) + "\n")
    with pytest.raises(ImportValidationError) as excinfo:
        read_all(path, FileFormat(), batch_rows=100)
    assert problems(excinfo)[0].startswith("late.csv row 3002: has 1 field(s), expected 2")


@pytest.mark.parametrize(
    ("content", "fmt", "expected"),
    [
        ("", FileFormat(), "data.csv: has no data rows (the file is empty)"),
        ("a,b\n", FileFormat(), "data.csv: has no data rows (only a header)"),
        (
            "id,name\n1,Müller\n".encode("latin-1"),
            FileFormat(),
            "data.csv: is not UTF-8 text (byte 0xfc at byte 12, line 2); it looks like another "
            "encoding (e.g. Latin-1 or Windows-1252). Save it as 'CSV UTF-8' and try again",
        ),
        (
            b"id,name\n1,\x81x\n",
            FileFormat(encoding="cp1252"),
            "data.csv: is not Windows-1252 text (byte 0x81 at byte 11, line 2); choose its "
            "encoding (UTF-8, Latin-1 or Windows-1252), or save it as 'CSV UTF-8' and try again",
        ),
        (
            "a;b\n1;2\n",
            FileFormat(),
            "data.csv: looks like it is separated by ';', expected ','; save it as CSV (comma "
            "delimited) and try again",
        ),
    ],
    ids=["empty", "header_only", "not_utf8", "not_cp1252", "other_delimiter"],
)
def test_unreadable_files_say_why(tmp_path, content, fmt, expected):
    path = write(tmp_path, "data.csv", content)
    with pytest.raises(ImportValidationError) as excinfo:
        read_all(path, fmt)
    assert problems(excinfo) == [expected]


def test_unsupported_type_and_empty_file_detection(tmp_path):
    with pytest.raises(ImportValidationError, match="orders.xlsx: unsupported file type"):
        detect.detect(write(tmp_path, "orders.xlsx", b"PK"))
    with pytest.raises(ImportValidationError, match="has no data rows"):
        detect.detect(write(tmp_path, "empty.csv", ""))


# --- normalising -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "written", "expected"),
    [
        (FileFormat(), "$12.00", "12.00"),
        (FileFormat(), "USD 1,234.50", "1234.50"),
        (FileFormat(), "(12.50)", "-12.50"),
        (FileFormat(), "12.50-", "-12.50"),
        (FileFormat(), "-$4", "-4"),
        (FileFormat(), "£ 1 000", "1000"),
        (FileFormat(), "1'234.5", "1234.5"),
        (FileFormat(), "-", None),
        (FileFormat(), "", None),
        (FileFormat(), "12,5", "12,5"),  # unreadable with a decimal point: unchanged
        (FileFormat(), "abc", "abc"),
        (FileFormat(decimal=",", thousands="."), "1.234,56", "1234.56"),
        (FileFormat(decimal=",", thousands="."), "12,50 €", "12.50"),
        (FileFormat(decimal=",", thousands="."), "EUR -3,20", "-3.20"),
        (FileFormat(decimal=",", thousands="."), "1.500", "1500"),
        (FileFormat(decimal=",", thousands=" "), "1 234 567,8", "1234567.8"),
        (FileFormat(decimal=",", thousands="."), "1,2,3", "1,2,3"),
    ],
)
def test_numbers_as_written_become_plain_numbers(fmt, written, expected):
    values = pa.array([written, "1", None])
    assert normalise_numbers(values, fmt).to_pylist() == [expected, "1", None]


def test_plain_numbers_and_typed_columns_are_left_alone():
    plain = pa.array(["1.5", "2", None])
    assert normalise_numbers(plain, FileFormat()) is plain
    typed = pa.array([1.5, 2.0])
    assert normalise_numbers(typed, FileFormat()) is typed
    assert normalise_datetimes(typed, FileFormat()) is typed


@pytest.mark.parametrize(
    ("fmt", "written", "expected"),
    [
        (FileFormat(date_order="DMY"), "05.03.2024", "2024-03-05"),
        (FileFormat(date_order="DMY"), "05/03/2024 14:22", "2024-03-05 14:22:00"),
        (FileFormat(date_order="MDY"), "12/1/2010 8:26", "2010-12-01 08:26:00"),
        (FileFormat(date_order="MDY"), "1/2/2024 1:05 PM", "2024-01-02 13:05:00"),
        (FileFormat(date_order="DMY"), "5/3/24", "2024-03-05"),
        (FileFormat(), "2024-03-05 14:22:31 -0500", "2024-03-05 19:22:31"),
        (FileFormat(), "2024-03-05T14:22:31Z", "2024-03-05 14:22:31"),
        (FileFormat(), "2024-03-05T14:22:31+02:00", "2024-03-05 12:22:31"),
        (FileFormat(), "2024-03-05T14:22:31.25+02:00", "2024-03-05 12:22:31.250000"),
        (FileFormat(), "2024-03-05", "2024-03-05"),
        (FileFormat(date_order="DMY"), "31.02.2024", "31.02.2024"),  # no such day: unchanged
        (FileFormat(date_order="MDY"), "13/01/2024", "13/01/2024"),  # no month 13: unchanged
        (FileFormat(), "2024-03-05 25:00", "2024-03-05 25:00"),
        (FileFormat(), "soon", "soon"),
    ],
)
def test_dates_as_written_become_iso_utc(fmt, written, expected):
    values = pa.array([written, None, "2024-01-01 00:00:00"])
    assert normalise_datetimes(values, fmt).to_pylist() == [expected, None, "2024-01-01 00:00:00"]


def test_local_times_are_converted_to_utc_across_daylight_saving():
    berlin = FileFormat(timezone="Europe/Berlin")
    values = pa.array(
        [
            "2024-01-15 12:00:00",  # CET, +01:00
            "2024-07-15 12:00:00",  # CEST, +02:00
            "2024-03-31 02:30:00",  # does not exist (clocks go 02:00 -> 03:00): 03:00 CEST
            "2024-10-27 02:30:00",  # happens twice: the first (CEST) is taken
            "2024-07-15 12:00:00 -0500",  # its own offset wins over the zone
            "2024-07-15",  # a date alone is not shifted
        ]
    )
    assert normalise_datetimes(values, berlin).to_pylist() == [
        "2024-01-15 11:00:00",
        "2024-07-15 10:00:00",
        "2024-03-31 01:00:00",
        "2024-10-27 00:30:00",
        "2024-07-15 17:00:00",
        "2024-07-15",
    ]
    day_first = FileFormat(date_order="DMY", timezone="Europe/Berlin")
    assert normalise_datetimes(pa.array(["15.07.2024 12:00"]), day_first).to_pylist() == [
        "2024-07-15 10:00:00"
    ]
    new_york = FileFormat(date_order="MDY", timezone="America/New_York")
    assert normalise_datetimes(pa.array(["12/1/2010 8:26"]), new_york).to_pylist() == [
        "2010-12-01 13:26:00"
    ]


def test_mixed_forms_in_one_column_each_read_their_way():
    values = pa.array(["05.03.2024", "2024-03-06 10:00", "7.3.2024 9:15:30", "x", ""])
    out = normalise_datetimes(values, FileFormat(date_order="DMY")).to_pylist()
    assert out == ["2024-03-05", "2024-03-06 10:00:00", "2024-03-07 09:15:30", "x", ""]


def test_chunked_arrays_keep_their_shape():
    values = pa.chunked_array([["1,5"], ["2.000,25"]])
    out = normalise_numbers(values, FileFormat(decimal=",", thousands="."))
    assert isinstance(out, pa.ChunkedArray)
    assert out.to_pylist() == ["1.5", "2000.25"]
    dates = normalise_datetimes(pa.chunked_array([["1.5.2024"], ["2.5.2024"]]), FileFormat())
    assert dates.to_pylist() == ["2024-05-01", "2024-05-02"]

"""Import of CSV/Parquet files: schema-driven validation, row/column errors, all or nothing."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm_core import ingest, schema
from crm_core.errors import CRMError, ImportValidationError
from crm_core.ingest import ImportResult, import_file, import_files, read_table_file, validate
from tests.conftest import snapshot

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL

CUSTOMERS_CSV = """customer_id,email,country,signup_at,consent_email,loyalty_points
1,ann@example.com,US,2024-01-01,yes,10
2,bob@example.com,GB,2024-01-02 09:30:00,no,
3,cy@example.com,GB,2024-01-03T08:00:00,1,0
"""

ORDERS_CSV = """order_id,customer_id,ordered_at,amount,items,channel,status
1,1,2024-02-01 10:00:00,19.99,1,web,completed
2,1,2024-02-05,5.5,2,store,refunded
3,2,2024-02-06 12:00,100,,app,
"""

ORDERS_HEADER = "order_id,customer_id,ordered_at,amount,items,channel,status\n"


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


@pytest.fixture
def loaded(store, tmp_path):
    """The store with three customers and three orders imported."""
    import_file(store, "customers", write(tmp_path, "customers.csv", CUSTOMERS_CSV))
    import_file(store, "orders", write(tmp_path, "orders.csv", ORDERS_CSV))
    return store


def assert_same(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    assert before.keys() == after.keys()
    for name in before:
        pdt.assert_frame_equal(before[name], after[name], obj=name)


def rejected(store, path: Path, table: str = "orders", **kwargs) -> ImportValidationError:
    """Import `path`, expect ImportValidationError, check no table changed; the error."""
    before = snapshot(store)
    with pytest.raises(ImportValidationError) as info:
        import_file(store, table, path, **kwargs)
    assert_same(before, snapshot(store))
    return info.value


# --- happy paths -----------------------------------------------------------------------


def test_csv_import_of_customers_then_orders_converts_every_type(loaded):
    customers = loaded.read_df("select * from customers order by customer_id")
    assert customers["customer_id"].tolist() == [1, 2, 3]
    assert customers["signup_at"].tolist() == [
        pd.Timestamp("2024-01-01"),
        pd.Timestamp("2024-01-02 09:30"),
        pd.Timestamp("2024-01-03 08:00"),
    ]
    assert customers["consent_email"].tolist() == [True, False, True]
    assert customers["loyalty_points"].tolist()[0] == 10
    assert pd.isna(customers["loyalty_points"].iloc[1])
    assert customers["first_name"].isna().all()  # a column the file left out

    orders = loaded.read_df("select * from orders order by order_id")
    assert orders["amount"].astype(float).tolist() == [19.99, 5.5, 100.0]
    assert orders["ordered_at"].tolist()[1] == pd.Timestamp("2024-02-05")
    assert orders["status"].tolist()[:2] == ["completed", "refunded"]
    assert pd.isna(orders["status"].iloc[2])  # empty means missing
    assert pd.isna(orders["items"].iloc[2])


def test_import_file_reports_what_it_loaded(store, tmp_path):
    result = import_file(
        store, "customers", write(tmp_path, "c.csv", CUSTOMERS_CSV), file_name="upload.csv"
    )
    assert result == ImportResult(table="customers", rows=3, mode="append", file_name="upload.csv")


def test_parquet_import_of_customers_then_orders(store, tmp_path):
    customers = pd.DataFrame(
        {
            "customer_id": [10, 11],
            "signup_at": pd.to_datetime(["2024-03-01 00:00", "2024-03-02 10:00"]),
            "consent_sms": [True, None],
            "country": ["US", None],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": pd.array([100, 101], dtype="Int64"),
            "customer_id": [10, 11],
            "ordered_at": ["2024-03-05", "2024-03-06 11:00:00"],  # text works too
            "amount": [12.345, 7.0],
            "items": pd.array([1, None], dtype="Int64"),
            "channel": pd.Categorical(["web", "app"]),
        }
    )
    pq.write_table(pa.Table.from_pandas(customers), tmp_path / "customers.parquet")
    pq.write_table(pa.Table.from_pandas(orders), tmp_path / "orders.parquet")
    import_file(store, "customers", tmp_path / "customers.parquet")
    import_file(store, "orders", tmp_path / "orders.parquet")

    got = store.read_df("select * from customers order by customer_id")
    assert got["signup_at"].tolist() == [
        pd.Timestamp("2024-03-01"),
        pd.Timestamp("2024-03-02 10:00"),
    ]
    assert bool(got["consent_sms"].iloc[0]) is True
    assert pd.isna(got["consent_sms"].iloc[1])
    got = store.read_df("select * from orders order by order_id")
    assert got["amount"].astype(float).tolist() == [12.35, 7.0]  # money: 2 decimals
    assert got["channel"].tolist() == ["web", "app"]
    assert got["ordered_at"].tolist()[1] == pd.Timestamp("2024-03-06 11:00")


def test_upsert_replaces_rows_and_adds_new_ones(loaded, tmp_path):
    path = write(
        tmp_path,
        "orders_fix.csv",
        ORDERS_HEADER
        + "2,1,2024-02-05,6.75,3,store,completed\n"
        + "4,3,2024-02-07,1,1,web,completed\n",
    )
    result = import_file(loaded, "orders", path, mode="upsert")
    assert result.rows == 2 and result.mode == "upsert"
    orders = loaded.read_df("select order_id, amount, items, status from orders order by 1")
    assert orders["order_id"].tolist() == [1, 2, 3, 4]
    assert orders["amount"].astype(float).tolist() == [19.99, 6.75, 100.0, 1.0]
    assert orders["status"].tolist()[1] == "completed"


def test_upsert_leaves_columns_the_file_does_not_have(loaded, tmp_path):
    path = write(tmp_path, "c.csv", "customer_id,signup_at\n1,2023-12-31\n")
    import_file(loaded, "customers", path, mode="upsert")
    row = loaded.read_df("select * from customers where customer_id = 1")
    assert row["email"].iloc[0] == "ann@example.com"
    assert row["signup_at"].iloc[0] == pd.Timestamp("2023-12-31")


def test_append_of_an_existing_key_is_an_error(loaded, tmp_path):
    path = write(tmp_path, "again.csv", ORDERS_HEADER + "5,1,2024-02-07,1,1,web,\n")
    path2 = write(tmp_path, "more.csv", ORDERS_HEADER + "2,1,2024-02-07,1,1,web,\n")
    import_file(loaded, "orders", path)
    err = rejected(loaded, path2)
    assert "more.csv row 2, column order_id: key order_id = 2 already exists in the store" in str(
        err
    )
    assert "upsert" in str(err)


def test_import_files_loads_customers_and_orders_in_one_batch(store, tmp_path):
    # orders listed first: the batch still loads customers first so references resolve
    results = import_files(
        store,
        [
            ("orders", write(tmp_path, "orders.csv", ORDERS_CSV)),
            ("customers", write(tmp_path, "customers.csv", CUSTOMERS_CSV)),
        ],
    )
    assert [(r.table, r.rows, r.file_name) for r in results] == [
        ("customers", 3, "customers.csv"),
        ("orders", 3, "orders.csv"),
    ]
    assert store.row_counts(("customers", "orders")) == {"customers": 3, "orders": 3}


def test_gzip_csv_bom_whitespace_and_zone_offsets(store, tmp_path):
    text = (
        "\ufeffCustomer_ID , Signup_At,email\n"
        " 7 ,2024-01-01T10:00:00+02:00,  a@b.c  \n"
        "8,2024-01-01T10:00:00Z,\n"
    )
    path = tmp_path / "customers.csv.gz"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    import_file(store, "customers", path)
    got = store.read_df("select customer_id, signup_at, email from customers order by 1")
    assert got["customer_id"].tolist() == [7, 8]
    assert got["signup_at"].tolist() == [
        pd.Timestamp("2024-01-01 08:00"),  # converted to UTC
        pd.Timestamp("2024-01-01 10:00"),
    ]
    assert got["email"].iloc[0] == "a@b.c"
    assert pd.isna(got["email"].iloc[1])


def test_quoted_commas_and_line_breaks_count_as_one_row(store, tmp_path):
    path = write(
        tmp_path,
        "customers.csv",
        'customer_id,city,signup_at\n1,"Paris, FR",2024-01-01\n2,"two\nlines",2024-01-01\n'
        "3,Rome,not a date\n",
    )
    err = rejected(store, path, table="customers")
    assert err.problems == [
        "customers.csv row 4, column signup_at: 'not a date' is not a date/time "
        "(expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)"
    ]


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        (["10.10", "3", "9999999999.99"], [10.1, 3.0, 9999999999.99]),  # cents as written
        (["10.10", "1.005", "123456789.125"], [10.1, 1.01, 123456789.13]),  # off the grid
        (["1e3", "2.5E1"], [1000.0, 25.0]),
    ],
)
def test_money_is_rounded_half_away_from_zero_as_written(store, written, stored):
    frame = pd.DataFrame(
        {
            "order_id": [str(i) for i in range(len(written))],
            "customer_id": ["5"] * len(written),
            "ordered_at": ["2024-01-01"] * len(written),
            "amount": written,
        }
    )
    pending = {"customers": pd.DataFrame({"customer_id": pd.array([5], dtype="Int64")})}
    typed = validate(frame, "orders", "o.csv", store, pending=pending)
    assert typed["amount"].tolist() == stored


def test_validate_returns_typed_frame_and_uses_pending_batch_keys(store):
    frame = pd.DataFrame(
        {
            "order_id": ["1", "2"],
            "customer_id": ["5", "6"],
            "ordered_at": ["2024-01-01", "2024-01-02 03:04:05"],
            "amount": ["1.005", "2.675"],
            "status": ["completed", None],
        }
    )
    pending = {"customers": pd.DataFrame({"customer_id": pd.array([5, 6], dtype="Int64")})}
    typed = validate(frame, "orders", "o.csv", store, pending=pending)
    assert typed["order_id"].dtype == "Int64"
    assert typed["amount"].tolist() == [1.01, 2.68]  # half away from zero, as written
    assert str(typed["ordered_at"].dtype) == "datetime64[us]"
    with pytest.raises(ImportValidationError) as info:
        validate(frame, "orders", "o.csv", store)
    assert "o.csv row 2, column customer_id: 5 is not a known customers.customer_id" in str(
        info.value
    )


# --- bad input: every one names the file, row and column, and changes nothing -----------


BAD_FILES = {
    "wrong_delimiter": (
        "customers",
        "customer_id;email;signup_at\n4;d@example.com;2024-01-01\n",
        [
            "customers.csv: looks like it is separated by ';', expected ','; "
            "save it as CSV (comma delimited) and try again"
        ],
    ),
    "missing_column": (
        "orders",
        "order_id,customer_id,ordered_at\n10,1,2024-01-01\n",
        [
            "orders.csv: missing required column 'amount'; "
            "required: order_id, customer_id, ordered_at, amount"
        ],
    ),
    "bad_date": (
        "orders",
        ORDERS_HEADER + "10,1,2024-01-01,1,1,web,\n11,1,2024-02-30,1,1,web,\n",
        [
            "orders.csv row 3, column ordered_at: '2024-02-30' is not a date/time "
            "(expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)"
        ],
    ),
    "duplicate_key_in_file": (
        "orders",
        ORDERS_HEADER + "10,1,2024-01-01,1,1,web,\n11,1,2024-01-01,1,1,web,\n"
        "10,2,2024-01-01,1,1,web,\n",
        ["orders.csv row 4, column order_id: duplicate key order_id = 10 (first in row 2)"],
    ),
    "duplicate_key_against_store": (
        "orders",
        ORDERS_HEADER + "10,1,2024-01-01,1,1,web,\n3,1,2024-01-01,1,1,web,\n",
        [
            "orders.csv row 3, column order_id: key order_id = 3 already exists in the store "
            "(import with mode 'upsert' to replace it)"
        ],
    ),
    "unknown_customer": (
        "orders",
        ORDERS_HEADER + "10,1,2024-01-01,1,1,web,\n11,99,2024-01-01,1,1,web,\n",
        [
            "orders.csv row 3, column customer_id: 99 is not a known customers.customer_id "
            "(import customers first, or in the same batch)"
        ],
    ),
    "negative_amount": (
        "orders",
        ORDERS_HEADER + "10,1,2024-01-01,-5.00,1,web,\n",
        ["orders.csv row 2, column amount: '-5.00' is below the minimum 0"],
    ),
    "empty_file": ("orders", "", ["orders.csv: has no data rows (the file is empty)"]),
    "header_only": ("orders", ORDERS_HEADER, ["orders.csv: has no data rows (only a header)"]),
    "wrong_encoding": (
        "customers",
        "customer_id,city,signup_at\n4,Montréal,2024-01-01\n".encode("latin-1"),
        [
            "orders.csv: is not UTF-8 text (byte 0xe9 at byte 35, line 2); it looks like "
            "another encoding (e.g. Latin-1 or Windows-1252). Save it as 'CSV UTF-8' and "
            "try again"
        ],
    ),
    "extra_columns": (
        "orders",
        "order_id,customer_id,ordered_at,amount,coupon,note\n10,1,2024-01-01,1,X,\n",
        [
            "orders.csv: unknown column(s) 'coupon', 'note'; allowed: order_id, customer_id, "
            "ordered_at, amount, items, channel, category, status, campaign_id "
            "(remove or rename them)"
        ],
    ),
    "another_tables_file": (
        "customers",
        "order_id,customer_id,ordered_at,amount\n10,9,2024-01-01,1\n",
        [
            "orders.csv: this looks like an orders file (order_id, ordered_at, amount), not "
            "customers; choose table orders",
            "orders.csv: missing required column 'signup_at'; required: customer_id, signup_at",
            "orders.csv: unknown column(s) 'order_id', 'ordered_at', 'amount'; allowed: "
            "customer_id, email, first_name, last_name, phone, country, region, city, "
            "birth_date, gender, signup_at, acquisition_channel, loyalty_tier, loyalty_points, "
            "consent_email, consent_sms, erased_at (remove or rename them)",
        ],
    ),
    "huge_field": (
        "orders",
        ORDERS_HEADER.replace("status", "category")
        + "10,1,2024-01-01,1,1,web,"
        + "x" * 10_001
        + "\n",
        [
            "orders.csv row 2, column category: huge field of 10,001 characters; "
            "the limit is 10,000 (often a missing closing quote)"
        ],
    ),
    "not_a_number": (
        "orders",
        ORDERS_HEADER + "10,1,2024-01-01,abc,1,web,\n11,1,2024-01-01,1,two,web,\n",
        [
            "orders.csv row 2, column amount: 'abc' is not a number",
            "orders.csv row 3, column items: 'two' is not a whole number",
        ],
    ),
    "bad_boolean": (
        "customers",
        "customer_id,signup_at,consent_email\n4,2024-01-01,maybe\n",
        [
            "customers.csv row 2, column consent_email: 'maybe' is not true/false "
            "(allowed: true, false, 1, 0, yes, no)"
        ],
    ),
    "value_not_allowed": (
        "orders",
        ORDERS_HEADER + "10,1,2024-01-01,1,1,phone,completed\n11,1,2024-01-01,1,1,web,lost\n",
        [
            "orders.csv row 2, column channel: 'phone' is not allowed; allowed: web, store, app",
            "orders.csv row 3, column status: 'lost' is not allowed; "
            "allowed: completed, refunded, cancelled",
        ],
    ),
    "required_value_missing": (
        "orders",
        ORDERS_HEADER + "10,1,,1,1,web,\n",
        ["orders.csv row 2, column ordered_at: value is missing; this column is required"],
    ),
    "wrong_number_of_fields": (
        "orders",
        ORDERS_HEADER + "10,1,2024-01-01,1,1,web,\n11,1,2024-01-01,1,000,1,web,\n",
        [
            "orders.csv row 3: has 8 field(s), expected 7 like the header (a value containing "
            "',' or a line break must be in double quotes)"
        ],
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_rejected_with_row_and_column_and_nothing_changes(loaded, tmp_path, case):
    table, content, expected = BAD_FILES[case]
    file_name = f"{table}.csv"
    (tmp_path / "upload").mkdir()
    path = write(tmp_path / "upload", file_name, content)
    err = rejected(loaded, path, table=table)
    expected = [e.replace("orders.csv", file_name) for e in expected]
    assert err.file_name == file_name
    assert err.problems == expected
    assert str(err).startswith(f"{file_name}: {len(expected)} problem(s); nothing was imported.")


def test_error_message_names_the_uploaded_file_not_the_temporary_path(loaded, tmp_path):
    path = write(tmp_path, "tmp123.csv", ORDERS_HEADER + "10,1,2024-01-01,abc,1,web,\n")
    err = rejected(loaded, path, file_name="my orders.csv")
    assert err.problems == ["my orders.csv row 2, column amount: 'abc' is not a number"]


def test_many_bad_rows_show_the_first_20_and_a_count(loaded, tmp_path):
    rows = "".join(f"{10 + i},1,2024-01-01,x{i},1,web,\n" for i in range(50))
    err = rejected(loaded, write(tmp_path, "orders.csv", ORDERS_HEADER + rows))
    assert len(err.problems) == 50
    lines = str(err).splitlines()
    assert lines[0] == "orders.csv: 50 problem(s); nothing was imported."
    assert lines[1] == "- orders.csv row 2, column amount: 'x0' is not a number"
    assert lines[20] == "- orders.csv row 21, column amount: 'x19' is not a number"
    assert lines[21] == "... and 30 more"
    assert len(lines) == 22


def test_more_bad_rows_than_listed_are_counted(loaded, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_ROWS_PER_CHECK", 5)
    rows = "".join(f"{10 + i},1,2024-01-01,-1,1,web,\n" for i in range(8))
    err = rejected(loaded, write(tmp_path, "orders.csv", ORDERS_HEADER + rows))
    assert len(err.problems) == 6
    assert err.problems[-1] == (
        "orders.csv column amount: 3 more rows where the value is below the minimum 0"
    )


def test_every_problem_in_a_file_is_reported_together(loaded, tmp_path):
    content = (
        "order_id,customer_id,ordered_at,amount,items,channel,status,foo\n"
        "1,1,2024-02-01,abc,1.5,post,completed,x\n"
        "10,99,yesterday,-5,2,,,\n"
        "10,1,,1e20,-1,web,cancelled,\n"
    )
    err = rejected(loaded, write(tmp_path, "orders.csv", content))
    assert err.problems == [
        "orders.csv: unknown column(s) 'foo'; allowed: order_id, customer_id, ordered_at, "
        "amount, items, channel, category, status, campaign_id (remove or rename them)",
        "orders.csv row 2, column order_id: key order_id = 1 already exists in the store "
        "(import with mode 'upsert' to replace it)",
        "orders.csv row 2, column amount: 'abc' is not a number",
        "orders.csv row 2, column items: '1.5' is not a whole number",
        "orders.csv row 2, column channel: 'post' is not allowed; allowed: web, store, app",
        "orders.csv row 3, column customer_id: 99 is not a known customers.customer_id "
        "(import customers first, or in the same batch)",
        "orders.csv row 3, column ordered_at: 'yesterday' is not a date/time "
        "(expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)",
        "orders.csv row 3, column amount: '-5' is below the minimum 0",
        "orders.csv row 4, column order_id: duplicate key order_id = 10 (first in row 3)",
        "orders.csv row 4, column ordered_at: value is missing; this column is required",
        "orders.csv row 4, column amount: '1e20' is too large (must be below 10,000,000,000)",
        "orders.csv row 4, column items: '-1' is below the minimum 0",
    ]


def test_failure_in_the_second_file_of_a_batch_leaves_the_first_table_unchanged(loaded, tmp_path):
    customers = write(
        tmp_path, "new_customers.csv", "customer_id,signup_at\n4,2024-01-04\n5,2024-01-05\n"
    )
    orders = write(
        tmp_path,
        "new_orders.csv",
        ORDERS_HEADER + "10,4,2024-02-01,1,1,web,\n11,5,2024-02-01,1,1,web,\n"
        "12,6,2024-02-01,1,1,web,\n",
    )
    before = snapshot(loaded)
    with pytest.raises(ImportValidationError) as info:
        import_files(loaded, [("customers", customers), ("orders", orders)])
    assert_same(before, snapshot(loaded))
    # customers 4 and 5 of the same batch resolve; 6 does not
    assert info.value.problems == [
        "new_orders.csv row 4, column customer_id: 6 is not a known customers.customer_id "
        "(import customers first, or in the same batch)"
    ]


def test_unknown_table_and_mode_name_the_allowed_ones(loaded, tmp_path):
    path = write(tmp_path, "orders.csv", ORDERS_CSV)
    before = snapshot(loaded)
    with pytest.raises(CRMError, match="cannot import into table 'app_users'; allowed: customers"):
        import_file(loaded, "app_users", path)
    with pytest.raises(CRMError, match="unknown import mode 'replace'; allowed: append, upsert"):
        import_file(loaded, "orders", path, mode="replace")
    assert_same(before, snapshot(loaded))


def test_unreadable_files(tmp_path):
    with pytest.raises(ImportValidationError, match="orders.xlsx: unsupported file type"):
        read_table_file(write(tmp_path, "orders.xlsx", b"PK\x03\x04"))
    with pytest.raises(ImportValidationError, match="o.parquet: cannot be read as Parquet"):
        read_table_file(write(tmp_path, "o.parquet", b"not parquet"))
    with pytest.raises(ImportValidationError, match="gone.csv: file not found"):
        read_table_file(tmp_path / "gone.csv")


def test_every_importable_table_accepts_its_required_columns(store, tmp_path):
    """Schema-driven: a one-row file with just the required columns loads into each table."""
    samples = {
        "BigInteger": "1",
        "Integer": "1",
        "Numeric": "1",
        "DateTime": "2024-01-01",
        "Date": "2024-01-01",
    }
    for name in schema.IMPORTABLE_TABLES:
        table = schema.table(name)
        required = [c for c in table.columns if not c.nullable]
        values = []
        for col in required:
            allowed = col.info.get("allowed")
            values.append(allowed[0] if allowed else samples.get(type(col.type).__name__, "x"))
        path = write(tmp_path, f"{name}.csv", ",".join(c.name for c in required) + "\n")
        path.write_text(path.read_text() + ",".join(values) + "\n")
        assert import_file(store, name, path).rows == 1

"""Column mappings: JSON, validation, suggestions, value transforms, line folding, identity,
batches, preview and saved mappings."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from crm_core import detect, identity, lines, mapping, presets
from crm_core.errors import CRMError, ImportValidationError
from crm_core.ingest import import_file
from crm_core.mapping import Mapping, MappingError
from tests.conftest import snapshot
from tests.core.test_presets import records, table

EXAMPLE = {
    "name": "my-shop",
    "table": "orders",
    "source": "shopify",
    "format": {"delimiter": ",", "decimal": ".", "date_order": "YMD", "timezone": "UTC"},
    "columns": {
        "order_id": "Name",
        "customer_email": "Email",
        "ordered_at": "Created at",
        "amount": "Total",
        "status": "Financial Status",
        "product_sku": "Lineitem sku",
        "product_name": "Lineitem name",
        "quantity": "Lineitem quantity",
        "unit_price": "Lineitem price",
    },
    "values": {"status": {"paid": "completed", "refunded": "refunded", "voided": "cancelled"}},
    "defaults": {"channel": "web"},
    "options": {"missing_customer": "error", "cancelled_prefix": None},
}
EXAMPLE_HEADER = [
    "Name",
    "Email",
    "Financial Status",
    "Total",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem sku",
]


# --- JSON and validation -------------------------------------------------------------------


def test_the_readme_example_round_trips_and_validates():
    m = Mapping.from_json(json.dumps(EXAMPLE))
    assert m.to_dict() == EXAMPLE
    assert Mapping.from_json(m.to_json()) == m
    assert m.line_items
    m.validate(EXAMPLE_HEADER)
    m.validate([h.upper() + " " for h in EXAMPLE_HEADER])  # headers match in any case


def problems_of(data: dict, header: list[str] | None = None) -> str:
    with pytest.raises(MappingError) as info:
        Mapping.from_dict(data).validate(header)
    return str(info.value)


def test_bad_mappings_say_what_to_fix():
    bad = json.loads(json.dumps(EXAMPLE))
    bad["columns"]["amout"] = "Total"
    bad["columns"]["ordered_at"] = "Created"
    del bad["columns"]["order_id"]
    bad["values"]["status"]["pending"] = "waiting"
    bad["defaults"]["channel"] = "phone"
    bad["options"]["missing_customer"] = "ignore"
    text = problems_of(bad, EXAMPLE_HEADER)
    assert "mapping 'my-shop': 6 problems" in text
    assert "unknown field 'amout' for table orders; allowed: order_id, customer_id" in text
    assert "field 'ordered_at': the file has no column 'Created'; its columns: 'Name'" in text
    assert "required field 'order_id' is not mapped to a column" in text
    assert (
        "\"values\" of 'status': 'pending' -> 'waiting' is not allowed; allowed: "
        "completed, refunded, cancelled" in text
    )
    assert "\"defaults\" of 'channel': 'phone' is not allowed; allowed: web, store, app" in text
    assert "option 'missing_customer': 'ignore' is not allowed; allowed: error, skip" in text

    assert "unknown table 'invoices'; allowed: customers" in problems_of(
        {"table": "invoices", "columns": {}}
    )
    assert "required field 'ordered_at' is not mapped" in problems_of(
        {"table": "orders", "columns": {"order_id": "id", "customer_id": "c", "amount": "a"}}
    )
    assert "required field 'customer_id' (or customer_email / customer_external_id)" in (
        problems_of(
            {"table": "orders", "columns": {"order_id": "id", "ordered_at": "d", "amount": "a"}}
        )
    )
    assert "'customer_external_id' needs the mapping's \"source\"" in problems_of(
        {
            "table": "orders",
            "columns": {
                "order_id": "i",
                "customer_external_id": "c",
                "ordered_at": "d",
                "amount": "a",
            },
        }
    )
    with pytest.raises(MappingError, match="is not valid JSON"):
        Mapping.from_json("{table: orders}")
    with pytest.raises(MappingError, match="unknown key\\(s\\) 'colums'"):
        Mapping.from_dict({"table": "orders", "colums": {}})
    assert issubclass(MappingError, CRMError)


def test_line_item_orders_need_no_total_and_customers_no_signup():
    Mapping.from_dict(
        {
            "table": "orders",
            "columns": {
                "order_id": "Invoice",
                "customer_email": "Email",
                "ordered_at": "Date",
                "quantity": "Qty",
                "unit_price": "Price",
            },
        }
    ).validate()
    Mapping.from_dict({"table": "customers", "columns": {"email": "Email"}}).validate()


# --- fields and suggestions ----------------------------------------------------------------


def test_fields_list_columns_then_virtual_ones():
    found = {f.name: f for f in mapping.fields("orders")}
    assert list(found)[:9] == [
        "order_id",
        "customer_id",
        "ordered_at",
        "amount",
        "items",
        "channel",
        "category",
        "status",
        "campaign_id",
    ]
    assert found["order_id"].required and found["ordered_at"].kind == "datetime"
    assert found["status"].kind == "enum"
    assert found["status"].allowed == ("completed", "refunded", "cancelled")
    assert found["customer_id"].instead == ("customer_email", "customer_external_id")
    assert found["customer_email"].virtual and found["quantity"].virtual
    assert "customer_email" not in {f.name for f in mapping.fields("customers")}
    assert {f.name for f in mapping.fields("events")} >= {"customer_email", "occurred_at"}
    assert "quantity" not in {f.name for f in mapping.fields("events")}


@pytest.mark.parametrize(
    ("column", "field"),
    [
        ("Created at", "ordered_at"),
        ("Order Date", "ordered_at"),
        ("InvoiceDate", "ordered_at"),
        ("Email", "customer_email"),
        ("E-mail Address", "customer_email"),
        ("Total", "amount"),
        ("Order Total", "amount"),
        ("order_total", "amount"),
        ("ORDER NUMBER", "order_id"),
        ("Qty", "quantity"),
    ],
)
def test_suggest_by_name_and_synonyms(column, field):
    assert mapping.suggest("orders", ["something else", column]) == {field: column}


def test_suggest_gives_each_column_to_one_field_and_prefers_closer_names():
    got = mapping.suggest("orders", ["Id", "Name", "Date", "Created at", "Customer ID"])
    assert got == {"order_id": "Name", "customer_id": "Customer ID", "ordered_at": "Created at"}
    with_source = mapping.suggest("orders", ["Name", "Customer ID"], source="shop")
    assert with_source == {"order_id": "Name", "customer_external_id": "Customer ID"}


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_suggest_on_each_preset_header_finds_the_preset(name):
    from tests.core import test_presets as tp

    header = {
        "shopify-orders": tp.SHOPIFY_ORDER_HEADER,
        "shopify-customers": tp.SHOPIFY_CUSTOMER_HEADER,
        "hubspot-contacts": tp.HUBSPOT_HEADER,
        "online-retail": tp.ONLINE_RETAIL_HEADER,
    }[name]
    preset = presets.get(name)
    preset.validate(header)
    assert mapping.suggest(preset.table, header, source=preset.source) == preset.columns
    assert mapping.guess_table(header) == preset.table


def test_guess_table():
    assert mapping.guess_table(["Ticket ID", "Opened at", "Priority", "Customer ID"]) == (
        "support_tickets"
    )
    assert mapping.guess_table(["foo", "bar"]) is None


# --- values --------------------------------------------------------------------------------


def test_apply_maps_values_enums_numbers_dates_and_defaults():
    m = Mapping.from_dict(
        {
            "table": "orders",
            "columns": {
                "order_id": "Order",
                "customer_id": "Customer",
                "ordered_at": "Date",
                "amount": "Total",
                "channel": "Channel",
                "status": "Status",
            },
            "values": {"status": {"PAID": "completed", "*": "refunded"}},
            "defaults": {"channel": "store"},
        }
    )
    batch = pa.table(
        {
            "Order": ["1", "2", "3", "4"],
            "Customer": ["7", "7", "8", "8"],
            "Date": ["05.03.2024 14:22", "06.03.2024", "31.12.2023 23:59", "bad"],
            "Total": ["1.234,50 €", "12,00", "-", "abc"],
            "Channel": ["Web", "STORE", None, "phone"],
            "Status": ["paid", "COMPLETED", "returned", None],
        }
    )
    fmt = detect.FileFormat(
        delimiter=";", decimal=",", thousands=".", date_order="DMY", timezone="Europe/Berlin"
    )
    frame = mapping.apply(m, batch, fmt)
    assert frame["channel"].tolist() == ["web", "store", "store", "phone"]  # kept: reported
    assert frame["status"].tolist()[:3] == ["completed", "refunded", "refunded"]
    assert pd.isna(frame["status"].iloc[3])
    assert frame["amount"].tolist()[:2] == ["1234.50", "12.00"]
    assert frame["amount"].iloc[3] == "abc"
    assert frame["ordered_at"].iloc[0] == "2024-03-05 13:22:00"  # Berlin -> UTC
    assert frame["ordered_at"].iloc[3] == "bad"


def test_a_semicolon_decimal_comma_file_imports_through_a_mapping(store, tmp_path):
    import_file(
        store,
        "customers",
        _write(tmp_path / "c.csv", "customer_id,email,signup_at\n7,a@x.com,2024-01-01\n"),
    )
    path = _write(
        tmp_path / "bestellungen.csv",
        "Bestellnr;Kunde;Datum;Summe;Kanal;Status\n"
        "1;7;05.03.2024 14:22;1.234,50;Web;COMPLETED\n"
        "2;7;13.03.2024;12,00;App;paid\n",
    )
    m = Mapping.from_dict(
        {
            "table": "orders",
            "columns": {
                "order_id": "Bestellnr",
                "customer_id": "Kunde",
                "ordered_at": "Datum",
                "amount": "Summe",
                "channel": "Kanal",
                "status": "Status",
            },
            "values": {"status": {"paid": "completed"}},
            "format": {"timezone": "Europe/Berlin"},
        }
    )
    report = mapping.import_mapped(store, path, m)
    assert report.rows == {"orders": 2}
    got = records(
        table(store, "orders", "order_id"),
        ["order_id", "customer_id", "ordered_at", "amount", "channel", "status"],
    )
    assert got == [
        (1, 7, datetime(2024, 3, 5, 13, 22), 1234.5, "web", "completed"),
        (2, 7, datetime(2024, 3, 13), 12.0, "app", "completed"),  # a date alone: that day
    ]


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# --- folding -------------------------------------------------------------------------------


def test_fold_sums_lines_takes_order_fields_from_the_first_row_and_the_largest_category():
    frame = pd.DataFrame(
        {
            "order_id": ["A", "A", "A", "B", None],
            "customer_email": ["x@y.z", None, None, None, "q@y.z"],
            "ordered_at": ["2024-01-01 10:00:00", None, "2024-01-09 00:00:00", None, None],
            "product_category": ["cups", "shirts", "cups", None, None],
            "quantity": ["1", "2", "-1", "3", "1"],
            "unit_price": ["5", "20", "5", "0", "1"],
        },
        dtype="string",
    )
    folded = lines.fold(frame, np.array([2, 3, 4, 5, 6]), missing_customer="skip")
    orders = folded.orders
    assert orders["order_id"].iloc[0] == "A"
    assert pd.isna(orders["order_id"].iloc[1])  # a row without an id: an order of its own
    assert len(orders) == 2 and folded.order_rows.tolist() == [2, 6]
    assert folded.skipped == {lines.SKIP_NO_CUSTOMER: 1}  # B has no customer
    first = orders.iloc[0]
    assert first["ordered_at"] == "2024-01-01 10:00:00"  # from the first row that has it
    assert first["customer_email"] == "x@y.z"
    assert first["amount"] == 50.0  # 5 + 40 + |-5|
    assert first["items"] == 4
    assert first["category"] == "shirts"  # the largest line's
    assert first["status"] == "refunded"  # a returned line
    assert folded.items["line_no"].tolist() == [1, 2, 3, 1]
    assert folded.items["quantity"].tolist() == [1.0, 2.0, 1.0, 1.0]
    assert folded.item_rows.tolist() == [2, 3, 4, 6]


def test_fold_keeps_unreadable_numbers_as_written():
    frame = pd.DataFrame(
        {"order_id": ["A", "A"], "quantity": ["1", "two"], "unit_price": ["5", "5"]},
        dtype="string",
    )
    folded = lines.fold(frame, np.array([2, 3]))
    assert folded.items["quantity"].tolist() == ["1", "two"]
    assert pd.isna(folded.orders["amount"].iloc[0])


def test_fold_a_million_lines_keeps_every_line_and_order():
    """Many lines, orders of four lines each: every line kept, one order per order id. (How
    long a fold takes is the benchmark's business, not a unit test's.)"""
    n = 1_000_000
    rng = np.random.default_rng(1)
    order = np.repeat(np.arange(n // 4), 4)

    def text(values: np.ndarray, mask: np.ndarray | None = None) -> pd.Series:
        arr = pa.array(values, mask=mask).cast(pa.string())
        return pd.Series(arr.to_pandas(types_mapper={pa.string(): mapping._STRING}.get))

    frame = pd.DataFrame(
        {
            "order_id": text(order),
            "customer_email": text(order % 100_000, mask=np.arange(n) % 4 != 0),
            "quantity": text(rng.integers(-1, 5, n)),
            "unit_price": text(np.round(rng.random(n) * 50, 2)),
        }
    )
    folded = lines.fold(frame, np.arange(n) + 2)
    assert len(folded.orders) == n // 4 and len(folded.items) == n


# --- identity ------------------------------------------------------------------------------


def test_external_ids_and_emails_are_normalised():
    got = identity.normalise_external_ids(pd.Series([" 17850.0", "'1001", "#1001", "", None]))
    assert got.tolist()[:3] == ["17850", "1001", "#1001"]
    assert got.isna().tolist()[3:] == [True, True]
    assert identity.normalise_emails(pd.Series([" Ann@Example.COM "])).tolist() == [
        "ann@example.com"
    ]


@pytest.mark.both_stores
def test_events_by_email_create_customers_at_their_first_event(store, tmp_path):
    path = _write(
        tmp_path / "events.csv",
        "id,email,when,type\n1,a@x.com,2024-02-02 10:00,visit\n2,A@X.com,2024-02-01 09:00,"
        "purchase\n3,b@x.com,2024-02-03,visit\n",
    )
    m = Mapping.from_dict(
        {
            "table": "events",
            "columns": {
                "event_id": "id",
                "customer_email": "email",
                "occurred_at": "when",
                "event_type": "type",
            },
        }
    )
    report = mapping.import_mapped(store, path, m)
    assert report.rows == {"customers": 2, "events": 3}
    assert records(
        table(store, "customers", "customer_id"), ["customer_id", "email", "signup_at"]
    ) == [
        (1, "a@x.com", datetime(2024, 2, 1, 9, 0)),
        (2, "b@x.com", datetime(2024, 2, 3)),
    ]
    assert records(table(store, "events", "event_id"), ["event_id", "customer_id"]) == [
        (1, 1),
        (2, 1),
        (3, 2),
    ]


# --- preview, errors and batches -----------------------------------------------------------


def test_preview_shows_rows_as_stored_and_problems_and_writes_nothing(store, tmp_path):
    path = _write(
        tmp_path / "orders.csv",
        "Invoice,Email,Date,Sku,Qty,Price\nA1,a@x.com,2024-01-01,S1,2,5\nA1,,,S2,1,oops\n"
        "A2,b@x.com,2024-01-02,S1,1,3\nA3,c@x.com,2024-01-03,S1,1,1\n",
    )
    m = Mapping.from_dict(
        {
            "table": "orders",
            "source": "mine",
            "columns": {
                "order_id": "Invoice",
                "customer_email": "Email",
                "ordered_at": "Date",
                "quantity": "Qty",
                "product_sku": "Sku",
                "unit_price": "Price",
            },
        }
    )
    before = snapshot(store)
    report = mapping.preview(store, path, m, rows=3)
    assert report.dry_run and report.batch_id is None
    assert any(
        "row 3, column Price (unit_price): 'oops' is not a number" in p for p in report.problems
    )
    assert report.preview["orders"]["order_id"].tolist() == [2]  # A1 has a bad line
    assert set(report.preview["customers"]["email"]) >= {"b@x.com"}
    after = snapshot(store)
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name])


def test_a_missing_customer_stops_the_import_by_default(store, tmp_path):
    path = _write(tmp_path / "o.csv", "Invoice,Email,Date,Qty,Price\nA1,,2024-01-01,2,5\n")
    m = Mapping.from_dict(
        {
            "table": "orders",
            "source": "mine",
            "columns": {
                "order_id": "Invoice",
                "customer_email": "Email",
                "ordered_at": "Date",
                "quantity": "Qty",
                "unit_price": "Price",
            },
        }
    )
    with pytest.raises(
        ImportValidationError, match=r"o.csv row 2, column Email \(customer_id\): value is missing"
    ):
        mapping.import_mapped(store, path, m)


def test_an_unknown_file_column_is_refused_before_reading(store, tmp_path):
    path = _write(tmp_path / "o.csv", "Invoice,Mail\nA1,a@x.com\n")
    with pytest.raises(MappingError, match="the file has no column 'Name'"):
        mapping.import_mapped(store, path, presets.get("shopify-orders"))


@pytest.mark.both_stores
def test_orders_spanning_batches_stay_together(store, tmp_path):
    rows = ["Invoice,Email,Date,Sku,Qty,Price"]
    for order in range(1, 8):
        for line in range(order % 3 + 1):
            rows.append(f"N{order},c{order % 2}@x.com,2024-01-0{order},S{line},{line + 1},2")
    path = _write(tmp_path / "o.csv", "\n".join(rows) + "\n")
    m = Mapping.from_dict(
        {
            "table": "orders",
            "source": "mine",
            "columns": {
                "order_id": "Invoice",
                "customer_email": "Email",
                "ordered_at": "Date",
                "quantity": "Qty",
                "product_sku": "Sku",
                "unit_price": "Price",
            },
        }
    )
    one = mapping.import_mapped(store, path, m, batch_rows=2)
    assert one.rows["orders"] == 7
    items = table(store, "order_items", ["order_id", "line_no"])
    assert items.groupby("order_id")["line_no"].max().tolist() == [2, 3, 1, 2, 3, 1, 2]
    orders = table(store, "orders", "order_id")
    assert orders["amount"].tolist() == [6.0, 12.0, 2.0, 6.0, 12.0, 2.0, 6.0]


# --- saved mappings ------------------------------------------------------------------------


@pytest.mark.both_stores
def test_save_load_names_delete_and_resolve(store, tmp_path):
    m = Mapping.from_dict(EXAMPLE)
    mapping.save(store, m, user="ana")
    assert mapping.names(store) == ["my-shop"]
    assert mapping.names(store, "customers") == []
    assert mapping.load(store, "my-shop") == m
    m.defaults = {"channel": "app"}
    mapping.save(store, m)  # replaces
    assert mapping.load(store, "my-shop").defaults == {"channel": "app"}
    assert mapping.resolve(store, "my-shop") == m
    assert mapping.resolve(store, "online-retail") == presets.get("online-retail")
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**EXAMPLE, "name": ""}), encoding="utf-8")
    assert mapping.resolve(store, str(path)).name == "mine"
    with pytest.raises(
        MappingError,
        match="'nope' is not a saved mapping, a preset or a .json "
        "file; saved: my-shop; presets: shopify-orders",
    ):
        mapping.resolve(store, "nope")
    with pytest.raises(MappingError, match="is a preset's; choose another name"):
        mapping.save(store, presets.get("shopify-orders"))
    with pytest.raises(MappingError, match="unknown field"):
        mapping.save(store, Mapping.from_dict({**EXAMPLE, "name": "x", "columns": {"a": "b"}}))
    assert mapping.delete(store, "my-shop") is True
    assert mapping.delete(store, "my-shop") is False
    with pytest.raises(MappingError, match="no saved mapping 'my-shop'; saved: none"):
        mapping.load(store, "my-shop")


def test_dates_that_fit_both_orders_need_the_mappings_date_order(store, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("id,joined\n1,03/04/2024\n2,05/06/2024\n", encoding="utf-8")
    spec = {"table": "customers", "columns": {"customer_id": "id", "signup_at": "joined"}}
    with pytest.raises(MappingError, match=r'"format": \{"date_order": "DMY"\}'):
        mapping.import_mapped(store, path, Mapping.from_dict(spec))
    assert store.row_counts(("customers",))["customers"] == 0
    mapping.import_mapped(store, path, Mapping.from_dict({**spec, "format": {"date_order": "DMY"}}))
    stored = store.read_df("select signup_at from customers order by customer_id")["signup_at"]
    assert stored.tolist() == [pd.Timestamp("2024-04-03"), pd.Timestamp("2024-06-05")]


def test_a_negative_order_total_is_a_refund_and_the_report_says_so(store, tmp_path):
    customers = tmp_path / "c.csv"
    customers.write_text("customer_id,signup_at\n1,2024-01-01\n", encoding="utf-8")
    import_file(store, "customers", customers)
    path = tmp_path / "o.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,amount,status\n"
        "1,1,2024-02-01,10.00,completed\n2,1,2024-02-02,-5.00,completed\n",
        encoding="utf-8",
    )
    report = mapping.import_mapped(store, path, Mapping(table="orders"))  # columns by name
    assert f"1 {mapping.NEGATIVE_TOTALS}" in report.notes
    stored = store.read_df("select amount, status from orders order by order_id")
    assert stored["amount"].astype(float).tolist() == [10.0, 5.0]
    assert stored["status"].tolist() == ["completed", "refunded"]


def test_the_source_is_one_name_whatever_its_case_and_spaces():
    assert Mapping(table="orders", source=" Shopify ").source == "shopify"
    assert Mapping.from_dict({"table": "orders", "source": "SHOPIFY"}).source == "shopify"
    assert Mapping(table="orders", source="  ").source is None

"""Each preset against a file written with the platform's exact header and its quirks:
the stored customers, orders, order lines, products and external ids, row by row."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from crm_core import mapping, presets
from crm_core.errors import ImportValidationError
from crm_core.ingest import import_file
from crm_core.store import utcnow

pytestmark = pytest.mark.both_stores


def header(text: str) -> list[str]:
    """A header line as its column names."""
    return text.split(",")


# The header of Shopify's order export, as Shopify writes it (see crm_core/presets.py).
SHOPIFY_ORDER_HEADER = header(
    "Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,Accepts Marketing,"
    "Currency,Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,Shipping Method,"
    "Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem compare at price,"
    "Lineitem sku,Lineitem requires shipping,Lineitem taxable,Lineitem fulfillment status,"
    "Billing Name,Billing Street,Billing Address1,Billing Address2,Billing Company,Billing City,"
    "Billing Zip,Billing Province,Billing Country,Billing Phone,Shipping Name,Shipping Street,"
    "Shipping Address1,Shipping Address2,Shipping Company,Shipping City,Shipping Zip,"
    "Shipping Province,Shipping Country,Shipping Phone,Notes,Note Attributes,Cancelled at,"
    "Payment Method,Payment Reference,Refunded Amount,Vendor,Outstanding Balance,Employee,"
    "Location,Device ID,Id,Tags,Risk Level,Source,Lineitem discount,Tax 1 Name,Tax 1 Value,"
    "Tax 2 Name,Tax 2 Value,Tax 3 Name,Tax 3 Value,Tax 4 Name,Tax 4 Value,Tax 5 Name,"
    "Tax 5 Value,Phone,Receipt Number,Duties,Billing Province Name,Shipping Province Name,"
    "Payment ID,Payment Terms Name,Next Payment Due At,Payment References"
)

SHOPIFY_CUSTOMER_HEADER = header(
    "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,"
    "Default Address Address1,Default Address Address2,Default Address City,"
    "Default Address Province Code,Default Address Country Code,Default Address Zip,"
    "Default Address Phone,Phone,Accepts SMS Marketing,Total Spent,Total Orders,Note,"
    "Tax Exempt,Tags"
)

HUBSPOT_HEADER = header(
    "Record ID,First Name,Last Name,Email,Phone Number,Contact owner,Lead Status,"
    "Lifecycle Stage,Create Date,Last Activity Date,City,State/Region,Country/Region"
)

ONLINE_RETAIL_HEADER = header(
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
)


def write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    """A CSV with exactly `header`; each row gives some columns by name (the rest empty)."""
    unknown = {k for row in rows for k in row} - set(header)
    assert not unknown, unknown
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def order_line(name: str, qty: str, item: str, price: str, sku: str, **order: str) -> dict:
    line = {
        "Name": name,
        "Lineitem quantity": qty,
        "Lineitem name": item,
        "Lineitem price": price,
        "Lineitem sku": sku,
        "Lineitem requires shipping": "true",
        "Lineitem taxable": "true",
        "Lineitem fulfillment status": "pending",
    }
    line.update(order)
    return line


def shopify_orders_rows() -> list[dict[str, str]]:
    """Four orders; the order's fields on its first line only, as Shopify writes them."""
    return [
        order_line(
            "#1001",
            "2",
            "Mug",
            "10.00",
            "MUG-1",
            **{
                "Email": " ANN@Example.com ",
                "Financial Status": "paid",
                "Paid at": "2024-03-05 14:22:35 -0500",
                "Fulfillment Status": "fulfilled",
                "Accepts Marketing": "yes",
                "Currency": "USD",
                "Subtotal": "30.00",
                "Shipping": "5.00",
                "Taxes": "0.00",
                "Total": "35.00",
                "Created at": "2024-03-05 14:22:31 -0500",
                "Billing Name": "Ann Archer",
                "Billing Country": "US",
                "Id": "5550001",
                "Source": "web",
                "Risk Level": "Low",
            },
        ),
        order_line("#1001", "1", "Tee", "10.00", "TEE-1"),
        order_line(
            "#1002",
            "1",
            "Tee",
            "12.50",
            "TEE-1",
            **{
                "Email": "cy@example.com",
                "Financial Status": "refunded",
                "Currency": "USD",
                "Subtotal": "12.50",
                "Total": "12.50",
                "Refunded Amount": "12.50",
                "Created at": "2024-03-06 10:00:00 +0100",
                "Billing Name": "Cy Cole",
                "Billing Country": "GB",
                "Id": "5550002",
                "Source": "pos",
            },
        ),
        order_line(
            "#1003",
            "1",
            "Cap",
            "20.00",
            "",
            **{
                "Email": "cy@example.com",
                "Financial Status": "voided",
                "Currency": "USD",
                "Total": "20.00",
                "Created at": "2024-03-04 08:00:00 +0000",
                "Cancelled at": "2024-03-04 12:00:00 +0000",
                "Billing Country": "GB",
                "Id": "5550003",
                "Source": "shopify_draft_order",
            },
        ),
        order_line(
            "#1004",
            "1",
            "Gift wrap",
            "0.00",
            "WRAP",
            **{
                "Email": "ann@example.com",
                "Financial Status": "paid",
                "Currency": "USD",
                "Total": "0.00",
                "Created at": "2024-03-08 09:30:00 -0800",
                "Billing Country": "US",
                "Id": "5550004",
                "Source": "iphone",
            },
        ),
    ]


EXISTING_CUSTOMERS = """customer_id,email,first_name,country,signup_at
1,ann@example.com,Annie,US,2023-01-01
5,zed@example.com,Zed,DE,2023-02-01
"""


@pytest.fixture
def shop(store, tmp_path):
    """The store with two customers already in it (ann@example.com is 1, the largest id 5)."""
    path = tmp_path / "customers.csv"
    path.write_text(EXISTING_CUSTOMERS, encoding="utf-8")
    import_file(store, "customers", path)
    return store


def table(store, name: str, key: str | list[str]) -> pd.DataFrame:
    frame = store.read_df(f"select * from {name}")  # noqa: S608 - fixed table names
    return frame.sort_values(key).reset_index(drop=True)


def records(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    out = []
    for row in frame[columns].itertuples(index=False):
        out.append(
            tuple(
                None
                if v is None or (not isinstance(v, str) and pd.isna(v))
                else v.to_pydatetime()
                if isinstance(v, pd.Timestamp)
                else round(float(v), 2)
                if isinstance(v, float)
                else int(v)
                if hasattr(v, "item") and not isinstance(v, bool)
                else v
                for v in row
            )
        )
    return out


def links(store) -> dict[tuple[str, str], int]:
    frame = store.read_df("select * from external_ids")
    return {(r.entity, r.external_id): int(r.internal_id) for r in frame.itertuples(index=False)}


# --- Shopify orders ------------------------------------------------------------------------

SHOPIFY_ORDERS = [
    # order_id, customer_id, ordered_at (UTC), amount, items, channel, status
    (1, 1, datetime(2024, 3, 5, 19, 22, 31), 35.0, 3, "web", "completed"),
    (2, 6, datetime(2024, 3, 6, 9, 0), 12.5, 1, "store", "refunded"),
    (3, 6, datetime(2024, 3, 4, 8, 0), 20.0, 1, "web", "cancelled"),
    (4, 1, datetime(2024, 3, 8, 17, 30), 0.0, 1, "app", "completed"),
]
SHOPIFY_ITEMS = [
    # order_id, line_no, product_id, quantity, unit_price, amount
    (1, 1, 1, 2, 10.0, 20.0),
    (1, 2, 2, 1, 10.0, 10.0),
    (2, 1, 2, 1, 12.5, 12.5),
    (3, 1, 3, 1, 20.0, 20.0),
    (4, 1, 4, 1, 0.0, 0.0),
]
SHOPIFY_PRODUCTS = [
    (1, "MUG-1", "Mug", 10.0),
    (2, "TEE-1", "Tee", 10.0),
    (3, None, "Cap", 20.0),  # no sku: matched by name
    (4, "WRAP", "Gift wrap", 0.0),  # a price of zero is kept
]
ORDER_COLUMNS = ["order_id", "customer_id", "ordered_at", "amount", "items", "channel", "status"]
ITEM_COLUMNS = ["order_id", "line_no", "product_id", "quantity", "unit_price", "amount"]


def check_shopify_orders(store) -> None:
    assert records(table(store, "orders", "order_id"), ORDER_COLUMNS) == SHOPIFY_ORDERS
    items = table(store, "order_items", ["order_id", "line_no"])
    assert records(items, ITEM_COLUMNS) == SHOPIFY_ITEMS
    products = table(store, "products", "product_id")
    assert records(products, ["product_id", "sku", "name", "price"]) == SHOPIFY_PRODUCTS
    customers = table(store, "customers", "customer_id")
    assert records(customers, ["customer_id", "email", "first_name", "country", "signup_at"]) == [
        (1, "ann@example.com", "Annie", "US", datetime(2023, 1, 1)),  # matched, untouched
        (5, "zed@example.com", "Zed", "DE", datetime(2023, 2, 1)),
        # created: max id + 1, signed up at the earliest of its orders in the file
        (6, "cy@example.com", None, "GB", datetime(2024, 3, 4, 8, 0)),
    ]
    assert links(store) == {
        ("orders", "#1001"): 1,
        ("orders", "#1002"): 2,
        ("orders", "#1003"): 3,
        ("orders", "#1004"): 4,
        ("products", "MUG-1"): 1,
        ("products", "TEE-1"): 2,
        ("products", "Cap"): 3,
        ("products", "WRAP"): 4,
    }


def test_shopify_orders_folds_lines_matches_and_creates_customers(shop, tmp_path):
    path = write_csv(tmp_path / "orders_export.csv", SHOPIFY_ORDER_HEADER, shopify_orders_rows())
    report = mapping.import_mapped(shop, path, presets.get("shopify-orders"))
    assert report.rows == {
        "customers": 1,
        "products": 4,
        "orders": 4,
        "order_items": 5,
        "external_ids": 8,
    }
    assert report.batch_id is not None
    check_shopify_orders(shop)


def test_shopify_orders_in_batches_of_two_rows_store_the_same(shop, tmp_path):
    """An order whose lines span a batch boundary stays one order; a customer whose earlier
    order comes in a later batch gets that order's time as signup."""
    path = write_csv(tmp_path / "orders_export.csv", SHOPIFY_ORDER_HEADER, shopify_orders_rows())
    report = mapping.import_mapped(shop, path, presets.get("shopify-orders"), batch_rows=1)
    assert report.rows["orders"] == 4
    check_shopify_orders(shop)


def test_shopify_orders_twice_in_upsert_mode_lands_on_the_same_rows(shop, tmp_path):
    path = write_csv(tmp_path / "orders_export.csv", SHOPIFY_ORDER_HEADER, shopify_orders_rows())
    mapping.import_mapped(shop, path, presets.get("shopify-orders"))
    report = mapping.import_mapped(shop, path, presets.get("shopify-orders"), mode="upsert")
    assert report.rows == {"orders": 4, "order_items": 5}  # no new customers, products, links
    check_shopify_orders(shop)


def test_shopify_orders_twice_in_append_mode_is_refused(shop, tmp_path):
    path = write_csv(tmp_path / "orders_export.csv", SHOPIFY_ORDER_HEADER, shopify_orders_rows())
    mapping.import_mapped(shop, path, presets.get("shopify-orders"))
    with pytest.raises(ImportValidationError, match="already exists in the store"):
        mapping.import_mapped(shop, path, presets.get("shopify-orders"))
    check_shopify_orders(shop)


def test_shopify_orders_without_email_stop_with_the_row(shop, tmp_path):
    rows = shopify_orders_rows()
    rows[2]["Email"] = ""
    path = write_csv(tmp_path / "orders_export.csv", SHOPIFY_ORDER_HEADER, rows)
    with pytest.raises(ImportValidationError) as info:
        mapping.import_mapped(shop, path, presets.get("shopify-orders"))
    assert "orders_export.csv row 4, column Email (customer_id): value is missing" in str(
        info.value
    )
    assert shop.row_counts()["orders"] == 0


# --- Shopify customers ---------------------------------------------------------------------


def test_shopify_customers_match_by_email_and_create_the_new(shop, tmp_path):
    rows = [
        {
            "Customer ID": "7001",
            "First Name": "Ann",
            "Last Name": "Archer",
            "Email": "Ann@Example.COM",
            "Accepts Email Marketing": "yes",
            "Default Address City": "Boston",
            "Default Address Province Code": "MA",
            "Default Address Country Code": "US",
            "Phone": "+15550100",
            "Accepts SMS Marketing": "no",
            "Total Spent": "120.00",
            "Total Orders": "3",
            "Tax Exempt": "no",
            "Tags": "vip",
        },
        {
            "Customer ID": "7002",
            "First Name": "Dan",
            "Last Name": "Diaz",
            "Email": "dan@example.com",
            "Accepts Email Marketing": "no",
            "Default Address Country Code": "CA",
            "Accepts SMS Marketing": "yes",
            "Total Spent": "0.00",
            "Total Orders": "0",
            "Tax Exempt": "no",
        },
    ]
    path = write_csv(tmp_path / "customers_export.csv", SHOPIFY_CUSTOMER_HEADER, rows)
    before = utcnow().replace(microsecond=0)
    report = mapping.import_mapped(shop, path, presets.get("shopify-customers"), mode="upsert")
    after = utcnow()
    assert report.rows == {"customers": 2, "external_ids": 2}
    customers = table(shop, "customers", "customer_id")
    got = records(
        customers,
        [
            "customer_id",
            "email",
            "first_name",
            "last_name",
            "city",
            "region",
            "country",
            "phone",
            "consent_email",
            "consent_sms",
        ],
    )
    assert got == [
        (1, "Ann@Example.COM", "Ann", "Archer", "Boston", "MA", "US", "+15550100", True, False),
        (5, "zed@example.com", "Zed", None, None, None, "DE", None, None, None),
        (6, "dan@example.com", "Dan", "Diaz", None, None, "CA", None, False, True),
    ]
    signups = dict(zip(customers["customer_id"], customers["signup_at"], strict=True))
    assert signups[1] == pd.Timestamp("2023-01-01")  # the export has no date: kept
    assert before <= signups[6].to_pydatetime() <= after  # new: the import time
    assert links(shop) == {("customers", "7001"): 1, ("customers", "7002"): 6}

    # The orders export (e-mails only) then lands on those customers.
    orders = [
        order_line(
            "#2001",
            "1",
            "Mug",
            "10.00",
            "MUG-1",
            **{
                "Email": "DAN@example.com",
                "Financial Status": "paid",
                "Total": "10.00",
                "Created at": "2024-05-01 10:00:00 +0000",
                "Source": "web",
            },
        )
    ]
    path = write_csv(tmp_path / "orders_export.csv", SHOPIFY_ORDER_HEADER, orders)
    report = mapping.import_mapped(shop, path, presets.get("shopify-orders"))
    assert "customers" not in report.rows
    assert records(table(shop, "orders", "order_id"), ["order_id", "customer_id"]) == [(1, 6)]


# --- HubSpot contacts ----------------------------------------------------------------------


HUBSPOT_ROWS = [
    {
        "Record ID": "101",
        "First Name": "Ann",
        "Last Name": "Archer",
        "Email": " ANN@EXAMPLE.COM ",
        "Phone Number": "+1 555 0100",
        "Contact owner": "owner@example.com",
        "Lead Status": "OPEN",
        "Lifecycle Stage": "customer",
        "Create Date": "2024-01-02 10:00",
        "Last Activity Date": "2024-03-01 09:00",
        "City": "Boston",
        "State/Region": "MA",
        "Country/Region": "United States",
    },
    {
        "Record ID": "102",
        "First Name": "Bea",
        "Last Name": "Baker",
        "Email": "bea@example.com",
        "Lead Status": "NEW",
        "Lifecycle Stage": "lead",
        "Create Date": "2024-02-03 11:30",
        "City": "London",
        "Country/Region": "United Kingdom",
    },
]


def test_hubspot_contacts_upsert_matches_by_email_and_creates_the_new(shop, tmp_path):
    path = write_csv(
        tmp_path / "hubspot-crm-exports-all-contacts.csv", HUBSPOT_HEADER, HUBSPOT_ROWS
    )
    report = mapping.import_mapped(shop, path, presets.get("hubspot-contacts"), mode="upsert")
    assert report.rows == {"customers": 2, "external_ids": 2}
    expected = [
        (
            1,
            "ANN@EXAMPLE.COM",
            "Ann",
            "Archer",
            "+1 555 0100",
            "Boston",
            "MA",
            "US",  # "United States" as its ISO code: the customer's "US" stays
            datetime(2024, 1, 2, 10, 0),
        ),
        (5, "zed@example.com", "Zed", None, None, None, None, "DE", datetime(2023, 2, 1)),
        (
            6,
            "bea@example.com",
            "Bea",
            "Baker",
            None,
            "London",
            None,
            "GB",
            datetime(2024, 2, 3, 11, 30),
        ),
    ]
    columns = [
        "customer_id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "city",
        "region",
        "country",
        "signup_at",
    ]
    assert records(table(shop, "customers", "customer_id"), columns) == expected
    assert links(shop) == {("customers", "101"): 1, ("customers", "102"): 6}

    again = mapping.import_mapped(shop, path, presets.get("hubspot-contacts"), mode="upsert")
    assert again.rows == {"customers": 2}  # the same rows, no new customers or links
    assert records(table(shop, "customers", "customer_id"), columns) == expected


def test_hubspot_contacts_in_append_mode_refuse_an_existing_customer(shop, tmp_path):
    path = write_csv(tmp_path / "contacts.csv", HUBSPOT_HEADER, HUBSPOT_ROWS)
    with pytest.raises(ImportValidationError) as info:
        mapping.import_mapped(shop, path, presets.get("hubspot-contacts"))
    assert "contacts.csv row 2, column Record ID (customer_id): key customer_id = 1 already" in str(
        info.value
    )
    assert shop.row_counts()["customers"] == 2


# --- Online Retail -------------------------------------------------------------------------

ONLINE_RETAIL_CSV = """\
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850.0,United Kingdom
536366,22633,HAND WARMER UNION JACK,6,12/1/2010 8:28,1.85,17850,United Kingdom
536370,22728,ALARM CLOCK BAKELIKE PINK,24,12/1/2010 8:45,3.75,12583,France
536370,POST,POSTAGE,3,12/1/2010 8:45,18,12583,France
536414,22139,,56,12/1/2010 11:52,0,,United Kingdom
C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom
C536383,35004C,SET OF 3 COLOURED  FLYING DUCKS,-1,12/1/2010 9:49,4.65,15311,United Kingdom
537000,22633,HAND WARMER UNION JACK,12,6/1/2011 10:00,0,12583,France
"""


def test_online_retail_cancellations_missing_customers_and_zero_prices(store, tmp_path):
    path = tmp_path / "Online Retail.csv"
    path.write_text(ONLINE_RETAIL_CSV, encoding="utf-8")
    report = mapping.import_mapped(store, path, presets.get("online-retail"))
    assert report.rows == {
        "customers": 4,
        "products": 7,
        "orders": 6,
        "order_items": 8,
        "external_ids": 17,
    }
    assert "1 row(s) left out on purpose: rows without a customer" in report.notes
    orders = table(store, "orders", "order_id")
    assert records(orders, ORDER_COLUMNS) == [
        (1, 1, datetime(2010, 12, 1, 8, 26), 35.64, 12, "web", "completed"),
        (2, 1, datetime(2010, 12, 1, 8, 28), 11.1, 6, "web", "completed"),
        (3, 2, datetime(2010, 12, 1, 8, 45), 144.0, 27, "web", "completed"),
        (4, 3, datetime(2010, 12, 1, 9, 41), 27.5, 1, "web", "cancelled"),  # C..., -1
        (5, 4, datetime(2010, 12, 1, 9, 49), 4.65, 1, "web", "cancelled"),
        (6, 2, datetime(2011, 6, 1, 9, 0), 0.0, 12, "web", "completed"),  # BST -> UTC
    ]
    assert records(table(store, "order_items", ["order_id", "line_no"]), ITEM_COLUMNS) == [
        (1, 1, 1, 6, 2.55, 15.3),
        (1, 2, 2, 6, 3.39, 20.34),
        (2, 1, 3, 6, 1.85, 11.1),
        (3, 1, 4, 24, 3.75, 90.0),
        (3, 2, 5, 3, 18.0, 54.0),
        (4, 1, 6, 1, 27.5, 27.5),
        (5, 1, 7, 1, 4.65, 4.65),
        (6, 1, 3, 12, 0.0, 0.0),
    ]
    products = table(store, "products", "product_id")
    assert records(products, ["product_id", "sku", "name"]) == [
        (1, "85123A", "WHITE HANGING HEART T-LIGHT HOLDER"),
        (2, "71053", "WHITE METAL LANTERN"),
        (3, "22633", "HAND WARMER UNION JACK"),
        (4, "22728", "ALARM CLOCK BAKELIKE PINK"),
        (5, "POST", "POSTAGE"),
        (6, "D", "Discount"),
        (7, "35004C", "SET OF 3 COLOURED  FLYING DUCKS"),
    ]
    customers = table(store, "customers", "customer_id")
    assert records(customers, ["customer_id", "email", "country", "signup_at"]) == [
        (1, None, "GB", datetime(2010, 12, 1, 8, 26)),  # "United Kingdom": ISO codes
        (2, None, "FR", datetime(2010, 12, 1, 8, 45)),
        (3, None, "GB", datetime(2010, 12, 1, 9, 41)),
        (4, None, "GB", datetime(2010, 12, 1, 9, 49)),
    ]
    found = links(store)
    assert {k: v for k, v in found.items() if k[0] == "customers"} == {
        ("customers", "17850"): 1,  # "17850.0" and "17850" are one customer
        ("customers", "12583"): 2,
        ("customers", "14527"): 3,
        ("customers", "15311"): 4,
    }
    assert found[("orders", "C536379")] == 4
    assert ("orders", "536414") not in found  # skipped: no customer


def test_undo_of_a_shopify_import_removes_what_it_created(shop, tmp_path):
    from crm_core import ingest
    from tests.conftest import snapshot

    if not hasattr(ingest, "undo"):
        pytest.skip("ingest.undo is not there yet")
    before = snapshot(shop)
    path = write_csv(tmp_path / "orders_export.csv", SHOPIFY_ORDER_HEADER, shopify_orders_rows())
    report = mapping.import_mapped(shop, path, presets.get("shopify-orders"))
    ingest.undo(shop, batch_id=report.batch_id, user="test")
    after = snapshot(shop)
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    assert links(shop) == {}


def test_shopify_partial_import_rejects_the_whole_order_of_a_bad_line(shop, tmp_path):
    """A bad line rejects its order, the order's other lines and its platform link; the
    messages name the file's columns."""
    rows = shopify_orders_rows()
    rows[1]["Lineitem quantity"] = "six"  # the second line of #1001
    path = write_csv(tmp_path / "orders_export.csv", SHOPIFY_ORDER_HEADER, rows)
    report = mapping.import_mapped(shop, path, presets.get("shopify-orders"), on_error="skip")
    assert report.rows["orders"] == 3 and report.rows["order_items"] == 3
    rejected = pd.read_csv(io.BytesIO(report.rejects_csv), dtype=str)
    assert rejected["row"].tolist() == ["2", "3"]
    assert "a line of this order (row 3) was rejected" in rejected["reason"].iloc[0]
    assert (
        "column Lineitem quantity (quantity): 'six' is not a whole number"
        in (rejected["reason"].iloc[1])
    )
    assert rejected["Name"].tolist() == ["#1001", "#1001"]
    found = links(shop)
    assert ("orders", "#1001") not in found and ("orders", "#1002") in found
    stored = set(shop.read_df("select order_id from orders")["order_id"])
    assert set(found[k] for k in found if k[0] == "orders") == stored
    lines = shop.read_df("select order_id from order_items")["order_id"]
    assert set(lines) <= stored


def test_a_mapped_import_names_the_files_columns_in_problems(shop, tmp_path):
    rows = shopify_orders_rows()
    rows[0]["Created at"] = "yesterday"
    path = write_csv(tmp_path / "orders_export.csv", SHOPIFY_ORDER_HEADER, rows)
    with pytest.raises(ImportValidationError) as info:
        mapping.import_mapped(shop, path, presets.get("shopify-orders"))
    assert "orders_export.csv row 2, column Created at (ordered_at): 'yesterday' is not" in str(
        info.value
    )


def test_shopify_upsert_of_an_order_with_fewer_lines_drops_the_others_and_undo_restores(
    shop, tmp_path
):
    from crm_core import ingest

    path = write_csv(tmp_path / "orders_export.csv", SHOPIFY_ORDER_HEADER, shopify_orders_rows())
    mapping.import_mapped(shop, path, presets.get("shopify-orders"))
    before = table(shop, "order_items", ["order_id", "line_no"])
    rows = [r for i, r in enumerate(shopify_orders_rows()) if i != 1]  # #1001 without the Tee
    rows[0]["Total"] = "25.00"
    newer = write_csv(tmp_path / "orders_export_2.csv", SHOPIFY_ORDER_HEADER, rows)
    report = mapping.import_mapped(shop, newer, presets.get("shopify-orders"), mode="upsert")
    items = table(shop, "order_items", ["order_id", "line_no"])
    assert records(items, ITEM_COLUMNS) == [SHOPIFY_ITEMS[0], *SHOPIFY_ITEMS[2:]]
    ingest.undo(shop, batch_id=report.batch_id, user="test")
    restored = table(shop, "order_items", ["order_id", "line_no"])
    pd.testing.assert_frame_equal(before, restored)
    check_shopify_orders(shop)

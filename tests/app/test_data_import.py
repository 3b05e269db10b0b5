"""AppTest: the Data import page's steps (upload, detect, map, values, preview, import),
its history with undo, against a private copy of the demo store."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from crm_core.store import get_store
from tests.app.conftest import errors, sign_in

SHOPIFY = (
    "Name,Email,Financial Status,Created at,Total,Source,Cancelled at,Lineitem quantity,"
    "Lineitem name,Lineitem price,Lineitem sku,Billing Country\n"
    "#9001,New.Buyer@Example.com,paid,2026-03-05 14:22:31 -0500,30.00,web,,2,Mug,10.00,"
    "MUG-1,DE\n"
    "#9001,,,,,,,1,Tea,10.00,TEA-1,\n"
    "#9002,new.buyer@example.com,refunded,2026-03-07 09:00:00 +0100,12.50,pos,,1,Tea,"
    "12.50,TEA-1,DE\n"
)


def _open_page(file_name: str, content: bytes) -> AppTest:
    at = sign_in("admin")
    at.switch_page("app_pages/data_import.py").run()
    assert not at.exception
    at.file_uploader[0].set_value((file_name, content, "text/csv")).run()
    assert not at.exception, at.exception
    return at


def _box(at: AppTest, label: str):
    return next(s for s in at.selectbox if s.label == label)


def _count(table: str, where: str = "") -> int:
    return int(get_store().scalar(f"SELECT count(*) FROM {table} {where}"))  # noqa: S608


def test_shopify_export_is_recognised_previewed_imported_and_undone(own_store):
    orders_before = _count("orders")
    at = _open_page("orders_export.csv", SHOPIFY.encode())
    assert _box(at, "Start from").value == "shopify-orders"
    assert _box(at, "Into table").value == "orders"
    assert _box(at, "customer_email").value == "Email"
    assert any("first 20 rows read without problems" in s.value for s in at.success), errors(at)
    assert "order_items" in [t.label for t in at.tabs]

    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception and not errors(at)
    done = next(s.value for s in at.success if s.value.startswith("Imported orders_export.csv"))
    assert "2 orders" in done and "3 order_items" in done
    assert _count("orders") == orders_before + 2
    stored = get_store().read_df(
        "SELECT o.amount, o.status, o.items, c.email FROM orders o "
        "JOIN customers c USING (customer_id) "
        "JOIN external_ids x ON x.internal_id = o.order_id AND x.entity = 'orders' "
        "WHERE x.source = 'shopify' ORDER BY x.external_id"
    )
    assert stored["amount"].astype(float).tolist() == [30.0, 12.5]
    assert stored["status"].tolist() == ["completed", "refunded"]
    assert stored["items"].tolist() == [3, 1]
    assert stored["email"].nunique() == 1  # one new customer, matched ignoring case

    history_undo = next(b for b in at.button if b.label == "Undo import")
    assert _box(at, "Import").value == int(
        get_store().scalar("SELECT max(batch_id) FROM import_batches")
    )
    next(c for c in at.checkbox if c.label == "Yes, undo this import").check()
    history_undo.click().run()
    assert any(s.value.startswith("Undid import") for s in at.success), errors(at)
    assert not at.exception and not errors(at)
    assert _count("orders") == orders_before
    assert _count("order_items", "WHERE order_id IN (SELECT internal_id FROM external_ids)") == 0


def test_semicolon_file_with_decimal_comma_and_day_first_dates(own_store):
    top = int(get_store().scalar("SELECT max(order_id) FROM orders"))
    customer = int(get_store().scalar("SELECT min(customer_id) FROM customers"))
    content = (
        "order_id;customer_id;ordered_at;amount;channel;status\n"
        f"{top + 1};{customer};25.03.2026 10:15;1.234,50;Web;COMPLETED\n"
        f"{top + 2};{customer};05.04.2026 08:00;12,00;STORE;Completed\n"
    ).encode("latin-1")
    at = _open_page("orders.csv", content)
    assert _box(at, "Start from").value == "Match columns by name"
    assert _box(at, "Separator").value == ";"
    assert _box(at, "Decimal mark").value == ","
    assert _box(at, "Date order").value == "DMY"
    assert any("without problems" in s.value for s in at.success), errors(at)
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception and not errors(at)
    stored = get_store().read_df(
        f"SELECT amount, channel, status, ordered_at FROM orders WHERE order_id > {top} "  # noqa: S608
        "ORDER BY order_id"
    )
    assert stored["amount"].astype(float).tolist() == [1234.5, 12.0]
    assert stored["channel"].tolist() == ["web", "store"]
    assert stored["status"].tolist() == ["completed", "completed"]
    assert stored["ordered_at"].tolist() == [
        pd.Timestamp("2026-03-25 10:15"),
        pd.Timestamp("2026-04-05 08:00"),
    ]


def test_ambiguous_dates_are_asked_and_bad_rows_listed_by_row_and_column(own_store):
    customer = int(get_store().scalar("SELECT min(customer_id) FROM customers"))
    content = (
        "response_id,customer_id,answered_at,survey,score\n"
        f"900001,{customer},03/04/2026,nps,9\n"
        f"900002,{customer},05/06/2026,nps,eleven\n"
    ).encode()
    at = _open_page("answers.csv", content)
    assert any("day-first or month-first" in w.value for w in at.warning)
    assert not [b for b in at.button if b.label == "Import"]  # not before the order is chosen
    _box(at, "Date order").select("MDY").run()
    assert any("row 3, column score" in c.value for c in at.code), [c.value for c in at.code]
    before = _count("survey_responses")
    next(b for b in at.button if b.label == "Import").click().run()
    assert any("nothing was imported" in e.value for e in at.error)
    assert _count("survey_responses") == before
    _box(at, "Date order").select("DMY").run()
    next(b for b in at.button if b.label == "Check the whole file").click().run()
    assert any("row 3, column score" in c.value for c in at.code)


def test_a_file_of_another_table_says_what_it_looks_like(own_store):
    at = _open_page("shop.csv", SHOPIFY.encode())
    _box(at, "Into table").select("customers").run()
    assert not at.exception
    assert any("looks like it belongs in **orders**" in w.value for w in at.warning), at.warning
    assert any("Not imported (no field chosen)" in c.value for c in at.caption)


def test_rows_that_look_wrong_load_with_a_warning(own_store):
    top = int(get_store().scalar("SELECT max(customer_id) FROM customers"))
    content = (
        "customer_id,email,phone,country,signup_at\n"
        f"{top + 1},ok@example.com,+1 212 555 0147,US,2026-01-02\n"
        f"{top + 2},bob@,12,XX,2026-01-03\n"
    ).encode()
    at = _open_page("people.csv", content)
    preview = " ".join(w.value for w in at.warning)
    assert "column phone" in preview and "row 3 ('12')" in preview, preview
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception and not errors(at)
    assert any(s.value.startswith("Imported people.csv") for s in at.success)
    after = " ".join(w.value for w in at.warning)
    assert "column email" in after and "column country" in after and "row 3 ('XX')" in after
    assert _count("customers", f"WHERE customer_id > {top}") == 2

"""ingest.load: batches, partial mode, dry run, import history and undo, row by row."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from crm_core import ingest, schema
from crm_core.errors import CRMError, ImportValidationError
from crm_core.ingest import Chunk, file_chunks, history, import_file, load, undo

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL

CUSTOMERS = (
    "customer_id,email,country,signup_at,loyalty_points\n"
    "1,ann@example.com,US,2024-01-01,10\n"
    "2,bob@example.com,GB,2024-01-02 09:30:00,\n"
    "3,cy@example.com,GB,2024-01-03,0\n"
)
ORDERS_HEADER = "order_id,customer_id,ordered_at,amount,status\n"
ORDERS = ORDERS_HEADER + (
    "1,1,2024-02-01 10:00:00,19.99,completed\n2,1,2024-02-05,5.50,refunded\n3,2,2024-02-06,100,\n"
)


def write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content, encoding="utf-8")
    return path


def everything(store) -> dict[str, pd.DataFrame]:
    """Every table an import writes and every shadow table, sorted, for exact comparisons."""
    frames = {}
    for name in schema.LOADED_TABLES:
        for table_name in (name, schema.replaced_table_name(name)):
            table = schema.table(table_name)
            frame = store.read_df(table.select().order_by(*table.columns))
            frames[table_name] = frame.reset_index(drop=True)
    return frames


def assert_same(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    assert before.keys() == after.keys()
    for name in before:
        pdt.assert_frame_equal(before[name], after[name], obj=name, check_dtype=False)


def load_file(store, path: Path, table: str, batch_rows: int | None = None, **kwargs):
    return load(
        store,
        path.name,
        lambda conn: file_chunks(path, table, batch_rows=batch_rows),
        **kwargs,
    )


@pytest.fixture
def loaded(store, tmp_path):
    """Three customers (import 1) and three orders (import 2)."""
    import_file(store, "customers", write(tmp_path, "customers.csv", CUSTOMERS))
    import_file(store, "orders", write(tmp_path, "orders.csv", ORDERS))
    return store


# --- history ---------------------------------------------------------------------------


def test_every_import_is_a_batch_in_the_history(loaded, tmp_path):
    path = write(tmp_path, "more.csv", ORDERS_HEADER + "4,3,2024-03-01,7,completed\n")
    report = load_file(
        loaded, path, "orders", user="ann", mapping_json='{"name": "x"}', sha256="abc"
    )
    assert report.batch_id == 3 and report.rows == {"orders": 1}
    got = history(loaded)
    assert got["batch_id"].tolist() == [3, 2, 1]
    newest = got.iloc[0]
    assert newest["imported_by"] == "ann"
    assert newest["file_name"] == "more.csv"
    assert newest["file_sha256"] == "abc"
    assert newest["mapping"] == '{"name": "x"}'
    assert (newest["mode"], newest["on_error"]) == ("append", "stop")
    assert json.loads(newest["rows"]) == {"orders": 1}
    assert newest["rejected_rows"] == 0
    assert pd.isna(newest["undone_at"])
    # import_file records the file's checksum
    assert got.iloc[2]["file_sha256"] == ingest.file_sha256(tmp_path / "customers.csv")
    stored = loaded.read_df("select order_id, import_batch_id from orders order by 1")
    assert stored["import_batch_id"].tolist() == [2, 2, 2, 3]


def test_bookkeeping_columns_are_not_import_columns(loaded, tmp_path):
    assert "import_batch_id" not in [d["column"] for d in schema.column_docs("orders")]
    # a file that carries the column (an export of the table) loads; the column is ignored
    path = write(
        tmp_path,
        "with_batch.csv",
        "order_id,customer_id,ordered_at,amount,import_batch_id\n9,1,2024-03-01,1,77\n",
    )
    import_file(loaded, "orders", path)
    stored = loaded.read_df("select import_batch_id from orders where order_id = 9")
    assert stored["import_batch_id"].tolist() == [3]


# --- undo ------------------------------------------------------------------------------


def test_undo_of_an_append_removes_exactly_its_rows(loaded, tmp_path):
    before = everything(loaded)
    path = write(tmp_path, "new.csv", "customer_id,signup_at\n4,2024-03-01\n5,2024-03-02\n")
    import_file(loaded, "customers", path)
    result = undo(loaded, table="customers", user="ann")
    assert (result.batch_id, result.file_name) == (3, "new.csv")
    assert result.removed == {"customers": 2} and result.restored == {"customers": 0}
    assert_same(before, everything(loaded))
    batch = history(loaded).iloc[0]
    assert batch["undone_by"] == "ann" and not pd.isna(batch["undone_at"])


def test_undo_of_an_upsert_restores_the_replaced_rows_exactly(loaded, tmp_path):
    before = everything(loaded)
    path = write(
        tmp_path,
        "fix.csv",
        "customer_id,email,signup_at\n2,BOB@example.com,2023-12-31\n7,new@example.com,2024-03-01\n",
    )
    import_file(loaded, "customers", path, mode="upsert")
    changed = loaded.read_df("select * from customers where customer_id = 2")
    assert changed["email"].tolist() == ["BOB@example.com"]
    assert changed["country"].tolist() == ["GB"]  # a column the file lacks is kept
    assert changed["import_batch_id"].tolist() == [3]
    replaced = loaded.read_df("select * from import_replaced_customers")
    assert replaced[["batch_id", "customer_id", "email", "import_batch_id"]].values.tolist() == [
        [3, 2, "bob@example.com", 1]
    ]
    result = undo(loaded)
    assert result.removed == {"customers": 1} and result.restored == {"customers": 1}
    assert str(result) == "Undid import 3 (fix.csv): removed customers 1; restored customers 1."
    assert_same(before, everything(loaded))  # every column of every row, the shadow emptied


def test_undo_refuses_while_later_rows_depend_on_the_batch(loaded, tmp_path):
    before = everything(loaded)
    # orders of a later import (of another table) refer to customers import 1 added
    with pytest.raises(CRMError) as info:
        undo(loaded, table="customers")
    assert str(info.value) == (
        "Cannot undo import 1 (customers.csv): 3 orders row(s) written since refer to "
        "customers it added (e.g. customer_id 1); undo or delete them first"
    )
    assert_same(before, everything(loaded))

    # a later batch that wrote the same table must be undone first
    more = write(tmp_path, "more.csv", ORDERS_HEADER + "4,3,2024-03-01,7,completed\n")
    import_file(loaded, "orders", more)
    with pytest.raises(CRMError) as info:
        undo(loaded, batch_id=2)
    assert str(info.value) == (
        "Cannot undo import 2 (orders.csv): import 3 (more.csv) came later and also wrote "
        "orders; undo import 3 first"
    )
    assert [undo(loaded).batch_id, undo(loaded).batch_id, undo(loaded).batch_id] == [3, 2, 1]
    assert loaded.row_counts(("customers", "orders")) == {"customers": 0, "orders": 0}
    with pytest.raises(CRMError, match="Nothing to undo"):
        undo(loaded)
    with pytest.raises(CRMError, match="Cannot undo import 2: it was undone already"):
        undo(loaded, batch_id=2)
    with pytest.raises(CRMError, match="Cannot undo import 9: it does not exist"):
        undo(loaded, batch_id=9)


def test_undo_of_a_replaced_row_keeps_rows_that_refer_to_it(loaded, tmp_path):
    """Orders refer to customer 1; an upsert of customer 1 can be undone (it comes back)."""
    path = write(tmp_path, "c.csv", "customer_id,signup_at\n1,2020-01-01\n")
    import_file(loaded, "customers", path, mode="upsert")
    import_file(loaded, "orders", write(tmp_path, "o.csv", ORDERS_HEADER + "8,1,2024-05-01,1,\n"))
    undo(loaded, table="orders")
    before = loaded.read_df("select * from customers order by customer_id")
    undo(loaded, table="customers")
    after = loaded.read_df("select * from customers order by customer_id")
    assert after["signup_at"].iloc[0] == pd.Timestamp("2024-01-01")
    assert before["signup_at"].iloc[0] == pd.Timestamp("2020-01-01")


# --- dry run ---------------------------------------------------------------------------


def test_dry_run_changes_nothing_and_reports_what_would_happen(loaded, tmp_path):
    before = everything(loaded)
    batches = history(loaded)
    good = write(tmp_path, "good.csv", ORDERS_HEADER + "4,3,2024-03-01,7,completed\n")
    report = load_file(loaded, good, "orders", dry_run=True, keep_rows=5)
    assert (report.rows, report.problems, report.batch_id) == ({"orders": 1}, [], None)
    assert report.preview["orders"]["amount"].tolist() == [7.0]
    bad = write(tmp_path, "bad.csv", ORDERS_HEADER + "4,3,2024-03-01,x,completed\n")
    report = load_file(loaded, bad, "orders", dry_run=True)
    assert report.problems == ["bad.csv row 2, column amount: 'x' is not a number"]
    assert_same(before, everything(loaded))
    pdt.assert_frame_equal(batches, history(loaded))


# --- partial mode ----------------------------------------------------------------------

PARTIAL = ORDERS_HEADER + (
    "10,1,2024-03-01,1.00,completed\n"
    "11,1,2024-03-01,abc,completed\n"  # not a number
    "12,99,2024-03-01,2.00,lost\n"  # unknown customer, status not allowed
    "13,2,2024-03-01,3.00,\n"
    "10,3,2024-03-01,4.00,\n"  # duplicate key
    "3,3,2024-03-01,5.00,\n"  # already in the store
)


def test_partial_mode_loads_the_valid_rows_and_lists_the_rejected_ones(loaded, tmp_path):
    before = loaded.read_df("select * from orders order by order_id")
    path = write(tmp_path, "partial.csv", PARTIAL)
    report = load_file(loaded, path, "orders", on_error="skip")
    assert report.rows == {"orders": 2} and report.rejected == 4
    after = loaded.read_df("select * from orders order by order_id")
    added = after[~after["order_id"].isin(before["order_id"])].reset_index(drop=True)
    assert added["order_id"].tolist() == [10, 13]
    assert added["amount"].astype(float).tolist() == [1.0, 3.0]
    pdt.assert_frame_equal(  # the rows that were there are untouched
        after[after["order_id"].isin(before["order_id"])].reset_index(drop=True), before
    )
    rejects = pd.read_csv(io.BytesIO(report.rejects_csv), dtype=str, keep_default_na=False)
    assert rejects.columns.tolist() == ["row", "reason", *ORDERS_HEADER.strip().split(",")]
    assert rejects["row"].tolist() == ["3", "4", "6", "7"]
    assert rejects["reason"].tolist() == [
        "column amount: 'abc' is not a number",
        "column customer_id: 99 is not a known customers.customer_id (import customers "
        "first, or in the same batch); column status: 'lost' is not allowed; allowed: "
        "completed, refunded, cancelled",
        "column order_id: duplicate key order_id = 10 (first in row 2)",
        "column order_id: key order_id = 3 already exists in the store (import with mode "
        "'upsert' to replace it)",
    ]
    assert rejects["amount"].tolist() == ["abc", "2.00", "4.00", "5.00"]  # as in the file
    assert len(report.problems) == 5
    batch = history(loaded).iloc[0]
    assert batch["rejected_rows"] == 4 and batch["on_error"] == "skip"
    # undo takes exactly the rows it loaded away
    undo(loaded)
    pdt.assert_frame_equal(loaded.read_df("select * from orders order by order_id"), before)


def test_partial_mode_gives_the_same_result_in_batches(loaded, tmp_path):
    path = write(tmp_path, "partial.csv", PARTIAL)
    whole = load_file(loaded, path, "orders", on_error="skip", dry_run=True)
    split = load_file(loaded, path, "orders", on_error="skip", dry_run=True, batch_rows=2)
    assert (split.rows, split.rejected, split.problems) == (
        whole.rows,
        whole.rejected,
        whole.problems,
    )
    assert split.rejects_csv == whole.rejects_csv


def test_rows_referring_to_a_rejected_row_are_rejected_too(store):
    """A chunk holding customers and their orders (as a mapping makes): an order whose
    customer was rejected is rejected with a reason that says so, in a later chunk too."""
    raw = pd.DataFrame(
        {"email": ["a@x", "b@x", "c@x"], "when": ["2024-01-01", "soon", "2024-01-03"]}
    )

    def chunks(conn):
        yield Chunk(
            raw=ingest.pa.Table.from_pandas(raw),
            first_row=2,
            frames={
                "orders": pd.DataFrame(
                    {
                        "order_id": ["1", "2", "3"],
                        "customer_id": ["1", "2", "3"],
                        "ordered_at": ["2024-01-01", "2024-01-02", "2024-01-03"],
                        "amount": ["1", "2", "3"],
                    }
                ),
                "customers": pd.DataFrame(
                    {"customer_id": ["1", "2", "3"], "signup_at": raw["when"]}
                ),
            },
            rows={"orders": np.array([2, 3, 4]), "customers": np.array([2, 3, 4])},
        )
        yield Chunk(
            raw=None,
            first_row=5,
            frames={
                "orders": pd.DataFrame(
                    {
                        "order_id": ["4"],
                        "customer_id": ["2"],
                        "ordered_at": ["2024-01-04"],
                        "amount": ["4"],
                    }
                )
            },
            rows={"orders": np.array([5])},
            skipped={"no customer": 2},
        )

    report = load(store, "shop.csv", chunks, on_error="skip")
    assert report.rows == {"customers": 2, "orders": 2}
    assert report.rejected == 2
    assert report.notes[0] == "2 row(s) left out on purpose: no customer"
    assert store.read_df("select order_id from orders order by 1")["order_id"].tolist() == [1, 3]
    rejects = pd.read_csv(io.BytesIO(report.rejects_csv), dtype=str, keep_default_na=False)
    assert rejects.values.tolist() == [
        [
            "3",
            "customers column signup_at: 'soon' is not a date/time (expected YYYY-MM-DD or "
            "YYYY-MM-DD HH:MM:SS); orders column customer_id: its customer (row 3) was rejected",
            "b@x",
            "soon",
        ],
        ["5", "column customer_id: its customer (row 3) was rejected", "", ""],
    ]


# --- batches ---------------------------------------------------------------------------


def test_batches_give_the_same_store_as_one_batch(store, tmp_path):
    customers = write(tmp_path, "customers.csv", CUSTOMERS)
    orders = write(
        tmp_path,
        "orders.csv",
        ORDERS_HEADER
        + "".join(f"{i},{1 + i % 3},2024-02-{1 + i % 28:02d},{i}.5,completed\n" for i in range(25)),
    )
    stored = []
    for batch_rows in (None, 4, 1):
        load_file(store, customers, "customers", batch_rows=batch_rows)
        load_file(store, orders, "orders", batch_rows=batch_rows)
        tables = everything(store)
        stored.append({n: f.drop(columns=schema.BATCH_COLUMN) for n, f in tables.items()})
        undo(store)
        undo(store)
    assert len(stored[0]["orders"]) == 25
    assert_same(stored[0], stored[1])
    assert_same(stored[0], stored[2])


def test_stop_mode_lists_every_problem_of_every_batch(loaded, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_ROWS_PER_CHECK", 3)
    rows = "".join(f"{10 + i},1,2024-01-01,x{i},\n" for i in range(6))
    rows += "10,1,2024-01-01,1,\n12,1,2024-01-01,1,\n" + "20,99,2024-01-01,1,\n"
    path = write(tmp_path, "orders.csv", ORDERS_HEADER + rows)
    before = everything(loaded)
    errors = []
    for batch_rows in (None, 1, 2, 4):
        with pytest.raises(ImportValidationError) as info:
            load_file(loaded, path, "orders", batch_rows=batch_rows)
        errors.append(info.value.problems)
    assert errors[0] == [
        "orders.csv row 2, column amount: 'x0' is not a number",
        "orders.csv row 3, column amount: 'x1' is not a number",
        "orders.csv row 4, column amount: 'x2' is not a number",
        "orders.csv row 8, column order_id: duplicate key order_id = 10 (first in row 2)",
        "orders.csv row 9, column order_id: duplicate key order_id = 12 (first in row 4)",
        "orders.csv row 10, column customer_id: 99 is not a known customers.customer_id "
        "(import customers first, or in the same batch)",
        "orders.csv column amount: 3 more rows where the value is not a number",
    ]
    assert errors[1] == errors[0] and errors[2] == errors[0] and errors[3] == errors[0]
    assert_same(before, everything(loaded))


def test_undo_of_a_mapped_import_takes_back_every_table_and_link(store):
    """A chunk as a mapping makes it (customers, orders and external ids); a later import
    that re-links an id (upsert of the link) and its undo, then the first one's undo."""

    def chunk(customer: str, order: str, link_to: str) -> Chunk:
        return Chunk(
            raw=None,
            first_row=2,
            frames={
                "external_ids": pd.DataFrame(
                    {
                        "source": ["shop"],
                        "entity": ["customers"],
                        "external_id": ["a@x"],
                        "internal_id": [link_to],
                    }
                ),
                "orders": pd.DataFrame(
                    {
                        "order_id": [order],
                        "customer_id": [customer],
                        "ordered_at": ["2024-01-01"],
                        "amount": ["1"],
                    }
                ),
                "customers": pd.DataFrame({"customer_id": [customer], "signup_at": ["2024-01-01"]}),
            },
            rows={"external_ids": np.array([2]), "orders": np.array([2]), "customers": [2]},
        )

    empty = everything(store)
    first = load(store, "shop.csv", lambda conn: iter([chunk("1", "1", "1")]))
    assert first.rows == {"customers": 1, "orders": 1, "external_ids": 1}
    after_first = everything(store)
    second = load(store, "shop2.csv", lambda conn: iter([chunk("2", "2", "2")]))
    links = store.read_df("select external_id, internal_id, import_batch_id from external_ids")
    assert links.values.tolist() == [["a@x", 2, second.batch_id]]
    assert str(undo(store)) == (
        "Undid import 2 (shop2.csv): removed customers 1, orders 1; restored external_ids 1."
    )
    assert_same(after_first, everything(store))
    undo(store, table="external_ids")
    assert_same(empty, everything(store))


@pytest.mark.parametrize("big", [False, True], ids=["packed", "too-large-to-pack"])
def test_two_column_keys_stay_unique_across_batches(loaded, tmp_path, big):
    import_file(loaded, "products", write(tmp_path, "p.csv", "product_id,name\n1,Tea\n"))
    line = 2**45 if big else 2
    content = "order_id,line_no,product_id,quantity\n" + (
        f"1,1,1,1\n1,{line},1,1\n2,1,1,1\n1,{line},1,2\n2,1,1,1\n9,1,1,1\n-1,1,1,1\n"
    )
    path = write(tmp_path, "items.csv", content)
    errors = []
    for batch_rows in (None, 1, 2, 3):
        with pytest.raises(ImportValidationError) as info:
            load_file(loaded, path, "order_items", batch_rows=batch_rows)
        errors.append(info.value.problems)
    assert errors[0] == [
        f"items.csv row 5, column order_id: duplicate key order_id, line_no = 1, {line} "
        "(first in row 3)",
        "items.csv row 6, column order_id: duplicate key order_id, line_no = 2, 1 (first in row 4)",
        "items.csv row 7, column order_id: 9 is not a known orders.order_id (import orders "
        "first, or in the same batch)",
        "items.csv row 8, column order_id: -1 is not a known orders.order_id (import orders "
        "first, or in the same batch)",
    ]
    assert errors[1] == errors[0] and errors[2] == errors[0] and errors[3] == errors[0]

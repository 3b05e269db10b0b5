"""Merging duplicate customers: re-pointed rows, consent, collisions, refusals, and an
unmerge that leaves every table exactly as before (DuckDB and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pyarrow.csv as pa_csv
import pytest
import sqlalchemy as sa

from crm_core import auth, export, features, merge, schema, segments
from crm_core.cli import main
from crm_core.errors import CRMError
from crm_core.store import Store, close_all
from tests.core import tiny

HISTORY = {"merges", "merge_rows", "audit_log", "consent_changes"}


def snapshot_all(store: Store) -> dict[str, pd.DataFrame]:
    """Every table of the store but the merge history, sorted by key (or every column)."""
    frames = {}
    present = store.table_names()
    for table in schema.metadata.sorted_tables:
        if table.name not in present or table.name in HISTORY:
            continue
        order = [c.name for c in table.primary_key.columns] or [c.name for c in table.columns]
        frame = store.read_df(sa.select(table).order_by(*[table.c[n] for n in order]))
        if table.name == "schema_meta":  # the audit log's head moves on with the log
            frame = frame[frame["key"] != "audit_head"]
        frames[table.name] = frame.reset_index(drop=True)
    return frames


def assert_same(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    assert before.keys() == after.keys()
    for name, frame in before.items():
        pd.testing.assert_frame_equal(frame, after[name], obj=name)


def _at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def load_rich(store: Store) -> Store:
    """The tiny store, customer 5 a copy of customer 1 (another e-mail case, no consent),
    with rows in every table that holds a customer."""
    tiny.load(store)
    copy = pd.DataFrame(
        {
            "customer_id": [5],
            "email": ["ANN@example.com"],
            "first_name": ["Ann"],
            "phone": ["+44 20 7946 0000"],
            "country": ["US"],
            "city": ["Leeds"],
            "signup_at": [_at("2024-01-05 08:00:00.123456")],
            "loyalty_points": [40],
            "consent_email": [False],
            "consent_sms": [True],
        }
    )
    campaigns = pd.DataFrame(
        {
            "campaign_id": [1, 2],
            "name": ["Spring", "Summer"],
            "started_at": [_at("2024-01-01"), _at("2024-02-01")],
            "spend": [100.0, 50.0],
        }
    )
    contacts = pd.DataFrame(
        {
            "campaign_id": [1, 1, 2],
            "customer_id": [1, 5, 5],  # campaign 1 reached both copies: a collision
            "sent_at": [_at("2024-01-02"), _at("2024-01-03"), _at("2024-02-02")],
            "test_group": ["treatment", "control", "treatment"],
            "opened_at": [_at("2024-01-04 10:11:12.5"), None, None],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": [20, 21],
            "customer_id": [5, 5],
            "ordered_at": [_at("2024-02-15 10:00"), _at("2024-02-16 11:00")],
            "amount": [12.34, 56.78],
            "status": ["completed", "completed"],
            "campaign_id": pd.array([1, None], dtype="Int64"),
        }
    )
    events = pd.DataFrame(
        {
            "event_id": [1, 2, 3],
            "customer_id": [5, 1, 5],
            "occurred_at": [_at("2024-02-15"), _at("2024-02-16"), _at("2024-02-17")],
            "event_type": ["visit", "visit", "purchase"],
            "session_id": pd.array([7, 8, None], dtype="Int64"),
        }
    )
    tickets = pd.DataFrame(
        {
            "ticket_id": [1],
            "customer_id": [5],
            "opened_at": [_at("2024-02-18")],
            "priority": ["high"],
            "status": ["open"],
        }
    )
    leads = pd.DataFrame(
        {
            "lead_id": [1, 2],
            "customer_id": pd.array([5, None], dtype="Int64"),
            "created_at": [_at("2023-12-01"), _at("2023-12-02")],
            "stage": ["won", "lead"],
            "deal_value": [10.5, None],
        }
    )
    surveys = pd.DataFrame(
        {
            "response_id": [50],
            "customer_id": [5],
            "answered_at": [_at("2024-02-19")],
            "survey": ["nps"],
            "score": [2],
            "comment": ["slow delivery"],
        }
    )
    external = pd.DataFrame(
        {
            "source": ["shop", "shop"],
            "entity": ["customers", "customers"],
            "external_id": ["A-1", "A-5"],
            "internal_id": [1, 5],
        }
    )
    scores = pd.DataFrame(
        {
            "customer_id": [1, 5],
            "clv": [100.25, 3.5],
            "churn_risk": [0.1, 0.9],
            "scored_at": [_at("2024-03-01")] * 2,
        }
    )
    clusters = pd.DataFrame(
        {"customer_id": [1, 5], "cluster": [0, 2], "saved_at": [_at("2024-03-01")] * 2}
    )
    suppress = pd.DataFrame(
        {
            "value": ["ann@example.com"],
            "kind": ["email"],
            "reason": ["asked"],
            "added_at": [_at("2024-01-01")],
        }
    )
    with store.begin() as conn:
        store.insert_df(conn, "customers", copy)
        store.insert_df(conn, "campaigns", campaigns)
        store.insert_df(conn, "orders", orders)
        store.insert_df(conn, "campaign_contacts", contacts)
        store.insert_df(conn, "events", events)
        store.insert_df(conn, "support_tickets", tickets)
        store.insert_df(conn, "leads", leads)
        store.insert_df(conn, "survey_responses", surveys)
        store.insert_df(conn, "external_ids", external)
        store.insert_df(conn, "customer_scores", scores)
        store.insert_df(conn, "customer_clusters", clusters)
        store.insert_df(conn, "suppressions", suppress)
    features.refresh(store)
    return store


@pytest.fixture
def rich(store: Store) -> Store:
    return load_rich(store)


def _count(store: Store, table: str, **where) -> int:
    t = schema.table(table)
    stmt = sa.select(sa.func.count()).select_from(t)
    for name, value in where.items():
        stmt = stmt.where(t.c[name] == value)
    return int(store.scalar(stmt))


@pytest.mark.both_stores
def test_merge_then_unmerge_leaves_every_table_byte_equal(rich: Store) -> None:
    before = snapshot_all(rich)
    done = merge.merge_customers(rich, 1, [5], by="tester", reason="same person")
    assert _count(rich, "customers", customer_id=5) == 0
    assert snapshot_all(rich)["orders"]["customer_id"].tolist().count(5) == 0
    undone = merge.unmerge(rich, done.merge_id, by="tester")
    assert undone.unmerged_by == "tester"
    assert_same(before, snapshot_all(rich))


@pytest.mark.both_stores
def test_merge_repoints_every_customer_row_and_keeps_restrictive_consent(rich: Store) -> None:
    done = merge.merge_customers(rich, 1, [5], by="tester")
    for table in ("orders", "events", "support_tickets", "leads", "survey_responses"):
        assert _count(rich, table, customer_id=5) == 0, table
    assert done.moved["orders"] == 2 and done.moved["events"] == 2
    assert done.moved["support_tickets"] == 1 and done.moved["leads"] == 1
    assert done.moved["external_ids"] == 1
    kept = rich.read_df(sa.select(schema.customers).where(schema.customers.c.customer_id == 1))
    row = kept.iloc[0]
    assert row["email"] == "ann@example.com"  # the kept customer's own values stay
    assert row["first_name"] == "Ann" and row["city"] == "Leeds"  # empty ones are filled
    assert row["phone"] == "+44 20 7946 0000" and row["loyalty_points"] == 40
    assert not row["consent_email"]  # the copy's opt-out wins
    assert pd.isna(row["consent_sms"])  # unknown on the kept customer beats the copy's yes
    assert done.consent == ["E-mail consent is now No (5 had opted out)."]
    assert "E-mail consent is now No (5 had opted out)." in done.summary()
    ext = rich.read_df(sa.select(schema.external_ids).order_by("external_id"))
    assert ext["internal_id"].tolist() == [1, 1]
    assert _count(rich, "suppressions") == 1  # suppressions are never touched


@pytest.mark.both_stores
def test_collisions_on_a_composite_key_are_kept_and_restored(rich: Store) -> None:
    before = snapshot_all(rich)["campaign_contacts"]
    done = merge.merge_customers(rich, 1, [5], by="tester")
    contacts = rich.read_df(sa.select(schema.campaign_contacts).order_by("campaign_id"))
    assert contacts[["campaign_id", "customer_id"]].values.tolist() == [[1, 1], [2, 1]]
    assert contacts.iloc[0]["test_group"] == "treatment"  # the kept customer's own row
    assert done.moved["campaign_contacts"] == 1
    merge.unmerge(rich, done.merge_id, by="tester")
    pd.testing.assert_frame_equal(before, snapshot_all(rich)["campaign_contacts"])


def test_360_and_scores_follow(rich: Store) -> None:
    old = rich.read_df("SELECT frequency FROM customer_360 WHERE customer_id = 1")
    merge.merge_customers(rich, 1, [5], by="tester")
    c360 = rich.read_df("SELECT customer_id, frequency, open_tickets FROM customer_360")
    assert 5 not in c360["customer_id"].tolist()
    kept = c360[c360["customer_id"] == 1].iloc[0]
    assert kept["frequency"] == old.iloc[0]["frequency"] + 2
    assert kept["open_tickets"] == 1
    assert _count(rich, "customer_scores", customer_id=5) == 0
    assert _count(rich, "customer_scores", customer_id=1) == 1
    assert _count(rich, "customer_clusters", customer_id=5) == 0


def test_merged_pair_with_one_opt_out_exports_nobody_for_email(rich: Store, tmp_path) -> None:
    with rich.begin() as conn:
        conn.execute(schema.suppressions.delete())
        conn.execute(
            schema.customers.update()
            .where(schema.customers.c.customer_id == 5)
            .values(email="ann.other@example.com")
        )
    admin = auth.User("admin", "Admin", "admin")
    rule = {"field": "customer_id", "op": "in", "value": [1, 5]}
    segments.save_segment(rich, "pair", {"rules": [rule]}, owner="admin")
    first = export.export_segment(rich, "pair", user=admin, channel="email", out=tmp_path / "a.csv")
    assert first.rows == 1  # before the merge, customer 1 consents
    merge.merge_customers(rich, 1, [5], by="admin")
    with pytest.raises(Exception, match="excluded"):
        export.export_segment(rich, "pair", user=admin, channel="email", out=tmp_path / "b.csv")


def test_refusals(rich: Store) -> None:
    with pytest.raises(merge.MergeError, match="do not exist"):
        merge.merge_customers(rich, 1, [99], by="t")
    with pytest.raises(merge.MergeError, match="also among"):
        merge.merge_customers(rich, 1, [1, 5], by="t")
    with pytest.raises(merge.MergeError, match="no customer to merge"):
        merge.merge_customers(rich, 1, [], by="t")
    with rich.begin() as conn:
        conn.execute(
            schema.customers.update()
            .where(schema.customers.c.customer_id == 4)
            .values(erased_at=datetime(2024, 3, 1))
        )
    with pytest.raises(merge.MergeError, match="erased"):
        merge.merge_customers(rich, 1, [4], by="t")
    first = merge.merge_customers(rich, 1, [5], by="t")
    with pytest.raises(merge.MergeError, match="do not exist"):
        merge.merge_customers(rich, 2, [5], by="t")
    later = merge.merge_customers(rich, 1, [2], by="t")
    with pytest.raises(merge.MergeError, match=f"unmerge {later.merge_id} first"):
        merge.unmerge(rich, first.merge_id, by="t")
    merge.unmerge(rich, later.merge_id, by="t")
    merge.unmerge(rich, first.merge_id, by="t")
    with pytest.raises(merge.MergeError, match="already undone"):
        merge.unmerge(rich, first.merge_id, by="t")
    with pytest.raises(merge.MergeError, match="does not exist"):
        merge.unmerge(rich, 42, by="t")


def test_history_and_decisions(rich: Store) -> None:
    assert merge.history(rich).empty
    done = merge.merge_customers(rich, 1, [5], by="t", reason="same")
    merge.unmerge(rich, done.merge_id, by="u")
    again = merge.merge_customers(rich, 1, [5], by="t")
    hist = merge.history(rich)
    assert hist["merge_id"].tolist() == [again.merge_id, done.merge_id]
    assert hist["status"].tolist() == ["in force", "undone"]
    assert hist.iloc[1]["unmerged_by"] == "u" and hist.iloc[1]["merged_ids"] == [5]
    assert merge.decide(rich, [3, 2], "later", by="t") == "2,3"
    merge.decide(rich, [2, 3], "not_same", by="t")
    assert merge.decisions(rich) == {"2,3": "not_same"}
    with pytest.raises(merge.MergeError, match="not known"):
        merge.decide(rich, [2, 3], "merge", by="t")
    assert merge.suggested_keep(rich, [1, 2]) == (1, "most orders (5)")


def test_merged_into_and_from_follow_merges_in_force(rich: Store) -> None:
    assert merge.merged_into(rich, 5) is None and merge.merged_from(rich, 1) == []
    first = merge.merge_customers(rich, 1, [5], by="t")
    assert merge.merged_into(rich, 5).kept_id == 1 and merge.merged_from(rich, 1) == [5]
    second = merge.merge_customers(rich, 2, [1], by="t")  # the kept one merged again
    assert merge.merged_into(rich, 5).merge_id == second.merge_id
    assert merge.merged_into(rich, 5).kept_id == 2 and merge.merged_from(rich, 2) == [1, 5]
    merge.unmerge(rich, second.merge_id, by="t")
    assert merge.merged_into(rich, 5).merge_id == first.merge_id
    assert merge.merged_into(rich, 1) is None and merge.merged_from(rich, 2) == []


def test_cli_merge_unmerge_history(rich: Store, capsys) -> None:
    rich.dispose()
    assert main(["duplicates", "merge", "1", "5", "--user", "ops"]) == 0
    out = capsys.readouterr().out
    assert "merged into 1" in out
    assert main(["duplicates", "history", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["kept_id"] == 1 and rows[0]["status"] == "in force"
    assert rows[0]["merged_ids"] == [5]  # a list, not the text "5"
    merge_id = rows[0]["merge_id"]
    assert main(["duplicates", "unmerge", str(merge_id), "--user", "ops"]) == 0
    assert "Undone by ops" in capsys.readouterr().out
    assert main(["duplicates", "unmerge", str(merge_id)]) == 2
    assert "already undone" in capsys.readouterr().err
    assert main(["duplicates", "history"]) == 0
    assert "undone" in capsys.readouterr().out
    close_all()


@pytest.fixture
def demo_copy(demo_copy: Store) -> Store:
    """The shared demo copy with its 360 table built (a merge rebuilds it)."""
    features.ensure_fresh(demo_copy)
    return demo_copy


@pytest.mark.both_stores
def test_demo_merge_of_busy_customers_unmerges_exactly(demo_copy: Store) -> None:
    busiest = demo_copy.read_df(
        "SELECT customer_id FROM orders GROUP BY customer_id ORDER BY count(*) DESC, "
        "customer_id LIMIT 3"
    )["customer_id"].tolist()
    before = snapshot_all(demo_copy)
    done = merge.merge_customers(demo_copy, busiest[0], busiest[1:], by="t")
    assert done.moved["orders"] > 0 and done.moved["events"] > 0
    merge.unmerge(demo_copy, done.merge_id, by="t")
    assert_same(before, snapshot_all(demo_copy))


def test_export_keeps_one_row_per_address(store: Store, tmp_path) -> None:
    tiny.load(store, surveys=False)
    with store.begin() as conn:
        conn.execute(
            schema.customers.update()
            .where(schema.customers.c.customer_id == 2)
            .values(email="  Ann@Example.com")
        )
    features.refresh(store)
    admin = auth.User("admin", "Admin", "admin")
    rule = {"field": "country", "op": "eq", "value": "US"}
    segments.save_segment(store, "us", {"rules": [rule]}, owner="admin")
    result = export.export_segment(
        store, "us", user=admin, channel="email", out=tmp_path / "us.csv"
    )
    assert result.rows == 1 and result.excluded["duplicate_address"] == 1
    written = pa_csv.read_csv(tmp_path / "us.csv").to_pandas()
    assert written["customer_id"].tolist() == [1]  # the lowest id is kept
    both = export.export_segment(store, "us", user=admin, channel="none", out=tmp_path / "n.csv")
    assert both.rows == 2  # no channel: one row per customer


def test_an_opt_out_on_any_record_of_an_address_wins_and_suppressions_match_by_key(
    store: Store, tmp_path
) -> None:
    """Two records of one person, not merged: the copy that opted out keeps the address out
    of the file even through the record with consent; a suppressed Gmail address written
    with dots and a +tag, and a phone in international format, suppress the same mailbox
    and number written otherwise."""
    tiny.load(store, surveys=False)
    customers, t0 = schema.customers, datetime(2024, 3, 1)
    with store.begin() as conn:
        for customer_id, values in {
            2: {"email": " ANN@example.com", "consent_email": False},
            3: {"email": "cy.zed@gmail.com", "consent_email": True},
            4: {"phone": "020 7946 0001", "consent_sms": True},
        }.items():
            conn.execute(
                customers.update().where(customers.c.customer_id == customer_id).values(**values)
            )
        conn.execute(
            schema.suppressions.insert(),
            [
                {"value": "CyZed+news@googlemail.com", "kind": "email", "added_at": t0},
                {"value": "+44 20 7946 0001", "kind": "phone", "added_at": t0},
            ],
        )
    features.refresh(store)
    admin = auth.User("admin", "Admin", "admin")
    everyone = {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 0}]}
    segments.save_segment(store, "all", everyone, owner="admin")
    result = export.export_segment(
        store, "all", user=admin, channel="email", out=tmp_path / "e.csv"
    )
    assert pa_csv.read_csv(tmp_path / "e.csv").to_pandas()["customer_id"].tolist() == [4]
    assert {k: v for k, v in result.excluded.items() if v} == {
        "no_consent": 1,  # 2 opted out itself
        "suppressed": 1,  # 3: the same Gmail mailbox as the suppressed address
        "opted_out_elsewhere": 1,  # 1: its address is 2's, and 2 opted out
    }
    with pytest.raises(CRMError, match="on the suppression list: 1"):
        export.export_segment(store, "all", user=admin, channel="sms", out=tmp_path / "s.csv")


def _plant_run(store: Store, pairs: list[tuple[int, int, float, int]]) -> None:
    """A duplicate run written straight into its tables (as dedupe.find_duplicates would)."""
    with store.begin() as conn:
        conn.execute(
            schema.table("duplicate_runs")
            .insert()
            .values(
                run_id=1,
                created_at=datetime(2024, 3, 1),
                created_by="t",
                threshold=0.9,
                customers=5,
                pairs=len(pairs),
                clusters=len(pairs),
            )
        )
        conn.execute(
            schema.table("duplicate_pairs").insert(),
            [
                {
                    "run_id": 1,
                    "customer_id_l": lo,
                    "customer_id_r": hi,
                    "match_probability": p,
                    "match_weight": 5.0,
                    "cluster_id": cluster,
                    "comparisons": "[]",
                }
                for lo, hi, p, cluster in pairs
            ],
        )


def test_review_queue_drops_not_same_and_merged_and_puts_later_last(rich: Store) -> None:
    _plant_run(rich, [(1, 5, 0.99, 1), (2, 3, 0.97, 2), (2, 4, 0.95, 2), (3, 4, 0.93, 2)])
    queue = merge.review_queue(rich)
    assert queue["cluster_key"].tolist() == ["1,5", "2,3,4"]
    merge.decide(rich, [1, 5], "later", by="t")
    assert merge.review_queue(rich)["cluster_key"].tolist() == ["2,3,4", "1,5"]
    merge.decide(rich, [4, 3, 2], "not_same", by="t")
    queue = merge.review_queue(rich)
    assert queue["cluster_key"].tolist() == ["1,5"] and queue["decision"].tolist() == ["later"]
    done = merge.merge_customers(rich, 1, [5], by="t")
    assert merge.review_queue(rich).empty
    merge.unmerge(rich, done.merge_id, by="t")
    assert merge.review_queue(rich)["cluster_key"].tolist() == ["1,5"]


def test_sms_export_keeps_one_row_per_phone_number(store: Store, tmp_path) -> None:
    tiny.load(store, surveys=False)
    phones = {1: "+44 20 7946 0000", 2: "020 7946 0000", 3: "+44 20 7946 0001", 4: None}
    with store.begin() as conn:
        for cid, phone in phones.items():
            conn.execute(
                schema.customers.update()
                .where(schema.customers.c.customer_id == cid)
                .values(phone=phone, country="GB", consent_sms=True)
            )
    features.refresh(store)
    admin = auth.User("admin", "Admin", "admin")
    rule = {"field": "country", "op": "eq", "value": "GB"}
    segments.save_segment(store, "gb", {"rules": [rule]}, owner="admin")
    result = export.export_segment(store, "gb", user=admin, channel="sms", out=tmp_path / "g.csv")
    assert result.excluded["duplicate_address"] == 1 and result.excluded["no_address"] == 1
    written = pa_csv.read_csv(tmp_path / "g.csv").to_pandas()
    assert written["customer_id"].tolist() == [1, 3]

"""The audit log: hash chain, verify (edited, deleted, inserted rows), hooks, the export_log
view and the migration of an older store's export_log table."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import audit, auth, export, ingest, merge, segments
from crm_core.cli import main
from crm_core.config import Settings
from crm_core.errors import CRMError
from crm_core.schema import audit_log, export_log, export_members, schema_meta
from crm_core.store import Store
from tests.core import tiny

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL

MIA = auth.User("mia", "Mia", "marketer")


def _three(store: Store) -> None:
    audit.record_now(store, "user_added", actor="admin", target="user mia", details={"role": "x"})
    audit.record_now(store, "import", actor="mia", target="import 1", details={"batch_id": 1})
    audit.record_now(store, "merge", actor="mia", target="customer 1", details={"merge_id": 1})


def _actions(store: Store) -> list[str]:
    return list(audit.entries(store)["action"])[::-1]  # oldest first


def _sql(store: Store, stmt: sa.Executable) -> None:
    with store.begin() as conn:
        conn.execute(stmt)


def _tampered(store: Store, stmt: sa.Executable) -> audit.AuditCheck:
    """Three audited actions, then `stmt` run behind the log's back: what verify says."""
    _three(store)
    _sql(store, stmt)
    return audit.verify(store)


# --- the chain -----------------------------------------------------------------------------


def test_an_untouched_chain_verifies_and_each_row_points_at_the_one_before(store):
    assert audit.verify(store).ok and audit.verify(store).rows == 0
    _three(store)
    check = audit.verify(store)
    assert check.ok and check.rows == 3 and check.problems == []
    assert "intact: 3 rows" in check.summary()
    rows = store.read_df(sa.select(audit_log).order_by(audit_log.c.seq))
    assert list(rows["seq"]) == [1, 2, 3]
    assert rows.loc[0, "prev_hash"] == ""
    assert list(rows["prev_hash"][1:]) == list(rows["row_hash"][:-1])
    head = store.scalar(sa.select(schema_meta.c.value).where(schema_meta.c.key == "audit_head"))
    assert head == f"3:{rows.loc[2, 'row_hash']}"
    assert check.head_seq == 3 and check.head_hash == rows.loc[2, "row_hash"]


def test_editing_one_row_by_sql_fails_verify_naming_that_row(store, capsys):
    check = _tampered(
        store, audit_log.update().where(audit_log.c.seq == 2).values(actor="someone_else")
    )
    assert not check.ok
    assert check.problems[0] == "row 2 was edited: its contents no longer match its hash."
    assert main(["audit", "verify"]) == 1
    assert "row 2 was edited" in capsys.readouterr().out


def test_an_edit_with_a_recomputed_hash_breaks_the_link_to_the_next_row(store):
    _three(store)
    row = store.read_df(sa.select(audit_log).where(audit_log.c.seq == 2)).iloc[0]
    forged = audit.row_hash(
        2,
        row["at"].to_pydatetime(),
        "eve",
        row["action"],
        row["target"],
        row["details"],
        row["prev_hash"],
    )
    _sql(
        store,
        audit_log.update().where(audit_log.c.seq == 2).values(actor="eve", row_hash=forged),
    )
    check = audit.verify(store)
    assert not check.ok and check.problems[0].startswith("row 3 does not follow from row 2")


def test_deleting_a_middle_row_or_the_newest_rows_is_detected(store):
    _three(store)
    audit.record_now(store, "unmerge", actor="mia", target="customer 1")
    _sql(store, audit_log.delete().where(audit_log.c.seq == 2))
    check = audit.verify(store)
    assert not check.ok and check.problems[0].startswith("row 2 deleted")
    _sql(store, audit_log.delete().where(audit_log.c.seq >= 3))  # the newest rows, too
    check = audit.verify(store)
    assert any(p.startswith("rows 2 to 4 deleted: the head") for p in check.problems)


def test_deleting_only_the_last_row_is_detected_by_the_head(store):
    check = _tampered(store, audit_log.delete().where(audit_log.c.seq == 3))
    assert check.problems == ["row 3 deleted: the head says the log ends at row 3."]


def test_a_row_inserted_by_sql_is_detected(store):
    _three(store)
    row = store.read_df(sa.select(audit_log).where(audit_log.c.seq == 3)).iloc[0]
    _sql(
        store,
        audit_log.insert().values(
            seq=4,
            at=datetime(2026, 1, 1),
            actor="eve",
            action="export",
            target="",
            details="{}",
            prev_hash=row["row_hash"],
            row_hash="0" * 64,
        ),
    )
    check = audit.verify(store)
    assert not check.ok and check.problems[0] == (
        "row 4 was edited: its contents no longer match its hash."
    )


def test_a_rolled_back_action_leaves_no_row_and_unknown_actions_are_refused(store):
    with pytest.raises(RuntimeError), store.begin() as conn:
        audit.record(conn, "import", actor="mia", target="import 9")
        raise RuntimeError("the import failed")
    assert audit.entries(store).empty and audit.verify(store).ok
    with pytest.raises(CRMError, match="'hack' is not known"):
        audit.record_now(store, "hack", actor="mia")
    with pytest.raises(CRMError, match="'hack' is not known"):
        audit.entries(store, actions=["hack"])


def test_entries_filter_by_action_user_and_limit_newest_first(store, capsys):
    _three(store)
    assert list(audit.entries(store)["seq"]) == [3, 2, 1]
    assert list(audit.entries(store, actions=["import", "merge"], actor="mia")["seq"]) == [3, 2]
    assert list(audit.entries(store, limit=1)["seq"]) == [3]
    assert audit.actors(store) == ["admin", "mia"]
    assert main(["audit", "list", "--action", "import", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["target"] for r in listed] == ["import 1"]
    assert main(["audit", "list"]) == 0
    out = capsys.readouterr().out
    assert "Customers merged: customer 1" in out and "batch id: 1" in out
    assert main(["audit", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


# --- hooks ---------------------------------------------------------------------------------


def test_user_changes_and_sign_in_failures_write_their_rows(store):
    auth.add_user(store, "admin", "admin", "correct horse battery", by=None)
    auth.add_user(store, "bob", "analyst", "correct horse battery", by="admin")
    auth.set_role(store, "bob", "marketer", by="admin")
    auth.deactivate_user(store, "bob", by="admin")
    auth.activate_user(store, "bob", by="admin")
    auth.reset_password(store, "bob", by="admin")
    settings = Settings(max_login_attempts=2)
    auth.record_login(store, "bob", success=False, settings=settings)
    auth.record_login(store, "bob", success=False, settings=settings)
    auth.record_login(store, "nobody@example.com", success=False, settings=settings)
    auth.remove_user(store, "bob", by="admin")
    rows = audit.entries(store).iloc[::-1]
    assert list(rows["action"]) == [
        "user_added",
        "user_added",
        "role_changed",
        "user_deactivated",
        "user_activated",
        "password_reset",
        "sign_in_failed",
        "sign_in_failed",
        "locked_out",
        "sign_in_failed",
        "user_removed",
    ]
    assert list(rows["actor"].fillna("")) == ["", *["admin"] * 5, "", "", "", "", "admin"]
    assert json.loads(rows.iloc[2]["details"]) == {"old_role": "analyst", "new_role": "marketer"}
    assert rows.iloc[9]["target"] == "an unknown username"  # what was typed is not written
    assert "nobody" not in " ".join(rows["target"]) + " ".join(rows["details"])
    assert audit.verify(store).ok


def test_imports_and_undos_write_their_rows(store, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,email,country,signup_at\n1,a@example.com,US,2024-01-01\n")
    ingest.import_file(store, "customers", path, user="ada")
    done = ingest.undo(store, table="customers", user="ada")
    rows = audit.entries(store).iloc[::-1]
    assert list(rows["action"]) == ["import", "import_undo"]
    assert list(rows["target"]) == [f"import {done.batch_id}"] * 2
    details = json.loads(rows.iloc[0]["details"])
    assert details["file_name"] == "customers.csv" and details["rows"] == {"customers": 1}
    assert "a@example.com" not in "".join(rows["details"])
    assert json.loads(rows.iloc[1]["details"])["removed"] == {"customers": 1}


def test_a_failed_import_leaves_no_audit_row(store, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,email,country,signup_at\nx,a@example.com,US,2024-01-01\n")
    with pytest.raises(CRMError):
        ingest.import_file(store, "customers", path, user="ada")
    assert audit.entries(store).empty


def test_merges_and_unmerges_write_their_rows(store):
    tiny.load(store)
    done = merge.merge_customers(store, 1, [4], by="ada", reason="same person")
    merge.unmerge(store, done.merge_id, by="bo")
    rows = audit.entries(store).iloc[::-1]
    assert list(rows["action"]) == ["merge", "unmerge"]
    assert list(rows["actor"]) == ["ada", "bo"]
    assert json.loads(rows.iloc[0]["details"]) == {
        "kept_id": 1,
        "merge_id": done.merge_id,
        "merged_ids": [4],
    }
    assert audit.verify(store).ok


# --- exports and the export_log view -------------------------------------------------------


def test_export_log_view_equals_what_exports_wrote_and_members_are_the_file(store, tmp_path):
    tiny.load(store)
    segments.save_segment(
        store,
        "Everyone",
        {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 1}]},
        owner="mia",
    )
    first = export.export_segment(store, "Everyone", user=MIA, channel="email", out=tmp_path)
    second = export.export_segment(
        store, "Everyone", user=MIA, channel="none", fmt="parquet", out=tmp_path, columns=["clv"]
    )
    log = store.read_df(sa.select(export_log).order_by(export_log.c.export_id))
    assert list(log["export_id"]) == [first.export_id, second.export_id] == [1, 2]
    for result, row in zip((first, second), log.to_dict("records"), strict=True):
        assert row["exported_by"] == "mia"
        assert row["segment_name"] == "Everyone" and row["segment_version"] == 1
        assert row["channel"] == result.channel and row["format"] == result.format
        assert row["rows"] == result.rows
        assert row["file_name"] == str(result.path.resolve())
        assert row["file_sha256"] == result.sha256
        assert json.loads(row["column_names"]) == result.columns
    audit_rows = audit.entries(store, actions=["export"]).iloc[::-1]
    assert list(log["exported_at"]) == list(audit_rows["at"])
    members = store.read_df(sa.select(export_members).order_by(export_members.c.customer_id))
    in_file = pd.read_csv(first.path)["customer_id"].sort_values().tolist()
    assert members.loc[members["export_id"] == 1, "customer_id"].tolist() == in_file
    assert len(members[members["export_id"] == 2]) == second.rows
    assert export.export_history(store, MIA)["export_id"].tolist() == [2, 1]
    assert audit.verify(store).ok


def test_a_failed_export_writes_no_audit_row(store, tmp_path):
    tiny.load(store)
    segments.save_segment(
        store,
        "Nobody",
        {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 99}]},
        owner="mia",
    )
    with pytest.raises(CRMError):
        export.export_segment(store, "Nobody", user=MIA, channel="email", out=tmp_path)
    assert audit.entries(store).empty


def _old_export_log(store: Store) -> sa.Table:
    """Turn the store back into an older one: export_log a table with rows, no audit rows."""
    old = sa.Table("export_log", sa.MetaData(), *[c._copy() for c in export_log.columns])
    with store.begin() as conn:
        conn.execute(sa.text("DROP VIEW export_log"))
        old.create(conn)
        conn.execute(
            old.insert(),
            [
                dict(
                    export_id=2,
                    exported_by="bo",
                    exported_at=datetime(2025, 3, 2, 9, 30),
                    segment_name="VIPs",
                    segment_version=3,
                    channel="sms",
                    rows=7,
                    format="xlsx",
                    file_name="/srv/b.xlsx",
                    file_sha256="bb",
                    column_names=None,
                ),
                dict(
                    export_id=1,
                    exported_by="mia",
                    exported_at=datetime(2025, 3, 1, 8, 0),
                    segment_name="All",
                    segment_version=1,
                    channel="email",
                    rows=3,
                    format="csv",
                    file_name="/srv/a.csv",
                    file_sha256="aa",
                    column_names='["customer_id", "email"]',
                ),
            ],
        )
    return old


def test_migrating_an_older_store_keeps_its_export_log_rows(store):
    _old_export_log(store)
    before = store.read_df(sa.select(export_log).order_by(export_log.c.export_id))
    changes = store.init_schema()
    assert "moved 2 export_log rows into audit_log" in changes
    assert "created view export_log" in changes
    after = store.read_df(sa.select(export_log).order_by(export_log.c.export_id))
    assert after["column_names"].isna().tolist() == [False, True]
    assert json.loads(after.loc[0, "column_names"]) == ["customer_id", "email"]
    columns = [c for c in before.columns if c != "column_names"]
    pd.testing.assert_frame_equal(after[columns], before[columns], check_dtype=False)
    rows = audit.entries(store).iloc[::-1]  # in export order
    assert list(rows["target"]) == ["export 1", "export 2"]
    assert audit.verify(store).ok
    assert store.init_schema() == []  # the view stays
    kind = store.scalar(
        "SELECT table_type FROM information_schema.tables "
        "WHERE table_name = 'export_log' AND table_schema = current_schema()"
    )
    assert kind == "VIEW"


def test_cli_audit_verify_names_a_broken_row_in_json(store, capsys):
    _tampered(store, audit_log.update().where(audit_log.c.seq == 1).values(target="user eve"))
    assert main(["audit", "verify", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["problems"][0].startswith("row 1 was edited")


def test_details_words_read_like_a_sentence():
    text = audit.details_words(json.dumps({"batch_id": 3, "rows": {"customers": 2}}))
    assert text == "batch id: 3; rows: customers 2"
    path = str(Path("/srv/crm/exports/vips_v1.csv"))
    assert audit.details_words(json.dumps({"file_name": path})) == "file name: vips_v1.csv"

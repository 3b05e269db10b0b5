"""Retention policies as data: defaults, validation, a dry run that changes nothing, apply,
the audit row, and the CLI (DuckDB and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from crm_core import audit, retention
from crm_core.cli import main
from crm_core.store import Store
from tests.core.test_merge import load_rich

pytestmark = pytest.mark.both_stores

# 25 months before, from midnight: 2024-02-17 00:00 (events of the 15th and 16th are older, the
# 17th's is not); 36 months: 2023-03-17, so the comment of 19 Feb 2024 stays unless changed.
NOW = datetime(2026, 3, 17, 12, 0)


@pytest.fixture
def rich(store: Store) -> Store:
    """Events on 15, 16 and 17 Feb 2024; a survey comment answered 19 Feb 2024."""
    return load_rich(store)


def test_defaults_are_written_once_and_a_removal_is_kept(rich: Store):
    policies = retention.policies(rich)
    assert policies["table_name"].tolist() == ["events", "survey_responses"]
    assert policies["columns"].tolist() == [[], ["comment"]]
    assert retention.remove_policy(rich, "events", by="admin")
    assert retention.policies(rich)["table_name"].tolist() == ["survey_responses"]
    assert not retention.remove_policy(rich, "events", by="admin")


def test_dry_run_counts_and_changes_nothing_then_apply_does(rich: Store):
    plan = retention.plan(rich, now=NOW)
    assert dict(zip(plan["table_name"], plan["rows"], strict=True)) == {
        "events": 2,
        "survey_responses": 0,
    }
    assert rich.scalar("SELECT count(*) FROM events") == 3
    retention.set_policy(
        rich,
        "survey_responses",
        date_column="answered_at",
        age_months=24,
        action="anonymise",
        columns=["comment"],
        by="admin",
    )
    run = retention.apply(rich, by="admin", now=NOW)
    assert run.rows == {"events": 2, "survey_responses": 1}
    assert rich.scalar("SELECT count(*) FROM events") == 1
    assert rich.scalar("SELECT count(*) FROM survey_responses WHERE response_id = 50") == 1
    assert rich.scalar("SELECT count(*) FROM survey_responses WHERE comment IS NOT NULL") == 0
    assert "deleted 2 row(s) of events" in run.summary()[0]
    logged = audit.entries(rich, actions=["retention_run"]).iloc[0]
    assert json.loads(logged["details"])["rows"] == {"events": 2, "survey_responses": 1}
    assert audit.entries(rich, actions=["retention_policy_changed"]).iloc[0]["actor"] == "admin"
    assert retention.plan(rich, now=NOW)["rows"].sum() == 0  # nothing left to do


@pytest.mark.parametrize(
    ("table_name", "date_column", "months", "action", "columns", "message"),
    [
        ("customers", "signup_at", 12, "delete", None, "allowed: orders"),
        ("events", "event_type", 12, "delete", None, "allowed: occurred_at"),
        ("events", "occurred_at", 0, "delete", None, "from 1 to 1200"),
        ("events", "occurred_at", 12, "shred", None, "allowed: delete, anonymise"),
        ("survey_responses", "answered_at", 12, "anonymise", ["score"], "allowed: comment"),
        ("survey_responses", "answered_at", 12, "anonymise", [], "got none"),
    ],
)
def test_a_bad_policy_is_refused_saying_what_is_allowed(
    rich: Store, table_name, date_column, months, action, columns, message
):
    with pytest.raises(retention.RetentionError, match=message):
        retention.set_policy(
            rich,
            table_name,
            date_column=date_column,
            age_months=months,
            action=action,
            columns=columns,
            by="admin",
        )


def test_cli_dry_run_set_and_apply(rich: Store, capsys):
    assert main(["privacy", "retention"]) == 0
    out = capsys.readouterr().out
    assert "events: delete rows with occurred_at older than 25 months" in out
    assert "Dry run: nothing changed" in out
    assert main(["privacy", "retention", "--set", "events", "occurred_at"]) == 2
    assert "--set" in capsys.readouterr().err
    argv = ["privacy", "retention", "--set", "events", "occurred_at", "1", "delete", "--apply"]
    assert main([*argv, "--user", "admin"]) == 0
    assert "deleted 3 row(s) of events" in capsys.readouterr().out
    assert rich.scalar("SELECT count(*) FROM events") == 0

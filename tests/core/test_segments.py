"""Segment rules -> SQL on the tiny 360 table: every operator, bad rules, save/version, CLI."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from crm_core import segments
from crm_core.auth import User
from crm_core.cli import main
from crm_core.errors import NotAllowedError
from crm_core.segments import SegmentError
from crm_core.store import Store
from tests.core import seg_tiny

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL


MIA = User("mia", "Mia", "marketer")
ANA = User("ana", "Ana", "analyst")
ADA = User("ada", "Ada", "admin")


def ids(store, *rules, match="all"):
    return segments.member_ids(store, {"match": match, "rules": list(rules)})


def rule(field, op, value=None):
    return {"field": field, "op": op, "value": value}


@pytest.fixture
def tiny360(store):
    return seg_tiny.load(store)


@pytest.mark.parametrize(
    ("rule_", "expected"),
    [
        (rule("country", "eq", "US"), [1, 2]),
        (rule("country", "eq", "us"), [1, 2]),
        (rule("country", "ne", "uS"), [3, 4]),
        (rule("country", "in", ["gb", "FR"]), [3, 4]),
        (rule("country", "not_in", "us, fr"), [3, 4]),
        (rule("rfm_segment", "eq", "at RISK"), [1]),
        (rule("rfm_segment", "in", ["lost", "POTENTIAL LOYALIST"]), [3, 4]),
        (rule("email", "eq", "ANN@example.COM"), [1]),
        (rule("country", "ne", "US"), [3, 4]),
        (rule("frequency", "gt", 2), [1]),
        (rule("frequency", "gte", "2"), [1, 2, 3]),
        (rule("monetary", "lt", 180), [4]),
        (rule("monetary", "lte", 180), [1, 4]),
        (rule("monetary", "between", [100, 300]), [1, 2]),
        (rule("recency_days", "in", "0, 72"), [3, 4]),
        (rule("rfm_segment", "not_in", ["Lost", "At risk"]), [2, 3]),
        (rule("email", "contains", "EXAMPLE.com"), [1, 2, 3, 4]),
        (rule("email", "contains", "ann@"), [1]),
        (rule("nps_latest", "is_null"), []),
        (rule("clv", "is_null"), [1, 2, 3, 4]),
        (rule("clv", "not_null"), []),
        (rule("consent_email", "eq", "false"), [3]),
        (rule("last_order_at", "within_last_days", 10), [2, 3]),
        (rule("last_order_at", "within_last_days", 11), [1, 2, 3]),
        (rule("last_order_at", "within_last_days", 1), [3]),
        (rule("last_order_at", "lte", "2024-02-20"), [1, 4]),
        (rule("last_order_at", "gt", "2024-02-20"), [2, 3]),
        (rule("signup_at", "between", ["2023-11-01", "2023-11-02"]), [1, 2]),
    ],
)
def test_every_operator_selects_the_right_customers(tiny360, rule_, expected):
    assert ids(tiny360, rule_) == expected


def test_groups_combine_with_and_or_and_nest(tiny360):
    us_or_big = {
        "match": "any",
        "rules": [rule("country", "eq", "US"), rule("monetary", "gt", 1000)],
    }
    assert ids(tiny360, us_or_big, rule("frequency", "gte", 2)) == [1, 2, 3]
    assert ids(tiny360, rule("country", "eq", "GB"), rule("frequency", "eq", 1), match="any") == [
        3,
        4,
    ]


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            {"rules": [rule("country", "eq", "US"), rule("clv", "gt", "abc")]},
            "rule 2 (clv gt 'abc'): 'abc' is not a number",
        ),
        ({"rules": [rule("shoe_size", "eq", 3)]}, "rule 1 (shoe_size eq 3): unknown field"),
        ({"rules": [rule("country", "gt", "US")]}, "operator 'gt' does not fit the text field"),
        ({"rules": [rule("country", "like", "US")]}, "unknown operator 'like'"),
        ({"rules": [rule("last_order_at", "gt", "soon")]}, "'soon' is not a date"),
        ({"rules": [rule("monetary", "between", [5])]}, "between needs two values"),
        ({"rules": [rule("monetary", "between", [9, 5])]}, "is after to"),
        ({"rules": [rule("country", "in", [])]}, "the list is empty"),
        ({"rules": [rule("last_order_at", "within_last_days", 0)]}, "whole number >= 1"),
        ({"rules": []}, "The segment has no rules"),
        ({"rules": [{"match": "any", "rules": []}]}, "group 1 has no rules"),
        ({"rules": [{"match": "all", "rules": [rule("clv", "gt", "x")]}]}, "rule 1.1 (clv gt"),
        ({"match": "some", "rules": [rule("clv", "is_null")]}, "match is 'some'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_rules_give_clear_errors(definition, message):
    with pytest.raises(SegmentError, match=None) as info:
        segments.validate(definition)
    assert message in str(info.value)


def test_values_are_bound_never_formatted_into_sql(tiny360):
    evil = "x'; DROP TABLE customers; --"
    assert ids(tiny360, rule("country", "eq", evil)) == []
    assert tiny360.row_counts(("customers",))["customers"] == 4


def test_preview_counts_share_revenue_and_masks_the_sample(tiny360):
    result = segments.preview(tiny360, {"rules": [rule("country", "eq", "US")]}, "analyst")
    assert (result.customers, result.base, result.share) == (2, 4, 0.5)
    assert result.revenue == pytest.approx(390)
    assert result.avg_clv is None and len(result.sample) == 2
    assert result.sample["email"].str.contains(r"\*\*\*").all()
    assert "lower(customer_360.country) = lower('US')" in result.sql
    shown = segments.preview(tiny360, {"rules": [rule("country", "eq", "US")]}, "marketer")
    assert "ann@example.com" in set(shown.sample["email"])


def test_save_versions_list_duplicate_delete(tiny360):
    first = segments.save_segment(
        tiny360, "US buyers", {"rules": [rule("country", "eq", "US")]}, owner="mia"
    )
    second = segments.save_segment(
        tiny360,
        "US buyers",
        {"rules": [rule("country", "in", ["US", "GB"])]},
        owner="mia",
        segment_id=first.segment_id,
    )
    assert (first.version, second.version) == (1, 2)
    listed = segments.list_segments(tiny360)
    assert listed[["name", "version", "customers"]].values.tolist() == [["US buyers", 2, 4]]
    assert (
        segments.load_segment(tiny360, "us buyers", version=1).definition["rules"][0]["op"] == "eq"
    )
    assert segments.size_history(tiny360, first.segment_id)["customers"].tolist() == [2, 4]
    with pytest.raises(SegmentError, match="already exists"):
        segments.save_segment(tiny360, "US buyers", {"rules": [rule("clv", "is_null")]}, owner="x")
    copy = segments.duplicate_segment(tiny360, "US buyers", "Copy", owner="ana")
    assert copy.segment_id != first.segment_id and copy.definition == second.definition
    with pytest.raises(NotAllowedError):
        segments.delete_segment(tiny360, "Copy", user=User("max", "Max", "manager"))
    segments.delete_segment(tiny360, "Copy", user=ANA)
    assert segments.list_segments(tiny360)["name"].tolist() == ["US buyers"]
    with pytest.raises(SegmentError, match="No saved segment called 'Copy'"):
        segments.load_segment(tiny360, "Copy")


def test_processes_saving_segments_at_once_on_postgresql(pg_store_url):
    """Savers in several processes (a Store each) take turns: every segment gets its own id."""
    writers = [Store(pg_store_url) for _ in range(4)]
    writers[0].init_schema()
    seg_tiny.load(writers[0])

    def save(i: int) -> list[int]:
        return [
            segments.save_segment(
                writers[i], f"US {i}-{n}", {"rules": [rule("country", "eq", "US")]}, owner="mia"
            ).segment_id
            for n in range(3)
        ]

    with ThreadPoolExecutor(len(writers)) as pool:
        saved = [sid for ids_ in pool.map(save, range(len(writers))) for sid in ids_]
    assert sorted(saved) == list(range(1, 13))
    assert len(segments.list_segments(writers[0])) == 12
    for writer in writers:
        writer.dispose()


def test_cli_segments_create_list_preview(tiny360, tmp_path, capsys):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"match": "all", "rules": [rule("frequency", "gte", 2)]}))
    assert main(["segments", "create", "Repeat buyers", "--rules", str(rules)]) == 0
    assert "3 customers" in capsys.readouterr().out
    assert main(["segments", "list"]) == 0
    assert "Repeat buyers" in capsys.readouterr().out
    assert main(["segments", "preview", "Repeat buyers", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["customers"] == 3 and figures["base"] == 4
    rules.write_text(json.dumps({"rules": [rule("clv", "gt", "abc")]}))
    assert main(["segments", "create", "Bad", "--rules", str(rules)]) == 2
    assert "rule 1 (clv gt 'abc'): 'abc' is not a number" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("rule_", "message"),
    [
        (
            rule("churn_risk", "gt", 60),
            "rule 1 (churn_risk gt 60): churn_risk is a share between 0 and 1; did you mean 0.6?",
        ),
        (
            rule("p_alive", "between", [0.2, 85]),
            "p_alive is a share between 0 and 1; did you mean 0.85?",
        ),
        (rule("churn_risk", "lt", -0.1), "churn_risk is a share between 0 and 1; e.g. 0.6"),
        (rule("churn_risk", "in", "0.5, 250"), "churn_risk is a share between 0 and 1; e.g. 0.6"),
    ],
)
def test_a_share_outside_0_1_is_refused_with_a_hint(rule_, message):
    with pytest.raises(SegmentError) as info:
        segments.validate({"rules": [rule_]})
    assert message in str(info.value)


def test_shares_inside_0_1_are_kept_as_given():
    checked = segments.validate({"rules": [rule("churn_risk", "gte", 0.6)]})
    assert checked["rules"][0]["value"] == 0.6
    assert {
        "churn_risk",
        "p_alive",
        "p_purchase_7d",
        "p_purchase_30d",
        "p_purchase_90d",
        "lead_score",
    } == segments.SHARE_FIELDS


def test_a_value_no_customer_has_warns_with_the_nearest_values(tiny360):
    definition = {
        "match": "any",
        "rules": [
            rule("country", "eq", "us"),  # matches: case does not matter
            {"match": "all", "rules": [rule("rfm_segment", "in", ["Lost", "At rsk"])]},
            rule("country", "ne", "Germny"),
            rule("email", "eq", "nobody@example.com"),
        ],
    }
    result = segments.preview(tiny360, definition, "marketer")
    assert result.warnings == (
        "rule 2.1: no customer has rfm_segment 'At rsk'; nearest values: At risk.",
        "rule 3: no customer has country 'Germny'; its values are: GB, US.",
        "rule 4: no customer has email 'nobody@example.com'.",  # personal: no values offered
    )
    assert result.customers == 4  # a warning, not an error
    assert (
        segments.preview(tiny360, {"rules": [rule("country", "eq", "gb")]}, "analyst").warnings
        == ()
    )


def test_only_the_owner_or_an_admin_deletes_and_restores(tiny360):
    us = {"rules": [rule("country", "eq", "US")]}
    saved = segments.save_segment(tiny360, "US buyers", us, owner="mia")
    with pytest.raises(NotAllowedError, match="belongs to mia; only its owner or an admin"):
        segments.delete_segment(tiny360, "US buyers", user=ANA)
    assert segments.list_segments(tiny360)["name"].tolist() == ["US buyers"]
    segments.delete_segment(tiny360, "us buyers", user=MIA)
    assert segments.list_segments(tiny360).empty
    gone = segments.deleted_segments(tiny360, MIA)
    assert gone[["name", "owner", "deleted_by"]].values.tolist() == [["US buyers", "mia", "mia"]]
    assert segments.deleted_segments(tiny360, ANA).empty  # not hers to restore
    assert len(segments.deleted_segments(tiny360, ADA)) == 1
    with pytest.raises(NotAllowedError, match="only its owner or an admin may restore"):
        segments.restore_segment(tiny360, "US buyers", user=ANA)
    back = segments.restore_segment(tiny360, "US buyers", user=MIA)
    assert (back.segment_id, back.version, back.owner) == (saved.segment_id, 1, "mia")
    assert segments.deleted_segments(tiny360).empty
    segments.delete_segment(tiny360, "US buyers", user=ADA)  # an admin may delete any
    segments.save_segment(tiny360, "US buyers", us, owner="ana")  # the name is free again
    with pytest.raises(SegmentError, match="exists already; rename or delete it"):
        segments.restore_segment(tiny360, "US buyers", user=ADA)
    with pytest.raises(SegmentError, match="No deleted segment called 'Nope'"):
        segments.restore_segment(tiny360, "Nope", user=ADA)


def test_cli_refuses_a_share_as_percent_and_deletes_and_restores(tiny360, tmp_path, capsys):
    from crm_core import auth

    auth.add_user(tiny360, "mia", "marketer", "a-long-password")
    auth.add_user(tiny360, "ana", "analyst", "a-long-password")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [rule("churn_risk", "gt", 60)]}))
    assert main(["segments", "create", "Risky", "--rules", str(rules)]) == 2
    assert "churn_risk is a share between 0 and 1; did you mean 0.6?" in capsys.readouterr().err
    rules.write_text(json.dumps({"rules": [rule("country", "in", ["us", "Frnace"])]}))
    assert main(["segments", "create", "US", "--rules", str(rules), "--owner", "mia"]) == 0
    assert "2 customers" in capsys.readouterr().out
    assert main(["segments", "preview", "US"]) == 0
    assert "warning: rule 1: no customer has country 'Frnace'" in capsys.readouterr().out
    assert main(["segments", "delete", "US", "--user", "ana"]) == 2
    assert "belongs to mia" in capsys.readouterr().err
    assert main(["segments", "delete", "US", "--user", "mia"]) == 0
    assert "Deleted segment 'US'" in capsys.readouterr().out
    assert main(["segments", "list"]) == 0
    assert "US" not in capsys.readouterr().out
    assert main(["segments", "restore", "US", "--user", "mia"]) == 0
    assert "Restored segment 'US' version 1" in capsys.readouterr().out


def test_roles_without_personal_data_cannot_select_by_it(tiny360):
    from crm_core.errors import NotAllowedError

    store = tiny360
    by_email = {
        "match": "all",
        "rules": [{"field": "email", "op": "eq", "value": "bob@example.com"}],
    }
    assert segments.preview(store, by_email, "marketer").customers == 1
    for role in ("analyst", "manager"):
        with pytest.raises(NotAllowedError, match="may not select customers by personal data"):
            segments.preview(store, by_email, role)
    nested = {"match": "any", "rules": [{"match": "all", "rules": by_email["rules"]}]}
    with pytest.raises(NotAllowedError, match="Rules on email"):
        segments.save_segment(store, "Bob", nested, owner="ana", role="analyst")
    assert "email" not in segments.fields_for_role("analyst")
    assert "country" in segments.fields_for_role("analyst")
    assert "email" in segments.fields_for_role("admin")


def test_personal_rule_values_are_hidden_from_roles_without_personal_data():
    definition = {
        "match": "all",
        "rules": [
            {"field": "country", "op": "eq", "value": "US"},
            {"match": "any", "rules": [{"field": "email", "op": "eq", "value": "bob@x.io"}]},
        ],
    }
    hidden = segments.redact_definition(definition, "analyst")
    assert hidden["rules"][0] == definition["rules"][0]
    assert hidden["rules"][1]["rules"][0]["value"] == segments.HIDDEN_VALUE
    assert "bob@x.io" not in json.dumps(hidden)
    assert segments.redact_definition(definition, "marketer") == definition
    assert definition["rules"][1]["rules"][0]["value"] == "bob@x.io"  # the input is kept

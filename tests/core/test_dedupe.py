"""Duplicate detection with Splink, checked against the demo's planted duplicates."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import dedupe, schema
from crm_core.cli import main
from crm_core.store import Store
from tests.conftest import DEMO_CUSTOMERS


def _copy(demo_store_path: Path, target: Path) -> Store:
    shutil.copyfile(demo_store_path, target)
    store = Store(f"duckdb:///{target}")
    store.init_schema()
    return store


@pytest.fixture(scope="module")
def found(demo_store_path: Path, tmp_path_factory) -> Iterator[tuple[Store, dedupe.DuplicateRun]]:
    """A private copy of the demo store and one run at the default threshold."""
    store = _copy(demo_store_path, tmp_path_factory.mktemp("dedupe") / "crm.duckdb")
    calls: list[tuple[float, str]] = []
    run = dedupe.find_duplicates(store, by="tester", progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(calls) >= 5
    yield store, run
    store.dispose()


@pytest.fixture
def writable_demo(backend: str, request, demo_store_path: Path, tmp_path: Path) -> Iterator[Store]:
    """A private copy of the demo store on this test's backend."""
    if backend == "postgresql":
        store = Store(request.getfixturevalue("pg_demo_copy_url"))
        store.init_schema()
    else:
        store = _copy(demo_store_path, tmp_path / "crm.duckdb")
    yield store
    store.dispose()


def test_precision_and_recall_against_the_planted_truth(found) -> None:
    store, run = found
    truth = dedupe.planted_truth(store)
    assert len(truth) >= 0.025 * DEMO_CUSTOMERS
    precision, recall = dedupe.precision_recall(run.pairs, truth)
    assert run.threshold == dedupe.DEFAULT_THRESHOLD
    assert precision >= 0.95, precision
    assert recall >= 0.90, recall
    assert (run.pairs["match_probability"] >= run.threshold).all()
    assert (run.pairs["customer_id_l"] < run.pairs["customer_id_r"]).all()


def test_truth_pairs_link_copies_of_one_original_to_each_other() -> None:
    truth = pd.DataFrame({"customer_id": [11, 12, 13], "duplicate_of": [1, 1, 2], "kind": "x"})
    assert dedupe.truth_pairs(truth) == {(1, 11), (1, 12), (11, 12), (2, 13)}
    found = pd.DataFrame({"customer_id_l": [11, 3], "customer_id_r": [12, 4]})
    assert dedupe.precision_recall(found, truth) == (0.5, 0.25)


def test_clusters_group_each_person_and_read_back(found) -> None:
    store, run = found
    assert run.clusters["size"].min() >= 2
    members = [i for ids in run.clusters["customer_ids"] for i in ids]
    assert len(members) == len(set(members))  # a customer is in one cluster
    for r in run.clusters.itertuples():
        assert r.cluster_id == min(r.customer_ids) and r.customer_ids == sorted(r.customer_ids)
    truth = dedupe.planted_truth(store)
    three = truth["duplicate_of"].value_counts()
    person = int(three.index[three == 2][0])  # an original with two copies
    ids = sorted([person, *truth.loc[truth["duplicate_of"] == person, "customer_id"]])
    assert ids in run.clusters["customer_ids"].tolist()
    latest = dedupe.latest_run(store)
    assert latest is not None and latest.run_id == run.run_id
    pd.testing.assert_frame_equal(
        latest.pairs[[*dedupe._PAIR_COLUMNS, "cluster_id"]],
        run.pairs[[*dedupe._PAIR_COLUMNS, "cluster_id"]],
    )
    stored = dedupe.clusters(store, run.run_id)
    assert stored["customer_ids"].tolist() == run.clusters["customer_ids"].tolist()
    assert json.loads(json.dumps(run.as_dict()))["pairs"][0]["customer_id_l"] > 0
    assert "pairs with a match probability of at least 0.90" in "\n".join(run.summary())


def test_pair_reasons_explain_a_planted_pair(found) -> None:
    store, run = found
    truth = dedupe.planted_truth(store)
    copy = truth[truth["kind"] == "email_case"].iloc[0]
    reasons = dedupe.pair_reasons(store, int(copy["customer_id"]), int(copy["duplicate_of"]))
    assert reasons["comparison"].tolist() == [
        dedupe.PRIOR_LABEL,
        *dedupe.COMPARISONS.values(),
    ]
    by = reasons.set_index("comparison")
    assert by.loc["E-mail", "outcome"] == "exact match after normalising"
    assert by.loc["E-mail", "match_weight"] > 5
    assert by.loc["First and last name", "outcome"] == "exact match"
    assert by.loc["Birth date", "outcome"] == "exact match"
    # what each record holds, "a vs b", unmasked (admins only)
    left, right = by.loc["E-mail", "values"].split(" vs ")
    assert left.lower().replace(".", "") == right.lower().replace(".", "")
    assert "@" in left and "*" not in left
    pair = run.pairs[
        (run.pairs["customer_id_l"] == copy["duplicate_of"])
        & (run.pairs["customer_id_r"] == copy["customer_id"])
    ].iloc[0]
    # the starting point (prior) plus the comparisons add up to the pair's match weight
    assert abs(by.loc[dedupe.PRIOR_LABEL, "match_weight"] - _prior_weight(run)) < 1e-6
    assert abs(reasons["match_weight"].sum() - pair["match_weight"]) < 0.01
    swapped = truth[truth["kind"].str.contains("swapped_names")].iloc[0]
    why = dedupe.pair_reasons(store, int(swapped["duplicate_of"]), int(swapped["customer_id"]))
    assert why.set_index("comparison").loc["First and last name", "outcome"] in (
        "first and last name swapped",
        dedupe._SIMILAR,  # swapped and a typo in one of them
        "different",
    )
    with pytest.raises(dedupe.DuplicateError, match="not a pair of run"):
        dedupe.pair_reasons(store, 1, 2)


def _prior_weight(run: dedupe.DuplicateRun) -> float:
    import math

    p = run.model["probability_two_random_records_match"]
    return math.log2(p / (1 - p))


def test_cli_prints_pairs_and_clusters_as_json(found, monkeypatch, capsys) -> None:
    store, run = found
    monkeypatch.setenv("CRM_DATABASE_URL", str(store.engine.url))
    assert main(["duplicates", "find", "--threshold", "0.95", "--json", "--user", "ana"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run_id"] == run.run_id + 1 and data["threshold"] == 0.95
    assert data["created_by"] == "ana"
    assert data["pairs"] and data["clusters"]
    assert all(p["match_probability"] >= 0.95 for p in data["pairs"])
    assert {"customer_id_l", "customer_id_r", "match_probability", "match_weight"} <= set(
        data["pairs"][0]
    )
    assert set(data["clusters"][0]) == {
        "cluster_id",
        "customer_ids",
        "size",
        "min_probability",
        "max_probability",
    }
    assert len(data["pairs"]) <= len(run.pairs)
    assert main(["duplicates", "find"]) == 0
    out = capsys.readouterr().out
    assert "live customers compared" in out and "clusters" in out
    runs = store.read_df("SELECT run_id, created_by, pairs FROM duplicate_runs ORDER BY run_id")
    assert runs["created_by"].tolist()[-2:] == ["ana", "cli"]
    assert (runs["pairs"] > 0).all()


def test_a_bad_threshold_is_refused(found) -> None:
    store, _ = found
    with pytest.raises(dedupe.DuplicateError, match="between 0 and 1"):
        dedupe.find_duplicates(store, threshold=1.5)


@pytest.mark.both_stores
def test_erased_customers_are_never_candidates(writable_demo: Store) -> None:
    store = writable_demo
    truth = dedupe.planted_truth(store)
    gone = int(truth.iloc[0]["duplicate_of"])
    first = dedupe.find_duplicates(store)
    assert any(gone in ids for ids in first.clusters["customer_ids"])
    c = schema.table("customers")
    with store.begin() as conn:  # erase the person's original record
        pii = {col: None for col in schema.pii_columns("customers")}
        conn.execute(
            c.update().where(c.c.customer_id == gone).values(erased_at=sa.func.now(), **pii)
        )
    assert not any(gone in ids for ids in dedupe.clusters(store, first.run_id)["customer_ids"])
    again = dedupe.find_duplicates(store)
    ids = set(again.pairs["customer_id_l"]) | set(again.pairs["customer_id_r"])
    erased = set(
        store.read_df("SELECT customer_id FROM customers WHERE erased_at IS NOT NULL")[
            "customer_id"
        ]
    )
    assert gone in erased and not ids & erased
    assert again.customers == first.customers - 1
    live = truth[~truth["customer_id"].isin(erased) & ~truth["duplicate_of"].isin(erased)]
    precision, recall = dedupe.precision_recall(again.pairs, live)
    assert precision >= 0.95 and recall >= 0.90


def _customers(store: Store, rows: pd.DataFrame) -> None:
    with store.begin() as conn:
        store.insert_df(conn, "customers", rows.assign(signup_at=pd.Timestamp("2024-01-01")))


def test_a_store_without_phones_or_birth_dates_still_finds_the_obvious_pair(store) -> None:
    _customers(
        store,
        pd.DataFrame(
            {
                "customer_id": [1, 2, 3, 4, 5],
                "email": ["ann.lee@x.example", "bob@x.example", "cy@x.example", None, None],
                "first_name": ["Ann", "Bob", "Cy", "Ann", "Dee"],
                "last_name": ["Lee", "Ray", "Po", "Lee", "Fox"],
                "country": "DE",
            }
        ).assign(email=lambda f: f["email"].where(f["customer_id"] != 4, "ANN.LEE@x.example")),
    )
    run = dedupe.find_duplicates(store)
    assert run.clusters["customer_ids"].tolist() == [[1, 4]]
    reasons = dedupe.pair_reasons(store, 4, 1).set_index("comparison")
    assert reasons.loc["Phone", "outcome"] == "one is missing"
    assert reasons.loc["Phone", "match_weight"] == 0


def test_customers_with_nothing_to_compare_are_refused(store) -> None:
    _customers(store, pd.DataFrame({"customer_id": [1, 2, 3], "country": "DE"}))
    with pytest.raises(dedupe.DuplicateError, match="without names, e-mails, phones"):
        dedupe.find_duplicates(store)
    assert dedupe.latest_run(store) is None and dedupe.clusters(store).empty
    assert dedupe.planted_truth(store).empty

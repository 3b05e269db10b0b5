"""The glossary: every term defined, and churn rate, churn risk and P(alive) kept apart."""

from __future__ import annotations

import pytest

from crm_core import glossary
from crm_core.errors import CRMError
from crm_core.metrics import METRICS

REQUIRED = {
    "churn_rate",
    "churn_risk",
    "p_alive",
    "validation_churn_share",
    "clv",
    "rfm",
    "nps",
    "csat",
    "retention_rate",
    "repeat_purchase_rate",
    "aov",
    "roc_auc",
    "pr_auc",
    "brier",
    "calibration",
    "backtest_error",
    "lift",
    "roi",
    "cohort",
    "funnel_conversion",
}


def test_every_required_term_is_there_once():
    keys = [t.key for t in glossary.TERMS]
    assert len(keys) == len(set(keys))
    assert set(keys) >= REQUIRED


@pytest.mark.parametrize("entry", glossary.TERMS, ids=lambda t: t.key)
def test_every_term_is_fully_described(entry):
    assert entry.name
    for text in (entry.definition, entry.computed, entry.shown):
        assert len(text) > 10, entry.key
    assert entry.definition.rstrip().endswith("."), entry.key
    for other in entry.confused_with:
        assert other in glossary.BY_KEY, (entry.key, other)


@pytest.mark.parametrize(
    ("key", "others"),
    [
        ("churn_rate", ("churn risk", "P(alive)")),
        ("churn_risk", ("churn rate", "P(alive)")),
        ("p_alive", ("churn risk", "churn rate")),
        ("validation_churn_share", ("churn rate", "churn risk")),
    ],
)
def test_the_churn_words_each_name_what_they_are_not(key, others):
    entry = glossary.term(key)
    assert entry.not_.startswith("Not ")
    for other in others:
        assert other.lower() in entry.not_.lower(), (key, other)
    assert set(entry.confused_with) >= {"churn_rate", "churn_risk"} - {key}


def test_kpi_help_says_what_the_kpi_card_and_glossary_say():
    for name, metric in METRICS.items():
        help_text = glossary.kpi_help(name)
        assert help_text.startswith(metric.description), name
        if name in glossary.BY_KEY:
            assert help_text == glossary.help_for(name)
    assert "churn risk" in glossary.kpi_help("churn_rate")


def test_help_for_is_definition_and_what_it_is_not():
    entry = glossary.term("roc_auc")
    assert glossary.help_for("roc_auc") == f"{entry.definition} {entry.not_}"
    with pytest.raises(CRMError, match="no term 'churn'.*churn_rate"):
        glossary.help_for("churn")


def test_search_matches_every_word_in_any_case():
    assert glossary.search("") == list(glossary.TERMS)
    churn_terms = {t.key for t in glossary.search("CHURN")}
    assert {"churn_rate", "churn_risk", "p_alive", "validation_churn_share"} <= churn_terms
    assert [t.key for t in glossary.search("area under")] == ["roc_auc"]
    assert glossary.search("no such word zzz") == []

"""AppTest: the lead scores on the Funnels page (validation, capacity threshold, open leads)
and the note when the stored lead scores predate an import of leads."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crm_core import ingest
from crm_core.analytics import lead_scoring
from crm_core.store import get_store
from crm_ui import data, plain
from tests.app.conftest import errors, sign_in

ROLES = ["admin", "manager", "marketer", "analyst"]
FUNNELS = "app_pages/funnels.py"
STORED = "The stored lead scores"


def open_funnels(signed_in, role: str):
    at = signed_in(role)
    at.switch_page(FUNNELS).run()
    assert not at.exception, at.exception
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def captions(at) -> str:
    return " ".join(c.value for c in at.caption)


@pytest.mark.parametrize("role", ROLES)
def test_funnels_page_shows_lead_scores_beside_their_validation(signed_in, role):
    at = open_funnels(signed_in, role)
    assert not errors(at)
    model, baseline = metric(at, "ROC AUC"), metric(at, "Source-only AUC")
    assert float(model) > float(baseline)
    assert metric(at, "MQL threshold").endswith("%")
    text = captions(at)
    assert "validated on those open at cutoffs" in text
    # The expected wins say their time frame: won within the window, not a week.
    window = lead_scoring.DEFAULT_WINDOW_DAYS
    assert f"to be won within {window} days of" in text
    assert metric(at, f"Wins in {window} days")
    help_ = next(m.proto.help for m in at.metric if m.label == "ROC AUC")
    assert "lead model" in help_ and "Funnels" not in help_  # the glossary's words
    shown = [df.value for df in at.dataframe]
    assert any("lead_score_reasons" in str(list(frame.columns)) for frame in shown)
    # The top lead's reasons in full under the table (the column cuts long ones).
    leads = next(frame for frame in shown if "lead_score_reasons" in frame.columns)
    top = leads.iloc[0]
    full = next(m.value for m in at.markdown if m.value.startswith("**Why lead"))
    assert full.startswith(f"**Why lead {top['lead_id']} scores")
    assert full.endswith(top["lead_score_reasons"])


def test_more_sales_capacity_lowers_the_threshold_and_wins_more(signed_in):
    at = open_funnels(signed_in, "marketer")
    wins = f"Wins in {lead_scoring.DEFAULT_WINDOW_DAYS} days"
    before = float(metric(at, wins).replace(",", ""))
    threshold = float(metric(at, "MQL threshold").rstrip("%"))
    at.number_input(key="lead_capacity").set_value(1).run()
    assert not at.exception
    after = float(metric(at, wins).replace(",", ""))
    assert float(metric(at, "MQL threshold").rstrip("%")) > threshold
    assert after < before


def test_capacity_above_the_new_leads_says_call_every_lead(signed_in):
    at = open_funnels(signed_in, "marketer")
    at.number_input(key="lead_capacity").set_value(100_000).run()
    assert not at.exception and not errors(at)
    assert metric(at, "MQL threshold") == "Every new lead"
    assert "Call every new lead: a capacity of 100,000 a week is more than the" in captions(at)
    assert "0.0%" not in captions(at)


def test_stored_lead_scores_computed_before_an_import_of_leads_say_so(own_store, tmp_path):
    store = get_store()
    lead_scoring.score(store)
    at = sign_in("analyst", page=FUNNELS)
    assert not at.exception, at.exception
    assert f"{STORED} (the lead_score of Customer 360, segments and exports) were computed" in (
        captions(at)
    )
    assert not [w for w in at.warning if STORED in w.value]
    scored = int(metric(at, "Leads scored").replace(",", ""))
    # A lead imported from the command line, after the scores were written.
    path = tmp_path / "leads.csv"
    day = lead_scoring.read_leads(store).last_day - timedelta(days=1)  # within the data
    path.write_text(f"lead_id,created_at,source,stage\n99000001,{day} 10:00:00,webinar,lead\n")
    ingest.import_file(store, "leads", path, user="cli")
    plain.last_import.clear()  # as a minute later: the app's caches did not hear of it
    at = sign_in("analyst", page=FUNNELS)
    assert not at.exception, at.exception
    notes = [w.value for w in at.warning if STORED in w.value]
    assert notes and "before the import of" in notes[0]
    assert "an admin does it on the Data import page" in notes[0]
    # The page's own scores were computed again, from the data with the new lead.
    assert int(metric(at, "Leads scored").replace(",", "")) == scored + 1
    # Scoring again (as the Data import page does) clears the note.
    lead_scoring.score(store)
    data.tables_changed("lead_scores")
    at = sign_in("admin", page=FUNNELS)
    assert not [w for w in at.warning if STORED in w.value]

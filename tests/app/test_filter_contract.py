"""Every view says what the sidebar filters do on it, and the ones that use them change."""

from __future__ import annotations

import pytest

from crm_ui.views import VIEWS
from tests.app.conftest import errors

FIGURE_VIEWS = list(VIEWS)


def test_every_view_with_figures_declares_its_filters():
    for view in FIGURE_VIEWS:
        assert len(view.filters_note) > 40, view.key


@pytest.mark.slow
def test_each_view_shows_its_filter_note_under_the_title(signed_in):
    at = signed_in("admin")
    for view in FIGURE_VIEWS:
        at.switch_page(view.path).run()
        assert not at.exception, (view.key, at.exception)
        captions = [c.value for c in at.caption]
        assert any(view.filters_note in c for c in captions), (view.key, captions[:3])


def test_segmentation_counts_only_the_customers_of_the_chosen_country(signed_in):
    at = signed_in("analyst")
    at.switch_page("app_pages/segmentation.py").run()
    everyone = next(c.value for c in at.caption if c.value.startswith("RFM as of"))
    country = at.sidebar.multiselect(key="filter_countries").options[0]
    at.sidebar.multiselect(key="filter_countries").select(country).run()
    assert not at.exception and not errors(at)
    in_country = next(c.value for c in at.caption if c.value.startswith("RFM as of"))
    assert in_country != everyone

    def count(caption: str) -> int:
        return int(caption.split(": ")[1].split(" customers")[0].replace(",", ""))

    assert 0 < count(in_country) < count(everyone)

"""Caches are forgotten by the tables a write touched, through one registry (crm_ui.data)."""

from __future__ import annotations

import pytest

from crm_ui import data, insight_ui, model_ui, segment_ui


def test_every_cached_read_declares_known_tables():
    with pytest.raises(ValueError, match="unknown tables"):
        data.reads("order")(lambda: None)
    readers = {id(f) for fs in data._READERS.values() for f in fs}
    for module in (data, insight_ui, model_ui, segment_ui):
        for name in dir(module):
            func = getattr(module, name)
            if name != "store" and hasattr(func, "clear") and hasattr(func, "__wrapped__"):
                assert id(func) in readers, f"{module.__name__}.{name} declares no tables"


def test_a_write_forgets_only_what_reads_the_tables_it_touched(app_env):
    calls: dict[str, int] = {}

    # Streamlit keys a cache by the function's code, so each needs a body of its own.
    @data.reads("orders", "customers", show_spinner=False)
    def kpis(x: int) -> None:
        calls["kpis"] = calls.get("kpis", 0) + x

    @data.reads("leads", show_spinner=False)
    def leads(x: int) -> None:
        calls["leads"] = calls.get("leads", 0) + x

    @data.reads("customer_360", show_spinner=False)
    def profile_360(x: int) -> None:
        calls["360"] = calls.get("360", 0) + x

    @data.reads("segments", "segment_sizes", show_spinner=False)
    def saved(x: int) -> None:
        calls["saved"] = calls.get("saved", 0) + x

    def run_all() -> None:
        for read in (kpis, leads, profile_360, saved):
            read(1)

    run_all()
    run_all()
    assert calls == {"kpis": 1, "leads": 1, "360": 1, "saved": 1}

    data.tables_changed("segments", "segment_sizes")  # a segment save
    run_all()
    assert calls == {"kpis": 1, "leads": 1, "360": 1, "saved": 2}

    data.tables_changed("customer_scores")  # a scoring run: the 360 table is rebuilt from it
    run_all()
    assert calls == {"kpis": 1, "leads": 1, "360": 2, "saved": 2}

    data.tables_changed("orders")  # an import of orders
    run_all()
    assert calls == {"kpis": 2, "leads": 1, "360": 3, "saved": 2}

    data.tables_changed("leads")
    run_all()
    assert calls == {"kpis": 2, "leads": 2, "360": 3, "saved": 2}


def test_the_in_app_scheduler_makes_pages_forget_what_its_runs_wrote(app_env):
    """make run's server hands the scheduler thread a hook that forgets cached reads of the
    run log and of what an export writes (its audit row, the segment's size)."""
    from crm_core.schedules import RUN_TABLES
    from crm_ui import server

    calls: dict[str, int] = {}

    @data.reads("export_log", show_spinner=False)
    def exports(x: int) -> None:
        calls["exports"] = calls.get("exports", 0) + x

    @data.reads("orders", show_spinner=False)
    def orders(x: int) -> None:
        calls["orders"] = calls.get("orders", 0) + x

    exports(1), orders(1), exports(1), orders(1)
    server.forget_cached_reads([])
    exports(1), orders(1)
    assert calls == {"exports": 2, "orders": 1}
    assert {"schedule_runs", "deliveries", "export_log", "segment_sizes"} <= set(RUN_TABLES)

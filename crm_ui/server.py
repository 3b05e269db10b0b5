"""`python -m crm_ui.server [streamlit options]`: the app's Streamlit server with the scheduler
running in it (`make run`).

One process, because DuckDB lets one process open the store file: the scheduler thread and
the pages share the store (crm_core.store.get_store). Ctrl+C stops both. CRM_SCHEDULER=off
serves the app alone (then run `python -m crm_core scheduler` elsewhere).
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"


def forget_cached_reads(runs: list) -> None:
    """After the scheduler thread ran jobs: forget the pages' cached reads of the tables a
    run writes (run log, an export's audit row, a segment's size), so pages show them."""
    from crm_core.schedules import RUN_TABLES
    from crm_ui import data

    data.tables_changed(*RUN_TABLES)


def main(argv: list[str] | None = None) -> None:
    """Start the scheduler thread, then serve app.py with the given Streamlit options."""
    from streamlit.web import cli

    from crm_core import scheduler

    if scheduler.start_in_app(on_runs=forget_cached_reads):
        print("Scheduler: running inside this server (CRM_SCHEDULER=off turns it off).")
    sys.argv = ["streamlit", "run", str(APP), *(sys.argv[1:] if argv is None else argv)]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()

"""The scheduler: every poll, claim each due schedule and run it (crm_core/schedules.py).

It runs as `python -m crm_core scheduler [--once]` (servers; on PostgreSQL several may run
at once: a claimed row makes each slot run once) and, under `make run`, as a thread of the
Streamlit server (`start_in_app`, called by crm_ui/server.py): DuckDB lets one process open
the store file, so a second process could not read it while the app runs.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from crm_core import schedules
from crm_core.config import get_settings
from crm_core.schedules import Run
from crm_core.store import Store, close_all, get_store, utcnow

log = logging.getLogger(__name__)


def runner_name() -> str:
    """This process as a runner: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_pending(
    store: Store,
    *,
    now: datetime | None = None,
    runner: str | None = None,
    lease: timedelta = schedules.DEFAULT_LEASE,
) -> list[Run]:
    """Claim and run every schedule due at `now`; the runs this runner made."""
    now = now or utcnow()
    runner = runner or runner_name()
    done: list[Run] = []
    for due in schedules.due_schedules(store, now):
        if not schedules.claim(store, due.schedule_id, runner=runner, now=now, lease=lease):
            continue  # another scheduler has it
        try:
            claimed = schedules.get_schedule(store, due.schedule_id)
            done.append(
                schedules.run_schedule(
                    store, claimed, due_at=claimed.next_due_at, now=now, runner=runner
                )
            )
        except Exception:  # the log could not be written (store down): try again later
            log.exception("scheduler %s: schedule %s could not run", runner, due.name)
            try:
                schedules.release(store, due.schedule_id, runner=runner)
            except Exception:
                log.exception("scheduler %s: could not release schedule %s", runner, due.name)
    return done


def serve(
    store: Store,
    *,
    clock: Callable[[], datetime] = utcnow,
    poll_seconds: float | None = None,
    stop: threading.Event,
    runner: str | None = None,
    on_runs: Callable[[list[Run]], None] | None = None,
) -> None:
    """Run due schedules every `poll_seconds` until `stop` is set (never raises); `on_runs`
    hears of each poll's runs (the app forgets its cached reads of what they wrote)."""
    poll = get_settings().scheduler_poll_seconds if poll_seconds is None else poll_seconds
    runner = runner or runner_name()
    log.info("scheduler %s: polling every %s s", runner, poll)
    try:
        for gone in schedules.release_abandoned(store, socket.gethostname(), _alive):
            log.warning("scheduler %s: freed the claims of stopped runner %s", runner, gone)
    except Exception:
        log.exception("scheduler %s: could not free abandoned claims", runner)
    while not stop.is_set():
        try:
            runs = run_pending(store, now=clock(), runner=runner)
            for run in runs:
                log.info(
                    "scheduler %s: %s -> %s %s", runner, run.schedule_name, run.result, run.message
                )
            if runs and on_runs is not None:
                on_runs(runs)
        except Exception:  # e.g. the database restarts: keep polling
            log.exception("scheduler %s: poll failed", runner)
        stop.wait(max(0.05, float(poll)))


_APP_LOCK = threading.Lock()
_APP_THREAD: threading.Thread | None = None
_APP_STOP = threading.Event()


def start_in_app(
    store: Store | None = None, on_runs: Callable[[list[Run]], None] | None = None
) -> bool:
    """Start the scheduler as a daemon thread of this process, once (`make run`'s server,
    crm_ui/server.py, calls it); False when CRM_SCHEDULER=off."""
    global _APP_THREAD
    if get_settings().scheduler == "off":
        return False
    with _APP_LOCK:
        if _APP_THREAD is not None and _APP_THREAD.is_alive():
            return True
        target = store or get_store()
        _APP_STOP.clear()
        _APP_THREAD = threading.Thread(
            target=serve,
            kwargs={"store": target, "stop": _APP_STOP, "on_runs": on_runs},
            name="crm-scheduler",
            daemon=True,
        )
        _APP_THREAD.start()
        atexit.register(stop_in_app)
        return True


def stop_in_app(timeout: float = 10.0) -> None:
    """Stop the in-app scheduler thread (at exit: a run in progress may finish for
    `timeout` seconds, then the store's connections are closed)."""
    _APP_STOP.set()
    if _APP_THREAD is not None:
        _APP_THREAD.join(timeout)
        if not _APP_THREAD.is_alive():
            close_all()

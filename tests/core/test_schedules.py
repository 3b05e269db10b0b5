"""Schedules and the scheduler on real stores, with an injected clock.

Due jobs run once; missed slots catch up once; pause stops runs; two schedulers (threads
with a Store and engine each) racing on PostgreSQL never run a slot twice; a scheduled
export keeps its file, manifest and audit row when its delivery fails.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from crm_core import auth, features, scheduler, schedules, segments
from crm_core.cli import main
from crm_core.errors import CRMError, ScheduleError
from crm_core.schedules import next_due
from crm_core.schema import deliveries, export_log, schedule_runs
from crm_core.store import Store
from tests.core import tiny

pytestmark = pytest.mark.both_stores

T0 = datetime(2026, 3, 2, 6, 0)  # a Monday, 06:00 UTC
EVERYONE = {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 1}]}


def _quick_job(seconds: float = 0.0):
    """A report job that takes `seconds` and sends nothing (the scheduler is under test)."""

    def job(store, schedule):
        time.sleep(seconds)
        return schedules._Outcome("sent", f"ran {schedule.name}", {"stub": True})

    return job


@pytest.fixture
def quick_reports(monkeypatch):
    monkeypatch.setitem(schedules.JOBS, "report", _quick_job())


def _add_report(store: Store, name: str, folder, *, cron: str = "0 7 * * *", now=T0, tz="UTC"):
    if auth.get_user(store, "ops") is None:  # an admin: reports to a folder on the server
        auth.add_user(store, "ops", "admin", "a long enough password")
    return schedules.add_schedule(
        store,
        name,
        kind="report",
        target="overview",
        cron=cron,
        timezone=tz,
        destinations=[{"kind": "folder", "path": str(folder)}],
        owner="ops",
        now=now,
    )


def _run_rows(store: Store) -> list:
    with store.connect() as conn:
        return list(conn.execute(sa.select(schedule_runs).order_by(schedule_runs.c.run_id)))


# --- cron in a time zone -----------------------------------------------------------------


def test_next_due_reads_cron_in_the_zone_and_returns_naive_utc():
    # 07:00 in Berlin is 06:00 UTC in winter, 05:00 UTC in summer.
    assert next_due("0 7 * * *", "Europe/Berlin", datetime(2026, 1, 10, 12)) == datetime(
        2026, 1, 11, 6
    )
    assert next_due("0 7 * * *", "Europe/Berlin", datetime(2026, 7, 1, 4)) == datetime(
        2026, 7, 1, 5
    )
    assert next_due("0 7 * * *", "UTC", datetime(2026, 7, 1, 7)) == datetime(2026, 7, 2, 7)


def test_next_due_across_dst_like_cron():
    # Spring forward (29 Mar 2026, 02:00 -> 03:00 in Berlin): 02:30 does not exist; it runs
    # at 03:00 CEST (01:00 UTC) that day, and at 02:30 CEST the next.
    assert next_due("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12)) == datetime(
        2026, 3, 29, 1
    )
    assert next_due("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 29, 1)) == datetime(
        2026, 3, 30, 0, 30
    )
    # Fall back (25 Oct 2026): 02:30 happens twice; the job runs once, on the first.
    first = next_due("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12))
    assert first == datetime(2026, 10, 25, 0, 30)
    assert next_due("30 2 * * *", "Europe/Berlin", first) == datetime(2026, 10, 26, 1, 30)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"cron": "0 7 * *"}, "five fields"),
        ({"cron": "0 25 * * *"}, "Cron"),
        ({"timezone": "Mars/Olympus"}, "Time zone"),
        ({"kind": "sms"}, "kind"),
        ({"target": "weekly"}, "Report"),
        ({"destinations": []}, "at least one destination"),
        ({"name": ""}, "name"),
    ],
)
def test_add_refuses_bad_input(store, tmp_path, changes, words):
    auth.add_user(store, "ops", "admin", "a long enough password")  # the owner is checked first
    given = {
        "kind": "report",
        "target": "overview",
        "cron": "0 7 * * *",
        "timezone": "UTC",
        "destinations": [{"kind": "folder", "path": str(tmp_path)}],
        "owner": "ops",
        **changes,
    }
    name = given.pop("name", "daily")
    with pytest.raises(CRMError, match=words):
        schedules.add_schedule(store, name, **given)


def test_add_list_and_duplicate_name(store, tmp_path):
    saved = _add_report(store, "daily-kpis", tmp_path, tz="Europe/Berlin")
    assert saved.next_due_at == datetime(2026, 3, 3, 6)  # 07:00 CET
    listed = schedules.list_schedules(store)
    assert listed["name"].tolist() == ["daily-kpis"] and not listed["paused"].iloc[0]
    assert listed["destinations"].iloc[0] == [{"kind": "folder", "path": str(tmp_path)}]
    with pytest.raises(ScheduleError, match="already exists"):
        _add_report(store, "Daily-KPIs", tmp_path)


# --- the scheduler -------------------------------------------------------------------------


def test_a_due_job_runs_once(store, tmp_path, quick_reports):
    _add_report(store, "daily", tmp_path)
    assert scheduler.run_pending(store, now=T0 + timedelta(minutes=59), runner="a") == []
    due = T0 + timedelta(hours=1)
    done = scheduler.run_pending(store, now=due, runner="a")
    assert [(r.schedule_name, r.result, r.due_at, r.runner) for r in done] == [
        ("daily", "sent", due, "a")
    ]
    assert scheduler.run_pending(store, now=due + timedelta(minutes=1), runner="a") == []
    after = schedules.load_schedule(store, "daily")
    assert after.next_due_at == due + timedelta(days=1)
    assert after.claimed_by is None and after.claimed_until is None
    (row,) = _run_rows(store)
    assert row.result == "sent" and row.finished_at >= row.started_at == due


def test_missed_slots_run_once_on_the_next_poll(store, tmp_path, quick_reports):
    _add_report(store, "daily", tmp_path)
    back = T0 + timedelta(days=3, hours=5)  # the app was down for three 07:00 slots
    done = scheduler.run_pending(store, now=back, runner="a")
    assert len(done) == 1 and done[0].due_at == T0 + timedelta(hours=1)
    assert schedules.load_schedule(store, "daily").next_due_at == datetime(2026, 3, 6, 7)
    assert schedules.load_schedule(store, "daily").next_due_at > back
    assert scheduler.run_pending(store, now=back + timedelta(seconds=30), runner="a") == []
    assert len(_run_rows(store)) == 1


def test_pause_stops_runs_and_resume_skips_missed_slots(store, tmp_path, quick_reports):
    _add_report(store, "daily", tmp_path)
    paused = schedules.pause(store, "daily", by="ops", now=T0)
    assert paused.paused and paused.next_due_at is None
    assert scheduler.run_pending(store, now=T0 + timedelta(days=2), runner="a") == []
    resumed = schedules.resume(store, "daily", by="ops", now=T0 + timedelta(days=2))
    assert not resumed.paused and resumed.next_due_at == datetime(2026, 3, 4, 7)
    assert _run_rows(store) == []


def test_a_failing_job_is_a_result_not_a_crash(store, tmp_path, monkeypatch):
    def broken(store, schedule):
        raise RuntimeError("the model server is down")

    monkeypatch.setitem(schedules.JOBS, "report", broken)
    _add_report(store, "daily", tmp_path)
    (run,) = scheduler.run_pending(store, now=T0 + timedelta(hours=2), runner="a")
    assert run.result == "failed" and "the model server is down" in run.message
    # The slot is used up and the claim released: the next run is tomorrow's.
    after = schedules.load_schedule(store, "daily")
    assert after.next_due_at == datetime(2026, 3, 3, 7) and after.claimed_by is None


def test_claim_has_one_winner_and_a_lapsed_claim_is_free_again(store, tmp_path):
    saved = _add_report(store, "daily", tmp_path)
    now = T0 + timedelta(hours=2)
    assert schedules.claim(store, saved.schedule_id, runner="a", now=now)
    assert not schedules.claim(store, saved.schedule_id, runner="b", now=now)
    later = now + schedules.DEFAULT_LEASE + timedelta(seconds=1)
    assert schedules.claim(store, saved.schedule_id, runner="b", now=later)
    assert schedules.load_schedule(store, "daily").claimed_by == "b"


def test_a_job_not_yet_due_cannot_be_claimed(store, tmp_path):
    saved = _add_report(store, "daily", tmp_path)
    assert not schedules.claim(store, saved.schedule_id, runner="a", now=T0)


def _race(url: str, work, runners: int = 2) -> list:
    """Run `work(store, runner)` in `runners` threads at once, each with its own Store."""
    barrier = threading.Barrier(runners)
    results: list = [None] * runners
    errors: list[BaseException] = []

    def go(i: int) -> None:
        own = Store(url)
        try:
            barrier.wait(timeout=30)
            results[i] = work(own, f"runner-{i}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return results


def test_racing_claims_have_exactly_one_winner(store, tmp_path, backend):
    saved = _add_report(store, "daily", tmp_path)
    now = T0 + timedelta(hours=2)
    for _ in range(5):
        won = _race(
            store.url,
            lambda own, runner: schedules.claim(own, saved.schedule_id, runner=runner, now=now),
            4,
        )
        assert sorted(won) == [False, False, False, True]
        schedules.release(
            store, saved.schedule_id, runner=schedules.load_schedule(store, "daily").claimed_by
        )


def test_two_schedulers_never_run_a_slot_twice(store, tmp_path, backend, monkeypatch):
    monkeypatch.setitem(schedules.JOBS, "report", _quick_job(0.3))
    for i in range(4):
        _add_report(store, f"report-{i}", tmp_path)
    now = T0 + timedelta(days=3)  # every slot missed: each runs once
    done = _race(store.url, lambda own, runner: scheduler.run_pending(own, now=now, runner=runner))
    names = sorted(run.schedule_name for runs_ in done for run in runs_)
    assert names == [f"report-{i}" for i in range(4)]
    rows = _run_rows(store)
    assert len(rows) == 4 and len({row.schedule_id for row in rows}) == 4
    assert {row.runner for row in rows} <= {"runner-0", "runner-1"}
    # A second round at the same time finds nothing due.
    again = _race(store.url, lambda own, runner: scheduler.run_pending(own, now=now, runner=runner))
    assert again == [[], []]


def test_a_stopped_runners_claim_is_freed_at_the_next_start(store, tmp_path, quick_reports):
    saved = _add_report(store, "daily", tmp_path)
    now = T0 + timedelta(hours=2)
    assert schedules.claim(store, saved.schedule_id, runner="box:4242", now=now)
    schedules._start_run(store, saved, due_at=saved.next_due_at, now=now, runner="box:4242")
    # The app stopped mid-run: the claim holds until its lease lapses...
    assert scheduler.run_pending(store, now=now + timedelta(minutes=1), runner="box:1") == []
    # ...unless a scheduler on the same host sees that process 4242 is gone.
    assert schedules.release_abandoned(store, "other", lambda pid: False) == []
    assert schedules.release_abandoned(store, "box", lambda pid: pid != 4242) == ["box:4242"]
    (run,) = scheduler.run_pending(store, now=now + timedelta(minutes=1), runner="box:1")
    assert run.result == "sent"
    results = [(row.runner, row.result) for row in _run_rows(store)]
    assert results == [("box:4242", "failed"), ("box:1", "sent")]


def test_serve_polls_until_stopped(store, tmp_path, quick_reports):
    _add_report(store, "daily", tmp_path)
    clock_now = [T0]
    stop = threading.Event()
    heard: list[list] = []  # what the app's server hears (it forgets cached reads then)
    thread = threading.Thread(
        target=scheduler.serve,
        kwargs={
            "store": store,
            "clock": lambda: clock_now[0],
            "poll_seconds": 0.05,
            "stop": stop,
            "on_runs": heard.append,
        },
    )
    thread.start()
    try:
        time.sleep(0.3)
        assert _run_rows(store) == []
        clock_now[0] = T0 + timedelta(hours=1, seconds=5)
        deadline = time.monotonic() + 10
        while not _run_rows(store) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert [row.result for row in _run_rows(store)] == ["sent"]
    assert [[run.schedule_name for run in runs] for runs in heard] == [["daily"]]


# --- scheduled exports -------------------------------------------------------------------


@pytest.fixture
def shop(store):
    """The tiny store with a saved segment and a marketer who owns the export."""
    tiny.load(store)
    features.refresh(store)
    segments.save_segment(store, "Everyone", EVERYONE, owner="mia")
    auth.add_user(store, "mia", "marketer", "a long enough password")
    auth.add_user(store, "ana", "analyst", "a long enough password")
    return store


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_export_keeps_file_manifest_and_audit_row_when_delivery_fails(shop, tmp_path, monkeypatch):
    monkeypatch.setattr(schedules, "DELIVERY_BACKOFF", (0.0, 0.0))
    outbox = tmp_path / "outbox"
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    schedules.add_schedule(
        shop,
        "weekly-list",
        kind="export",
        target="Everyone",
        cron="0 8 * * MON",
        timezone="Europe/Berlin",
        destinations=[
            {"kind": "folder", "path": str(outbox)},
            {"kind": "webhook", "url": url, "secret": "ab" * 16},
        ],
        owner="mia",
        options={"format": "csv"},
        now=T0,
    )
    (run,) = scheduler.run_pending(shop, now=T0 + timedelta(days=7), runner="a")
    assert run.result == "delivery_failed"
    assert "webhook" in run.message and run.file_path
    # The file and its manifest stay in <data_dir>/exports; the audit row names the owner.
    exported = tmp_path / "exports"
    kept = next(exported.glob("everyone_v1_*.csv"))
    assert str(kept.resolve()) == run.file_path
    assert (kept.parent / (kept.name + ".manifest.json")).is_file()
    manifest = json.loads((kept.parent / (kept.name + ".manifest.json")).read_text())
    assert manifest["exported_by"] == "mia" and manifest["role"] == "marketer"
    log = shop.read_df(sa.select(export_log))
    assert log["exported_by"].tolist() == ["mia"] and log["file_name"].tolist() == [run.file_path]
    # The folder got the file and the manifest; the webhook failed after its tries.
    delivered = {p.name: p for p in outbox.rglob("*") if p.is_file()}
    assert {kept.name, kept.name + ".manifest.json"} <= set(delivered)
    assert delivered[kept.name].read_bytes() == kept.read_bytes()
    sent = shop.read_df(sa.select(deliveries).order_by(deliveries.c.delivery_id))
    assert sent["run_id"].tolist() == [run.run_id, run.run_id]
    assert sent["status"].tolist() == ["sent", "failed"] and sent["attempts"].tolist() == [1, 2]
    assert run.delivery_ids == sent["delivery_id"].tolist()
    history = schedules.runs(shop, "weekly-list")
    assert history["deliveries"].iloc[0][1]["status"] == "failed"


def test_export_owner_role_decides_personal_columns(shop, tmp_path):
    # An analyst may export lists without personal columns, but not schedule exports at all:
    # the role is checked first, so the message names what the role may not do.
    with pytest.raises(CRMError, match="analyst role may not schedule exports"):
        schedules.add_schedule(
            shop,
            "analyst-list",
            kind="export",
            target="Everyone",
            cron="0 8 * * *",
            destinations=[],
            owner="ana",
            options={"channel": "none", "columns": ["email"]},
        )
    with pytest.raises(ScheduleError, match="no user"):
        schedules.add_schedule(
            shop,
            "ghost-list",
            kind="export",
            target="Everyone",
            cron="0 8 * * *",
            destinations=[],
            owner="ghost",
        )


# --- the CLI -----------------------------------------------------------------------------


def test_cli_add_list_run_pause_history(shop, tmp_path, capsys):
    outbox = tmp_path / "outbox"
    args = ["schedules", "add", "nightly-list", "--export", "Everyone", "--cron", "0 2 * * *"]
    args += ["--timezone", "Europe/Berlin", "--folder", str(outbox), "--owner", "mia"]
    assert main(args) == 0
    assert "Added schedule 'nightly-list'" in capsys.readouterr().out
    assert main(["schedules", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["name"] == "nightly-list" and listed[0]["timezone"] == "Europe/Berlin"
    assert main(["schedules", "run", "nightly-list"]) == 0
    out = capsys.readouterr().out
    assert "sent" in out and len(list(outbox.rglob("*.csv"))) == 1
    assert main(["schedules", "pause", "nightly-list", "--user", "mia"]) == 0
    assert "paused" in capsys.readouterr().out
    assert main(["schedules", "history", "nightly-list"]) == 0
    out = capsys.readouterr().out
    assert "by hand" in out and "folder sent" in out and " cli " in out
    assert main(["schedules", "run", "no-such"]) == 2
    assert "No schedule called 'no-such'" in capsys.readouterr().err


# --- alert and report jobs (real modules, folder delivery) -------------------------------


@pytest.mark.parametrize(("op", "fires"), [("above", True), ("below", False)])
def test_alert_schedule_delivers_only_when_it_fires(shop, tmp_path, op, fires):
    alerts = pytest.importorskip("crm_core.alerts")
    definition = {
        "measure": {"kind": "segment_size", "segment": "Everyone"},
        "condition": {"kind": "threshold", "op": op, "value": 1},
    }
    alerts.save_alert(shop, "everyone-size", definition, owner="ana")
    outbox = tmp_path / "alerts"
    schedules.add_schedule(
        shop,
        "size-watch",
        kind="alert",
        target="everyone-size",
        cron="*/15 * * * *",
        destinations=[{"kind": "folder", "path": str(outbox)}],
        owner="mia",
        now=T0,
    )
    (run,) = scheduler.run_pending(shop, now=T0 + timedelta(minutes=15), runner="a")
    assert run.result == ("fired" if fires else "quiet"), run.message
    assert run.detail["alert"] == "everyone-size" and run.detail["fired"] is fires
    assert bool(run.delivery_ids) is fires
    assert outbox.exists() is fires


def test_report_schedule_sends_the_overview(shop, tmp_path):
    outbox = tmp_path / "reports"
    schedules.add_schedule(
        shop,
        "daily-kpis",
        kind="report",
        target="overview",
        cron="0 7 * * *",
        destinations=[{"kind": "folder", "path": str(outbox)}],
        owner="mia",
        now=T0,
    )
    run = schedules.run_schedule(
        shop, schedules.load_schedule(shop, "daily-kpis"), due_at=None, runner="cli"
    )
    assert run.result == "sent", run.message
    assert len(run.delivery_ids) == 1
    files = [p.name for p in outbox.rglob("*") if p.is_file()]
    assert any(name.endswith(".csv") for name in files), files
    # A run by hand leaves the schedule's slot alone.
    assert schedules.load_schedule(shop, "daily-kpis").next_due_at == T0 + timedelta(hours=1)


def test_a_firing_alert_reaches_a_real_smtp_server(shop, monkeypatch):
    """The alert's sentence arrives by e-mail through an SMTP server on loopback."""
    alerts = pytest.importorskip("crm_core.alerts")
    from tests.core.receivers import smtp_server

    definition = {
        "measure": {"kind": "segment_size", "segment": "Everyone"},
        "condition": {"kind": "threshold", "op": "above", "value": 1},
    }
    alerts.save_alert(shop, "everyone-size", definition, owner="ana")
    schedules.add_schedule(
        shop,
        "size-mail",
        kind="alert",
        target="everyone-size",
        cron="0 7 * * *",
        destinations=[{"kind": "email", "to": ["ops@example.com"]}],
        owner="mia",
        now=T0,
    )
    with smtp_server() as inbox:
        monkeypatch.setenv("CRM_SMTP_URL", f"smtp://127.0.0.1:{inbox.port}")
        monkeypatch.setenv("CRM_MAIL_FROM", "crm@example.com")
        (run,) = scheduler.run_pending(shop, now=T0 + timedelta(days=1), runner="a")
    assert run.result == "fired", run.message
    [mail] = inbox.messages
    assert mail["To"] == "ops@example.com" and mail["From"] == "crm@example.com"
    expected = alerts.evaluate(shop, definition).message
    assert expected in mail.get_body(preferencelist=("plain",)).get_content()


def test_a_schedule_runs_with_its_owners_rights(shop, tmp_path):
    """Roles decide what a schedule may do, in the core (so the CLI and the page agree)."""
    segments.save_segment(shop, "Anas list", EVERYONE, owner="ana")
    auth.add_user(shop, "max", "manager", "a long enough password")
    inside = tmp_path / "outbox"  # the data folder of the `store` fixture is tmp_path

    def add(name: str, owner: str, kind: str, target: str, folder) -> None:
        schedules.add_schedule(
            shop,
            name,
            kind=kind,
            target=target,
            cron="0 7 * * *",
            destinations=[{"kind": "folder", "path": str(folder)}],
            owner=owner,
            now=T0,
        )

    with pytest.raises(ScheduleError, match="its owner's rights"):
        add("a", "nobody", "report", "overview", inside)
    with pytest.raises(CRMError, match="may not (schedule )?export"):
        add("b", "max", "export", "Everyone", inside)
    with pytest.raises(ScheduleError, match="belongs to ana"):
        add("c", "mia", "export", "Anas list", inside)
    with pytest.raises(ScheduleError, match="inside the app's data folder"):
        add("d", "mia", "export", "Everyone", tmp_path.parent / "elsewhere")
    add("e", "mia", "export", "Everyone", inside)
    add("f", "max", "report", "overview", inside)
    assert set(schedules.list_schedules(shop)["name"]) == {"e", "f"}


def test_an_alert_in_use_by_a_schedule_cannot_be_deleted(shop, tmp_path):
    alerts = pytest.importorskip("crm_core.alerts")
    definition = {
        "measure": {"kind": "segment_size", "segment": "Everyone"},
        "condition": {"kind": "threshold", "op": "above", "value": 1},
    }
    alerts.save_alert(shop, "everyone-size", definition, owner="ana")
    schedules.add_schedule(
        shop,
        "size-watch",
        kind="alert",
        target="everyone-size",
        cron="0 7 * * *",
        destinations=[{"kind": "folder", "path": str(tmp_path / "outbox")}],
        owner="mia",
        now=T0,
    )
    with pytest.raises(CRMError, match="evaluated by the schedule\\(s\\) size-watch"):
        alerts.delete_alert(shop, "everyone-size", by="ana")
    schedules.delete_schedule(shop, "size-watch", by="mia")
    alerts.delete_alert(shop, "everyone-size", by="ana")
    assert alerts.list_alerts(shop).empty


def test_a_home_report_sends_the_owners_pins(shop, tmp_path):
    """`--report home` sends the owner's Home page; an empty Home is refused at `add`."""
    from crm_core import home

    auth.add_user(shop, "max", "manager", "a long enough password")
    outbox = tmp_path / "outbox"

    def add() -> schedules.Schedule:
        return schedules.add_schedule(
            shop,
            "monday-home",
            kind="report",
            target="home",
            cron="0 7 * * 1",
            destinations=[{"kind": "folder", "path": str(outbox)}],
            owner="max",
            now=T0,
        )

    with pytest.raises(ScheduleError, match="max has no pins"):
        add()
    max_ = auth.get_user(shop, "max")
    home.add_pin(shop, max_, "overview", "revenue")
    home.add_pin(shop, max_, "overview", "revenue_trend")
    add()
    run = schedules.run_schedule(
        shop, schedules.load_schedule(shop, "monday-home"), due_at=None, runner="cli"
    )
    assert run.result == "sent", run.message
    assert "Home page of max (2 pins)" in run.message
    files = sorted(p.name.split("-", 3)[-1] for p in outbox.iterdir() if p.suffix == ".csv")
    assert files == ["01-revenue-and-active-customers.csv", "kpis.csv"] or files == [
        "02-revenue-and-active-customers.csv",
        "kpis.csv",
    ], files


# --- an alert is delivered once per period -----------------------------------------------


def test_a_firing_alert_is_delivered_once_per_period_and_again_by_hand(shop, monkeypatch):
    """A daily schedule of a weekly alert on a store whose data stopped: the first due run
    e-mails and posts the finding, the next one sends nothing and says why, a run by hand
    (`schedules run`, the page's Run now) delivers again."""
    alerts = pytest.importorskip("crm_core.alerts")
    from crm_core import delivery
    from tests.core.receivers import smtp_server, webhook_receiver

    definition = {  # revenue in the tiny store's last complete week (19-25 Feb 2024): $30
        "measure": {"kind": "kpi", "metric": "revenue", "grain": "week"},
        "condition": {"kind": "threshold", "op": "above", "value": 10},
    }
    alerts.save_alert(shop, "weekly-revenue", definition, owner="ana")
    secret = delivery.new_secret()
    with smtp_server() as inbox, webhook_receiver(secret) as hooks:
        monkeypatch.setenv("CRM_SMTP_URL", f"smtp://127.0.0.1:{inbox.port}")
        monkeypatch.setenv("CRM_MAIL_FROM", "crm@example.com")
        schedules.add_schedule(
            shop,
            "revenue-watch",
            kind="alert",
            target="weekly-revenue",
            cron="0 7 * * *",
            destinations=[
                {"kind": "email", "to": ["ops@example.com"]},
                {"kind": "webhook", "url": hooks.url, "secret": secret},
            ],
            owner="mia",
            now=T0,
        )
        (first,) = scheduler.run_pending(shop, now=T0 + timedelta(hours=1), runner="a")
        (second,) = scheduler.run_pending(shop, now=T0 + timedelta(days=1, hours=1), runner="a")
        assert (len(inbox.messages), len(hooks.requests)) == (1, 1)
        forced = schedules.run_schedule(
            shop, schedules.load_schedule(shop, "revenue-watch"), due_at=None, runner="cli"
        )
        assert (len(inbox.messages), len(hooks.requests)) == (2, 2)
        (third,) = scheduler.run_pending(shop, now=T0 + timedelta(days=2, hours=1), runner="a")
        assert (len(inbox.messages), len(hooks.requests)) == (2, 2)
        # A new version of the rule is a new finding: the next due run delivers it.
        stricter = {**definition, "condition": {**definition["condition"], "value": 20}}
        alerts.save_alert(shop, "weekly-revenue", stricter, owner="ana")
        (fourth,) = scheduler.run_pending(shop, now=T0 + timedelta(days=3, hours=1), runner="a")
        assert (len(inbox.messages), len(hooks.requests)) == (3, 3)

    assert first.result == "fired" and len(first.delivery_ids) == 2, first.message
    assert first.message.startswith("Revenue in the week of 19 Feb 2024: $30.00, above")
    assert first.message.endswith("The data ends on 01 Mar 2024.")  # the store's last order
    assert first.detail["data_ends"] == "2024-03-01"
    mail = inbox.messages[0].get_body(preferencelist=("plain",)).get_content()
    assert "The data ends on 01 Mar 2024." in mail
    assert second.result == "repeat" and second.delivery_ids == []
    assert second.message == (
        "Already sent for the week of 19 Feb 2024; no new period since. "
        "The data ends on 01 Mar 2024."
    )
    assert second.detail["already_sent_by_run"] == first.run_id
    assert forced.result == "fired" and len(forced.delivery_ids) == 2, forced.message
    assert third.result == "repeat" and third.detail["already_sent_by_run"] == forced.run_id
    assert fourth.result == "fired" and fourth.detail["version"] == 2, fourth.message


def test_an_alert_on_fresh_data_does_not_say_the_data_ends(shop):
    alerts = pytest.importorskip("crm_core.alerts")
    definition = {
        "measure": {"kind": "kpi", "metric": "revenue", "grain": "week"},
        "condition": {"kind": "threshold", "op": "above", "value": 10},
    }
    alerts.save_alert(shop, "weekly-revenue", definition, owner="ana")
    schedule = schedules.add_schedule(
        shop,
        "revenue-watch",
        kind="alert",
        target="weekly-revenue",
        cron="0 7 * * *",
        destinations=[{"kind": "email", "to": ["ops@example.com"]}],
        owner="mia",
        now=T0,
    )
    # Three days after the last order (Friday 1 Mar 2024): within a week, not stale.
    outcome = schedules._run_alert(shop, schedule, now=datetime(2024, 3, 4, 7), force=True)
    assert outcome.result == "fired" and "data ends" not in outcome.message
    assert "data_ends" not in outcome.detail


def test_only_the_owner_or_an_admin_pauses_resumes_or_removes_a_schedule(shop, tmp_path):
    schedules.add_schedule(
        shop,
        "mias-report",
        kind="report",
        target="overview",
        cron="0 7 * * *",
        destinations=[{"kind": "email", "to": ["mia@example.com"]}],
        owner="mia",
        now=T0,
    )
    auth.add_user(shop, "ops", "admin", "a long enough password")
    with pytest.raises(ScheduleError, match="belongs to mia; only its owner or an admin"):
        schedules.pause(shop, "mias-report", by="ana")
    with pytest.raises(ScheduleError, match="no user 'nobody'"):
        schedules.delete_schedule(shop, "mias-report", by="nobody")
    assert schedules.pause(shop, "mias-report", by="mia", now=T0).paused
    assert not schedules.resume(shop, "mias-report", by="ops", now=T0).paused
    schedules.delete_schedule(shop, "mias-report", by="ops")
    assert schedules.list_schedules(shop).empty

"""`python -m crm_core ...`: init, import, kpis, users, segments, export (the app's code)."""

from __future__ import annotations

import argparse
import getpass
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crm_core import auth, reports, schema
from crm_core.config import get_settings
from crm_core.errors import CRMError
from crm_core.filters import (
    COMPARISONS,
    Filters,
    default_filters,
    filter_options,
    match_choices,
)
from crm_core.metrics import compute_kpis, format_value, kpis_as_dict
from crm_core.store import Store, get_store

if TYPE_CHECKING:
    import pandas as pd


def _print_progress(fraction: float, message: str) -> None:
    print(f"  [{fraction:4.0%}] {message}", flush=True)


def _print_rows(
    frame: pd.DataFrame,
    line: Callable[[Any], str],
    *,
    empty: str | None = None,
    as_json: bool = False,
) -> None:
    """Print a listing: JSON records (as_json), else `empty` if no rows, else line(row) each."""
    if as_json:
        print(json.dumps(frame.to_dict(orient="records"), indent=2, default=str))
        return
    if frame.empty and empty is not None:
        print(empty)
    for row in frame.itertuples(index=False):
        print(line(row))


def cmd_init(args: argparse.Namespace, store: Store) -> int:
    """Create or migrate the schema, load a dataset into an empty store, create the admin."""
    changes = store.init_schema()
    print(
        f"Store: {store!r}; schema {'updated: ' + ', '.join(changes) if changes else 'up to date'}"
    )
    existing = store.row_counts(("customers",))["customers"]
    if existing:
        print(f"The store already has {existing:,} customers; data left as it is.")
    elif args.dataset == "demo":
        end = args.end or date.today() - timedelta(days=1)
        print(
            f"Creating the demo store with {args.customers:,} customers (seed {args.seed}), "
            f"history up to {end:%d %b %Y}..."
        )
        from crm_core import demo

        started = time.perf_counter()
        counts = demo.create_demo_store(
            store, customers=args.customers, seed=args.seed, end=end, progress=_print_progress
        )
        seconds = time.perf_counter() - started
        print(f"Demo store created in {seconds:.1f} s: " + _counts_text(counts))
    elif args.dataset == "cdnow":
        from crm_core import datasets

        started = time.perf_counter()
        results = datasets.load_cdnow(store)
        seconds = time.perf_counter() - started
        print(
            f"CDNOW imported in {seconds:.1f} s: "
            + ", ".join(f"{r.table} {r.rows:,}" for r in results)
        )
    else:
        print("Empty store ready; import your data with `python -m crm_core import`.")
    password = auth.ensure_admin(store)
    if password:
        print(
            "\nFirst start: created the user 'admin' with the password\n\n"
            f"    {password}\n\n"
            "It is shown only this once. Change it with `python -m crm_core users reset admin`."
        )
    return 0


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {rows:,}" for name, rows in counts.items())


def cmd_import(args: argparse.Namespace, store: Store) -> int:
    """Validate and load one file into a table (through a mapping if given), in one
    transaction: all or nothing, or the valid rows with --on-error skip."""
    from pathlib import Path

    from crm_core import ingest, mapping

    store.require_tables(args.table)
    path = Path(args.path)
    if args.mapping == mapping.BY_NAME:
        chosen = mapping.Mapping(table=args.table, name=mapping.BY_NAME)
    elif args.mapping:
        chosen = mapping.resolve(store, args.mapping)
    if args.mapping:
        if args.date_order:
            chosen.format = {**chosen.format, "date_order": args.date_order}
        if chosen.table != args.table:
            raise CRMError(
                f"The mapping {args.mapping!r} imports into {chosen.table}, not {args.table}; "
                f"run `python -m crm_core import {chosen.table} {args.path} "
                f"--mapping {args.mapping}`."
            )
        report = mapping.import_mapped(
            store,
            path,
            chosen,
            mode=args.mode,
            on_error=args.on_error,
            dry_run=args.dry_run,
            user=args.user,
        )
    else:
        report = ingest.load(
            store,
            path.name,
            lambda conn: ingest.file_chunks(path, args.table, path.name),
            mode=args.mode,
            on_error=args.on_error,
            dry_run=args.dry_run,
            user=args.user,
            sha256=ingest.file_sha256(path),
        )
    _print_import(report, path, args.rejects)
    return 1 if report.dry_run and report.problems else 0


def _print_import(report, path, rejects: str | None) -> None:  # report: ingest.ImportReport
    from pathlib import Path

    for note in report.notes:
        print(f"  note: {note}")
    for warning in report.warnings:
        print(f"  warning: {warning}")
    written = ", ".join(f"{table} {rows:,}" for table, rows in report.rows.items() if rows)
    if report.dry_run:
        if report.problems and report.on_error == "stop":
            print(
                f"Dry run of {path.name}: {len(report.problems):,} problem(s), so the import "
                "would write nothing; fix them, or use --on-error skip to import the valid rows."
            )
        else:
            print(f"Dry run of {path.name}: would write {written or 'nothing'}; nothing changed.")
        for problem in report.problems:
            print(f"  problem: {problem}")
        if report.rejected and report.on_error == "skip":
            print(f"  {report.rejected:,} row(s) would be rejected.")
        return
    print(
        f"Imported {path.name} ({report.mode}) as batch {report.batch_id}: {written or 'no rows'}."
    )
    if report.rejected:
        target = Path(rejects) if rejects else path.with_name(f"{path.stem}.rejected.csv")
        target.write_bytes(report.rejects_csv or b"")
        print(f"  {report.rejected:,} row(s) rejected, with the reason per row, in {target}")


def cmd_imports(args: argparse.Namespace, store: Store) -> int:
    """List past imports, or undo the last import of a table."""
    from crm_core import ingest

    if args.imports_command == "history":

        def line(batch) -> str:
            text = (
                f"{batch.batch_id:>5}  {batch.imported_at:%Y-%m-%d %H:%M}  {batch.imported_by}  "
                f"{batch.file_name} ({batch.mode}): {ingest.rows_text(batch.rows)}"
            )
            if batch.rejected_rows:
                text += f"; {int(batch.rejected_rows):,} rejected"
            if isinstance(batch.undone_at, datetime) and batch.undone_at == batch.undone_at:
                text += f"; undone {batch.undone_at:%Y-%m-%d %H:%M} by {batch.undone_by}"
            return text

        _print_rows(ingest.history(store, limit=args.limit), line, empty="No imports yet.")
        return 0
    print(ingest.undo(store, batch_id=args.batch, table=args.table, user=args.user))
    return 0


def cmd_mappings(args: argparse.Namespace, store: Store) -> int:
    """List, show, save or delete saved import mappings."""
    from pathlib import Path

    from crm_core import mapping, presets

    command = args.mappings_command
    if command == "list":
        for name in mapping.names(store):
            print(f"{name}  (saved, {mapping.load(store, name).table})")
        for name, preset in presets.PRESETS.items():
            print(f"{name}  (preset, {preset.table})")
    elif command == "show":
        print(json.dumps(mapping.resolve(store, args.name).to_dict(), indent=2))
    elif command == "save":
        chosen = mapping.Mapping.from_json(
            Path(args.file).read_text(encoding="utf-8"), Path(args.file).name
        )
        chosen.name = args.name or chosen.name or Path(args.file).stem
        mapping.save(store, chosen, user=args.user)
        print(f"Saved mapping {chosen.name!r} ({chosen.table}).")
    elif args.name in presets.PRESETS:
        raise CRMError(f"{args.name!r} is a preset; presets cannot be deleted.")
    elif mapping.delete(store, args.name):
        print(f"Deleted mapping {args.name!r}.")
    else:
        raise CRMError(f"No saved mapping {args.name!r}; see `python -m crm_core mappings list`.")
    return 0


def _filters_from_args(args: argparse.Namespace, store: Store) -> Filters:
    options = filter_options(store)
    return reports.resolve_filters(
        default_filters(store),
        start=args.start,
        end=args.end,
        countries=match_choices(tuple(args.country or ()), options["countries"], "--country"),
        channels=match_choices(tuple(args.channel or ()), options["channels"], "--channel"),
        compare=args.compare,
    )


def cmd_kpis(args: argparse.Namespace, store: Store) -> int:
    """Print the overview's KPIs for a period, with the period it is compared with."""
    store.require_tables("orders", "customers", "survey_responses")
    filters = _filters_from_args(args, store)
    if filters.end < filters.start:
        raise CRMError(f"--end {filters.end} is before --start {filters.start}.")
    kpis = compute_kpis(store, filters)
    if args.json:
        print(json.dumps(kpis_as_dict(kpis, filters), indent=2))
        return 0
    compared = filters.comparison()
    print(f"KPIs {filters.start} .. {filters.end} (compared with {compared.start} ..)")
    for kpi in kpis.values():
        print(f"  {kpi.metric.label:<22} {format_value(kpi.metric, kpi.value):>14}")
    return 0


def cmd_report(args: argparse.Namespace, store: Store) -> int:
    """Print one view's figures under the same filters as the app (JSON, or a summary)."""
    store.require_tables("orders", "customers")
    figures = reports.report(store, args.view, _filters_from_args(args, store))
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
        return 0
    print(f"{args.view}: {json.dumps(figures['filters'])}")
    for key, value in figures.items():
        if key in ("view", "filters"):
            continue
        shown = (
            f"{len(value):,} rows" if isinstance(value, list) else json.dumps(value, default=str)
        )
        print(f"  {key}: {shown[:200]}")
    return 0


def _read_password(prompt: str) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(prompt)
    if first != getpass.getpass("Repeat: "):
        raise CRMError("The two passwords differ; nothing was changed.")
    return first


def cmd_audit(args: argparse.Namespace, store: Store) -> int:
    """Verify the audit log's hash chain, or list its rows."""
    from crm_core import audit

    store.init_schema()
    if args.audit_command == "verify":
        check = audit.verify(store)
        if args.json:
            print(json.dumps(check.as_dict(), indent=2))
        else:
            print(check.summary())
            for problem in check.problems[1:]:
                print(f"  also: {problem}")
        return 0 if check.ok else 1
    if args.limit < 1:
        raise CRMError(f"--limit: got {args.limit}; allowed: 1 or more.")
    rows = audit.entries(store, actions=args.action, actor=args.user, limit=args.limit)
    if args.json:
        print(json.dumps(rows.to_dict("records"), indent=2, default=str))
        return 0
    if rows.empty:
        print("No audit rows.")
        return 0
    for r in rows.itertuples(index=False):
        who = r.actor if isinstance(r.actor, str) and r.actor else "(system)"
        label = audit.ACTION_LABELS.get(r.action, r.action)
        print(f"{r.seq:>6}  {r.at:%Y-%m-%d %H:%M:%S}  {who:<12} {label}: {r.target}")
        words = audit.details_words(r.details)
        if words:
            print(f"        {words}")
    return 0


def cmd_users(args: argparse.Namespace, store: Store) -> int:
    """Add, reset, deactivate, reactivate, re-role, remove or list dashboard users."""
    store.init_schema()
    if args.users_command == "add":
        password = _read_password(f"Password for {args.username}: ")
        user = auth.add_user(
            store, args.username, args.role, password, name=args.name, email=args.email
        )
        print(f"Added {user.username} ({user.role}).")
    elif args.users_command == "reset":
        given = None if args.generate else _read_password(f"New password for {args.username}: ")
        password = auth.reset_password(store, args.username, given or None)
        print(f"Password of {args.username} reset; the account is unlocked.")
        if args.generate:
            print(f"New password (shown once): {password}")
    elif args.users_command == "deactivate":
        auth.deactivate_user(store, args.username)
        print(f"Deactivated {args.username}: they can no longer sign in.")
    elif args.users_command == "activate":
        auth.activate_user(store, args.username)
        print(f"Reactivated {args.username}: they can sign in again.")
    elif args.users_command == "set-role":
        auth.set_role(store, args.username, args.role)
        print(f"{args.username} is now {args.role}.")
    elif args.users_command == "remove":
        auth.remove_user(store, args.username)
        print(f"Removed {args.username}; their export log rows and segments stay.")
    else:
        print(f"{'username':<20} {'role':<10} {'status':<12} {'last sign-in (UTC)':<19} name")
        for user in auth.list_users(store):
            status = "active" if user["active"] else "deactivated"
            last = f"{user['last_login_at']:%Y-%m-%d %H:%M}" if user["last_login_at"] else "never"
            print(
                f"{user['username']:<20} {user['role']:<10} {status:<12} {last:<19} {user['name']}"
            )
    return 0


def cmd_segments(args: argparse.Namespace, store: Store) -> int:
    """Create, list, preview, delete or restore saved segments (the builder's JSON format)."""
    from pathlib import Path

    from crm_core import features, segments

    store.init_schema()
    if args.segments_command == "create":
        try:
            text = Path(args.rules).read_text()
        except OSError as exc:
            raise CRMError(f"Cannot read the rules file {args.rules}: {exc.strerror}.") from None
        features.ensure_fresh(store)
        saved = segments.save_segment(
            store, args.name, text, owner=args.owner, description=args.description
        )
        size = (
            segments.list_segments(store).set_index("segment_id").at[saved.segment_id, "customers"]
        )
        print(f"Saved segment {saved.name!r} version {saved.version}: {int(size):,} customers.")
        for warning in segments.value_warnings(store, saved.definition):
            print(f"warning: {warning}")
    elif args.segments_command in ("delete", "restore"):
        user = auth.get_user(store, args.user)
        if user is None:
            raise CRMError(f"No user {args.user!r}; see `python -m crm_core users list`.")
        if args.segments_command == "delete":
            segments.delete_segment(store, args.name, user=user)
            print(f"Deleted segment {args.name!r}; `segments restore` brings it back.")
        else:
            back = segments.restore_segment(store, args.name, user=user)
            print(f"Restored segment {back.name!r} version {back.version}.")
    elif args.segments_command == "list":

        def line(row) -> str:
            size = "?" if row.customers != row.customers else f"{int(row.customers):,}"
            return f"{row.name:<30} v{row.version:<4} {size:>10} customers  owner {row.owner}"

        _print_rows(
            segments.list_segments(store),
            line,
            empty="No saved segments yet; save one on the Segment builder page or with "
            "`python -m crm_core segments create`.",
        )
    else:
        features.ensure_fresh(store)
        saved = segments.load_segment(store, args.name)
        result = segments.preview(store, saved.definition, args.role)
        figures = {
            "segment": saved.name,
            "version": saved.version,
            "as_of": str(result.as_of),
            "customers": result.customers,
            "base": result.base,
            "share": round(result.share, 6),
            "revenue": round(result.revenue, 2),
            "avg_clv": result.avg_clv,
            "avg_churn_risk": result.avg_churn_risk,
            "definition": saved.definition,
            "sql": result.sql,
            "warnings": list(result.warnings),
        }
        if args.json:
            print(json.dumps(figures, indent=2, default=str))
        else:
            print(
                f"{saved.name} v{saved.version}: {result.customers:,} of {result.base:,} "
                f"customers ({result.share:.1%}), revenue {result.revenue:,.2f}"
            )
            for warning in result.warnings:
                print(f"warning: {warning}")
    return 0


def cmd_export(args: argparse.Namespace, store: Store) -> int:
    """Export a saved segment as a target list, with the rules the app applies."""
    from crm_core import export

    store.init_schema()
    user = auth.get_user(store, args.user)
    if user is None:
        raise CRMError(f"No user {args.user!r}; see `python -m crm_core users list`.")
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    result = export.export_segment(
        store,
        args.name,
        user=user,
        channel=args.channel,
        fmt=args.format,
        columns=columns,
        out=args.out,
        control_share=args.control / 100,
        seed=args.seed,
    )
    left_out = ", ".join(f"{k} {v:,}" for k, v in result.excluded.items() if v) or "none"
    print(
        f"Exported {result.rows:,} of {result.selected:,} customers of {result.segment_name!r} "
        f"v{result.segment_version} to {result.path} (sha256 {result.sha256}); "
        f"excluded: {left_out}; control group: {result.control:,}. "
        f"Manifest: {result.manifest_path}"
    )
    return 0


def cmd_score(args: argparse.Namespace, store: Store) -> int:
    """Fit the CLV and churn models and write customer_scores; print a fit summary."""
    from crm_core import scoring
    from crm_core.analytics import churn, clv

    store.init_schema()
    result = scoring.score(
        store,
        clv.CLVSettings(model=args.model, horizon_months=args.horizon_months),
        churn.ChurnSettings(model=args.churn_model, window_days=args.window),
        progress=None if args.quiet else _print_progress,
    )
    print("\n".join(result.summary_lines()))
    return 0


def cmd_clv(args: argparse.Namespace, store: Store) -> int:
    """Fit the CLV models; print their parameters and the backtest figures."""
    from crm_core.analytics import clv

    store.require_tables("orders", "customers")
    report = clv.analyse(
        store,
        clv.CLVSettings(
            model=args.model,
            time_unit=args.time_unit,
            calibration_end=args.calibration_end,
            observation_end=args.end,
            horizon_months=args.horizon_months,
            monthly_discount=args.discount,
        ),
    )
    figures = report.as_dict()
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
        return 0
    bt = figures["backtest"]
    print(f"CLV {figures['model']} + Gamma-Gamma, time unit {figures['time_unit']}")
    for name in ("calibration_params", "params"):
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in figures[name].items()))
    print(
        f"  backtest {figures['calibration_end']} -> {figures['observation_end']}: predicted "
        f"{bt['predicted_total_purchases']:,} vs actual {bt['actual_total_purchases']:,.0f} "
        f"({bt['total_error']:+.1%}), MAE {bt['mae_per_customer']}"
    )
    print(f"  mean CLV over {figures['horizon_months']} months: {figures['mean_clv']:,}")
    for note in report.notes:
        print(f"Note: {note}")
    return 0


def cmd_churn(args: argparse.Namespace, store: Store) -> int:
    """Train and validate the churn model; print the metrics and top drivers."""
    from crm_core.analytics import churn

    store.require_tables("orders", "customers")
    report = churn.analyse(
        store, churn.ChurnSettings(model=args.model, window_days=args.window, as_of=args.as_of)
    )
    figures = report.as_dict()
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
        return 0
    print(
        f"Churn {figures['model']}, {figures['window_days']}-day window: trained at "
        f"{figures['train_cutoff']}, validated at {figures['valid_cutoff']}"
    )
    for who, metrics in figures["metrics"].items():
        print(f"  {who:<9} " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    for driver in figures["drivers"]:
        print(f"  - {driver['says']}")
    for note in report.notes:
        print(f"Note: {note}")
    return 0


def cmd_leads(args: argparse.Namespace, store: Store) -> int:
    """Score the open leads: validation against the source-only baseline, the top leads,
    and with --capacity the MQL threshold and its expected wins; writes lead_scores."""
    from crm_core.analytics import lead_scoring

    store.init_schema()
    settings = lead_scoring.LeadSettings(
        model=args.model, window_days=args.window, as_of=args.as_of
    )
    # A past as-of date is a look back: the live scores (and the 360's lead_score) stay.
    looking_back = args.as_of is not None
    report = (lead_scoring.analyse if looking_back else lead_scoring.score)(store, settings)
    figures = report.as_dict(top=args.top)
    if looking_back:
        figures["written"] = False
        note = (
            f"As of {report.as_of}: a look back; nothing was written (the stored lead scores "
            "stay those of the last run without --as-of)."
        )
        if args.as_of > report.as_of:
            note += f" {args.as_of} is after the last lead activity; scored as of {report.as_of}."
        figures["note"] = note
        if not args.json:
            print(note)
    capacity = report.capacity(args.capacity) if args.capacity is not None else None
    if capacity is not None:
        figures["capacity"] = {
            "per_week": capacity.per_week,
            "weekly_volume": round(capacity.weekly_volume, 2),
            "share_called": round(capacity.share, 4),
            "threshold": round(capacity.threshold, 4),
            "leads_above": capacity.leads_above,
            "expected_wins": round(capacity.expected_wins, 2),
        }
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
        return 0
    print(
        f"Lead scoring ({lead_scoring.MODELS[args.model]}), won within {args.window} days: "
        f"trained on cutoffs {figures['train_cutoffs'][0]} to {figures['train_cutoffs'][1]}, "
        f"validated on {figures['valid_cutoffs'][0]} to {figures['valid_cutoffs'][1]} "
        f"({figures['valid_rows']:,} open leads, {figures['valid_win_rate']:.1%} won)"
    )
    for who, metrics in figures["metrics"].items():
        print(f"  {who:<9} " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    print("  calibration by band of the model's prediction (predicted / actual win rate):")
    for row in figures["calibration"]:
        print(f"    {row['band']:>2}: {row['predicted']:6.1%} / {row['actual']:6.1%}")
    print(
        f"Scored {figures['scored_leads']:,} open leads as of {figures['as_of']} "
        f"({figures['stale_leads']:,} older than {lead_scoring.ACTIVE_DAYS} days left out); top:"
    )
    for lead in figures["top_leads"]:
        print(
            f"  lead {lead['lead_id']} ({lead['source']}, {lead['stage']}): "
            f"{lead['win_probability']:.1%} - {lead['reasons'] or 'no strong reason'}"
        )
    if capacity is not None:
        print(capacity.sentence())
    return 0


# --- alerts (crm_core/alerts.py) ---------------------------------------------------------


def _rule_from_args(args: argparse.Namespace) -> dict | str:
    """The alert definition from --rule (JSON text or a file) or the measure/condition flags."""
    from pathlib import Path

    if args.rule:
        text = args.rule
        if not text.lstrip().startswith("{"):
            try:
                text = Path(text).read_text()
            except OSError as exc:
                raise CRMError(f"Cannot read the rule file {args.rule}: {exc.strerror}.") from None
        return text  # alerts.validate parses it and says what is wrong
    if args.kpi:
        measure: dict = {"kind": "kpi", "metric": args.kpi, "grain": args.grain}
        measure |= {"countries": args.country or [], "channels": args.channel or []}
    elif args.segment:
        measure = {"kind": "segment_size", "segment": args.segment}
    elif args.score:
        measure = {"kind": "score", "aggregate": args.score}
    else:
        raise CRMError(
            "Alert: say what to watch: --kpi METRIC, --segment NAME, --score AGGREGATE or "
            "--rule JSON."
        )
    if args.below is not None or args.above is not None:
        op = "below" if args.below is not None else "above"
        condition: dict = {
            "kind": "threshold",
            "op": op,
            "value": args.below if op == "below" else args.above,
        }
    elif args.change is not None:
        condition = {
            "kind": "change",
            "against": args.against,
            "direction": args.direction,
            "percent": args.change,
        }
    else:  # --anomaly, the default
        from crm_core.alerts import default_level

        level = args.level or default_level(measure.get("grain"))
        condition = {"kind": "anomaly", "level": level}
    return {"measure": measure, "condition": condition}


def _print_backtest(result) -> None:  # result: alerts.Backtest
    print(result.summary)
    for model in result.detail.get("models", []):
        print(f"  forecast: {model}")


def cmd_lake(args: argparse.Namespace, store: Store) -> int:
    """Write the store's facts and customer 360 to the Parquet lake that Spark reads."""
    from crm_core import spark

    lake = Path(args.path) if args.path else get_settings().lake_path
    written = spark.publish(store, lake)
    if args.json:
        print(json.dumps({"lake": str(lake), "rows": written}, indent=2))
        return 0
    print(f"Wrote {len(written)} tables to {lake}:")
    width = max(map(len, written), default=0)
    for name, rows in written.items():
        print(f"  {name:<{width}} {rows:>12,} rows")
    return 0


def cmd_lake_serve(args: argparse.Namespace, store: Store | None) -> int:
    """Run a Spark Connect server from the pyspark wheel on 127.0.0.1 until Ctrl+C: to try
    CRM_ANALYTICS_URL on one machine (a cluster has its own endpoint)."""
    from crm_core import spark

    if not spark.java_available():
        raise CRMError("Spark needs Java 17 or later: apt-get install openjdk-17-jre-headless.")
    folder = get_settings().data_dir / "spark"
    folder.mkdir(parents=True, exist_ok=True)
    server = spark.start_server(folder, master=args.master, port=args.port)
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):  # `kill` or a closed terminal: the
        signal.signal(stop_signal, lambda *_: sys.exit(0))  # JVM is stopped as on Ctrl+C
    print(
        f"Spark Connect ({args.master}) listens at {server.url}; its log is {server.log}.\n"
        f"Point the app and the CLI at it:  export CRM_ANALYTICS_URL={server.url}\n"
        "Ctrl+C stops it.",
        flush=True,
    )
    try:
        while server.process.poll() is None:
            time.sleep(1)
        print(f"error: Spark Connect stopped; see {server.log}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def cmd_recommend(args: argparse.Namespace, store: Store) -> int:
    """Evaluate the recommendations on held-out last orders (against a popularity
    baseline); with --score also write customer_recommendations."""
    from crm_core.analytics import recommend

    figures: dict[str, Any] = {}
    if args.max_customers < 1:
        print(
            f"error: --max-customers: got {args.max_customers}; give how many customers to "
            "evaluate at most (1 or more, e.g. 50000).",
            file=sys.stderr,
        )
        return 2
    if args.score:
        store.init_schema()
        run = recommend.score(store)
        figures["scored"] = run.as_dict()
    evaluation = recommend.evaluate_store(store, max_customers=args.max_customers)
    figures["evaluation"] = evaluation.as_dict()
    figures["coverage"] = recommend.coverage(store)  # of the stored lists, as the view shows
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
        return 0
    if args.score:
        print(
            f"Recommended to {run.customers:,} customers ({run.rows:,} offers; {run.rules:,} "
            f"rules, {run.consumables:,} consumables) as of {run.as_of} in {run.seconds:.1f} s"
        )
    k, m, b = evaluation.top_n, evaluation.model, evaluation.baseline
    print(
        f"Held-out last orders of {evaluation.customers:,} customers: precision@{k} "
        f"{m['precision']:.1%} (popularity {b['precision']:.1%}), hit rate@{k} "
        f"{m['hit_rate']:.1%} (popularity {b['hit_rate']:.1%})"
    )
    return 0


def cmd_alerts(args: argparse.Namespace, store: Store) -> int:
    """Add, list, test (evaluate now, deliver if it fires), backtest, pause or delete alerts."""
    from crm_core import alerts

    store.init_schema()
    command = args.alerts_command
    if command == "add":
        definition = alerts.validate(_rule_from_args(args))
        if not args.no_backtest:
            _print_backtest(alerts.backtest(store, definition))
        saved = alerts.save_alert(
            store, args.name, definition, owner=args.owner, description=args.description or ""
        )
        print(f"Saved alert {saved.name!r} version {saved.version}: {alerts.describe(definition)}")
        print(f"  schedule it: python -m crm_core schedules add NAME --alert {saved.name!r} ...")
    elif command == "list":
        _print_rows(
            alerts.list_alerts(store),
            lambda row: f"{row.name:<24} v{row.version:<3} owner {row.owner:<10} {row.rule}",
            empty="No alerts yet; add one with `python -m crm_core alerts add`.",
            as_json=args.json,
        )
    elif command == "test":
        saved = alerts.load_alert(store, args.name)
        result = alerts.evaluate(store, saved.definition, at=args.at)
        if args.json:
            print(json.dumps({"name": saved.name, **_result_dict(result)}, indent=2, default=str))
        else:
            print(("FIRES: " if result.fired else "quiet: ") + result.message)
        if result.fired and args.at is not None and not args.no_deliver:
            print("  not delivered: --at replays a past day; schedules deliver the latest period.")
        elif result.fired and not args.no_deliver:
            return _deliver_alert(store, saved.name)
    elif command == "backtest":
        definition = (
            alerts.load_alert(store, args.name).definition if args.name else _rule_from_args(args)
        )
        result = alerts.backtest(store, definition, end=args.end, months=args.months)
        if args.json:
            frame = result.frame.assign(period_start=result.frame["period_start"].dt.date)
            payload = {"summary": result.summary, "firings": result.firings, **result.detail}
            payload["frame"] = frame.to_dict(orient="records")
            print(json.dumps(payload, indent=2, default=str))
        else:
            _print_backtest(result)
    elif command == "pause":
        saved = alerts.load_alert(store, args.name)
        paused = _alert_schedules(store, saved.name, pause=True, by=args.user)
        if paused:
            print(f"Paused the schedules of alert {saved.name!r}: {', '.join(paused)}.")
        else:
            print(f"Alert {saved.name!r} has no running schedule; nothing to pause.")
    else:
        alerts.delete_alert(store, args.name, by=args.user)
        print(f"Deleted alert {args.name!r} (its versions are kept for the record).")
    return 0


def _result_dict(result) -> dict:  # result: alerts.AlertResult
    keys = ("fired", "value", "reference", "lower", "upper", "period", "message", "detail")
    return {key: getattr(result, key) for key in keys}


def _alert_schedules(store: Store, name: str, *, pause: bool = False, by: str = "cli") -> list[str]:
    """Names of the running schedules that evaluate alert `name` (paused when `pause`)."""
    from crm_core import schedules

    frame = schedules.list_schedules(store)
    mine = frame[(frame["kind"] == "alert") & (frame["target"].str.lower() == name.lower())]
    names = [row.name for row in mine.itertuples(index=False) if not row.paused]
    if pause:
        for schedule in names:
            schedules.pause(store, schedule, by=by)
    return names


def _deliver_alert(store: Store, name: str) -> int:
    """Run the alert's schedules now, which evaluate it again and deliver (it fired)."""
    from crm_core import schedules

    names = _alert_schedules(store, name)
    if not names:
        print(
            "  not delivered: no running schedule delivers this alert; add one with "
            f"`python -m crm_core schedules add NAME --alert {name!r} --cron ... --email ...`."
        )
        return 0
    ok = True
    for schedule in names:
        run = schedules.run_schedule(
            store, schedules.load_schedule(store, schedule), due_at=None, runner="cli"
        )
        _print_run(run)
        ok &= run.result in schedules.OK_RESULTS
    return 0 if ok else 1


def _destinations_from_args(args: argparse.Namespace) -> list[dict]:
    """--email/--webhook/--folder as delivery destinations (a new secret per webhook)."""
    from pathlib import Path

    from crm_core import delivery

    found: list[dict] = []
    if args.email:
        found.append({"kind": "email", "to": list(args.email)})
    for url in args.webhook or ():
        found.append({"kind": "webhook", "url": url, "secret": delivery.new_secret()})
    for folder in args.folder or ():
        found.append({"kind": "folder", "path": str(Path(folder).expanduser().resolve())})
    return found


def _print_run(run) -> None:  # run: schedules.Run
    ids = ", ".join(str(i) for i in run.delivery_ids) or "none"
    print(f"Run {run.run_id} of {run.schedule_name}: {run.result}. {run.message}")
    print(f"  deliveries: {ids}" + (f"; file: {run.file_path}" if run.file_path else ""))


def cmd_schedules(args: argparse.Namespace, store: Store) -> int:
    """Add, list, run now, pause, resume, remove schedules, or show a schedule's run log."""
    from crm_core import schedules

    store.init_schema()
    command = args.schedules_command
    if command == "add":
        kind, target = next(
            (k, v)
            for k, v in (
                ("report", args.report),
                ("alert", args.alert),
                ("export", args.export),
                ("retention", "policies" if args.retention else None),
            )
            if v
        )
        options: dict = {}
        if kind == "export":
            options = {"format": args.format, "channel": args.channel}
            if args.columns:
                options["columns"] = [c.strip() for c in args.columns.split(",")]
        elif kind == "report":
            options = {"compare": args.compare}
        destinations = _destinations_from_args(args)
        saved = schedules.add_schedule(
            store,
            args.name,
            kind=kind,
            target=target,
            cron=args.cron,
            timezone=args.timezone,
            destinations=destinations,
            owner=args.owner,
            options=options,
        )
        print(
            f"Added schedule {saved.name!r}: {saved.kind} {saved.target}, cron {saved.cron!r} "
            f"({saved.timezone}); next run {saved.next_due_at:%Y-%m-%d %H:%M} UTC."
        )
        for destination in destinations:
            if destination["kind"] == "webhook":
                print(
                    f"  webhook {destination['url']}: signing secret (shown once; the receiver "
                    f"verifies X-CRM-Signature with it): {destination['secret']}"
                )
    elif command == "list":

        def line(row) -> str:
            due = "paused" if row.paused else f"next {row.next_due_at:%Y-%m-%d %H:%M} UTC"
            last = row.last_result if isinstance(row.last_result, str) else "never run"
            return (
                f"{row.name:<24} {row.kind:<7} {row.target:<20} {row.cron!r} {row.timezone:<16} "
                f"{due:<27} last: {last}  owner {row.owner}"
            )

        _print_rows(
            schedules.list_schedules(store),
            line,
            empty="No schedules yet; add one with `python -m crm_core schedules add`.",
            as_json=args.json,
        )
    elif command == "run":
        schedule = schedules.load_schedule(store, args.name)
        run = schedules.run_schedule(store, schedule, due_at=None, runner="cli")
        _print_run(run)
        return 0 if run.result in schedules.OK_RESULTS else 1
    elif command in ("pause", "resume"):
        change = schedules.pause if command == "pause" else schedules.resume
        saved = change(store, args.name, by=args.user)
        after = "paused" if saved.paused else f"next run {saved.next_due_at:%Y-%m-%d %H:%M} UTC"
        print(f"Schedule {saved.name!r}: {after}.")
    elif command == "remove":
        schedules.delete_schedule(store, args.name, by=args.user)
        print(f"Removed schedule {args.name!r}; its run log stays.")
    else:

        def line(row) -> str:
            slot = isinstance(row.due_at, datetime) and row.due_at == row.due_at  # not NaT
            due = f"slot {row.due_at:%Y-%m-%d %H:%M}" if slot else "by hand"
            sent = ", ".join(f"{d['kind']} {d['status']}" for d in row.deliveries) or "none"
            return (
                f"{row.run_id:>6}  {row.started_at:%Y-%m-%d %H:%M:%S}  {due:<22} {row.result:<15} "
                f"{row.runner}  deliveries: {sent}  {row.message}"
            )

        frame = schedules.runs(store, args.name, limit=args.limit)
        _print_rows(frame, line, empty=f"{args.name} has not run yet.")
    return 0


def cmd_quality(args: argparse.Namespace, store: Store) -> int:
    """Data quality per table: completeness, validity, uniqueness, references, freshness,
    outliers and a score (issue 16; crm_core/quality.py)."""
    from crm_core import quality

    report = quality.assess(store, args.table)
    if args.record:
        quality.record(store, report)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
        return 0
    for line in report.summary():
        print(line)
    print(f"Assessed in {report.seconds:.1f} s.")
    if args.record:
        print(f"Recorded the scores of {len(report.tables)} table(s) (their trend).")
    return 0


def cmd_duplicates(args: argparse.Namespace, store: Store) -> int:
    """Likely duplicate customers (find, crm_core/dedupe.py) and reversible merges (merge,
    unmerge, history; crm_core/merge.py)."""
    command = args.duplicates_command
    if command == "find":
        return _duplicates_find(args, store)
    if command == "merge":
        return _duplicates_merge(args, store)
    if command == "unmerge":
        return _duplicates_unmerge(args, store)
    return _duplicates_history(args, store)


def _duplicates_find(args: argparse.Namespace, store: Store) -> int:
    """Score pairs of live customers with Splink, store the run; print pairs and clusters."""
    from crm_core import dedupe

    run = dedupe.find_duplicates(
        store,
        threshold=args.threshold,
        by=args.user,
        progress=None if args.json else _print_progress,
    )
    if args.json:
        print(json.dumps(run.as_dict(), indent=2))
    else:
        print("\n".join(run.summary()))
    return 0


def _duplicates_merge(args: argparse.Namespace, store: Store) -> int:
    from crm_core import merge

    store.init_schema()
    done = merge.merge_customers(
        store, args.keep, args.others, by=args.user, reason=args.reason or ""
    )
    print("\n".join(done.summary()))
    return 0


def _duplicates_unmerge(args: argparse.Namespace, store: Store) -> int:
    from crm_core import merge

    store.init_schema()
    done = merge.unmerge(store, args.merge_id, by=args.user)
    print("\n".join(done.summary()))
    return 0


def _duplicates_history(args: argparse.Namespace, store: Store) -> int:
    from crm_core import merge

    store.init_schema()

    def line(row: Any) -> str:
        undone = (
            f"; undone {row.unmerged_at:%Y-%m-%d %H:%M} by {row.unmerged_by}"
            if row.status == "undone"
            else ""
        )
        why = f" ({row.reason})" if isinstance(row.reason, str) and row.reason else ""
        return (
            f"merge {row.merge_id}: {', '.join(map(str, row.merged_ids))} into "
            f"{row.kept_id}{why}, "
            f"{row.merged_at:%Y-%m-%d %H:%M} by {row.merged_by}, {row.rows_moved:,} rows "
            f"re-pointed; {row.status}{undone}"
        )

    frame = merge.history(store)
    if args.json:  # empty times as null, not NaT
        frame = frame.astype(object).where(frame.notna(), None)
    _print_rows(frame, line, empty="No merges yet.", as_json=args.json)
    return 0


def cmd_scheduler(args: argparse.Namespace, store: Store) -> int:
    """Run due schedules: once (--once), or every poll until Ctrl+C."""
    import logging
    import threading

    from crm_core import scheduler

    store.init_schema()
    if args.once:
        for run in scheduler.run_pending(store):
            _print_run(run)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("crm_core").setLevel(logging.INFO)  # each run in one line
    stop = threading.Event()
    print(
        f"Scheduler {scheduler.runner_name()} on {store!r}, polling every "
        f"{args.poll or get_settings().scheduler_poll_seconds} s; Ctrl+C stops it.",
        flush=True,
    )
    try:
        scheduler.serve(store, poll_seconds=args.poll, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        print("Scheduler stopped.")
    return 0


def cmd_suppressions(args: argparse.Namespace, store: Store) -> int:
    """The suppression list: add, remove, list, and unsubscribe or bounce files."""
    from crm_core import suppression

    store.init_schema()
    command = args.suppressions_command
    if command == "add":
        added = suppression.add(store, args.kind, args.value, reason=args.reason, by=args.user)
        print(f"Added {args.value.strip()}." if added else "On the suppression list already.")
        return 0
    if command == "remove":
        removed = suppression.remove(store, args.value, by=args.user)
        print(f"Removed {args.value.strip()}." if removed else "Not on the suppression list.")
        return 0
    if command == "import":
        done = suppression.import_list(
            store,
            args.path,
            list_kind=args.list_kind,
            by=args.user,
            email_column=args.email_column,
            date_column=args.date_column,
            reason_column=args.reason_column,
            dry_run=args.dry_run,
        )
        print(done.summary())
        return 0
    listed = suppression.listing(store, args.search)
    if args.json:
        print(json.dumps(listed.to_dict("records"), indent=2, default=str))
        return 0
    for r in listed.itertuples(index=False):
        print(f"{r.added_at:%Y-%m-%d}  {r.kind:<5}  {r.address}  ({r.reason or ''})")
    print(f"{len(listed):,} entr{'y' if len(listed) == 1 else 'ies'}.")
    return 0


# --- privacy operations (crm_core/erasure.py, retention.py) ---


def cmd_privacy(args: argparse.Namespace, store: Store) -> int:
    """Access requests, erasures with proof, retention (privacy export|erase|retention|requests)."""
    from crm_core import erasure, retention

    command = args.privacy_command
    if command == "export":
        result = erasure.access_archive(store, args.customer_id, args.out, by=args.user)
        print("\n".join(result.summary()))
        return 0
    if command == "erase":
        if not args.yes:
            print(
                f"error: erasing customer {args.customer_id} cannot be undone; add --yes to "
                "confirm.",
                file=sys.stderr,
            )
            return 2
        result = erasure.erase(store, args.customer_id, by=args.user)
        if args.json:
            print(json.dumps(result.as_dict(), indent=2, default=str))
        else:
            print("\n".join(result.summary()))
        return 0
    if command == "compact":
        print(erasure.compact(store, by=args.user))
        return 0
    if command == "requests":
        frame = erasure.requests(store)
        _print_rows(
            frame,
            lambda r: (
                f"{r.request_id}: {r.kind} of customer {r.customer_id} by "
                f"{r.requested_by} at {r.requested_at:%Y-%m-%d %H:%M} UTC"
            ),
            empty="No access requests or erasures yet.",
            as_json=args.json,
        )
        return 0
    if args.set:
        if len(args.set) < 4:
            raise retention.RetentionError(
                f"--set: got {' '.join(args.set)!r}; give TABLE DATE_COLUMN MONTHS "
                "delete|anonymise [COLUMNS...], e.g. --set events occurred_at 25 delete."
            )
        table_name, date_column, months, action, *columns = args.set
        if not months.isdigit():
            raise retention.RetentionError(f"Retention age: got {months!r}; give whole months.")
        retention.set_policy(
            store,
            table_name,
            date_column=date_column,
            age_months=int(months),
            action=action,
            columns=columns or None,
            by=args.user,
        )
    if args.remove:
        retention.remove_policy(store, args.remove, by=args.user)
    if args.apply:
        print("\n".join(retention.apply(store, by=args.user).summary()))
        return 0
    frame = retention.plan(store)
    if args.json:
        _print_rows(frame, str, as_json=True)
        return 0
    if frame.empty:
        print("No retention policy: nothing is ever deleted by age.")
    for row in frame.itertuples(index=False):
        what = "delete" if row.action == "delete" else f"clear {', '.join(row.columns)} of"
        print(
            f"{row.table_name}: {what} rows with {row.date_column} older than {row.age_months} "
            f"months (before {row.older_than:%Y-%m-%d}): {row.rows:,} row(s) now"
        )
    print("Dry run: nothing changed (add --apply to apply).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The CLI's arguments (also documented in README)."""
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m crm_core", description="CRM Insights: store, data and users."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create or migrate the store; load data if it is empty")
    init.add_argument(
        "--dataset",
        choices=("demo", "cdnow", "empty"),
        default="demo",
        help="data for an empty store: synthetic demo, the real CDNOW sample, or nothing",
    )
    init.add_argument("--customers", type=int, default=settings.demo_customers)
    init.add_argument("--seed", type=int, default=settings.demo_seed)
    init.add_argument(
        "--end",
        type=date.fromisoformat,
        default=None,
        help="last day of the demo's history (default: yesterday, so the demo looks current)",
    )
    init.set_defaults(handler=cmd_init)

    imp = sub.add_parser("import", help="load a CSV or Parquet file into a table")
    imp.add_argument("table", choices=schema.IMPORTABLE_TABLES)
    imp.add_argument("path")
    imp.add_argument(
        "--mode",
        choices=("append", "upsert"),
        default="append",
        help="append new rows (existing keys are an error) or upsert (replace by key)",
    )
    imp.add_argument(
        "--mapping",
        help="a saved mapping's name, a preset (shopify-orders, shopify-customers, "
        "hubspot-contacts, online-retail), a mapping JSON file (see README), or by-name: the "
        "file's columns matched by name, its layout detected and values read as on the page",
    )
    imp.add_argument(
        "--on-error",
        choices=("stop", "skip"),
        default="stop",
        help="stop: any problem imports nothing (default); skip: import the valid rows and "
        "write the rejected ones with their reason to --rejects",
    )
    imp.add_argument(
        "--rejects", help="where --on-error skip writes rejected rows (default: FILE.rejected.csv)"
    )
    imp.add_argument(
        "--date-order",
        choices=("DMY", "MDY"),
        help="with --mapping: how to read dates that fit day-first and month-first alike "
        "(03/04/2024); the import refuses such a file until told",
    )
    imp.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    imp.add_argument("--user", default="cli", help="recorded in the import history")
    imp.set_defaults(handler=cmd_import)

    imports = sub.add_parser("imports", help="import history; undo the last import of a table")
    imports_sub = imports.add_subparsers(dest="imports_command", required=True)
    imports_sub.add_parser("history", help="past imports, newest first").add_argument(
        "--limit", type=int, default=50
    )
    undo = imports_sub.add_parser(
        "undo", help="undo the last import of a table (added rows removed, replaced restored)"
    )
    target = undo.add_mutually_exclusive_group(required=True)
    target.add_argument("--table", choices=schema.IMPORTABLE_TABLES)
    target.add_argument("--batch", type=int, help="batch number (see `imports history`)")
    undo.add_argument("--user", default="cli", help="recorded as who undid it")
    imports.set_defaults(handler=cmd_imports)

    maps = sub.add_parser("mappings", help="saved import mappings and presets")
    maps_sub = maps.add_subparsers(dest="mappings_command", required=True)
    maps_sub.add_parser("list", help="saved mappings and presets")
    maps_sub.add_parser("show", help="print a mapping as JSON").add_argument("name")
    save = maps_sub.add_parser("save", help="save a mapping JSON file under a name")
    save.add_argument("file")
    save.add_argument("--name", help="default: the file's 'name', else its file name")
    save.add_argument("--user", default="cli")
    maps_sub.add_parser("delete", help="delete a saved mapping").add_argument("name")
    maps.set_defaults(handler=cmd_mappings)

    def add_filter_args(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--start", type=date.fromisoformat, help="YYYY-MM-DD (default: a year back)"
        )
        command.add_argument(
            "--end", type=date.fromisoformat, help="YYYY-MM-DD (default: last order)"
        )
        command.add_argument("--country", action="append", help="repeat for several")
        command.add_argument("--channel", action="append", help="repeat for several")
        command.add_argument(
            "--compare",
            choices=tuple(COMPARISONS),
            default="previous",
            help="compare with the previous period of equal length or the same days a year earlier",
        )
        command.add_argument("--json", action="store_true", help="print JSON")

    kpis = sub.add_parser("kpis", help="print the overview KPIs for a period")
    add_filter_args(kpis)
    kpis.set_defaults(handler=cmd_kpis)

    rep = sub.add_parser(
        "report", help="print a view's figures (JSON with --json) under the app's filters"
    )
    rep.add_argument("view", choices=tuple(reports.REPORTS))
    add_filter_args(rep)
    rep.set_defaults(handler=cmd_report)

    users = sub.add_parser("users", help="manage dashboard users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="add a user (password from stdin or a prompt)")
    add.add_argument("username")
    add.add_argument("--role", choices=auth.ROLES, required=True)
    add.add_argument("--name")
    add.add_argument("--email")
    reset = users_sub.add_parser("reset", help="set a new password and unlock the account")
    reset.add_argument("username")
    reset.add_argument("--generate", action="store_true", help="generate a random password")
    for command, text in (
        ("deactivate", "stop a user from signing in (reversible with `activate`)"),
        ("activate", "let a deactivated user sign in again"),
        ("remove", "delete a user's login; their export log rows and segments stay"),
    ):
        users_sub.add_parser(command, help=text).add_argument("username")
    set_role = users_sub.add_parser("set-role", help="give a user another role")
    set_role.add_argument("username")
    set_role.add_argument("role", help=f"one of: {', '.join(auth.ROLES)}")
    users_sub.add_parser("list", help="list users, roles, status and last sign-in")
    users.set_defaults(handler=cmd_users)

    aud = sub.add_parser("audit", help="the tamper-evident audit log: verify the chain, list it")
    aud_sub = aud.add_subparsers(dest="audit_command", required=True)
    averify = aud_sub.add_parser("verify", help="check the hash chain; exit 1 when broken")
    averify.add_argument("--json", action="store_true", help="print JSON (with the head)")
    alist = aud_sub.add_parser("list", help="audit rows, newest first")
    alist.add_argument("--action", action="append", help="only this action (repeatable)")
    alist.add_argument("--user", help="only rows by this user")
    alist.add_argument("--limit", type=int, default=50, help="rows at most (default 50)")
    alist.add_argument("--json", action="store_true", help="print JSON")
    aud.set_defaults(handler=cmd_audit)

    segs = sub.add_parser(
        "segments", help="create, list, preview, delete and restore saved segments"
    )
    segs_sub = segs.add_subparsers(dest="segments_command", required=True)
    create = segs_sub.add_parser("create", help="save a segment (or a new version) from JSON")
    create.add_argument("name")
    create.add_argument("--rules", required=True, help="JSON file: {match, rules} (see README)")
    create.add_argument("--description")
    create.add_argument("--owner", default="cli", help="recorded as the segment's owner")
    segs_sub.add_parser("list", help="saved segments, latest version and size")
    prev = segs_sub.add_parser("preview", help="size, share and value of a saved segment")
    prev.add_argument("name")
    prev.add_argument("--role", choices=auth.ROLES, default="analyst", help="for PII masking")
    prev.add_argument("--json", action="store_true", help="print JSON")
    for verb, what in (("delete", "delete (restorable)"), ("restore", "bring back a deleted")):
        action = segs_sub.add_parser(verb, help=f"{what} segment: its owner or an admin")
        action.add_argument("name")
        action.add_argument("--user", required=True, help="who acts (the owner or an admin)")
    segs.set_defaults(handler=cmd_segments)

    from crm_core.export import CHANNELS, FORMATS

    exp = sub.add_parser("export", help="export a saved segment as a governed target list")
    exp.add_argument("name", help="saved segment name")
    exp.add_argument("--channel", choices=CHANNELS, required=True)
    exp.add_argument("--format", choices=FORMATS, default="csv")
    exp.add_argument("--out", help="file or folder (default: <data_dir>/exports/)")
    exp.add_argument("--user", required=True, help="whose role decides the personal columns")
    exp.add_argument("--columns", help="comma-separated 360 fields (default: by role)")
    exp.add_argument("--control", type=float, default=0.0, help="control group %% held out")
    exp.add_argument("--seed", type=int, help="random seed of the control group")
    exp.set_defaults(handler=cmd_export)

    from crm_core.analytics.churn import DEFAULT_WINDOW_DAYS, MODELS
    from crm_core.analytics.clv import PURCHASE_MODELS, TIME_UNITS

    score = sub.add_parser("score", help="fit CLV and churn models, write customer_scores")
    score.add_argument("--model", choices=PURCHASE_MODELS, default="bgnbd")
    score.add_argument("--churn-model", choices=MODELS, default="hgb")
    score.add_argument("--window", type=int, default=DEFAULT_WINDOW_DAYS, help="churn days")
    score.add_argument("--horizon-months", type=int, default=12)
    score.add_argument("--quiet", action="store_true", help="no progress lines")
    score.set_defaults(handler=cmd_score)

    clv_cmd = sub.add_parser("clv", help="fit the CLV models; print parameters and backtest")
    clv_cmd.add_argument("--model", choices=PURCHASE_MODELS, default="bgnbd")
    clv_cmd.add_argument("--calibration-end", type=date.fromisoformat, help="YYYY-MM-DD")
    clv_cmd.add_argument("--end", type=date.fromisoformat, help="last data day (default: last)")
    clv_cmd.add_argument("--time-unit", choices=TIME_UNITS, default="days")
    clv_cmd.add_argument("--horizon-months", type=int, default=12)
    clv_cmd.add_argument("--discount", type=float, default=0.01, help="monthly discount rate")
    clv_cmd.add_argument("--json", action="store_true", help="print JSON")
    clv_cmd.set_defaults(handler=cmd_clv)

    churn_cmd = sub.add_parser("churn", help="train and validate the churn model")
    churn_cmd.add_argument("--model", choices=MODELS, default="hgb")
    churn_cmd.add_argument("--window", type=int, default=DEFAULT_WINDOW_DAYS, help="days")
    churn_cmd.add_argument("--as-of", type=date.fromisoformat, help="YYYY-MM-DD (default: last)")
    churn_cmd.add_argument("--json", action="store_true", help="print JSON")
    churn_cmd.set_defaults(handler=cmd_churn)

    lake_cmd = sub.add_parser("lake", help="the Parquet lake that Spark reads")
    lake_sub = lake_cmd.add_subparsers(dest="lake_command", required=True)
    sync = lake_sub.add_parser("sync", help="write the facts and customer 360 as Parquet")
    sync.add_argument("--path", help="the lake's root folder (default: CRM_LAKE_DIR)")
    sync.add_argument("--json", action="store_true", help="print JSON")
    sync.set_defaults(handler=cmd_lake)
    serve = lake_sub.add_parser(
        "serve", help="run a Spark Connect server on this machine (127.0.0.1) until Ctrl+C"
    )
    serve.add_argument("--port", type=int, default=15002, help="its port (default 15002)")
    serve.add_argument(
        "--master", default="local[2]", help="local[N], or a standalone spark://host:port"
    )
    serve.set_defaults(handler=cmd_lake_serve, needs_store=False)

    rec = sub.add_parser(
        "recommend", help="products to offer each customer: evaluate; --score writes them"
    )
    rec.add_argument("--score", action="store_true", help="write customer_recommendations")
    rec.add_argument(
        "--max-customers", type=int, default=50_000, help="evaluated at most (a sample)"
    )
    rec.add_argument("--json", action="store_true", help="print JSON")
    rec.set_defaults(handler=cmd_recommend)

    from crm_core.analytics import lead_scoring as lead_mod

    leads_cmd = sub.add_parser("leads", help="lead scoring: validate, score the open leads")
    leads_sub = leads_cmd.add_subparsers(dest="leads_command", required=True)
    lscore = leads_sub.add_parser(
        "score", help="fit and validate the lead model, write lead_scores, print the top leads"
    )
    lscore.add_argument("--model", choices=lead_mod.MODELS, default="hgb")
    lscore.add_argument(
        "--window", type=int, default=lead_mod.DEFAULT_WINDOW_DAYS, help="won within DAYS"
    )
    lscore.add_argument(
        "--as-of",
        type=date.fromisoformat,
        help="YYYY-MM-DD: a look back as of that day, nothing written (default: the last day)",
    )
    lscore.add_argument(
        "--capacity", type=int, metavar="N", help="leads sales can call a week: the threshold"
    )
    lscore.add_argument("--top", type=int, default=10, help="top leads printed")
    lscore.add_argument("--json", action="store_true", help="print JSON")
    leads_cmd.set_defaults(handler=cmd_leads)

    # --- alerts (crm_core/alerts.py) ---
    from crm_core import alerts as alerts_mod
    from crm_core.metrics import METRICS

    alert = sub.add_parser("alerts", help="KPI, segment-size and score alerts: add, test, backtest")
    alert_sub = alert.add_subparsers(dest="alerts_command", required=True)

    def add_rule_args(command: argparse.ArgumentParser) -> None:
        command.add_argument("--rule", help="the definition as JSON text or a JSON file (README)")
        what = command.add_mutually_exclusive_group()
        what.add_argument("--kpi", choices=tuple(METRICS), help="watch a KPI")
        what.add_argument("--segment", help="watch a saved segment's size")
        what.add_argument(
            "--score", choices=tuple(alerts_mod.SCORE_AGGREGATES), help="watch a score aggregate"
        )
        command.add_argument(
            "--grain", choices=alerts_mod.GRAINS, default="week", help="KPI bucket"
        )
        command.add_argument("--country", action="append", help="KPI: only these countries")
        command.add_argument("--channel", action="append", help="KPI: only these sales channels")
        when = command.add_mutually_exclusive_group()
        when.add_argument("--below", type=float, help="fire when the value is below this")
        when.add_argument("--above", type=float, help="fire when the value is above this")
        when.add_argument(
            "--change", type=float, metavar="PERCENT", help="fire on a change this big"
        )
        when.add_argument(
            "--anomaly", action="store_true", help="fire outside the forecast range (default)"
        )
        command.add_argument("--against", choices=tuple(alerts_mod.AGAINST), default="previous")
        command.add_argument("--direction", choices=alerts_mod.DIRECTIONS, default="down")
        command.add_argument(
            "--level",
            type=float,
            help="anomaly interval (default 0.99 for a daily KPI, else 0.95)",
        )

    aadd = alert_sub.add_parser("add", help="save an alert (or a new version); backtests it first")
    aadd.add_argument("name")
    add_rule_args(aadd)
    aadd.add_argument("--description")
    aadd.add_argument(
        "--owner", required=True, help="user who saves it (a manager, analyst or admin)"
    )
    aadd.add_argument("--no-backtest", action="store_true", help="save without the 12-month replay")
    alert_sub.add_parser("list", help="saved alerts in words").add_argument(
        "--json", action="store_true", help="print JSON"
    )
    atest = alert_sub.add_parser(
        "test", help="evaluate now; deliver through its schedules if it fires"
    )
    atest.add_argument("name")
    atest.add_argument("--at", type=date.fromisoformat, help="evaluate as of this day (YYYY-MM-DD)")
    atest.add_argument("--no-deliver", action="store_true", help="only print the result")
    atest.add_argument("--json", action="store_true", help="print JSON")
    aback = alert_sub.add_parser(
        "backtest", help="how often a saved or given rule would have fired"
    )
    aback.add_argument("name", nargs="?", help="a saved alert (or give the rule's flags)")
    add_rule_args(aback)
    aback.add_argument(
        "--end", type=date.fromisoformat, help="last day replayed (default: latest data)"
    )
    aback.add_argument("--months", type=int, default=alerts_mod.BACKTEST_MONTHS)
    aback.add_argument("--json", action="store_true", help="print JSON (with the series)")
    for verb, text in (
        ("pause", "pause the schedules that evaluate this alert"),
        ("delete", "delete an alert (its versions are kept)"),
    ):
        action = alert_sub.add_parser(verb, help=text)
        action.add_argument("name")
        action.add_argument("--user", required=True, help="who acts (the owner or an admin)")
    alert.set_defaults(handler=cmd_alerts)

    # --- schedules and the scheduler (crm_core/schedules.py, crm_core/scheduler.py) ---
    sched = sub.add_parser("schedules", help="alerts, reports and exports on a cron schedule")
    sched_sub = sched.add_subparsers(dest="schedules_command", required=True)
    sadd = sched_sub.add_parser("add", help="add a schedule")
    sadd.add_argument("name")
    job = sadd.add_mutually_exclusive_group(required=True)
    job.add_argument(
        "--report",
        choices=reports.SCHEDULED_REPORTS,
        help="overview: the KPI overview; home: the owner's Home page (pinned KPIs and charts)",
    )
    job.add_argument("--alert", metavar="NAME", help="evaluate a saved alert; deliver if it fires")
    job.add_argument("--export", metavar="SEGMENT", help="export a saved segment")
    job.add_argument(
        "--retention", action="store_true", help="apply the retention policies (admins)"
    )
    sadd.add_argument("--cron", required=True, help='five fields, e.g. "0 7 * * *" (07:00 daily)')
    sadd.add_argument("--timezone", default="UTC", help="IANA zone the cron reads (default UTC)")
    sadd.add_argument("--email", action="append", help="recipient (repeat for several)")
    sadd.add_argument("--webhook", action="append", help="URL to POST a signed JSON payload to")
    sadd.add_argument("--folder", action="append", help="folder to write the result into")
    sadd.add_argument("--format", choices=FORMATS, default="csv", help="export file format")
    sadd.add_argument("--channel", choices=CHANNELS, default="email", help="export channel")
    sadd.add_argument("--columns", help="export: comma-separated 360 fields (default: by role)")
    sadd.add_argument(
        "--compare", choices=tuple(COMPARISONS), default="previous", help="report comparison"
    )
    sadd.add_argument(
        "--owner", required=True, help="user whose rights the schedule uses (export: PII by role)"
    )
    slist = sched_sub.add_parser("list", help="schedules, next run and last result")
    slist.add_argument("--json", action="store_true", help="print JSON")
    sched_sub.add_parser("run", help="run a schedule now and deliver").add_argument("name")
    for verb, text in (
        ("pause", "stop a schedule until resumed"),
        ("resume", "run a paused schedule again from its next slot"),
        ("remove", "delete a schedule (its run log stays)"),
    ):
        action = sched_sub.add_parser(verb, help=text)
        action.add_argument("name")
        action.add_argument("--user", required=True, help="who acts (the owner or an admin)")
    hist = sched_sub.add_parser("history", help="a schedule's runs and deliveries, newest first")
    hist.add_argument("name")
    hist.add_argument("--limit", type=int, default=20)
    sched.set_defaults(handler=cmd_schedules)

    sch = sub.add_parser("scheduler", help="run due schedules every poll (servers)")
    sch.add_argument("--once", action="store_true", help="run what is due now, then exit")
    sch.add_argument(
        "--poll", type=float, help="seconds between polls (CRM_SCHEDULER_POLL_SECONDS)"
    )
    sch.set_defaults(handler=cmd_scheduler)

    # --- data quality and duplicates (crm_core/quality.py, dedupe.py, merge.py) ---
    qual = sub.add_parser("quality", help="data quality per table (completeness, validity, ...)")
    qual.add_argument("--json", action="store_true", help="print JSON")
    qual.add_argument("--table", action="append", help="only this table (repeat for several)")
    qual.add_argument("--record", action="store_true", help="store the scores (their trend)")
    qual.set_defaults(handler=cmd_quality)

    priv = sub.add_parser("privacy", help="access requests, erasure with proof, retention")
    priv_sub = priv.add_subparsers(dest="privacy_command", required=True)
    access = priv_sub.add_parser("export", help="every row about a person, in a zip archive")
    access.add_argument("customer_id", type=int)
    access.add_argument("--out", required=True, help="the archive to write (.zip)")
    access.add_argument("--user", default="cli", help="who acts (audited)")
    erase = priv_sub.add_parser("erase", help="erase a person's personal data, with proof")
    erase.add_argument("customer_id", type=int)
    erase.add_argument("--yes", action="store_true", help="confirm: it cannot be undone")
    erase.add_argument("--user", default="cli", help="who acts (audited)")
    erase.add_argument("--json", action="store_true", help="print JSON (with the proof)")
    compact = priv_sub.add_parser(
        "compact", help="rewrite the store so erased values leave its free space (app stopped)"
    )
    compact.add_argument("--user", default="cli", help="who acts (audited)")
    reqs = priv_sub.add_parser("requests", help="access requests and erasures carried out")
    reqs.add_argument("--json", action="store_true", help="print JSON")
    keep = priv_sub.add_parser("retention", help="retention policies: dry run, or --apply")
    keep.add_argument("--apply", action="store_true", help="delete or anonymise old rows now")
    keep.add_argument(
        "--set",
        nargs="+",
        metavar="ARG",
        help="TABLE DATE_COLUMN MONTHS delete|anonymise [COLUMNS...]: add or change a policy",
    )
    keep.add_argument("--remove", metavar="TABLE", help="remove the policy of TABLE")
    keep.add_argument("--json", action="store_true", help="print the dry run as JSON")
    keep.add_argument("--user", default="cli", help="who acts (audited)")
    priv.set_defaults(handler=cmd_privacy)

    sup = sub.add_parser("suppressions", help="addresses never exported: add, remove, list")
    sup_sub = sup.add_subparsers(dest="suppressions_command", required=True)
    sadd_ = sup_sub.add_parser("add", help="put an e-mail or phone on the suppression list")
    sadd_.add_argument("kind", choices=("email", "phone"))
    sadd_.add_argument("value", help="the e-mail address or phone number")
    sadd_.add_argument("--reason", help="why (kept with the entry)")
    sadd_.add_argument("--user", default="cli", help="who acts (audited)")
    srem = sup_sub.add_parser("remove", help="take an address off the list (its hash too)")
    srem.add_argument("value", help="the e-mail address or phone number")
    srem.add_argument("--user", default="cli", help="who acts (audited)")
    slst = sup_sub.add_parser("list", help="the list, newest first (hashed entries unnamed)")
    slst.add_argument("--search", help="part of an address, or a whole address")
    slst.add_argument("--json", action="store_true", help="print JSON")
    simp = sup_sub.add_parser("import", help="an unsubscribe or bounce file into the list")
    simp.add_argument("path")
    simp.add_argument(
        "--list", dest="list_kind", required=True, choices=("unsubscribes", "bounces")
    )
    simp.add_argument("--email-column", help="the e-mail column (default: found by name)")
    simp.add_argument("--date-column", help="when each address was unsubscribed or bounced")
    simp.add_argument("--reason-column", help="why, kept with each entry")
    simp.add_argument("--dry-run", action="store_true", help="say what it would do; write nothing")
    simp.add_argument("--user", default="cli", help="who acts (audited)")
    sup.set_defaults(handler=cmd_suppressions)

    dup = sub.add_parser("duplicates", help="find likely duplicate customers; merge, unmerge")
    dup_sub = dup.add_subparsers(dest="duplicates_command", required=True)
    find = dup_sub.add_parser("find", help="score pairs of customers, cluster likely duplicates")
    find.add_argument("--threshold", type=float, help="match probability to list a pair")
    find.add_argument("--json", action="store_true", help="print JSON")
    find.add_argument("--user", default="cli", help="who acts (logged)")
    merge = dup_sub.add_parser("merge", help="merge customers into one (reversible)")
    merge.add_argument("keep", type=int, help="the customer id to keep")
    merge.add_argument("others", type=int, nargs="+", help="customer ids merged into it")
    merge.add_argument("--user", default="cli", help="who acts (logged)")
    merge.add_argument("--reason", help="why they are one person (kept in the history)")
    unmerge = dup_sub.add_parser("unmerge", help="undo a merge exactly")
    unmerge.add_argument("merge_id", type=int)
    unmerge.add_argument("--user", default="cli", help="who acts (logged)")
    dup_hist = dup_sub.add_parser("history", help="merges and unmerges, newest first")
    dup_hist.add_argument("--json", action="store_true", help="print JSON")
    dup.set_defaults(handler=cmd_duplicates)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one clear message and exit with status 2."""
    args = build_parser().parse_args(argv)
    try:
        store = get_store() if getattr(args, "needs_store", True) else None
        return args.handler(args, store)
    except CRMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

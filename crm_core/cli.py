"""`python -m crm_core ...`: init, import, kpis, users, segments, export (the app's code)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta

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


def _print_progress(fraction: float, message: str) -> None:
    print(f"  [{fraction:4.0%}] {message}", flush=True)


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
        history = ingest.history(store, limit=args.limit)
        if history.empty:
            print("No imports yet.")
        for batch in history.itertuples(index=False):
            line = (
                f"{batch.batch_id:>5}  {batch.imported_at:%Y-%m-%d %H:%M}  {batch.imported_by}  "
                f"{batch.file_name} ({batch.mode}): {ingest.rows_text(batch.rows)}"
            )
            if batch.rejected_rows:
                line += f"; {int(batch.rejected_rows):,} rejected"
            if isinstance(batch.undone_at, datetime) and batch.undone_at == batch.undone_at:
                line += f"; undone {batch.undone_at:%Y-%m-%d %H:%M} by {batch.undone_by}"
            print(line)
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
        for row in segments.list_segments(store).itertuples():
            size = "?" if row.customers != row.customers else f"{int(row.customers):,}"
            print(f"{row.name:<30} v{row.version:<4} {size:>10} customers  owner {row.owner}")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one clear message and exit with status 2."""
    args = build_parser().parse_args(argv)
    try:
        store = get_store()
        return args.handler(args, store)
    except CRMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

"""`python -m crm_core ...`: init, import, kpis, users (the same code the app runs)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Sequence
from datetime import date

from crm_core import auth, schema
from crm_core.config import get_settings
from crm_core.errors import CRMError
from crm_core.filters import Filters, default_filters
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
        print(f"Creating the demo store with {args.customers:,} customers (seed {args.seed})...")
        from crm_core import demo

        started = time.perf_counter()
        counts = demo.create_demo_store(
            store, customers=args.customers, seed=args.seed, progress=_print_progress
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
    """Validate and load one CSV or Parquet file into a table, all or nothing."""
    from crm_core import ingest

    store.require_tables(args.table)
    result = ingest.import_file(store, args.table, args.path, mode=args.mode)
    print(f"Imported {result.rows:,} rows into {result.table} ({result.mode}) from {args.path}")
    return 0


def cmd_kpis(args: argparse.Namespace, store: Store) -> int:
    """Print the overview's KPIs for a period, with the previous period of equal length."""
    store.require_tables("orders", "customers", "survey_responses")
    defaults = default_filters(store)
    if defaults is None and (args.start is None or args.end is None):
        raise CRMError("The store has no orders; give --start and --end, or import orders.")
    filters = Filters(
        start=args.start or defaults.start,
        end=args.end or defaults.end,
        countries=tuple(args.country or ()),
        channels=tuple(args.channel or ()),
    )
    if filters.end < filters.start:
        raise CRMError(f"--end {filters.end} is before --start {filters.start}.")
    kpis = compute_kpis(store, filters)
    if args.json:
        print(json.dumps(kpis_as_dict(kpis, filters), indent=2))
        return 0
    print(f"KPIs {filters.start} .. {filters.end} (previous: {filters.previous().start} ..)")
    for kpi in kpis.values():
        print(f"  {kpi.metric.label:<22} {format_value(kpi.metric, kpi.value):>14}")
    return 0


def _read_password(prompt: str) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(prompt)
    if first != getpass.getpass("Repeat: "):
        raise CRMError("The two passwords differ; nothing was changed.")
    return first


def cmd_users(args: argparse.Namespace, store: Store) -> int:
    """Add, reset or list dashboard users."""
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
    else:
        for user in auth.list_users(store):
            print(f"{user['username']:<20} {user['role']:<10} {user['name']}")
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
    imp.set_defaults(handler=cmd_import)

    kpis = sub.add_parser("kpis", help="print the overview KPIs for a period")
    kpis.add_argument("--start", type=date.fromisoformat, help="YYYY-MM-DD (default: a year back)")
    kpis.add_argument("--end", type=date.fromisoformat, help="YYYY-MM-DD (default: last order)")
    kpis.add_argument("--country", action="append", help="repeat for several")
    kpis.add_argument("--channel", action="append", help="repeat for several")
    kpis.add_argument("--json", action="store_true", help="print JSON")
    kpis.set_defaults(handler=cmd_kpis)

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
    users_sub.add_parser("list", help="list users and roles")
    users.set_defaults(handler=cmd_users)
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

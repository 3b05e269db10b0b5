"""python -m bench [--customers N] [--repeats R] [--workdir DIR] [--store PATH] [--out FILE]."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Generate a demo store, check crm_core against a plain-pandas baseline, "
        "time every step and write RESULTS.md.",
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=100_000,
        help="customers in the generated store (about 10 orders each); `make bench` uses "
        "1,000,000 (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per step (default: %(default)s)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="folder for the store, the CSV files and the exports (default: a new temp dir)",
    )
    parser.add_argument(
        "--store",
        type=Path,
        help="reuse this DuckDB store (copied into the workdir, never written) instead of "
        "generating one; --customers is then ignored",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "RESULTS.md",
        help="the report to write (default: bench/RESULTS.md)",
    )
    parser.add_argument("--seed", type=int, default=42, help="demo store seed")
    parser.add_argument(
        "--no-spark",
        action="store_true",
        help="leave out the Spark column (KPIs, 360 refresh and preview on Spark local[2])",
    )
    parser.add_argument(
        "--baseline-import-rows",
        type=int,
        default=200_000,
        help="rows the baseline writes with DataFrame.to_sql; its rate is scaled to the "
        "whole file (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the benchmark."""
    args = build_parser().parse_args(argv)
    if args.repeats < 1 or args.customers < 1:
        raise SystemExit("--repeats and --customers must be at least 1.")
    if args.store is not None and not args.store.is_file():
        raise SystemExit(f"--store {args.store}: no such file.")
    from bench.harness import Config, run  # heavy imports only here (spawned children skip them)

    shown = sys.argv[1:] if argv is None else list(argv)
    run(
        Config(
            customers=args.customers,
            repeats=args.repeats,
            workdir=args.workdir,
            store=args.store.resolve() if args.store else None,
            out=args.out,
            seed=args.seed,
            baseline_import_rows=args.baseline_import_rows,
            spark=not args.no_spark,
        ),
        command=" ".join(["python -m bench", *map(shlex.quote, shown)]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

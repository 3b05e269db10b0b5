"""Peak memory and wall time of the orders import alone, in a process of its own.

    python -m bench.import_memory --csv-dir DIR [--workdir DIR] [--code CHECKOUT]

`--csv-dir` holds the benchmark's CSV files (orders.csv, customers.csv, campaigns.csv, as
`python -m bench` writes them into <workdir>/csv). A first child builds the import's target
store (customers and campaigns imported, no orders; untimed); a second child, started
fresh, does nothing but `ingest.import_file(store, "orders", orders.csv)`. Its peak resident
memory is the child's VmHWM (/proc/self/status: the whole child, interpreter and libraries
included), read when the import has returned; the time is the import call's wall time
inside the child. Not ru_maxrss: Linux carries a parent's peak into a child across fork and
exec, so a child of a large process would report at least the parent's peak.

`--code` runs another checkout's crm_core (e.g. the code before a change) with the same
measurement; this process never imports crm_core. The harness (`bench.harness`) calls
`measure_import` for its import step, on a copy of the target store it already prepared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
"""The checkout this benchmark belongs to (its crm_core is measured by default)."""

_PREPARE = """
import sys
from pathlib import Path
from crm_core import ingest
from crm_core.store import Store
store = Store(sys.argv[1])
store.init_schema()
csv_dir = Path(sys.argv[2])
ingest.import_files(store, [(n, csv_dir / f"{n}.csv") for n in ("customers", "campaigns")])
store.dispose()
"""
"""Child 1: a fresh store with the tables orders refer to."""

_IMPORT = """
import json, sys, time
from crm_core import ingest
from crm_core.store import Store

def peak():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))

store = Store(sys.argv[1])
before = peak()
started = time.perf_counter()
rows = ingest.import_file(store, "orders", sys.argv[2]).rows
seconds = time.perf_counter() - started
store.dispose()
out = {"rows": rows, "seconds": seconds, "rss_before_import": before, "peak_rss": peak()}
print(json.dumps(out))
"""
"""Child 2: the import and nothing else."""


def _env(code: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(code)
    return env


def _run(snippet: str, args: Sequence[str], code: Path) -> str:
    """Run `snippet` in a fresh interpreter on `code`'s crm_core; its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(  # noqa: S603 (our own interpreter and snippet)
            [sys.executable, "-c", snippet, *args],
            cwd=code,
            env=_env(code),
            stdout=out,
            stderr=err,
        )
        child.wait()
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(
                f"The child ({code}) failed with exit code {child.returncode}:\n"
                + err.read().decode(errors="replace")[-4000:]
            )
        return out.read().decode()


def duckdb_url(path: Path) -> str:
    """SQLAlchemy URL of a DuckDB store file."""
    return f"duckdb:///{Path(path).resolve()}"


def prepare_target(store_file: Path, csv_dir: Path, code: Path = HERE) -> None:
    """A new store at `store_file` holding customers and campaigns (no orders)."""
    store_file.unlink(missing_ok=True)
    _run(_PREPARE, [duckdb_url(store_file), str(csv_dir.resolve())], code)


def measure_import(store_file: Path, orders_csv: Path, code: Path = HERE) -> dict[str, Any]:
    """Import `orders_csv` into `store_file` in a fresh child: rows, seconds, peak_rss (bytes),
    rss_before_import (the child's peak before the call: interpreter and libraries)."""
    out = _run(_IMPORT, [duckdb_url(store_file), str(Path(orders_csv).resolve())], code)
    return json.loads(out.strip().splitlines()[-1])


def orders_stats(store_file: Path) -> tuple[int, float]:
    """Rows and total amount of the orders table (read-only, outside the app's store)."""
    import duckdb

    conn = duckdb.connect(str(store_file), read_only=True)
    try:
        rows, total = conn.execute(
            "SELECT count(*), coalesce(sum(amount), 0) FROM orders"
        ).fetchone()
    finally:
        conn.close()
    return int(rows), float(total)


def _git_head(code: Path) -> str:
    try:
        return subprocess.run(  # noqa: S603
            ["git", "-C", str(code), "log", "-1", "--format=%h %s"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _gib(value: int) -> str:
    return f"{value / 1024**3:.2f} GiB"


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the target, import the orders in a child, print the figures."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.import_memory",
        description="Wall time and peak RSS of importing the benchmark's orders CSV, in a "
        "child process that does only that.",
    )
    parser.add_argument(
        "--csv-dir",
        type=Path,
        required=True,
        help="folder with orders.csv, customers.csv and campaigns.csv (<bench workdir>/csv)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="folder for the target store (default: a new temp dir)"
    )
    parser.add_argument(
        "--code",
        type=Path,
        default=HERE,
        help="checkout whose crm_core is measured (default: this one, %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="imports (default: 1)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    code = args.code.resolve()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="crm-import-mem-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / "import_memory.duckdb"
    orders_csv = args.csv_dir.resolve() / "orders.csv"
    print(f"crm_core of {code} ({_git_head(code)}); target {target}", flush=True)
    started = time.perf_counter()
    prepare_target(target, args.csv_dir, code)
    print(f"Target prepared (customers, campaigns) in {time.perf_counter() - started:.1f} s")
    runs = []
    for i in range(args.repeats):
        if i:
            prepare_target(target, args.csv_dir, code)
        run = measure_import(target, orders_csv, code)
        run["orders_stats"] = orders_stats(target)
        runs.append(run)
        print(
            f"Import {i + 1}: {run['rows']:,} orders in {run['seconds']:.2f} s, peak RSS "
            f"{_gib(run['peak_rss'])} (before the import call {_gib(run['rss_before_import'])});"
            f" stored {run['orders_stats'][0]:,} orders, amount {run['orders_stats'][1]:,.2f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(
            json.dumps({"code": str(code), "head": _git_head(code), "runs": runs}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

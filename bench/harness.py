"""Run the benchmark: prepare the store, check ours against the baseline, time, report.

Separate processes, so that their memory does not mix: a child generates the store and
writes the CSV files; a second child is the pandas baseline and a third, started when the
second has ended, the polars baseline (each loads the CSVs once, computes the checked
results, then times its steps); this process runs crm_core, and one more child runs our
import alone to measure its peak memory (`bench.import_memory`). Nothing is timed until
every check of a baseline has passed. Each baseline child has finished before ours is
timed, so no two sides compete for the cores.
"""

from __future__ import annotations

import functools
import multiprocessing
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import baseline, checks, import_memory, polars_baseline, report, steps
from bench.report import STEPS, Report, Result
from crm_core.analytics import clv
from crm_core.analytics.clv import NotReadyError
from crm_core.store import close_all, get_store

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Config:
    """The command line's choices."""

    customers: int = 100_000
    repeats: int = 3
    workdir: Path | None = None
    store: Path | None = None
    out: Path = Path(__file__).resolve().parent / "RESULTS.md"
    seed: int = 42
    baseline_import_rows: int = 200_000
    duckdb_import_rows: int = 2_000
    spark: bool = True


def _times(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Call `fn` `repeats` times; its durations and last result."""
    seconds, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = fn()
        seconds.append(time.perf_counter() - started)
    return seconds, value


def _child() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


def _copy_store(source: Path, target: Path) -> None:
    """Copy a closed DuckDB store file (and its write-ahead log, if one is left)."""
    for suffix in ("", ".wal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


def run(config: Config, command: str = "python -m bench", echo: Echo = print) -> Report:
    """Run every step and write config.out; returns the report (raises on a mismatch)."""
    began = time.perf_counter()
    workdir = Path(config.workdir or tempfile.mkdtemp(prefix="crm-bench-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    store_path, csv_dir = workdir / "crm.duckdb", workdir / "csv"
    rep = Report(
        machine=report.machine_info(),
        started=datetime.now(UTC),
        customers=config.customers,
        repeats=config.repeats,
    )
    echo(f"Benchmark in {workdir}")

    # 1. The store and the CSV files, in a child process.
    echo("Generating the store..." if config.store is None else f"Copying {config.store}...")
    with _child() as child:
        prepared = child.submit(
            steps.prepare,
            str(store_path),
            str(csv_dir),
            config.customers,
            config.seed,
            str(config.store) if config.store else None,
        ).result()
    rep.counts = prepared["counts"]
    rep.generate_peak_rss = prepared["peak_rss"]
    echo(
        "Store: "
        + ", ".join(f"{name} {n:,}" for name, n in rep.counts.items())
        + "\n\n"
        + report.HEADER
    )

    def record(result: Result) -> None:
        rep.results.append(result)
        echo(report.row(result))

    if prepared["seconds"] is None:
        rep.notes.append(f"The store was copied from {config.store}, not generated.")
    else:
        record(
            Result(
                STEPS["generate"],
                [prepared["seconds"]],
                detail=f"{config.customers:,} customers, seed {config.seed}; once",
            )
        )

    store = get_store(steps.store_url(store_path))
    store.init_schema()
    steps.add_users(store)
    filters = steps.year_filters(store)
    orders_csv = csv_dir / "orders.csv"

    # 2. Results of ours and the pandas baseline, checked before anything is timed.
    template = workdir / "import_template.duckdb"  # the import's target, without orders
    with _child() as child:
        loaded = child.submit(baseline.load, str(csv_dir)).result()
        imp = steps.import_store(workdir / "import.duckdb", csv_dir)
        imp.dispose()
        _copy_store(workdir / "import.duckdb", template)
        steps.import_orders(imp, orders_csv)
        ours_import = steps.orders_stats(imp)
        ours_kpis = {k: (v.value, v.previous) for k, v in steps.kpis(store, filters).items()}
        steps.refresh_360(store)
        ours_360 = steps.read_360(store)
        parquet = workdir / "baseline_360.parquet"
        theirs = child.submit(baseline.results, filters.start, filters.end, str(parquet)).result()
        checked = _check(ours_import, ours_kpis, ours_360, theirs, parquet, "pandas")

        # 3. The baseline's timings (ours waits: the two never share the cores).
        echo("Timing the pandas baseline...")
        base = child.submit(
            baseline.time_steps,
            config.repeats,
            filters.start,
            filters.end,
            str(orders_csv),
            config.baseline_import_rows,
            str(workdir),
            config.duckdb_import_rows,
        ).result()
    rep.baseline_peak_rss = base["peak_rss"]
    _baseline_notes(rep, loaded, base)

    # 3b. The polars baseline: checked the same way, then timed (the pandas child has ended).
    echo("Checking and timing the polars baseline...")
    with _child() as child:
        pl_loaded = child.submit(polars_baseline.load, str(csv_dir)).result()
        parquet = workdir / "polars_360.parquet"
        theirs = child.submit(
            polars_baseline.results, filters.start, filters.end, str(parquet)
        ).result()
        checked_polars = _check(ours_import, ours_kpis, ours_360, theirs, parquet, "polars")
        del ours_360
        pol = child.submit(
            polars_baseline.time_steps,
            config.repeats,
            filters.start,
            filters.end,
            str(orders_csv),
            str(template),
            str(workdir),
        ).result()
    checks.compare_import(ours_import, pol["import_detail"]["stored"])
    rep.polars_peak_rss = pol["peak_rss"]
    _write_checks(rep, ours_import, checked, checked_polars)
    echo("Checks passed: " + "; ".join(c.split(":")[0] for c in rep.checks))
    _polars_notes(rep, pl_loaded, pol)
    echo("Timing crm_core...\n\n" + report.HEADER)

    # 4. Ours, step by step.
    def import_once() -> int:
        steps.empty_orders(imp)
        started = time.perf_counter()
        rows = steps.import_orders(imp, orders_csv)
        seconds.append(time.perf_counter() - started)
        return rows

    seconds: list[float] = []
    for _ in range(config.repeats):
        rows = import_once()
    if steps.orders_stats(imp) != ours_import:
        raise checks.MismatchError("A repeated import loaded different orders.")
    imp.dispose()
    # The import alone in a fresh process: its peak memory (and its time there).
    alone = workdir / "import_memory.duckdb"
    _copy_store(template, alone)
    measured = import_memory.measure_import(alone, orders_csv)
    checks.compare_import(ours_import, import_memory.orders_stats(alone))
    rep.import_rows, rep.import_peak_rss = measured["rows"], measured["peak_rss"]
    rep.import_alone_seconds = measured["seconds"]
    rep.import_rss_before = measured["rss_before_import"]
    record(
        Result(
            STEPS["import"],
            seconds,
            base["import"],
            f"{rows:,} rows, {rows / statistics.median(seconds):,.0f} rows/s; peak memory of "
            f"the import in a process of its own {report.gib_text(rep.import_peak_rss)}",
            STEPS["import"].label.format(orders=f"{rows:,}"),
            pol["import"],
        )
    )

    steps.kpis(store, filters)  # warm-up
    secs, _ = _times(lambda: steps.kpis(store, filters), config.repeats)
    record(
        Result(
            STEPS["kpis"], secs, base["kpis"], f"{filters.start} to {filters.end}", "", pol["kpis"]
        )
    )

    secs, rows = _times(lambda: steps.refresh_360(store), config.repeats)
    compute_only = report.seconds_text(statistics.median(base["refresh_360_compute"]))
    pl_compute_only = report.seconds_text(statistics.median(pol["refresh_360_compute"]))
    record(
        Result(
            STEPS["refresh_360"],
            secs,
            base["refresh_360"],
            f"{rows:,} rows; groupby alone: pandas {compute_only}, polars {pl_compute_only}",
            "",
            pol["refresh_360"],
        )
    )

    steps.preview(store)  # warm-up
    secs, found = _times(lambda: steps.preview(store), config.repeats)
    record(
        Result(
            STEPS["preview"], secs, detail=f"{found.customers:,} of {found.base:,} customers match"
        )
    )

    _spark_column(config, rep, store, workdir, filters, echo)

    secs, (clv_model, clv_values) = _times(lambda: steps.clv_fit_and_score(store), config.repeats)
    record(Result(STEPS["clv"], secs, detail=f"{len(clv_values):,} customers valued"))
    as_of = clv.data_span(store)[1]
    score_upcoming = functools.partial(steps.next_purchase_scores, clv_model, clv_values, as_of)
    secs, upcoming = _times(score_upcoming, config.repeats)
    due = int(upcoming["next_purchase_from"].notna().sum())
    record(
        Result(
            STEPS["next_purchase"],
            secs,
            detail=f"{len(upcoming):,} buyers, {due:,} with a date window; "
            "the CLV step includes it",
        )
    )
    del clv_model, clv_values, upcoming, score_upcoming
    secs, clv_report = _times(lambda: steps.clv_page(store), 1)
    backtest = clv_report.backtest.total_error
    record(
        Result(
            STEPS["clv_page"],
            secs,
            detail=f"backtest error of the holdout total {backtest:+.1%}; once",
        )
    )
    del clv_report

    secs, churn_report = _times(lambda: steps.churn_train_and_score(store), config.repeats)
    rep.churn_auc = churn_report.metric("roc_auc")
    rep.churn_baseline_auc = churn_report.metric("roc_auc", "baseline")
    record(
        Result(
            STEPS["churn"],
            secs,
            detail=f"ROC AUC {rep.churn_auc:.3f}; {len(churn_report.scores):,} customers scored",
        )
    )
    del churn_report

    try:
        secs, lead_report = _times(lambda: steps.leads_fit_and_score(store), config.repeats)
    except NotReadyError as exc:  # a store generated before the demo had lead activities
        echo(f"lead scoring left out: {exc}")
    else:
        record(
            Result(
                STEPS["leads"],
                secs,
                detail=f"ROC AUC {lead_report.metric('roc_auc'):.3f} (source only "
                f"{lead_report.metric('roc_auc', 'baseline'):.3f}); {lead_report.n_train:,} "
                f"training and {lead_report.n_valid:,} validation lead-cutoffs; "
                f"{len(lead_report.scores):,} open leads scored",
            )
        )
        del lead_report

    steps.save_export_segment(store)
    exports = workdir / "exports"
    secs, done = _times(
        lambda: steps.export_everyone(store, exports / "everyone.csv"), config.repeats
    )
    record(
        Result(
            STEPS["export"],
            secs,
            detail=f"{done.rows:,} of {done.selected:,} selected (channel {done.channel})",
            label=STEPS["export"].label.format(exported=f"{done.rows:,}"),
        )
    )

    # Recommendations in a child of their own, as `recommend --score` runs them (a batch job,
    # like duplicate detection): their peak memory is on their row, not in this process's.
    # DuckDB lets one process open the file, so this process lets go of it first.
    close_all()
    try:
        with _child() as child:
            rec = child.submit(
                steps.recommend_fit_and_score, str(store_path), config.repeats
            ).result()
    except NotReadyError as exc:  # a store without order lines
        echo(f"recommendations left out: {exc}")
    else:
        record(
            Result(
                STEPS["recommend"],
                rec["seconds"],
                detail=f"fit {rec['fit_seconds']:.1f} s ({rec['rules']:,} rules, "
                f"{rec['consumables']:,} consumables); {rec['rows']:,} products for "
                f"{rec['customers']:,} customers; peak memory of the child "
                f"{report.gib_text(rec['peak_rss'])}",
            )
        )

    # Duplicate detection, once, in a child of its own (its peak memory). Both before the
    # AppTest render, which leaves app.py as __main__ (a spawned child would run it).
    with _child() as child:
        dup = child.submit(steps.find_duplicates, str(store_path)).result()
    record(
        Result(
            STEPS["duplicates"],
            [dup["seconds"]],
            detail=f"{dup['pairs']:,} pairs in {dup['clusters']:,} clusters; precision "
            f"{dup['precision']:.3f}, recall {dup['recall']:.3f} against the planted "
            f"duplicates; peak memory of the child {report.gib_text(dup['peak_rss'])}; once",
            label=STEPS["duplicates"].label.format(customers=f"{dup['customers']:,}"),
        )
    )

    app = steps.OverviewApp(store_path, workdir)
    try:
        secs, _ = _times(app.render, config.repeats)
    finally:
        app.close()
    record(Result(STEPS["render"], secs, detail="signed in as a manager; first run not timed"))

    rep.peak_rss = baseline.peak_rss_bytes()
    close_all()
    echo(report.memory_row(rep))
    echo(report.import_memory_row(rep))
    rep.notes += _our_notes(rep.counts.get("customers", 0))
    rep.seconds = time.perf_counter() - began
    rep.machine["load average at the end (1, 5, 15 min)"] = report.load_average()
    config.out.parent.mkdir(parents=True, exist_ok=True)
    config.out.write_text(report.render(rep, command))
    echo(f"\nWrote {config.out}")
    return rep


def _check(
    ours_import: tuple[int, float],
    ours_kpis: dict[str, tuple[float | None, float | None]],
    ours_360: Any,
    theirs: dict[str, Any],
    parquet: Path,
    side: str,
) -> tuple[int, int]:
    """Compare ours with one baseline; MismatchError on the first difference. Returns the
    KPI figures and 360 rows checked."""
    import pandas as pd

    try:
        checks.compare_import(ours_import, (theirs["orders_rows"], theirs["orders_amount"]))
        figures = checks.compare_kpis(ours_kpis, theirs["kpis"])
        rows = checks.compare_frames(
            ours_360,
            pd.read_parquet(parquet),
            "customer_id",
            list(baseline.COMPARED_360),
            "customer_360",
        )
    except checks.MismatchError as error:
        raise checks.MismatchError(f"Against the {side} baseline: {error}") from None
    parquet.unlink(missing_ok=True)
    return figures, rows


def _write_checks(
    rep: Report,
    ours_import: tuple[int, float],
    pandas_checked: tuple[int, int],
    polars_checked: tuple[int, int],
) -> None:
    """The checks both baselines passed, for RESULTS.md."""
    columns = list(baseline.COMPARED_360)
    if pandas_checked != polars_checked:
        raise checks.MismatchError(
            f"The baselines checked different amounts: pandas {pandas_checked}, "
            f"polars {polars_checked}"
        )
    figures, rows = pandas_checked
    rep.checks += [
        f"Import: {ours_import[0]:,} orders and their total amount {ours_import[1]:,.2f} equal "
        "to the CSV as pandas and polars read it; after the last timed import of ours, of the "
        "polars baseline and of ours alone in a process of its own, the target store holds "
        "the same rows and amount.",
        f"KPI overview: all {figures} figures ({figures // 2} KPIs, this period and the "
        f"previous one) equal to both baselines' within a relative {checks.REL_TOL:g}.",
        f"Customer 360: {rows:,} customers, sorted by customer_id, equal to both baselines' in "
        f"{len(columns)} derived columns ({', '.join(columns)}); numbers within a relative "
        f"{checks.REL_TOL:g}, avg_order_value within half a cent of the exact quotient "
        "(the store rounds it to DECIMAL(12,2)).",
    ]


def _spark_column(
    config: Config, rep: Report, store: Any, workdir: Path, filters: Any, echo: Echo
) -> None:
    """Time the KPIs, the 360 refresh and the preview on Spark (local[2]) and put them in
    the Spark column; a note says why when there is none."""
    from crm_core import spark

    if not config.spark:
        rep.notes.append("No Spark column: the run was started with --no-spark.")
        return
    if not spark.java_available():
        rep.notes.append("No Spark column: no Java runtime here (`make test` installs Java 17).")
        return
    from bench import spark_column

    echo("Timing the Spark column (local[2])...")
    measured = spark_column.measure(store, workdir, filters, config.repeats)
    for result in rep.results:
        if result.step.key in measured.seconds:
            result.spark = measured.seconds[result.step.key]
            echo(f"  {result.step.key} on Spark: {report.seconds_text(result.spark_median)}")
    rep.notes += measured.notes()


def _baseline_notes(rep: Report, loaded: dict, base: dict) -> None:
    detail = base["import_detail"]
    load = report.seconds_text(loaded["seconds"])
    read = report.seconds_text(statistics.median(detail["read_csv_seconds"]))
    rate = statistics.median(detail["to_sql_rows_per_second"])
    estimate = report.seconds_text(statistics.median(base["import"]))
    rep.notes += [
        "Baseline (bench/baseline.py) runs in a child process of its own. It reads every "
        "table it needs from CSV files written once from the store (customers, orders, "
        "survey_responses, support_tickets, campaign_contacts, customer_scores) with "
        f"`pd.read_csv` (dates parsed) in {load}, which no step counts (a dashboard caching "
        "its DataFrames pays it once), and keeps the frames in memory.",
        "Baseline KPIs: the same ten figures for the period and the previous one (revenue, "
        "orders, AOV, active, new, repeat rate, retention, churn, NPS, CSAT) with boolean "
        "masks and groupby over the loaded orders and survey frames; one warm-up call, then "
        "timed.",
        "Baseline 360 refresh: a refresh follows new data, so the baseline re-reads the "
        "source CSV files (`pd.read_csv`, as when its dashboard reloads) and then groups them "
        "into the customer_360 columns as a DataFrame in memory; the groupby alone is shown "
        "beside the step. It computes: order aggregates (first/last order, frequency, monetary, "
        "90-day orders and revenue, recency, AOV, tenure), tie-aware R/F/M quintile scores, "
        "rfm_score and rfm_segment, latest NPS, mean CSAT, open tickets, campaign "
        "sends/opens/clicks, joined to the customer attributes and scores. Not included: "
        "saved k-means clusters (none in a benchmark store) and writing the table anywhere "
        "(ours writes it into the store in one transaction).",
        f"Baseline import: `pd.read_csv` of the whole orders CSV ({detail['total_rows']:,} "
        f"rows, median {read}) plus `DataFrame.to_sql` through SQLAlchemy into SQLite, timed "
        f"on the first {detail['sample_rows']:,} rows (median {rate:,.0f} rows/s) and scaled "
        f"to all rows: estimated {estimate}. Only the write is extrapolated. to_sql into a "
        "DuckDB file through duckdb_engine is slower still "
        f"({detail['duckdb_rows_per_second']:,.0f} rows/s on {detail['duckdb_sample_rows']:,} "
        "rows), so SQLite is the conservative choice.",
        f"Baseline peak memory (its own process, frames loaded): "
        f"{report.gib_text(base['peak_rss'])}.",
    ]


def _polars_notes(rep: Report, loaded: dict, pol: dict) -> None:
    load = report.seconds_text(loaded["seconds"])
    rep.notes += [
        "Polars baseline (bench/polars_baseline.py, polars "
        f"{report.version('polars')}) runs in a child process of its own after the pandas "
        "child has ended. It reads the same CSV files with `pl.read_csv`, typed with the "
        "store's declared column types (dates and times parsed with their known format), in "
        f"{load} (not counted, as for "
        "pandas), and computes the same KPIs and customer 360 columns with polars "
        "expressions (filter, group_by/agg, joins, rank). Its 360 refresh re-reads the CSV "
        "files, like pandas', but as one lazy query over `pl.scan_csv` scans, so polars "
        "reads only the columns the figures need; the groupby alone (on the loaded frames) "
        "is shown beside the step.",
        "Polars import: `pl.read_csv` of the whole orders CSV with the declared types (a "
        "value of the wrong type fails the read), then `INSERT INTO orders SELECT ... FROM` "
        "the frame through Arrow, in one transaction, into a copy (untimed) of the same "
        "target store ours imports into, so DuckDB checks the primary key, NOT NULL and the "
        "column types; every row, nothing extrapolated. It does not check the customer and "
        "campaign references (the store declares no foreign keys), enum values, money "
        "precision or the other rules ingest.import_file validates, nor does it explain bad "
        "rows.",
        f"Polars baseline peak memory (its own process, frames loaded): "
        f"{report.gib_text(pol['peak_rss'])}.",
    ]


def _our_notes(customers: int) -> list[str]:
    return [
        "Ours calls the crm_core functions the pages and CLI call, on a DuckDB store file, "
        "without Streamlit's caches (except the AppTest render): ingest.import_file, "
        "metrics.compute_kpis, features.refresh, segments.preview, clv.value_customers, "
        "clv.analyse, churn.analyse, export.export_segment (bench/steps.py).",
        "Import: the orders CSV through ingest.import_file (read, validate every value and "
        "key, load in one transaction) into a store holding the customers and no orders; the "
        "orders are deleted (untimed) before each run. Then the same import runs once more "
        "in a fresh Python process that does nothing else (bench/import_memory.py, into a "
        "copy of the target store): its peak resident memory (ru_maxrss of that child, read "
        "with os.wait4; interpreter and libraries included) is the import's memory row.",
        "KPIs: compute_kpis for the last 365 days up to the last completed order, on an open "
        "store, after one untimed warm-up call.",
        "360 refresh: features.refresh rebuilds customer_360 for every customer "
        "(INSERT ... SELECT) in one transaction.",
        f"Segment preview: segments.preview of a five-rule segment ({_rules_text()}) as the "
        "marketer role, after one untimed warm-up call.",
        "CLV fit and scoring: clv.value_customers: the RFM summary of every buyer in SQL, "
        "BG/NBD and Gamma-Gamma fitted with lifetimes, then expected purchases, P(alive), "
        "expected spend and 12-month CLV for every customer. The CLV page (clv.analyse) "
        "adds a backtest fit at the calibration end, the customers' attributes and the "
        "frequency-recency matrices; it is timed once, in a row of its own.",
        "Churn: churn.analyse, what scoring.score runs: features at two cutoffs, gradient "
        "boosting trained and validated against a recency-only logistic baseline, permutation "
        "importance, partial dependence, refit and scoring of current customers.",
        f"Export: export.export_segment of a saved segment selecting every customer, channel "
        f"`{steps.EXPORT_CHANNEL}` (erased and suppressed customers are left out; consent "
        "applies to email and sms only), default columns for a marketer, CSV with "
        "formula-safe cells, sha256, manifest and export_log row.",
        "Overview render: app.py in Streamlit's AppTest, signed in as a manager; the first "
        "run fills Streamlit's caches and is not timed, later runs are.",
        "Duplicates: dedupe.find_duplicates on the live customers (planted duplicates "
        "included), once, in a fresh process (its peak memory, interpreter and libraries "
        "included): read and normalise (e-mail and phone keys), Splink's training (prior, "
        "u from 2,000,000 seeded random pairs, two EM sessions), scoring of the blocked "
        "pairs at the default threshold, clustering, and storing the run.",
        "Recommendations: recommend.score (what `recommend --score` runs, a batch job) in a "
        "fresh process, each timed run reading the purchase lines, fitting the rules and "
        "consumables, recommending to every customer and replacing the stored lists; its "
        "peak memory is on its row.",
        f"Peak memory: ru_maxrss of the harness process (every step of ours, plus reading "
        "the 360 table for the check); generation, the baselines, the recommendations and "
        "duplicate detection ran in processes of their own. Targets apply to 1,000,000 "
        f"customers; this run had {customers:,}.",
    ]


def _rules_text() -> str:
    return " and ".join(
        f"{r['field']} {r['op']} {r['value']}" for r in steps.FIVE_RULES["rules"]
    ).replace("'", "")

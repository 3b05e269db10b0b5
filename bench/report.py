"""The benchmark's figures: steps and their targets, the machine, and RESULTS.md."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path

GIB = 1024**3
MEMORY_TARGET = 4 * GIB
"""Peak resident memory of our side for the whole run."""

IMPORT_MEMORY_TARGET = 1.5 * GIB
"""Peak resident memory of the orders import alone (issue 13: 10,000,000 orders)."""


@dataclass(frozen=True)
class Step:
    """One timed step and its target (at 1,000,000 customers on 2 cores)."""

    key: str
    label: str
    target: str
    max_seconds: float | None = None
    min_ratio: float | None = None


STEPS: dict[str, Step] = {
    s.key: s
    for s in (
        Step("generate", "generate the store", "report it"),
        Step("import", "import {orders} orders from CSV", "report it; >= 5x pandas", None, 5.0),
        Step("kpis", "KPI overview figures for a year, warm", "< 0.5 s; >= 5x pandas", 0.5, 5.0),
        Step(
            "refresh_360", "refresh the customer 360 table with RFM", "< 10 s; >= 5x pandas", 10, 5
        ),
        Step("preview", "preview of a five-rule segment", "< 0.3 s", 0.3),
        Step("clv", "CLV fit (BG/NBD + Gamma-Gamma) and scoring of every customer", "< 15 s", 15),
        Step(
            "next_purchase",
            "next purchase: chance in 7/30/90 days and date window of every buyer",
            "report it",
        ),
        Step("clv_page", "CLV page: backtest, refit, values and attributes", "report it"),
        Step("churn", "churn model training and scoring", "< 90 s", 90),
        Step("leads", "lead scoring: fit, validate, score the open leads", "report it"),
        Step("export", "export of {exported} rows to CSV", "< 10 s", 10),
        Step(
            "recommend",
            "recommendations: fit rules and cycles, score and store every customer's list",
            "report it",
        ),
        Step(
            "duplicates",
            "duplicate detection of {customers} customers (Splink: train, score, cluster)",
            "report it",
        ),
        Step("render", "overview page render in AppTest, warm", "< 1 s", 1),
    )
}
"""Every step in the order it runs."""


@dataclass
class Result:
    """Timings of one step (ours and, where there is one, the baseline's)."""

    step: Step
    seconds: list[float]
    baseline: list[float] | None = None
    detail: str = ""
    label: str = ""
    polars: list[float] | None = None
    spark: list[float] | None = None
    """Our step on Spark (local[2]) over a Parquet lake, where it has a Spark column."""

    @property
    def median(self) -> float:
        """Median of our timings."""
        return statistics.median(self.seconds)

    @property
    def baseline_median(self) -> float | None:
        """Median of the baseline's timings."""
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def ratio(self) -> float | None:
        """How many times faster ours is than the pandas baseline (medians)."""
        base = self.baseline_median
        return None if base is None or not self.median else base / self.median

    @property
    def polars_median(self) -> float | None:
        """Median of the polars baseline's timings."""
        return statistics.median(self.polars) if self.polars else None

    @property
    def polars_ratio(self) -> float | None:
        """How many times faster ours is than the polars baseline (medians)."""
        base = self.polars_median
        return None if base is None or not self.median else base / self.median

    @property
    def spark_median(self) -> float | None:
        """Median of our timings on Spark."""
        return statistics.median(self.spark) if self.spark else None

    @property
    def verdict(self) -> str:
        """pass, miss, or "-" for a step whose target is only "report it"."""
        checks = []
        if self.step.max_seconds is not None:
            checks.append(self.median < self.step.max_seconds)
        if self.step.min_ratio is not None:
            checks.append(self.ratio is not None and self.ratio >= self.step.min_ratio)
        if not checks:
            return "-"
        return "pass" if all(checks) else "**miss**"


@dataclass
class Report:
    """Everything RESULTS.md shows."""

    machine: dict[str, str]
    started: datetime
    customers: int
    repeats: int
    counts: dict[str, int] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    peak_rss: int = 0
    baseline_peak_rss: int = 0
    polars_peak_rss: int = 0
    import_rows: int = 0
    import_peak_rss: int = 0
    import_alone_seconds: float = 0.0
    import_rss_before: int = 0
    generate_peak_rss: int = 0
    churn_auc: float | None = None
    churn_baseline_auc: float | None = None
    seconds: float = 0.0

    @property
    def memory_verdict(self) -> str:
        """pass or miss against MEMORY_TARGET."""
        return "pass" if self.peak_rss < MEMORY_TARGET else "**miss**"

    @property
    def import_memory_verdict(self) -> str:
        """pass or miss against IMPORT_MEMORY_TARGET."""
        return "pass" if self.import_peak_rss < IMPORT_MEMORY_TARGET else "**miss**"


# --- machine ----------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _meminfo_gib(name: str) -> str:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith(f"{name}:"):
            return f"{int(line.split()[1]) * 1024 / GIB:.1f} GiB"
    return "unknown"


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other work on the machine skews timings)."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def machine_info() -> dict[str, str]:
    """Cores, memory, CPU model, OS, Python and library versions, load when starting."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "CPU": model,
        "cores": f"{os.cpu_count()} (usable by this process: {usable})",
        "memory": f"{_meminfo_gib('MemTotal')} total, {_meminfo_gib('MemAvailable')} available",
        "load average at start (1, 5, 15 min)": load_average(),
        "OS": platform.platform(),
        "Python": sys.version.split()[0],
        "libraries": ", ".join(
            f"{p} {version(p)}"
            for p in ("duckdb", "pandas", "polars", "numpy", "pyarrow", "SQLAlchemy", "streamlit")
        ),
    }


# --- formatting ---------------------------------------------------------------------------


def seconds_text(value: float) -> str:
    """A duration with sensible precision."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def gib_text(value: int) -> str:
    """Bytes as GiB."""
    return f"{value / GIB:.2f} GiB"


HEADER = (
    "| step | target | median | min – max | pandas (median) | ratio | polars (median) | ratio "
    "| Spark local[2] (median) | result | notes |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def _ratio_text(ratio: float | None) -> str:
    return f"{ratio:.1f}x" if ratio is not None else "-"


def _median_text(value: float | None) -> str:
    return seconds_text(value) if value is not None else "-"


def row(result: Result) -> str:
    """One table row."""
    spread = (
        f"{seconds_text(min(result.seconds))} – {seconds_text(max(result.seconds))}"
        if len(result.seconds) > 1
        else "1 run"
    )
    return (
        f"| {result.label or result.step.label} | {result.step.target} "
        f"| {seconds_text(result.median)} | {spread} "
        f"| {_median_text(result.baseline_median)} | {_ratio_text(result.ratio)} "
        f"| {_median_text(result.polars_median)} | {_ratio_text(result.polars_ratio)} "
        f"| {_median_text(result.spark_median)} | {result.verdict} | {result.detail} |"
    )


def memory_row(report: Report) -> str:
    """The peak-memory row of the table."""
    return (
        f"| peak memory of the whole run (ours) | < 4 GiB | {gib_text(report.peak_rss)} | - "
        f"| {gib_text(report.baseline_peak_rss)} | - | {gib_text(report.polars_peak_rss)} | - "
        f"| - | {report.memory_verdict} "
        "| peak RSS of each side; store preparation (generation, CSV files) ran in a process "
        f"of its own: {gib_text(report.generate_peak_rss)} |"
    )


def import_memory_row(report: Report) -> str:
    """The row of the import's own peak memory (a process that only imports)."""
    return (
        f"| peak memory of the import of {report.import_rows:,} orders, alone "
        f"| < {IMPORT_MEMORY_TARGET / GIB:g} GiB (at 10,000,000 orders) "
        f"| {gib_text(report.import_peak_rss)} | 1 run | - | - | - | - | - "
        f"| {report.import_memory_verdict} "
        f"| a fresh process that only imports: {seconds_text(report.import_alone_seconds)} "
        f"there; {gib_text(report.import_rss_before)} of it before the import call "
        "(interpreter and libraries) |"
    )


def render(report: Report, command: str) -> str:
    """RESULTS.md."""
    counts = report.counts
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {report.started:%Y-%m-%d %H:%M} UTC in "
        f"{report.seconds / 60:.1f} min. Regenerate with `make bench` (1,000,000 customers) or "
        "`make bench-small` (100,000).",
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in report.machine.items()],
        "",
        "## Store",
        "",
        f"Demo store of {counts.get('customers', 0):,} customers, {counts.get('orders', 0):,} "
        f"orders, {counts.get('events', 0):,} events, {counts.get('survey_responses', 0):,} "
        f"survey answers and {counts.get('support_tickets', 0):,} support tickets. "
        f"Each step ran {report.repeats} time(s); median and min – max are of those runs.",
        "",
        "## Results",
        "",
        "Targets are those of issue 6 (the import's memory: issue 13), set for 1,000,000 "
        "customers on 2 cores; each ratio is that baseline's median over ours (how many times "
        "faster ours is), measured in the same run. The ratio targets are against pandas; "
        "polars is shown beside it. The Spark column is ours on Spark (CRM_ANALYTICS_URL), "
        "one machine's two cores in local mode: its fixed cost per query is large here.",
        "",
        HEADER,
        *[row(r) for r in report.results],
        memory_row(report),
        import_memory_row(report),
        "",
    ]
    if report.churn_auc is not None:
        lines += [
            f"Churn model: validation ROC AUC {report.churn_auc:.3f} (recency-only baseline "
            f"{report.churn_baseline_auc:.3f}).",
            "",
        ]
    lines += ["## Checked before timing", "", *[f"- {c}" for c in report.checks], ""]
    lines += ["## How each figure was measured", "", *[f"- {n}" for n in report.notes], ""]
    return "\n".join(lines)

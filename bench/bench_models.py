"""Time the CLV fit and churn training at scale: python bench/bench_models.py STORE.duckdb.

Builds the demo store at STORE (``--customers``, default 1,000,000; ~3 min at 1M) unless it
already exists, then times each step and prints a table (and JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_core import demo  # noqa: E402
from crm_core.analytics import churn, clv  # noqa: E402
from crm_core.store import Store  # noqa: E402


def _timed(label: str, timings: dict[str, float], fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    timings[label] = time.perf_counter() - started
    print(f"{label:<48} {timings[label]:8.1f} s", flush=True)
    return result


def main() -> int:
    """Generate or reuse the store, then time the model steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="DuckDB file (created if missing)")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    timings: dict[str, float] = {}
    store = Store(f"duckdb:///{args.store.resolve()}")
    if not args.store.exists() or not store.row_counts(("customers",))["customers"]:
        store.init_schema()
        _timed(
            f"demo store, {args.customers:,} customers",
            timings,
            demo.create_demo_store,
            store,
            customers=args.customers,
        )
    counts = store.row_counts(("customers", "orders"))
    print(f"store: {counts['customers']:,} customers, {counts['orders']:,} orders")
    first, last = clv.data_span(store)
    cal_end = clv.default_calibration_end(first, last)
    summary = _timed(
        "CLV: RFM summary (SQL)", timings, clv.rfm_summary, store, cal_end, observation_end=last
    )
    model = _timed("CLV: BG/NBD + Gamma-Gamma fit (weighted)", timings, clv.CLVModel().fit, summary)
    print(f"  {len(summary):,} customers -> {model.n_fit_rows_:,} unique (f, r, T) rows")
    print("  params: " + ", ".join(f"{k} {v:.4g}" for k, v in model.params.items()))
    _timed("CLV: 12-month CLV for every customer", timings, model.clv, summary, 12, 0.01, 1)
    report = _timed("CLV: full analyse (backtest + refit + values)", timings, clv.analyse, store)
    print(
        f"  backtest total error {report.backtest.total_error:+.2%}, MAE {report.backtest.mae:.3f}"
    )
    chs = _timed("churn: full analyse (hgb)", timings, churn.analyse, store)
    print(
        f"  train {chs.n_train:,} / valid {chs.n_valid:,} customers; ROC AUC "
        f"{chs.metric('roc_auc'):.3f} vs baseline {chs.metric('roc_auc', 'baseline'):.3f}"
    )
    data = churn.build_dataset(store, chs.train_cutoff, chs.settings.window_days)
    _timed(
        "churn: features at one cutoff (SQL)", timings, churn.build_dataset, store, chs.train_cutoff
    )
    _timed("churn: HGB training only", timings, churn.ChurnModel().fit, data)
    _timed("churn: logistic regression training only", timings, churn.ChurnModel("logit").fit, data)
    if args.json:
        print(json.dumps({k: round(v, 2) for k, v in timings.items()}, indent=2))
    store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

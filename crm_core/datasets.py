"""Real data: the CDNOW sample shipped with `lifetimes`, imported through ingest like user files.

CDNOW (an online CD shop) customers who made their first purchase in the first quarter of
1997, followed to the end of June 1998. `lifetimes/datasets/CDNOW_sample.txt` is the 1/10
sample used by Fader, Hardie & Lee (2005), "Counting your customers the easy way": 2,357
customers and 6,919 purchase lines. It is whitespace-separated, no header, CRLF line ends::

    master_id  sample_id  date(YYYYMMDD)  number_of_cds  dollar_value
     00004      0001       19970101        2              29.33

The store's `customer_id` is the sample id (1..2357), the ID used by lifetimes'
`cdnow_customers_summary.csv`, so results can be compared customer by customer. The full
`CDNOW_master.txt` (23,570 customers, no sample-id column) sits in the same folder, but the
published BG/NBD parameters (r 0.243, alpha 4.414, a 0.793, b 2.426) are for the sample.

Reproducing them (see the oracle test) needs the paper's conventions: calibration period
1997-01-01 .. 1997-09-30 (39 weeks; T of a customer who first bought on 1 January is
272 days = 38.86 weeks), time in days divided by 7 (lifetimes'
``summary_data_from_transaction_data(..., freq="D", freq_multiplier=7,
observation_period_end="1997-09-30")``; ``freq="W"`` rounds to whole weeks and gives
different figures), and purchases on the same day merged into one (lifetimes counts distinct
periods, i.e. days, so frequency = number of distinct purchase days - 1).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from crm_core import schema
from crm_core.ingest import ImportResult, import_files
from crm_core.store import Store

CDNOW_FILE = "CDNOW_sample.txt"
CDNOW_CUSTOMERS = 2_357
CDNOW_CALIBRATION_END = "1997-09-30"
CDNOW_PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
"""Fader, Hardie & Lee (2005), table 1; also what lifetimes fits on `load_cdnow_summary`."""


def cdnow_path(name: str = CDNOW_FILE) -> Path:
    """Path of a file in the `lifetimes/datasets` folder (CDNOW_sample.txt by default)."""
    import lifetimes  # imported here: only this dataset needs it

    return Path(lifetimes.__file__).resolve().parent / "datasets" / name


def read_cdnow_sample(path: Path | None = None) -> pd.DataFrame:
    """The raw CDNOW sample as text: master_id, customer_id, date, number_of_cds, dollar_value."""
    return pd.read_csv(
        path or cdnow_path(),
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "number_of_cds", "dollar_value"],
        dtype=str,
    )


def write_cdnow_csvs(work_dir: Path, path: Path | None = None) -> tuple[Path, Path]:
    """Convert the sample to the store's format as customers.csv and orders.csv in `work_dir`."""
    raw = read_cdnow_sample(path)
    ordered_at = pd.to_datetime(raw["date"], format="%Y%m%d")
    customer_id = raw["customer_id"].astype("int64")

    orders = pd.DataFrame({c.name: pd.Series("", index=raw.index) for c in schema.orders.columns})
    orders["order_id"] = range(1, len(raw) + 1)  # file order, as the lines come
    orders["customer_id"] = customer_id
    orders["ordered_at"] = ordered_at.dt.strftime("%Y-%m-%d")
    orders["amount"] = raw["dollar_value"]
    orders["items"] = raw["number_of_cds"].astype("int64")
    orders["status"] = "completed"

    first = (
        pd.DataFrame({"customer_id": customer_id, "ordered_at": ordered_at})
        .groupby("customer_id", as_index=False)["ordered_at"]
        .min()
    )
    customers = pd.DataFrame(
        {c.name: pd.Series("", index=first.index) for c in schema.customers.columns}
    )
    customers["customer_id"] = first["customer_id"]
    customers["signup_at"] = first["ordered_at"].dt.strftime("%Y-%m-%d")  # first purchase

    work_dir.mkdir(parents=True, exist_ok=True)
    customers_csv, orders_csv = work_dir / "customers.csv", work_dir / "orders.csv"
    customers.to_csv(customers_csv, index=False)
    orders.to_csv(orders_csv, index=False)
    return customers_csv, orders_csv


def load_cdnow(store: Store, *, work_dir: Path | None = None) -> list[ImportResult]:
    """Import the CDNOW sample shipped in lifetimes (customers + orders) like a user's files.

    The sample is converted to customers.csv and orders.csv in `work_dir` (a temporary
    folder by default, removed afterwards), then loaded with `ingest.import_files`, the code
    path a user's upload takes. Appends: the store must not hold these keys yet. The full
    CDNOW_master.txt is in the same folder, but the published parameters are for the sample.
    """
    if work_dir is not None:
        return import_files(store, _cdnow_files(Path(work_dir)))
    with tempfile.TemporaryDirectory(prefix="cdnow-") as tmp:
        return import_files(store, _cdnow_files(Path(tmp)))


def _cdnow_files(work_dir: Path) -> list[tuple[str, Path]]:
    customers_csv, orders_csv = write_cdnow_csvs(work_dir)
    return [("customers", customers_csv), ("orders", orders_csv)]

"""The CDNOW sample shipped with lifetimes, imported through ingest like a user's files."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_core import datasets


@pytest.fixture
def cdnow_store(store, tmp_path):
    """An empty store with the CDNOW sample loaded (the CSVs are kept in tmp_path/cdnow)."""
    datasets.load_cdnow(store, work_dir=tmp_path / "cdnow")
    return store


def test_cdnow_sample_is_the_2357_customer_file():
    raw = datasets.read_cdnow_sample()
    lines = datasets.cdnow_path().read_text().splitlines()
    assert len(raw) == len([line for line in lines if line.strip()]) == 6_919
    assert raw["customer_id"].nunique() == datasets.CDNOW_CUSTOMERS == 2_357
    assert datasets.cdnow_path("CDNOW_master.txt").exists()


def test_load_cdnow_imports_every_customer_and_order(store, tmp_path):
    results = datasets.load_cdnow(store, work_dir=tmp_path / "cdnow")
    assert [(r.table, r.rows, r.mode) for r in results] == [
        ("customers", 2_357, "append"),
        ("orders", 6_919, "append"),
    ]
    assert store.row_counts(("customers", "orders")) == {"customers": 2_357, "orders": 6_919}
    # the files a user could have uploaded are what went in
    assert (tmp_path / "cdnow" / "customers.csv").exists()
    assert (tmp_path / "cdnow" / "orders.csv").exists()


def test_load_cdnow_in_a_temporary_folder(store):
    results = datasets.load_cdnow(store)
    assert sum(r.rows for r in results) == 2_357 + 6_919


def test_cdnow_rows_match_the_sample_file(cdnow_store):
    orders = cdnow_store.read_df("select * from orders order by order_id")
    first = orders.iloc[0]
    # first line of CDNOW_sample.txt: " 00004 0001 19970101  2   29.33"
    assert (first["order_id"], first["customer_id"], first["items"]) == (1, 1, 2)
    assert first["ordered_at"] == pd.Timestamp("1997-01-01")
    assert float(first["amount"]) == 29.33
    assert (orders["status"] == "completed").all()
    assert orders["channel"].isna().all()
    raw = datasets.read_cdnow_sample()
    assert orders["amount"].astype(float).sum() == pytest.approx(
        raw["dollar_value"].astype(float).sum(), abs=0.005
    )
    customers = cdnow_store.read_df("select * from customers order by customer_id")
    assert customers["customer_id"].tolist() == list(range(1, 2_358))
    first_purchase = orders.groupby("customer_id")["ordered_at"].min()
    assert (customers.set_index("customer_id")["signup_at"] == first_purchase).all()
    assert customers["email"].isna().all()


def test_cdnow_import_reproduces_fader_hardie_lee_2005_bgnbd(cdnow_store):
    """Oracle: Fader, Hardie & Lee (2005) fit BG/NBD to this sample: r .243, alpha 4.414,
    a .793, b 2.426 (lifetimes' `load_cdnow_summary` reproduces them).

    Their convention: calibration 1997-01-01 .. 1997-09-30 (39 weeks), time in days / 7
    (freq="D", freq_multiplier=7; freq="W" rounds to whole weeks and does not match), and
    same-day purchases merged (lifetimes counts distinct days).
    """
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import summary_data_from_transaction_data

    orders = cdnow_store.read_df("select customer_id, ordered_at from orders")
    summary = summary_data_from_transaction_data(
        orders,
        "customer_id",
        "ordered_at",
        observation_period_end=datasets.CDNOW_CALIBRATION_END,
        freq="D",
        freq_multiplier=7,
    )
    assert len(summary) == 2_357

    # the summary equals the one lifetimes ships (cdnow_customers_summary.csv), per customer
    published = pd.read_csv(
        datasets.cdnow_path("cdnow_customers_summary.csv"), index_col="ID"
    ).sort_index()
    ours = summary.sort_index()
    assert ours.index.tolist() == published.index.tolist()
    assert (ours["frequency"].to_numpy() == published["frequency"].to_numpy()).all()
    assert ours["recency"].round(2).to_numpy() == pytest.approx(
        published["recency"].to_numpy(), abs=0.006
    )
    assert ours["T"].round(2).to_numpy() == pytest.approx(published["T"].to_numpy(), abs=0.006)

    fitter = BetaGeoFitter(penalizer_coef=0.0)
    fitter.fit(summary["frequency"], summary["recency"], summary["T"])
    params = fitter.params_
    for name, value in datasets.CDNOW_PUBLISHED_BGNBD.items():
        assert params[name] == pytest.approx(value, abs=0.0015), name

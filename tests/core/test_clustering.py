"""k-means clustering: separates obvious groups, k-choice figures, profile, saving to the 360."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_core import features
from crm_core.analytics import clustering
from crm_core.errors import CRMError


def two_blobs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    low = rng.normal([5, 50], [1, 5], size=(60, 2))
    high = rng.normal([40, 2000], [2, 50], size=(40, 2))
    return pd.DataFrame(
        np.vstack([low, high]),
        columns=["frequency", "monetary"],
        index=pd.Index(range(1, 101), name="customer_id"),
    )


def test_kmeans_separates_two_obvious_groups():
    result = clustering.fit_clusters(two_blobs(), k=2)
    assert result.labels.iloc[:60].nunique() == 1 and result.labels.iloc[60:].nunique() == 1
    assert result.labels.iloc[0] == 0  # clusters numbered by size, largest first
    assert result.profile["customers"].tolist() == [60, 40]
    assert result.profile.loc[1, "monetary vs base"] > 1 > result.profile.loc[0, "monetary vs base"]
    assert list(result.projection.columns) == ["pc1", "pc2", "cluster"]


def test_choose_k_prefers_two_for_two_blobs():
    scores = clustering.choose_k(two_blobs(), ks=range(2, 5))
    assert scores.loc[scores["silhouette"].idxmax(), "k"] == 2
    assert scores["inertia"].is_monotonic_decreasing


def test_too_few_features_or_customers_is_a_clear_error(demo_store):
    with pytest.raises(CRMError, match="at least two"):
        clustering.load_features(demo_store, ["frequency"])
    with pytest.raises(CRMError, match="too few"):
        clustering.fit_clusters(two_blobs().head(3), k=4)


def test_saved_clusters_reach_the_360_table(store):
    from tests.core import seg_tiny

    seg_tiny.load(store)
    frame = clustering.load_features(store, ["frequency", "monetary"])
    saved = clustering.save_clusters(store, clustering.fit_clusters(frame, k=2))
    assert saved == 4
    table = store.read_df(features.customer_360.select())
    assert table["cluster"].notna().sum() == 4
    features.refresh(store)  # kept across rebuilds
    assert store.read_df(features.customer_360.select())["cluster"].notna().sum() == 4

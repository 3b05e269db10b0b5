"""k-means clustering of buyers on chosen customer_360 features (scaled), with help to pick k.

Features are log1p-transformed when they are non-negative and skewed (money, counts), then
standardised; missing values take the feature's median. Elbow (inertia) and silhouette
(on a sample) help choose k; each cluster is profiled as feature means against the base,
and PCA gives a 2-D picture. Saved clusters go to `customer_clusters` and the 360 table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from crm_core import features
from crm_core.errors import CRMError
from crm_core.store import Store, lock_tables, utcnow

CANDIDATE_FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "orders_90d",
    "revenue_90d",
    "tenure_days",
    "loyalty_points",
    "nps_latest",
    "csat_avg",
    "open_tickets",
    "campaign_opens",
    "campaign_clicks",
    "clv",
    "churn_risk",
)
"""Numeric 360 fields an analyst may cluster on."""
DEFAULT_FEATURES = ("recency_days", "frequency", "monetary", "avg_order_value")
TABLES_WRITTEN = ("customer_clusters",)
"""What saving clusters writes (the 360 table is rebuilt from it), for the app's caches."""
RANDOM_STATE = 42
SILHOUETTE_SAMPLE = 3_000
"""Customers sampled for the silhouette score (it is quadratic in the rows)."""
ELBOW_SAMPLE = 6_000
"""Customers sampled to compare values of k (the final fit uses everyone)."""


def load_features(store: Store, columns: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Buyers (customers with an order) and the chosen features, indexed by customer_id."""
    unknown = [c for c in columns if c not in CANDIDATE_FEATURES]
    if unknown or len(columns) < 2:
        raise CRMError(
            f"Clustering features: got {list(columns)}; choose at least two of "
            f"{', '.join(CANDIDATE_FEATURES)}."
        )
    c = features.customer_360.c
    stmt = sa.select(c.customer_id, *[c[n] for n in columns]).where(c.frequency > 0)
    frame = store.read_df(stmt.order_by(c.customer_id)).set_index("customer_id")
    return frame.astype("float64")


def prepare(frame: pd.DataFrame) -> np.ndarray:
    """Median-fill, log1p for non-negative skewed features, then standardise."""
    filled = frame.fillna(frame.median()).fillna(0.0)
    for column in filled.columns:
        values = filled[column]
        if values.min() >= 0 and values.skew() > 1:
            filled[column] = np.log1p(values)
    return StandardScaler().fit_transform(filled.to_numpy())


def choose_k(
    frame: pd.DataFrame, ks: range = range(2, 9), random_state: int = RANDOM_STATE
) -> pd.DataFrame:
    """Inertia (elbow) and silhouette for each k, both on a random sample of customers."""
    if len(frame) <= min(ks):
        raise CRMError(
            f"Clustering: {len(frame):,} customers have a purchase; comparing k = {min(ks)} to "
            f"{max(ks)} needs at least {min(ks) + 1}. Import orders first."
        )
    x = prepare(frame)
    rng = np.random.default_rng(random_state)
    x = x[rng.choice(len(x), size=min(ELBOW_SAMPLE, len(x)), replace=False)]
    sample = rng.choice(len(x), size=min(SILHOUETTE_SAMPLE, len(x)), replace=False)
    rows = []
    for k in ks:
        if k >= len(x):
            break
        model = KMeans(n_clusters=k, n_init=2, random_state=random_state).fit(x)
        labels = model.labels_[sample]
        silhouette = (
            float(silhouette_score(x[sample], labels)) if len(set(labels)) > 1 else float("nan")
        )
        rows.append({"k": k, "inertia": float(model.inertia_), "silhouette": silhouette})
    return pd.DataFrame(rows)


@dataclass
class Clustering:
    """A fitted clustering: labels per customer, profile per cluster, 2-D projection."""

    labels: pd.Series
    profile: pd.DataFrame
    projection: pd.DataFrame
    features: list[str]
    k: int
    random_state: int


def fit_clusters(
    frame: pd.DataFrame, k: int, random_state: int = RANDOM_STATE, plot_sample: int = 5_000
) -> Clustering:
    """k-means on the prepared features; profile (means vs base) and PCA projection."""
    if len(frame) <= k:
        raise CRMError(f"Clustering: {len(frame)} customers is too few for k={k}.")
    x = prepare(frame)
    model = KMeans(n_clusters=k, n_init=4, random_state=random_state).fit(x)
    # Number clusters by size (0 = largest) so that labels are stable and readable.
    order = pd.Series(model.labels_).value_counts().index.tolist()
    relabel = {old: new for new, old in enumerate(order)}
    labels = pd.Series([relabel[v] for v in model.labels_], index=frame.index, name="cluster")
    means = frame.groupby(labels).mean()
    base = frame.mean()
    profile = means.copy()
    profile.insert(0, "customers", labels.value_counts().sort_index())
    profile.insert(1, "share", profile["customers"] / len(frame))
    index = means.div(base.replace(0, np.nan)).add_suffix(" vs base")
    profile = profile.join(index).rename_axis("cluster").reset_index()
    coords = PCA(n_components=2, random_state=random_state).fit_transform(x)
    projection = pd.DataFrame(
        {"pc1": coords[:, 0], "pc2": coords[:, 1], "cluster": labels.to_numpy()},
        index=frame.index,
    )
    if len(projection) > plot_sample:
        projection = projection.sample(plot_sample, random_state=random_state)
    projection["cluster"] = projection["cluster"].astype(str)
    return Clustering(labels, profile, projection, list(frame.columns), k, random_state)


def save_clusters(store: Store, clustering: Clustering) -> int:
    """Replace saved cluster assignments and rebuild the 360 table; returns customers saved."""
    features.ensure_tables(store)
    saved = pd.DataFrame(
        {
            "customer_id": clustering.labels.index.astype("int64"),
            "cluster": clustering.labels.to_numpy().astype("int64"),
            "features": json.dumps(
                {
                    "features": clustering.features,
                    "k": clustering.k,
                    "random_state": clustering.random_state,
                }
            ),
            "saved_at": utcnow(),
        }
    )
    with store.begin() as conn:
        lock_tables(conn, features.customer_clusters)  # another process may save too
        conn.execute(features.customer_clusters.delete())
        store.insert_df(conn, "customer_clusters", saved)
    features.refresh(store)
    return len(saved)

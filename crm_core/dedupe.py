"""Likely duplicate customers, found with the record-linkage library Splink (DuckDB backend).

A run reads the live customers (not erased) into pandas, whatever the store's engine, and
trains a Fellegi-Sunter model on them in an in-memory DuckDB:

- compared: first and last name (exact, swapped, both similar by Jaro-Winkler >= 0.9,
  the last name only), the e-mail's mailbox (`contacts.email_key`: case and Gmail dots or
  +tags never matter; exact, one typo apart), the phone number (`contacts.phone_key`, E.164: the
  way it is written never matters), the city (with term-frequency adjustment: two people in
  a small town say more than two in London) and the birth date (exact, one typo apart);
- candidate pairs come from blocking rules (same mailbox, same phone, same birth date in the
  same country, same names born the same year), so a million customers are never compared
  all against all;
- training: the chance two random records match from the deterministic rules (same
  mailbox or same phone), u from a seeded random sample (the same data gives the same
  model), m by expectation maximisation in two sessions blocked on different fields (the
  mailbox, the phone: `EM_SESSIONS`);
- every pair at or above the threshold is stored in `duplicate_pairs` with each comparison's
  level and match weight (so `pair_reasons` explains it without refitting), clustered into
  groups (connected components), and the run in `duplicate_runs`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_core import contacts, schema
from crm_core.errors import CRMError
from crm_core.store import Store

DEFAULT_THRESHOLD = 0.9
"""Match probability a pair needs to be listed. On the demo's planted duplicates it keeps
precision and recall near 1 (see README "Duplicates"); lower it to review more candidates."""

SEED = 16
"""Seed of the random sample u is estimated on: the same customers give the same model."""

U_SAMPLE_PAIRS = 2_000_000
"""Random pairs u is estimated on."""

Progress = Callable[[float, str], None]

COMPARISONS: dict[str, str] = {
    "name": "First and last name",
    "email": "E-mail",
    "phone": "Phone",
    "city": "City",
    "birth_date": "Birth date",
}
"""Splink output column name of each comparison -> its label."""

_EXACT = "exact match"
_EXACT_NORMALISED = "exact match after normalising"
_SIMILAR = "similar (Jaro-Winkler >= 0.9)"
_TYPO = "one typo apart"
_DIFFERENT = "different"
_MISSING = "one is missing"

_PAIR_COLUMNS = ["customer_id_l", "customer_id_r", "match_probability", "match_weight"]


class DuplicateError(CRMError):
    """Duplicate detection cannot run on this data, or a run or pair does not exist."""


@dataclass
class DuplicateRun:
    """One run of duplicate detection: its pairs and clusters."""

    run_id: int
    created_at: datetime
    threshold: float
    customers: int
    pairs: pd.DataFrame
    clusters: pd.DataFrame
    seconds: float
    created_by: str = "cli"
    model: dict[str, Any] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The run as JSON-able data (pairs and clusters as lists of records)."""
        pairs = self.pairs[[*_PAIR_COLUMNS, "cluster_id"]]
        return {
            "run_id": int(self.run_id),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "threshold": float(self.threshold),
            "customers": int(self.customers),
            "seconds": round(float(self.seconds), 3),
            "pairs": [
                {
                    "customer_id_l": int(r.customer_id_l),
                    "customer_id_r": int(r.customer_id_r),
                    "match_probability": round(float(r.match_probability), 6),
                    "match_weight": round(float(r.match_weight), 3),
                    "cluster_id": int(r.cluster_id),
                }
                for r in pairs.itertuples(index=False)
            ],
            "clusters": [
                {
                    "cluster_id": int(r.cluster_id),
                    "customer_ids": [int(x) for x in r.customer_ids],
                    "size": int(r.size),
                    "min_probability": round(float(r.min_probability), 6),
                    "max_probability": round(float(r.max_probability), 6),
                }
                for r in self.clusters.itertuples(index=False)
            ],
        }

    def summary(self) -> list[str]:
        """The run in a few lines of words."""
        people = int(self.clusters["size"].sum()) if len(self.clusters) else 0
        lines = [
            f"Run {self.run_id} ({self.created_at:%Y-%m-%d %H:%M} UTC, by {self.created_by}): "
            f"{self.customers:,} live customers compared in {self.seconds:.1f} s.",
            f"{len(self.pairs):,} pairs with a match probability of at least "
            f"{self.threshold:.2f}, in {len(self.clusters):,} clusters ({people:,} customers).",
        ]
        for r in self.clusters.head(10).itertuples(index=False):
            ids = ", ".join(str(x) for x in r.customer_ids)
            lines.append(
                f"  cluster {r.cluster_id}: customers {ids} "
                f"(probability {r.min_probability:.3f} to {r.max_probability:.3f})"
            )
        if len(self.clusters) > 10:
            lines.append(f"  ... and {len(self.clusters) - 10:,} more clusters")
        return lines


# --- the data Splink sees ---------------------------------------------------------------------


def _records(store: Store) -> pd.DataFrame:
    """Live customers with the fields compared, normalised (names and city lower case)."""
    c = schema.table("customers").c
    stmt = sa.select(
        c.customer_id,
        c.first_name,
        c.last_name,
        c.email,
        c.phone,
        c.country,
        c.city,
        c.birth_date,
    ).where(c.erased_at.is_(None))
    frame = store.read_df(stmt.order_by(c.customer_id))

    def text(col: str) -> pd.Series:
        values = frame[col].astype("string").str.strip().str.lower()
        return values.where(values != "", pd.NA)

    birth = pd.to_datetime(frame["birth_date"], errors="coerce")
    return pd.DataFrame(
        {
            "unique_id": frame["customer_id"].astype("int64"),
            "first_name": text("first_name"),
            "last_name": text("last_name"),
            "email_key": contacts.email_key(frame["email"]),
            "phone_key": contacts.phone_key(frame["phone"], frame["country"]),
            "country": text("country"),
            "city": text("city"),
            "birth_date": birth.dt.strftime("%Y-%m-%d").astype("string"),
            "birth_year": birth.dt.year.astype("Int64").astype("string"),
        }
    )


def _settings():
    """The Splink model: comparisons and blocking rules."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    name = cl.CustomComparison(
        output_column_name="name",
        comparison_description=COMPARISONS["name"],
        comparison_levels=[
            cll.Or(cll.NullLevel("first_name"), cll.NullLevel("last_name")).configure(
                is_null_level=True, label_for_charts=_MISSING
            ),
            cll.And(cll.ExactMatchLevel("first_name"), cll.ExactMatchLevel("last_name")).configure(
                label_for_charts=_EXACT
            ),
            cll.ColumnsReversedLevel("first_name", "last_name").configure(
                label_for_charts="first and last name swapped"
            ),
            cll.And(
                cll.JaroWinklerLevel("first_name", 0.9), cll.JaroWinklerLevel("last_name", 0.9)
            ).configure(label_for_charts=_SIMILAR),
            cll.ExactMatchLevel("last_name").configure(label_for_charts="same last name only"),
            cll.ElseLevel().configure(label_for_charts=_DIFFERENT),
        ],
    )

    def one_column(column: str, output: str, *levels):
        """A comparison of one column: missing, then `levels` (best first), else different."""
        return cl.CustomComparison(
            output_column_name=output,
            comparison_description=COMPARISONS[output],
            comparison_levels=[
                cll.NullLevel(column).configure(label_for_charts=_MISSING),
                *levels,
                cll.ElseLevel().configure(label_for_charts=_DIFFERENT),
            ],
        )

    email = one_column(
        "email_key",
        "email",
        cll.ExactMatchLevel("email_key").configure(label_for_charts=_EXACT_NORMALISED),
        # not Jaro-Winkler: namesakes' addresses (anna.weber12@, anna.weber1207@) are
        # similar by it, and it listed them as one person
        # (Levenshtein, not Damerau-Levenshtein: ten times faster in DuckDB on addresses)
        cll.LevenshteinLevel("email_key", 1).configure(label_for_charts=_TYPO),
    )
    phone = one_column(
        "phone_key",
        "phone",
        cll.ExactMatchLevel("phone_key").configure(label_for_charts=_EXACT_NORMALISED),
    )
    city = one_column(
        "city",
        "city",
        cll.ExactMatchLevel("city", term_frequency_adjustments=True).configure(
            label_for_charts=_EXACT
        ),
    )
    birth = one_column(
        "birth_date",
        "birth_date",
        cll.ExactMatchLevel("birth_date").configure(label_for_charts=_EXACT),
        cll.LevenshteinLevel("birth_date", 1).configure(label_for_charts=_TYPO),
    )
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[name, email, phone, city, birth],
        blocking_rules_to_generate_predictions=[
            block_on("email_key"),
            block_on("phone_key"),
            block_on("birth_date", "country"),
            block_on("first_name", "last_name", "birth_year"),
        ],
        retain_intermediate_calculation_columns=True,
        additional_columns_to_retain=[],
    )


def _linker(frame: pd.DataFrame):
    """A Splink linker on `frame` in a fresh in-memory DuckDB."""
    import duckdb
    from splink import DuckDBAPI, Linker

    conn = duckdb.connect(":memory:")
    conn.execute("SET enable_progress_bar = false")
    db = DuckDBAPI(connection=conn)
    return Linker(db.register(frame), _settings())


EM_SESSIONS: tuple[tuple[str, ...], ...] = (
    ("email_key",),
    ("phone_key",),
    ("birth_date", "country"),
    ("first_name", "last_name"),
)
"""Blocking of the EM sessions that learn m, tried in order until two have pairs (a session
cannot learn the fields it blocks on; two on different fields cover every comparison).
Mailbox and phone come first: pairs sharing one are nearly all one person, whereas at a
million customers most pairs sharing a birth date are namesakes, and EM blocked on it
learns that duplicates often differ in e-mail and phone (precision 0.92 there)."""


def _train(linker, records: int, progress: Progress) -> None:
    """Prior, u (seeded sample) and m (EM in two sessions blocked on different fields)."""
    from splink import block_on
    from splink.internals.exceptions import EMTrainingException

    training = linker.training
    progress(0.15, "estimating how often two random customers are the same person")
    training.estimate_probability_two_random_records_match(
        [block_on("email_key"), block_on("phone_key")], recall=0.8
    )
    settings = linker._settings_obj
    floor = 0.002 / max(records - 1, 1)  # nobody shares a mailbox or a phone: 1 in 1,000
    if not settings._probability_two_random_records_match >= floor:
        settings._probability_two_random_records_match = floor
    progress(0.25, "estimating how often non-matches agree (random sample)")
    # one chunk: the sample at once (chunks stop early once every level has 100 pairs, which
    # the rare typo levels never reach, so all ten ran, one after another: 22 s at 20,000)
    training.estimate_u_using_random_sampling(max_pairs=U_SAMPLE_PAIRS, seed=SEED, num_chunks=1)
    done = 0
    for columns in EM_SESSIONS:
        if done == 2:
            break
        fields = " and ".join(c.removesuffix("_key").replace("_", " ") for c in columns)
        progress(0.35 + 0.1 * done, f"learning how often duplicates agree (same {fields})")
        try:
            training.estimate_parameters_using_expectation_maximisation(
                block_on(*columns), estimate_without_term_frequencies=True
            )
        except EMTrainingException:  # no pairs agree on these fields: try the next
            continue
        done += 1


def _levels(linker) -> dict[str, dict[int, dict[str, Any]]]:
    """Comparison -> level (gamma value) -> its label and match weight."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for comparison in linker._settings_obj.comparisons:
        levels = {}
        for level in comparison.comparison_levels:
            weight = None if level.is_null_level else level._log2_bayes_factor
            levels[int(level.comparison_vector_value)] = {
                "label": level.label_for_charts,
                "weight": None if weight is None or not math.isfinite(weight) else weight,
            }
        out[comparison.output_column_name] = levels
    return out


def _quiet_splink() -> None:
    """Splink logs each training step and warns of levels EM cannot see (e.g. swapped names
    in a session blocked on names); the run's own progress says what happens."""
    for name in ("splink", "splink.internals"):
        logging.getLogger(name).setLevel(logging.ERROR)


# --- runs ------------------------------------------------------------------------------------


def find_duplicates(
    store: Store,
    *,
    threshold: float | None = None,
    by: str = "cli",
    progress: Progress | None = None,
) -> DuplicateRun:
    """Train Splink on the live customers, keep the pairs at or above `threshold`
    (default `DEFAULT_THRESHOLD`), cluster them and store the run; returns it."""
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if not 0.0 < threshold < 1.0:
        raise DuplicateError(
            f"Duplicate threshold: got {threshold!r}; allowed: a match probability between 0 "
            "and 1 (exclusive); fix: pass e.g. --threshold 0.9."
        )
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    store.require_tables("customers")
    report(0.0, "reading customers")
    records = _records(store)
    if len(records) < 3:
        raise DuplicateError(
            f"Duplicate detection: got {len(records)} live customers; allowed: at least 3; "
            "fix: import customers first."
        )
    _quiet_splink()
    report(0.1, f"{len(records):,} live customers read")
    compared = records[["first_name", "last_name", "email_key", "phone_key", "birth_date"]]
    if not compared.notna().any().any():
        raise DuplicateError(
            "Duplicate detection: got customers without names, e-mails, phones or birth "
            "dates; allowed: customers with at least one of them; fix: import those columns."
        )
    linker = _linker(records)
    _train(linker, len(records), report)
    report(0.6, "scoring candidate pairs")
    predicted = linker.inference.predict(threshold_match_probability=threshold)
    scored = predicted.as_pandas_dataframe()
    report(0.8, f"{len(scored):,} pairs at or above {threshold:.2f}; clustering")
    levels = _levels(linker)
    pairs = _pairs(scored, levels)
    if len(pairs):
        nodes = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predicted, threshold_match_probability=threshold
        ).as_pandas_dataframe()
        member = nodes[["unique_id", "cluster_id"]].astype({"unique_id": "int64"})
        first = member.groupby("cluster_id")["unique_id"].transform("min")
        cluster_of = pd.Series(first.to_numpy(), index=member["unique_id"].to_numpy())
        pairs["cluster_id"] = cluster_of.loc[pairs["customer_id_l"]].to_numpy().astype("int64")
    else:
        pairs["cluster_id"] = pd.Series(dtype="int64")
    clusters = _clusters(pairs)
    model = json.loads(json.dumps(linker.misc.save_model_to_json(), default=str))
    model["levels"] = levels
    seconds = time.perf_counter() - started
    report(0.9, "saving the run")
    run = _save(store, threshold, by, len(records), pairs, clusters, seconds, model)
    report(1.0, f"{len(pairs):,} pairs in {len(clusters):,} clusters")
    return run


def _pairs(scored: pd.DataFrame, levels: dict[str, dict[int, dict[str, Any]]]) -> pd.DataFrame:
    """Splink's scored pairs -> customer_id_l < customer_id_r, probability, weight and the
    per-comparison levels and weights (JSON), best first."""
    left = scored["unique_id_l"].astype("int64")
    right = scored["unique_id_r"].astype("int64")
    out = pd.DataFrame(
        {
            "customer_id_l": left.where(left < right, right).to_numpy(),
            "customer_id_r": right.where(left < right, left).to_numpy(),
            "match_probability": scored["match_probability"].astype(float).to_numpy(),
            "match_weight": scored["match_weight"].astype(float).to_numpy(),
        }
    )
    columns = {}
    for name in COMPARISONS:  # vectorised per comparison; a few pairs per hundred customers
        if f"gamma_{name}" not in scored:  # Splink drops a comparison with no values at all
            columns[name] = [
                {"comparison": name, "level": -1, "label": _MISSING, "weight": 0.0}
            ] * len(scored)
            continue
        gamma = scored[f"gamma_{name}"].astype("int64").to_numpy()
        weight = scored[f"mw_{name}"].astype(float).fillna(0.0)
        if f"mw_tf_adj_{name}" in scored:
            weight = weight + scored[f"mw_tf_adj_{name}"].astype(float).fillna(0.0)
        label = {g: lv["label"] for g, lv in levels[name].items()}
        columns[name] = [
            {"comparison": name, "level": int(g), "label": label.get(int(g), str(g)), "weight": w}
            for g, w in zip(gamma, weight.round(4).tolist(), strict=True)
        ]
    records = [json.dumps(list(items)) for items in zip(*columns.values(), strict=True)]
    out["comparisons"] = records
    out = out.sort_values(
        ["match_probability", "customer_id_l", "customer_id_r"], ascending=[False, True, True]
    )
    return out.reset_index(drop=True)


def _clusters(pairs: pd.DataFrame) -> pd.DataFrame:
    """Clusters of two or more customers from pairs with a cluster_id."""
    columns = ["cluster_id", "customer_ids", "size", "min_probability", "max_probability"]
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    ids = pd.concat(
        [
            pairs[["cluster_id", "customer_id_l"]].rename(columns={"customer_id_l": "id"}),
            pairs[["cluster_id", "customer_id_r"]].rename(columns={"customer_id_r": "id"}),
        ]
    )
    members = ids.groupby("cluster_id")["id"].agg(lambda s: sorted(int(x) for x in set(s)))
    prob = pairs.groupby("cluster_id")["match_probability"].agg(["min", "max"])
    out = pd.DataFrame(
        {
            "cluster_id": members.index.astype("int64"),
            "customer_ids": members.to_list(),
            "size": members.map(len).to_numpy(),
            "min_probability": prob.loc[members.index, "min"].to_numpy(),
            "max_probability": prob.loc[members.index, "max"].to_numpy(),
        }
    )
    out = out.sort_values(["max_probability", "cluster_id"], ascending=[False, True])
    return out.reset_index(drop=True)[columns]


def _save(
    store: Store,
    threshold: float,
    by: str,
    customers: int,
    pairs: pd.DataFrame,
    clusters: pd.DataFrame,
    seconds: float,
    model: dict[str, Any],
) -> DuplicateRun:
    """Store the run and its pairs in one transaction."""
    runs = schema.table("duplicate_runs")
    created = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with store.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(runs.c.run_id))).scalar()
        run_id = int(last or 0) + 1
        conn.execute(
            runs.insert().values(
                run_id=run_id,
                created_at=created,
                created_by=by,
                threshold=threshold,
                customers=customers,
                pairs=len(pairs),
                clusters=len(clusters),
                seconds=seconds,
                model=json.dumps(model),
            )
        )
        if len(pairs):
            rows = pairs.assign(run_id=run_id)
            store.insert_df(conn, "duplicate_pairs", rows)
    return DuplicateRun(
        run_id=run_id,
        created_at=created,
        threshold=threshold,
        customers=customers,
        pairs=pairs,
        clusters=clusters,
        seconds=seconds,
        created_by=by,
        model=model,
    )


# --- reading runs back -------------------------------------------------------------------------


def _run_row(store: Store, run_id: int | None) -> dict[str, Any] | None:
    runs = schema.table("duplicate_runs")
    if "duplicate_runs" not in store.table_names():
        return None
    stmt = sa.select(runs)
    stmt = (
        stmt.where(runs.c.run_id == run_id)
        if run_id is not None
        else stmt.order_by(runs.c.run_id.desc()).limit(1)
    )
    frame = store.read_df(stmt)
    if frame.empty:
        if run_id is not None:
            raise DuplicateError(
                f"Duplicate run: got run {run_id}; allowed: a run that exists; fix: run "
                "`python -m crm_core duplicates find` or pick a listed run."
            )
        return None
    return frame.iloc[0].to_dict()


def _stored_pairs(store: Store, run_id: int) -> pd.DataFrame:
    t = schema.table("duplicate_pairs")
    stmt = (
        sa.select(t.c.customer_id_l, t.c.customer_id_r, t.c.match_probability)
        .add_columns(t.c.match_weight, t.c.cluster_id, t.c.comparisons)
        .where(t.c.run_id == run_id)
        .order_by(t.c.match_probability.desc(), t.c.customer_id_l, t.c.customer_id_r)
    )
    frame = store.read_df(stmt)
    return frame.astype({"customer_id_l": "int64", "customer_id_r": "int64", "cluster_id": "int64"})


def latest_run(store: Store) -> DuplicateRun | None:
    """The most recent run (None if there is none)."""
    row = _run_row(store, None)
    if row is None:
        return None
    pairs = _stored_pairs(store, int(row["run_id"]))
    return DuplicateRun(
        run_id=int(row["run_id"]),
        created_at=pd.Timestamp(row["created_at"]).to_pydatetime(),
        threshold=float(row["threshold"]),
        customers=int(row["customers"]),
        pairs=pairs,
        clusters=_clusters(pairs),
        seconds=0.0 if pd.isna(row["seconds"]) else float(row["seconds"]),
        created_by=str(row["created_by"]),
        model=json.loads(row["model"]) if isinstance(row.get("model"), str) else {},
    )


def clusters(store: Store, run_id: int | None = None) -> pd.DataFrame:
    """The run's clusters (the latest run by default) whose customers all still exist
    (columns cluster_id, customer_ids, size, min_probability, max_probability)."""
    row = _run_row(store, run_id)
    if row is None:
        return _clusters(pd.DataFrame(columns=[*_PAIR_COLUMNS, "cluster_id"]))
    found = _clusters(_stored_pairs(store, int(row["run_id"])))
    if found.empty:
        return found
    c = schema.table("customers").c
    ids = sorted({i for ids in found["customer_ids"] for i in ids})
    live: set[int] = set()
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        stmt = sa.select(c.customer_id).where(c.customer_id.in_(chunk), c.erased_at.is_(None))
        live |= set(store.read_df(stmt)["customer_id"].astype("int64"))
    keep = found["customer_ids"].map(lambda members: all(i in live for i in members))
    return found[keep].reset_index(drop=True)


PRIOR_LABEL = "Starting point: how rare a duplicate is among random pairs"
"""The first row of `pair_reasons`: the prior, log2 odds that two random records match."""

_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("first_name", "last_name"),
    "email": ("email",),
    "phone": ("phone",),
    "city": ("city",),
    "birth_date": ("birth_date",),
}
"""Customer columns each comparison reads, as `pair_reasons` shows them."""


def _prior_weight(model: dict[str, Any]) -> float | None:
    """log2 odds that two random records are one person (None if the model lacks it)."""
    p = model.get("probability_two_random_records_match")
    if not isinstance(p, int | float) or not 0.0 < p < 1.0:
        return None
    return math.log2(p / (1.0 - p))


def _shown_value(row: dict[str, Any] | None, comparison: str) -> str:
    if row is None:
        return "(no record)"
    parts = []
    for column in _FIELDS.get(comparison, ()):
        value = row.get(column)
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            continue
        if hasattr(value, "strftime"):
            value = value.strftime("%Y-%m-%d")
        if str(value).strip():
            parts.append(str(value).strip())
    return " ".join(parts) if parts else "(empty)"


def _pair_records(store: Store, ids: tuple[int, int]) -> dict[int, dict[str, Any]]:
    c = schema.table("customers").c
    columns = sorted({col for cols in _FIELDS.values() for col in cols})
    stmt = sa.select(c.customer_id, *(c[col] for col in columns)).where(c.customer_id.in_(ids))
    frame = store.read_df(stmt)
    return {int(r["customer_id"]): r for r in frame.to_dict(orient="records")}


def pair_reasons(
    store: Store, customer_id_l: int, customer_id_r: int, run_id: int | None = None
) -> pd.DataFrame:
    """Why a stored pair matches: the starting point (prior), then one row per comparison
    (comparison, what each record holds "a vs b", the outcome, the match weight it adds in
    log2 Bayes factor); the weights add up to the pair's match weight. Values unmasked:
    the Duplicates view is for admins."""
    row = _run_row(store, run_id)
    lo, hi = sorted((int(customer_id_l), int(customer_id_r)))
    if row is None:
        raise DuplicateError(
            "Duplicate pair: got no duplicate run yet; allowed: a pair of a stored run; fix: "
            "run `python -m crm_core duplicates find` first."
        )
    t = schema.table("duplicate_pairs")
    stmt = sa.select(t.c.comparisons, t.c.match_weight).where(
        t.c.run_id == int(row["run_id"]), t.c.customer_id_l == lo, t.c.customer_id_r == hi
    )
    found = store.read_df(stmt)
    if found.empty:
        raise DuplicateError(
            f"Duplicate pair: got customers {lo} and {hi}, not a pair of run {row['run_id']}; "
            "allowed: a listed pair; fix: pick a pair from the run's list."
        )
    items = json.loads(found.iloc[0]["comparisons"])
    weights = [float("nan") if i["weight"] is None else float(i["weight"]) for i in items]
    model = json.loads(row["model"]) if isinstance(row.get("model"), str) else {}
    prior = _prior_weight(model)
    if prior is None:  # an older run without the model: what the comparisons leave over
        prior = float(found.iloc[0]["match_weight"]) - sum(w for w in weights if w == w)
    records = _pair_records(store, (lo, hi))
    values = [
        f"{_shown_value(records.get(lo), i['comparison'])} vs "
        f"{_shown_value(records.get(hi), i['comparison'])}"
        for i in items
    ]
    return pd.DataFrame(
        {
            "comparison": [
                PRIOR_LABEL,
                *(COMPARISONS.get(i["comparison"], i["comparison"]) for i in items),
            ],
            "values": ["", *values],
            "outcome": ["", *(i["label"] for i in items)],
            "match_weight": [prior, *weights],
        }
    )


def planted_truth(store: Store) -> pd.DataFrame:
    """The demo's planted duplicates (customer_id, duplicate_of, kind); empty for real data."""
    t = schema.table("planted_duplicates")
    if "planted_duplicates" not in store.table_names():
        return pd.DataFrame({"customer_id": [], "duplicate_of": [], "kind": []})
    return store.read_df(sa.select(t).order_by(t.c.customer_id))


def truth_pairs(truth: pd.DataFrame) -> set[tuple[int, int]]:
    """Every pair of customer ids the truth says are one person (copies of the same
    original are one person too), as (smaller, larger)."""
    people: dict[int, list[int]] = {}
    for copy, orig in zip(truth["customer_id"], truth["duplicate_of"], strict=True):
        people.setdefault(int(orig), [int(orig)]).append(int(copy))
    out = set()
    for members in people.values():
        members = sorted(members)
        out |= {(a, b) for i, a in enumerate(members) for b in members[i + 1 :]}
    return out


def precision_recall(found: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, float]:
    """Precision and recall of found pairs (customer_id_l, customer_id_r) against the truth."""
    true = truth_pairs(truth)
    got = {
        (min(a, b), max(a, b))
        for a, b in zip(found["customer_id_l"], found["customer_id_r"], strict=True)
    }
    hit = len(got & true)
    precision = hit / len(got) if got else 1.0
    recall = hit / len(true) if true else 1.0
    return precision, recall

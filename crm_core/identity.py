"""Who is who across platforms: customers by e-mail or platform id, orders and products by id.

A mapped import names customers by e-mail (matched case-insensitively, trimmed, to
``customers.email``) or by a platform's id (``external_ids`` rows with entity ``customers``
and the mapping's ``source``); orders and products by the platform's order number (``#1001``,
``C536379``) and sku (else product name). A `Resolver` turns those into our integer keys:
existing rows are matched, new ones get the next free key (``max + 1`` upward; the tables
are locked first on PostgreSQL so that two imports cannot take the same key), and the rows
to write for them (new customers, new products, new external id links) are handed back as
frames for the loader, so an undo of the import removes them too.

Within one import the resolver remembers what it created, so a customer seen in two batches
(or twice in one) gets one key, also in a dry run where nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crm_core import schema
from crm_core.store import Store, lock_tables

_KEYS = {"customers": "customer_id", "orders": "order_id", "products": "product_id"}
_FLOAT_ID = re.compile(r"^[0-9]+\.0+$")


def normalise_external_ids(values: pd.Series) -> pd.Series:
    """Platform ids as text we can compare: trimmed, a spreadsheet's leading apostrophe
    removed ("'1001" -> "1001"), whole numbers written as floats by a spreadsheet or pandas
    ("17850.0") as integers ("17850"); empty -> missing."""
    text = values.astype("string").str.strip().str.removeprefix("'").str.strip()
    text = text.str.replace(r"^([0-9]+)\.0+$", r"\1", regex=True)
    return text.where(text != "", None)


def normalise_emails(values: pd.Series) -> pd.Series:
    """E-mail addresses as matched: trimmed and lower-cased; empty -> missing."""
    text = values.astype("string").str.strip().str.lower()
    return text.where(text != "", None)


@dataclass
class Created:
    """Rows one resolution created: positions (into the frame resolved) and their new keys."""

    positions: list[int] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)


class Resolver:
    """Resolves platform ids and e-mails to our keys inside one import's transaction."""

    def __init__(self, store: Store, conn: Connection | None, source: str | None) -> None:
        self.store = store
        self.conn = conn
        self.source = source
        self._external: dict[str, dict[str, int]] = {}
        self._next: dict[str, int] = {}
        self._emails: dict[str, int] | None = None
        self._signups: dict[int, Any] | None = None
        self._products: tuple[dict[str, int], dict[str, int]] | None = None
        self._locked = False
        self.created_customers: dict[int, pd.Timestamp] = {}  # new key -> signup derived
        self.signup_lowered: set[int] = set()
        self.links: list[tuple[str, str, int, int]] = []  # entity, external id, key, position
        self.link_frames: list[pd.DataFrame] = []  # the same, vectorised (keys())
        self._index: dict[str, pd.Series] = {}

    # --- lookups (each read once per import) ----------------------------------------------

    def _read(self, stmt: Any) -> pd.DataFrame:
        return self.store.read_df(stmt, conn=self.conn)

    def _lock(self) -> None:
        if self._locked or self.conn is None:
            return
        lock_tables(
            self.conn,
            schema.customers,
            schema.orders,
            schema.products,
            schema.external_ids,
        )
        self._locked = True

    def external(self, entity: str) -> dict[str, int]:
        """Known links of this import's source for `entity` (external id -> our key)."""
        if entity not in self._external:
            known: dict[str, int] = {}
            if self.source:
                t = schema.external_ids
                frame = self._read(
                    sa.select(t.c.external_id, t.c.internal_id).where(
                        t.c.source == self.source, t.c.entity == entity
                    )
                )
                known = dict(
                    zip(
                        frame["external_id"].astype(str),
                        frame["internal_id"].astype(int),
                        strict=True,
                    )
                )
            self._external[entity] = known
        return self._external[entity]

    def next_key(self, entity: str) -> int:
        """The next free key of `entity` (max + 1, counting keys given out in this import)."""
        if entity not in self._next:
            self._lock()
            table = schema.table(entity)
            column = table.c[_KEYS[entity]]
            top = self._read(sa.select(sa.func.max(column).label("top")))["top"].iloc[0]
            self._next[entity] = 1 if top is None or pd.isna(top) else int(top) + 1
        key = self._next[entity]
        self._next[entity] = key + 1
        return key

    def emails(self) -> dict[str, int]:
        """Stored e-mails (trimmed, lower-cased) -> customer_id (the lowest id if repeated)."""
        if self._emails is None:
            c = schema.customers
            frame = self._read(
                sa.select(c.c.customer_id, c.c.email)
                .where(c.c.email.is_not(None))
                .order_by(c.c.customer_id.desc())
            )
            emails = normalise_emails(frame["email"])
            self._emails = {
                e: int(i)
                for e, i in zip(emails, frame["customer_id"], strict=True)
                if e is not None and e is not pd.NA
            }
        return self._emails

    def signups(self) -> dict[int, Any]:
        """Stored signup_at of every customer (to keep it when a file does not give one)."""
        if self._signups is None:
            c = schema.customers
            frame = self._read(sa.select(c.c.customer_id, c.c.signup_at))
            self._signups = dict(
                zip(frame["customer_id"].astype(int), frame["signup_at"], strict=True)
            )
        return self._signups

    def products(self) -> tuple[dict[str, int], dict[str, int]]:
        """Stored products by sku and by name (-> product_id; the lowest id if repeated)."""
        if self._products is None:
            p = schema.products
            frame = self._read(
                sa.select(p.c.product_id, p.c.sku, p.c.name).order_by(p.c.product_id.desc())
            )
            by_sku = {
                str(s).strip(): int(i)
                for s, i in zip(frame["sku"], frame["product_id"], strict=True)
                if isinstance(s, str) and s.strip()
            }
            by_name = {
                str(s).strip(): int(i)
                for s, i in zip(frame["name"], frame["product_id"], strict=True)
                if isinstance(s, str) and s.strip()
            }
            self._products = (by_sku, by_name)
        return self._products

    # --- resolution -------------------------------------------------------------------

    def customers(
        self, external: pd.Series | None, emails: pd.Series | None, n: int
    ) -> tuple[pd.Series, Created]:
        """customer_id for each row from a platform id and/or an e-mail; creates the unknown.

        A row with neither gets no id. Returns the ids (Int64) and the rows that created a
        customer (the first row of each new customer)."""
        ext = normalise_external_ids(external) if external is not None else None
        mail = normalise_emails(emails) if emails is not None else None
        if ext is not None and not self.source:
            ext = None
        pairs = pd.DataFrame(
            {
                "x": ext if ext is not None else pd.Series([None] * n, dtype="string"),
                "e": mail if mail is not None else pd.Series([None] * n, dtype="string"),
            }
        ).reset_index(drop=True)
        known_ext = self.external("customers") if self.source else {}
        known_mail = self.emails() if mail is not None else {}
        unique = pairs.drop_duplicates()
        created = Created()
        ids: dict[tuple[Any, Any], int | None] = {}
        for pos, x, e in zip(unique.index, unique["x"], unique["e"], strict=True):
            x = None if x is None or x is pd.NA else str(x)
            e = None if e is None or e is pd.NA else str(e)
            cid = known_ext.get(x) if x is not None else None
            if cid is None and e is not None:
                cid = known_mail.get(e)
            if cid is None and (x is not None or e is not None):
                cid = self.next_key("customers")
                created.positions.append(int(pos))
                created.keys.append(cid)
            if x is not None and x not in known_ext and cid is not None:
                known_ext[x] = cid
                self.links.append(("customers", x, cid, int(pos)))
            if e is not None and e not in known_mail and cid is not None:
                known_mail[e] = cid
            ids[(x, e)] = cid
        keys = [ids[k] for k in _pair_keys(pairs)]
        return pd.Series(keys, dtype="Int64"), created

    def keys(self, entity: str, external: pd.Series) -> tuple[pd.Series, Created]:
        """Our key for each platform id of `entity` (orders, products); creates the unknown.

        Vectorised (an export holds millions of orders): known ids are looked up through an
        index, the unknown numbered in one go."""
        ext = normalise_external_ids(external)
        known = self.external_index(entity)
        codes, uniques = pd.factorize(ext, sort=False)
        first = _first_positions(codes, len(uniques))
        found = known.index.get_indexer(pd.Index(uniques, dtype=object))
        values = known.to_numpy(dtype=np.int64)
        out = np.zeros(len(uniques), dtype=np.int64)
        out[found >= 0] = values[found[found >= 0]]
        new = found < 0
        created = Created()
        if new.any():
            count = int(new.sum())
            start = self.reserve(entity, count)
            out[new] = np.arange(start, start + count, dtype=np.int64)
            fresh = pd.Series(out[new], index=pd.Index(np.asarray(uniques)[new], dtype=object))
            self._index[entity] = pd.concat([known, fresh])
            created.positions = first[new].tolist()
            created.keys = out[new].tolist()
            self.link_frames.append(
                pd.DataFrame(
                    {
                        "entity": entity,
                        "external_id": np.asarray(uniques, dtype=object)[new],
                        "internal_id": out[new],
                        "position": first[new],
                    }
                )
            )
        return _take(out, codes), created

    def external_index(self, entity: str) -> pd.Series:
        """Known links of `entity` as a Series (external id -> our key), for vectorised use."""
        if entity not in self._index:
            known = self.external(entity)
            self._index[entity] = pd.Series(
                np.fromiter(known.values(), dtype=np.int64, count=len(known)),
                index=pd.Index(list(known), dtype=object),
            )
        return self._index[entity]

    def reserve(self, entity: str, count: int) -> int:
        """The first of `count` consecutive new keys of `entity`."""
        start = self.next_key(entity)
        self._next[entity] = start + count
        return start

    def product_keys(
        self, sku: pd.Series | None, name: pd.Series | None, n: int
    ) -> tuple[pd.Series, Created]:
        """product_id for each line by sku (else name); creates the unknown products."""
        sku_t = _clean(sku, n)
        name_t = _clean(name, n)
        ident = sku_t.fillna(name_t)
        by_sku, by_name = self.products()
        known_ext = self.external("products") if self.source else {}
        codes, uniques = pd.factorize(ident, sort=False)
        first = _first_positions(codes, len(uniques))
        created = Created()
        out = np.zeros(len(uniques), dtype=np.int64)
        for i, (value, pos) in enumerate(zip(uniques, first, strict=True)):
            value = str(value)
            has_sku = sku_t.iloc[pos] is not pd.NA and sku_t.iloc[pos] is not None
            key = known_ext.get(value) if self.source else None
            if key is None:
                key = by_sku.get(value) if has_sku else by_name.get(value)
            if key is None:
                key = self.next_key("products")
                created.positions.append(int(pos))
                created.keys.append(key)
                (by_sku if has_sku else by_name)[value] = key
            if self.source and value not in known_ext:
                known_ext[value] = key
                self.links.append(("products", value, key, int(pos)))
            out[i] = key
        return _take(out, codes), created

    def take_links(self, rows: dict[str, np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
        """The external id links created since the last call, as an external_ids frame, with
        the file row of each (`rows`: per entity, the file row of each resolved position)."""
        links, self.links = self.links, []
        parts = [
            pd.DataFrame(
                {
                    "entity": [entity for entity, *_ in links],
                    "external_id": [value for _e, value, *_ in links],
                    "internal_id": np.array([key for *_v, key, _p in links], dtype=np.int64),
                    "position": np.array([pos for *_v, pos in links], dtype=np.int64),
                }
            )
        ] + self.link_frames
        self.link_frames = []
        merged = pd.concat(parts, ignore_index=True)
        file_rows = np.zeros(len(merged), dtype=np.int64)
        for entity, where in merged.groupby("entity", sort=False).indices.items():
            file_rows[where] = np.asarray(rows[entity])[merged["position"].to_numpy()[where]]
        frame = pd.DataFrame(
            {
                "source": pd.Series([self.source] * len(merged), dtype="object"),
                "entity": merged["entity"].astype(object),
                "external_id": merged["external_id"].astype(object),
                "internal_id": pd.array(merged["internal_id"].to_numpy(), dtype="Int64"),
            }
        )
        return frame, file_rows

    # --- signup dates of customers created from orders ------------------------------------

    def note_signups(self, customer_ids: pd.Series, times: pd.Series) -> None:
        """Record order times of customers this import created: the earliest is their
        signup (a later batch may hold an earlier order, see `finish`)."""
        if not self.created_customers:
            return
        frame = pd.DataFrame({"c": customer_ids, "t": times}).dropna()
        frame = frame[frame["c"].isin(self.created_customers.keys())]
        if frame.empty:
            return
        for cid, t in frame.groupby("c")["t"].min().items():
            cid = int(cid)
            if t < self.created_customers[cid]:
                self.created_customers[cid] = t
                self.signup_lowered.add(cid)

    def finish(self) -> None:
        """Move signup_at of customers created by this import back to their earliest order
        when a later batch held an earlier one (customers already written by the loader)."""
        if not self.signup_lowered or self.conn is None:
            return
        c = schema.customers
        stmt = (
            sa.update(c)
            .where(c.c.customer_id == sa.bindparam("cid"))
            .values(signup_at=sa.bindparam("signup"))
        )
        params = [
            {"cid": cid, "signup": _to_datetime(self.created_customers[cid])}
            for cid in sorted(self.signup_lowered)
        ]
        self.conn.execute(stmt, params)
        self.signup_lowered.clear()


def _take(keys: np.ndarray, codes: np.ndarray) -> pd.Series:
    """keys[codes] as nullable integers; missing where a code is -1 (no id in the file)."""
    if not len(keys):
        return pd.Series(pd.array([None] * len(codes), dtype="Int64"))
    taken = keys[np.where(codes >= 0, codes, 0)]
    return pd.Series(pd.arrays.IntegerArray(taken, codes < 0))


def _to_datetime(value: Any) -> datetime:
    return pd.Timestamp(value).to_pydatetime()


def _clean(values: pd.Series | None, n: int) -> pd.Series:
    if values is None:
        return pd.Series([None] * n, dtype="string")
    text = values.astype("string").str.strip().reset_index(drop=True)
    return text.where(text != "", None)


def _pair_keys(pairs: pd.DataFrame) -> list[tuple[Any, Any]]:
    return [
        (None if x is None or x is pd.NA else str(x), None if e is None or e is pd.NA else str(e))
        for x, e in zip(pairs["x"], pairs["e"], strict=True)
    ]


def _first_positions(codes: np.ndarray, n_groups: int) -> np.ndarray:
    first = np.zeros(n_groups, dtype=np.int64)
    valid = np.flatnonzero(codes >= 0)
    if len(valid):
        uniq, idx = np.unique(codes[valid], return_index=True)
        first[uniq] = valid[idx]
    return first

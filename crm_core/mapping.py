"""Column mappings: import a file as another platform writes it (Shopify, HubSpot, a shop's
own export) into one of our tables.

A mapping is data (JSON, saved by name in ``import_mappings``; README "Importing other
platforms' exports" documents it)::

    {"name": "my-shop", "table": "orders", "source": "shopify",
     "format": {"date_order": "MDY", "timezone": "Europe/London"},
     "columns": {"order_id": "Name", "customer_email": "Email", "ordered_at": "Created at",
                 "amount": "Total", "status": "Financial Status", "quantity": "Lineitem quantity"},
     "values": {"status": {"paid": "completed", "refunded": "refunded"}},
     "defaults": {"channel": "web"},
     "options": {"missing_customer": "error", "cancelled_prefix": null}}

- ``columns``: our field -> the file's column (matched ignoring case and surrounding spaces).
  Fields are the table's columns plus virtual ones (`fields`): the customer by e-mail or
  platform id (``customer_email``, ``customer_external_id``, and ``customer_first_name``,
  ``customer_last_name``, ``customer_country``, ``customer_signup_at`` for the customers it
  creates) and, for orders, the line fields (``product_sku``, ``product_name``,
  ``product_category``, ``quantity``, ``unit_price``, ``line_amount``: any of them makes the
  file a line-item file, folded by `crm_core.lines`) and ``cancelled_at`` (a value marks the
  order cancelled).
- ``values``: per field, file value -> our value, matched ignoring case; ``"*"`` stands for
  any other value. Enum fields also match our own values ignoring case (``Web`` -> web).
- ``defaults``: a value for a field the file leaves empty or does not have.
- ``source``: the platform's name. With it, the keys of customers, orders and products in the
  file are that platform's ids, linked to ours in ``external_ids`` (`crm_core.identity`), so
  the next export of the same platform lands on the same rows. Without it keys are our ids.
- ``format``: how the file is written (`crm_core.detect.FileFormat` keys) where detection
  should not decide: every key given replaces what was detected, except ``date_order``,
  which only settles dates that fit day-first and month-first alike.
- ``options``: ``missing_customer`` ("error": a row without a customer stops the import;
  "skip": it is left out and counted in the report) and ``cancelled_prefix`` (order ids
  starting with it are cancellations, e.g. Online Retail's "C").

`import_mapped` reads the file in batches (`crm_core.detect`), turns each into a
`crm_core.ingest.Chunk` with our column names and the file's row numbers, and loads them with
`crm_core.ingest.load` in one transaction (all or nothing, or partial; history and undo);
`preview` is a dry run of the first rows.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crm_core import countries, detect, identity, ingest, lines, schema
from crm_core.errors import CRMError
from crm_core.store import Store, lock_tables, utcnow

TABLES_WRITTEN = ("import_mappings",)
NEGATIVE_TOTALS = (
    "order(s) with a negative amount stored as refunds: amount made positive, status refunded"
)
"""What saving or deleting a mapping writes (for the app's caches)."""

OPTIONS: dict[str, tuple[Any, ...] | None] = {
    "missing_customer": ("error", "skip"),
    "cancelled_prefix": None,  # any text, or null
}
"""Mapping options and their allowed values (None: any text or null)."""

KINDS = ("integer", "number", "datetime", "date", "boolean", "enum", "text")

_TOP_KEYS = ("name", "table", "source", "format", "columns", "values", "defaults", "options")
_FORMAT_KEYS = ("delimiter", "encoding", "decimal", "thousands", "date_order", "timezone")
_TRUE = ("true", "1", "yes", "y", "t")
_FALSE = ("false", "0", "no", "n", "f")


class MappingError(CRMError):
    """A mapping that cannot be used as given; `problems` lists each thing to fix."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1:
            text = f"{what}: {problems[0]}"
        else:
            text = f"{what}: {len(problems)} problems:\n" + "\n".join(f"- {p}" for p in problems)
        super().__init__(text)


# --- fields ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One field a file's column can be mapped to."""

    name: str
    required: bool
    kind: str  # one of KINDS
    doc: str
    allowed: tuple[str, ...] = ()
    virtual: bool = False  # not a column of the table: used to find or create related rows
    instead: tuple[str, ...] = ()  # fields that may be mapped instead of this required one


def _virtual(name: str, kind: str, doc: str) -> Field:
    """A field that is not a column of the table: used to find or create related rows."""
    return Field(name, False, kind, doc, virtual=True)


_CUSTOMER_VIRTUAL = (
    _virtual(
        "customer_email",
        "text",
        "The customer's e-mail: matched to customers.email ignoring case; an unknown "
        "e-mail creates a customer.",
    ),
    _virtual(
        "customer_external_id",
        "text",
        "The customer's id on the platform (needs the mapping's source): matched through "
        "external_ids; an unknown id creates a customer.",
    ),
    _virtual("customer_first_name", "text", "Given name, for customers created."),
    _virtual("customer_last_name", "text", "Family name, for customers created."),
    _virtual("customer_country", "text", "Country, for customers created."),
    _virtual(
        "customer_signup_at",
        "datetime",
        "Signup time of customers created (default: their earliest row in the file).",
    ),
)

_ORDER_VIRTUAL = (
    _virtual(
        "product_sku",
        "text",
        "Line: the product's sku (products matched or created by sku, else by name).",
    ),
    _virtual("product_name", "text", "Line: the product's name."),
    _virtual(
        "product_category",
        "text",
        "Line: the product's category (the order's category is its largest line's).",
    ),
    _virtual(
        "quantity",
        "integer",
        "Line: units (negative: a return; stored positive with the order refunded).",
    ),
    _virtual("unit_price", "number", "Line: price of one unit."),
    _virtual("line_amount", "number", "Line: amount of the line (default: quantity x unit price)."),
    _virtual(
        "cancelled_at",
        "datetime",
        "When the order was cancelled: a value marks the order cancelled.",
    ),
)


def _kind(column: sa.Column) -> str:
    col_type = column.type
    if column.info.get("allowed"):
        return "enum"
    if isinstance(col_type, sa.Boolean):
        return "boolean"
    if isinstance(col_type, sa.Integer):
        return "integer"
    if isinstance(col_type, sa.Numeric):
        return "number"
    if isinstance(col_type, sa.DateTime):
        return "datetime"
    if isinstance(col_type, sa.Date):
        return "date"
    return "text"


def _table(name: str) -> sa.Table:
    if name not in schema.IMPORTABLE_TABLES:
        raise MappingError(
            "mapping",
            [f"unknown table {name!r}; allowed: {', '.join(schema.IMPORTABLE_TABLES)}"],
        )
    return schema.table(name)


def fields(table: str) -> list[Field]:
    """Our fields for `table`: its columns (required ones marked), then the virtual ones."""
    tbl = _table(table)
    out = []
    for col in tbl.columns:
        if col.info.get("bookkeeping"):  # import_batch_id: written by ingest, not mapped
            continue
        required = bool(col.primary_key or not col.nullable)
        instead: tuple[str, ...] = ()
        doc = col.info.get("doc", "")
        if table == "customers" and col.name == "signup_at":
            required = False
            doc += " Not mapped: kept for existing customers, the import time for new ones."
        elif table == "customers" and col.name == "customer_id":
            instead = ("email",)
            doc += " Or map email only: customers are matched by e-mail, new ones numbered."
        elif col.name == "customer_id" and table != "customers":
            instead = ("customer_email", "customer_external_id")
        elif table == "orders" and col.name == "amount":
            instead = ("line_amount", "unit_price")
            doc += " Line-item files: the sum of the lines unless the order total is mapped."
        out.append(
            Field(
                col.name,
                required,
                _kind(col),
                doc,
                tuple(col.info.get("allowed") or ()),
                instead=instead,
            )
        )
    if "customer_id" in tbl.c and table != "customers":
        out.extend(_CUSTOMER_VIRTUAL)
    if table == "orders":
        out.extend(_ORDER_VIRTUAL)
    return out


def _fields_by_name(table: str) -> dict[str, Field]:
    return {f.name: f for f in fields(table)}


# --- the mapping ----------------------------------------------------------------------------


@dataclass
class Mapping:
    """How a file's columns and values become one of our tables (see the module doc)."""

    table: str
    columns: dict[str, str] = field(default_factory=dict)
    name: str = ""
    source: str | None = None
    format: dict[str, Any] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # "Shopify" and "shopify " must find the same links, or the next export doubles up.
        self.source = str(self.source).strip().lower() or None if self.source else None

    @property
    def line_items(self) -> bool:
        """Whether the file has one row per order line (a line field is mapped)."""
        return self.table == "orders" and any(f in self.columns for f in lines.LINE_FIELDS)

    @property
    def missing_customer(self) -> str:
        """What to do with a row without a customer: "error" or "skip"."""
        return str(self.options.get("missing_customer") or "error")

    def external(self, field_name: str) -> bool:
        """Whether `field_name` holds a platform id (resolved through external_ids)."""
        if field_name == "customer_external_id":
            return True
        if not self.source:
            return False
        key = {"customers": "customer_id", "orders": "order_id", "products": "product_id"}
        if field_name == key.get(self.table):
            return True
        return field_name == "customer_id"  # another table's reference to a platform customer

    def to_dict(self) -> dict[str, Any]:
        """The mapping as JSON-able data (keys in the documented order)."""
        return {
            "name": self.name,
            "table": self.table,
            "source": self.source,
            "format": dict(self.format),
            "columns": dict(self.columns),
            "values": {k: dict(v) for k, v in self.values.items()},
            "defaults": dict(self.defaults),
            "options": dict(self.options),
        }

    def to_json(self) -> str:
        """The mapping as JSON text."""
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any, where: str = "mapping") -> Mapping:
        """A mapping from JSON data; MappingError says what is not shaped right."""
        if not isinstance(data, dict):
            raise MappingError(where, [f"must be a JSON object, got {type(data).__name__}"])
        problems = []
        unknown = [k for k in data if k not in _TOP_KEYS]
        if unknown:
            problems.append(
                f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(_TOP_KEYS)}"
            )
        if not isinstance(data.get("table"), str):
            problems.append(f'"table" is required: one of {", ".join(schema.IMPORTABLE_TABLES)}')
        for key in ("format", "columns", "values", "defaults", "options"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                problems.append(f'"{key}" must be an object, got {type(data[key]).__name__}')
        for key in ("name", "source"):
            if data.get(key) is not None and not isinstance(data[key], str):
                problems.append(f'"{key}" must be text, got {type(data[key]).__name__}')
        if problems:
            raise MappingError(where, problems)
        return cls(
            table=data["table"],
            columns=dict(data.get("columns") or {}),
            name=data.get("name") or "",
            source=data.get("source") or None,
            format=dict(data.get("format") or {}),
            values={k: v for k, v in (data.get("values") or {}).items()},
            defaults=dict(data.get("defaults") or {}),
            options=dict(data.get("options") or {}),
        )

    @classmethod
    def from_json(cls, text: str, where: str = "mapping") -> Mapping:
        """A mapping from JSON text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MappingError(where, [f"is not valid JSON ({exc})"]) from exc
        return cls.from_dict(data, where)

    def validate(self, file_columns: Sequence[str] | None = None) -> None:
        """Raise MappingError listing every problem: unknown table, field or file column, a
        required field not mapped, a value map or default to a value that is not allowed."""
        what = f"mapping {self.name!r}" if self.name else "mapping"
        if self.table not in schema.IMPORTABLE_TABLES:
            raise MappingError(
                what,
                [f"unknown table {self.table!r}; allowed: {', '.join(schema.IMPORTABLE_TABLES)}"],
            )
        known = _fields_by_name(self.table)
        problems: list[str] = []
        allowed_fields = ", ".join(known)
        for name, column in self.columns.items():
            if name not in known:
                problems.append(
                    f"unknown field {name!r} for table {self.table}; allowed: {allowed_fields}"
                )
            if not isinstance(column, str) or not column.strip():
                problems.append(f"field {name!r}: the file column must be a name, got {column!r}")
        if file_columns is not None:
            lookup = _column_lookup(file_columns)
            for name, column in self.columns.items():
                if isinstance(column, str) and _norm_header(column) not in lookup:
                    problems.append(
                        f"field {name!r}: the file has no column {column!r}; its columns: "
                        f"{', '.join(map(repr, file_columns))}"
                    )
        given = set(self.columns) | set(self.defaults)
        for f in known.values():
            if not f.required or f.name in given:
                continue
            if self.table == "orders" and f.name == "amount" and self.line_items:
                if "line_amount" in given or "unit_price" in given:
                    continue
            elif f.instead and any(i in given for i in f.instead):
                continue
            extra = f" (or {' / '.join(f.instead)})" if f.instead else ""
            problems.append(f"required field {f.name!r}{extra} is not mapped to a column")
        if "customer_external_id" in self.columns and not self.source:
            problems.append(
                "field 'customer_external_id' needs the mapping's \"source\" (the platform's "
                'name, e.g. "shopify")'
            )
        for name, vmap in self.values.items():
            f = known.get(name)
            if f is None:
                problems.append(f'"values": unknown field {name!r}; allowed: {allowed_fields}')
                continue
            if not isinstance(vmap, dict):
                problems.append(f'"values" of {name!r} must be an object of file value -> ours')
                continue
            for src, dst in vmap.items():
                problem = _value_problem(f, dst)
                if problem:
                    problems.append(f'"values" of {name!r}: {src!r} -> {problem}')
        for name, value in self.defaults.items():
            f = known.get(name)
            if f is None:
                problems.append(f'"defaults": unknown field {name!r}; allowed: {allowed_fields}')
                continue
            problem = _value_problem(f, value)
            if problem:
                problems.append(f'"defaults" of {name!r}: {problem}')
        for key, value in self.options.items():
            if key not in OPTIONS:
                problems.append(f"unknown option {key!r}; allowed: {', '.join(OPTIONS)}")
                continue
            allowed = OPTIONS[key]
            if allowed is not None and value not in allowed:
                problems.append(
                    f"option {key!r}: {value!r} is not allowed; allowed: {', '.join(allowed)}"
                )
            elif allowed is None and value is not None and not isinstance(value, str):
                problems.append(f"option {key!r}: must be text or null, got {value!r}")
        for key in self.format:
            if key not in _FORMAT_KEYS:
                problems.append(
                    f'"format": unknown key {key!r}; allowed: {", ".join(_FORMAT_KEYS)}'
                )
        if not problems and self.format:
            try:
                detect.FileFormat.from_dict(self.format)
            except CRMError as exc:
                problems.append(f'"format": {exc}')
        if problems:
            raise MappingError(what, problems)


def _value_problem(f: Field, value: Any) -> str | None:
    """Why `value` cannot be stored in field `f` (None when it can)."""
    if value is None:
        return None
    text = str(value).strip()
    if f.kind == "enum" and text.lower() not in f.allowed:
        return f"{value!r} is not allowed; allowed: {', '.join(f.allowed)}"
    if f.kind == "boolean" and text.lower() not in _TRUE + _FALSE:
        return f"{value!r} is not true/false (allowed: {', '.join(_TRUE + _FALSE)})"
    if f.kind in ("integer", "number") and not isinstance(value, int | float):
        try:
            float(text)
        except ValueError:
            return f"{value!r} is not a number"
    return None


def _norm_header(name: str) -> str:
    return str(name).strip().lstrip("\ufeff").strip().lower()


def _column_lookup(file_columns: Sequence[str]) -> dict[str, str]:
    """Header names as matched (trimmed, any case) -> as written; the first one wins."""
    lookup: dict[str, str] = {}
    for c in file_columns:
        lookup.setdefault(_norm_header(c), c)
    return lookup


# --- suggestions ----------------------------------------------------------------------------

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "customer_id": (
        "customer id",
        "customer number",
        "customer no",
        "client id",
        "record id",
        "contact id",
        "user id",
    ),
    "customer_external_id": ("customer id", "customer number", "record id", "contact id"),
    "email": ("email", "e-mail", "email address", "e-mail address", "mail"),
    "customer_email": (
        "email",
        "e-mail",
        "email address",
        "e-mail address",
        "customer email",
        "customer e-mail",
        "buyer email",
        "mail",
    ),
    "first_name": ("first name", "firstname", "given name", "forename"),
    "last_name": ("last name", "lastname", "surname", "family name"),
    "customer_first_name": ("first name", "billing first name", "given name"),
    "customer_last_name": ("last name", "billing last name", "surname"),
    "phone": ("phone", "phone number", "mobile", "mobile phone number", "telephone", "tel"),
    "country": (
        "country",
        "country code",
        "country/region",
        "default address country code",
        "billing country",
        "country name",
    ),
    "customer_country": (
        "country",
        "billing country",
        "country code",
        "customer country",
        "shipping country",
    ),
    "region": (
        "region",
        "state",
        "state/region",
        "province",
        "province code",
        "default address province code",
        "county",
    ),
    "city": ("city", "town", "default address city", "billing city"),
    "birth_date": ("birth date", "birthday", "date of birth", "dob"),
    "signup_at": (
        "signup at",
        "signup date",
        "signed up",
        "create date",
        "created at",
        "created",
        "date created",
        "registered",
        "registration date",
        "join date",
    ),
    "customer_signup_at": ("customer since", "signup date", "customer created at"),
    "consent_email": (
        "accepts email marketing",
        "accepts marketing",
        "email consent",
        "email opt in",
        "marketing email",
        "newsletter",
    ),
    "consent_sms": ("accepts sms marketing", "sms consent", "sms opt in"),
    "loyalty_points": ("points", "loyalty points"),
    "loyalty_tier": ("tier", "loyalty tier"),
    "order_id": (
        "order id",
        "order number",
        "order no",
        "order",
        "invoice",
        "invoiceno",
        "invoice no",
        "invoice number",
        "name",
        "number",
        "id",
    ),
    "ordered_at": (
        "order date",
        "ordered at",
        "created at",
        "invoicedate",
        "invoice date",
        "purchase date",
        "date",
        "order time",
        "timestamp",
        "created",
    ),
    "amount": (
        "amount",
        "total",
        "order total",
        "total amount",
        "grand total",
        "revenue",
        "order value",
        "value",
        "total price",
    ),
    "items": ("items", "item count", "number of items"),
    "channel": ("channel", "sales channel", "source"),
    "category": ("category", "product category", "product type"),
    "status": ("status", "order status", "financial status", "payment status"),
    "product_sku": (
        "sku",
        "lineitem sku",
        "stockcode",
        "stock code",
        "product code",
        "item code",
        "variant sku",
        "product id",
    ),
    "product_name": (
        "lineitem name",
        "description",
        "product name",
        "product",
        "item name",
        "item",
        "product title",
        "title",
    ),
    "product_category": ("product category", "category", "product type", "lineitem category"),
    "quantity": ("quantity", "qty", "lineitem quantity", "units", "quantity ordered"),
    "unit_price": (
        "unit price",
        "unitprice",
        "price",
        "lineitem price",
        "item price",
        "price each",
    ),
    "line_amount": ("line amount", "line total", "lineitem total", "subtotal line"),
    "cancelled_at": ("cancelled at", "canceled at", "cancelled date", "cancellation date"),
    "occurred_at": ("occurred at", "timestamp", "event time", "date", "time"),
    "event_type": ("event type", "event", "type", "action"),
    "answered_at": ("answered at", "submitted at", "response date", "date"),
    "score": ("score", "rating", "nps"),
    "comment": ("comment", "feedback", "comments"),
    "opened_at": ("opened at", "created at", "created", "date"),
    "closed_at": ("closed at", "resolved at", "closed"),
    "created_at": ("created at", "create date", "created", "date"),
    "stage": ("stage", "lifecycle stage", "lead stage"),
    "deal_value": ("deal value", "amount", "value"),
    "sku": ("sku", "stockcode", "stock code", "product code"),
    "name": ("name", "title", "product name", "campaign name", "description"),
    "price": ("price", "unit price", "list price"),
    "started_at": ("started at", "start date", "start"),
    "ended_at": ("ended at", "end date", "end"),
    "spend": ("spend", "cost", "budget"),
}


def _squash(text: str) -> str:
    """Names as compared: lower case, letters and digits only ("E-mail" -> "email")."""
    return re.sub(r"[^0-9a-z]", "", str(text).lower())


def suggest(table: str, file_columns: Sequence[str], source: str | None = None) -> dict[str, str]:
    """A suggested mapping field -> file column, by name and synonyms (ignoring case, spaces,
    underscores and punctuation); each column is suggested for one field at most. With a
    `source`, a customer id column is suggested as the platform id."""
    known = _fields_by_name(table)
    squashed: dict[str, str] = {}
    for column in file_columns:
        squashed.setdefault(_squash(column), column)
    candidates: list[tuple[int, int, str, str]] = []  # rank, field order, field, column
    for order, name in enumerate(known):
        if name == "customer_external_id" and not source:
            continue
        if name == "customer_id" and source and table != "customers":
            continue
        words = (name,) + _SYNONYMS.get(name, ())
        for rank, word in enumerate(words):
            column = squashed.get(_squash(word))
            if column is not None:
                candidates.append((rank, order, name, column))
    chosen: dict[str, str] = {}
    used: set[str] = set()
    for _rank, _order, name, column in sorted(candidates):
        if name in chosen or column in used:
            continue
        chosen[name] = column
        used.add(column)
    return {name: chosen[name] for name in known if name in chosen}


def guess_table(file_columns: Sequence[str]) -> str | None:
    """The table a file most likely holds (most fields suggested, required ones counting
    double), or None when nothing matches."""
    best, best_score = None, 0
    for table in schema.IMPORTABLE_TABLES:
        known = _fields_by_name(table)
        found = suggest(table, file_columns)
        score = sum(2 if known[f].required else 1 for f in found if not known[f].virtual)
        score += sum(1 for f in found if known[f].virtual)
        if score > best_score:
            best, best_score = table, score
    return best


# --- values ---------------------------------------------------------------------------------


def _text(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    text = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)


def _is_text(arr: pa.Array | pa.ChunkedArray) -> bool:
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def _value_map(text: pa.Array, vmap: dict[str, Any]) -> pa.Array:
    keys = [str(k).strip().lower() for k in vmap if k != "*"]
    targets = [None if v is None else str(v) for k, v in vmap.items() if k != "*"]
    out = text
    if keys:
        index = pc.index_in(pc.utf8_lower(text), value_set=pa.array(keys, pa.string()))
        mapped = pc.take(pa.array(targets, pa.string()), index)
        out = pc.if_else(pc.is_valid(index), mapped, text)
        matched = pc.is_valid(index)
    else:
        matched = pa.array(np.zeros(len(text), dtype=bool))
    if "*" in vmap:
        star = vmap["*"]
        other = pc.and_(pc.is_valid(text), pc.invert(matched))
        out = pc.if_else(other, pa.scalar(None if star is None else str(star), pa.string()), out)
    return out


def _transform(arr: pa.Array | pa.ChunkedArray, f: Field, mapping: Mapping, fmt: Any) -> pa.Array:
    """One file column as our field's values: value map, case of enums, numbers and dates as
    the format writes them; what cannot be read is left as written for the import to report."""
    vmap = mapping.values.get(f.name)
    typed = not _is_text(arr)
    if typed and not vmap and f.kind not in ("enum", "text"):
        return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    text = _text(arr)
    if vmap:
        text = _value_map(text, vmap)
    if f.name in ("country", "customer_country"):
        return countries.country_codes(text)  # ISO alpha-2 codes, like the demo data
    if mapping.external(f.name) or _is_key(mapping.table, f.name):
        return text  # ids: as written (trimmed)
    if f.kind == "enum":
        lowered = pc.utf8_lower(text)
        ours = pc.is_in(lowered, value_set=pa.array(list(f.allowed), pa.string()))
        return pc.if_else(ours, lowered, text)
    if typed:
        return text
    if f.kind in ("integer", "number"):
        return detect.normalise_numbers(text, fmt)
    if f.kind == "datetime":
        return detect.normalise_datetimes(text, fmt)
    if f.kind == "date":
        return detect.normalise_datetimes(text, dataclasses.replace(fmt, timezone="UTC"))
    return text


def _is_key(table: str, name: str) -> bool:
    """Keys and references (our integer ids): read as written, no number formats."""
    tbl = schema.table(table)
    if name not in tbl.c:
        return False
    col = tbl.c[name]
    return bool(col.primary_key or col.info.get("references"))


_STRING = pd.StringDtype("pyarrow", na_value=np.nan)


def _to_series(arr: pa.Array) -> pd.Series:
    if _is_text(arr):
        return pd.Series(arr.to_pandas(types_mapper={pa.string(): _STRING}.get), dtype=_STRING)
    return pd.Series(arr.to_pandas())


def apply(mapping: Mapping, batch: pa.Table, fmt: Any) -> pd.DataFrame:
    """A batch of the file (its own column names) as our fields: mapped columns with their
    values transformed (value maps, enums, numbers and dates as `fmt` writes them), then the
    defaults."""
    known = _fields_by_name(mapping.table)
    lookup = _column_lookup(batch.column_names)
    position = {name: i for i, name in enumerate(batch.column_names)}
    out: dict[str, pd.Series] = {}
    for name, column in mapping.columns.items():
        actual = lookup.get(_norm_header(column))
        if actual is None or name not in known:
            continue  # validate() reports it
        values = _transform(batch.column(position[actual]), known[name], mapping, fmt)
        out[name] = _to_series(values)
    n = batch.num_rows
    for name, value in mapping.defaults.items():
        if value is None or name not in known:
            continue
        if name in out:
            out[name] = out[name].fillna(str(value) if out[name].dtype == _STRING else value)
        else:
            out[name] = pd.Series([str(value)] * n, dtype=_STRING)
    frame = pd.DataFrame(out, index=pd.RangeIndex(n))
    return frame


# --- chunks ---------------------------------------------------------------------------------


def file_format(
    path: Path | str, overrides: dict[str, Any], file_name: str | None = None
) -> detect.FileFormat:
    """The detected format of the file with a mapping's "format" `overrides` applied (its
    date_order only where the file's dates fit day-first and month-first alike)."""
    fmt = detect.detect(path, file_name)
    over = dict(overrides)
    if not over:
        return fmt
    data = fmt.to_dict()
    notes = list(fmt.notes)
    order = over.pop("date_order", None)
    if order and fmt.date_order_ambiguous:
        data["date_order"] = order
        data["date_order_ambiguous"] = False
        notes.append(f"dates read as {order} (the mapping's date order)")
    for key, value in over.items():
        if data.get(key) != value:
            notes.append(f"{key} {value!r} (the mapping's format)")
        data[key] = value
    data["notes"] = notes
    return detect.FileFormat.from_dict(data)


def _header(path: Path | str, fmt: Any, file_name: str) -> list[str]:
    for batch, _first in detect.read_batches(path, fmt, file_name, batch_rows=1):
        return list(batch.column_names)
    return []


def _time_column(table: str) -> str | None:
    """The table's main time column (a required DateTime), for customers created from it."""
    for col in schema.table(table).columns:
        if isinstance(col.type, sa.DateTime) and not col.nullable:
            return col.name
    return None


def _times(values: pd.Series | None, n: int) -> pd.Series:
    if values is None:
        return pd.Series(pd.NaT, index=pd.RangeIndex(n), dtype="datetime64[us]")
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        out = values
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert("UTC").dt.tz_localize(None)
        return out.astype("datetime64[us]").reset_index(drop=True)
    parsed = pd.to_datetime(values.astype("string"), format="ISO8601", errors="coerce", utc=True)
    return parsed.dt.tz_convert(None).astype("datetime64[us]").reset_index(drop=True)


class _Builder:
    """Turns batches of one file into ingest Chunks (identity resolution across batches)."""

    def __init__(self, store: Store, conn: Connection | None, mapping: Mapping) -> None:
        self.mapping = mapping
        self.table = mapping.table
        self.resolver = identity.Resolver(store, conn, mapping.source)
        self.columns = [c.name for c in schema.table(self.table).columns]
        self.now = pd.Timestamp(utcnow()).floor("s")

    def chunk(self, raw: pa.Table, first_row: int, frame: pd.DataFrame) -> Any:
        mapping = self.mapping
        rows = first_row + np.arange(raw.num_rows, dtype=np.int64)
        frames: dict[str, pd.DataFrame] = {}
        row_map: dict[str, np.ndarray] = {}
        skipped: dict[str, int] = {}
        changed: dict[str, int] = {}
        items = item_rows = None
        if mapping.line_items:
            folded = lines.fold(
                frame,
                rows,
                cancelled_prefix=mapping.options.get("cancelled_prefix"),
                missing_customer=mapping.missing_customer,
            )
            main, main_rows = folded.orders, folded.order_rows
            if "product_sku" in frame.columns or "product_name" in frame.columns:
                items, item_rows = folded.items, folded.item_rows  # else: orders only
            skipped.update(folded.skipped)
        else:
            main, main_rows = frame, rows
            if self.table == "orders":
                main = self._order_rules(main, changed)
            main, main_rows = self._skip_without_customer(main, main_rows, skipped)
        main = main.reset_index(drop=True)

        if self.table == "customers":
            main = self._customer_rows(main)
        elif "customer_id" in self.columns and any(
            f in main.columns for f in lines.CUSTOMER_FIELDS
        ):
            main, new_customers, new_rows = self._customer_refs(main, main_rows)
            if len(new_customers):
                frames["customers"] = new_customers
                row_map["customers"] = new_rows
        order_text = None
        if mapping.source and self.table in ("orders", "products"):
            key = "order_id" if self.table == "orders" else "product_id"
            if key in main.columns:
                order_text = identity.normalise_external_ids(main[key])
                main[key], _created = self.resolver.keys(self.table, order_text)
        if items is not None:
            if order_text is not None:  # lines of the orders just resolved
                where = pd.Index(order_text, dtype=object)
                ext = identity.normalise_external_ids(items["order_id"])
                at = (
                    where.get_indexer(pd.Index(ext, dtype=object))
                    if where.is_unique
                    else pd.Series(np.arange(len(where)))
                    .groupby(where)
                    .first()
                    .reindex(ext)
                    .fillna(-1)
                    .astype(int)
                    .to_numpy()
                )
                keys = main["order_id"].to_numpy(dtype="int64", na_value=-1)
                taken = keys[np.maximum(at, 0)]
                items["order_id"] = pd.Series(pd.arrays.IntegerArray(taken, (at < 0) | (taken < 0)))
            items, products, product_rows = self._lines(items, item_rows)
            if len(products):
                frames["products"] = products
                row_map["products"] = product_rows
        frames[self.table] = main[[c for c in self.columns if c in main.columns]]
        row_map[self.table] = np.asarray(main_rows, dtype=np.int64)
        if items is not None:
            frames["order_items"] = items
            row_map["order_items"] = np.asarray(item_rows, dtype=np.int64)
        links, link_rows = self.resolver.take_links(
            {
                "customers": main_rows,
                "orders": main_rows,
                "products": item_rows if item_rows is not None else main_rows,
            }
        )
        if len(links):
            frames["external_ids"] = links
            row_map["external_ids"] = link_rows
        return ingest.Chunk(
            raw=raw,
            first_row=first_row,
            frames=frames,
            rows=row_map,
            skipped=skipped,
            changed=changed,
        )

    # -- pieces --

    def _order_rules(self, main: pd.DataFrame, changed: dict[str, int]) -> pd.DataFrame:
        """Orders one per row: a negative total is a refund (stored positive, counted in the
        report's notes), cancellations."""
        negative = np.zeros(len(main), dtype=bool)
        if "amount" in main.columns:
            amount = lines.to_float(main["amount"], len(main))
            negative = np.nan_to_num(amount) < 0
            if negative.any():
                main = main.copy()
                main["amount"] = lines.number_column(main["amount"], amount)
                what = NEGATIVE_TOTALS
                changed[what] = changed.get(what, 0) + int(negative.sum())
        return lines.apply_status_rules(
            main, negative=negative, cancelled_prefix=self.mapping.options.get("cancelled_prefix")
        )

    def _skip_without_customer(
        self, main: pd.DataFrame, rows: np.ndarray, skipped: dict[str, int]
    ) -> tuple[pd.DataFrame, np.ndarray]:
        if self.mapping.missing_customer != "skip" or self.table == "customers":
            return main, rows
        who = [c for c in lines.CUSTOMER_FIELDS if c in main.columns]
        if not who:
            return main, rows
        keep = main[who].notna().any(axis=1).to_numpy(dtype=bool)
        if keep.all():
            return main, rows
        skipped[lines.SKIP_NO_CUSTOMER] = skipped.get(lines.SKIP_NO_CUSTOMER, 0) + int(
            (~keep).sum()
        )
        return main.loc[keep].reset_index(drop=True), rows[keep]

    def _customer_rows(self, main: pd.DataFrame) -> pd.DataFrame:
        """A customers file: each row's customer_id from the platform id or the e-mail."""
        n = len(main)
        direct = None
        ext = None
        if "customer_id" in main.columns:
            if self.mapping.source:
                ext = main["customer_id"]
            else:
                direct = main["customer_id"].astype("string").str.strip()
        emails = main["email"] if "email" in main.columns else None
        if direct is None or direct.isna().any():
            ids, _created = self.resolver.customers(ext, emails, n)
            resolved = ids.astype("string")
            main["customer_id"] = resolved if direct is None else direct.fillna(resolved)
        if "signup_at" not in main.columns:
            signups = self.resolver.signups()
            keys = pd.to_numeric(main["customer_id"], errors="coerce")
            main["signup_at"] = pd.Series(
                [signups.get(int(k), self.now) if not pd.isna(k) else self.now for k in keys],
                dtype="datetime64[us]",
            )
        return main

    def _customer_refs(
        self, main: pd.DataFrame, rows: np.ndarray
    ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
        """Rows naming a customer by e-mail or platform id: customer_id, and the customers
        this batch creates (one row each, with the file row where they first appear)."""
        n = len(main)
        ext = main.get("customer_external_id")
        direct = None
        if "customer_id" in main.columns:
            if self.mapping.source:
                ext = main["customer_id"] if ext is None else ext.fillna(main["customer_id"])
            else:
                direct = main["customer_id"].astype("string").str.strip()
        emails = main.get("customer_email")
        if direct is not None:  # our own ids where given; e-mails only fill the gaps
            emails = emails.where(direct.isna()) if emails is not None else None
            ext = ext.where(direct.isna()) if ext is not None else None
        ids, created = self.resolver.customers(ext, emails, n)
        time_col = _time_column(self.table)
        times = _times(main.get(time_col) if time_col else None, n)
        self.resolver.note_signups(ids, times)
        new = pd.DataFrame()
        new_rows = np.zeros(0, dtype=np.int64)
        if created.keys:
            new = self._new_customers(main, ids, times, created)
            new_rows = np.asarray(rows)[created.positions]
        customer_id = ids.astype("string")
        if direct is not None:
            customer_id = direct.fillna(customer_id)
        main = main.drop(columns=[c for c in main.columns if c.startswith("customer_")])
        main["customer_id"] = customer_id
        return main, new, new_rows

    def _new_customers(
        self, main: pd.DataFrame, ids: pd.Series, times: pd.Series, created: identity.Created
    ) -> pd.DataFrame:
        keys = pd.Series(created.keys, dtype="Int64")
        mine = ids.isin(created.keys).to_numpy(dtype=bool)
        sub = main.loc[mine]
        sub_ids = ids[mine]
        first = sub.groupby(sub_ids.to_numpy(), sort=False).first()  # skips missing values
        out = pd.DataFrame({"customer_id": keys})
        for ours, theirs in (
            ("email", "customer_email"),
            ("first_name", "customer_first_name"),
            ("last_name", "customer_last_name"),
            ("country", "customer_country"),
        ):
            if theirs in first.columns:
                values = first[theirs].reindex(keys.to_numpy())
                out[ours] = pd.Series(values.to_numpy(), dtype=object)
        earliest = (
            times[mine].groupby(sub_ids.to_numpy(), sort=False).min().reindex(keys.to_numpy())
        )
        signup = pd.Series(earliest.to_numpy(), dtype="datetime64[us]")
        if "customer_signup_at" in first.columns:
            given = _times(first["customer_signup_at"].reindex(keys.to_numpy()), len(keys))
            signup = given.fillna(signup)
        else:
            for cid, t in zip(created.keys, signup, strict=True):
                if not pd.isna(t):
                    self.resolver.created_customers[int(cid)] = t
        out["signup_at"] = signup.to_numpy()
        return out

    def _lines(
        self, items: pd.DataFrame, item_rows: np.ndarray
    ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
        """Order lines with our order and product keys; the products this batch creates."""
        n = len(items)
        sku = items.get("product_sku")
        name = items.get("product_name")
        product_ids, created = self.resolver.product_keys(sku, name, n)
        items["product_id"] = product_ids
        products = pd.DataFrame()
        product_rows = np.zeros(0, dtype=np.int64)
        if created.keys:
            pos = np.asarray(created.positions, dtype=np.int64)
            sku_at = sku.iloc[pos].to_numpy() if sku is not None else [None] * len(pos)
            name_at = name.iloc[pos].to_numpy() if name is not None else [None] * len(pos)
            products = pd.DataFrame(
                {
                    "product_id": pd.array(created.keys, dtype="Int64"),
                    "sku": pd.Series(sku_at, dtype=object),
                    "name": pd.Series(name_at, dtype=object),
                }
            )
            products["name"] = products["name"].where(products["name"].notna(), products["sku"])
            if "product_category" in items.columns:
                products["category"] = items["product_category"].iloc[pos].to_numpy()
            if "unit_price" in items.columns:
                products["price"] = items["unit_price"].iloc[pos].to_numpy()
            product_rows = np.asarray(item_rows)[pos]
        keep = ["order_id", "line_no", "product_id", "quantity", "unit_price", "amount"]
        return items[[c for c in keep if c in items.columns]], products, product_rows


def chunks(
    store: Store,
    path: Path | str,
    mapping: Mapping,
    fmt: Any,
    *,
    file_name: str | None = None,
    batch_rows: int = 500_000,
    limit_rows: int | None = None,
) -> Callable[[Connection], Iterator[Any]]:
    """What `ingest.load` pulls: for a connection (the import's transaction), the file's
    batches as Chunks. The lines of an order that spans two batches move to the later one."""
    name = file_name or Path(path).name

    def produce(conn: Connection) -> Iterator[Any]:
        builder = _Builder(store, conn, mapping)
        key_column = None
        if mapping.line_items and "order_id" in mapping.columns:
            key_column = mapping.columns["order_id"]
        held: tuple[pa.Table, int] | None = None
        read = 0
        for raw, first_row in detect.read_batches(path, fmt, name, batch_rows=batch_rows):
            if limit_rows is not None:
                raw = raw.slice(0, max(0, limit_rows - read))
                read += raw.num_rows
                if raw.num_rows == 0:
                    break
            if held is not None:
                head, tail = _split_last_order(held[0], key_column)
                if head.num_rows:
                    yield _build(builder, head, held[1])
                if tail.num_rows:
                    first_row = held[1] + head.num_rows
                    raw = pa.concat_tables([tail, raw.cast(tail.schema)])
            held = (raw, first_row)
            if limit_rows is not None and read >= limit_rows:
                break
        if held is not None and held[0].num_rows:
            yield _build(builder, held[0], held[1])
        builder.resolver.finish()

    def _build(builder: _Builder, raw: pa.Table, first_row: int) -> Any:
        return builder.chunk(raw, first_row, apply(mapping, raw, fmt))

    return produce


def _split_last_order(raw: pa.Table, key_column: str | None) -> tuple[pa.Table, pa.Table]:
    """The batch without the rows of its last order, and those rows (an order's lines are
    consecutive in line-item files; they may continue in the next batch)."""
    if key_column is None or raw.num_rows == 0:
        return raw, raw.slice(raw.num_rows)
    lookup = _column_lookup(raw.column_names)
    actual = lookup.get(_norm_header(key_column))
    if actual is None:
        return raw, raw.slice(raw.num_rows)
    keys = _text(raw.column(actual))
    last = keys[len(keys) - 1].as_py()
    if last is None:
        return raw, raw.slice(raw.num_rows)
    same = pc.fill_null(pc.equal(keys, pa.scalar(last, keys.type)), False).to_numpy(
        zero_copy_only=False
    )
    different = np.flatnonzero(~same)
    start = int(different[-1]) + 1 if len(different) else 0
    return raw.slice(0, start), raw.slice(start)


def _notes(mapping: Mapping, fmt: Any) -> list[str]:
    notes = list(getattr(fmt, "notes", ()))
    label = f"mapping {mapping.name!r}" if mapping.name else "a column mapping"
    notes.insert(
        0,
        f"read with {label} into {mapping.table}"
        + (f" (ids of {mapping.source})" if mapping.source else ""),
    )
    if mapping.table == "customers" and "signup_at" not in mapping.columns:
        notes.append(
            "the file has no signup date: existing customers keep theirs, new ones get the "
            "import time"
        )
    return notes


BY_NAME = "by-name"
"""The mapping name that matches the file's columns to our fields by name (no saved one)."""


def _by_name_if_empty(mapping: Mapping, header: Sequence[str]) -> Mapping:
    """A mapping without columns matches the file's columns by name and synonyms."""
    if mapping.columns:
        return mapping
    return dataclasses.replace(mapping, columns=suggest(mapping.table, header, mapping.source))


def column_labels(mapping: Mapping) -> dict[str, dict[str, str]]:
    """Per table written, our column -> the file's column it comes from, so that problems
    name the column the user knows (``column Email (customer_id)``)."""
    cols = mapping.columns
    own = schema.table(mapping.table).c
    labels = {mapping.table: {f: c for f, c in cols.items() if f in own}}
    for via in ("customer_email", "customer_external_id"):
        if via in cols and "customer_id" in own:
            labels[mapping.table].setdefault("customer_id", cols[via])
    if mapping.table != "customers":
        labels["customers"] = {
            column: cols[f"customer_{column}"]
            for column in ("email", "first_name", "last_name", "country", "signup_at")
            if f"customer_{column}" in cols
        }
    if mapping.line_items:
        item_fields = {
            "order_id": "order_id",
            "quantity": "quantity",
            "unit_price": "unit_price",
            "amount": "line_amount",
            "product_id": "product_sku" if "product_sku" in cols else "product_name",
        }
        labels["order_items"] = {c: cols[f] for c, f in item_fields.items() if f in cols}
        product_fields = {"sku": "product_sku", "name": "product_name"}
        product_fields["category"] = "product_category"
        labels["products"] = {c: cols[f] for c, f in product_fields.items() if f in cols}
    return {table: found for table, found in labels.items() if found}


def import_mapped(
    store: Store,
    path: Path | str,
    mapping: Mapping,
    *,
    mode: str = "append",
    on_error: str = "stop",
    dry_run: bool = False,
    user: str | None = None,
    file_name: str | None = None,
    fmt: Any = None,
    batch_rows: int = 500_000,
    keep_rows: int = 0,
) -> Any:
    """Import a file through `mapping` in one transaction; the loader's ImportReport.

    `fmt` is the file's format (default: detected, with the mapping's "format" applied;
    dates that fit day-first and month-first alike need the mapping's date_order).
    """
    name = file_name or Path(path).name
    if fmt is None:
        fmt = file_format(path, mapping.format, name)
        if fmt.date_order_ambiguous:
            raise MappingError(
                name,
                [
                    "every date could be read day-first or month-first (e.g. 03/04/2024); "
                    'say which in the mapping: "format": {"date_order": "DMY"} (day first) '
                    'or {"date_order": "MDY"} (month first)'
                ],
            )
    header = _header(path, fmt, name)
    mapping = _by_name_if_empty(mapping, header)
    mapping.validate(header)
    report = ingest.load(
        store,
        name,
        chunks(store, path, mapping, fmt, file_name=name, batch_rows=batch_rows),
        mode=mode,
        on_error=on_error,
        dry_run=dry_run,
        user=user,
        mapping_json=mapping.to_json(),
        sha256=None if dry_run else ingest.file_sha256(path),
        keep_rows=keep_rows,
        labels=column_labels(mapping),
    )
    report.notes[:0] = _notes(mapping, fmt)
    return report


def preview(
    store: Store,
    path: Path | str,
    mapping: Mapping,
    rows: int = 20,
    *,
    mode: str = "append",
    file_name: str | None = None,
    fmt: Any = None,
) -> Any:
    """A dry run of the file's first `rows` rows: the rows as they would be stored
    (report.preview, per table) and every problem by row and column."""
    name = file_name or Path(path).name
    fmt = fmt or file_format(path, mapping.format, name)
    header = _header(path, fmt, name)
    mapping = _by_name_if_empty(mapping, header)
    mapping.validate(header)
    report = ingest.load(
        store,
        name,
        chunks(store, path, mapping, fmt, file_name=name, batch_rows=max(rows, 1), limit_rows=rows),
        mode=mode,
        on_error="skip",
        dry_run=True,
        mapping_json=mapping.to_json(),
        keep_rows=rows,
        labels=column_labels(mapping),
    )
    report.notes[:0] = _notes(mapping, fmt)
    return report


# --- saved mappings -------------------------------------------------------------------------

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,79}$")


def save(store: Store, mapping: Mapping, *, user: str | None = None) -> None:
    """Save (or replace) `mapping` under its name in import_mappings."""
    from crm_core import presets

    name = (mapping.name or "").strip()
    if not _NAME_RE.match(name):
        raise MappingError(
            "mapping",
            [f"name {name!r} is not usable; use 1-80 letters, digits, spaces, '-', '_' or '.'"],
        )
    if name in presets.PRESETS:
        raise MappingError(
            "mapping",
            [f"name {name!r} is a preset's; choose another name (e.g. {name + '-mine'!r})"],
        )
    mapping.name = name
    mapping.validate()
    t = schema.import_mappings
    with store.begin() as conn:
        lock_tables(conn, t)
        conn.execute(sa.delete(t).where(t.c.name == name))
        conn.execute(
            sa.insert(t).values(
                name=name,
                table_name=mapping.table,
                definition=mapping.to_json(),
                created_by=user,
                created_at=utcnow(),
            )
        )


def load(store: Store, name: str) -> Mapping:
    """The saved mapping called `name` (MappingError naming the saved ones if none)."""
    t = schema.import_mappings
    with store.connect() as conn:
        text = conn.execute(sa.select(t.c.definition).where(t.c.name == name)).scalar()
    if text is None:
        saved = names(store)
        raise MappingError(
            "mapping",
            [f"no saved mapping {name!r}; saved: {', '.join(saved) or 'none'}"],
        )
    mapping = Mapping.from_json(text, f"saved mapping {name!r}")
    mapping.name = name
    return mapping


def names(store: Store, table: str | None = None) -> list[str]:
    """Names of the saved mappings (of one table, if given), sorted."""
    t = schema.import_mappings
    stmt = sa.select(t.c.name).order_by(t.c.name)
    if table:
        stmt = stmt.where(t.c.table_name == table)
    with store.connect() as conn:
        return [r[0] for r in conn.execute(stmt)]


def delete(store: Store, name: str) -> bool:
    """Delete the saved mapping `name`; whether there was one."""
    t = schema.import_mappings
    with store.begin() as conn:
        return conn.execute(sa.delete(t).where(t.c.name == name)).rowcount > 0


def resolve(store: Store, name_or_path: str | Path) -> Mapping:
    """A mapping by saved name, preset name, or path of a .json file (in that order)."""
    from crm_core import presets

    text = str(name_or_path)
    if text in names(store):
        return load(store, text)
    if text in presets.PRESETS:
        return presets.get(text)
    path = Path(text)
    if path.suffix.lower() == ".json" and path.is_file():
        mapping = Mapping.from_json(path.read_text(encoding="utf-8"), str(path.name))
        mapping.name = mapping.name or path.stem
        mapping.validate()
        return mapping
    saved = names(store)
    raise MappingError(
        "mapping",
        [
            f"{text!r} is not a saved mapping, a preset or a .json file; saved: "
            f"{', '.join(saved) or 'none'}; presets: {', '.join(presets.PRESETS)}"
        ],
    )

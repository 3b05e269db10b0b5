"""Country names as ISO 3166-1 alpha-2 codes ("United States", "usa", "us" -> "US").

Imports through a mapping store countries as codes, like the demo data, so that the country
filter shows one country once. A value that names no country ("Channel Islands",
"Unspecified") is kept as written. Matching is exact (ignoring case and surrounding spaces)
against the ISO codes, names, official and common names (pycountry), plus the everyday
English forms below; no fuzzy matching.
"""

from __future__ import annotations

import functools

import pyarrow as pa
import pyarrow.compute as pc
import pycountry

# Common English forms ISO does not list (keys lower case).
_ALIASES = {
    "uk": "GB",
    "u.k.": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "u.s.": "US",
    "u.s.a.": "US",
    "united states of america": "US",
    "america": "US",
    "eire": "IE",
    "russia": "RU",
    "turkey": "TR",
    "holland": "NL",
    "the netherlands": "NL",
    "south korea": "KR",
    "north korea": "KP",
    "ivory coast": "CI",
    "macedonia": "MK",
    "swaziland": "SZ",
    "rsa": "ZA",
    "uae": "AE",
    "vatican": "VA",
    "czechia": "CZ",
}


@functools.lru_cache(maxsize=4096)
def country_code(value: str) -> str | None:
    """The alpha-2 code `value` names (a code, name, or common English form), else None."""
    key = value.strip()
    if not key or key.isdigit():  # numeric ISO codes are too easily something else
        return None
    alias = _ALIASES.get(key.lower())
    if alias:
        return alias
    try:
        return pycountry.countries.lookup(key).alpha_2.upper()
    except LookupError:
        return None


def country_codes(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`values` (text) with each value that names a country as its upper-case alpha-2 code;
    other values and nulls unchanged. Each distinct value is looked up once."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if len(values) == 0:
        return values
    distinct = pc.unique(values).drop_null()
    names = distinct.to_pylist()
    targets = pa.array([country_code(v) or v for v in names], pa.string())
    index = pc.index_in(values, value_set=distinct)
    return pc.if_else(pc.is_valid(index), pc.take(targets, index), values)

"""Country names as ISO alpha-2 codes, alone and in a mapped import."""

from __future__ import annotations

import pyarrow as pa
import pytest

from crm_core import countries, mapping
from crm_core.mapping import Mapping
from tests.core.test_presets import records, table


def test_codes_names_and_common_forms_become_alpha_2_codes():
    values = pa.array(
        [
            "us",
            "US",
            "Germany",
            "United Kingdom",
            "United States",
            "Russia",
            "USA",
            "UK",
            "EIRE",
            "germany",
            "Channel Islands",
            "Narnia",
            "Unspecified",
            None,
            "826",
        ],
        pa.string(),
    )
    assert countries.country_codes(values).to_pylist() == [
        "US",
        "US",
        "DE",
        "GB",
        "US",
        "RU",
        "US",
        "GB",
        "IE",
        "DE",
        "Channel Islands",
        "Narnia",
        "Unspecified",
        None,
        "826",
    ]


def test_no_fuzzy_matching_and_empty_input():
    assert countries.country_code("Germny") is None
    assert countries.country_code("") is None
    assert countries.country_codes(pa.array([], pa.string())).to_pylist() == []
    chunked = pa.chunked_array([["France"], [None, "fr"]], pa.string())
    assert countries.country_codes(chunked).to_pylist() == ["FR", None, "FR"]


@pytest.mark.both_stores
def test_a_mapped_customers_import_stores_country_codes(store, tmp_path):
    path = tmp_path / "hubspot-contacts.csv"
    path.write_text(
        "Record ID,Email,First Name,Country/Region\n"
        "101,a@x.com,Ann,United States\n"
        "102,b@x.com,Bo,Germany\n"
        "103,c@x.com,Cy,EIRE\n"
        "104,d@x.com,Di,Narnia\n"
        "105,e@x.com,Ed,\n",
        encoding="utf-8",
    )
    m = Mapping.from_dict(
        {
            "table": "customers",
            "columns": {
                "customer_id": "Record ID",
                "email": "Email",
                "first_name": "First Name",
                "country": "Country/Region",
            },
        }
    )
    report = mapping.import_mapped(store, path, m)
    assert report.rows == {"customers": 5}
    assert records(table(store, "customers", "customer_id"), ["customer_id", "country"]) == [
        (101, "US"),
        (102, "DE"),
        (103, "IE"),
        (104, "Narnia"),
        (105, None),
    ]

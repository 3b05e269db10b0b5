"""PII masking by role."""

from __future__ import annotations

import pandas as pd

from crm_core.privacy import PII_COLUMNS, mask_pii

FRAME = pd.DataFrame(
    {
        "customer_id": [1, 2],
        "email": ["anna@example.com", None],
        "first_name": ["Anna", "Bo"],
        "phone": ["+441234567", "+33999"],
        "birth_date": pd.to_datetime(["1980-05-04", "1991-01-02"]),
        "country": ["GB", "FR"],
        "clv": [120.5, 30.0],
    }
)


def test_pii_columns_come_from_the_schema():
    assert {"email", "first_name", "last_name", "phone", "birth_date", "city"} <= PII_COLUMNS
    assert "country" not in PII_COLUMNS and "customer_id" not in PII_COLUMNS


def test_roles_that_may_see_pii_get_it_unchanged():
    pd.testing.assert_frame_equal(mask_pii(FRAME, "marketer"), FRAME)
    pd.testing.assert_frame_equal(mask_pii(FRAME, "admin"), FRAME)


def test_other_roles_get_masked_pii_and_untouched_figures():
    masked = mask_pii(FRAME, "analyst")
    assert masked["email"].tolist()[0] == "a***@example.com"
    assert masked["email"].isna().tolist() == [False, True]
    assert masked["first_name"].tolist() == ["A***", "***"]  # no length shown
    assert masked["phone"].tolist()[0] == "+***"
    assert masked["birth_date"].tolist() == [1980, 1991]
    pd.testing.assert_series_equal(masked["clv"], FRAME["clv"])
    assert masked["country"].tolist() == ["GB", "FR"]
    assert FRAME["email"][0] == "anna@example.com"  # the input is not changed

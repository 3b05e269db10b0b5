"""Links between views: a customer id anywhere in the app opens that customer's 360 profile."""

from __future__ import annotations

CUSTOMER_PARAM = "customer_id"
"""The query parameter Customer 360 reads (``customer_360?customer_id=42``)."""


def customer_url(customer_id: int) -> str:
    """A relative link to the customer's 360 profile (works under any base URL path)."""
    return f"customer_360?{CUSTOMER_PARAM}={int(customer_id)}"

"""Ready-made mappings for exports people have: Shopify orders and customers, HubSpot
contacts, and the public Online Retail transaction data set.

Column names are the platforms' own, exactly as their exports write them (sources in the
comments). Use one by name wherever a mapping is asked for (`crm_core.mapping.resolve`,
``python -m crm_core import orders FILE --mapping shopify-orders``); copy it to change it.
"""

from __future__ import annotations

import copy

from crm_core.mapping import Mapping

# Shopify admin > Orders > Export, "CSV for Excel, Numbers, or other spreadsheet programs".
# Header as Shopify writes it (help.shopify.com "Exporting orders"; a real export's rows are
# reproduced in docs.xbp.app/docs/development/integrations/shopify/order-format):
# Name, Email, Financial Status, Paid at, Fulfillment Status, Fulfilled at, Accepts Marketing,
# Currency, Subtotal, Shipping, Taxes, Total, Discount Code, Discount Amount, Shipping Method,
# Created at, Lineitem quantity, Lineitem name, Lineitem price, Lineitem compare at price,
# Lineitem sku, Lineitem requires shipping, Lineitem taxable, Lineitem fulfillment status,
# Billing Name, Billing Street, Billing Address1, Billing Address2, Billing Company,
# Billing City, Billing Zip, Billing Province, Billing Country, Billing Phone, Shipping Name,
# ..., Notes, Note Attributes, Cancelled at, Payment Method, Payment Reference,
# Refunded Amount, Vendor, Outstanding Balance, Employee, Location, Device ID, Id, Tags,
# Risk Level, Source, Lineitem discount, Tax 1 Name, Tax 1 Value, ..., Phone, ...
# One row per line item; the order's fields (Financial Status, Total, Created at...) on its
# first row only. Times are written with their offset ("2024-03-05 14:22:31 -0500").
SHOPIFY_ORDERS = Mapping(
    name="shopify-orders",
    table="orders",
    source="shopify",
    columns={
        "order_id": "Name",  # "#1001": the order number shown to merchants and customers
        "customer_email": "Email",
        "ordered_at": "Created at",
        "amount": "Total",
        "status": "Financial Status",
        "channel": "Source",
        "cancelled_at": "Cancelled at",
        "product_sku": "Lineitem sku",
        "product_name": "Lineitem name",
        "quantity": "Lineitem quantity",
        "unit_price": "Lineitem price",
        "customer_country": "Billing Country",
    },
    values={
        # Shopify's financial statuses (the order's payment state).
        "status": {
            "paid": "completed",
            "partially_paid": "completed",
            "authorized": "completed",
            "pending": "completed",
            "partially_refunded": "completed",
            "refunded": "refunded",
            "voided": "cancelled",
            "expired": "cancelled",
        },
        # Source: web, pos, shopify_draft_order, iphone, android, or an app's id.
        "channel": {"web": "web", "pos": "store", "iphone": "app", "android": "app", "*": "web"},
    },
    options={"missing_customer": "error"},
)

# Shopify admin > Customers > Export (help.shopify.com "Using CSV files to import and export
# customers"; current export header): Customer ID, First Name, Last Name, Email,
# Accepts Email Marketing, Default Address Company, Default Address Address1,
# Default Address Address2, Default Address City, Default Address Province Code,
# Default Address Country Code, Default Address Zip, Default Address Phone, Phone,
# Accepts SMS Marketing, Total Spent, Total Orders, Note, Tax Exempt, Tags.
# The export has no creation date: existing customers keep their signup date, new ones get
# the import time. Customers are matched by Customer ID (linked for shopify), else e-mail.
SHOPIFY_CUSTOMERS = Mapping(
    name="shopify-customers",
    table="customers",
    source="shopify",
    columns={
        "customer_id": "Customer ID",
        "email": "Email",
        "first_name": "First Name",
        "last_name": "Last Name",
        "phone": "Phone",
        "city": "Default Address City",
        "region": "Default Address Province Code",
        "country": "Default Address Country Code",
        "consent_email": "Accepts Email Marketing",
        "consent_sms": "Accepts SMS Marketing",
    },
)

# HubSpot > Contacts > Export (knowledge.hubspot.com "Export your records"): one column per
# exported property, named by its label: Record ID, First Name, Last Name, Email,
# Phone Number, Contact owner, Lead Status, Lifecycle Stage, Create Date,
# Last Activity Date, City, State/Region, Country/Region, ... (older exports call the id
# "Contact ID"; map it by hand then). Create Date is written like "2024-03-05 14:22".
HUBSPOT_CONTACTS = Mapping(
    name="hubspot-contacts",
    table="customers",
    source="hubspot",
    columns={
        "customer_id": "Record ID",
        "email": "Email",
        "first_name": "First Name",
        "last_name": "Last Name",
        "phone": "Phone Number",
        "signup_at": "Create Date",
        "city": "City",
        "region": "State/Region",
        "country": "Country/Region",
    },
)

# UCI Machine Learning Repository, "Online Retail" (id 352; Chen, Sain and Guo 2012):
# InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country.
# A UK online shop's invoice lines 2010-12-01 .. 2011-12-09: "InvoiceNo starting with 'c'
# indicates a cancellation" (negative quantities); a quarter of the rows have no CustomerID
# (skipped and counted); some prices are 0. As a CSV the dates read "12/1/2010 8:26"
# (month first, UK local time); CustomerID often "17850.0" after pandas.
ONLINE_RETAIL = Mapping(
    name="online-retail",
    table="orders",
    source="online-retail",
    format={"date_order": "MDY", "timezone": "Europe/London"},
    columns={
        "order_id": "InvoiceNo",
        "product_sku": "StockCode",
        "product_name": "Description",
        "quantity": "Quantity",
        "ordered_at": "InvoiceDate",
        "unit_price": "UnitPrice",
        "customer_external_id": "CustomerID",
        "customer_country": "Country",
    },
    defaults={"channel": "web", "status": "completed"},  # a non-store shop; no status column
    options={"missing_customer": "skip", "cancelled_prefix": "C"},
)

PRESETS: dict[str, Mapping] = {
    m.name: m for m in (SHOPIFY_ORDERS, SHOPIFY_CUSTOMERS, HUBSPOT_CONTACTS, ONLINE_RETAIL)
}
"""Every preset by name."""


def get(name: str) -> Mapping:
    """A copy of the preset called `name` (KeyError if there is none)."""
    return copy.deepcopy(PRESETS[name])

"""Every store table, declared once: DDL, import validation, masking and docs read from here.

Column `info` keys (all optional):
- ``doc``: what the column means (shown in the import page and README);
- ``allowed``: the values a text column may take;
- ``min``: the smallest value a number may take;
- ``references``: ``"table.column"`` that a value must exist in (checked on import; the
  store declares no foreign keys so that DuckDB can upsert referenced rows);
- ``pii``: personal data, masked for roles that may not see it;
- ``contact``: ``"email"`` or ``"phone"``: contact data, exported exactly as stored;
- ``scale``: decimals a number leaves exports with (Numeric columns: their own scale).
- ``holds_customer``: the column holds a customer id without being a checked reference
  (derived and history tables): access requests and erasures find the person's rows by it;
- ``label``: how people read the column's name, when the humanised name is not good
  (``p_alive`` -> "P(alive)"); ``kind``: how its values read, when the type does not say it
  (a Double that is money); see `crm_core.display`.

Keys are integers and are given by the data (no sequences); timestamps are naive UTC;
money is DECIMAL(12,2).
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 8
"""Bump when the model changes; `store.migrate` adds what an older store lacks."""

metadata = sa.MetaData()

Money = sa.Numeric(12, 2)


def _key(name: str, doc: str, **info) -> sa.Column:
    return sa.Column(
        name, sa.BigInteger, primary_key=True, autoincrement=False, info={"doc": doc, **info}
    )


def _col(name: str, type_: sa.types.TypeEngine, doc: str, *, required: bool = False, **info):
    return sa.Column(name, type_, nullable=not required, info={"doc": doc, **info})


def _customer_ref(doc: str = "The customer (customers.customer_id).", *, required: bool = True):
    return _col(
        "customer_id", sa.BigInteger, doc, required=required, references="customers.customer_id"
    )


def _campaign_ref(doc: str = "Campaign that drove it, if any (campaigns.campaign_id)."):
    return _col("campaign_id", sa.BigInteger, doc, references="campaigns.campaign_id")


ORDER_CHANNELS = ("web", "store", "app")
ORDER_STATUSES = ("completed", "refunded", "cancelled")
EVENT_TYPES = (
    "visit",
    "product_view",
    "add_to_cart",
    "checkout",
    "purchase",
    "email_open",
    "email_click",
    "sms_click",
    "app_open",
)
CONTACT_GROUPS = ("treatment", "control")
SURVEYS = ("nps", "csat")
LEAD_STAGES = ("lead", "mql", "sql", "opportunity", "won", "lost")
TICKET_STATUSES = ("open", "pending", "closed")
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")

customers = sa.Table(
    "customers",
    metadata,
    _key("customer_id", "Unique customer number."),
    _col("email", sa.String, "E-mail address.", pii=True, contact="email", label="E-mail"),
    _col("first_name", sa.String, "Given name.", pii=True),
    _col("last_name", sa.String, "Family name.", pii=True),
    _col("phone", sa.String, "Phone number for SMS.", pii=True, contact="phone"),
    _col("country", sa.String, "Country (ISO 3166 alpha-2 code or name)."),
    _col("region", sa.String, "Region or state."),
    _col("city", sa.String, "City.", pii=True),
    _col("birth_date", sa.Date, "Date of birth.", pii=True),
    _col("gender", sa.String, "Gender as given by the customer.", pii=True),
    _col(
        "signup_at",
        sa.DateTime,
        "When the customer signed up (UTC).",
        required=True,
        label="Signed up",
        kind="date",
    ),
    _col("acquisition_channel", sa.String, "How the customer was acquired (e.g. paid_search)."),
    _col("loyalty_tier", sa.String, "Loyalty programme tier."),
    _col("loyalty_points", sa.Integer, "Loyalty points balance.", min=0),
    _col("consent_email", sa.Boolean, "May be contacted by e-mail.", label="E-mail consent"),
    _col("consent_sms", sa.Boolean, "May be contacted by SMS.", label="SMS consent"),
    _col("erased_at", sa.DateTime, "When personal data was erased (never export).", label="Erased"),
)

campaigns = sa.Table(
    "campaigns",
    metadata,
    _key("campaign_id", "Unique campaign number."),
    _col("name", sa.String, "Campaign name.", required=True),
    _col("channel", sa.String, "Channel (email, sms, paid_social, paid_search, ...)."),
    _col("objective", sa.String, "Objective (acquisition, retention, winback, ...)."),
    _col("started_at", sa.DateTime, "Start (UTC).", required=True),
    _col("ended_at", sa.DateTime, "End (UTC)."),
    _col("spend", Money, "Total spend.", min=0),
)

orders = sa.Table(
    "orders",
    metadata,
    _key("order_id", "Unique order number."),
    _customer_ref(),
    _col("ordered_at", sa.DateTime, "When the order was placed (UTC).", required=True),
    _col("amount", Money, "Order value.", required=True, min=0),
    _col("items", sa.Integer, "Number of items.", min=0),
    _col("channel", sa.String, "Sales channel.", allowed=ORDER_CHANNELS),
    _col("category", sa.String, "Main product category."),
    _col("status", sa.String, "Order status.", allowed=ORDER_STATUSES),
    _campaign_ref(),
)

products = sa.Table(
    "products",
    metadata,
    _key("product_id", "Unique product number."),
    _col("sku", sa.String, "Stock keeping unit (the shop's product code)."),
    _col("name", sa.String, "Product name.", required=True),
    _col("category", sa.String, "Product category."),
    _col("price", Money, "List price.", min=0),
    _col(
        "product_group",
        sa.String,
        "The product this one is a variant of (a size, colour or price level), e.g. the "
        "Shopify handle: cross-sell never offers another variant of a product the customer "
        "bought. Blank: the product stands alone.",
    ),
)

order_items = sa.Table(
    "order_items",
    metadata,
    _key("order_id", "The order (orders.order_id).", references="orders.order_id"),
    _key("line_no", "Line number within the order (1, 2, ...)."),
    _col(
        "product_id",
        sa.BigInteger,
        "The product (products.product_id).",
        required=True,
        references="products.product_id",
    ),
    _col(
        "quantity",
        sa.Integer,
        "Units bought (returned units: see the order's status).",
        required=True,
        min=0,
    ),
    _col("unit_price", Money, "Price of one unit.", min=0),
    _col("amount", Money, "Line amount (quantity x unit price, after line discounts).", min=0),
)

events = sa.Table(
    "events",
    metadata,
    _key("event_id", "Unique event number."),
    _customer_ref(),
    _col("occurred_at", sa.DateTime, "When it happened (UTC).", required=True),
    _col("event_type", sa.String, "What happened.", required=True, allowed=EVENT_TYPES),
    _col("channel", sa.String, "Where (web, app, email, sms)."),
    _campaign_ref(),
    _col("session_id", sa.BigInteger, "Web/app session."),
)

campaign_contacts = sa.Table(
    "campaign_contacts",
    metadata,
    _key("campaign_id", "The campaign.", references="campaigns.campaign_id"),
    _key("customer_id", "The customer contacted.", references="customers.customer_id"),
    _col("sent_at", sa.DateTime, "When the message was sent (UTC).", required=True),
    _col(
        "test_group",
        sa.String,
        "treatment (contacted) or control (held out).",
        required=True,
        allowed=CONTACT_GROUPS,
    ),
    _col("opened_at", sa.DateTime, "When it was opened, if it was."),
    _col("clicked_at", sa.DateTime, "When it was clicked, if it was."),
)

survey_responses = sa.Table(
    "survey_responses",
    metadata,
    _key("response_id", "Unique response number."),
    _customer_ref(),
    _col("answered_at", sa.DateTime, "When the survey was answered (UTC).", required=True),
    _col("survey", sa.String, "nps (0-10) or csat (1-5).", required=True, allowed=SURVEYS),
    _col("score", sa.Integer, "The score given.", required=True, min=0),
    _col("comment", sa.Text, "Free-text comment.", pii=True),
    _col("touchpoint", sa.String, "Where it was asked (post_purchase, support, ...)."),
)

support_tickets = sa.Table(
    "support_tickets",
    metadata,
    _key("ticket_id", "Unique ticket number."),
    _customer_ref(),
    _col("opened_at", sa.DateTime, "When the ticket was opened (UTC).", required=True),
    _col("closed_at", sa.DateTime, "When it was closed, if it was."),
    _col("channel", sa.String, "Contact channel (email, phone, chat)."),
    _col("category", sa.String, "Topic (delivery, billing, product, ...)."),
    _col("priority", sa.String, "Priority.", allowed=TICKET_PRIORITIES),
    _col("status", sa.String, "Status.", allowed=TICKET_STATUSES),
)

leads = sa.Table(
    "leads",
    metadata,
    _key("lead_id", "Unique lead number."),
    _customer_ref("The customer the lead became, once won.", required=False),
    _col("created_at", sa.DateTime, "When the lead was created (UTC).", required=True),
    _col("source", sa.String, "Lead source."),
    _col("stage", sa.String, "Lifecycle stage.", required=True, allowed=LEAD_STAGES),
    _col("stage_changed_at", sa.DateTime, "When it entered its current stage."),
    _col("deal_value", Money, "Expected or won deal value.", min=0),
)

# --- app tables -------------------------------------------------------------------------

segments = sa.Table(
    "segments",
    metadata,
    sa.Column("segment_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("definition", sa.Text, nullable=False, info={"doc": "Rules as JSON."}),
    sa.Column("owner", sa.String),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("deleted_at", sa.DateTime),
    sa.Column("deleted_by", sa.String, info={"doc": "Who deleted it (it can be restored)."}),
)

customer_scores = sa.Table(
    "customer_scores",
    metadata,
    sa.Column(
        "customer_id",
        sa.BigInteger,
        primary_key=True,
        autoincrement=False,
        info={"holds_customer": True},
    ),
    sa.Column("clv", sa.Float, info={"doc": "Predicted customer lifetime value."}),
    sa.Column(
        "p_alive",
        sa.Float,
        info={"doc": "The CLV model's probability that the customer is still a customer."},
    ),
    sa.Column(
        "churn_risk",
        sa.Float,
        info={"doc": "The churn model's probability of no purchase in the churn window."},
    ),
    sa.Column("churn_band", sa.String, info={"doc": "low, medium or high."}),
    sa.Column("p_purchase_7d", sa.Float, info={"doc": "P(at least one purchase in 7 days)."}),
    sa.Column("p_purchase_30d", sa.Float, info={"doc": "P(at least one purchase in 30 days)."}),
    sa.Column("p_purchase_90d", sa.Float, info={"doc": "P(at least one purchase in 90 days)."}),
    sa.Column(
        "next_purchase_from",
        sa.Date,
        info={"doc": "Day by which the chance of a next purchase reaches 25%."},
    ),
    sa.Column(
        "next_purchase_to",
        sa.Date,
        info={"doc": "Day by which the chance of a next purchase reaches 75% (empty: not likely)."},
    ),
    sa.Column(
        "churn_reasons",
        sa.String,
        info={
            "doc": "What pushes a high churn risk up most, in words (from the model).",
            "label": "Why (from the model)",
        },
    ),
    sa.Column("model_version", sa.String),
    sa.Column("scored_at", sa.DateTime),
)

export_log = sa.Table(
    "export_log",
    metadata,
    sa.Column("export_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("exported_by", sa.String, nullable=False),
    sa.Column("exported_at", sa.DateTime, nullable=False),
    sa.Column("segment_name", sa.String),
    sa.Column("segment_version", sa.Integer),
    sa.Column("channel", sa.String),
    sa.Column("rows", sa.BigInteger),
    sa.Column("format", sa.String),
    sa.Column("file_name", sa.String),
    sa.Column("file_sha256", sa.String),
    sa.Column("column_names", sa.Text, info={"doc": "Exported columns as a JSON list."}),
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("value", sa.String, primary_key=True, info={"doc": "E-mail or phone."}),
    sa.Column("kind", sa.String, nullable=False, info={"allowed": ("email", "phone")}),
    sa.Column("reason", sa.String),
    sa.Column("added_at", sa.DateTime, nullable=False),
    sa.Column(
        "hashed",
        sa.Boolean,
        info={
            "doc": "Yes: value is a salted hash of the address (an erased person's), not the "
            "address itself."
        },
    ),
)

app_users = sa.Table(
    "app_users",
    metadata,
    sa.Column("username", sa.String, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("email", sa.String),
    sa.Column("role", sa.String, nullable=False),
    sa.Column("password_hash", sa.String, nullable=False, info={"doc": "bcrypt hash."}),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_failed_at", sa.DateTime),
    sa.Column("last_login_at", sa.DateTime, info={"doc": "Last successful sign-in (UTC)."}),
    sa.Column(
        "deactivated_at",
        sa.DateTime,
        info={"doc": "When an admin deactivated the user (UTC); empty while active."},
    ),
)

home_pins = sa.Table(
    "home_pins",
    metadata,
    sa.Column("pin_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column(
        "owner",
        sa.String,
        nullable=False,
        info={"doc": "The user's username, or role:<role> for a role's published default."},
    ),
    sa.Column("position", sa.Integer, nullable=False, info={"doc": "Order on the page, from 0."}),
    sa.Column("kind", sa.String, nullable=False, info={"allowed": ("kpi", "chart")}),
    sa.Column("view", sa.String, nullable=False, info={"doc": "The view it was pinned from."}),
    sa.Column("item", sa.String, nullable=False, info={"doc": "The KPI or chart of that view."}),
    sa.Column("title", sa.String, nullable=False),
    sa.Column("settings", sa.Text, info={"doc": "The view's settings for it, as JSON."}),
    sa.Column("filters", sa.Text, info={"doc": "The sidebar filters it was pinned with, as JSON."}),
    sa.Column("created_by", sa.String, info={"doc": "Who pinned or published it."}),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
"""KPIs and charts pinned to a user's Home page, and the defaults published for a role."""

# --- alerts, schedules and deliveries (crm_core/alerts.py, schedules.py, delivery.py) -----

ALERT_MEASURES = ("kpi", "segment_size", "score")
SCHEDULE_KINDS = ("alert", "report", "export", "retention")
RUN_RESULTS = (
    "running",
    "fired",
    "quiet",
    "repeat",  # an alert that fired for a period already sent: nothing delivered
    "sent",
    "failed",
    "delivery_failed",
    "skipped",
)
DELIVERY_KINDS = ("email", "webhook", "folder")
DELIVERY_STATUSES = ("sent", "failed")

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("alert_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column(
        "definition",
        sa.Text,
        nullable=False,
        info={"doc": "What is measured and when it fires, as JSON (crm_core/alerts.py)."},
    ),
    sa.Column("owner", sa.String),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("deleted_at", sa.DateTime),
    sa.Column("deleted_by", sa.String),
)
"""Alert rules, versioned like segments: a save adds a version, the latest one is in force."""

score_runs = sa.Table(
    "score_runs",
    metadata,
    sa.Column("scored_at", sa.DateTime, primary_key=True),
    sa.Column("model_version", sa.String),
    sa.Column("customers", sa.BigInteger, info={"doc": "Customers scored."}),
    sa.Column("mean_churn_risk", sa.Double),
    sa.Column("value_at_risk", sa.Double, info={"doc": "Sum of churn risk x CLV."}),
    sa.Column("mean_clv", sa.Double),
    sa.Column("total_clv", sa.Double),
    sa.Column("mean_p_alive", sa.Double),
)
"""One row per scoring run: the score aggregates alerts watch over time."""

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("schedule_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("kind", sa.String, nullable=False, info={"allowed": SCHEDULE_KINDS}),
    sa.Column(
        "target",
        sa.String,
        nullable=False,
        info={"doc": "The alert's name, the report (overview or home:<user>), or the segment."},
    ),
    sa.Column("options", sa.Text, info={"doc": "Kind-specific options as JSON (format, ...)."}),
    sa.Column("cron", sa.String, nullable=False, info={"doc": "Five-field cron expression."}),
    sa.Column("timezone", sa.String, nullable=False, info={"doc": "IANA zone the cron reads."}),
    sa.Column(
        "destinations",
        sa.Text,
        nullable=False,
        info={"doc": "Where results go, as a JSON list (crm_core/delivery.py)."},
    ),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("next_due_at", sa.DateTime, info={"doc": "Next run (UTC); null when paused."}),
    sa.Column("claimed_by", sa.String, info={"doc": "The scheduler running it now."}),
    sa.Column("claimed_until", sa.DateTime, info={"doc": "When an unfinished claim lapses."}),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
"""Alerts, reports and exports that run on a cron schedule."""

schedule_runs = sa.Table(
    "schedule_runs",
    metadata,
    sa.Column("run_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("schedule_id", sa.BigInteger, nullable=False),
    sa.Column("due_at", sa.DateTime, info={"doc": "The slot it ran for (null: run by hand)."}),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("result", sa.String, nullable=False, info={"allowed": RUN_RESULTS}),
    sa.Column("message", sa.Text, info={"doc": "What happened, in words."}),
    sa.Column("detail", sa.Text, info={"doc": "Figures of the run as JSON (value, interval)."}),
    sa.Column("runner", sa.String, info={"doc": "host:pid of the scheduler, or cli/app."}),
    sa.Column("file_path", sa.String, info={"doc": "The export or report file it wrote."}),
)
"""The run log: one row per run of a schedule (its deliveries are in `deliveries`)."""

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("delivery_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.BigInteger, info={"doc": "The run it delivered (null: a test)."}),
    sa.Column("kind", sa.String, nullable=False, info={"allowed": DELIVERY_KINDS}),
    sa.Column("target", sa.String, nullable=False, info={"doc": "Address, URL or folder."}),
    sa.Column("status", sa.String, nullable=False, info={"allowed": DELIVERY_STATUSES}),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, info={"doc": "The last attempt's error, if it failed."}),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("sent_at", sa.DateTime),
)
"""Every delivery of a run to one destination, with its attempts and last error."""

# --- derived tables ----------------------------------------------------------------------
# Built from the data tables: customer_360 by `features.refresh` (rebuilt whole; an older
# layout is replaced, see `store.matches_declaration`), customer_clusters by the segmentation
# page (kept across 360 rebuilds), segment_sizes by `segments` (a row per save, refresh or
# export). `init` creates them with the rest; `features.ensure_tables` and
# `segments.ensure_tables` create them in a store that lacks them.
# Extra info keys of customer_360 fields (the segment builder reads them): ``choices`` (the
# values a text field takes), ``share`` (a 0-1 figure: shown and entered as percent, stored
# 0-1), ``few_values`` (offer its distinct values as choices, even for a personal field).


def _field(name: str, type_: sa.types.TypeEngine, doc: str, **info) -> sa.Column:
    return sa.Column(name, type_, info={"doc": doc, **info})


def _customer_field(name: str, **info) -> sa.Column:
    source = customers.c[name]
    return sa.Column(name, source.type, info={**source.info, **info})


customer_360 = sa.Table(
    "customer_360",
    metadata,
    # No primary key: on DuckDB its index doubled the rebuild time, and the rows arrive in
    # customer order, so zone maps find one customer. PostgreSQL gets an index (below).
    sa.Column("customer_id", sa.BigInteger, nullable=False, info={"holds_customer": True}),
    *[
        _customer_field(n, few_values=True) if n == "gender" else _customer_field(n)
        for n in (
            "country",
            "region",
            "city",
            "gender",
            "signup_at",
            "acquisition_channel",
            "loyalty_tier",
            "loyalty_points",
            "consent_email",
            "consent_sms",
            "erased_at",
        )
    ],
    _field(
        "first_order_at",
        sa.DateTime,
        "First completed order (UTC).",
        label="First order",
        kind="date",
    ),
    _field(
        "last_order_at", sa.DateTime, "Last completed order (UTC).", label="Last order", kind="date"
    ),
    _field(
        "recency_days",
        sa.Integer,
        "Days from the last completed order to the as-of date.",
        label="Days since last order",
    ),
    _field("frequency", sa.Integer, "Completed orders, all history.", label="Orders (all time)"),
    _field("monetary", Money, "Revenue from completed orders, all history.", label="Total spend"),
    _field(
        "avg_order_value",
        Money,
        "Monetary value divided by frequency.",
        label="Average order value",
    ),
    _field("orders_90d", sa.Integer, "Completed orders in the 90 days up to the as-of date."),
    _field("revenue_90d", Money, "Revenue in the 90 days up to the as-of date."),
    _field(
        "tenure_days",
        sa.Integer,
        "Days from sign-up to the as-of date.",
        label="Days since sign-up",
    ),
    _field("r_score", sa.Integer, "Recency score 1-5 (5 = most recent quintile)."),
    _field("f_score", sa.Integer, "Frequency score 1-5 (5 = most orders)."),
    _field("m_score", sa.Integer, "Monetary score 1-5 (5 = highest spend)."),
    _field("rfm_score", sa.String, "R, F and M scores as three digits, e.g. 545."),
    # choices: the RFM segment names, set by crm_core.features from the RFM rules (which
    # import this module, so they cannot be imported here).
    _field("rfm_segment", sa.String, "Named RFM segment.", label="RFM segment"),
    _field(
        "cluster",
        sa.Integer,
        "Cluster saved from the segmentation page's k-means.",
        few_values=True,
    ),
    _field("nps_latest", sa.Integer, "Latest NPS answer (0-10).", label="Latest NPS", kind="score"),
    _field(
        "csat_avg",
        sa.Double,
        "Average CSAT answer (1-5).",
        scale=2,
        label="Average CSAT",
        kind="score",
    ),
    _field("open_tickets", sa.Integer, "Support tickets not closed."),
    _field(
        "campaigns_received",
        sa.Integer,
        "Campaign messages sent to the customer.",
        label="Campaign messages",
    ),
    _field("campaign_opens", sa.Integer, "Campaign messages opened."),
    _field("campaign_clicks", sa.Integer, "Campaign messages clicked."),
    _field(
        "clv",
        sa.Double,
        "Predicted customer lifetime value (null until scoring runs).",
        scale=2,
        label="Predicted CLV",
        kind="money",
    ),
    _field(
        "p_alive",
        sa.Double,
        "The CLV model's probability that the customer is still a customer (null until scored).",
        share=True,
        label="P(alive)",
    ),
    _field(
        "churn_risk",
        sa.Double,
        "The churn model's probability of no purchase in the churn window (null until scored).",
        share=True,
        label="Churn risk",
    ),
    _field(
        "churn_band", sa.String, "Churn risk band: low, medium or high.", label="Churn risk band"
    ),
    _field(
        "p_purchase_7d",
        sa.Double,
        "The purchase model's chance of at least one purchase in the next 7 days.",
        share=True,
        label="P(purchase in 7 days)",
    ),
    _field(
        "p_purchase_30d",
        sa.Double,
        "The purchase model's chance of at least one purchase in the next 30 days.",
        share=True,
        label="P(purchase in 30 days)",
    ),
    _field(
        "p_purchase_90d",
        sa.Double,
        "The purchase model's chance of at least one purchase in the next 90 days.",
        share=True,
        label="P(purchase in 90 days)",
    ),
    _field(
        "next_purchase_from",
        sa.Date,
        "Expected next purchase, from: the day by which its chance reaches 25% (empty: not "
        "within two years).",
        label="Next purchase from",
    ),
    _field(
        "next_purchase_to",
        sa.Date,
        "Expected next purchase, to: the day by which its chance reaches 75% (empty: not "
        "likely within two years).",
        label="Next purchase by",
    ),
    _field(
        "next_best_product",
        sa.String,
        "The first product to offer the customer (its name; empty until `recommend --score` "
        "runs or when nothing fits): due again, or bought with what they bought.",
        label="Next best product",
    ),
    _field(
        "lead_score",
        sa.Double,
        "The lead model's chance that the customer's latest open lead is won, as of the last "
        "lead scoring (empty: the customer had no open lead then, or leads were never scored).",
        share=True,
        label="Lead score",
    ),
    _field("as_of", sa.Date, "The as-of date: day of the last completed order in the store."),
)
"""One row per customer; derived, rebuilt by `features.refresh`."""

sa.event.listen(
    customer_360,
    "after_create",
    sa.DDL(
        "CREATE UNIQUE INDEX ix_customer_360_customer_id ON customer_360 (customer_id)"
    ).execute_if(dialect="postgresql"),
)

# --- issue 16: review and merge (crm_core/merge.py) ---
# No column here declares references="customers.customer_id": a merge re-points every
# column that does, and its own history must keep the ids as they were.

MERGE_ROW_ACTIONS = ("update", "delete")
DUPLICATE_DECISIONS = ("not_same", "later")

merges = sa.Table(
    "merges",
    metadata,
    _key("merge_id", "Unique merge number."),
    _col(
        "kept_id",
        sa.BigInteger,
        "The customer kept (a customers.customer_id).",
        required=True,
        holds_customer=True,
    ),
    _col("merged_ids", sa.Text, "The customers merged into it, as a JSON list.", required=True),
    _col("reason", sa.Text, "Why they were merged, in words."),
    _col("merged_at", sa.DateTime, "When the merge was done (UTC).", required=True),
    _col("merged_by", sa.String, "Who merged.", required=True),
    _col("unmerged_at", sa.DateTime, "When it was undone (UTC); empty while in force."),
    _col("unmerged_by", sa.String, "Who undid it."),
    _col("moved", sa.Text, "Rows re-pointed to the kept customer per table, as JSON."),
)
"""Every merge of duplicate customers, and its unmerge (the audit of both)."""

merge_rows = sa.Table(
    "merge_rows",
    metadata,
    _key("merge_id", "The merge (merges.merge_id)."),
    _key("seq", "Order of the change within the merge (an unmerge undoes them backwards)."),
    _col("table_name", sa.String, "The table the row is in.", required=True),
    _col("action", sa.String, "What the merge did to the row.", allowed=MERGE_ROW_ACTIONS),
    _col("row_key", sa.Text, "The row's key before the merge, as JSON.", required=True),
    _col("new_key", sa.Text, "The row's key after the merge (updates), as JSON."),
    _col("row_data", sa.Text, "The whole row before the merge, as typed JSON.", required=True),
)
"""The before-image of every row a merge changed or deleted: an unmerge restores them."""

duplicate_decisions = sa.Table(
    "duplicate_decisions",
    metadata,
    _key("decision_id", "Unique decision number."),
    _col(
        "cluster_key",
        sa.String,
        "The cluster's customer ids, sorted, comma-separated.",
        required=True,
    ),
    _col(
        "decision",
        sa.String,
        "What the reviewer decided.",
        required=True,
        allowed=DUPLICATE_DECISIONS,
    ),
    _col("decided_by", sa.String, "Who decided.", required=True),
    _col("decided_at", sa.DateTime, "When (UTC).", required=True),
)
"""Review decisions on candidate duplicate clusters (the latest per cluster counts)."""

# --- issue 16: data quality (crm_core/quality.py) ---

quality_scores = sa.Table(
    "quality_scores",
    metadata,
    sa.Column(
        "recorded_at",
        sa.DateTime,
        primary_key=True,
        info={"doc": "When the quality was measured (UTC)."},
    ),
    sa.Column("table_name", sa.String, primary_key=True, info={"doc": "The data table measured."}),
    _col("batch_id", sa.BigInteger, "The latest import batch at that time (empty: none)."),
    _col("rows", sa.BigInteger, "Rows of the table then."),
    _col("score", sa.Double, "Quality score 0-100 (crm_core/quality.py).", required=True),
    _col("checks", sa.Text, "The figures of every check, as JSON."),
)
"""The trend of each data table's quality score: one row per table per measurement."""

# --- issue 16: duplicate detection (crm_core/dedupe.py, the demo's truth) ---
# Customer ids here are what they were when found (no references=...: a merge must not
# re-point the truth or a run's pairs).

planted_duplicates = sa.Table(
    "planted_duplicates",
    metadata,
    _key("customer_id", "The planted copy (a customers.customer_id).", holds_customer=True),
    _col(
        "duplicate_of",
        sa.BigInteger,
        "The original record of the same person (a customers.customer_id).",
        required=True,
        holds_customer=True,
    ),
    _col(
        "kind",
        sa.String,
        "What differs from the original, comma-separated (name_typo, email_case, "
        "email_tag, no_email, swapped_names, phone_format, moved_city).",
        required=True,
    ),
)
"""The demo's truth: which customers are planted copies of which (empty for real data)."""

duplicate_runs = sa.Table(
    "duplicate_runs",
    metadata,
    _key("run_id", "Unique run number."),
    _col("created_at", sa.DateTime, "When the run was made (UTC).", required=True),
    _col("created_by", sa.String, "Who ran it.", required=True),
    _col("threshold", sa.Double, "Match probability a pair needed to be kept.", required=True),
    _col("customers", sa.BigInteger, "Live customers compared.", required=True),
    _col("pairs", sa.BigInteger, "Pairs at or above the threshold.", required=True),
    _col("clusters", sa.BigInteger, "Clusters of two or more customers.", required=True),
    _col("seconds", sa.Double, "How long the run took."),
    _col("model", sa.Text, "The trained Splink model (settings and parameters), as JSON."),
)
"""Each run of duplicate detection (`dedupe.find_duplicates`)."""

duplicate_pairs = sa.Table(
    "duplicate_pairs",
    metadata,
    _key("run_id", "The run (duplicate_runs.run_id)."),
    _key("customer_id_l", "The pair's smaller customer id.", holds_customer=True),
    _key("customer_id_r", "The pair's larger customer id.", holds_customer=True),
    _col("match_probability", sa.Double, "Probability they are one person.", required=True),
    _col("match_weight", sa.Double, "Total match weight (log2 Bayes factor).", required=True),
    _col("cluster_id", sa.BigInteger, "The cluster (its smallest customer id).", required=True),
    _col(
        "comparisons",
        sa.Text,
        "Per comparison: its label, the level the pair reached and the weight it adds, as JSON.",
    ),
)
"""Likely duplicate pairs of each run, with why they match."""

customer_clusters = sa.Table(
    "customer_clusters",
    metadata,
    sa.Column(
        "customer_id",
        sa.BigInteger,
        primary_key=True,
        autoincrement=False,
        info={"holds_customer": True},
    ),
    sa.Column("cluster", sa.Integer, nullable=False),
    sa.Column("features", sa.Text, info={"doc": "JSON: features, k, random_state."}),
    sa.Column("saved_at", sa.DateTime, nullable=False),
)
"""Cluster assignments saved from the segmentation page (kept across 360 rebuilds)."""

segment_sizes = sa.Table(
    "segment_sizes",
    metadata,
    sa.Column("segment_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("measured_at", sa.DateTime, primary_key=True),
    sa.Column("customers", sa.BigInteger, nullable=False),
    sa.Column("revenue", sa.Double),
    sa.Column("as_of", sa.Date, info={"doc": "The 360 table's as-of date then."}),
)
"""Size of a segment version each time it is saved, refreshed or exported."""

# --- issue 17: privacy operations (crm_core/audit.py, consent.py, erasure.py, retention.py) --

AUDIT_ACTIONS = (
    "sign_in_failed",
    "locked_out",
    "user_added",
    "user_removed",
    "role_changed",
    "user_deactivated",
    "user_activated",
    "password_reset",
    "import",
    "import_undo",
    "export",
    "download",
    "merge",
    "unmerge",
    "access_request",
    "erasure",
    "consent_changed",
    "suppression_added",
    "suppression_removed",
    "retention_policy_changed",
    "retention_run",
    "store_compacted",
)
CONSENT_CHANNELS = ("email", "sms")
CONSENT_SOURCES = (
    "import",
    "import_undo",
    "preference",
    "unsubscribe_file",
    "erasure",
    "merge",
    "unmerge",
)
PRIVACY_REQUEST_KINDS = ("access", "erasure")
RETENTION_ACTIONS = ("delete", "anonymise")

audit_log = sa.Table(
    "audit_log",
    metadata,
    _key("seq", "Position in the log (1, 2, 3, ... without gaps)."),
    sa.Column(  # quoted: AT is a keyword in DuckDB (AT TIME ZONE)
        "at", sa.DateTime, nullable=False, quote=True, info={"doc": "When it happened (UTC)."}
    ),
    _col("actor", sa.String, "Who did it (a username; empty for the system or the CLI)."),
    _col("action", sa.String, "What was done.", required=True, allowed=AUDIT_ACTIONS),
    _col("target", sa.String, "What it was done to, in words (customer 42, user bob, ...)."),
    _col("details", sa.Text, "Figures of the action as JSON (ids and counts, never PII)."),
    _col(
        "prev_hash", sa.String, "row_hash of the previous row (empty for the first).", required=True
    ),
    _col(
        "row_hash",
        sa.String,
        "SHA-256 of prev_hash and this row's fields: editing or deleting a row breaks it.",
        required=True,
    ),
)
"""Every sensitive action, append-only, each row chained to the previous by a hash."""

export_members = sa.Table(
    "export_members",
    metadata,
    _key("export_id", "The export (audit_log export details' export_id)."),
    _key("customer_id", "A customer whose row the file held.", holds_customer=True),
)
"""Who was in each exported file: an erasure lists the exports that held the person."""

consent_changes = sa.Table(
    "consent_changes",
    metadata,
    _key("change_id", "Unique change number."),
    _col("customer_id", sa.BigInteger, "The customer.", required=True, holds_customer=True),
    _col("changed_at", sa.DateTime, "When (UTC).", required=True),
    _col("channel", sa.String, "email or sms.", required=True, allowed=CONSENT_CHANNELS),
    _col("old_value", sa.Boolean, "Consent before (empty: unknown)."),
    _col("new_value", sa.Boolean, "Consent after (empty: unknown)."),
    _col("source", sa.String, "What changed it.", required=True, allowed=CONSENT_SOURCES),
    _col("changed_by", sa.String, "Who (a username; empty for the system)."),
    _col("batch_id", sa.BigInteger, "The import batch, for imports and their undo."),
)
"""Every change of a customer's consent, with its source: the profile shows it."""

privacy_requests = sa.Table(
    "privacy_requests",
    metadata,
    _key("request_id", "Unique request number."),
    _col("kind", sa.String, "access or erasure.", required=True, allowed=PRIVACY_REQUEST_KINDS),
    _col("customer_id", sa.BigInteger, "The person.", required=True, holds_customer=True),
    _col("requested_by", sa.String, "Who carried it out.", required=True),
    _col("requested_at", sa.DateTime, "When (UTC).", required=True),
    _col("file_sha256", sa.String, "SHA-256 of the access archive handed over."),
    _col("proof", sa.Text, "Erasure: the scan of every table and column, as JSON."),
    _col("exports", sa.Text, "Erasure: earlier exports that held the person, as JSON."),
)
"""Access requests and erasures carried out, with the erasure's proof."""

retention_policies = sa.Table(
    "retention_policies",
    metadata,
    sa.Column("table_name", sa.String, primary_key=True, info={"doc": "The data table."}),
    _col("date_column", sa.String, "The column whose age counts.", required=True),
    _col("age_months", sa.Integer, "Rows older than this many months go.", required=True, min=1),
    _col("action", sa.String, "delete or anonymise.", required=True, allowed=RETENTION_ACTIONS),
    _col("columns", sa.Text, "anonymise: the columns cleared, as a JSON list."),
    _col("updated_by", sa.String, "Who set it."),
    _col("updated_at", sa.DateTime, "When (UTC)."),
)
"""How long each table keeps its rows (see crm_core/retention.py)."""

# --- issue 18: lead scoring (crm_core/analytics/lead_scoring.py) ---

LEAD_ACTIVITY_KINDS = ("email_open", "email_click", "page_view", "meeting", "call")

lead_activities = sa.Table(
    "lead_activities",
    metadata,
    _key("activity_id", "Unique activity number."),
    _col(
        "lead_id",
        sa.BigInteger,
        "The lead (leads.lead_id).",
        required=True,
        references="leads.lead_id",
    ),
    _col("occurred_at", sa.DateTime, "When it happened (UTC).", required=True),
    _col(
        "kind",
        sa.String,
        "What happened: the lead opened or clicked an e-mail, viewed a page; sales met or "
        "called them.",
        required=True,
        allowed=LEAD_ACTIVITY_KINDS,
    ),
)
"""Engagement of each lead over time (lead scoring computes it as of any date)."""

lead_stage_changes = sa.Table(
    "lead_stage_changes",
    metadata,
    _key("change_id", "Unique stage-change number."),
    _col(
        "lead_id",
        sa.BigInteger,
        "The lead (leads.lead_id).",
        required=True,
        references="leads.lead_id",
    ),
    _col("changed_at", sa.DateTime, "When the lead entered the stage (UTC).", required=True),
    _col("stage", sa.String, "The stage it entered.", required=True, allowed=LEAD_STAGES),
)
"""Each lead's stage history (its stage and time in stage as of any date); a lead starts in
`lead` at its created_at."""

lead_scores = sa.Table(
    "lead_scores",
    metadata,
    sa.Column("lead_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column(
        "customer_id",
        sa.BigInteger,
        info={"holds_customer": True, "doc": "The lead's customer when scored, if any."},
    ),
    sa.Column("created_at", sa.DateTime, info={"doc": "When the lead was created (UTC)."}),
    sa.Column(
        "win_probability",
        sa.Float,
        info={
            "doc": "The lead model's chance that the open lead is won within its window.",
            "label": "Win probability",
            "share": True,
        },
    ),
    sa.Column(
        "lead_score_reasons",
        sa.String,
        info={
            "doc": "What raises the lead's chance most, in words (from the model).",
            "label": "Why (from the model)",
        },
    ),
    sa.Column("model_version", sa.String),
    sa.Column("scored_at", sa.DateTime),
)
"""The open leads' scores of the latest lead-scoring run (all rows replaced at once)."""

# --- issue 18: recommendations (crm_core/analytics/recommend.py) ---

RECOMMEND_METHODS = ("replenishment", "cross_sell")

customer_recommendations = sa.Table(
    "customer_recommendations",
    metadata,
    _key("customer_id", "The customer.", holds_customer=True),
    _key("rank", "1 = the first product to offer."),
    _col("product_id", sa.BigInteger, "The product to offer (products.product_id).", required=True),
    _col(
        "method",
        sa.String,
        "replenishment (due again) or cross_sell (bought with their products).",
        required=True,
        allowed=RECOMMEND_METHODS,
    ),
    _col(
        "score",
        sa.Double,
        "Ranks the offers, 0-1, higher first: a rule's confidence halved per order since its "
        "antecedent, or (n - 1) / n for a consumable bought on n days; not a chance of buying.",
    ),
    _col("reason", sa.String, "Why, in words.", label="Why"),
    _col("scored_at", sa.DateTime, "When they were computed (UTC).", required=True),
)
"""The top products to offer each customer, with the reason (`recommend --score`)."""

# --- import bookkeeping ------------------------------------------------------------------

EXTERNAL_ENTITIES = ("customers", "orders", "products")

external_ids = sa.Table(
    "external_ids",
    metadata,
    sa.Column(
        "source",
        sa.String,
        primary_key=True,
        info={"doc": "Where the id comes from (a mapping's source, e.g. shopify)."},
    ),
    sa.Column(
        "entity",
        sa.String,
        primary_key=True,
        info={"doc": "What the id names.", "allowed": EXTERNAL_ENTITIES},
    ),
    sa.Column(
        "external_id",
        sa.String,
        primary_key=True,
        info={"doc": "The id as the platform writes it (e-mails lower-cased)."},
    ),
    sa.Column(
        "internal_id",
        sa.BigInteger,
        nullable=False,
        info={"doc": "Our key for it (customers.customer_id, orders.order_id, ...)."},
    ),
)

import_batches = sa.Table(
    "import_batches",
    metadata,
    sa.Column("batch_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("imported_by", sa.String, info={"doc": "Who imported (app user or CLI)."}),
    sa.Column("imported_at", sa.DateTime, nullable=False),
    sa.Column("file_name", sa.String, nullable=False),
    sa.Column("file_sha256", sa.String),
    sa.Column("mapping", sa.Text, info={"doc": "The mapping used, as JSON (empty: none)."}),
    sa.Column("mode", sa.String, nullable=False, info={"doc": "append or upsert."}),
    sa.Column("on_error", sa.String, info={"doc": "stop (all or nothing) or skip (partial)."}),
    sa.Column("rows", sa.Text, info={"doc": "Rows written per table, as JSON."}),
    sa.Column("rejected_rows", sa.BigInteger, info={"doc": "Rows left out (partial mode)."}),
    sa.Column("undone_at", sa.DateTime),
    sa.Column("undone_by", sa.String),
)

BATCH_COLUMN = "import_batch_id"
"""Bookkeeping column of every table an import writes: the import batch that last wrote the
row (empty: written otherwise, e.g. the demo or the app). Not importable, not documented as
a column of the table (``info["bookkeeping"]``)."""

LOADED_TABLES = (
    "customers",
    "campaigns",
    "products",
    "orders",
    "order_items",
    "events",
    "campaign_contacts",
    "survey_responses",
    "support_tickets",
    "leads",
    "lead_activities",
    "lead_stage_changes",
    "suppressions",
    "external_ids",
)
"""Tables an import writes (IMPORTABLE_TABLES and external_ids), in load order."""


def replaced_table_name(name: str) -> str:
    """The shadow table holding the rows of `name` an import replaced (upsert), for undo."""
    return f"import_replaced_{name}"


def _shadow_info(loaded: sa.Table, col: sa.Column) -> dict[str, object]:
    """A shadow table's column holds a customer where the loaded table's does."""
    holds = col.info.get("references") == "customers.customer_id" or (
        loaded.name == "customers" and col.name == "customer_id"
    )
    return (
        {"holds_customer": True, "pii": col.info.get("pii", False)}
        if holds
        else {"pii": col.info.get("pii", False)}
    )


def _declare_import_bookkeeping() -> None:
    """Add the batch column to every loaded table, and declare its shadow table: the rows an
    upsert replaced, as they were, with the batch that replaced them (undo restores them)."""
    for name in LOADED_TABLES:
        loaded = metadata.tables[name]
        loaded.append_column(
            sa.Column(
                BATCH_COLUMN,
                sa.BigInteger,
                info={"doc": "Import batch that last wrote the row.", "bookkeeping": True},
            )
        )
        sa.Table(
            replaced_table_name(name),
            metadata,
            sa.Column("batch_id", sa.BigInteger, nullable=False),
            *[
                sa.Column(col.name, col.type, info=_shadow_info(loaded, col))
                for col in loaded.columns
            ],
            info={"doc": f"Rows of {name} an import replaced, as they were (for undo)."},
        )


_declare_import_bookkeeping()

import_mappings = sa.Table(
    "import_mappings",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("table_name", sa.String, nullable=False, info={"doc": "The table it imports."}),
    sa.Column("definition", sa.Text, nullable=False, info={"doc": "The mapping as JSON."}),
    sa.Column("created_by", sa.String),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

schema_meta = sa.Table(
    "schema_meta",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)

DATA_TABLES = (
    "customers",
    "campaigns",
    "products",
    "orders",
    "order_items",
    "events",
    "campaign_contacts",
    "survey_responses",
    "support_tickets",
    "leads",
    "lead_activities",
    "lead_stage_changes",
)
"""Tables a user imports, in load order (referenced tables first)."""

IMPORTABLE_TABLES = DATA_TABLES + ("suppressions",)


def table(name: str) -> sa.Table:
    """The declared table called `name` (KeyError if there is none)."""
    return metadata.tables[name]


def primary_key(name: str) -> list[str]:
    """Names of the primary-key columns of table `name`."""
    return [c.name for c in table(name).primary_key.columns]


def customer_key_columns() -> list[tuple[sa.Table, sa.Column]]:
    """Every (table, column) that holds a customer id: customers' key, the columns declared
    as references to it, and those declared ``holds_customer`` (derived and history tables).

    Access requests and erasures find a person's rows through this list, so a new table is
    covered by declaring its column, not by editing a list elsewhere. `external_ids` holds
    customer ids in `internal_id` only where `entity` is "customers" (see its callers).
    """
    found = [(customers, customers.c.customer_id)]
    for tbl in metadata.sorted_tables:
        for col in tbl.columns:
            if col.info.get("references") == "customers.customer_id" or col.info.get(
                "holds_customer"
            ):
                found.append((tbl, col))
    return found


def pii_columns(name: str) -> list[str]:
    """Columns of `name` that hold personal data."""
    return [c.name for c in table(name).columns if c.info.get("pii")]


def column_docs(name: str) -> list[dict[str, object]]:
    """What an import file for table `name` may hold: column, type, required, rules, meaning."""
    docs = []
    for col in table(name).columns:
        if col.info.get("bookkeeping"):
            continue
        rules = []
        if col.info.get("allowed"):
            rules.append("one of " + ", ".join(col.info["allowed"]))
        if col.info.get("min") is not None:
            rules.append(f">= {col.info['min']}")
        if col.info.get("references"):
            rules.append(f"must exist in {col.info['references']}")
        if col.primary_key:
            rules.append("unique key")
        docs.append(
            {
                "column": col.name,
                "type": col.type.python_type.__name__,
                "required": col.primary_key or not col.nullable,
                "rules": "; ".join(rules),
                "meaning": col.info.get("doc", ""),
            }
        )
    return docs

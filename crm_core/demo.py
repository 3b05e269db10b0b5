"""Deterministic synthetic demo store whose data tells true stories.

Everything is generated with vectorised numpy from one ``np.random.default_rng(seed)``:

- customers sign up over ~3 years (growing), in six countries, through seven channels;
- orders follow BG/NBD (purchase rate ``lambda ~ Gamma(r, alpha)``, dropout after each repeat
  purchase with ``p ~ Beta(a, b)``) in a seasonal "operational" time, so that lifetimes'
  BetaGeoFitter recovers sensible parameters; order values follow Gamma-Gamma;
- customers who drop out drift before they leave: lower NPS/CSAT with negative comments, more
  (and more urgent, less resolved) support tickets, more refunds, fewer e-mail opens/clicks
  and web visits;
- e-mail/SMS campaigns hold out a random 10% control group and have a real uplift
  (extra orders by treated customers, tagged with the campaign);
- orders have lines from a fixed catalogue (`catalogue()`: categories, three price levels)
  that add up to the order exactly, with items bought together (declared complements) and
  consumables bought again on a cycle (drawn from a generator of their own);
- web/app sessions form a visit -> product_view -> add_to_cart -> checkout -> purchase funnel;
- one planted checkout outage (`PLANTED_DROP`: 60% of a week's purchases cancelled) is the
  true anomaly alert rules are tested on;
- planted duplicate customers (`DUPLICATE_SHARE`, 3% of people sign up again, a tenth of
  them a third time; a random stream of its own, so every other number stays the same): each
  copy gets the next customer ids, signs up later and differs in one or two ways
  (`DUPLICATE_KINDS`: a typo in the first or last name, the e-mail in another case or with a
  +tag, first and last name swapped, the phone written nationally or with the 00 exit code,
  a moved city; a copy with no e-mail kind has no e-mail, `no_email`); about half of the
  person's later orders, web/app sessions, tickets and surveys go to the copy (RFM and CLV
  are split, as in real life), and a third of the copies opted out of e-mail or SMS where
  the original did not. The truth is the `planted_duplicates` table (customer_id,
  duplicate_of, kind). Gmail dots and +tags are not planted: demo addresses stay on
  reserved domains (a +tag on them is another mailbox, `email_tag`);
- planted data-quality problems for the quality view: a few e-mails that are not addresses
  ("anna.weber12 at example.com", "anna.weber12@example") and a few birth dates a century
  in the future (a mistyped year), `max(2, customers // 5000)` of each, never on a planted
  duplicate.

The true parameters are in ``BGNBD_PARAMS`` and ``GAMMA_GAMMA_PARAMS``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
from scipy import special

from crm_core import schema
from crm_core.store import Store

DEMO_END: date = date(2026, 6, 30)
"""Last day of demo history; the history covers about three years before it."""

HISTORY_YEARS = 3

BGNBD_PARAMS = {"r": 0.6, "alpha": 10.0, "a": 1.0, "b": 10.0}
"""True BG/NBD parameters (rates per day) of the repeat-purchase process."""

GAMMA_GAMMA_PARAMS = {"p": 6.0, "q": 4.0, "v": 40.0}
"""True Gamma-Gamma parameters of order values (mean order value p * v / (q - 1) = 80)."""

BUYER_SHARE = 0.96
"""Customers who place a first order; the others signed up and never bought."""

PLANTED_DROP: tuple[date, date] = (date(2026, 4, 13), date(2026, 4, 19))
"""A planted checkout outage (Monday to Sunday, both days included): in that week
`PLANTED_DROP_SHARE` of the purchases fail and are recorded as cancelled, so completed orders
and revenue fall by about 60%. It is the one true anomaly of the demo's order history (the
November/December peaks are its normal seasonality); alert backtests are tested on it."""

PLANTED_DROP_SHARE = 0.6
"""Share of the outage week's purchases that failed (status cancelled)."""

Progress = Callable[[float, str], None]

# --- reference data ------------------------------------------------------------------------

_SECOND = 1.0 / 86_400.0
_KEY_SHIFT = 28  # seconds since start fit in 28 bits (8.5 years)

_COUNTRIES = ("US", "GB", "DE", "FR", "NL", "ES")
_COUNTRY_SHARE = (0.34, 0.19, 0.15, 0.12, 0.08, 0.12)
_PLACES = {
    "US": [
        ("California", "Los Angeles"),
        ("New York", "New York"),
        ("Illinois", "Chicago"),
        ("Texas", "Houston"),
        ("California", "San Francisco"),
        ("Washington", "Seattle"),
        ("Massachusetts", "Boston"),
        ("Texas", "Austin"),
        ("Florida", "Miami"),
        ("Georgia", "Atlanta"),
    ],
    "GB": [
        ("England", "London"),
        ("England", "Manchester"),
        ("England", "Birmingham"),
        ("Scotland", "Glasgow"),
        ("Scotland", "Edinburgh"),
        ("England", "Bristol"),
        ("Wales", "Cardiff"),
        ("Northern Ireland", "Belfast"),
    ],
    "DE": [
        ("Berlin", "Berlin"),
        ("Hamburg", "Hamburg"),
        ("Bavaria", "Munich"),
        ("North Rhine-Westphalia", "Cologne"),
        ("Hesse", "Frankfurt"),
        ("Baden-Württemberg", "Stuttgart"),
        ("North Rhine-Westphalia", "Düsseldorf"),
    ],
    "FR": [
        ("Île-de-France", "Paris"),
        ("Provence-Alpes-Côte d'Azur", "Marseille"),
        ("Auvergne-Rhône-Alpes", "Lyon"),
        ("Occitanie", "Toulouse"),
        ("Nouvelle-Aquitaine", "Bordeaux"),
        ("Hauts-de-France", "Lille"),
    ],
    "NL": [
        ("North Holland", "Amsterdam"),
        ("South Holland", "Rotterdam"),
        ("South Holland", "The Hague"),
        ("Utrecht", "Utrecht"),
        ("North Brabant", "Eindhoven"),
    ],
    "ES": [
        ("Community of Madrid", "Madrid"),
        ("Catalonia", "Barcelona"),
        ("Valencian Community", "Valencia"),
        ("Andalusia", "Seville"),
        ("Andalusia", "Malaga"),
        ("Basque Country", "Bilbao"),
    ],
}
_PHONES = {
    "US": ("+1 212", "23456789", 7),
    "GB": ("+44 20", "378", 8),
    "DE": ("+49 151", "0123456789", 8),
    "FR": ("+33 6", "01245678", 8),
    "NL": ("+31 6", "12345", 8),
    "ES": ("+34 6", "0123456789", 8),
}
"""Phone numbers per country: country code and area, the digits a number may start with
after it, and its length after the area; every number made this way is a valid number of
its country (phonenumbers), as real customers' numbers mostly are."""
# (female first names, male first names, last names) per country; ASCII so e-mails derive.
_NAMES = {
    "US": (
        "Emma Olivia Ava Sophia Mia Emily Abigail Madison Harper Grace Chloe Ella",
        "Liam Noah James Ethan Mason Logan Lucas Jacob Michael Daniel Henry Jack",
        "Smith Johnson Williams Brown Jones Miller Davis Garcia Wilson Anderson Taylor Thomas "
        "Moore Martin Jackson Lee",
    ),
    "GB": (
        "Olivia Amelia Isla Ava Emily Poppy Sophie Jessica Lily Evie Ruby Freya",
        "Oliver George Harry Jack Charlie Thomas Oscar William James Alfie Leo Archie",
        "Smith Jones Taylor Brown Williams Wilson Johnson Davies Evans Wright Walker Roberts "
        "Thompson Hughes Edwards Green",
    ),
    "DE": (
        "Anna Lena Sophie Marie Laura Julia Lea Hannah Lisa Katharina Sarah Johanna",
        "Lukas Leon Finn Jonas Paul Felix Maximilian Elias Noah Jan Tim Niklas",
        "Schmidt Schneider Fischer Weber Wagner Becker Hoffmann Schulz Koch Richter Klein Wolf "
        "Neumann Schwarz Zimmermann Braun",
    ),
    "FR": (
        "Emma Louise Chloe Camille Lea Manon Ines Jade Sarah Julie Alice Clara",
        "Lucas Hugo Louis Gabriel Arthur Jules Nathan Adam Raphael Paul Theo Antoine",
        "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent "
        "Lefebvre Michel Garnier Fournier",
    ),
    "NL": (
        "Emma Julia Sophie Tess Sara Anna Fenna Lotte Noor Eva Sanne Lisa",
        "Daan Sem Lucas Levi Finn Milan Bram Thijs Jesse Ruben Luuk Sven",
        "de Jong Jansen de Vries van den Berg van Dijk Bakker Visser Smit Meijer de Boer Mulder "
        "de Groot Bos Vos Peters Hendriks",
    ),
    "ES": (
        "Lucia Maria Paula Sofia Martina Julia Daniela Carmen Laura Sara Elena Alba",
        "Hugo Daniel Pablo Alejandro Lucas Alvaro Adrian Mario Diego Javier Sergio Carlos",
        "Garcia Rodriguez Gonzalez Fernandez Lopez Martinez Sanchez Perez Gomez Martin Jimenez "
        "Ruiz Hernandez Diaz Moreno Alvarez",
    ),
}
_NL_LAST = (
    "de Jong|Jansen|de Vries|van den Berg|van Dijk|Bakker|Visser|Smit|Meijer|de Boer|Mulder|"
    "de Groot|Bos|Vos|Peters|Hendriks"
)
# Reserved domains (RFC 2606 / 6761): demo addresses can never reach a real inbox.
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "inbox.example")
_GENDERS = ("female", "male", "non_binary")
_ACQ_CHANNELS = (
    "organic_search",
    "paid_search",
    "paid_social",
    "email",
    "referral",
    "affiliate",
    "direct",
)
_ACQ_SHARE = (0.27, 0.18, 0.15, 0.07, 0.12, 0.06, 0.15)
_TIERS = ("bronze", "silver", "gold", "platinum")
_TIER_SPEND_12M = (400.0, 1200.0, 3000.0)
_CATEGORIES = (
    "apparel",
    "footwear",
    "accessories",
    "beauty",
    "home",
    "electronics",
    "sports",
    "kids",
)
_CATEGORY_SHARE = (0.24, 0.13, 0.12, 0.11, 0.12, 0.08, 0.12, 0.08)
_ORDER_CHANNELS = schema.ORDER_CHANNELS  # web, store, app
_ORDER_STATUSES = schema.ORDER_STATUSES  # completed, refunded, cancelled
_MONTH_FACTOR = (0.85, 0.88, 1.0, 1.0, 1.02, 0.95, 0.8, 0.82, 1.0, 1.05, 1.4, 1.65)
_WEEKDAY_FACTOR = (0.95, 0.97, 0.98, 1.0, 1.03, 1.05, 1.02)  # Monday first
_HOUR_WEIGHT = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.2, 3.2, 3.8, 4.2, 4.8, 5.4, 5.2, 4.6, 4.4, 4.6, 5.0]
    + [5.8, 6.6, 7.0, 6.2, 4.2, 2.2]
)
_CAMPAIGN_CALENDAR = (
    # month, day, theme, channel, objective, days
    (1, 8, "New Year Winback", "email", "winback", 21),
    (3, 1, "Spring Search", "paid_search", "acquisition", 45),
    (3, 12, "Spring Sale", "email", "promotion", 14),
    (5, 14, "Loyalty Rewards", "sms", "retention", 14),
    (6, 10, "Summer Social", "paid_social", "acquisition", 60),
    (7, 1, "Summer Sale", "email", "promotion", 21),
    (9, 4, "Back to School", "email", "promotion", 14),
    (10, 8, "We Miss You", "email", "winback", 21),
    (11, 1, "Holiday Search", "paid_search", "acquisition", 60),
    (11, 21, "Black Friday", "email", "promotion", 14),
    (11, 22, "Black Friday", "sms", "promotion", 12),
    (12, 3, "Christmas Gifts", "paid_social", "acquisition", 21),
    # A monthly newsletter keeps e-mails, opens and clicks going up to the last day, so the
    # churn model sees the same kind of e-mail activity at scoring as in training.
    *((month, 18, "Newsletter", "email", "newsletter", 10) for month in range(1, 13)),
)
_CONTACT_RATE = {"promotion": 0.45, "winback": 0.7, "retention": 0.35, "newsletter": 0.5}
_CREATIVE_COST = {"email": 600.0, "sms": 300.0, "newsletter": 150.0}
"""Fixed cost of a campaign's creative and tooling (paid campaigns pay per day instead)."""
_TICKET_CHANNELS = ("email", "chat", "phone")
_TICKET_CATEGORIES = ("delivery", "returns", "product", "billing", "account", "payment")
_TOUCHPOINTS = ("post_purchase", "support", "onboarding")
_LEAD_SOURCES = ("webinar", "content", "paid_search", "referral", "trade_show", "partner")
_LEAD_SOURCE_SHARE = (0.18, 0.27, 0.2, 0.15, 0.1, 0.1)
_LEAD_SOURCE_LIFT = (0.3, -0.4, -0.8, 1.0, 0.0, 0.6)
"""How each source shifts a lead's log-odds of advancing and of being won."""
_LEAD_ACTIVITY_RATE = {
    "email_open": 0.15,
    "email_click": 0.05,
    "page_view": 0.12,
    "meeting": 0.04,
    "call": 0.06,
}
"""Activities per day of an engaged lead of average interest (x exp(0.8 interest))."""
LEADS_MIN = 3_000
LEADS_PER_CUSTOMER = 0.2
"""The demo has this many leads per customer, at least LEADS_MIN."""
LEADS_FROM_CUSTOMERS = 0.15
"""Share of leads that come from an existing customer (an upsell: customer_id from the start)."""
_COMMENT_PHRASES = {
    # (sentiment, support touchpoint?) -> phrases; detractor and promoter words differ.
    ("neg", False): (
        "late delivery",
        "item arrived damaged",
        "wrong size sent",
        "poor quality",
        "too expensive",
        "refund took too long",
        "checkout kept failing",
        "missing items in my parcel",
    ),
    ("neg", True): (
        "rude support",
        "nobody answered my emails",
        "problem still not solved",
        "waited too long on hold",
        "had to explain everything twice",
    ),
    ("neu", False): (
        "delivery was okay",
        "average quality",
        "prices could be lower",
        "fine but nothing special",
        "app could be faster",
    ),
    ("neu", True): ("support was okay", "took a while but got solved", "answer was fine"),
    ("pos", False): (
        "great quality",
        "fast shipping",
        "easy returns",
        "love the app",
        "great value for money",
        "perfect fit",
    ),
    ("pos", True): ("friendly support", "solved on the first call", "quick and helpful answer"),
}


# --- small vectorised helpers ---------------------------------------------------------------


def _offsets(counts: np.ndarray) -> np.ndarray:
    """Start index of each group in a flat array of groups with `counts` rows."""
    return np.cumsum(counts) - counts


def _group_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each group (groups contiguous, sizes `counts`)."""
    total = np.cumsum(values)
    before = np.concatenate([[0.0], total])[_offsets(counts)]
    return total - np.repeat(before, counts)


def _pick(rng: np.random.Generator, n: int, shares) -> np.ndarray:
    """`n` category codes drawn with the given shares (normalised)."""
    p = np.asarray(shares, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum()).astype(np.int16)


def _cat(codes: np.ndarray, categories) -> pd.Categorical:
    """Categorical from int codes (-1 = missing)."""
    return pd.Categorical.from_codes(np.asarray(codes), categories=list(categories))


def _nullable_int(values: np.ndarray) -> pd.arrays.IntegerArray:
    """Int64 array with values < 0 as missing."""
    values = np.array(values, dtype=np.int64)  # a copy we own
    return pd.arrays.IntegerArray(values, values < 0)


def _dedupe(texts: list[str], codes: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Unique categories for `texts` and `codes` (-1 kept) remapped onto them."""
    uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    codes = np.asarray(codes)
    return [str(x) for x in uniq], np.where(codes >= 0, inverse[np.maximum(codes, 0)], -1)


def _pad(numbers: np.ndarray, width: int) -> pd.Series:
    """Zero-padded decimal strings."""
    return pd.Series(numbers, dtype=np.int64).astype("str").str.zfill(width)


def _phone_numbers(ids: np.ndarray, country: np.ndarray) -> pd.Series:
    """A valid phone number per customer ("+49 151 2345 6789"), unique within its country:
    ids through a bijection of 0..size-1 (7919 is prime, so coprime to every size, which
    has no factors but 2 and 5 and the count of allowed first digits, 3, 5 or 8)."""
    phone = pd.Series(pd.NA, index=range(len(ids)), dtype="string")
    for code, (prefix, starts, length) in _PHONES.items():
        mine = country == _COUNTRIES.index(code)
        free = 10 ** (length - 1)
        number = (ids[mine] * 7_919 + 13_579_246) % (len(starts) * free)
        lead = pd.Series(np.asarray(list(starts), dtype=object)[number // free], dtype="str")
        rest = (lead + _pad(number % free, length - 1)).to_numpy(dtype=object)
        cut = length - 4
        grouped = [f"{prefix} {r[:cut]} {r[cut:]}" for r in rest]
        phone[np.flatnonzero(mine)] = grouped
    return phone.astype("object")


# --- the product catalogue ------------------------------------------------------------------

# Product types per order category: (name, price of the cheapest level, re-bought every N
# weeks by a customer who uses it up (0: not a consumable)). Every type comes in three price
# levels (`_PRICE_LEVELS`), so the catalogue has 3 x 112 = 336 products.
_PRODUCT_TYPES: dict[str, tuple[tuple[str, float, int], ...]] = {
    "apparel": (
        ("T-shirt", 9, 0),
        ("Socks", 6, 0),
        ("Jeans", 25, 0),
        ("Hoodie", 22, 0),
        ("Dress", 24, 0),
        ("Shirt", 18, 0),
        ("Sweater", 20, 0),
        ("Jacket", 45, 0),
        ("Coat", 60, 0),
        ("Leggings", 14, 0),
        ("Shorts", 14, 0),
        ("Skirt", 18, 0),
        ("Pyjamas", 16, 0),
        ("Underwear", 10, 0),
    ),
    "footwear": (
        ("Sneakers", 35, 0),
        ("Running shoes", 45, 0),
        ("Boots", 50, 0),
        ("Sandals", 18, 0),
        ("Loafers", 40, 0),
        ("Slippers", 12, 0),
        ("Heels", 35, 0),
        ("Hiking boots", 55, 0),
        ("Shoe care spray", 5, 0),
        ("Insoles", 8, 0),
        ("Shoelaces", 3, 0),
        ("Flip-flops", 8, 0),
        ("Ankle boots", 45, 0),
        ("Trainers", 30, 0),
    ),
    "accessories": (
        ("Belt", 12, 0),
        ("Wallet", 15, 0),
        ("Sunglasses", 18, 0),
        ("Watch", 40, 0),
        ("Backpack", 30, 0),
        ("Handbag", 35, 0),
        ("Scarf", 12, 0),
        ("Cap", 10, 0),
        ("Umbrella", 12, 0),
        ("Earrings", 12, 0),
        ("Necklace", 18, 0),
        ("Gloves", 10, 0),
        ("Phone case", 9, 0),
        ("Contact lens solution", 6, 6),
    ),
    "beauty": (
        ("Shampoo", 5, 6),
        ("Conditioner", 5, 0),
        ("Face cream", 12, 8),
        ("Cleanser", 8, 0),
        ("Lipstick", 9, 0),
        ("Mascara", 9, 0),
        ("Perfume", 30, 0),
        ("Body lotion", 7, 5),
        ("Razor blades", 8, 4),
        ("Sunscreen", 9, 0),
        ("Hair dryer", 25, 0),
        ("Hair brush", 7, 0),
        ("Nail polish", 5, 0),
        ("Serum", 15, 0),
    ),
    "home": (
        ("Coffee pods", 8, 4),
        ("Dish soap", 3, 0),
        ("Laundry detergent", 8, 6),
        ("Bed sheets", 25, 0),
        ("Pillowcases", 10, 0),
        ("Towel set", 18, 0),
        ("Candle", 8, 0),
        ("Mug", 6, 0),
        ("Cookware set", 50, 0),
        ("Coffee machine", 60, 0),
        ("Water filter", 10, 8),
        ("Lamp", 25, 0),
        ("Cushion", 12, 0),
        ("Vase", 14, 0),
    ),
    "electronics": (
        ("Smartphone", 180, 0),
        ("Laptop", 400, 0),
        ("Headphones", 30, 0),
        ("Phone charger", 12, 0),
        ("USB cable", 6, 0),
        ("Laptop sleeve", 15, 0),
        ("Tablet", 150, 0),
        ("Smartwatch", 90, 0),
        ("Bluetooth speaker", 35, 0),
        ("Camera", 250, 0),
        ("Memory card", 12, 0),
        ("Printer ink", 18, 10),
        ("AA batteries", 5, 12),
        ("Screen protector", 7, 0),
    ),
    "sports": (
        ("Running shorts", 15, 0),
        ("Yoga mat", 18, 0),
        ("Yoga blocks", 9, 0),
        ("Dumbbells", 25, 0),
        ("Protein powder", 20, 5),
        ("Energy gels", 12, 4),
        ("Water bottle", 8, 0),
        ("Tennis racket", 40, 0),
        ("Tennis balls", 5, 0),
        ("Football", 15, 0),
        ("Bike helmet", 30, 0),
        ("Fitness tracker", 45, 0),
        ("Resistance bands", 10, 0),
        ("Gym bag", 20, 0),
    ),
    "kids": (
        ("Diapers", 24, 4),
        ("Baby wipes", 4, 4),
        ("Toy train", 20, 0),
        ("Toy tracks", 9, 0),
        ("Building blocks", 25, 0),
        ("Plush toy", 10, 0),
        ("Picture book", 7, 0),
        ("Kids' sneakers", 22, 0),
        ("Baby bodysuit", 9, 0),
        ("Stroller", 150, 0),
        ("Car seat", 120, 0),
        ("Puzzle", 9, 0),
        ("Crayons", 4, 0),
        ("School backpack", 20, 0),
    ),
}
_PRICE_LEVELS = (("Essential", 1.0, 1.0), ("Classic", 2.4, 1.5), ("Premium", 6.0, 2.2))
"""(name, price multiplier, multiplier for consumables): cheap basics, mid range, premium."""
_LEVEL_SHARE = (0.6, 0.3, 0.1)
"""Price levels of the extra items in a basket and of the consumables customers adopt."""
_COMPLEMENTS = {
    "Jeans": "Belt",
    "Coat": "Gloves",
    "Running shoes": "Socks",
    "Hiking boots": "Insoles",
    "Sneakers": "Shoe care spray",
    "Handbag": "Wallet",
    "Lipstick": "Nail polish",
    "Hair dryer": "Hair brush",
    "Coffee machine": "Mug",
    "Bed sheets": "Pillowcases",
    "Smartphone": "Phone case",
    "Laptop": "Laptop sleeve",
    "Camera": "Memory card",
    "Tablet": "Screen protector",
    "Yoga mat": "Yoga blocks",
    "Tennis racket": "Tennis balls",
    "Bike helmet": "Water bottle",
    "Toy train": "Toy tracks",
    "Picture book": "Crayons",
}
"""Items bought together: a product of the key type comes with the same level of the value."""
_COMPLEMENT_RATE = 0.45
"""Share of baskets with a product that has a complement that take the complement too."""


@dataclass(frozen=True)
class _Catalogue:
    """The products as arrays indexed by product code (product_id - 1 = type * 3 + level)."""

    names: list[str]
    skus: list[str]
    groups: list[str]  # the product type: its three price levels are variants of one product
    category: np.ndarray  # int16 code into _CATEGORIES
    level: np.ndarray  # int8: 0 basic, 1 mid, 2 premium
    cents: np.ndarray  # int64 list price in cents
    cycle_days: np.ndarray  # float: re-bought every so many days (0: not a consumable)
    complement: np.ndarray  # int32 product code bought with it (-1: none)

    @classmethod
    def build(cls) -> _Catalogue:
        """The fixed catalogue (the same for every seed)."""
        types = [(c, *t) for c in _CATEGORIES for t in _PRODUCT_TYPES[c]]
        index = {t[1]: i for i, t in enumerate(types)}
        names, skus, groups, cat, level, cents, cycle, comp = [], [], [], [], [], [], [], []
        for ti, (category, name, base, weeks) in enumerate(types):
            for li, (word, mult, cons_mult) in enumerate(_PRICE_LEVELS):
                price = base * (cons_mult if weeks else mult)
                price = np.ceil(price) - 0.01 if price >= 10 else np.ceil(price * 2) / 2 - 0.01
                lower = name[1:2].islower()  # "Smartphone" -> "smartphone"; keep "AA", "T-"
                names.append(f"{word} {name[0].lower() if lower else name[0]}{name[1:]}")
                skus.append(f"{category[:3].upper()}-{ti:03d}-{word[0]}")
                groups.append(name)
                cat.append(_CATEGORIES.index(category))
                level.append(li)
                cents.append(round(price * 100))
                cycle.append(7.0 * weeks)
                partner = _COMPLEMENTS.get(name)
                comp.append(-1 if partner is None else 3 * index[partner] + li)
        return cls(
            names,
            skus,
            groups,
            np.array(cat, np.int16),
            np.array(level, np.int8),
            np.array(cents, np.int64),
            np.array(cycle),
            np.array(comp, np.int32),
        )

    def frame(self) -> pd.DataFrame:
        """The products table, plus each product's price level, complement and refill cycle."""
        k = len(self.names)
        ids = np.arange(1, k + 1, dtype=np.int64)
        return pd.DataFrame(
            {
                "product_id": ids,
                "sku": pd.array(self.skus, dtype="str"),
                "name": pd.array(self.names, dtype="str"),
                "category": _cat(self.category, _CATEGORIES),
                "price": self.cents / 100.0,
                "product_group": pd.array(self.groups, dtype="str"),
                "level": _cat(self.level, ("basic", "mid", "premium")),
                "complement_id": _nullable_int(
                    np.where(self.complement >= 0, self.complement + 1, -1)
                ),
                "cycle_weeks": (self.cycle_days / 7.0).astype(np.int64),
            }
        )


_CATALOGUE = _Catalogue.build()
_LINE_CHUNK = 1 << 18
"""Orders whose lines are generated at once."""


def catalogue() -> pd.DataFrame:
    """The demo's products (the products table's columns) with their structure: `level`
    (basic, mid, premium), `complement_id` (the product bought with it, if any) and
    `cycle_weeks` (a consumable re-bought every so many weeks; 0 = not a consumable)."""
    return _CATALOGUE.frame()


@dataclass
class _Period:
    """The demo history: day 0 = start (midnight), `days` = horizon (end + 1 day, exclusive)."""

    start: date
    days: int

    @classmethod
    def ending(cls, end: date) -> _Period:
        """The ~3 years up to and including `end`."""
        try:
            first = date(end.year - HISTORY_YEARS, end.month, end.day)
        except ValueError:  # 29 February
            first = date(end.year - HISTORY_YEARS, end.month, 28)
        first += timedelta(days=1)
        return cls(first, (end - first).days + 1)

    def ts(self, days: np.ndarray) -> np.ndarray:
        """Days since start (NaN = missing) -> naive datetime64[us], whole seconds."""
        days = np.asarray(days, dtype=float)
        missing = ~np.isfinite(days)
        micros = np.floor(np.where(missing, 0.0, days) * 86_400.0).astype(np.int64)
        micros *= 1_000_000
        micros += np.datetime64(self.start, "us").astype(np.int64)
        micros[missing] = np.iinfo(np.int64).min  # NaT
        return micros.view("datetime64[us]")

    def day_of(self, d: date) -> float:
        """Days from start to midnight of `d`."""
        return float((d - self.start).days)


# --- the generator --------------------------------------------------------------------------


class _Demo:
    """One generation run; attributes hold the per-customer truth shared between tables."""

    def __init__(self, customers: int, seed: int, end: date, progress: Progress | None) -> None:
        if customers < 1:
            raise ValueError(f"customers must be at least 1, got {customers}")
        self.n = int(customers)
        self.rng = np.random.default_rng(seed)
        self.lrng = np.random.default_rng([seed, 13])  # order lines (a stream of their own)
        self.drng = np.random.default_rng([seed, 29])  # the planted outage (its own stream)
        self.prng = np.random.default_rng([seed, 31])  # planted duplicates (its own stream)
        self.period = _Period.ending(end)
        self.horizon = float(self.period.days)
        self.last = self.horizon - 2 * _SECOND  # latest allowed time (days)
        self._progress = progress
        self._seasonal_clock()

    def report(self, fraction: float, message: str) -> None:
        """Tell the caller how far we are."""
        if self._progress is not None:
            self._progress(float(min(max(fraction, 0.0), 1.0)), message)

    # -- time --------------------------------------------------------------------------------

    def _seasonal_clock(self) -> None:
        """Daily purchase intensity (mean 1): months, weekdays, Black Friday to Cyber Monday."""
        days = np.arange(self.period.days)
        cal = np.datetime64(self.period.start, "D") + days
        month = cal.astype("datetime64[M]").astype(np.int64) % 12
        weekday = (cal.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        weight = np.asarray(_MONTH_FACTOR)[month] * np.asarray(_WEEKDAY_FACTOR)[weekday]
        for year in range(self.period.start.year, self.period.start.year + HISTORY_YEARS + 2):
            nov1 = date(year, 11, 1)
            thanksgiving = nov1 + timedelta(days=(3 - nov1.weekday()) % 7 + 21)
            first = (thanksgiving - self.period.start).days + 1
            sel = (days >= first) & (days <= first + 3)
            weight[sel] *= 1.9
        weight /= weight.mean()
        self.grid = np.arange(self.period.days + 1, dtype=float)
        self.clock = np.concatenate([[0.0], np.cumsum(weight)])

    def to_op(self, t: np.ndarray) -> np.ndarray:
        """Calendar days -> operational (seasonality-free) time."""
        return np.interp(t, self.grid, self.clock)

    def to_cal(self, u: np.ndarray) -> np.ndarray:
        """Operational time -> calendar days."""
        return np.interp(u, self.clock, self.grid)

    def diurnal(self, size: int) -> np.ndarray:
        """Fractions of a day with a realistic hour-of-day profile."""
        hours = self.rng.choice(24, size=size, p=_HOUR_WEIGHT / _HOUR_WEIGHT.sum())
        return (hours + self.rng.random(size)) / 24.0

    def growing_times(self, n: int, growth: float = 2.0) -> np.ndarray:
        """`n` sorted days whose density grows linearly (x `1 + growth` by the end)."""
        u = np.sort(self.rng.random(n))
        x = (-1.0 + np.sqrt(1.0 + 2.0 * growth * u * (1.0 + growth / 2.0))) / growth
        return np.floor(x * self.horizon) + self.diurnal(n)

    def state(self, cust: np.ndarray, t: np.ndarray) -> np.ndarray:
        """0 healthy, 1 drifting before the last purchase, 2 just left, 3 gone."""
        st = np.zeros(len(cust), dtype=np.int8)
        tau = self.tau[cust]
        st[t >= self.drift_start[cust]] = 1
        st[t > tau] = 2
        st[t > tau + 30.0] = 3
        return st

    # -- customers ---------------------------------------------------------------------------

    def customers(self) -> None:
        """Signups, places, names, consents and the latent traits behind behaviour."""
        rng, n = self.rng, self.n
        self.signup = np.minimum(self.growing_times(n), self.horizon - 0.05)
        self.signup_frac = self.signup / self.horizon

        self.country = _pick(rng, n, _COUNTRY_SHARE)
        places = [(c, r, city) for c in _COUNTRIES for (r, city) in _PLACES[c]]
        self.regions = sorted({p[1] for p in places})
        self.cities = [p[2] for p in places]
        place_of = np.empty(n, dtype=np.int32)
        offset = 0
        for ci, c in enumerate(_COUNTRIES):  # six countries, not customers
            k = len(_PLACES[c])
            sel = self.country == ci
            w = 1.0 / np.arange(1, k + 1) ** 0.8
            place_of[sel] = offset + rng.choice(k, size=int(sel.sum()), p=w / w.sum())
            offset += k
        self.place = place_of
        self.region_code = np.array([self.regions.index(p[1]) for p in places])[place_of]

        g = rng.random(n)
        self.gender = np.select([g < 0.49, g < 0.96, g < 0.97], [0, 1, 2], -1).astype(np.int8)
        female = np.where(self.gender == -1, rng.random(n) < 0.5, self.gender == 0)
        female = np.where(self.gender == 2, rng.random(n) < 0.5, female)
        first_names: list[str] = []
        last_names: list[str] = []
        first_code = np.empty(n, dtype=np.int32)
        last_code = np.empty(n, dtype=np.int32)
        for ci, c in enumerate(_COUNTRIES):
            fem, mal, lasts = _NAMES[c]
            fem_l, mal_l = fem.split(), mal.split()
            last_l = _NL_LAST.split("|") if c == "NL" else lasts.split()
            sel = self.country == ci
            k = int(sel.sum())
            f_idx = rng.integers(0, len(fem_l), k)
            m_idx = rng.integers(0, len(mal_l), k)
            base = len(first_names)
            first_code[sel] = np.where(female[sel], base + f_idx, base + len(fem_l) + m_idx)
            first_names += fem_l + mal_l
            last_code[sel] = len(last_names) + rng.integers(0, len(last_l), k)
            last_names += last_l
        self.first_names, self.first_code = _dedupe(first_names, first_code)
        self.last_names, self.last_code = _dedupe(last_names, last_code)

        age = np.clip(rng.gamma(9.0, 4.6, n), 18.0, 85.0)
        self.birth = self.signup - age * 365.25 - rng.random(n) * 365.0

        self.acq = _pick(rng, n, _ACQ_SHARE)
        self.has_email = rng.random(n) >= 0.012
        self.has_phone = rng.random(n) >= 0.03
        self.consent_email = (rng.random(n) < 0.76) & self.has_email
        self.consent_sms = (rng.random(n) < 0.45) & self.has_phone
        self.domain = rng.choice(len(_EMAIL_DOMAINS), n, p=[0.35, 0.25, 0.2, 0.12, 0.08])

        # Behaviour: BG/NBD rate and dropout; satisfaction is linked to dropout (copula).
        bg = BGNBD_PARAMS
        self.lam = rng.gamma(bg["r"], 1.0 / bg["alpha"], n)
        z = rng.standard_normal(n)
        self.p_drop = np.clip(special.betaincinv(bg["a"], bg["b"], special.ndtr(z)), 1e-6, 1.0)
        self.satisfaction = -0.45 * z + np.sqrt(1 - 0.45**2) * rng.standard_normal(n)
        gg = GAMMA_GAMMA_PARAMS
        self.nu = rng.gamma(gg["q"], 1.0 / gg["v"], n)
        self.buyer = rng.random(n) < BUYER_SHARE
        self.fav_category = _pick(rng, n, _CATEGORY_SHARE)
        x = self.signup_frac
        u = rng.random(n)
        p_app, p_store = 0.14 + 0.22 * x, 0.24 - 0.1 * x
        self.pref_channel = np.where(u < p_app, 2, np.where(u < p_app + p_store, 1, 0))
        self.engagement = np.exp(0.3 * self.satisfaction - 0.045)
        self.report(0.08, f"{n:,} customers")

    # -- campaigns ---------------------------------------------------------------------------

    def campaigns(self) -> None:
        """The campaign calendar (fixed themes per year) and acquisition bursts."""
        rows = []
        for year in range(self.period.start.year, self.period.start.year + HISTORY_YEARS + 1):
            for month, day, theme, channel, objective, length in _CAMPAIGN_CALENDAR:
                start = self.period.day_of(date(year, month, day))
                if start < 0 or start >= self.horizon - 1:
                    continue
                stop = start + length
                name = f"{theme} {year} ({channel})"
                if objective == "newsletter":
                    name = f"{theme} {date(year, month, 1):%b %Y}"
                rows.append((name, channel, objective, start, stop))
        rows.sort(key=lambda r: (r[3], r[0]))
        self.camp_name = [r[0] for r in rows]
        self.camp_channel = np.array([r[1] for r in rows])
        self.camp_objective = np.array([r[2] for r in rows])
        self.camp_start = np.array([r[3] for r in rows], dtype=float) + 8.0 / 24
        self.camp_stop = np.array([r[4] for r in rows], dtype=float) + 23.0 / 24
        self.camp_spend = np.zeros(len(rows))
        scale = self.n / 20_000
        for i, channel in enumerate(self.camp_channel):  # a few dozen campaigns
            if channel not in ("paid_search", "paid_social"):  # creative and tooling
                cost = _CREATIVE_COST.get(self.camp_objective[i], _CREATIVE_COST[channel])
                self.camp_spend[i] = cost * self.rng.lognormal(0.0, 0.2)
                continue
            daily = 420.0 if channel == "paid_search" else 330.0
            length = self.camp_stop[i] - self.camp_start[i]
            self.camp_spend[i] = daily * length * scale * self.rng.lognormal(0.0, 0.25)
            # Paid campaigns shift the acquisition mix while they run.
            window = (self.signup >= self.camp_start[i]) & (self.signup < self.camp_stop[i])
            boost = window & (self.rng.random(self.n) < 0.35)
            self.acq[boost] = _ACQ_CHANNELS.index(channel)
        self.report(0.1, f"{len(rows)} campaigns")

    # -- orders ------------------------------------------------------------------------------

    def purchases(self) -> None:
        """First orders near signup, then BG/NBD repeat purchases in seasonal time."""
        rng, n = self.rng, self.n
        quick = rng.random(n) < 0.7
        delay = np.where(quick, rng.exponential(20.0, n) + 2.0, rng.exponential(2.0 * 1440, n))
        delay /= 1440.0
        self.t0 = np.minimum(self.signup + delay, self.signup + 0.9 * (self.horizon - self.signup))
        op0 = self.to_op(self.t0)
        op_len = self.clock[-1] - op0
        k = rng.geometric(self.p_drop)
        m = rng.poisson(self.lam * op_len)
        reps = np.where(self.buyer, np.minimum(k, m), 0)
        self.dead = self.buyer & (k <= m)

        total = int(reps.sum())
        cust = np.repeat(np.arange(n), reps)
        gaps = rng.exponential(1.0, total)
        csum = _group_cumsum(gaps, reps)
        tail = np.zeros(n)
        has = reps > 0
        tail[has] = rng.gamma((m - reps + 1)[has].astype(float), 1.0)
        last = np.zeros(n)
        last[has] = csum[_offsets(reps)[has] + reps[has] - 1]
        denom = np.repeat(last + tail, reps)
        t = self.to_cal(np.repeat(op0, reps) + np.repeat(op_len, reps) * csum / denom)
        t = np.floor(t) + self.diurnal(total)
        t = np.clip(t, np.repeat(self.t0, reps) + 60 * _SECOND, self.last)

        buyers = np.flatnonzero(self.buyer)
        self.o_cust = np.concatenate([buyers, cust])
        self.o_t = np.concatenate([self.t0[buyers], t])
        self.o_kind = np.concatenate([np.zeros(len(buyers), np.int8), np.ones(total, np.int8)])
        self.o_campaign = np.full(len(self.o_cust), -1, dtype=np.int64)
        self._sort_orders()

        self.tau = np.full(n, np.inf)
        order_last = np.full(n, -np.inf)
        # the orders are sorted by customer then time: the last row of each group is the max
        ends = np.flatnonzero(np.r_[self.o_cust[1:] != self.o_cust[:-1], True])
        order_last[self.o_cust[ends]] = self.o_t[ends]
        self.last_order = order_last
        self.tau[self.dead] = order_last[self.dead]
        self.drift_start = np.full(n, np.inf)
        self.drift_start[self.dead] = self.tau[self.dead] - rng.uniform(60.0, 150.0, n)[self.dead]
        self.report(0.25, f"{len(self.o_t):,} purchases")

    def _sort_orders(self) -> None:
        order = np.lexsort((self.o_t, self.o_cust))
        self.o_cust, self.o_t = self.o_cust[order], self.o_t[order]
        self.o_kind, self.o_campaign = self.o_kind[order], self.o_campaign[order]
        self.o_key = (self.o_cust.astype(np.int64) << _KEY_SHIFT) + np.floor(
            self.o_t * 86_400
        ).astype(np.int64)

    def _last_order_before(self, cust: np.ndarray, t: float) -> np.ndarray:
        """Time of each customer's last order before `t` (NaN if none)."""
        key = (cust.astype(np.int64) << _KEY_SHIFT) + int(t * 86_400)
        idx = np.searchsorted(self.o_key, key, side="left") - 1
        ok = idx >= 0
        ok[ok] = self.o_cust[idx[ok]] == cust[ok]
        return np.where(ok, self.o_t[np.maximum(idx, 0)], np.nan)

    def erasures(self) -> None:
        """About 0.5% of customers, who left a while ago, had their personal data erased."""
        pool = np.flatnonzero(self.dead & (self.tau + 40.0 < self.horizon - 1))
        k = min(len(pool), int(round(0.005 * self.n)))
        self.erased = np.zeros(self.n, dtype=bool)
        self.erased_at = np.full(self.n, np.nan)
        if k:
            pick = np.sort(self.rng.choice(pool, size=k, replace=False))
            lo = self.tau[pick] + 40.0
            self.erased[pick] = True
            self.erased_at[pick] = lo + self.rng.random(k) * (self.last - lo)

    # -- campaign contacts -------------------------------------------------------------------

    def contacts(self) -> None:
        """Targeted lists with a 10% random control group; opens and clicks; real uplift."""
        rng, n = self.rng, self.n
        ids = np.arange(n)
        parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("camp", "cust", "sent", "control", "opened", "clicked")
        }
        inj_cust, inj_t, inj_camp = [], [], []
        for ci in range(len(self.camp_name)):  # a few dozen campaigns, vectorised inside
            channel = self.camp_channel[ci]
            if channel not in ("email", "sms"):
                continue
            start, stop = self.camp_start[ci], self.camp_stop[ci]
            eligible = self.signup < start - 1.0
            eligible &= ~(self.erased_at <= start)
            eligible &= self.consent_email if channel == "email" else self.consent_sms
            objective = self.camp_objective[ci]
            if objective in ("winback", "retention"):
                last = self._last_order_before(ids, start)
                if objective == "winback":
                    eligible &= np.isfinite(last) & (start - last >= 120.0)
                else:
                    eligible &= np.isfinite(last) & (start - last <= 365.0)
            eligible &= rng.random(n) < _CONTACT_RATE[objective]
            cust = np.flatnonzero(eligible)
            k = len(cust)
            if k == 0:
                continue
            sent = start + rng.integers(0, 2, k) + 1.0 / 24 + rng.random(k) * 3.0 / 24
            sent = np.minimum(sent, self.last)
            control = rng.random(k) < 0.1
            st = self.state(cust, sent)
            eng = self.engagement[cust]
            opened = np.full(k, np.nan)
            clicked = np.full(k, np.nan)
            if channel == "email":
                p_open = np.array([0.38, 0.16, 0.08, 0.04])[st] * eng
                is_open = ~control & (rng.random(k) < p_open)
                opened[is_open] = sent[is_open] + rng.lognormal(np.log(3.0), 1.0, k)[is_open] / 24
                p_click = np.array([0.24, 0.1, 0.05, 0.04])[st]
                is_click = is_open & (rng.random(k) < p_click)
                clicked[is_click] = (
                    opened[is_click] + (1 + rng.exponential(10.0, k)[is_click]) / 1440
                )
            else:
                p_click = np.array([0.07, 0.025, 0.015, 0.01])[st] * eng
                is_click = ~control & (rng.random(k) < p_click)
                clicked[is_click] = sent[is_click] + (1 + rng.exponential(30.0, k)[is_click]) / 1440
            opened[opened > self.last] = np.nan
            clicked[~(clicked <= self.last)] = np.nan
            # Uplift: treated customers buy more in the following days (tagged orders).
            was_open = np.isfinite(opened)
            was_click = np.isfinite(clicked)
            p_buy = np.where(was_click, 0.7, np.where(was_open, 0.35, 0.08))
            p_buy = np.where(control, 0.0, p_buy) * np.array([1.0, 0.5, 0.0, 0.0])[st]
            buys = rng.random(k) < p_buy
            when = np.where(
                was_click,
                clicked + rng.exponential(0.5, k),
                sent + rng.exponential(4.0, k),
            )
            limit = np.minimum(np.minimum(sent + 14.0, stop), self.tau[cust])
            buys &= (when < limit) & (when <= self.last) & self.buyer[cust]
            buys &= when > self.t0[cust]
            inj_cust.append(cust[buys])
            inj_t.append(when[buys])
            inj_camp.append(np.full(int(buys.sum()), ci, dtype=np.int64))
            for key, val in (
                ("camp", np.full(k, ci)),
                ("cust", cust),
                ("sent", sent),
                ("control", control),
                ("opened", opened),
                ("clicked", clicked),
            ):
                parts[key].append(val)
            per = 0.01 if channel == "email" else 0.05  # cost per message sent
            self.camp_spend[ci] += per * (k - control.sum())
        empty = {"camp": np.int64, "cust": np.int64, "control": bool}
        self.c = {
            key: np.concatenate(val) if val else np.zeros(0, dtype=empty.get(key, float))
            for key, val in parts.items()
        }
        if inj_cust:
            self.o_cust = np.concatenate([self.o_cust, *inj_cust])
            self.o_t = np.concatenate([self.o_t, *inj_t])
            n_inj = sum(len(x) for x in inj_cust)
            self.o_kind = np.concatenate([self.o_kind, np.full(n_inj, 2, np.int8)])
            self.o_campaign = np.concatenate([self.o_campaign, *inj_camp])
            self._sort_orders()
        self.report(0.35, f"{len(self.c['cust']):,} campaign contacts")

    # -- order details -----------------------------------------------------------------------

    def order_details(self) -> None:
        """Amounts (Gamma-Gamma), items, channel, category, status and campaign attribution."""
        rng = self.rng
        c, t = self.o_cust, self.o_t
        r = len(c)
        st = self.state(c, t)
        drifting = st >= 1
        u = rng.random(r)
        refund_p = np.where(drifting, 0.12, 0.03)
        cancel_p = np.where(drifting, 0.06, 0.02)
        self.o_status = np.where(u < refund_p, 1, np.where(u < refund_p + cancel_p, 2, 0))
        self.o_status = self.o_status.astype(np.int8)
        amount = rng.gamma(GAMMA_GAMMA_PARAMS["p"], 1.0, r) / self.nu[c]
        self.o_amount = np.maximum(np.round(amount, 2), 1.0)
        own = rng.random(r) < 0.6
        self.o_category = np.where(own, self.fav_category[c], _pick(rng, r, _CATEGORY_SHARE))
        own = rng.random(r) < 0.75
        self.o_channel = np.where(own, self.pref_channel[c], _pick(rng, r, (0.55, 0.2, 0.25)))
        self.o_channel = self.o_channel.astype(np.int8)

        # Last click: an e-mail/SMS click claims the customer's next order within 7 days.
        clicked = np.isfinite(self.c["clicked"])
        cc, ct = self.c["cust"][clicked], self.c["clicked"][clicked]
        camp = self.c["camp"][clicked]
        key = (cc.astype(np.int64) << _KEY_SHIFT) + np.floor(ct * 86_400).astype(np.int64)
        idx = np.searchsorted(self.o_key, key)
        ok = idx < r
        ok[ok] = self.o_cust[idx[ok]] == cc[ok]
        ok[ok] &= self.o_t[idx[ok]] <= np.minimum(ct[ok] + 7.0, self.camp_stop[camp[ok]])
        ok[ok] &= self.o_campaign[idx[ok]] < 0
        self.o_campaign[idx[ok]] = camp[ok]

        first = self.o_kind == 0
        for ci in range(len(self.camp_name)):  # paid campaigns: acquisition and retargeting
            channel = self.camp_channel[ci]
            if channel not in ("paid_search", "paid_social"):
                continue
            lo, hi = self.camp_start[ci], self.camp_stop[ci]
            running = (t >= lo) & (t < hi) & (self.o_campaign < 0)
            acquired = running & first & (self.acq[c] == _ACQ_CHANNELS.index(channel))
            acquired &= (self.signup[c] >= lo) & (self.signup[c] < hi)
            retarget = running & ~first & (rng.random(r) < 0.04)
            self.o_campaign[acquired | retarget] = ci
        self.report(0.45, f"{r:,} orders")

    # -- order lines -------------------------------------------------------------------------

    def _refills(self) -> np.ndarray:
        """Per order (customer order): the consumable re-bought in it, or a product of a
        pair bought one order after the other, or -1.

        Some customers adopt a consumable (of their favourite category when it has one; the
        more often they order, the likelier) and re-buy it in their first order of each cycle
        of `cycle_days` counted from their first order. And some orders (15% of those whose
        next order is free) hold a product with a complement whose next order holds the
        complement (they come back for it).
        """
        rng, n, cat = self.lrng, self.n, _CATALOGUE
        types = np.arange(0, len(cat.cents), 3)  # the basic level of each product type
        cons = types[cat.cycle_days[types] > 0]
        by_cat = np.bincount(cat.category[cons], minlength=len(_CATEGORIES))
        fav = self.fav_category
        u = rng.random(n)
        own = by_cat[fav] > 0
        pick = np.where(
            own,
            _offsets(by_cat)[fav] + np.floor(u * by_cat[fav]).astype(np.int64),
            np.floor(u * len(cons)).astype(np.int64),
        )
        product = cons[pick] + _pick(rng, n, _LEVEL_SHARE)  # cons is sorted by category
        cycle = cat.cycle_days[product]
        adopt = self.buyer & (rng.random(n) < 0.6 * (1.0 - np.exp(-self.lam * cycle)) ** 2)
        c = self.o_cust
        window = np.floor((self.o_t - self.t0[c]) / cycle[c])
        first = np.r_[True, (c[1:] != c[:-1]) | (window[1:] != window[:-1])]
        refill = np.where(adopt[c] & first, product[c], -1).astype(np.int32)
        # Some come back for the complement: an order holds a product that has one (of the
        # order's category when it has one) and the customer's next order its complement.
        paired = types[cat.complement[types] >= 0]  # sorted by category
        per_cat = np.bincount(cat.category[paired], minlength=len(_CATEGORIES))
        r, oc, u = len(c), self.o_category, rng.random(len(c))
        pick = np.where(
            per_cat[oc] > 0,
            _offsets(per_cat)[oc] + np.floor(u * per_cat[oc]).astype(np.int64),
            np.floor(u * len(paired)).astype(np.int64),
        )
        kit = (paired[pick] + _pick(rng, r, _LEVEL_SHARE)).astype(np.int32)
        free = refill < 0
        plant = (rng.random(r) < 0.15) & free & np.r_[free[1:] & (c[1:] == c[:-1]), False]
        plant &= ~np.r_[False, plant[:-1]]  # a complement's order starts no pair of its own
        refill[plant] = kit[plant]
        refill[np.flatnonzero(plant) + 1] = cat.complement[kit[plant]]
        return refill

    def _lines(
        self, cents: np.ndarray, category: np.ndarray, refill: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Order lines whose amounts add up to each order's `cents` exactly.

        A basket is the consumable due (if any), a few extra items (often of the order's
        category, mostly basics, some with their complement) as long as they take at most 3/5
        of the order's value, and the main item: a product of the order's category priced to the
        rest (with its complement, a pair priced to it, for some), charged the rest exactly
        (a line discount from its list price). Returns flat arrays grouped by order.
        """
        rng, cat = self.lrng, _CATALOGUE
        r = len(cents)
        ncat = len(_CATEGORIES)
        # Extra items: a Poisson number growing with the order value.
        n_fill = rng.poisson(np.minimum(2.0 * np.log1p(cents / 3_000.0), 6.0)).astype(np.int64)
        f_order = np.repeat(np.arange(r, dtype=np.int32), n_fill)
        k = len(f_order)
        f_cat = np.where(rng.random(k) < 0.55, category[f_order], _pick(rng, k, _CATEGORY_SHARE))
        staples = np.arange(0, len(cat.cents), 3)
        staples = staples[cat.cycle_days[staples] == 0]  # consumables only come as refills
        per_cat = np.bincount(cat.category[staples], minlength=ncat)
        pick = _offsets(per_cat)[f_cat] + np.floor(rng.random(k) * per_cat[f_cat]).astype(int)
        f_prod = (staples[pick] + _pick(rng, k, _LEVEL_SHARE)).astype(np.int32)
        del f_cat, pick
        u = rng.random(k)
        f_qty = np.where(cat.level[f_prod] == 0, 1 + (u < 0.2) + (u < 0.05), 1).astype(np.int32)
        f_comp = cat.complement[f_prod]
        f_pair = (f_comp >= 0) & (rng.random(k) < _COMPLEMENT_RATE)
        # Layout of the extra lines per order: the refill, then each item and its complement.
        has_refill = refill >= 0
        width = 1 + f_pair.astype(np.int64)
        size = has_refill + np.bincount(f_order, weights=width, minlength=r).astype(np.int64)
        start = _offsets(size)
        within = np.cumsum(width) - width
        within -= np.repeat(within[_offsets(n_fill)[n_fill > 0]], n_fill[n_fill > 0])
        pos = start[f_order] + has_refill[f_order] + within
        del within, width
        m = int(size.sum())
        x_prod = np.empty(m, np.int32)
        x_qty = np.ones(m, np.int32)
        at = start[has_refill]
        x_prod[at] = refill[has_refill]
        x_qty[at] += rng.random(len(at)) < 0.15
        x_prod[pos] = f_prod
        x_qty[pos] = f_qty
        x_prod[pos[f_pair] + 1] = f_comp[f_pair]
        del f_order, f_prod, f_qty, f_comp, f_pair, pos, at
        x_cents = x_qty * cat.cents[x_prod]
        x_order = np.repeat(np.arange(r, dtype=np.int32), size)
        csum = np.cumsum(x_cents)
        csum -= np.repeat(np.concatenate([[0], csum])[start], size)
        keep = csum <= cents[x_order] * 3 // 5  # a prefix of each order's extra lines
        del csum
        kept = np.bincount(x_order[keep], minlength=r).astype(np.int64)
        rest = cents - np.bincount(x_order[keep], x_cents[keep], minlength=r).astype(np.int64)

        # The main item: sorted (category, price) keys find the product priced to the rest.
        solo = np.flatnonzero(cat.cycle_days == 0)
        solo = solo[np.lexsort((cat.cents[solo], cat.category[solo]))]
        solo_key = (cat.category[solo].astype(np.int64) << 40) + cat.cents[solo]
        first = np.searchsorted(solo_key, np.arange(ncat, dtype=np.int64) << 40)
        last = np.searchsorted(solo_key, np.arange(1, ncat + 1, dtype=np.int64) << 40) - 1
        c64 = category.astype(np.int64)
        u = rng.random(r)
        qty = (1 + (u < 0.2) + (u < 0.05)).astype(np.int64)
        qty[-(-rest // qty) < cat.cents[solo[first[category]]]] = 1
        idx = np.searchsorted(solo_key, (c64 << 40) + -(-rest // qty))
        top = idx > last[category]  # dearer than anything in the category: several units
        idx = np.minimum(idx + (rng.random(r) < 0.35), last[category])
        main = solo[idx].astype(np.int32)
        qty = np.where(top, -(-rest // cat.cents[main]), qty)
        # Some take the main item with its complement: a pair priced to the rest.
        paired = solo[cat.complement[solo] >= 0]
        bundle = cat.cents[paired] + cat.cents[cat.complement[paired]]
        order = np.lexsort((bundle, cat.category[paired]))
        paired, bundle = paired[order], bundle[order]
        pair_key = (cat.category[paired].astype(np.int64) << 40) + bundle
        p_last = np.searchsorted(pair_key, (c64 + 1) << 40) - 1
        p_idx = np.minimum(np.searchsorted(pair_key, (c64 << 40) + rest), p_last)
        p_main = paired[np.maximum(p_idx, 0)]
        p_comp = cat.complement[p_main]
        p_rest = rest - cat.cents[p_comp]
        pair = (rng.random(r) < _COMPLEMENT_RATE) & (pair_key[np.maximum(p_idx, 0)] >> 40 == c64)
        pair &= (p_rest >= cat.cents[p_main] // 2) & (p_rest <= cat.cents[p_main])
        main = np.where(pair, p_main, main)
        qty = np.where(pair, 1, qty)
        main_cents = np.where(pair, p_rest, rest)
        del solo_key, idx, top, p_idx, p_rest, c64, u

        # Assemble: main item, its complement, the extra lines kept.
        n_lines = 1 + pair + kept
        start2 = _offsets(n_lines)
        size_all = int(n_lines.sum())
        out_prod = np.empty(size_all, np.int32)
        out_qty = np.empty(size_all, np.int32)
        out_cents = np.empty(size_all, np.int64)
        out_unit = np.empty(size_all, np.int64)
        out_prod[start2] = main
        out_qty[start2] = qty
        out_cents[start2] = main_cents
        out_unit[start2] = (main_cents + qty // 2) // qty
        at = start2[pair] + 1
        out_prod[at] = p_comp[pair]
        out_qty[at] = 1
        out_cents[at] = out_unit[at] = cat.cents[p_comp[pair]]
        del main, qty, main_cents, p_main, p_comp, at
        kept_rows = np.flatnonzero(keep)
        ko = x_order[kept_rows]
        at = start2[ko] + 1 + pair[ko] + (kept_rows - start[ko])
        out_prod[at] = x_prod[kept_rows]
        out_qty[at] = x_qty[kept_rows]
        out_cents[at] = x_cents[kept_rows]
        out_unit[at] = cat.cents[x_prod[kept_rows]]
        return {
            "lines": n_lines,
            "product": out_prod,
            "quantity": out_qty,
            "cents": out_cents,
            "unit": out_unit,
        }

    # -- support tickets ---------------------------------------------------------------------

    def tickets(self) -> None:
        """Order problems and account questions; leaving customers file more, angrier ones."""
        rng, n = self.rng, self.n
        c, t = self.o_cust, self.o_t
        st = self.state(c, t)
        p = np.where(st >= 1, 0.12, 0.02) * np.exp(-0.25 * self.satisfaction[c])
        p = p + 0.25 * (self.o_status == 1) + 0.08 * (self.o_status == 2)
        hit = rng.random(len(c)) < p
        tc, topen = c[hit], t[hit] + 0.5 + rng.exponential(3.0, int(hit.sum()))
        status = self.o_status[hit]
        k = len(tc)
        cat = _pick(rng, k, (0.45, 0.15, 0.3, 0.1, 0.0, 0.0))
        cat = np.where(status == 1, 1, np.where(status == 2, 5, cat))

        # Account/billing questions over the customer's life, plus a burst before leaving.
        active_end = np.minimum(self.tau + 30.0, self.horizon)
        life = np.maximum(active_end - self.signup, 0.0)
        g = rng.poisson(0.12 * life / 365.0)
        gc = np.repeat(np.arange(n), g)
        gt = self.signup[gc] + rng.random(len(gc)) * life[gc]
        burst = np.where(self.dead, rng.poisson(0.4, n), 0)
        bc = np.repeat(np.arange(n), burst)
        bt = self.drift_start[bc] + rng.random(len(bc)) * (
            self.tau[bc] + 30.0 - self.drift_start[bc]
        )
        ac = np.concatenate([gc, bc])
        at = np.concatenate([gt, bt])
        acat = _pick(rng, len(ac), (0.0, 0.0, 0.1, 0.35, 0.4, 0.15))
        cust = np.concatenate([tc, ac])
        opened = np.concatenate([topen, at])
        cat = np.concatenate([cat, acat])
        keep = (opened <= self.last) & (opened >= self.signup[cust])
        keep &= ~(opened >= self.erased_at[cust])
        cust, opened, cat = cust[keep], opened[keep], cat[keep]
        k = len(cust)
        st = self.state(cust, opened)
        unhappy = (st == 1) | (st == 2)
        pr = rng.random(k)
        cut = np.where(unhappy[:, None], [0.1, 0.5, 0.85], [0.3, 0.85, 0.97])
        priority = (pr[:, None] >= cut).sum(axis=1)
        hours = rng.lognormal(np.log(18.0), 1.0, k) * np.where(unhappy, 2.5, 1.0)
        hours *= np.array([1.3, 1.0, 0.6, 0.35])[priority]
        closed = opened + hours / 24.0
        backlog = rng.random(k) < np.where(unhappy, 0.18, 0.02)
        is_closed = (closed <= self.last) & ~backlog
        status = np.where(is_closed, 2, np.where(rng.random(k) < 0.55, 1, 0))
        order = np.argsort(opened, kind="stable")
        self.t_cust = cust[order]
        self.t_open = opened[order]
        self.t_closed = np.where(is_closed, closed, np.nan)[order]
        self.t_channel = _pick(rng, k, (0.45, 0.35, 0.2))
        self.t_category = cat[order]
        self.t_priority = priority[order]
        self.t_status = status[order]
        self.report(0.52, f"{k:,} support tickets")

    # -- surveys -----------------------------------------------------------------------------

    def surveys(self) -> None:
        """NPS and CSAT after purchases, support contacts and onboarding, with comments."""
        rng, n = self.rng, self.n
        # post-purchase
        pick = (self.o_status != 2) & (rng.random(len(self.o_cust)) < 0.07)
        pc = self.o_cust[pick]
        pt = self.o_t[pick] + 2.0 + rng.exponential(3.0, len(pc))
        p_pen = np.where(self.o_status[pick] == 1, 1.0, 0.0)
        p_nps = rng.random(len(pc)) < 0.6
        # support
        closed = np.isfinite(self.t_closed)
        pick = closed & (rng.random(len(self.t_cust)) < 0.35)
        sc = self.t_cust[pick]
        stt = self.t_closed[pick] + rng.exponential(0.5, len(sc))
        slow = (self.t_closed[pick] - self.t_open[pick]) > 3.0
        s_pen = 0.5 * (self.t_priority[pick] >= 2) + 0.6 * slow - 0.3 * ~slow
        s_nps = rng.random(len(sc)) < 0.25
        # onboarding
        oc = np.flatnonzero(rng.random(n) < 0.2)
        ot = self.signup[oc] + 7.0 + rng.exponential(10.0, len(oc))
        cust = np.concatenate([pc, sc, oc])
        when = np.concatenate([pt, stt, ot])
        pen = np.concatenate([p_pen, s_pen, np.zeros(len(oc))])
        nps = np.concatenate([p_nps, s_nps, np.ones(len(oc), bool)])
        touch = np.concatenate(
            [np.zeros(len(pc), np.int8), np.ones(len(sc), np.int8), np.full(len(oc), 2, np.int8)]
        )
        keep = (when <= self.last) & ~(when >= self.erased_at[cust])
        cust, when, pen, nps, touch = cust[keep], when[keep], pen[keep], nps[keep], touch[keep]
        k = len(cust)
        st = self.state(cust, when)
        unhappy = (st == 1) | (st == 2)
        x = 0.9 * self.satisfaction[cust] + 0.8 * rng.standard_normal(k) - 1.9 * unhappy - pen
        score = np.where(
            nps,
            np.clip(np.round(8.5 + 1.7 * x), 0, 10),
            np.clip(np.round(4.1 + 0.8 * x), 1, 5),
        ).astype(np.int32)
        sentiment = np.where(
            nps,
            np.digitize(score, [7, 9]),  # 0-6 detractor, 7-8 passive, 9-10 promoter
            np.digitize(score, [3, 4]),  # 1-2 negative, 3 neutral, 4-5 positive
        )
        comment = self._comments(sentiment, touch == 1)
        comment[self.erased[cust]] = -1
        order = np.argsort(when, kind="stable")
        self.s_cust = cust[order]
        self.s_when = when[order]
        self.s_nps = nps[order]
        self.s_score = score[order]
        self.s_touch = touch[order]
        self.s_comment = comment[order]
        self.report(0.6, f"{k:,} survey responses")

    def _comments(self, sentiment: np.ndarray, support: np.ndarray) -> np.ndarray:
        """Codes into `self.comment_texts` (-1 = no comment) built from short phrases."""
        rng = self.rng
        k = len(sentiment)
        texts: list[str] = []
        codes = np.full(k, -1, dtype=np.int64)
        says = rng.random(k) < np.array([0.6, 0.25, 0.4])[sentiment]
        u1, u2, two = rng.random(k), rng.random(k), rng.random(k) < 0.4
        for si, s in enumerate(("neg", "neu", "pos")):
            for is_support in (False, True):
                phrases = _COMMENT_PHRASES[(s, is_support)]
                m = len(phrases)
                base = len(texts)
                for a, b in itertools.product(range(m), range(m + 1)):
                    first = phrases[a][0].upper() + phrases[a][1:]
                    texts.append(first + "." if b in (m, a) else f"{first}, {phrases[b]}.")
                sel = says & (sentiment == si) & (support == is_support)
                a_idx = (u1[sel] * m).astype(np.int64)
                b_idx = np.where(two[sel], (u2[sel] * m).astype(np.int64), m)
                codes[sel] = base + a_idx * (m + 1) + b_idx
        self.comment_texts, codes = _dedupe(texts, codes)
        return codes

    # -- events ------------------------------------------------------------------------------

    def events(self) -> None:
        """Tracked web/app sessions (funnel), e-mail opens/clicks, SMS clicks, app opens."""
        rng, n = self.rng, self.n
        # Purchase sessions for a tracked share of web/app orders, ending at the order.
        online = (self.o_channel != 1) & (rng.random(len(self.o_cust)) < 0.25)
        pc, pt = self.o_cust[online], self.o_t[online]
        pch = self.o_channel[online]
        pcamp = self.o_campaign[online]
        kp = len(pc)
        checkout = pt - (1.0 + 4.0 * rng.random(kp)) / 1440
        cart = checkout - (1.0 + 9.0 * rng.random(kp)) / 1440
        view = cart - (0.5 + 7.5 * rng.random(kp)) / 1440
        visit = view - (0.1 + 2.9 * rng.random(kp)) / 1440
        # Browsing sessions over the active life; fewer while drifting away.
        start = np.where(self.buyer, self.t0, self.signup)
        active_end = np.minimum(self.tau + 20.0, self.horizon)
        life = np.maximum(active_end - start, 0.0)
        nb = rng.poisson(0.7 * self.lam * life)
        bc = np.repeat(np.arange(n), nb)
        bt = start[bc] + rng.random(len(bc)) * life[bc]
        bt = np.floor(bt) + self.diurnal(len(bc))
        keep = (bt >= start[bc]) & (bt <= self.last)
        keep &= (self.state(bc, bt) == 0) | (rng.random(len(bc)) < 0.35)
        bc, bt = bc[keep], bt[keep]
        kb = len(bc)
        bch = np.where(self.pref_channel[bc] == 2, 2, np.where(rng.random(kb) < 0.2, 2, 0))
        b_view = rng.random(kb) < 0.7
        b_cart = b_view & (rng.random(kb) < 0.4)
        b_check = b_cart & (rng.random(kb) < 0.35)
        bview_t = bt + (0.2 + 2.8 * rng.random(kb)) / 1440
        bcart_t = bview_t + (0.5 + 5.5 * rng.random(kb)) / 1440
        bcheck_t = bcart_t + (0.5 + 3.5 * rng.random(kb)) / 1440

        # Sessions numbered by start time.
        s_start = np.concatenate([visit, bt])
        s_cust = np.concatenate([pc, bc])
        s_chan = np.concatenate([pch, bch])
        s_camp = np.concatenate([pcamp, np.full(kb, -1, np.int64)])
        sid = np.empty(len(s_start), dtype=np.int64)
        sid[np.argsort(s_start, kind="stable")] = np.arange(1, len(s_start) + 1)
        p_sid, b_sid = sid[:kp], sid[kp:]

        # (customer, time, type, channel code, campaign, session, rows): rows None = all.
        # Channel codes: 0 web, 2 app (as for orders), 3 email, 4 sms.
        pieces: list[tuple] = [
            (s_cust, s_start, "visit", s_chan, s_camp, sid, None),
            (s_cust, s_start - 3 * _SECOND, "app_open", s_chan, s_camp, sid, s_chan == 2),
            (pc, view, "product_view", pch, pcamp, p_sid, None),
            (bc, bview_t, "product_view", bch, -1, b_sid, b_view),
            (pc, cart, "add_to_cart", pch, pcamp, p_sid, None),
            (bc, bcart_t, "add_to_cart", bch, -1, b_sid, b_cart),
            (pc, checkout, "checkout", pch, pcamp, p_sid, None),
            (bc, bcheck_t, "checkout", bch, -1, b_sid, b_check),
            (pc, pt, "purchase", pch, pcamp, p_sid, None),
        ]
        cc = self.c
        is_email = self.camp_channel[cc["camp"]] == "email"
        clicked = np.isfinite(cc["clicked"])
        pieces += [
            (cc["cust"], cc["opened"], "email_open", 3, cc["camp"], -1, np.isfinite(cc["opened"])),
            (cc["cust"], cc["clicked"], "email_click", 3, cc["camp"], -1, clicked & is_email),
            (cc["cust"], cc["clicked"], "sms_click", 4, cc["camp"], -1, clicked & ~is_email),
        ]
        del pc, pt, pch, pcamp, view, cart, checkout, visit, bc, bt, bch, bview_t, bcart_t
        del bcheck_t, s_cust, s_start, s_chan, s_camp, sid, p_sid, b_sid
        self._event_frame(pieces)

    def _event_frame(self, pieces: list[tuple]) -> None:
        """Assemble the event pieces into the events table, in time order (memory-lean)."""
        size = sum(len(p[0]) if p[6] is None else int(p[6].sum()) for p in pieces)
        e_cust = np.empty(size, np.int32)
        e_t = np.empty(size, float)
        e_type = np.empty(size, np.int8)
        e_chan = np.empty(size, np.int8)
        e_camp = np.empty(size, np.int16)
        e_sid = np.empty(size, np.int32)
        pos = 0
        while pieces:  # a dozen pieces; each is released once copied
            cust, when, etype, chan, camp, sess, rows = pieces.pop(0)
            sel = slice(None) if rows is None else rows
            m = len(cust) if rows is None else int(rows.sum())
            out = slice(pos, pos + m)
            e_cust[out], e_t[out] = cust[sel], when[sel]
            e_type[out] = schema.EVENT_TYPES.index(etype)
            for target, value in ((e_chan, chan), (e_camp, camp), (e_sid, sess)):
                target[out] = value[sel] if np.ndim(value) else value
            pos += m
        np.maximum(e_t, self.signup[e_cust], out=e_t)
        np.minimum(e_t, self.last, out=e_t)
        order = np.argsort(e_t, kind="stable")
        order = order[~(e_t[order] >= self.erased_at[e_cust[order]])]
        e_t = e_t[order]
        e_cust = e_cust[order]
        e_type = e_type[order]
        e_chan = e_chan[order]
        e_camp = e_camp[order]
        e_sid = e_sid[order]
        del order
        size = len(e_t)
        self.events_frame = pd.DataFrame(
            {
                "event_id": np.arange(1, size + 1, dtype=np.int64),
                "customer_id": np.add(e_cust, 1, dtype=np.int64),
                "occurred_at": self.period.ts(e_t),
                "event_type": _cat(e_type, schema.EVENT_TYPES),
                "channel": _cat(e_chan, ("web", "store", "app", "email", "sms")),
                "campaign_id": _nullable_int(np.where(e_camp >= 0, e_camp + 1, -1)),
                "session_id": _nullable_int(e_sid),
            },
            copy=False,
        )
        self.report(0.8, f"{size:,} events")

    # -- leads -------------------------------------------------------------------------------

    def leads(self) -> None:
        """B2B leads moving lead -> mql -> sql -> opportunity -> won/lost over time, with the
        engagement a CRM records (e-mail opens and clicks, page views, calls, meetings) and
        each stage change. A lead's hidden interest drives its engagement, how far it
        advances and whether it is won; its source shifts its chances too (referrals and
        partners win most, paid search least), so lead scoring has something true to find.
        Drawn from a stream of their own (seed, 37)."""
        rng = np.random.default_rng([self.rng.bit_generator.seed_seq.entropy, 37])
        k = max(LEADS_MIN, int(round(LEADS_PER_CUSTOMER * self.n)))
        u = np.sort(rng.random(k))  # creation days, density growing x2 by the end
        created = np.floor(self.horizon * (np.sqrt(1.0 + 3.0 * u) - 1.0)) + rng.random(k)
        created = np.minimum(created, self.last)
        source = _pick(rng, k, _LEAD_SOURCE_SHARE)
        lift = np.asarray(_LEAD_SOURCE_LIFT)[source]
        interest = rng.normal(0.0, 1.0, k)

        def chance(base: float, of_source: float, of_interest: float) -> np.ndarray:
            logit = np.log(base / (1.0 - base)) + of_source * lift + of_interest * interest
            return 1.0 / (1.0 + np.exp(-logit))

        steps = np.zeros(k, dtype=np.int64)
        alive = np.ones(k, dtype=bool)
        for base in (0.55, 0.5, 0.6):  # lead->mql, mql->sql, sql->opportunity
            alive &= rng.random(k) < chance(base, 0.4, 0.7)
            steps += alive
        closes = (steps == 3) & (rng.random(k) < 0.85)  # some opportunities stall
        wait = np.array([7.0, 14.0, 14.0, 30.0])
        times = created[:, None] + np.cumsum(rng.exponential(wait, (k, 4)), axis=1)
        reached = np.minimum(steps + closes, (times <= self.last).sum(axis=1))
        # stage index: 0 lead, 1 mql, 2 sql, 3 opportunity, 4 won, 5 lost
        won = rng.random(k) < chance(0.35, 1.0, 1.2)
        stage = np.where(reached == 4, np.where(won, 4, 5), reached)
        changed = np.where(reached == 0, created, times[np.arange(k), np.maximum(reached - 1, 0)])
        value = np.round(rng.lognormal(np.log(2500.0), 0.8, k), 2)
        value = np.where(stage >= 2, value, np.nan)
        # A share of leads come from existing customers (upsell); the others become a new
        # customer (one signing up around the win) when won.
        cust = np.full(k, -1, dtype=np.int64)
        signed = np.searchsorted(self.signup, created)
        pick = np.minimum(np.floor(rng.random(k) * signed).astype(np.int64), self.n - 1)
        existing = (rng.random(k) < LEADS_FROM_CUSTOMERS) & (signed > 0)
        existing &= ~(self.erased_at[pick] <= self.last)  # never an erased customer
        cust[existing] = pick[existing] + 1
        w = (stage == 4) & ~existing
        idx = np.searchsorted(self.signup, changed[w]) + rng.integers(0, 3, int(w.sum()))
        cust[w] = np.clip(idx, 0, self.n - 1) + 1
        # Stage history: the lead entered stage i + 1 at times[:, i] for each i < reached.
        step = np.arange(4)[None, :]
        rows, cols = np.nonzero(step < reached[:, None])
        entered = np.where(step < 3, step + 1, stage[:, None])
        changes = {"lead": rows, "when": times[rows, cols], "stage": entered[rows, cols]}
        # Engagement until the lead is decided, stalls or the data end; a stalled lead still
        # opens an e-mail or views a page now and then (a tenth of the rate) for half a year.
        quiet = np.minimum(times[np.arange(k), np.minimum(reached, 3)], self.last)
        gone = np.where(stage >= 4, quiet, np.minimum(quiet + 182.0, self.last))
        starts = {"call": times[:, 0], "meeting": times[:, 1]}  # sales calls MQLs, meets SQLs
        act_lead, act_when, act_kind = [], [], []
        for code, kind in enumerate(schema.LEAD_ACTIVITY_KINDS):
            rate = _LEAD_ACTIVITY_RATE[kind] * np.exp(0.8 * interest - 0.32)
            begin = np.minimum(starts.get(kind, created), quiet)
            spans = [(begin, quiet - begin, rate)]
            if kind not in starts:
                spans.append((quiet, gone - quiet, 0.1 * rate))
            for begin, span, per_day in spans:
                lead_of = np.repeat(np.arange(k), rng.poisson(per_day * span))
                act_lead.append(lead_of)
                act_when.append(begin[lead_of] + rng.random(len(lead_of)) * span[lead_of])
                act_kind.append(np.full(len(lead_of), code, dtype=np.int8))
        when = np.concatenate(act_when)
        order = np.argsort(when, kind="stable")
        self.lead_activity = {
            "lead": np.concatenate(act_lead)[order],
            "when": when[order],
            "kind": np.concatenate(act_kind)[order],
        }
        order = np.argsort(changes["when"], kind="stable")
        self.lead_changes = {name: values[order] for name, values in changes.items()}
        self.lead = {"created": created, "stage": stage, "changed": changed}
        self.lead.update({"value": value, "cust": cust, "source": source})
        self.report(0.85, f"{k:,} leads, {len(when):,} lead activities")

    # -- frames ------------------------------------------------------------------------------

    def customer_frame(self) -> pd.DataFrame:
        """The customers table, loyalty from spend, PII erased where requested."""
        rng, n = self.rng, self.n
        ids = np.arange(1, n + 1, dtype=np.int64)
        done = self.o_status == 0
        spend = np.bincount(self.o_cust[done], self.o_amount[done], minlength=n)
        recent = done & (self.o_t >= self.horizon - 365.0)
        spend_12m = np.bincount(self.o_cust[recent], self.o_amount[recent], minlength=n)
        tier = np.digitize(spend_12m, _TIER_SPEND_12M)
        points = np.floor(spend * (1.0 - 0.8 * rng.random(n))).astype(np.int64)
        er = self.erased

        first = pd.Series(_cat(self.first_code, self.first_names)).astype("str")
        last = pd.Series(_cat(self.last_code, self.last_names)).astype("str")
        local = (first + "." + last.str.replace(" ", "", regex=False)).str.lower()
        domains = np.asarray(_EMAIL_DOMAINS, dtype=object)[self.domain]
        email = local + _pad(ids, 1) + "@" + pd.Series(domains, dtype="str")
        email[~self.has_email | er] = None
        phone = _phone_numbers(ids, self.country)
        phone[~self.has_phone | er] = None
        self.email, self.phone = email, phone

        def erased(codes: np.ndarray) -> np.ndarray:
            return np.where(er, -1, codes)

        frame = pd.DataFrame(
            {
                "customer_id": ids,
                "email": email.astype("str"),
                "first_name": _cat(erased(self.first_code), self.first_names),
                "last_name": _cat(erased(self.last_code), self.last_names),
                "phone": phone.astype("str"),
                "country": _cat(self.country, _COUNTRIES),
                "region": _cat(self.region_code, self.regions),
                "city": _cat(erased(self.place), self.cities),
                "birth_date": self.period.ts(np.where(er, np.nan, np.floor(self.birth))),
                "gender": _cat(erased(self.gender), _GENDERS),
                "signup_at": self.period.ts(self.signup),
                "acquisition_channel": _cat(self.acq, _ACQ_CHANNELS),
                "loyalty_tier": _cat(tier, _TIERS),
                "loyalty_points": points.astype(np.int32),
                "consent_email": self.consent_email & ~er,
                "consent_sms": self.consent_sms & ~er,
                "erased_at": self.period.ts(self.erased_at),
            }
        )
        return frame

    def order_frame(self) -> pd.DataFrame:
        """The orders table in time order, and its lines (`self.items_frame`); releases the
        per-order working arrays. Amount, items and category agree with the lines exactly:
        amount = sum of line amounts, items = sum of quantities, category = the category of
        the largest line (the first of equal ones)."""
        refill = self._refills()
        order = np.argsort(self.o_t, kind="stable")
        r = len(order)
        columns = {"order_id": np.arange(1, r + 1, dtype=np.int64)}
        columns["customer_id"] = np.add(self.o_cust[order], 1, dtype=np.int64)
        del self.o_cust, self.o_key, self.o_kind
        columns["ordered_at"] = self.period.ts(self.o_t[order])
        del self.o_t
        cents = np.rint(self.o_amount[order] * 100.0).astype(np.int64)
        del self.o_amount
        category, refill = self.o_category[order], refill[order]
        del self.o_category
        parts = [  # in chunks of orders: the working arrays stay small at millions of orders
            self._lines(
                cents[i : i + _LINE_CHUNK],
                category[i : i + _LINE_CHUNK],
                refill[i : i + _LINE_CHUNK],
            )
            for i in range(0, r, _LINE_CHUNK)
        ]
        del category, refill
        lines = {key: np.concatenate([part.pop(key) for part in parts]) for key in list(parts[0])}
        del parts
        n_lines = lines.pop("lines")
        start = _offsets(n_lines)
        columns["amount"] = cents / 100.0
        del cents
        columns["items"] = np.add.reduceat(lines["quantity"], start).astype(np.int32)
        largest = np.maximum.reduceat(lines["cents"], start)
        largest = np.flatnonzero(lines["cents"] == np.repeat(largest, n_lines))
        largest = largest[np.searchsorted(largest, start)]  # the first largest line per order
        columns["category"] = _cat(_CATALOGUE.category[lines["product"][largest]], _CATEGORIES)
        del largest
        columns["channel"] = _cat(self.o_channel[order], _ORDER_CHANNELS)
        status = self._planted_outage(columns["ordered_at"], self.o_status[order])
        columns["status"] = _cat(status, _ORDER_STATUSES)
        camp = self.o_campaign[order]
        del self.o_channel, self.o_status, self.o_campaign, order
        columns["campaign_id"] = _nullable_int(np.where(camp >= 0, camp + 1, -1))
        line_no = np.arange(1, len(lines["product"]) + 1, dtype=np.int32)
        line_no -= np.repeat(start.astype(np.int32), n_lines)
        self.items_frame = pd.DataFrame(
            {
                "order_id": np.repeat(columns["order_id"], n_lines),
                "line_no": line_no,
                "product_id": np.add(lines.pop("product"), 1, dtype=np.int32),
                "quantity": lines.pop("quantity"),
                "unit_price": lines.pop("unit") / 100.0,
                "amount": lines.pop("cents") / 100.0,
            },
            copy=False,
        )
        return pd.DataFrame(columns, copy=False)

    def _planted_outage(self, ordered_at: np.ndarray, status: np.ndarray) -> np.ndarray:
        """Statuses with `PLANTED_DROP_SHARE` of the purchases in `PLANTED_DROP` cancelled
        (drawn from a stream of their own: every other table stays as it was)."""
        first, last = (np.datetime64(d, "us") for d in PLANTED_DROP)
        hit = (ordered_at >= first) & (ordered_at < last + np.timedelta64(1, "D")) & (status == 0)
        status = status.copy()
        status[hit & (self.drng.random(len(status)) < PLANTED_DROP_SHARE)] = 2  # cancelled
        return status

    def frames(self) -> dict[str, pd.DataFrame]:
        """Every table as a DataFrame with the schema's columns in order."""
        ts = self.period.ts
        out: dict[str, pd.DataFrame] = {"customers": self.customer_frame()}
        k = len(self.camp_name)
        out["campaigns"] = pd.DataFrame(
            {
                "campaign_id": np.arange(1, k + 1, dtype=np.int64),
                "name": pd.array(self.camp_name, dtype="str"),
                "channel": pd.Categorical(self.camp_channel),
                "objective": pd.Categorical(self.camp_objective),
                "started_at": ts(self.camp_start),
                "ended_at": ts(np.where(self.camp_stop <= self.last, self.camp_stop, np.nan)),
                "spend": np.round(self.camp_spend, 2),
            }
        )
        out["orders"] = self.order_frame()
        out["order_items"] = self.items_frame
        del self.items_frame
        out["products"] = _CATALOGUE.frame()
        out["events"] = self.events_frame
        del self.events_frame
        c = self.c
        order = np.lexsort((c["cust"], c["camp"]))
        out["campaign_contacts"] = pd.DataFrame(
            {
                "campaign_id": c["camp"][order].astype(np.int64) + 1,
                "customer_id": c["cust"][order].astype(np.int64) + 1,
                "sent_at": ts(c["sent"][order]),
                "test_group": _cat(c["control"][order].astype(np.int8), schema.CONTACT_GROUPS),
                "opened_at": ts(c["opened"][order]),
                "clicked_at": ts(c["clicked"][order]),
            }
        )
        out["survey_responses"] = pd.DataFrame(
            {
                "response_id": np.arange(1, len(self.s_cust) + 1, dtype=np.int64),
                "customer_id": self.s_cust.astype(np.int64) + 1,
                "answered_at": ts(self.s_when),
                "survey": _cat(np.where(self.s_nps, 0, 1), schema.SURVEYS),
                "score": self.s_score,
                "comment": _cat(self.s_comment, self.comment_texts),
                "touchpoint": _cat(self.s_touch, _TOUCHPOINTS),
            }
        )
        out["support_tickets"] = pd.DataFrame(
            {
                "ticket_id": np.arange(1, len(self.t_cust) + 1, dtype=np.int64),
                "customer_id": self.t_cust.astype(np.int64) + 1,
                "opened_at": ts(self.t_open),
                "closed_at": ts(self.t_closed),
                "channel": _cat(self.t_channel, _TICKET_CHANNELS),
                "category": _cat(self.t_category, _TICKET_CATEGORIES),
                "priority": _cat(self.t_priority, schema.TICKET_PRIORITIES),
                "status": _cat(self.t_status, schema.TICKET_STATUSES),
            }
        )
        lead = self.lead
        out["leads"] = pd.DataFrame(
            {
                "lead_id": np.arange(1, len(lead["stage"]) + 1, dtype=np.int64),
                "customer_id": _nullable_int(lead["cust"]),
                "created_at": ts(lead["created"]),
                "source": _cat(lead["source"], _LEAD_SOURCES),
                "stage": _cat(lead["stage"], schema.LEAD_STAGES),
                "stage_changed_at": ts(lead["changed"]),
                "deal_value": lead["value"],
            }
        )
        act = self.lead_activity
        out["lead_activities"] = pd.DataFrame(
            {
                "activity_id": np.arange(1, len(act["lead"]) + 1, dtype=np.int64),
                "lead_id": act["lead"].astype(np.int64) + 1,
                "occurred_at": ts(act["when"]),
                "kind": _cat(act["kind"], schema.LEAD_ACTIVITY_KINDS),
            }
        )
        chg = self.lead_changes
        out["lead_stage_changes"] = pd.DataFrame(
            {
                "change_id": np.arange(1, len(chg["lead"]) + 1, dtype=np.int64),
                "lead_id": chg["lead"].astype(np.int64) + 1,
                "changed_at": ts(chg["when"]),
                "stage": _cat(chg["stage"], schema.LEAD_STAGES),
            }
        )
        out["suppressions"] = self.suppressions()
        _Planter(self.prng, self.period).plant(out)
        tables = {}
        for name in (*schema.DATA_TABLES, "suppressions", "planted_duplicates"):
            columns = [c.name for c in schema.table(name).columns if not c.info.get("bookkeeping")]
            frame = out.pop(name)
            tables[name] = frame if list(frame.columns) == columns else frame[columns]
        return tables

    def suppressions(self) -> pd.DataFrame:
        """A few dozen e-mails and phones of existing customers that must never be exported."""
        rng = self.rng
        values, kinds, reasons, added = [], [], [], []
        for kind, k, column, why in (
            ("email", 30, self.email, ("unsubscribed", "hard_bounce", "spam_complaint", "legal")),
            ("phone", 10, self.phone, ("opted_out", "wrong_number", "legal")),
        ):
            pool = np.flatnonzero(column.notna().to_numpy())
            pick = np.sort(rng.choice(pool, size=min(k, len(pool)), replace=False))
            values += column.iloc[pick].tolist()
            kinds += [kind] * len(pick)
            reasons += [why[i] for i in rng.integers(0, len(why), len(pick))]
            lo = self.signup[pick]
            added.append(lo + rng.random(len(pick)) * (self.last - lo))
        return pd.DataFrame(
            {
                "value": pd.array(values, dtype="str"),
                "kind": pd.Categorical(kinds, categories=["email", "phone"]),
                "reason": pd.Categorical(reasons),
                "added_at": self.period.ts(np.concatenate(added)),
                "hashed": np.zeros(len(values), dtype=bool),  # plain addresses, not hashes
            }
        )


# --- planted duplicates and data-quality problems --------------------------------------------

DUPLICATE_SHARE = 0.03
"""Share of people (live, signed up before the last 90 days) who signed up a second time."""

THIRD_RECORD_SHARE = 0.1
"""Share of those who signed up a third time."""

DUPLICATE_KINDS = (
    "name_typo",
    "email_case",
    "email_tag",
    "swapped_names",
    "phone_format",
    "moved_city",
)
"""What a planted copy changes (one or two of them); a copy without an e-mail kind has no
e-mail (`no_email`: a store sign-up), so every copy differs from its original somewhere."""

_KIND_SHARE = (0.22, 0.2, 0.1, 0.13, 0.2, 0.15)
_MOVE_SHARE = 0.5
"""Chance that one of the person's orders, sessions, tickets or surveys after a copy's
sign-up (plus a day) went to the copy instead (split evenly among the copies then open)."""
_TRUNK = {"US": "1 ", "GB": "0", "DE": "0", "FR": "0", "NL": "0", "ES": ""}
_EXIT = {"US": "011 ", "GB": "00", "DE": "00", "FR": "00", "NL": "00", "ES": "00"}
_KEYBOARD_NEAR = dict(zip("aeiounmrstl", "eiauomnetar", strict=True))


def _typo(name: str, u: np.ndarray) -> str:
    """`name` with one typing mistake (swapped, dropped, doubled or mistyped letter)."""
    if len(name) < 3:
        return name + name[-1]
    i = 1 + int(u[0] * (len(name) - 2))  # never the first letter
    op = int(u[1] * 4)
    if op == 0 and name[i] != name[i + 1]:
        out = name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    elif op == 2:
        out = name[:i] + name[i] + name[i:]
    elif op == 3 and name[i].lower() in _KEYBOARD_NEAR:
        out = name[:i] + _KEYBOARD_NEAR[name[i].lower()] + name[i + 1 :]
    else:
        out = name[:i] + name[i + 1 :]
    return out if out != name else name + name[-1]


def _phone_variant(phone: str, country: str, u: float) -> str:
    """The same number written another way: national ("0151 12345678") or with the
    international exit code ("0049151 12345678")."""
    code, area, *number = phone[1:].split(" ")
    if u < 0.5:
        return _TRUNK[country] + area + " " + "".join(number)
    return _EXIT[country] + code + area + "".join(number)


def _email_variant(email: str, kind: str, u: float) -> str:
    """The same address in another case, or with a +tag."""
    local, _, domain = email.partition("@")
    if kind == "email_tag":
        tag = ("shop", "news", "promo")[int(u * 3)]
        return f"{local}+{tag}@{domain}"
    if u < 0.5:
        return email.upper()
    return ".".join(p[:1].upper() + p[1:] for p in local.split(".")) + "@" + domain.title()


class _Planter:
    """Plants duplicate customers and a few data-quality problems into generated frames,
    from a random stream of its own (every other number the demo draws stays the same)."""

    def __init__(self, rng: np.random.Generator, period: _Period) -> None:
        self.rng = rng
        self.period = period

    def plant(self, out: dict[str, pd.DataFrame]) -> None:
        """Append copies to customers, move some later activity to them, fill
        out["planted_duplicates"]; then spoil a few e-mails and birth dates."""
        cust = out["customers"]
        n = len(cust)
        copies = self._copies(cust)
        out["planted_duplicates"] = pd.DataFrame(
            {
                "customer_id": copies["customer_id"].to_numpy(np.int64),
                "duplicate_of": copies["duplicate_of"].to_numpy(np.int64),
                "kind": pd.array(copies["kind"].tolist(), dtype="str"),
            }
        )
        self._move_activity(out, copies, n)
        rows = self._copy_rows(cust, copies)
        both = pd.concat([cust.astype({c: "object" for c in _TEXT}), rows], ignore_index=True)
        self._loyalty(both, out["orders"], copies)
        planted = set(copies["duplicate_of"]) | set(copies["customer_id"])
        self._spoil(both, planted, set(out["suppressions"]["value"]))
        for col in _TEXT:
            if col in ("email", "phone"):
                both[col] = both[col].astype("str")
            else:
                known = list(cust[col].cat.categories)
                extra = sorted(set(both[col].dropna()) - set(known))
                both[col] = pd.Categorical(both[col], categories=known + extra)
        out["customers"] = both

    def _copies(self, cust: pd.DataFrame) -> pd.DataFrame:
        """Who signs up again, when, and what differs (ids appended in sign-up order)."""
        rng = self.rng
        n = len(cust)
        end = np.datetime64(self.period.start, "us") + np.timedelta64(self.period.days, "D")
        signup = cust["signup_at"].to_numpy()
        pool = np.flatnonzero(
            cust["erased_at"].isna().to_numpy() & (signup < end - np.timedelta64(120, "D"))
        )
        k = min(len(pool), int(round(DUPLICATE_SHARE * n)))
        people = np.sort(rng.choice(pool, size=k, replace=False)) if k else np.zeros(0, int)
        third = rng.random(k) < THIRD_RECORD_SHARE
        orig = np.concatenate([people, people[third]])
        m = len(orig)
        lo = signup[orig] + np.timedelta64(30, "D")
        span = (end - np.timedelta64(30, "D") - lo).astype(np.int64)
        when = lo + (rng.random(m) * span).astype(np.int64).astype("timedelta64[us]")
        when = when.astype("datetime64[s]").astype("datetime64[us]")
        two = rng.random(m) < 0.4
        p = np.asarray(_KIND_SHARE) / sum(_KIND_SHARE)
        kinds = []
        for i in range(m):  # a few hundred copies per 10,000 customers
            picked = list(rng.choice(len(DUPLICATE_KINDS), size=2, replace=False, p=p))
            chosen = {DUPLICATE_KINDS[j] for j in picked[: 1 + two[i]]}
            if {"email_case", "email_tag"} <= chosen:
                chosen.discard("email_tag")
            kinds.append(chosen)
        order = np.argsort(when, kind="stable")
        frame = pd.DataFrame(
            {
                "customer_id": np.arange(n + 1, n + m + 1, dtype=np.int64),
                "duplicate_of": cust["customer_id"].to_numpy()[orig[order]],
                "signup_at": when[order],
                "kinds": [kinds[i] for i in order],
            }
        )
        has_email = cust["email"].notna().to_numpy()[orig[order]]
        for ks, e in zip(frame["kinds"], has_email, strict=True):
            if e and not ks & {"email_case", "email_tag"}:
                ks.add("no_email")
            elif not e:
                ks -= {"email_case", "email_tag"}
                if not ks:  # nothing left that differs: a typo in the name
                    ks.add("name_typo")
        frame["kind"] = [
            ",".join(k for k in (*DUPLICATE_KINDS, "no_email") if k in ks) for ks in frame["kinds"]
        ]
        return frame

    def _copy_rows(self, cust: pd.DataFrame, copies: pd.DataFrame) -> pd.DataFrame:
        """The copies' customer rows: the original's details with the planted differences."""
        rng = self.rng
        src = cust.set_index("customer_id").loc[copies["duplicate_of"]].reset_index(drop=True)
        rows = src.astype({c: "object" for c in _TEXT}).copy()
        m = len(rows)
        u = rng.random((m, 4))
        places = {c: [(r, city) for r, city in _PLACES[c]] for c in _COUNTRIES}
        used: set[str] = set()
        for i, kinds in enumerate(copies["kinds"]):
            first, last = rows.at[i, "first_name"], rows.at[i, "last_name"]
            country = str(rows.at[i, "country"])
            if "name_typo" in kinds:
                if u[i, 0] < 0.5:
                    first = _typo(first, u[i, 1:])
                else:
                    last = _typo(last, u[i, 1:])
            if "swapped_names" in kinds:
                first, last = last, first
            rows.at[i, "first_name"], rows.at[i, "last_name"] = first, last
            email = rows.at[i, "email"]
            if isinstance(email, str):
                email_kind = sorted(kinds & {"email_case", "email_tag"})
                if email_kind:  # a third record writes it differently from the second
                    tries = (
                        _email_variant(email, email_kind[0], (u[i, 3] + s) % 1)
                        for s in (0, 0.5, 0.34)
                    )
                    email = next(e for e in tries if e not in used)
                    used.add(email)
                rows.at[i, "email"] = email if email_kind else None
            phone = rows.at[i, "phone"]
            if "phone_format" in kinds and isinstance(phone, str):
                rows.at[i, "phone"] = _phone_variant(phone, country, u[i, 2])
            if "moved_city" in kinds:
                options = [p for p in places[country] if p[1] != rows.at[i, "city"]]
                region, city = options[int(u[i, 3] * len(options))]
                rows.at[i, "region"], rows.at[i, "city"] = region, city
        rows["customer_id"] = copies["customer_id"].to_numpy()
        rows["signup_at"] = copies["signup_at"].to_numpy()
        rows["acquisition_channel"] = np.asarray(_ACQ_CHANNELS, dtype=object)[
            _pick(rng, m, _ACQ_SHARE)
        ]
        opted_out = rng.random((m, 2)) < 0.35  # the copy opted out where the original did not
        rows["consent_email"] = rows["consent_email"].to_numpy(bool) & ~opted_out[:, 0]
        rows["consent_email"] &= rows["email"].notna()
        rows["consent_sms"] = rows["consent_sms"].to_numpy(bool) & ~opted_out[:, 1]
        return rows[cust.columns]

    def _move_activity(self, out: dict[str, pd.DataFrame], copies: pd.DataFrame, n: int) -> None:
        """Some of each person's orders, web/app sessions, tickets and surveys after a
        copy's sign-up went to the copy (purchase sessions follow their order)."""
        rng = self.rng
        day = np.timedelta64(1, "D")
        never = np.datetime64("9999-01-01", "us")
        opens = np.full((n + 1, 2), never, dtype="datetime64[us]")
        ids = np.zeros((n + 1, 2), dtype=np.int64)
        for _, row in copies.sort_values("customer_id").iterrows():  # a few per 100 people
            slot = 0 if ids[row["duplicate_of"], 0] == 0 else 1
            ids[row["duplicate_of"], slot] = row["customer_id"]
            opens[row["duplicate_of"], slot] = row["signup_at"] + day

        def target(who: np.ndarray, when: np.ndarray) -> np.ndarray:
            m = (when >= opens[who, 0]).astype(np.int64) + (when >= opens[who, 1])
            pick = np.floor(rng.random(len(who)) * (m + 1 / _MOVE_SHARE - 1)).astype(np.int64)
            pick = np.where(pick > m, 0, pick)  # the original keeps the rest
            return np.where(pick == 1, ids[who, 0], np.where(pick == 2, ids[who, 1], who))

        has_copy = ids[:, 0] > 0
        orders = out["orders"]
        cid = orders["customer_id"].to_numpy()
        sel = np.flatnonzero(has_copy[cid])
        new = target(cid[sel], orders["ordered_at"].to_numpy()[sel])
        moved_order = pd.DataFrame(
            {
                "customer_id": cid[sel],
                "occurred_at": orders["ordered_at"].to_numpy()[sel],
                "new": new,
            }
        )
        cid = cid.copy()
        cid[sel] = new
        orders["customer_id"] = cid

        events = out["events"]
        ecid = events["customer_id"].to_numpy()
        sess = events["session_id"]
        sel = np.flatnonzero(has_copy[ecid] & sess.notna().to_numpy())
        sub = pd.DataFrame(
            {
                "row": sel,
                "customer_id": ecid[sel],
                "session_id": sess.to_numpy(dtype=np.int64, na_value=0)[sel],
                "occurred_at": events["occurred_at"].to_numpy()[sel],
                "purchase": (events["event_type"].to_numpy()[sel] == "purchase"),
            }
        )
        per = sub.groupby("session_id", sort=True).agg(
            customer_id=("customer_id", "first"), start=("occurred_at", "min")
        )
        per["new"] = target(per["customer_id"].to_numpy(), per["start"].to_numpy())
        bought = sub[sub["purchase"]].merge(moved_order, on=["customer_id", "occurred_at"])
        per.loc[bought["session_id"].to_numpy(), "new"] = bought["new"].to_numpy()
        ecid = ecid.copy()
        ecid[sub["row"].to_numpy()] = per.loc[sub["session_id"], "new"].to_numpy()
        events["customer_id"] = ecid

        for name, column in (("support_tickets", "opened_at"), ("survey_responses", "answered_at")):
            frame = out[name]
            tcid = frame["customer_id"].to_numpy().copy()
            sel = np.flatnonzero(has_copy[tcid])
            tcid[sel] = target(tcid[sel], frame[column].to_numpy()[sel])
            frame["customer_id"] = tcid

    def _loyalty(self, cust: pd.DataFrame, orders: pd.DataFrame, copies: pd.DataFrame) -> None:
        """Loyalty tier and points of the originals and copies from the orders each has now."""
        who = np.concatenate([copies["duplicate_of"].unique(), copies["customer_id"]])
        mine = orders[orders["customer_id"].isin(who) & (orders["status"] == "completed")]
        end = np.datetime64(self.period.start, "us") + np.timedelta64(self.period.days, "D")
        spend = mine.groupby("customer_id")["amount"].sum().reindex(who, fill_value=0.0)
        recent = mine[mine["ordered_at"].to_numpy() >= end - np.timedelta64(365, "D")]
        spend_12m = recent.groupby("customer_id")["amount"].sum().reindex(who, fill_value=0.0)
        rows = who - 1  # customer ids are 1..n+m in order
        tier = np.asarray(_TIERS, dtype=object)[np.digitize(spend_12m.to_numpy(), _TIER_SPEND_12M)]
        cust.loc[rows, "loyalty_tier"] = tier
        points = np.floor(spend.to_numpy() * (1.0 - 0.8 * self.rng.random(len(who))))
        cust.loc[rows, "loyalty_points"] = points.astype(np.int32)

    def _spoil(self, cust: pd.DataFrame, planted: set[int], suppressed: set[str]) -> None:
        """A few data-quality problems for the quality view: e-mails that are not addresses
        and birth dates a century in the future (a mistyped year)."""
        rng = self.rng
        k = max(2, len(cust) // 5_000)
        ok = cust["erased_at"].isna() & ~cust["customer_id"].isin(planted)
        pool = np.flatnonzero(
            (ok & cust["email"].notna() & ~cust["email"].isin(suppressed)).to_numpy()
        )
        bad = np.sort(rng.choice(pool, size=min(k, len(pool)), replace=False))
        for j, i in enumerate(bad):
            email = cust.at[i, "email"]
            cust.at[i, "email"] = (
                email.replace("@", " at ") if j % 2 == 0 else email.rsplit(".", 1)[0]
            )
        pool = np.flatnonzero((ok & cust["birth_date"].notna()).to_numpy())
        pool = np.setdiff1d(pool, bad)
        late = np.sort(rng.choice(pool, size=min(k, len(pool)), replace=False))
        cust.loc[late, "birth_date"] = cust.loc[late, "birth_date"] + pd.DateOffset(years=100)


_TEXT = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "region",
    "city",
    "acquisition_channel",
    "loyalty_tier",
)
"""Customer columns the planter writes text into (categoricals get the new names added)."""


def generate(
    customers: int = 20_000,
    seed: int = 42,
    end: date = DEMO_END,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, pd.DataFrame]:
    """One DataFrame per data table (keys = crm_core.schema.DATA_TABLES plus 'suppressions' and
    'planted_duplicates', the truth about the planted copies), with exactly the columns of
    the schema table (not the import bookkeeping column, which the demo leaves empty) and
    dtypes that load into it."""
    demo = _Demo(customers, seed, end, progress)
    demo.report(0.0, "generating demo data")
    demo.customers()
    demo.campaigns()
    demo.purchases()
    demo.erasures()
    demo.contacts()
    demo.order_details()
    demo.tickets()
    demo.surveys()
    demo.events()
    demo.leads()
    frames = demo.frames()
    demo.report(0.9, "demo data generated")
    return frames


def create_demo_store(
    store: Store,
    customers: int = 20_000,
    seed: int = 42,
    end: date = DEMO_END,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, int]:
    """Generate and load everything in ONE transaction (store.begin() + store.insert_df per table
    in schema.DATA_TABLES order, then suppressions and planted_duplicates); returns rows per
    table."""

    def scaled(fraction: float, message: str) -> None:
        if progress is not None:
            progress(0.8 * fraction, message)

    frames = generate(customers, seed, end, scaled)
    counts: dict[str, int] = {}
    names = (*schema.DATA_TABLES, "suppressions", "planted_duplicates")
    with store.begin() as conn:
        for i, name in enumerate(names):
            if progress is not None:
                progress(0.8 + 0.2 * i / len(names), f"loading {name}")
            counts[name] = store.insert_df(conn, name, frames[name])
    if progress is not None:
        progress(1.0, f"demo store ready: {counts['customers']:,} customers")
    return counts

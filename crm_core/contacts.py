"""E-mail addresses and phone numbers: when two are the same address, and whether one is
valid, decided in one place for the data quality view, duplicate detection and exports.

Keys compare addresses as a mail server or a phone network would: an e-mail's case and
surrounding spaces never matter, and for Gmail neither do dots or a +tag in the local part;
a phone number is its digits with the country code (`phonenumbers`, E.164), so
"+49 30 1234567", "0049301234567" and "030 1234567" in Germany are one number. Validity
uses the kept libraries `email-validator` (syntax only, no DNS lookups) and `phonenumbers`.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
"""Domains whose mailboxes ignore dots and +tags in the local part."""

_NOT_DIGIT = re.compile(r"\D")


def email_key(email: pd.Series) -> pd.Series:
    """Each e-mail as the mailbox it reaches: trimmed, lower case, Gmail dots and +tags
    dropped (missing or blank: <NA>)."""
    text = email.astype("string").str.strip().str.lower()
    local = text.str.rpartition("@")[0] if text.notna().any() else text
    domain = text.str.rpartition("@")[2] if text.notna().any() else text
    gmail = domain.isin(GMAIL_DOMAINS) & (local != "")
    plain = local.str.split("+", n=1).str[0].str.replace(".", "", regex=False)
    domain = domain.where(~gmail, "gmail.com")
    key = local.where(~gmail, plain) + "@" + domain
    return key.where((text != "") & text.str.contains("@", regex=False), pd.NA)


def _blank(value: object) -> bool:
    return (
        value is None
        or value is pd.NA
        or (isinstance(value, float) and np.isnan(value))
        or (not str(value).strip())
    )


def _parsed_phones(phone: pd.Series, country: pd.Series | str | None):
    """(text, parsed number or None when it cannot be read) per phone; None for a blank."""
    import phonenumbers

    if isinstance(country, pd.Series):
        regions = country.astype("string").to_numpy(dtype=object)
    else:
        regions = [country] * len(phone)
    for value, region in zip(phone.to_numpy(dtype=object), regions, strict=True):
        if _blank(value):
            yield None
            continue
        code = None if _blank(region) else str(region).strip().upper()
        try:
            yield str(value), phonenumbers.parse(str(value), code)
        except phonenumbers.NumberParseException:
            yield str(value), None


def phone_key(phone: pd.Series, country: pd.Series | str | None = None) -> pd.Series:
    """Each phone number as E.164 ("+4930...") read in its customer's country (ISO alpha-2)
    when it has no country code; a number that cannot be read keeps its digits; missing or
    blank is <NA>."""
    import phonenumbers

    e164 = phonenumbers.PhoneNumberFormat.E164
    keys = [
        pd.NA
        if item is None
        else (
            phonenumbers.format_number(item[1], e164)
            if item[1] is not None
            else (_NOT_DIGIT.sub("", item[0]) or pd.NA)
        )
        for item in _parsed_phones(phone, country)
    ]
    return pd.Series(keys, index=phone.index, dtype="string")


def email_valid(email: pd.Series) -> pd.Series:
    """Whether each e-mail is a well-formed address (email-validator, no DNS); <NA> where
    it is missing."""
    from email_validator import EmailNotValidError, validate_email

    def check(value: object) -> object:
        if _blank(value):
            return pd.NA
        try:
            validate_email(str(value).strip(), check_deliverability=False)
        except EmailNotValidError:
            return False
        return True

    return email.astype("object").map(check).astype("boolean")


def phone_valid(phone: pd.Series, country: pd.Series | str | None = None) -> pd.Series:
    """Whether each phone number is a valid number of its country (phonenumbers); <NA>
    where it is missing."""
    import phonenumbers

    result = [
        pd.NA if item is None else (item[1] is not None and phonenumbers.is_valid_number(item[1]))
        for item in _parsed_phones(phone, country)
    ]
    return pd.Series(result, index=phone.index, dtype="boolean")

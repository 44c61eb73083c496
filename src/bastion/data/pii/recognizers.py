"""The structured recognizers: one Hyperscan pattern each (linear-time, no backtracking), a base score, an
optional validator (checksum, number plan, range) and context words that raise the score when they appear
just before the match. Entity names are Presidio's where Presidio has one.

This table is the engine's data: adding an identifier is adding a row (and a test).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bastion.data.pii import validators as v
from bastion.data.pii.phones import phone_number

Validator = Callable[[str], float | None]


@dataclass(frozen=True, slots=True)
class Recognizer:
    name: str
    entity: str
    pattern: str  # Hyperscan syntax, ASCII
    score: float
    validate: Validator | None = None
    context: tuple[str, ...] = ()
    needs_context: bool = False  # reported only with a context word nearby
    caseless: bool = False
    trim: str = ""  # trailing characters a match should not end with (sentence punctuation after URLs)
    span: Callable[[str, int, int], tuple[int, int]] | None = None  # the identifier's own span in a match
    # Not even validated where a stronger, validated identifier (a card, an IBAN, a date) already stands:
    # the digits of a Luhn-valid card are not also a phone number. Saves the costliest validations.
    yields: bool = False


_SEPARATORS = " -./"
_BARE_SEPARATORS = frozenset("-./")
_ASSIGNMENT = re.compile(r"[:=]\s*[\"']?")
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]{0,6}\.?"
_YEAR = r"(?:1[89]\d{2}|20\d{2})"
_DATE_CONTEXT = (
    "born",
    "birth",
    "dob",
    "date",
    "on",
    "since",
    "until",
    "in",
    "from",
    "year",
    "dated",
    "expires",
    "during",
    "before",
    "after",
    "by",
)
_CARD_CONTEXT = ("card", "credit", "visa", "mastercard", "amex", "debit", "cc", "payment", "pay", "number")
_SECRET_CONTEXT = ("key", "token", "secret", "password", "api", "credential", "auth", "bearer")
_MONTH_NAMES = (
    "jan", "january", "feb", "february", "mar", "march", "apr", "april", "may", "jun", "june", "jul", "july",
    "aug", "august", "sep", "sept", "september", "oct", "october", "nov", "november", "dec", "december",
)  # fmt: skip


def _month_date(text: str) -> float | None:
    """A date written with a month name: the word must be a month, the day 1-31."""
    words = [w.strip(".,").lower() for w in text.replace(",", " ").split()]
    if not any(w in _MONTH_NAMES for w in words):
        return None
    days = [
        int(w.rstrip("stndrh"))
        for w in words
        if w.rstrip("stndrh").isdigit() and len(w.rstrip("stndrh")) <= 2
    ]
    return 0.0 if all(1 <= d <= 31 for d in days) else None


def _assigned_value(text: str, start: int, end: int) -> tuple[int, int]:
    """``token = "value"``: only the value is the secret."""
    match = _ASSIGNMENT.search(text, start, end)
    return (match.end(), end) if match else (start, end)


def _through_end_marker(text: str, start: int, end: int) -> tuple[int, int]:
    """A PEM private key: from its BEGIN line through its END line (when it is there)."""
    close = text.find("-----END", end, end + 16384)
    if close < 0:
        return start, end
    stop = text.find("-----", close + 8, close + 64)
    return start, stop + 5 if stop >= 0 else end


def _not_embedded(text: str, start: int, end: int) -> tuple[int, int]:
    """A digit group inside a longer run of digit groups is not an identifier of its own: a dotted quad
    inside ``03.93.92.16.85`` (a phone), a "card" inside an IBAN's digits, a year inside an invalid date,
    a "phone" that is the first three groups of a sixteen-digit number. Checked with the separators the
    candidate itself uses (or, for a bare run, any of ``-./``); an empty span rejects the candidate."""
    joined_before = start >= 2 and text[start - 1] in _SEPARATORS and text[start - 2].isdigit()
    joined_after = end + 1 < len(text) and text[end] in _SEPARATORS and text[end + 1].isdigit()
    if not (joined_before or joined_after):
        return start, end  # the usual case, decided without looking inside the candidate
    separators = {c for c in text[start:end] if c in _SEPARATORS} or _BARE_SEPARATORS
    if (joined_before and text[start - 1] in separators) or (joined_after and text[end] in separators):
        return start, start
    return start, end


def _year(text: str) -> float | None:
    return 0.0 if 1900 <= int(text) <= 2099 else None


RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(
        "email",
        "EMAIL_ADDRESS",
        r"\b[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        0.95,
        context=("email", "e-mail", "mail", "contact"),
    ),
    Recognizer(
        "url",
        "URL",
        # ends on the character after the URL (or the end of the text), so that Hyperscan reports each URL
        # once, not at every character; the trim drops that character
        r"\b(?:https?|ftp)://[^\s<>\"'`{}|\\^\x00]{2,}(?:[\s<>\"'`{}|\\^\x00]|\z)",
        0.85,
        caseless=True,
        trim=".,;:!?)]}'\"" + " \t\n\v\f\r<>`{|\\^\x00",
    ),
    Recognizer(
        "www",
        "URL",
        r"\bwww\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?:/[^\s<>\"'`\x00]*)?",
        0.75,
        trim=".,;:!?)]}'\"",
    ),
    Recognizer(
        "credit_card",
        "CREDIT_CARD",
        r"\b\d{4}(?:[ -]?\d{1,4}){2,4}\b|\b\d{12,19}\b",
        0.9,
        validate=v.credit_card,
        context=_CARD_CONTEXT,
        span=_not_embedded,
    ),
    Recognizer(
        "iban",
        "IBAN_CODE",
        r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}\b",
        0.95,
        validate=v.iban,
        context=("iban", "bank", "account", "transfer"),
    ),
    Recognizer(
        "us_ssn",
        "US_SSN",
        r"\b\d{3}([- ]?)\d{2}[- ]?\d{4}\b",
        0.6,
        validate=v.us_ssn,
        context=("ssn", "social security", "social", "security number", "ss#"),
    ),
    Recognizer(
        "phone",
        "PHONE_NUMBER",
        # international; a parenthesised area code; national digit groups with separators; 10-12 bare digits
        # (each may end in an extension: x123, ext. 123)
        r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]?\d{1,5}){1,5}"
        r"|\(\d{1,5}\)[ .-]?\d{1,5}(?:[ .-]?\d{1,5}){1,4}"
        r"|\b\d{1,5}(?:[ .-]\d{1,5}){1,5}|\b\d{10,12})(?:\s?(?:x|ext\.?)\s?\d{1,6})?\b",
        0.5,
        validate=phone_number,
        yields=True,
        span=_not_embedded,
        context=(
            "phone",
            "call",
            "tel",
            "telephone",
            "mobile",
            "cell",
            "fax",
            "contact",
            "reach",
            "dial",
            "number",
            "text",
        ),
    ),
    Recognizer(
        "ipv4",
        "IP_ADDRESS",
        r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b",
        0.85,
        validate=v.ip_address,
        context=("ip", "address", "host", "server"),
        span=_not_embedded,
    ),
    Recognizer(
        "ipv6", "IP_ADDRESS", r"\b[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}\b", 0.85, validate=v.ip_address
    ),
    Recognizer(
        "mac", "MAC_ADDRESS", r"\b[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}\b", 0.8, validate=v.mac_address
    ),
    Recognizer(
        "iso_date",
        "DATE_TIME",
        r"\b" + _YEAR + r"-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?\b",
        0.85,
        validate=v.numeric_date,
    ),
    Recognizer(
        "numeric_date",
        "DATE_TIME",
        r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b",
        0.6,
        validate=v.numeric_date,
        context=_DATE_CONTEXT,
    ),
    Recognizer(
        "month_date",
        "DATE_TIME",
        r"\b"
        + _MONTHS
        + r"\s{1,3}\d{1,2}(?:st|nd|rd|th)?,?\s{1,3}"
        + _YEAR
        + r"\b|\b\d{1,2}(?:st|nd|rd|th)?\s{1,3}"
        r"(?:of\s{1,3})?" + _MONTHS + r",?\s{1,3}" + _YEAR + r"\b|\b" + _MONTHS + r"\s{1,3}" + _YEAR + r"\b",
        0.85,
        validate=_month_date,
        caseless=True,
    ),
    Recognizer(
        "year",
        "DATE_TIME",
        r"\b" + _YEAR + r"\b",
        0.3,
        validate=_year,
        context=_DATE_CONTEXT,
        span=_not_embedded,
    ),
    Recognizer("weekday", "DATE_TIME", r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b", 0.6, caseless=True),
    Recognizer(
        "time",
        "DATE_TIME",
        r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?\b",
        0.35,
        caseless=True,
        context=("at", "time", "o'clock", "am", "pm"),
    ),
    Recognizer(
        "bitcoin",
        "CRYPTO",
        r"\bbc1[a-z0-9]{25,90}\b|\b[13][1-9A-HJ-NP-Za-km-z]{25,34}\b",
        1.0,
        validate=v.bitcoin,
    ),
    Recognizer(
        "ethereum",
        "CRYPTO",
        r"\b0x[0-9a-fA-F]{40}\b",
        0.8,
        validate=v.ethereum,
        context=("wallet", "eth", "ethereum", "address"),
    ),
    Recognizer(
        "us_passport",
        "US_PASSPORT",
        r"\b[A-Z]?\d{9}\b",
        0.4,
        needs_context=True,
        context=("passport", "travel document"),
    ),
    Recognizer(
        "us_driver_license",
        "US_DRIVER_LICENSE",
        r"\b[A-Z]{1,2}\d{6,12}\b",
        0.4,
        needs_context=True,
        context=("driver", "driver's", "license", "licence", "dl", "driving"),
    ),
    # Credentials: provider prefixes (near-certain), then generic assignments whose value looks random.
    Recognizer(
        "aws_access_key",
        "CREDENTIAL",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{16}\b",
        0.95,
    ),
    Recognizer(
        "github_token", "CREDENTIAL", r"\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}\b", 1.0
    ),
    Recognizer("gitlab_token", "CREDENTIAL", r"\bglpat-[A-Za-z0-9_-]{20,}", 1.0),
    Recognizer("slack_token", "CREDENTIAL", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", 1.0),
    Recognizer("slack_webhook", "CREDENTIAL", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}", 1.0),
    Recognizer("stripe_key", "CREDENTIAL", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}\b", 1.0),
    Recognizer("google_api_key", "CREDENTIAL", r"\bAIza[0-9A-Za-z_-]{35}", 1.0),
    Recognizer(
        "openai_key",
        "CREDENTIAL",
        r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_-]{20,}",
        0.9,
        validate=v.high_entropy,
    ),
    Recognizer("huggingface_token", "CREDENTIAL", r"\bhf_[A-Za-z0-9]{30,}\b", 1.0),
    Recognizer("bastion_api_key", "CREDENTIAL", r"\bbst_[a-z2-7]{16}_[A-Za-z0-9_-]{43}", 1.0),
    Recognizer("jwt", "CREDENTIAL", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 0.95),
    Recognizer(
        "private_key",
        "CREDENTIAL",
        r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY( BLOCK)?-----",
        1.0,
        span=_through_end_marker,
    ),
    Recognizer(
        "secret_assignment",
        "CREDENTIAL",
        r"\b(?:api[_-]?key|apikey|secret|token|passw(?:or)?d|pwd|access[_-]?key|client[_-]?secret|auth)"
        r"[\"']?\s*[:=]\s*[\"']?[^\s\"'`,;\x00]{16,}",
        0.8,
        validate=v.high_entropy,
        caseless=True,
        context=_SECRET_CONTEXT,
        span=_assigned_value,
    ),
)

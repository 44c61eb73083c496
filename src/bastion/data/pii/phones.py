"""Phone numbers: a digit run shaped like a phone number, confirmed against libphonenumber's numbering-plan
metadata.

A number written with a country code is split into the code (the longest known prefix) and the national
number; one written without is tried against a set of regions, with each region's trunk prefix removed. The
national number must have a length the region's plan allows and match the plan's national-number pattern.
libphonenumber's general parser and type-by-type validity checks are not used: on the request path they
cost ten times more than this check on the same metadata.
"""

from __future__ import annotations

import re
from functools import cache

import phonenumbers
from phonenumbers import PhoneMetadata

# Regions tried for national numbers, grouped by their trunk prefix — what a national number written in that
# country starts with before its significant digits ("1" optional in North America, "0" in most of the rest;
# none in Italy and Spain, where a leading zero is part of the number).
REGION_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("1", ("US", "CA")),
    ("0", ("GB", "DE", "FR", "IN", "AU", "IL", "BR", "NL", "SE", "CH", "IE")),
    ("", ("IT", "ES")),
)


class _Plan:
    """One region's numbering plan: allowed national-number lengths and the national-number pattern."""

    __slots__ = ("lengths", "pattern")

    def __init__(self, metadata: PhoneMetadata) -> None:
        general = metadata.general_desc
        self.lengths = frozenset(general.possible_length or ()) if general else frozenset()
        self.pattern = (
            re.compile(general.national_number_pattern)
            if general and general.national_number_pattern
            else None
        )

    def admits(self, national: str) -> bool:
        return (
            len(national) in self.lengths
            and self.pattern is not None
            and self.pattern.fullmatch(national) is not None
        )


def _plan(region: str) -> _Plan | None:
    metadata = PhoneMetadata.metadata_for_region(region)
    return _Plan(metadata) if metadata is not None else None


_NATIONAL_PLANS = {region: _plan(region) for _, group in REGION_GROUPS for region in group}


@cache
def _country_plans(code: str) -> tuple[_Plan, ...]:
    """The plans of a country calling code's regions, loaded the first time a number uses that code."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(code), ())
    return tuple(plan for region in regions if (plan := _plan(region)) is not None)


_TRUNK_IN_PARENTHESES = re.compile(r"\(0\)")
_EXTENSION = re.compile(r"\s?(?:x|ext\.?)\s?\d{1,6}$", re.IGNORECASE)
_TWO_GROUPS = re.compile(r"\d+ \d+")
_NOT_DIGITS = str.maketrans("", "", " .-()+")  # what the candidate pattern allows besides digits


def phone_number(text: str) -> float | None:
    text = _EXTENSION.sub("", text)  # the extension is part of the finding, not of the number
    if text.startswith("00") and len(text.translate(_NOT_DIGITS)) >= 10:
        text = "+" + text[2:].lstrip(" .-")  # "00" is the international call prefix in most of the world
    digits = text.translate(_NOT_DIGITS)
    count = len(digits)
    international = text.startswith("+")
    # National numbers have at most 12 digits (with a trunk prefix); longer runs are cards, accounts, ids.
    if not 7 <= count <= (15 if international else 12):
        return None
    shaped = any(c in text for c in " .-()")
    if international:
        return 0.4 if _international(text) else None
    if not shaped and count < 10:
        return None  # a bare run of 7-9 digits is an id or an amount far more often than a phone
    for trunk, regions in REGION_GROUPS:
        national = digits[len(trunk) :] if trunk and digits.startswith(trunk) else digits
        for region in regions:
            plan = _NATIONAL_PLANS[region]
            if plan is not None and plan.admits(national):
                if _TWO_GROUPS.fullmatch(text):
                    return -0.2  # "370 3911": as often a house number and a postcode; needs a context word
                return 0.1 if shaped else -0.1
    return None


def _international(text: str) -> bool:
    digits = "".join(c for c in _TRUNK_IN_PARENTHESES.sub("", text) if c.isdigit())
    for size in (1, 2, 3):
        plans = _country_plans(digits[:size]) if digits[:size].isdigit() and digits[:1] != "0" else ()
        if plans:
            national = digits[size:]
            return any(plan.admits(national) or plan.admits(national.removeprefix("0")) for plan in plans)
    return False

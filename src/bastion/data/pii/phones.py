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
from collections.abc import Iterable
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


class _Plans:
    """The numbering plans of some regions, as one pattern per national-number length admitting the numbers of
    every region whose plan allows that length: a candidate is checked with one match, not one per region."""

    __slots__ = ("_by_length",)

    def __init__(self, regions: Iterable[str]) -> None:
        plans: list[tuple[frozenset[int], str]] = []
        for region in regions:
            metadata = PhoneMetadata.metadata_for_region(region)
            general = metadata.general_desc if metadata is not None else None
            if general is not None and general.national_number_pattern:
                plans.append((frozenset(general.possible_length or ()), general.national_number_pattern))
        lengths = sorted({length for allowed, _ in plans for length in allowed})
        self._by_length = {
            length: re.compile("|".join(f"(?:{pattern})" for allowed, pattern in plans if length in allowed))
            for length in lengths
        }

    def admit(self, national: str) -> bool:
        """The national number has a length some plan allows and matches that plan's pattern."""
        pattern = self._by_length.get(len(national))
        return pattern is not None and pattern.fullmatch(national) is not None


_NATIONAL = tuple((trunk, _Plans(regions)) for trunk, regions in REGION_GROUPS)


@cache
def _country_plans(code: str) -> _Plans | None:
    """The plans of a country calling code's regions, loaded the first time a number uses that code."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(code), ())
    return _Plans(regions) if regions else None


_EXTENSION = re.compile(r"\s?(?:x|ext\.?)\s?\d{1,6}$", re.IGNORECASE)
_TWO_GROUPS = re.compile(r"\d+ \d+")
_NOT_DIGITS = str.maketrans("", "", " .-()+")  # what the candidate pattern allows besides digits


def phone_number(text: str) -> float | None:
    if "x" in text or "X" in text:  # the extension is part of the finding, not of the number
        text = _EXTENSION.sub("", text)
    if text.startswith("00") and len(text.translate(_NOT_DIGITS)) >= 10:
        text = "+" + text[2:].lstrip(" .-")  # "00" is the international call prefix in most of the world
    digits = text.translate(_NOT_DIGITS)
    count = len(digits)
    international = text.startswith("+")
    # National numbers have at most 12 digits (with a trunk prefix); longer runs are cards, accounts, ids.
    if not 7 <= count <= (15 if international else 12):
        return None
    if international:
        return 0.4 if _international(text) else None
    shaped = count < len(text)  # separators or parentheses: the candidate holds nothing else
    if not shaped and count < 10:
        return None  # a bare run of 7-9 digits is an id or an amount far more often than a phone
    for trunk, plans in _NATIONAL:
        if plans.admit(digits[len(trunk) :] if trunk and digits.startswith(trunk) else digits):
            if _TWO_GROUPS.fullmatch(text):
                return -0.2  # "370 3911": as often a house number and a postcode; needs a context word
            return 0.1 if shaped else -0.1
    return None


def _international(text: str) -> bool:
    digits = text.replace("(0)", "").translate(_NOT_DIGITS)  # "+44 (0)20": the trunk prefix is not dialled
    if digits[:1] == "0":
        return False
    for size in (1, 2, 3):
        plans = _country_plans(digits[:size]) if len(digits) > size else None
        if plans is not None:
            national = digits[size:]
            return plans.admit(national) or plans.admit(national.removeprefix("0"))
    return False

"""Checks that turn a pattern match into an identifier: checksums, number plans, ranges, entropy.
Each takes the matched text and returns a score adjustment: ``None`` rejects the candidate."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections import Counter
from datetime import date

_DIGITS = re.compile(r"\d")

# IBAN length per country (ISO 13616 registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# Card brands: (IIN prefix ranges as (low, high) over the first N digits, allowed lengths).
_CARD_BRANDS: tuple[tuple[int, int, int, frozenset[int]], ...] = (
    (1, 4, 4, frozenset({13, 16, 19})),  # Visa
    (2, 51, 55, frozenset({16})),  # Mastercard
    (4, 2221, 2720, frozenset({16})),  # Mastercard 2-series
    (2, 34, 34, frozenset({15})),  # American Express
    (2, 37, 37, frozenset({15})),
    (4, 6011, 6011, frozenset({16, 17, 18, 19})),  # Discover
    (3, 644, 649, frozenset({16, 17, 18, 19})),
    (2, 65, 65, frozenset({16, 17, 18, 19})),
    (4, 3528, 3589, frozenset({16, 17, 18, 19})),  # JCB
    (4, 2131, 2131, frozenset({15})),  # JCB (15 digits)
    (4, 1800, 1800, frozenset({15})),
    (3, 300, 305, frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club
    (2, 36, 36, frozenset({14, 15, 16, 17, 18, 19})),
    (2, 38, 39, frozenset({14, 15, 16, 17, 18, 19})),
    (2, 62, 62, frozenset({16, 17, 18, 19})),  # UnionPay
    (2, 50, 50, frozenset(range(12, 20))),  # Maestro
    (2, 56, 69, frozenset(range(12, 20))),
)


def digits(text: str) -> str:
    return "".join(_DIGITS.findall(text))


# Each digit replaced by the digit sum of its double, as Luhn adds every second digit from the right.
_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn(number: str) -> bool:
    """The Luhn check digit (ISO/IEC 7812), for a string of ASCII digits. Summed as bytes in C: each digit's
    byte is its value plus 48."""
    total = sum(number[-1::-2].encode()) + sum(number[-2::-2].translate(_DOUBLED).encode())
    return (total - 48 * len(number)) % 10 == 0


# The brand ranges that allow each card length, so a candidate is compared only with those.
_BRANDS_BY_LENGTH = {
    length: tuple((size, low, high) for size, low, high, lengths in _CARD_BRANDS if length in lengths)
    for length in range(12, 20)
}


def credit_card(text: str) -> float | None:
    number = text.replace(" ", "").replace("-", "")
    brands = _BRANDS_BY_LENGTH.get(len(number))  # checked first: most candidates fail on length alone
    if brands is None or not number.isdigit() or not number.isascii() or (" " in text and "-" in text):
        return None  # card digits, one kind of separator if any
    if not luhn(number) or len(set(number)) == 1:
        return None
    for size, low, high in brands:
        if low <= int(number[:size]) <= high:
            return 0.0
    # Luhn-valid, a card length, and a banking/financial major industry identifier (ISO/IEC 7812) but no
    # brand range we know: still most likely a card number, with less certainty.
    if len(number) >= 13 and number[0] in "23456":
        return -0.25
    return None


# ISO 13616 mod-97: letters count as two-digit numbers, A = 10 ... Z = 35 (one C-level translation).
_IBAN_DIGITS = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})


def iban(text: str) -> float | None:
    compact = text.replace(" ", "").upper()
    country = compact[:2]
    if IBAN_LENGTHS.get(country) != len(compact) or not compact[2:4].isdigit():
        return None
    rearranged = compact[4:] + compact[:4]
    if not (rearranged.isascii() and rearranged.isalnum()):
        return None
    return 0.0 if int(rearranged.translate(_IBAN_DIGITS)) % 97 == 1 else None


def us_ssn(text: str) -> float | None:
    separators = [c for c in text if not c.isdigit()]
    if separators and (len(separators) != 2 or separators[0] != separators[1]):
        return None
    number = digits(text)
    area, group, serial = number[:3], number[3:5], number[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    if len(set(number)) == 1 or number in ("123456789", "078051120", "219099999"):
        return None  # all one digit, sequences and famous published examples
    return 0.0 if separators else -0.35  # nine bare digits are weak evidence without context


def ip_address(text: str) -> float | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 4 and text.count(".") != 3:
        return None
    return 0.0


def mac_address(text: str) -> float | None:
    separators = {c for c in text if not c.isalnum()}
    return 0.0 if len(separators) == 1 else None


def numeric_date(text: str) -> float | None:
    """Day, month and year that exist (in either day/month order), years 1900-2099."""
    parts = re.split(r"[-/.T :]", text)
    numbers = [int(p) for p in parts[:3] if p.isdigit()]
    if len(numbers) < 3:
        return None
    if len(parts[0]) == 4:
        year, month, day = numbers
        orders = [(year, month, day)]
    else:
        first, second, year = numbers
        if year < 100:
            year += 2000 if year < 50 else 1900
        orders = [(year, first, second), (year, second, first)]
    for y, m, d in orders:
        try:
            date(y, m, d)
        except ValueError:
            continue
        if 1900 <= y <= 2099:
            return 0.0
    return None


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def bitcoin(text: str) -> float | None:
    if text.lower().startswith("bc1"):
        return 0.0 if _bech32_valid(text.lower()) else None
    value = 0
    for char in text:
        index = _BASE58.find(char)
        if index < 0:
            return None
        value = value * 58 + index
    raw = value.to_bytes(25, "big") if value < 1 << 200 else b""
    if len(raw) != 25:
        return None
    checksum = hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4]
    return 0.0 if checksum == raw[21:] else None


def _bech32_valid(address: str) -> bool:
    hrp, _, data = address.rpartition("1")
    if not hrp or len(data) < 6 or any(c not in _BECH32 for c in data):
        return False
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + [_BECH32.index(c) for c in data]
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            checksum ^= generator[i] if (top >> i) & 1 else 0
    return checksum in (1, 0x2BC830A3)  # bech32, bech32m


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def high_entropy(text: str) -> float | None:
    """A generic secret assignment: its value must look random (>= 3.5 bits per character)."""
    return 0.0 if len(text) >= 16 and shannon_entropy(text) >= 3.5 else None


def ethereum(text: str) -> float | None:
    body = text[2:]
    return 0.0 if len(set(body.lower())) > 6 else None

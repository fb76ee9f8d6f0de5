"""ISBN-10 and ISBN-13 normalization and checksum validation."""

from __future__ import annotations

_SEPARATORS = str.maketrans("", "", "- ")


def _isbn10_valid(digits: str) -> bool:
    """ISBN-10: weighted sum (10..1) mod 11 == 0; the last character may be X (= 10)."""
    if not (digits[:9].isdigit() and (digits[9].isdigit() or digits[9] == "X")):
        return False
    values = [int(c) for c in digits[:9]] + [10 if digits[9] == "X" else int(digits[9])]
    return sum((10 - i) * v for i, v in enumerate(values)) % 11 == 0


def _isbn13_valid(digits: str) -> bool:
    """ISBN-13: 978/979 prefix, alternating 1/3 weights, sum mod 10 == 0."""
    if not (digits.isdigit() and digits[:3] in ("978", "979")):
        return False
    return sum((3 if i % 2 else 1) * int(c) for i, c in enumerate(digits)) % 10 == 0


def clean_isbn(value: str) -> str:
    """Drop hyphens and spaces and upper-case a trailing x (no validation)."""
    return value.translate(_SEPARATORS).upper()


def normalize_isbn(value: str) -> str:
    """Return the ISBN without separators; raise ValueError when the checksum is wrong."""
    digits = clean_isbn(value.strip())
    if len(digits) == 10 and digits.isascii() and _isbn10_valid(digits):
        return digits
    if len(digits) == 13 and digits.isascii() and _isbn13_valid(digits):
        return digits
    raise ValueError("not a valid ISBN-10 or ISBN-13 (check digit or length is wrong)")

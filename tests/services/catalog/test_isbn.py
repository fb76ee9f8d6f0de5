"""ISBN normalization and checksum validation (pure)."""

from __future__ import annotations

import pytest
from bookstore_catalog.isbn import normalize_isbn
from hypothesis import given
from hypothesis import strategies as st

from tests.services.catalog.books import isbn13


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("9780132350884", "9780132350884"),
        ("978-0-13-235088-4", "9780132350884"),
        ("978 0 13 235088 4", "9780132350884"),
        ("0-306-40615-2", "0306406152"),
        ("080442957x", "080442957X"),
        ("979-10-90636-07-1", "9791090636071"),
        ("  0306406152  ", "0306406152"),
    ],
)
def test_valid_isbn_is_normalized(raw: str, normalized: str) -> None:
    assert normalize_isbn(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "9780132350885",  # wrong ISBN-13 check digit
        "0306406153",  # wrong ISBN-10 check digit
        "9770132350884",  # not a 978/979 prefix
        "X306406152",  # X only allowed as the last ISBN-10 character
        "978013235088",  # 12 digits
        "97801323508841",  # 14 digits
        "",
        "abcdefghij",
        "٠٣٠٦٤٠٦١٥٢",  # non-ASCII digits
    ],
)
def test_invalid_isbn_is_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="ISBN"):
        normalize_isbn(raw)


@given(st.integers(min_value=0, max_value=999_999_999))
def test_every_generated_isbn13_validates(seed: int) -> None:
    assert normalize_isbn(isbn13(seed)) == isbn13(seed)


@given(st.integers(min_value=0, max_value=999_999_999), st.integers(min_value=1, max_value=9))
def test_changing_the_check_digit_is_always_detected(seed: int, delta: int) -> None:
    valid = isbn13(seed)
    broken = valid[:-1] + str((int(valid[-1]) + delta) % 10)
    with pytest.raises(ValueError, match="ISBN"):
        normalize_isbn(broken)

"""Keyset cursors of `GET /books`: where the next page starts, bound to the search it came from.

A cursor is base64url JSON: the last book's sort key (its id, and its rank for
sort=relevance) and a fingerprint of the filters and sort. It is opaque to clients; a cursor
used with other filters is refused, since its position means nothing in another result list.
Not signed: forging one only moves where a page of public data starts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Literal

from bookstore_catalog.schemas import BookFilters

Sort = Literal["id", "relevance"]
CURSOR_MAX_LENGTH = 200
ID_MAX = 2_147_483_647  # books.id is an integer column: no book id is larger


class InvalidCursorError(ValueError):
    """The cursor is malformed or belongs to another search."""


@dataclass(frozen=True, slots=True)
class Position:
    """The sort key of the last book of a page: the next page starts after it."""

    id: int
    rank: float | None = None


def fingerprint(filters: BookFilters, sort: Sort) -> str:
    """A short hash of what was searched and how it was sorted."""
    search = filters.model_dump(mode="json") | {"sort": sort}
    encoded = json.dumps(search, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def encode_cursor(position: Position, filters: BookFilters, sort: Sort) -> str:
    """The opaque cursor of the page after `position`."""
    document: dict[str, object] = {"f": fingerprint(filters, sort), "id": position.id}
    if position.rank is not None:
        document["r"] = position.rank
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, filters: BookFilters, sort: Sort) -> Position:
    """The position a cursor names; InvalidCursorError unless it came from this search."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidCursorError("is not a cursor this API returned") from None
    if not isinstance(document, dict):
        raise InvalidCursorError("is not a cursor this API returned")
    if document.get("f") != fingerprint(filters, sort):
        raise InvalidCursorError(
            "belongs to a search with other filters or another sort; "
            "repeat the search's parameters with its next_cursor, or start over without one"
        )
    book_id, rank = document.get("id"), document.get("r")
    if type(book_id) is not int or not 0 <= book_id <= ID_MAX:
        raise InvalidCursorError("is not a cursor this API returned")
    if sort == "relevance":
        if not isinstance(rank, int | float) or isinstance(rank, bool) or not math.isfinite(rank):
            raise InvalidCursorError("is not a cursor this API returned")
        return Position(book_id, float(rank))
    return Position(book_id)

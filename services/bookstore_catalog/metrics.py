"""Catalog business metrics."""

from __future__ import annotations

from prometheus_client import Counter

RESERVATIONS_MADE = Counter(
    "catalog_reservations_made_total", "Stock reservations taken successfully."
)
RESERVATIONS_REJECTED = Counter(
    "catalog_reservations_rejected_total",
    "Stock reservations refused, by reason (insufficient_stock, unknown_book).",
    ["reason"],
)
RESERVATIONS_RELEASED = Counter(
    "catalog_reservations_released_total", "Stock reservations released (stock given back)."
)

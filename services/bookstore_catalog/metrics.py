"""Catalog business metrics, served by the shared /metrics endpoint."""

from __future__ import annotations

from bookstore_common.metrics import metric_prefix, preinitialise
from prometheus_client import Counter

PREFIX = metric_prefix("catalog")
# Why a reservation is refused: the book does not exist; it has fewer copies than asked;
# the reservation's reference (Idempotency-Key) was already released, so a late retry
# must not take stock.
REJECT_REASONS = ("unknown_book", "insufficient_stock", "released")

RESERVATIONS_MADE = Counter(
    f"{PREFIX}_stock_reservations_total",
    "Stock reservations made: copies taken from a book's stock for an order.",
)
RESERVATIONS_REJECTED = Counter(
    f"{PREFIX}_stock_reservations_rejected_total",
    "Stock reservations refused, by reason: " + ", ".join(REJECT_REASONS) + ".",
    ["reason"],
)
RESERVATIONS_RELEASED = Counter(
    f"{PREFIX}_stock_reservations_released_total",
    "Stock reservations released: their copies given back to stock (each at most once).",
)
preinitialise(RESERVATIONS_REJECTED, REJECT_REASONS)

"""Prometheus metrics of the orders service (served by the shared /metrics endpoint)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from bookstore_orders.circuit_breaker import CircuitState

ORDERS_PLACED = Counter("bookstore_orders_placed", "Orders confirmed.")
ORDERS_REJECTED = Counter(
    "bookstore_orders_rejected",
    "Orders refused, by reason (out_of_stock, unknown_book, catalog_unavailable, given_up, error).",
    ["reason"],
)
ORDERS_CANCELLED = Counter("bookstore_orders_cancelled", "Orders cancelled.")
CATALOG_REQUEST_SECONDS = Histogram(
    "bookstore_orders_catalog_request_duration_seconds",
    "Latency of each HTTP attempt to catalog, by operation and outcome.",
    ["operation", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CATALOG_CIRCUIT_STATE = Gauge(
    "bookstore_orders_catalog_circuit_state",
    "Catalog circuit breaker state: 0 closed, 1 half-open, 2 open.",
    multiprocess_mode="livemax",
)
ORDERS_LEFT_PENDING = Counter(
    "bookstore_orders_left_pending",
    "Failed orders whose stock catalog could not take back at once; left for the sweeper.",
)
ORDERS_SWEPT = Counter(
    "bookstore_orders_swept",
    "Stale pending orders the sweeper compensated (stock released by reference, failed).",
)


def observe_circuit_state(state: CircuitState) -> None:
    """Export a circuit breaker state change."""
    CATALOG_CIRCUIT_STATE.set(int(state))

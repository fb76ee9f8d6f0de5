"""Orders business metrics, served by the shared /metrics endpoint."""

from __future__ import annotations

from bookstore_common.metrics import metric_prefix, preinitialise
from prometheus_client import Counter, Gauge, Histogram

from bookstore_orders.circuit_breaker import CircuitState

PREFIX = metric_prefix("orders")
# Why an order is refused: a book has too few copies; a book does not exist; catalog is
# unreachable or its circuit is open (503); the sweeper gave the order up before it was
# confirmed; anything else (catalog refused the reservation, the order could not be written).
REJECT_REASONS = ("out_of_stock", "unknown_book", "catalog_unavailable", "given_up", "error")
# A call to catalog: taking stock for an order line, or giving it back.
CATALOG_OPERATIONS = ("reserve", "release")
# How one HTTP attempt to catalog ended (see the histogram's HELP).
CATALOG_OUTCOMES = ("ok", "client_error", "server_error", "transport_error")

ORDERS_PLACED = Counter(f"{PREFIX}_placed_total", "Orders placed and confirmed.")
ORDERS_REJECTED = Counter(
    f"{PREFIX}_rejected_total",
    "Orders refused, by reason: " + ", ".join(REJECT_REASONS) + ".",
    ["reason"],
)
ORDERS_CANCELLED = Counter(
    f"{PREFIX}_cancelled_total", "Orders cancelled (their stock given back to catalog)."
)
CATALOG_REQUEST_SECONDS = Histogram(
    f"{PREFIX}_catalog_request_duration_seconds",
    "Time each HTTP attempt to catalog took, in seconds (a retried call counts each attempt). "
    f"operation: {', '.join(CATALOG_OPERATIONS)}; outcome: ok (2xx), client_error (4xx), "
    "server_error (5xx), transport_error (no response: connect error, timeout).",
    ["operation", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CATALOG_CIRCUIT_STATE = Gauge(
    f"{PREFIX}_catalog_circuit_state",
    "State of the circuit breaker in front of catalog: 0 closed, 1 half-open, 2 open "
    "(the highest of the live workers).",
    multiprocess_mode="livemax",
)
ORDERS_LEFT_PENDING = Counter(
    f"{PREFIX}_left_pending_total",
    "Failed orders whose stock catalog could not take back at once; left for the sweeper.",
)
ORDERS_SWEPT = Counter(
    f"{PREFIX}_swept_total",
    "Stale pending orders the sweeper compensated (stock released by reference, failed).",
)
preinitialise(ORDERS_REJECTED, REJECT_REASONS)
preinitialise(CATALOG_REQUEST_SECONDS, CATALOG_OPERATIONS, CATALOG_OUTCOMES)


def observe_circuit_state(state: CircuitState) -> None:
    """Export a circuit breaker state change."""
    CATALOG_CIRCUIT_STATE.set(int(state))

"""Environment configuration of the orders service."""

from __future__ import annotations

from pathlib import Path

from bookstore_common.schema_state import ServiceSchema
from bookstore_common.settings import MIGRATE, ServiceSettings
from pydantic import Field

from bookstore_orders.catalog_client import MAX_CALLS_IN_FLIGHT

# The orders migrations and their version table (its own, so both services can share a database).
SCHEMA = ServiceSchema(
    service="orders", package="bookstore_orders", version_table="alembic_version_orders"
)


class OrdersSettings(ServiceSettings):
    """Orders settings: the shared ones plus how to reach catalog and when to give up."""

    sqlite_path: Path = Field(
        default=Path(".dev/orders.db"),
        description="the SQLite file used when DATABASE_URL is unset",
        json_schema_extra=MIGRATE,
    )
    catalog_url: str = Field(
        default="http://127.0.0.1:8001",
        description="catalog's base URL; orders reserve stock there with API_KEY",
    )
    catalog_connect_timeout: float = Field(
        default=0.5, gt=0, description="seconds to connect to catalog"
    )
    catalog_read_timeout: float = Field(
        default=1.0,
        gt=0,
        description="seconds to wait for catalog's answer (reservations are idempotent, so a "
        "slow one is retried)",
    )
    catalog_deadline: float = Field(
        default=2.0, gt=0, description="seconds after which no retry to catalog starts"
    )
    catalog_retry_attempts: int = Field(
        default=3, ge=1, le=10, description="tries per catalog call"
    )
    catalog_max_connections: int = Field(
        default=MAX_CALLS_IN_FLIGHT,
        ge=1,
        le=1024,
        description="catalog calls in flight per worker (a connection each); more wait their "
        "turn in the worker until the call's deadline, not counted as catalog failures",
    )
    circuit_failure_threshold: int = Field(
        default=5, ge=1, description="catalog failures in a row that open the circuit breaker"
    )
    circuit_reset_timeout: float = Field(
        default=5.0, gt=0, description="seconds the breaker stays open before a trial call"
    )
    idempotency_lease_seconds: float = Field(
        default=60.0, gt=0, description="seconds before an unfinished Idempotency-Key is retaken"
    )
    pending_sweep_interval: float = Field(
        default=5.0,
        gt=0,
        description="seconds between a worker's sweeps for stale pending orders",
    )
    pending_grace_seconds: float = Field(
        default=30.0, gt=0, description="a pending order older than this is compensated (failed)"
    )
    idempotency_retention_hours: float = Field(
        default=24.0, gt=0, description="hours an Idempotency-Key and its answer are kept"
    )
    idempotency_purge_interval: float = Field(
        default=3600.0, gt=0, description="seconds between purges of old Idempotency-Keys"
    )

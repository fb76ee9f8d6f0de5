"""Environment configuration of the orders service."""

from __future__ import annotations

from pathlib import Path

from bookstore_common.settings import ServiceSettings
from pydantic import Field


class OrdersSettings(ServiceSettings):
    """Orders settings: the shared ones plus how to reach catalog and when to give up."""

    sqlite_path: Path = Path(".dev/orders.db")
    catalog_url: str = "http://127.0.0.1:8001"
    catalog_connect_timeout: float = Field(default=0.5, gt=0)
    catalog_read_timeout: float = Field(
        default=1.0, gt=0, description="Reservations are idempotent, so a slow one is retried."
    )
    catalog_deadline: float = Field(default=2.0, gt=0, description="No retry starts after it.")
    catalog_retry_attempts: int = Field(default=3, ge=1, le=10)
    catalog_max_connections: int = Field(default=128, ge=1, le=1024)
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_reset_timeout: float = Field(default=5.0, gt=0)
    idempotency_lease_seconds: float = Field(default=60.0, gt=0)
    pending_sweep_interval: float = Field(
        default=5.0, gt=0, description="How often each worker looks for stale pending orders."
    )
    pending_grace_seconds: float = Field(
        default=30.0, gt=0, description="A pending order older than this is compensated."
    )
    idempotency_retention_hours: float = Field(default=24.0, gt=0)
    idempotency_purge_interval: float = Field(default=3600.0, gt=0)

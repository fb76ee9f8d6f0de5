"""Catalog settings: the shared service settings with the catalog's dev SQLite file."""

from __future__ import annotations

from pathlib import Path

from bookstore_common.schema_state import ServiceSchema
from bookstore_common.settings import MIGRATE, ServiceSettings
from pydantic import Field

# The catalog migrations and their version table (its own, so both services can share a database).
SCHEMA = ServiceSchema(
    service="catalog", package="bookstore_catalog", version_table="alembic_version_catalog"
)


class CatalogSettings(ServiceSettings):
    """Environment configuration of the catalog service (see ServiceSettings)."""

    sqlite_path: Path = Field(
        default=Path(".dev/catalog.db"),
        description="the SQLite file used when DATABASE_URL is unset",
        json_schema_extra=MIGRATE,
    )
    sample_data: bool = Field(
        default=False,
        description="load a starter set of books into an empty catalog when migrating",
        json_schema_extra=MIGRATE,
    )
    search_count_limit: int = Field(
        default=1_000,
        ge=1,
        le=10_000_000,
        description="GET /books counts matches up to this many; past it, total is this "
        "number and total_exact is false",
    )
    released_retention_hours: float = Field(
        default=24.0, gt=0, description="hours a released reservation's key is remembered"
    )
    released_purge_interval: float = Field(
        default=3600.0, gt=0, description="seconds between purges of released reservations"
    )

"""Catalog settings: the shared service settings with the catalog's dev SQLite file."""

from __future__ import annotations

from pathlib import Path

from bookstore_common.settings import ServiceSettings
from pydantic import Field


class CatalogSettings(ServiceSettings):
    """Environment configuration of the catalog service (see ServiceSettings)."""

    sqlite_path: Path = Path(".dev/catalog.db")
    released_retention_hours: float = Field(
        default=24.0, gt=0, description="How long a released reservation's key is remembered."
    )
    released_purge_interval: float = Field(default=3600.0, gt=0)

"""Catalog settings: the shared service settings with the catalog's dev SQLite file."""

from __future__ import annotations

from pathlib import Path

from bookstore_common.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    """Environment configuration of the catalog service (see ServiceSettings)."""

    sqlite_path: Path = Path(".dev/catalog.db")

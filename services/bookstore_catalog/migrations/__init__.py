"""Alembic migrations of the catalog (run through bookstore_common.migrations)."""

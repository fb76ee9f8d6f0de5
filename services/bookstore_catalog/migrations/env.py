"""Alembic environment of the catalog: migrate on the connection run_migrations provides."""

from alembic import context
from bookstore_common.migrations import run_env

from bookstore_catalog.models import metadata

run_env(context, metadata)

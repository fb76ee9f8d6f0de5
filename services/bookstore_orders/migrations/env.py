"""Alembic environment of the orders service (run through bookstore_common.migrations)."""

from alembic import context
from bookstore_common.migrations import run_env
from bookstore_orders.models import Base

run_env(context, Base.metadata)

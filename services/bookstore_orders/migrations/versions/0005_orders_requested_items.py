"""orders keep the lines a customer asked for until they are confirmed

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 08:10:00

A refused order (not enough stock, unknown book, catalog down) never gets order_items rows,
so its audit record lost what was asked. The pending INSERT now also writes the requested
lines (book_id, quantity) as JSON; the confirm replaces them with the priced order_items.
Expand-only: one nullable column; older code ignores it, and failed orders written before
this revision have none (they show no lines).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add orders.requested_items (nullable JSON)."""
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("requested_items", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop orders.requested_items."""
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("requested_items")

"""pending orders (intent first) replace the pending_releases queue

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 06:50:00

Orders are now written `pending` with their line count before stock is reserved, and a
sweeper releases a stale pending order's reservations by reference; the queue of
reservation ids to release is redundant.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add orders.line_count and reservation_token; drop pending_releases."""
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("line_count", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("reservation_token", sa.String(32), server_default="", nullable=False)
        )
    op.drop_table("pending_releases")


def downgrade() -> None:
    """Recreate pending_releases (empty); drop the orders columns."""
    op.create_table(
        "pending_releases",
        sa.Column("reservation_id", sa.String(length=64), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reservation_id", name=op.f("pk_pending_releases")),
    )
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("reservation_token")
        batch.drop_column("line_count")

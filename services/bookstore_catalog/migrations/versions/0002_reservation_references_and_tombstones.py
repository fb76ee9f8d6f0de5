"""Reservation references (Idempotency-Key) and release tombstones.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `reference` (unique), `unit_price`, `released_at`; tombstones need no book."""
    with op.batch_alter_table("reservations") as batch:
        batch.add_column(sa.Column("reference", sa.String(255), nullable=True))
        batch.add_column(sa.Column("unit_price", sa.Numeric(10, 2), nullable=True))
        batch.add_column(sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("book_id", existing_type=sa.Integer(), nullable=True)
        batch.drop_constraint(op.f("ck_reservations_quantity_positive"), type_="check")
        batch.create_check_constraint(
            op.f("ck_reservations_quantity_not_negative"), "quantity >= 0"
        )
        batch.create_check_constraint(
            op.f("ck_reservations_active_holds_stock"),
            "released_at IS NOT NULL OR (book_id IS NOT NULL AND quantity > 0)",
        )
        batch.create_unique_constraint(op.f("uq_reservations_reference"), ["reference"])
    op.create_index(
        op.f("ix_reservations_released_at"),
        "reservations",
        ["released_at"],
        postgresql_where=sa.text("released_at IS NOT NULL"),
        sqlite_where=sa.text("released_at IS NOT NULL"),
    )


def downgrade() -> None:
    """Forget tombstones and references; every remaining row is an active reservation."""
    op.drop_index(op.f("ix_reservations_released_at"), table_name="reservations")
    op.execute("DELETE FROM reservations WHERE released_at IS NOT NULL")
    with op.batch_alter_table("reservations") as batch:
        batch.drop_constraint(op.f("uq_reservations_reference"), type_="unique")
        batch.drop_constraint(op.f("ck_reservations_active_holds_stock"), type_="check")
        batch.drop_constraint(op.f("ck_reservations_quantity_not_negative"), type_="check")
        batch.create_check_constraint(op.f("ck_reservations_quantity_positive"), "quantity > 0")
        batch.alter_column("book_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("released_at")
        batch.drop_column("unit_price")
        batch.drop_column("reference")

"""Catalog tables: books and the stock reservations taken from them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
    literal_column,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnClause

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

TITLE_MAX = 300
AUTHOR_MAX = 200
DESCRIPTION_MAX = 5000
QUANTITY_MAX = 1_000_000
REFERENCE_MAX = 255


class Base(DeclarativeBase):
    """Declarative base bound to the catalog's MetaData (with its naming convention)."""

    metadata = metadata


class Book(Base):
    """A title on sale; `quantity` is the number of copies in stock (never negative)."""

    __tablename__ = "books"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_non_negative"),
        CheckConstraint("price > 0", name="price_positive"),
        # PostgreSQL only, and only where pg_trgm could be created (migration 0003):
        # they let `ILIKE '%text%'` searches use an index instead of scanning every book.
        *(
            Index(
                f"ix_books_{column}_trgm",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            ).ddl_if(dialect="postgresql")
            for column in ("title", "author", "isbn")
        ),
        # Migration 0004. Price ranges: narrow ones through ix_books_price_quantity (then
        # sorted; counted from the index alone); broad ones and in_stock walk
        # ix_books_id_price_quantity in id order, their conditions checked in the index, so
        # no book that fails them is read. In and out of stock alone: partial id indexes.
        Index("ix_books_price_quantity", "price", "quantity"),
        Index("ix_books_id_price_quantity", "id", "price", "quantity"),
        Index(
            "ix_books_id_in_stock",
            "id",
            postgresql_where="quantity > 0",
            sqlite_where="quantity > 0",
        ),
        Index(
            "ix_books_id_out_of_stock",
            "id",
            postgresql_where="quantity = 0",
            sqlite_where="quantity = 0",
        ),
        {"sqlite_autoincrement": True},  # never reuse ids in dev mode (PostgreSQL never does)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    author: Mapped[str] = mapped_column(String(AUTHOR_MAX))
    isbn: Mapped[str] = mapped_column(String(13), unique=True)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    quantity: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # PostgreSQL only (migration 0005; SQLite's dev mode searches its FTS5 table instead, and
    # no statement names this column there): the weighted English document of title, author
    # and description, written by the trigger books_search_document on every insert and
    # text change, never by us. Full-text `q` matches and ranks it (ix_books_search_document).
    search_document: Mapped[Any] = mapped_column(TSVECTOR, nullable=True)


class Reservation(Base):
    """Copies taken out of a book's stock until released (e.g. by an order's cancel).

    `reference` is the caller's Idempotency-Key: unique, so a retried POST finds its
    reservation instead of taking stock twice. A released row stays as a tombstone
    (`released_at` set) so a late POST with its reference takes nothing; a release by a
    reference never reserved leaves a bare tombstone (no book, quantity 0). Tombstones
    are purged after a retention period.
    """

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint(
            "released_at IS NOT NULL OR (book_id IS NOT NULL AND quantity > 0)",
            name="active_holds_stock",
        ),
        Index(
            "ix_reservations_released_at",
            "released_at",
            postgresql_where="released_at IS NOT NULL",
            sqlite_where="released_at IS NOT NULL",
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    book_id: Mapped[int | None] = mapped_column(
        ForeignKey("books.id", ondelete="RESTRICT"), index=True
    )
    quantity: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str | None] = mapped_column(String(REFERENCE_MAX), unique=True)
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# The full-text search document of a book (PostgreSQL): English stemming, title weighted
# over author over description. Stored (migration 0005) and GIN-indexed; searches read it.
ENGLISH: ColumnClause[Any] = literal_column("'english'::regconfig")
BOOK_DOCUMENT = Book.__table__.c.search_document


def _legacy_document() -> ColumnElement[Any]:
    """0004's expression of the same document (its index serves the previous release)."""
    columns = Book.__table__.c
    parts = [
        func.setweight(func.to_tsvector(ENGLISH, column), literal_column(f"'{weight}'"))
        for column, weight in (
            (columns.title, "A"),
            (columns.author, "B"),
            (columns.description, "C"),
        )
    ]
    return (
        parts[0].op("||", return_type=TSVECTOR)(parts[1]).op("||", return_type=TSVECTOR)(parts[2])
    )


cast(Table, Book.__table__).append_constraint(
    Index("ix_books_search_document", BOOK_DOCUMENT, postgresql_using="gin").ddl_if(
        dialect="postgresql"
    )
)
# The document's title and author words (its A and B weights) alone, GIN-indexed
# (migration 0005): sort=relevance of a one-word q finds the matches that rank above every
# description-only match without reading those (see search._ranked_text_search).
BOOK_HEAD: ColumnElement[Any] = func.to_tsvector(ENGLISH, Book.__table__.c.title).op(
    "||", return_type=TSVECTOR
)(func.to_tsvector(ENGLISH, Book.__table__.c.author))
cast(Table, Book.__table__).append_constraint(
    Index("ix_books_search_head", BOOK_HEAD, postgresql_using="gin").ddl_if(dialect="postgresql")
)
# Kept for one release: the previous release's pods search 0004's expression during a
# rolling upgrade. A later (contract) migration drops it.
cast(Table, Book.__table__).append_constraint(
    Index("ix_books_search", _legacy_document(), postgresql_using="gin").ddl_if(
        dialect="postgresql"
    )
)

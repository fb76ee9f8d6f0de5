"""A starter set of real books, loaded into an empty catalog when SAMPLE_DATA is true."""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import Connection, func, insert, select

from bookstore_catalog.models import Book

log = logging.getLogger(__name__)

# (title, author, ISBN-13, price, copies)
SAMPLE_BOOKS: tuple[tuple[str, str, str, str, int], ...] = (
    ("The Pragmatic Programmer", "David Thomas, Andrew Hunt", "9780135957059", "49.99", 12),
    ("Clean Code", "Robert C. Martin", "9780132350884", "37.50", 8),
    ("Design Patterns", "Gamma, Helm, Johnson, Vlissides", "9780201633610", "54.99", 5),
    ("Refactoring", "Martin Fowler", "9780134757599", "47.99", 7),
    (
        "Structure and Interpretation of Computer Programs",
        "Abelson, Sussman",
        "9780262510875",
        "55.00",
        4,
    ),
    (
        "The C Programming Language",
        "Brian W. Kernighan, Dennis M. Ritchie",
        "9780131103627",
        "67.95",
        6,
    ),
    ("Introduction to Algorithms", "Cormen, Leiserson, Rivest, Stein", "9780262033848", "94.00", 3),
    ("Code Complete", "Steve McConnell", "9780735619678", "44.99", 9),
    ("The Mythical Man-Month", "Frederick P. Brooks Jr.", "9780201835953", "29.99", 10),
    ("Designing Data-Intensive Applications", "Martin Kleppmann", "9781449373320", "59.99", 15),
    ("Fluent Python", "Luciano Ramalho", "9781492056355", "65.99", 11),
    ("Site Reliability Engineering", "Beyer, Jones, Petoff, Murphy", "9781491929124", "49.99", 6),
    ("Domain-Driven Design", "Eric Evans", "9780321125217", "62.99", 4),
    ("Working Effectively with Legacy Code", "Michael Feathers", "9780131177055", "54.99", 5),
    ("Programming Pearls", "Jon Bentley", "9780201657883", "39.99", 7),
    ("The Art of Computer Programming, Vol. 1", "Donald E. Knuth", "9780201896831", "79.99", 2),
    ("Gödel, Escher, Bach", "Douglas R. Hofstadter", "9780465026562", "24.99", 9),
    ("Dune", "Frank Herbert", "9780441172719", "10.99", 20),
    ("Nineteen Eighty-Four", "George Orwell", "9780451524935", "9.99", 25),
    ("To Kill a Mockingbird", "Harper Lee", "9780061120084", "8.99", 18),
    ("The Hobbit", "J. R. R. Tolkien", "9780547928227", "12.50", 14),
)


def load_sample_books(connection: Connection) -> None:
    """Insert the starter books when the catalog is empty (run under the migration lock)."""
    if connection.scalar(select(func.count()).select_from(Book)):
        return
    connection.execute(
        insert(Book),
        [
            {
                "title": title,
                "author": author,
                "isbn": isbn,
                "price": Decimal(price),
                "quantity": quantity,
                "description": "",
            }
            for title, author, isbn, price, quantity in SAMPLE_BOOKS
        ],
    )
    log.info("loaded sample books", extra={"count": len(SAMPLE_BOOKS)})

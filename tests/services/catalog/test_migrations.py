"""Catalog migrations: from an empty database, concurrently from two processes, seed once,
trigram search indexes (skipped when pg_trgm may not be created)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from bookstore_catalog.__main__ import VERSION_TABLE, migrate
from bookstore_catalog.config import CatalogSettings
from bookstore_catalog.models import metadata
from bookstore_catalog.sample_data import SAMPLE_BOOKS
from psycopg import sql
from sqlalchemy import create_engine

from tests.services.conftest import at_revision, catalog_command

HEAD = "0005"


def tables_and_version(url: str) -> tuple[set[str], str]:
    """The public tables of a database and the catalog's Alembic revision."""
    with psycopg.connect(url) as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
        version = connection.execute("SELECT version_num FROM alembic_version_catalog").fetchone()
    assert version is not None
    return tables, str(version[0])


def test_upgrade_from_empty_creates_catalog_tables_with_own_version_table(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("catalog_migrate")
    migrate(CatalogSettings(database_url=url))
    migrate(CatalogSettings(database_url=url))  # a second run is a no-op
    tables, version = tables_and_version(url)
    assert tables == {"books", "reservations", "alembic_version_catalog"}
    assert version == HEAD


def test_two_processes_migrating_at_once_both_succeed(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("catalog_race")
    env = os.environ | {"DATABASE_URL": url, "SAMPLE_DATA": "true", "LOG_LEVEL": "warning"}
    processes = [
        subprocess.Popen(
            [*catalog_command(), "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    tables, version = tables_and_version(url)
    assert "books" in tables
    assert version == HEAD
    with psycopg.connect(url) as connection:
        count = connection.execute("SELECT count(*) FROM books").fetchone()
    assert count == (len(SAMPLE_BOOKS),)


def test_sample_data_is_loaded_only_into_an_empty_catalog(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("catalog_seed")
    migrate(CatalogSettings(database_url=url, sample_data=True))
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DELETE FROM books WHERE id > 1")
    migrate(CatalogSettings(database_url=url, sample_data=True))
    with psycopg.connect(url) as connection:
        count = connection.execute("SELECT count(*) FROM books").fetchone()
    assert count == (1,)


def test_migrations_match_the_models(catalog_database_url: str) -> None:
    engine = create_engine(catalog_database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_upgrade_from_0001_keeps_held_reservations_active_without_reference(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("catalog_upgrade")
    settings = CatalogSettings(database_url=url)
    at_revision(
        settings,
        "bookstore_catalog",
        VERSION_TABLE,
        "0001",
        "INSERT INTO books (title, author, isbn, price, quantity) "
        "VALUES ('Dune', 'Frank Herbert', '9780441013593', 9.99, 3)",
        "INSERT INTO reservations (book_id, quantity) VALUES (1, 2)",
    )
    migrate(settings)
    assert tables_and_version(url)[1] == HEAD
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT book_id, quantity, reference, released_at FROM reservations"
        ).fetchone()
    assert row == (1, 2, None, None)


def test_upgrade_from_0002_adds_trigram_indexes_that_author_searches_use(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("catalog_trgm")
    settings = CatalogSettings(database_url=url)
    at_revision(
        settings,
        "bookstore_catalog",
        VERSION_TABLE,
        "0002",
        "INSERT INTO books (title, author, isbn, price, quantity) "
        "SELECT 'Title ' || i, 'Author ' || (i % 500), lpad(i::text, 13, '0'), 9.99, 1 "
        "FROM generate_series(1, 5000) AS i",
    )
    migrate(settings)
    assert tables_and_version(url)[1] == HEAD
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("ANALYZE books")
        plan = connection.execute(
            "EXPLAIN SELECT id FROM books WHERE author ILIKE '%thor 42%' ORDER BY id"
        ).fetchall()
        indexes = {
            row[0]
            for row in connection.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'books'"
            )
        }
    assert "ix_books_author_trgm" in "\n".join(row[0] for row in plan)
    assert {"ix_books_title_trgm", "ix_books_author_trgm", "ix_books_isbn_trgm"} <= indexes


def test_upgrade_by_a_user_who_may_not_create_pg_trgm_succeeds_without_trigram_indexes(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("catalog_no_trgm")
    role = f"catalog_no_trgm_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    try:
        migrate(CatalogSettings(database_url=url.replace("//postgres@", f"//{role}@")))
        assert tables_and_version(url)[1] == HEAD
        with psycopg.connect(url) as connection:
            trigram = connection.execute(
                "SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%trgm'"
            ).fetchone()
            extension = connection.execute(
                "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'"
            ).fetchone()
        assert trigram == (0,)
        assert extension == (0,)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_upgrade_from_0003_with_books_makes_them_findable_by_full_text_and_indexes_price(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("catalog_fts")
    settings = CatalogSettings(database_url=url)
    at_revision(
        settings,
        "bookstore_catalog",
        VERSION_TABLE,
        "0003",
        "INSERT INTO books (title, author, isbn, price, quantity, description) "
        "SELECT 'Running Title ' || i, 'Author ' || i, lpad(i::text, 13, '0'), 9.99, i % 2, "
        "'Stories of dragons' FROM generate_series(1, 3000) AS i",
    )
    migrate(settings)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET enable_seqscan = off")  # which index answers, not the cost
        found = connection.execute(
            "SELECT count(*) FROM books WHERE (setweight(to_tsvector('english', title), 'A') "
            "|| setweight(to_tsvector('english', author), 'B') "
            "|| setweight(to_tsvector('english', description), 'C')) "
            "@@ websearch_to_tsquery('english', 'run dragon')"
        ).fetchone()
        indexes = {
            row[0]
            for row in connection.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'books'"
            )
        }
    assert found == (3000,)
    assert {
        "ix_books_search",
        "ix_books_price_quantity",
        "ix_books_id_price_quantity",
        "ix_books_id_in_stock",
        "ix_books_id_out_of_stock",
    } <= indexes

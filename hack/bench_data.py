"""Databases, seed data and the oversell check for `make bench`."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_seed
import httpx
import psycopg
from psycopg import sql


@dataclass(frozen=True)
class SeededCatalog:
    """What the seeding created: the ids of books in stock, and the hot book."""

    book_ids: list[Any]
    hot_book_id: Any

    def write_ids_file(self, directory: Path) -> Path:
        """Book ids (JSON literals), one a line, for bench.lua."""
        directory.mkdir(parents=True, exist_ok=True)
        ids_path = directory / "book_ids.txt"
        ids_path.write_text("".join(json.dumps(book_id) + "\n" for book_id in self.book_ids))
        return ids_path


@contextmanager
def temporary_databases(admin_url: str, names: list[str]) -> Iterator[None]:
    """Create fresh databases for the run and drop them (connections and all) at the end."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for name in names:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            for name in names:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def isbn13(number: int) -> str:
    """A valid, unique ISBN-13 (978 prefix, correct check digit) for a seed index."""
    body = f"978{number:09d}"
    weighted = sum(int(digit) * (3 if index % 2 else 1) for index, digit in enumerate(body))
    return body + str((10 - weighted % 10) % 10)


def seed_catalog(url: str, books: int, hot_stock: int, corpus: bench_seed.Corpus) -> SeededCatalog:
    """Load `books` books with SQL (bench_seed), plus one hot book; the ids of those in stock."""
    hot_book_id = bench_seed.seed_books(url, books, corpus, hot_stock)
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id FROM books WHERE quantity > 0 AND id <> %s ORDER BY id", (hot_book_id,)
        ).fetchall()
    return SeededCatalog(book_ids=[row[0] for row in rows], hot_book_id=hot_book_id)


async def _race_orders(
    orders_url: str, catalog_url: str, api_key: str, book_id: Any, attempts: int
) -> dict[str, Any]:
    """Fire `attempts` one-copy orders at one book at once; count outcomes and final stock."""
    limits = httpx.Limits(max_connections=attempts, max_keepalive_connections=attempts)
    body = {
        "customer_name": "Race Customer",
        "customer_email": "race@example.com",
        "items": [{"book_id": book_id, "quantity": 1}],
    }
    async with httpx.AsyncClient(
        base_url=orders_url, headers={"X-API-Key": api_key}, timeout=60, limits=limits
    ) as client:
        start = asyncio.Event()

        async def place() -> tuple[int, str | None]:
            """Wait for the start signal, then order; (HTTP status, order status)."""
            await start.wait()
            try:
                response = await client.post("/orders", json=body)
            except httpx.TransportError as error:
                return 0, type(error).__name__
            status = response.json().get("status") if response.status_code == 201 else None
            return response.status_code, status

        tasks = [asyncio.create_task(place()) for _ in range(attempts)]
        await asyncio.sleep(0.1)
        start.set()
        outcomes = await asyncio.gather(*tasks)
    async with httpx.AsyncClient(base_url=catalog_url, timeout=30) as catalog:
        stock = (await catalog.get(f"/books/{book_id}")).json().get("quantity")
    statuses = Counter(status for status, _ in outcomes)
    confirmed = sum(1 for status, state in outcomes if status == 201 and state == "confirmed")
    return {
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "confirmed": confirmed,
        "final_stock": stock,
    }


def check_no_oversell(
    orders_url: str, catalog_url: str, api_key: str, book_id: Any, stock: int, attempts: int
) -> dict[str, Any]:
    """Race orders at a book with `stock` copies: exactly `stock` confirm, the rest get 409."""
    result = asyncio.run(_race_orders(orders_url, catalog_url, api_key, book_id, attempts))
    result["attempts"] = attempts
    result["stock"] = stock
    result["passed"] = (
        result["confirmed"] == stock
        and result["final_stock"] == 0
        and result["statuses"] == {"201": stock, "409": attempts - stock}
    )
    return result

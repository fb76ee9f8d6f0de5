"""Databases, seed data and the oversell check for `make bench` (through the public API)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
from psycopg import sql

SEED_CONCURRENCY = 16
BULK_STOCK = 100_000


@dataclass(frozen=True)
class SeededCatalog:
    """What the seeding created: every book id, every author, and the hot book."""

    book_ids: list[Any]
    authors: list[str]
    hot_book_id: Any

    def write_value_files(self, directory: Path) -> tuple[Path, Path]:
        """Book ids (JSON literals) and URL-encoded authors, one a line, for bench.lua."""
        directory.mkdir(parents=True, exist_ok=True)
        ids_path = directory / "book_ids.txt"
        ids_path.write_text("".join(json.dumps(book_id) + "\n" for book_id in self.book_ids))
        authors_path = directory / "authors.txt"
        authors_path.write_text("".join(quote(author) + "\n" for author in self.authors))
        return ids_path, authors_path


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


def book_payload(index: int, author: str, quantity: int) -> dict[str, Any]:
    """The POST /books body for seed book number `index`."""
    return {
        "title": f"Benchmark Book {index:05d}",
        "author": author,
        "isbn": isbn13(index),
        "price": f"{5 + index % 45}.99",
        "quantity": quantity,
        "description": "Seeded by make bench.",
    }


async def _create_books(
    catalog_url: str, api_key: str, payloads: list[dict[str, Any]]
) -> list[Any]:
    """POST every payload with bounded concurrency; return the new ids in payload order."""
    semaphore = asyncio.Semaphore(SEED_CONCURRENCY)
    headers = {"X-API-Key": api_key}
    async with httpx.AsyncClient(base_url=catalog_url, headers=headers, timeout=30) as client:

        async def create(payload: dict[str, Any]) -> Any:
            """POST one book; its id."""
            async with semaphore:
                response = await client.post("/books", json=payload)
            if response.status_code != 201:
                raise RuntimeError(
                    f"seeding POST /books answered {response.status_code}: {response.text}"
                )
            return response.json()["id"]

        return list(await asyncio.gather(*(create(payload) for payload in payloads)))


def seed_catalog(
    catalog_url: str, api_key: str, books: int, authors: int, hot_stock: int
) -> SeededCatalog:
    """Create `books` books over `authors` authors with large stock, plus one hot book."""
    author_names = [f"Bench Author {number:03d}" for number in range(authors)]
    payloads = [
        book_payload(index, author_names[index % authors], BULK_STOCK) for index in range(books)
    ]
    payloads.append(book_payload(books, "Hot Author", hot_stock))
    ids = asyncio.run(_create_books(catalog_url, api_key, payloads))
    return SeededCatalog(book_ids=ids[:-1], authors=author_names, hot_book_id=ids[-1])


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

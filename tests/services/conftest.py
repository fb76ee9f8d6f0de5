"""Shared service fixtures: throwaway PostgreSQL databases and the catalog (ASGI and live)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from bookstore_catalog.__main__ import migrate as migrate_catalog
from bookstore_catalog.app import create_app as create_catalog_app
from bookstore_catalog.config import CatalogSettings
from bookstore_common.migrations import run_migrations
from bookstore_common.settings import ServiceSettings
from fastapi import FastAPI
from psycopg import sql

ADMIN_DATABASE_URL = os.environ.get(
    "TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CATALOG_API_KEY = "catalog-test-key"
CATALOG_AUTH = {"X-API-Key": CATALOG_API_KEY}
CATALOG_TABLES = ("books", "reservations")


def database_url(name: str) -> str:
    """The URL of database `name` on the test PostgreSQL server."""
    return ADMIN_DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def truncate(url: str, tables: tuple[str, ...]) -> None:
    """Empty `tables` and restart their id sequences."""
    names = sql.SQL(", ").join(sql.Identifier(table) for table in tables)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))


def at_revision(
    settings: ServiceSettings, package: str, version_table: str, revision: str, *rows: str
) -> None:
    """An upgrade test's start: the schema at an old `revision`, then `rows` written with the
    SQL of that schema (the service's own migrate() then upgrades it to head)."""
    run_migrations(settings, package=package, version_table=version_table, revision=revision)
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as connection:
        for statement in rows:
            connection.execute(statement)


@pytest.fixture(scope="session")
def make_database() -> Iterator[Callable[[str], str]]:
    """Factory: `make_database("catalog")` creates a fresh, uniquely named database and
    returns its postgresql:// URL; every database it made is dropped at the session's end."""
    created: list[str] = []

    def make(prefix: str) -> str:
        name = f"test_{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return database_url(name)

    yield make
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
        for name in created:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def catalog_database_url(make_database: Callable[[str], str]) -> str:
    """A catalog database for the session, migrated to head through the service's own code."""
    url = make_database("catalog")
    migrate_catalog(CatalogSettings(database_url=url))
    return url


@pytest.fixture
def catalog_settings(catalog_database_url: str) -> CatalogSettings:
    """Catalog settings on the (emptied) session database, with a known API key."""
    truncate(catalog_database_url, CATALOG_TABLES)
    return CatalogSettings(
        database_url=catalog_database_url,
        api_key=CATALOG_API_KEY,
        database_pool_size=5,
        sample_data=False,
    )


@pytest.fixture
async def catalog_app(catalog_settings: CatalogSettings) -> AsyncIterator[FastAPI]:
    """The catalog app on an empty catalog database; its engine is disposed afterwards."""
    app = create_catalog_app(catalog_settings)
    yield app
    await app.state.engine.dispose()


@pytest.fixture
async def catalog_client(catalog_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the catalog app in-process (no API key by default)."""
    transport = httpx.ASGITransport(app=catalog_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://catalog.test") as client:
        yield client


@dataclass(frozen=True)
class LiveCatalog:
    """A catalog running as a real uvicorn server: where it listens and its write key."""

    base_url: str
    api_key: str
    database_url: str


def catalog_command() -> list[str]:
    """The `bookstore-catalog` console script of this virtualenv (or `python -m`)."""
    script = Path(sys.executable).with_name("bookstore-catalog")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bookstore_catalog"]


def start_catalog_server(url: str, *, workers: int = 1) -> Iterator[LiveCatalog]:
    """Run `bookstore-catalog serve` on a free port until the generator is closed."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": url,
        "API_KEY": CATALOG_API_KEY,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": str(workers),
        "LOG_LEVEL": "warning",
        "SAMPLE_DATA": "false",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(catalog_command(), env=env, stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"catalog exited with {process.returncode} while starting")
            try:
                if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("catalog did not become ready within 30 s")
            time.sleep(0.1)
        yield LiveCatalog(base_url=base_url, api_key=CATALOG_API_KEY, database_url=url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def live_catalog(make_database: Callable[[str], str]) -> Iterator[LiveCatalog]:
    """A real catalog server (uvicorn, own database) for the session: base URL + API key.

    State persists across tests: create the books you need (unique ISBNs) in each test.
    """
    yield from start_catalog_server(make_database("live_catalog"))

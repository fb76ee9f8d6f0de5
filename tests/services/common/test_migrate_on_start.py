"""MIGRATE_ON_START: true (dev mode) migrates before serving, as always; false (Kubernetes,
where a migration Job migrates) never touches the schema: no upgrade, no lock, no seeding."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from bookstore_catalog.config import CatalogSettings
from bookstore_common import cli
from bookstore_common.migrations import advisory_lock_key

from tests.services.common.schemas import SERVICES, Service, revisions
from tests.services.conftest import at_revision, free_port


def run_serve(monkeypatch: pytest.MonkeyPatch, migrate_on_start: str) -> list[str]:
    """Run the CLI's `serve` in process with uvicorn replaced; what happened, in order."""
    happened: list[str] = []
    monkeypatch.setenv("MIGRATE_ON_START", migrate_on_start)
    monkeypatch.setattr(cli, "serve", lambda *_: happened.append("serve"))
    status = cli.run_cli(
        "catalog",
        settings_factory=CatalogSettings,
        app_factory="unused:unused",
        migrate=lambda _: happened.append("migrate"),
        schema=SERVICES["catalog"].schema,
        argv=["serve"],
    )
    assert status == 0
    return happened


def test_serve_migrates_first_by_default_and_not_at_all_with_migrate_on_start_false(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert CatalogSettings().migrate_on_start is True
    assert run_serve(monkeypatch, "true") == ["migrate", "serve"]
    assert run_serve(monkeypatch, "false") == ["serve"]


@contextmanager
def advisory_lock_held(url: str, service: Service) -> Iterator[None]:
    """Hold the service's migration lock, so anything that would migrate blocks on it."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "SELECT pg_advisory_lock(%s)", (advisory_lock_key(service.schema.version_table),)
        )
        yield


@contextmanager
def serving(service: Service, url: str, **env: str) -> Iterator[str]:
    """`bookstore-<service> serve` on a free port until the block ends; yields its base URL
    once /health/live answers (whatever /health/ready says)."""
    port = free_port()
    process = subprocess.Popen(
        service.command("serve"),
        env=os.environ
        | {"DATABASE_URL": url, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "warning"}
        | env,
        stdout=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"{service.name} exited with {process.returncode}"
            try:
                if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{service.name} did not serve within 30 s"
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_serve_with_migrate_on_start_false_on_a_fresh_database_creates_and_seeds_nothing(
    make_database: Callable[[str], str],
) -> None:
    service = SERVICES["catalog"]
    url = make_database("no_migrate_fresh")
    # With the migration lock held elsewhere, a serve that tried to migrate would never serve.
    with (
        advisory_lock_held(url, service),
        serving(service, url, MIGRATE_ON_START="false", SAMPLE_DATA="true") as base_url,
    ):
        ready = httpx.get(f"{base_url}/health/ready", timeout=5)
    assert ready.status_code == 503
    assert "Run `bookstore-catalog migrate`" in ready.json()["detail"]
    with psycopg.connect(url) as connection:
        tables = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert tables == []  # no schema, no version table, no sample books


def test_serve_with_migrate_on_start_false_leaves_the_previous_schema_as_it_is(
    make_database: Callable[[str], str],
) -> None:
    service = SERVICES["orders"]
    url = make_database("no_migrate_old")
    previous = service.previous
    at_revision(
        service.settings(url), service.schema.package, service.schema.version_table, previous
    )
    with (
        advisory_lock_held(url, service),
        serving(service, url, MIGRATE_ON_START="false") as base_url,
    ):
        ready = httpx.get(f"{base_url}/health/ready", timeout=5)
        still = revisions(url, service.schema)
    assert ready.status_code == 503
    assert (
        f"at revision {previous}; this version needs {service.schema.head}"
        in ready.json()["detail"]
    )
    assert still == [previous]


def test_the_held_lock_does_block_a_migrating_start(make_database: Callable[[str], str]) -> None:
    """The control of the two tests above: the lock they hold is the one migrating takes."""
    service = SERVICES["orders"]
    url = make_database("lock_control")
    with advisory_lock_held(url, service):
        process = subprocess.Popen(
            service.command("migrate"),
            env=os.environ | {"DATABASE_URL": url, "LOG_LEVEL": "warning"},
            stdout=subprocess.DEVNULL,
        )
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=3)
        assert revisions(url, service.schema) == []
    assert process.wait(timeout=60) == 0  # the lock released: it migrates
    assert revisions(url, service.schema) == [service.schema.head]

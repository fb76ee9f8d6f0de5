"""/health/ready gates traffic on the schema: 503 while it is older than the code's head
(naming both revisions and the fix), ready at head and ahead of it (expand-then-contract)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.services.common.schemas import (
    NEWER_REVISION,
    SERVICES,
    Service,
    run_command,
    set_revision,
)
from tests.services.conftest import at_revision

PROBLEM = "application/problem+json"


async def ready(app: FastAPI) -> httpx.Response:
    """GET /health/ready of the app, in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc.test") as client:
        return await client.get("/health/ready")


def assert_not_ready(response: httpx.Response) -> str:
    """A 503 problem with Retry-After; returns its detail."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == 503
    return str(body["detail"])


@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_ready_is_503_on_the_previous_schema_naming_both_revisions_then_200_after_migrate(
    make_database: Callable[[str], str], name: str
) -> None:
    service = SERVICES[name]
    url = make_database(f"ready_{name}")
    previous, head = service.previous, service.schema.head
    at_revision(
        service.settings(url), service.schema.package, service.schema.version_table, previous
    )
    app = service.app(url)
    try:
        detail = assert_not_ready(await ready(app))
        assert detail == (
            f"The database schema is at revision {previous}; this version needs {head}."
            f" Run `bookstore-{name} migrate`."
        )
        migrated = run_command(service, "migrate", env={"DATABASE_URL": url})
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        after = await ready(app)  # the same process: it checks again until it has seen head
    finally:
        await app.state.engine.dispose()
    assert after.status_code == 200, after.text
    assert after.json() == {"status": "ok"}


async def test_ready_is_503_on_a_database_that_was_never_migrated(
    make_database: Callable[[str], str],
) -> None:
    service = SERVICES["catalog"]
    app = service.app(make_database("ready_empty"))
    try:
        detail = assert_not_ready(await ready(app))
    finally:
        await app.state.engine.dispose()
    assert detail.startswith("The database has no catalog schema yet (alembic_version_catalog")
    assert detail.endswith(
        f"this version needs {service.schema.head}. Run `bookstore-catalog migrate`."
    )


@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_a_schema_ahead_of_the_code_is_ready_so_one_version_rollback_serves(
    make_database: Callable[[str], str], name: str
) -> None:
    service = SERVICES[name]
    url = make_database(f"ahead_{name}")
    at_revision(service.settings(url), service.schema.package, service.schema.version_table, "head")
    set_revision(url, service.schema, NEWER_REVISION)
    app = service.app(url)
    try:
        response = await ready(app)
    finally:
        await app.state.engine.dispose()
    assert response.status_code == 200, response.text


async def test_once_ready_at_head_a_process_no_longer_reads_the_version_table(
    make_database: Callable[[str], str],
) -> None:
    service = SERVICES["orders"]
    url = make_database("ready_cached")
    at_revision(service.settings(url), service.schema.package, service.schema.version_table, "head")
    app = service.app(url)
    try:
        first = await ready(app)
        # Schemas only move forward; forging an older revision now shows the probe no longer
        # reads the table (it only pings the database), which keeps /health/ready cheap.
        set_revision(url, service.schema, service.previous)
        second = await ready(app)
        fresh = service.app(url)
        try:
            fresh_process = await ready(fresh)
        finally:
            await fresh.state.engine.dispose()
    finally:
        await app.state.engine.dispose()
    assert (first.status_code, second.status_code) == (200, 200)
    assert fresh_process.status_code == 503  # a new process reads it, and sees it behind


def test_the_readiness_rule_is_in_the_openapi_description() -> None:
    service: Service = SERVICES["orders"]
    app = service.app("postgresql://nobody@127.0.0.1:1/none")
    responses = app.openapi()["paths"]["/health/ready"]["get"]["responses"]
    assert "schema is older" in responses["503"]["description"]

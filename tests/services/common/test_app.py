"""The shared app skeleton: unhandled errors become a 500 problem without internals."""

from __future__ import annotations

import logging

import httpx
import pytest
from bookstore_common.app import create_service_app
from bookstore_common.settings import ServiceSettings


async def test_unhandled_exception_is_a_500_problem_that_leaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_service_app(
        ServiceSettings(database_url="postgresql://u:p@127.0.0.1:1/x"), title="t", version="0"
    )

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app=app)
    with caplog.at_level(logging.ERROR):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/boom", headers={"X-Request-ID": "r-500"})
    await app.state.engine.dispose()
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "r-500"
    assert "secret internals" not in response.text
    assert response.json()["status"] == 500
    logged = [r for r in caplog.records if r.exc_info is not None]
    assert [str(r.exc_info[1]) for r in logged if r.exc_info] == ["secret internals"]

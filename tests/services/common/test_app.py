"""The shared app skeleton: unhandled errors become a 500 problem without internals."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from bookstore_common.app import create_service_app
from bookstore_common.logs import JsonFormatter
from bookstore_common.settings import ServiceSettings


async def test_unhandled_exception_is_a_500_problem_that_leaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_service_app(
        ServiceSettings(database_url="postgresql://u:p@127.0.0.1:1/x"),
        component="test",
        title="t",
        version="0",
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


async def test_debug_request_log_line_is_json_with_request_id_and_route() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    request_log = logging.getLogger("bookstore.request")
    request_log.addHandler(handler)
    request_log.setLevel(logging.DEBUG)
    app = create_service_app(
        ServiceSettings(database_url="postgresql://u:p@127.0.0.1:1/x", api_key="sekrit"),
        component="test",
        title="t",
        version="0",
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/health/live", headers={"X-Request-ID": "r-1", "X-API-Key": "sekrit"})
    finally:
        request_log.removeHandler(handler)
        request_log.setLevel(logging.NOTSET)
        await app.state.engine.dispose()
    [line] = stream.getvalue().splitlines()
    event = json.loads(line)
    assert (event["request_id"], event["route"], event["status"]) == ("r-1", "/health/live", 200)
    assert "sekrit" not in line


@pytest.mark.parametrize("service", ["bookstore_catalog", "bookstore_orders"])
def test_a_server_worker_freezes_its_startup_heap_out_of_the_collectors_sight(
    service: str, tmp_path: Path
) -> None:
    """The uvicorn factory freezes what startup built (a fresh interpreter: as a worker is)."""
    script = (
        "import gc\n"
        f"from {service}.app import create_app_from_env\n"
        "create_app_from_env()\n"
        "print(gc.get_freeze_count())\n"
    )
    env = {**os.environ, "SQLITE_PATH": str(tmp_path / "dev.db")}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert int(result.stdout) > 10_000  # modules, routes and schemas: tens of thousands

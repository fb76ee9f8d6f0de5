"""The benchmark ceiling: one constant-JSON FastAPI endpoint served exactly like the services.

It goes through the services' own command line (`bookstore_common.cli.run_cli`), so the
server, worker count and uvicorn options (uvloop, httptools, no access log) always match
theirs; only the app differs: no middleware, no database, no validation.
"""

from __future__ import annotations

import sys

from bookstore_common.cli import run_cli
from bookstore_common.settings import ServiceSettings
from fastapi import FastAPI

# About the size of one book, so the JSON encoding work is comparable.
CONSTANT_BOOK = {
    "id": 1,
    "title": "The Ceiling",
    "author": "Bare FastAPI",
    "isbn": "9780000000002",
    "price": "9.99",
    "quantity": 1,
    "description": "A constant answer: what the server can do with no work at all.",
}


def create_app() -> FastAPI:
    """A FastAPI app whose only endpoint returns the constant book."""
    app = FastAPI(title="bench ceiling")

    @app.get("/ceiling")
    async def ceiling() -> dict[str, object]:
        """The constant book."""
        return CONSTANT_BOOK

    return app


def _no_migrations(_: ServiceSettings) -> None:
    """The ceiling has no database, so nothing to migrate."""


def main() -> int:
    """Serve the ceiling on HOST/PORT with WORKERS processes, like the services do."""
    return run_cli(
        "ceiling",
        settings_factory=ServiceSettings,
        app_factory="bare_app:create_app",
        migrate=_no_migrations,
        argv=[],
    )


if __name__ == "__main__":
    sys.exit(main())

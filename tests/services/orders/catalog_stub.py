"""A scriptable stand-in for catalog, served over real HTTP, to make catalog misbehave."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.services.conftest import free_port


@dataclass
class StubCatalog:
    """Books, stock and reservations, plus knobs that make chosen calls fail or hang."""

    stock: dict[int, int] = field(default_factory=dict)
    price: Decimal = Decimal("9.99")
    reservations: dict[int, tuple[int, int]] = field(default_factory=dict)
    references: dict[str, int | None] = field(default_factory=dict)  # None: released
    fail_reserve_for: set[int] = field(default_factory=set)
    hang_reserve_for: set[int] = field(default_factory=set)
    fail_next_releases: int = 0
    reserve_calls: int = 0
    release_calls: int = 0
    hang_seconds: float = 3.0
    omit_price: bool = False
    seen_request_ids: list[str | None] = field(default_factory=list)
    seen_api_keys: list[str | None] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def held(self) -> int:
        """Copies currently held by reservations."""
        return sum(quantity for _, quantity in self.reservations.values())

    async def reserve(self, request: Request) -> Response:
        self.reserve_calls += 1
        self.seen_request_ids.append(request.headers.get("x-request-id"))
        self.seen_api_keys.append(request.headers.get("x-api-key"))
        book_id = int(request.path_params["book_id"])
        quantity = int((await request.json())["quantity"])
        reference = request.headers.get("idempotency-key")
        if book_id in self.hang_reserve_for:
            await asyncio.sleep(self.hang_seconds)
        if reference is not None and reference in self.references:
            known = self.references[reference]
            if known is None:
                return JSONResponse({"detail": "reservation was released"}, status_code=409)
            return JSONResponse(self._body(known), status_code=201)
        if book_id in self.fail_reserve_for:
            return JSONResponse({"detail": "boom"}, status_code=500)
        if book_id not in self.stock:
            return JSONResponse({"detail": "no such book"}, status_code=404)
        if self.stock[book_id] < quantity:
            return JSONResponse({"detail": "not enough stock"}, status_code=409)
        self.stock[book_id] -= quantity
        reservation_id = next(self._ids)
        self.reservations[reservation_id] = (book_id, quantity)
        if reference is not None:
            self.references[reference] = reservation_id
        return JSONResponse(self._body(reservation_id), status_code=201)

    def _body(self, reservation_id: int) -> dict[str, object]:
        """The 201 body of a reservation (without a price when `omit_price`)."""
        book_id, quantity = self.reservations[reservation_id]
        body: dict[str, object] = {"id": reservation_id, "book_id": book_id, "quantity": quantity}
        if not self.omit_price:
            body["unit_price"] = str(self.price)
        return body

    async def release_reference(self, request: Request) -> Response:
        self.release_calls += 1
        if self.fail_next_releases > 0:
            self.fail_next_releases -= 1
            return JSONResponse({"detail": "try later"}, status_code=503)
        reservation_id = self.references.get(request.path_params["reference"])
        self.references[request.path_params["reference"]] = None
        reservation = self.reservations.pop(reservation_id, None) if reservation_id else None
        if reservation is not None:
            book_id, quantity = reservation
            self.stock[book_id] += quantity
        return Response(status_code=204)

    async def release(self, request: Request) -> Response:
        self.release_calls += 1
        if self.fail_next_releases > 0:
            self.fail_next_releases -= 1
            return JSONResponse({"detail": "try later"}, status_code=503)
        reservation = self.reservations.pop(int(request.path_params["reservation_id"]), None)
        if reservation is None:
            return JSONResponse({"detail": "gone"}, status_code=404)
        book_id, quantity = reservation
        self.stock[book_id] += quantity
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/books/{book_id:int}/reservations", self.reserve, methods=["POST"]),
                Route("/reservations/{reservation_id:int}", self.release, methods=["DELETE"]),
                Route(
                    "/reservations/by-reference/{reference:path}",
                    self.release_reference,
                    methods=["DELETE"],
                ),
            ]
        )


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run an ASGI app with uvicorn on 127.0.0.1 in a thread; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("stub catalog failed to start")
        threading.Event().wait(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)

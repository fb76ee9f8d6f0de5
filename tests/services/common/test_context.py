"""Request ids: accepted or generated, and propagated on outgoing httpx calls."""

from __future__ import annotations

import httpx
import pytest
from bookstore_common.context import propagate_request_id, request_id_var, sanitize_request_id


def test_reasonable_request_id_is_kept() -> None:
    assert sanitize_request_id("abc-123") == "abc-123"


@pytest.mark.parametrize("bad", [None, "", "x" * 129, "bad\nheader", "ünïcode"])
def test_missing_or_unreasonable_request_id_is_replaced(bad: str | None) -> None:
    generated = sanitize_request_id(bad)
    assert generated != bad
    assert len(generated) == 32


async def test_outgoing_httpx_call_carries_the_current_request_id() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("X-Request-ID"))
        return httpx.Response(204)

    transport = httpx.MockTransport(handler)
    hooks = {"request": [propagate_request_id]}
    async with httpx.AsyncClient(transport=transport, event_hooks=hooks) as client:
        token = request_id_var.set("req-7")
        try:
            await client.get("http://catalog/books")
        finally:
            request_id_var.reset(token)
        await client.get("http://catalog/books")
    assert seen == ["req-7", None]

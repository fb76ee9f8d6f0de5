"""Pure-ASGI middleware: request id, per-request metrics and the last-resort 500 problem."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookstore_common.context import REQUEST_ID_HEADER, request_id_var, sanitize_request_id
from bookstore_common.metrics import HttpMetrics
from bookstore_common.problems import problem_response

log = logging.getLogger("bookstore.request")

_HEADER_NAME = REQUEST_ID_HEADER.lower().encode()
_UNMATCHED_ROUTE = "<unmatched>"
_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def _incoming_request_id(scope: Scope) -> str | None:
    """The caller's X-Request-ID header value, if any."""
    for name, value in scope["headers"]:
        if name == _HEADER_NAME:
            return bytes(value).decode("latin-1")
    return None


def _route_template(scope: Scope) -> str:
    """The matched route's path template (bounded cardinality), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else _UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Take or generate X-Request-ID, echo it, record the service's HTTP metrics, and turn
    crashes into 500s.

    Written as plain ASGI (not BaseHTTPMiddleware) to keep the hot path cheap.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request inside its request-id context."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = sanitize_request_id(_incoming_request_id(scope))
        token = request_id_var.set(request_id)
        header = (_HEADER_NAME, request_id.encode())
        status = 500
        started = False
        start = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            log.exception(
                "unhandled error", extra={"method": scope["method"], "path": scope["path"]}
            )
            status = 500
            if not started:
                response = problem_response(500, "Internal server error; see the service logs.")
                await response(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            self.metrics.observe(method, route, status, elapsed)
            if log.isEnabledFor(logging.DEBUG) or status >= 500:
                log.log(
                    logging.ERROR if status >= 500 else logging.DEBUG,
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)

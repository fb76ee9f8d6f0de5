"""RFC 9457 problem details: domain errors and the handlers that render them."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sqlalchemy_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_BASE = "https://bookstore.dev/problems/"

log = logging.getLogger(__name__)


def problem_body(
    status: int, detail: str, *, title: str | None = None, type_: str | None = None
) -> dict[str, Any]:
    """Build the `{"type","title","status","detail"}` dict for an HTTP status."""
    phrase = HTTPStatus(status).phrase
    slug = phrase.lower().replace(" ", "-").replace("'", "")
    return {
        "type": type_ or _TYPE_BASE + slug,
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }


class ProblemResponse(Response):
    """An `application/problem+json` response rendered with orjson."""

    media_type = PROBLEM_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        """Serialize the problem dict."""
        return orjson.dumps(content)


def problem_response(
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """A ready problem+json response; `extra` members (e.g. `errors`) are added to the body."""
    body = problem_body(status, detail) | extra
    return ProblemResponse(body, status_code=status, headers=headers)


class DomainError(Exception):
    """An error a service raises on purpose; rendered as a problem with `status`."""

    status: int = 400

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers

    def to_response(self) -> ProblemResponse:
        """Render this error as problem+json."""
        return problem_response(self.status, self.detail, headers=self.headers)


class UnauthorizedError(DomainError):
    """The write needs a valid X-API-Key (401)."""

    status = 401


class NotFoundError(DomainError):
    """The named resource does not exist (404)."""

    status = 404


class ConflictError(DomainError):
    """The request conflicts with the current state, e.g. a duplicate or no stock (409)."""

    status = 409


class UnprocessableError(DomainError):
    """A semantically invalid request not caught by schema validation (422)."""

    status = 422


class UnavailableError(DomainError):
    """A dependency is down; the client should retry after `retry_after` seconds (503)."""

    status = 503

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class BadGatewayError(DomainError):
    """A dependency answered with something unusable (502)."""

    status = 502


def _loc(loc: Sequence[Any]) -> list[str | int]:
    """Field location as JSON-friendly parts, e.g. ["body", "isbn"]."""
    return [part if isinstance(part, int) else str(part) for part in loc]


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """List each invalid field as `{"loc", "msg", "type"}` (no echo of the input value)."""
    return [
        {"loc": _loc(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]


async def _domain_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return exc.to_response()


# Validation error types meaning "the body is not an object" (the model got another value).
_NOT_AN_OBJECT = frozenset(("model_attributes_type", "model_type", "dict_type"))


def _json_kind(value: Any) -> str:
    """How a problem names a decoded JSON value that is not an object ("an array", ...)."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else "not an object"


def body_problem(exc: RequestValidationError) -> ProblemResponse | None:
    """The problem for a request body that is not a JSON object at all, else None.

    Malformed JSON is a 400 naming the decoder's reason and position; a body sent without a
    JSON Content-Type is a 415; valid JSON of the wrong top-level type (e.g. an array) is a
    422 on the field `body`. Field-level errors inside an object are left to the caller.
    """
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "JSON decode error")
            position = loc[1] if len(loc) > 1 else 0
            detail = f"The request body is not valid JSON: {reason} at character {position}."
            return problem_response(
                400, detail, title="Malformed JSON body", type=_TYPE_BASE + "malformed-json"
            )
        if loc != ("body",):
            continue
        value = error.get("input")
        if error.get("type") in _NOT_AN_OBJECT and isinstance(value, bytes | bytearray):
            return problem_response(
                415,
                "The request body must be JSON sent with Content-Type: application/json.",
            )
        if error.get("type") in _NOT_AN_OBJECT:
            detail = f"The request body must be a JSON object, not {_json_kind(value)}."
        elif error.get("type") == "missing":
            detail = "The request body is missing; send a JSON object."
        else:
            continue
        errors = [{"loc": ["body"], "msg": detail, "type": error.get("type")}]
        return problem_response(422, detail, errors=errors)
    return None


async def _validation_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    body = body_problem(exc)
    if body is not None:
        return body
    errors = validation_errors(exc)
    fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors)
    return problem_response(422, f"Invalid request: {fields}", errors=errors)


async def _http_exception_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No such resource"
    return problem_response(exc.status_code, detail, headers=exc.headers)


# Failures to reach or use the database: the service is unavailable, not broken.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy_exc.OperationalError,
    sqlalchemy_exc.InterfaceError,
    sqlalchemy_exc.TimeoutError,
    OSError,  # TimeoutError too: a raw pool checkout that waited too long
    # The raw asyncpg pool (bookstore_common.rawpool): a dropped or refused connection.
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)
DATABASE_RETRY_AFTER_SECONDS = 5


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database is unreachable or dropped the connection."""
    if isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
        return True
    return isinstance(exc, sqlalchemy_exc.DBAPIError) and exc.connection_invalidated


# SQLSTATE class 28: the server refused the credentials (invalid_password, or no pg_hba entry).
LOGIN_REFUSED_SQLSTATES = frozenset({"28P01", "28000"})
LOGIN_REFUSED_TEXTS = ("password authentication failed", "no pg_hba.conf entry")


def is_login_refused(exc: BaseException) -> bool:
    """Whether the database refused our credentials: waiting will not help, a fixed Secret will."""
    cause = getattr(exc, "orig", None) or exc
    if getattr(cause, "sqlstate", None) in LOGIN_REFUSED_SQLSTATES:
        return True
    return any(text in str(cause) for text in LOGIN_REFUSED_TEXTS)


async def _database_error_handler(_: Request, exc: Exception) -> Response:
    if not is_database_unavailable(exc):
        raise exc  # a real bug: the middleware turns it into a logged 500
    log.warning("database unavailable", extra={"error": type(exc).__name__})
    return UnavailableError(
        "The database is unavailable; retry later.", retry_after=DATABASE_RETRY_AFTER_SECONDS
    ).to_response()


def install_problem_handlers(app: FastAPI) -> None:
    """Render domain errors, validation errors, routing 404/405 and database outages
    (503 with Retry-After) as problem+json.

    Unhandled exceptions become a 500 problem in `RequestContextMiddleware`.
    """
    database_errors: tuple[type[Exception], ...] = (
        sqlalchemy_exc.DBAPIError,
        *DATABASE_UNAVAILABLE_ERRORS,
    )
    for error in database_errors:
        app.add_exception_handler(error, _database_error_handler)
    app.add_exception_handler(DomainError, _domain_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)

"""The X-API-Key dependency that guards write endpoints."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from bookstore_common.problems import UnauthorizedError, UnavailableError
from bookstore_common.settings import ServiceSettings

API_KEY_HEADER = "X-API-Key"

_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


async def require_api_key(
    request: Request, api_key: Annotated[str | None, Security(_api_key_header)]
) -> None:
    """Allow the request only with the configured X-API-Key (compared in constant time).

    Missing or wrong key: 401 problem. When the service has no API_KEY configured at all,
    writes are refused with a 503 problem (fail closed) rather than left open.
    """
    settings: ServiceSettings = request.app.state.settings
    if settings.api_key is None:
        raise UnavailableError("Writes are disabled: the service has no API_KEY configured.")
    if api_key is None:
        raise UnauthorizedError(f"Missing {API_KEY_HEADER} header.")
    expected = settings.api_key.get_secret_value().encode()
    if not hmac.compare_digest(api_key.encode(), expected):
        raise UnauthorizedError(f"Invalid {API_KEY_HEADER}.")


ApiKeyDep = Depends(require_api_key)

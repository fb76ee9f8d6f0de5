"""HTTP routes of the orders API: thin wrappers that validate and call the service."""

from __future__ import annotations

from typing import Annotated, Any

from bookstore_common.db import SessionDep
from bookstore_common.problems import PROBLEM_CONTENT_TYPE
from bookstore_common.security import ApiKeyDep
from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import EmailStr
from starlette.responses import Response

from bookstore_orders.models import OrderStatus
from bookstore_orders.schemas import OrderCreate, OrderPage, OrderRead
from bookstore_orders.service import OrdersService


def orders_service_of(request: Request) -> OrdersService:
    """The process's OrdersService (built in the app lifespan).

    Read in the endpoint (`request: Request`) rather than through a FastAPI dependency:
    solving an async dependency costs ~7 us a request.
    """
    service: OrdersService = request.app.state.orders_service
    return service


OrderId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Order id.")]


def _problem(description: str) -> dict[str, Any]:
    """OpenAPI entry for a problem+json error response."""
    return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {}}}


router = APIRouter(prefix="/orders", tags=["orders"])


@router.post(
    "",
    status_code=201,
    response_model=OrderRead,
    dependencies=[ApiKeyDep],
    responses={
        400: _problem("The body is not valid JSON"),
        401: _problem("Missing or wrong X-API-Key"),
        409: _problem("Not enough stock, or the Idempotency-Key is in use"),
        422: _problem("Invalid order, unknown book, or a key reused for another order"),
        502: _problem("Catalog refused the reservation"),
        415: _problem("The body is not sent as application/json"),
        503: _problem("Catalog is unavailable; retry after Retry-After seconds"),
    },
)
async def place_order(
    order: OrderCreate,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Retries with the same key return the first answer, never a 2nd order.",
        ),
    ] = None,
) -> Response:
    """Reserve the books at catalog and confirm the order (201 + Location)."""
    placed = await orders_service_of(request).place_order(order, idempotency_key)
    headers = {"Location": f"/orders/{placed.order_id}"} if placed.order_id else {}
    if placed.replayed:
        headers["Idempotent-Replayed"] = "true"
    media_type = "application/json" if placed.status < 400 else PROBLEM_CONTENT_TYPE
    return Response(placed.body, placed.status, headers=headers, media_type=media_type)


@router.get("", response_model=OrderPage)
async def list_orders(
    request: Request,
    session: SessionDep,
    status: OrderStatus | None = None,
    email: Annotated[EmailStr | None, Query(max_length=320)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> OrderPage:
    """Orders a customer placed (`confirmed`, `cancelled`), newest first; or only one status
    or one customer's email.

    Without `status`, refused and in-flight attempts are left out: `status=failed` lists
    orders that were refused or given up (no stock held; their lines as requested, with
    `unit_price` null), `status=pending` those whose stock is being reserved or given back.
    """
    return await orders_service_of(request).list_orders(
        session, status=status, email=email, limit=limit, offset=offset
    )


@router.get("/{order_id}", response_model=OrderRead, responses={404: _problem("No such order")})
async def get_order(order_id: OrderId, request: Request, session: SessionDep) -> OrderRead:
    """One order."""
    return await orders_service_of(request).get_order(session, order_id)


@router.post(
    "/{order_id}/cancel",
    response_model=OrderRead,
    dependencies=[ApiKeyDep],
    responses={
        401: _problem("Missing or wrong X-API-Key"),
        404: _problem("No such order"),
        409: _problem("The order is not confirmed (already cancelled, or a failed order)"),
        503: _problem("Catalog is unavailable; the order stays confirmed, retry later"),
    },
)
async def cancel_order(order_id: OrderId, request: Request) -> OrderRead:
    """Cancel a confirmed order and give its stock back to catalog."""
    return await orders_service_of(request).cancel_order(order_id)

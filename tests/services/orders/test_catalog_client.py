"""The catalog client against a real HTTP stand-in: retries, breaker, recovery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from bookstore_orders.catalog_client import (
    CatalogClient,
    CatalogRejectedError,
    CatalogUnavailableError,
    ReservationReleasedError,
    RetryPolicy,
    build_http_session,
)
from bookstore_orders.circuit_breaker import CircuitBreaker, CircuitState

from tests.services.orders.catalog_stub import StubCatalog
from tests.services.orders.test_circuit_breaker import FakeClock


@pytest.fixture
async def http(stub_catalog: tuple[StubCatalog, str]) -> AsyncIterator[Session]:
    async with build_http_session("key") as session:
        yield Session(session, stub_catalog[1])


@dataclass
class Session:
    """The shared HTTP session and the catalog stand-in's URL."""

    session: aiohttp.ClientSession
    url: str


def client_with(http: Session, clock: FakeClock) -> CatalogClient:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30.0, clock=clock)
    retry = RetryPolicy(attempts=3, base_delay=0.001)
    return CatalogClient(http.session, http.url, breaker, retry)


async def test_reservation_post_is_retried_with_its_reference_after_a_server_error(
    http: Session, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, _ = stub_catalog
    catalog.fail_reserve_for = {1}
    with pytest.raises(CatalogUnavailableError):
        await client_with(http, FakeClock()).reserve(1, 1, "order-1-0")
    assert catalog.reserve_calls == 2  # the policy's two attempts
    assert catalog.reservations == {}


async def test_repeated_reference_gets_the_same_reservation_and_stock_is_taken_once(
    http: Session, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, _ = stub_catalog
    client = client_with(http, FakeClock())
    first = await client.reserve(1, 2, "order-7-0")
    again = await client.reserve(1, 2, "order-7-0")
    assert again == first
    assert catalog.stock[1] == 8


async def test_reference_released_before_its_post_is_refused_as_released(
    http: Session, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, _ = stub_catalog
    client = client_with(http, FakeClock())
    await client.release_reference("order-8-0")
    with pytest.raises(ReservationReleasedError):
        await client.reserve(1, 2, "order-8-0")
    assert catalog.stock[1] == 10


async def test_release_is_idempotent_so_it_is_retried_and_a_404_counts_as_done(
    http: Session, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, _ = stub_catalog
    client = client_with(http, FakeClock())
    reservation = await client.reserve(1, 2, "order-2-0")
    catalog.fail_next_releases = 1
    await client.release(reservation.id)
    await client.release(reservation.id)
    assert catalog.release_calls == 3
    assert catalog.stock[1] == 10


async def test_breaker_fails_fast_while_open_and_closes_when_catalog_is_back(
    http: Session, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, _ = stub_catalog
    clock = FakeClock()
    client = client_with(http, clock)
    catalog.fail_reserve_for = {1}
    with pytest.raises(CatalogUnavailableError):
        await client.reserve(1, 1, "order-3-0")
    assert client.breaker.state is CircuitState.OPEN
    with pytest.raises(CatalogUnavailableError, match="circuit open") as raised:
        await client.reserve(1, 1, "order-4-0")
    assert raised.value.retry_after == 30
    assert catalog.reserve_calls == 2

    catalog.fail_reserve_for = set()
    clock.advance(30.0)
    assert client.breaker.state is CircuitState.HALF_OPEN
    reservation = await client.reserve(1, 1, "order-5-0")
    assert reservation.unit_price == catalog.price
    assert client.breaker.state is CircuitState.CLOSED


async def test_unusable_reservation_body_is_released_not_leaked(
    http: Session, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, _ = stub_catalog
    catalog.omit_price = True
    with pytest.raises(CatalogRejectedError, match="unexpected reservation body"):
        await client_with(http, FakeClock()).reserve(1, 1, "order-6-0")
    assert catalog.reservations == {}
    assert catalog.stock[1] == 10

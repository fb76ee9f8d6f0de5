"""Property-based fuzzing of every orders OpenAPI operation: no input ever yields a 5xx.

schemathesis generates valid (positive) and invalid (negative) requests from the app's
schema; hypothesis drives them at a real orders server that calls the live catalog. The
operations are parametrized here because schemathesis' `from_fixture` loader does not run
under pytest 9.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from bookstore_orders.__main__ import migrate
from bookstore_orders.app import create_app
from bookstore_orders.config import OrdersSettings
from schemathesis import GenerationMode

from tests.services.conftest import LiveCatalog
from tests.services.fuzz import assert_no_server_error, cases, operations
from tests.services.orders.conftest import AUTH, LiveOrders, start_orders_server

OPERATIONS = operations(
    create_app(OrdersSettings(database_url="postgresql://unused@127.0.0.1:1/unused")).openapi()
)
CASES = cases(OPERATIONS)


@pytest.fixture(scope="module")
def fuzz_orders(
    make_database: Callable[[str], str], live_catalog: LiveCatalog
) -> Iterator[LiveOrders]:
    """A real orders server with its own database, calling the live catalog."""
    url = make_database("fuzz_orders")
    migrate(OrdersSettings(database_url=url))
    yield from start_orders_server(url, live_catalog.base_url, workers=1)


def test_every_orders_operation_is_fuzzed() -> None:
    assert {"POST /orders", "GET /orders", "GET /orders/{order_id}"} <= OPERATIONS.keys()
    assert "POST /orders/{order_id}/cancel" in OPERATIONS


@pytest.mark.parametrize("with_key", [True, False], ids=["with-key", "without-key"])
@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_no_generated_request_causes_a_server_error(
    fuzz_orders: LiveOrders, operation: str, mode: GenerationMode, with_key: bool
) -> None:
    headers = AUTH if with_key else {}

    assert_no_server_error(OPERATIONS[operation], mode, fuzz_orders.base_url, headers)

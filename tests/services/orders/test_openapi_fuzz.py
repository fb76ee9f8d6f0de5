"""Property-based fuzzing of every orders OpenAPI operation: no input ever yields a 5xx.

schemathesis generates valid (positive) and invalid (negative) requests from the app's
schema; hypothesis drives them at a real orders server that calls the live catalog. The
operations are parametrized here because schemathesis' `from_fixture` loader does not run
under pytest 9.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import schemathesis
from bookstore_orders.__main__ import migrate
from bookstore_orders.app import create_app
from bookstore_orders.config import OrdersSettings
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.services.conftest import LiveCatalog
from tests.services.orders.conftest import AUTH, LiveOrders, start_orders_server

SCHEMA = schemathesis.openapi.from_dict(
    create_app(OrdersSettings(database_url="postgresql://unused@127.0.0.1:1/unused")).openapi()
)
OPERATIONS = {
    f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in SCHEMA.get_all_operations())
}
CASES = [
    (name, mode)
    for name, op in sorted(OPERATIONS.items())
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or op.path_parameters or op.query or op.body
]


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

    @given(case=OPERATIONS[operation].as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case: schemathesis.Case) -> None:
        response = case.call(base_url=fuzz_orders.base_url, headers=headers, timeout=10)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"

    no_server_error()

"""Stateful property test: any sequence of reserves and releases keeps stock exactly right."""

from __future__ import annotations

import itertools

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from tests.services.catalog.books import book_payload
from tests.services.conftest import LiveCatalog

_seeds = itertools.count(900_000)


class StockMachine(RuleBasedStateMachine):
    """Drives one book on a live catalog and compares it with a tiny model of its stock."""

    catalog: LiveCatalog
    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.client = httpx.Client(
            base_url=self.catalog.base_url, headers={"X-API-Key": self.catalog.api_key}
        )
        self.stock = 5
        created = self.client.post("/books", json=book_payload(next(_seeds), quantity=self.stock))
        assert created.status_code == 201, created.text
        self.book_id = created.json()["id"]
        self.released: set[int] = set()

    @rule(target=reservations, quantity=st.integers(min_value=1, max_value=4))
    def reserve(self, quantity: int) -> tuple[int, int] | None:
        response = self.client.post(
            f"/books/{self.book_id}/reservations", json={"quantity": quantity}
        )
        if quantity > self.stock:
            assert response.status_code == 409
            return None
        assert response.status_code == 201, response.text
        self.stock -= quantity
        return response.json()["id"], quantity

    @rule(reservation=consumes(reservations))
    def release(self, reservation: tuple[int, int] | None) -> None:
        if reservation is None:  # the reserve was refused: nothing to give back
            return
        reservation_id, quantity = reservation
        response = self.client.delete(f"/reservations/{reservation_id}")
        assert response.status_code == 204
        self.stock += quantity
        second = self.client.delete(f"/reservations/{reservation_id}")
        assert second.status_code == 404

    @rule(extra=st.integers(min_value=0, max_value=3))
    def restock(self, extra: int) -> None:
        response = self.client.put(f"/books/{self.book_id}", json={"quantity": self.stock + extra})
        assert response.status_code == 200
        self.stock += extra

    @invariant()
    def stock_matches_the_model(self) -> None:
        quantity = self.client.get(f"/books/{self.book_id}").json()["quantity"]
        assert quantity == self.stock
        assert quantity >= 0

    def teardown(self) -> None:
        self.client.close()


@pytest.fixture
def stock_machine(live_catalog: LiveCatalog) -> type[StockMachine]:
    """The state machine bound to the live catalog."""
    StockMachine.catalog = live_catalog
    return StockMachine


def test_stock_follows_reservations_releases_and_restocks(
    stock_machine: type[StockMachine],
) -> None:
    test_case = stock_machine.TestCase
    test_case.settings = settings(
        max_examples=20,
        stateful_step_count=15,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    test_case().runTest()

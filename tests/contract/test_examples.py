"""Each example's containers, run with the env the operator wired, serve and take an order."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.contract.cluster import LOOPBACK
from tests.contract.conftest import BUNDLED_DATABASE_EXAMPLES, RunningStore

CUSTOMER = {"customer_name": "Ada Lovelace", "customer_email": "ada@example.com"}
NEW_BOOK = {
    "title": "Structure and Interpretation of Computer Programs",
    "author": "Abelson, Sussman",
    "isbn": "978-0-262-51087-5",
    "price": "45.00",
    "quantity": 7,
}


def _book_in_stock(store: RunningStore, client: httpx.Client) -> dict[str, Any]:
    """A sample book when the example seeds them, else one created through catalog's API."""
    catalog = store.catalog.service_url()
    if store.namespace.store.spec.sample_data:
        books = client.get(f"{catalog}/books").json()["items"]
        return next(book for book in books if book["quantity"] >= 2)
    created = client.post(f"{catalog}/books", json=NEW_BOOK, headers={"X-API-Key": store.api_key})
    assert created.status_code == 201, created.text
    return dict(created.json())


def test_order_placed_through_orders_is_confirmed_and_takes_catalog_stock(
    running_store: RunningStore,
) -> None:
    with httpx.Client(timeout=10) as client:
        book = _book_in_stock(running_store, client)
        placed = client.post(
            f"{running_store.orders.service_url()}/orders",
            json={**CUSTOMER, "items": [{"book_id": book["id"], "quantity": 2}]},
            headers={"X-API-Key": running_store.api_key},
        )
        assert placed.status_code == 201, placed.text
        assert placed.json()["status"] == "confirmed"
        after = client.get(f"{running_store.catalog.service_url()}/books/{book['id']}").json()
    assert after["quantity"] == book["quantity"] - 2


def test_writes_without_the_generated_api_key_are_refused(running_store: RunningStore) -> None:
    response = httpx.post(
        f"{running_store.orders.service_url()}/orders",
        json={**CUSTOMER, "items": [{"book_id": 1, "quantity": 1}]},
        headers={"X-API-Key": "not-" + running_store.api_key},
    )
    assert response.status_code == 401


def _superuser_connect(store: RunningStore, password: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=LOOPBACK,
        port=store.postgres.port,
        user="postgres",
        password=password,
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    )


# An external server's superuser is the DBA's, not the operator's: bundled databases only.
@pytest.mark.parametrize("running_store", BUNDLED_DATABASE_EXAMPLES, indirect=True)
def test_superuser_password_is_the_generated_secret_and_loopback_asks_for_it(
    running_store: RunningStore,
) -> None:
    assert not running_store.namespace.store.spec.database.is_external
    password = running_store.namespace.secret(
        running_store.namespace.store.child_name("db"), "postgres-password"
    )
    with _superuser_connect(running_store, password) as connection:
        roles = connection.execute(
            "SELECT rolname FROM pg_roles WHERE rolname IN ('catalog', 'orders')"
        ).fetchall()
    assert sorted(r[0] for r in roles) == ["catalog", "orders"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _superuser_connect(running_store, "not-" + password).close()


def _set_password(store: RunningStore, role: str, password: str) -> None:
    """Change a role's password over the local socket and drop its open connections."""
    socket_dir, port = str(store.postgres.socket_dir), store.postgres.port
    with psycopg.connect(host=socket_dir, port=port, user="postgres", autocommit=True) as db:
        db.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role]
        )


def _wait_for_readiness(store: RunningStore, expected: int, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while (status := store.catalog.probe()) != expected:
        assert time.monotonic() < deadline, f"readiness answered {status}, wanted {expected}"
        time.sleep(0.2)


def test_readiness_fails_while_the_database_refuses_the_secret_password(
    running_store: RunningStore,
) -> None:
    role = running_store.catalog.env["DATABASE_URL"].split("://", 1)[1].split("@", 1)[0]
    right = running_store.catalog.env["DATABASE_PASSWORD"]
    _set_password(running_store, role, "rotated-" + right)
    try:
        _wait_for_readiness(running_store, 503)
        time.sleep(1)  # a second probe on a fresh connection: the login itself is refused
        assert running_store.catalog.probe() == 503
        assert f'password authentication failed for user "{role}"' in running_store.postgres.log()
    finally:
        _set_password(running_store, role, right)
    _wait_for_readiness(running_store, 200)


def test_migration_with_a_wrong_database_password_fails(running_store: RunningStore) -> None:
    process = running_store.service("catalog")
    process.env["DATABASE_PASSWORD"] = "wrong-" + process.env["DATABASE_PASSWORD"]
    process.argv = [*process.argv, "migrate"]
    # A refused login fails at once: no waiting out STARTUP_TIMEOUT (120 s) for a password
    # that cannot change under the running process.
    assert process.run_to_completion(timeout=30) == 1, process.log()
    assert "migration failed: the database refused the login" in process.log()
    assert "DATABASE_PASSWORD" in process.log()

"""Backups on a real cluster: a store takes orders, is backed up (by a BookstoreBackup and by
the backup-now annotation), is deleted (taking its final backup first: spec.backup.finalBackup),
and a new Bookstore restored from the backup serves the same books and orders; the backups and
their volume outlive the deleted store.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any, cast

import httpx
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.cluster import condition, eventually, port_forward
from tests.e2e.conftest import (
    GROUP,
    PLURAL,
    VERSION,
    create_bookstore,
    get_bookstore,
    read,
    wait_ready,
)

BACKUPS = "bookstorebackups"
SMALL = {"autoscaling": {"enabled": False}, "replicas": 1}
BACKUP_WAIT_SECONDS = 600
GONE_WAIT_SECONDS = 300
ISBN = "9780306406157"


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi()


def create_backup(namespace: str, name: str, bookstore: str) -> None:
    """What `kubectl create -f` does with a BookstoreBackup manifest."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BookstoreBackup",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"bookstore": bookstore},
    }
    custom().create_namespaced_custom_object(GROUP, VERSION, namespace, BACKUPS, body)


def backups(namespace: str, selector: str = "") -> list[dict[str, Any]]:
    found = custom().list_namespaced_custom_object(
        GROUP, VERSION, namespace, BACKUPS, label_selector=selector
    )
    return cast(list[dict[str, Any]], found["items"])


def wait_backup(namespace: str, pick: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
    """Wait for a backup to end; fail at once, with its message, when it failed."""

    def finished() -> dict[str, Any] | None:
        backup = pick()
        phase = ((backup or {}).get("status") or {}).get("phase")
        assert phase != "Failed", backup
        return backup if phase == "Completed" else None

    return eventually(finished, timeout=BACKUP_WAIT_SECONDS, interval=5, what="a Completed backup")


def by_name(namespace: str, name: str) -> Callable[[], dict[str, Any] | None]:
    def pick() -> dict[str, Any] | None:
        try:
            return cast(
                dict[str, Any],
                custom().get_namespaced_custom_object(GROUP, VERSION, namespace, BACKUPS, name),
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    return pick


def api_key(namespace: str, store: str) -> str:
    secret = read("Secret", namespace, f"{store}-api-key")
    assert secret is not None
    return base64.b64decode(secret["data"]["api-key"]).decode()


def place_orders(namespace: str, store: str) -> tuple[int, list[int]]:
    """A book with 10 copies and two orders of it; returns the book id and the order ids."""
    headers = {"X-API-Key": api_key(namespace, store)}
    with (
        port_forward(namespace, f"{store}-catalog") as catalog_url,
        port_forward(namespace, f"{store}-orders") as orders_url,
    ):
        book = httpx.post(
            f"{catalog_url}/books",
            headers=headers,
            json={"title": "Dune", "author": "Frank Herbert", "isbn": ISBN,
                  "price": "12.50", "quantity": 10},
            timeout=30,
        )  # fmt: skip
        assert book.status_code == 201, book.text
        book_id = int(book.json()["id"])
        orders = []
        for quantity in (1, 2):
            order = httpx.post(
                f"{orders_url}/orders",
                headers={**headers, "Idempotency-Key": f"e2e-backup-{quantity}"},
                json={"customer_name": "Ada", "customer_email": "ada@example.com",
                      "items": [{"book_id": book_id, "quantity": quantity}]},
                timeout=30,
            )  # fmt: skip
            assert order.status_code == 201, order.text
            orders.append(int(order.json()["id"]))
    return book_id, orders


def delete_and_wait(namespace: str, name: str) -> None:
    custom().delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def gone() -> bool:
        try:
            get_bookstore(namespace, name)
        except ApiException as error:
            return error.status == 404
        return False

    eventually(gone, timeout=GONE_WAIT_SECONDS, interval=5, what=f"bookstore/{name} gone")


def test_a_deleted_store_comes_back_from_its_backup(
    operator_release: str, new_namespace: Callable[[], str]
) -> None:
    namespace = new_namespace()
    spec = {
        "catalog": SMALL,
        "orders": SMALL,
        "database": {"storage": "1Gi", "deletionPolicy": "Delete"},
        "backup": {"retention": 3, "volume": {"size": "1Gi"}, "finalBackup": True},
    }
    create_bookstore(namespace, "shop", spec)
    wait_ready(namespace, "shop")
    book_id, order_ids = place_orders(namespace, "shop")

    # On demand, both ways the README shows: a BookstoreBackup, and the annotation.
    create_backup(namespace, "shop-before-move", "shop")
    backup = wait_backup(namespace, by_name(namespace, "shop-before-move"))
    assert backup["status"]["sizeBytes"] > 0
    assert set(backup["status"]["revisions"]) == {"catalog", "orders"}
    custom().patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "shop",
        {"metadata": {"annotations": {"bookstore.dev/backup-now": str(int(time.time()))}}},
    )  # fmt: skip

    def requested() -> dict[str, Any] | None:
        made = backups(namespace, "bookstore.dev/backup-origin=requested")
        return made[0] if made else None

    wait_backup(namespace, requested)

    def recorded() -> dict[str, Any] | None:
        store = get_bookstore(namespace, "shop")
        last = ((store.get("status") or {}).get("backup") or {}).get("lastSuccessfulBackup")
        return store if last else None

    store = eventually(recorded, timeout=120, interval=5, what="status.backup recorded")
    assert condition(store, "LastBackupSucceeded")["status"] == "True"

    # finalBackup: one last backup before the children go; then, with deletionPolicy Delete,
    # the data volume goes; the backups and their volume stay.
    delete_and_wait(namespace, "shop")
    [final] = backups(namespace, "bookstore.dev/backup-origin=final")
    assert final["spec"]["bookstore"] == "shop"
    assert final["status"]["phase"] == "Completed", final["status"]
    eventually(
        lambda: read("PersistentVolumeClaim", namespace, "data-shop-postgres-0") is None,
        timeout=GONE_WAIT_SECONDS,
        what="the data volume deleted",
    )
    assert read("PersistentVolumeClaim", namespace, "shop-backups") is not None
    assert by_name(namespace, "shop-before-move")() is not None

    # A new Bookstore starts from the backup and serves the same books and orders.
    source = {"restoreFrom": {"backup": "shop-before-move"}}
    restored = {**spec, "database": {**spec["database"], **source}}
    create_bookstore(namespace, "shop-again", restored)
    ready = wait_ready(namespace, "shop-again")
    record = ready["status"]["database"]["restoredFrom"]
    assert (record["backup"], record["bookstore"]) == ("shop-before-move", "shop"), record
    with (
        port_forward(namespace, "shop-again-catalog") as catalog_url,
        port_forward(namespace, "shop-again-orders") as orders_url,
    ):
        book = httpx.get(f"{catalog_url}/books/{book_id}", timeout=30)
        assert book.status_code == 200, book.text
        assert book.json()["isbn"] == ISBN
        assert book.json()["quantity"] == 7  # 10 copies, 1 + 2 ordered
        for order_id in order_ids:
            order = httpx.get(f"{orders_url}/orders/{order_id}", timeout=30)
            assert order.status_code == 200, order.text
            assert order.json()["status"] == "confirmed"

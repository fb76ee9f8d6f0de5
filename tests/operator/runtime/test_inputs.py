"""Inputs the schema cannot check: paused Bookstores and the Secrets a spec names."""

from __future__ import annotations

from typing import Any

from tests.operator.runtime.conftest import (
    BOOKSTORES,
    NAMESPACE,
    Operator,
    api,
    bookstore,
    condition,
    create_bookstore,
    create_secret,
    eventually,
    mark_workloads_ready,
    reconciles,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator

SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"
DATABASE = {"host": "pg.example", "port": "5432", "username": "shop", "password": "s3cret"}


def warned(emulator: Emulator, reason: str) -> bool:
    return any(
        e.get("type") == "Warning" and e.get("reason") == reason
        for e in emulator.live_items("v1/events")
    )


def failed_with(emulator: Emulator, name: str, reason: str) -> dict[str, Any] | None:
    store = bookstore(emulator, name)
    ready = condition(store, "Ready")
    ok = (store.get("status") or {}).get("phase") == "Failed" and ready.get("reason") == reason
    return ready if ok and ready["status"] == "False" else None


def child_writes(emulator: Emulator, since: int) -> list[str]:
    """Write requests to anything but the Bookstore itself and events."""
    return [
        f"{r.method.value} {r.url.path}"
        for r in emulator.writes(since=since)
        if "/bookstores/" not in r.url.path and not r.url.path.endswith("/events")
    ]


async def test_paused_bookstore_gets_no_child_writes_and_says_so(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    await api(emulator, "PATCH", f"{BOOKSTORES}/downtown", {"spec": {"paused": True}}, merge=True)

    def paused() -> bool:
        progressing = condition(bookstore(emulator, "downtown"), "Progressing")
        return progressing.get("reason") == "Paused" and progressing["status"] == "False"

    await eventually(paused, what="Progressing=False reason Paused")
    message = condition(bookstore(emulator, "downtown"), "Progressing")["message"]
    assert message.startswith("spec.paused is true: ")

    start = len(emulator.requests_made)
    change = {"spec": {"catalog": {"resources": {"requests": {"cpu": "900m"}}}}}
    await api(emulator, "PATCH", f"{BOOKSTORES}/downtown", change, merge=True)
    await api(emulator, "DELETE", f"/api/v1/namespaces/{NAMESPACE}/services/downtown-orders")
    await eventually(
        lambda: condition(bookstore(emulator, "downtown"), "Ready").get("reason") == "Paused",
        what="Ready=False reason Paused (changes not applied)",
    )
    await eventually(
        lambda: bookstore(emulator, "downtown")["status"]["observedGeneration"] == 3,
        what="generation 3 observed",
    )
    assert child_writes(emulator, start) == []
    assert emulator.live("v1/services", NAMESPACE, "downtown-orders") is None

    await api(emulator, "PATCH", f"{BOOKSTORES}/downtown", {"spec": {"paused": False}}, merge=True)
    await eventually(
        lambda: emulator.live("v1/services", NAMESPACE, "downtown-orders"),
        what="the deleted Service restored after unpausing",
    )


async def test_missing_external_database_secret_fails_then_recovers_once_created(
    emulator: Emulator, operator: Operator
) -> None:
    spec = {"database": {"external": {"secretName": "shop-pg"}}}
    await create_bookstore(emulator, "harbor", spec)

    ready = await eventually(
        lambda: failed_with(emulator, "harbor", "ExternalSecretMissing"),
        what="phase Failed, reason ExternalSecretMissing",
        show=lambda: bookstore(emulator, "harbor").get("status"),
    )
    assert "shop-pg" in ready["message"]
    assert "create it with keys host, port, username, password" in ready["message"]
    await eventually(lambda: warned(emulator, "ExternalSecretMissing"), what="a Warning event")
    assert emulator.live("apps/v1/deployments", NAMESPACE, "harbor-catalog") is None

    await create_secret(emulator, "shop-pg", DATABASE)
    await mark_workloads_ready(emulator, "harbor", database=False)
    store = await wait_ready(emulator, "harbor")
    assert condition(store, "DatabaseReady")["reason"] == "ExternalDatabaseConfigured"
    assert emulator.live("apps/v1/statefulsets", NAMESPACE, "harbor-postgres") is None
    assert emulator.live("v1/secrets", NAMESPACE, "harbor-db") is None


async def test_external_database_secret_lacking_a_key_fails_then_recovers_once_fixed(
    emulator: Emulator, operator: Operator
) -> None:
    await create_secret(emulator, "shop-pg", {k: v for k, v in DATABASE.items() if k != "password"})
    spec = {"database": {"external": {"secretName": "shop-pg"}}}
    await create_bookstore(emulator, "harbor", spec)

    ready = await eventually(
        lambda: failed_with(emulator, "harbor", "ExternalSecretInvalid"),
        what="phase Failed, reason ExternalSecretInvalid",
        show=lambda: bookstore(emulator, "harbor").get("status"),
    )
    assert "lacks key(s) password" in ready["message"]
    await eventually(lambda: warned(emulator, "ExternalSecretInvalid"), what="a Warning event")

    await api(
        emulator, "PATCH", f"{SECRETS}/shop-pg", {"stringData": {"password": "x"}}, merge=True
    )
    await mark_workloads_ready(emulator, "harbor", database=False)
    await wait_ready(emulator, "harbor")


async def test_named_api_key_secret_without_the_key_fails_then_recovers(
    emulator: Emulator, operator: Operator
) -> None:
    await create_secret(emulator, "shop-key", {"token": "abc"})
    await create_bookstore(emulator, "downtown", {"auth": {"apiKeySecretName": "shop-key"}})

    ready = await eventually(
        lambda: failed_with(emulator, "downtown", "ApiKeySecretInvalid"),
        what="phase Failed, reason ApiKeySecretInvalid",
        show=lambda: bookstore(emulator, "downtown").get("status"),
    )
    assert "lacks key api-key" in ready["message"]
    await eventually(lambda: warned(emulator, "ApiKeySecretInvalid"), what="a Warning event")

    await api(
        emulator, "PATCH", f"{SECRETS}/shop-key", {"stringData": {"api-key": "k"}}, merge=True
    )
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    assert emulator.live("v1/secrets", NAMESPACE, "downtown-api-key") is None


async def test_bookstore_created_paused_creates_nothing_and_is_pending(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown", {"paused": True})

    def pending_and_paused() -> bool:
        store = bookstore(emulator, "downtown")
        progressing = condition(store, "Progressing")
        return (store.get("status") or {}).get("phase") == "Pending" and (
            progressing.get("reason") == "Paused"
        )

    await eventually(pending_and_paused, what="phase Pending, Progressing reason Paused")
    await eventually(lambda: reconciles(emulator, "downtown") >= 3, what="three reconciles")
    assert child_writes(emulator, 0) == []
    assert emulator.live_items("v1/secrets") == []

"""Losing `<name>-db` while the database volume exists never makes new passwords (issue 9 #3).

PostgreSQL sets its passwords only when it initializes an empty volume: new ones in a new
Secret would lock the services out of the data the volume still holds.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.operator.runtime.conftest import (
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
CLAIMS = f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims"
CLAIM = "data-downtown-postgres-0"
KEYS = ("postgres-password", "catalog-password", "orders-password")


def lost(emulator: Emulator) -> dict[str, Any] | None:
    store = bookstore(emulator, "downtown")
    ready = condition(store, "Ready")
    failed = (store.get("status") or {}).get("phase") == "Failed"
    return ready if failed and ready.get("reason") == "DatabaseCredentialsLost" else None


def child_writes(emulator: Emulator, since: int) -> list[str]:
    return [
        f"{r.method.value} {r.url.path}"
        for r in emulator.writes(since=since)
        if "/bookstores/" not in r.url.path and not r.url.path.endswith("/events")
    ]


def warned(emulator: Emulator) -> bool:
    return any(
        e.get("type") == "Warning" and e.get("reason") == "DatabaseCredentialsLost"
        for e in emulator.live_items("v1/events")
    )


async def test_deleted_database_secret_with_the_volume_in_place_fails_until_restored(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")  # also makes the PVC, as the controller does
    await wait_ready(emulator, "downtown")
    assert emulator.live("v1/persistentvolumeclaims", NAMESPACE, CLAIM) is not None
    saved = emulator.live("v1/secrets", NAMESPACE, "downtown-db")
    assert saved is not None

    start = len(emulator.requests_made)
    await api(emulator, "DELETE", f"{SECRETS}/downtown-db")  # a GitOps prune, a mistake
    ready = await eventually(
        lambda: lost(emulator),
        what="phase Failed, reason DatabaseCredentialsLost",
        show=lambda: bookstore(emulator, "downtown").get("status"),
    )
    assert f"Secret {NAMESPACE}/downtown-db" in ready["message"]
    assert f"PersistentVolumeClaim/{CLAIM}" in ready["message"]
    assert all(key in ready["message"] for key in KEYS)  # the keys to restore
    assert "delete PersistentVolumeClaim" in ready["message"]
    assert "loses its data" in ready["message"]
    await eventually(lambda: warned(emulator), what="a Warning event DatabaseCredentialsLost")

    # Several reconciles later: no new passwords, and no child touched.
    mark = len(emulator.requests_made)
    await eventually(lambda: reconciles(emulator, "downtown", since=mark) >= 3, what="resyncs")
    assert emulator.live("v1/secrets", NAMESPACE, "downtown-db") is None
    assert child_writes(emulator, start) == []

    # Restored from a backup: the same object, as `kubectl get -o yaml` saved it.
    meta = {k: v for k, v in saved["metadata"].items() if k not in ("uid", "resourceVersion")}
    await api(emulator, "POST", SECRETS, {**saved, "metadata": meta})
    await wait_ready(emulator, "downtown")
    restored = emulator.live("v1/secrets", NAMESPACE, "downtown-db")
    assert restored is not None
    assert restored["data"] == saved["data"]


async def test_bookstore_recreated_over_a_retained_volume_uses_the_restored_secret(
    emulator: Emulator, operator: Operator
) -> None:
    # deletionPolicy Retain kept the volume; the Bookstore (and its owned Secret) went.
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    }
    await api(emulator, "POST", CLAIMS, claim)
    await create_bookstore(emulator, "downtown")
    await eventually(lambda: lost(emulator), what="reason DatabaseCredentialsLost")
    assert emulator.live_items("v1/secrets") == []
    assert emulator.live("apps/v1/statefulsets", NAMESPACE, "downtown-postgres") is None

    # The user restores the old passwords, without an owner (the old Bookstore is gone).
    passwords = {key: f"old-{key}" for key in KEYS}
    await create_secret(emulator, "downtown-db", passwords)
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    secret = emulator.live("v1/secrets", NAMESPACE, "downtown-db")
    assert secret is not None
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == passwords
    assert "ownerReferences" not in secret["metadata"]  # the user's: it outlives the Bookstore


async def test_first_creation_without_a_volume_generates_the_passwords(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    secret = emulator.live("v1/secrets", NAMESPACE, "downtown-db")
    assert secret is not None
    assert sorted(secret["data"]) == sorted(KEYS)

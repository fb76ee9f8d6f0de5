"""spec.backup.finalBackup through the real kopf runtime: a deleted Bookstore takes one last
backup while its children still exist, waits for it a bounded time, then goes.

The emulator has no Job controller and no garbage collector: the tests play the Job
controller (backups.finish_pod); the children stay after the Bookstore goes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.operator.runtime.backups import (
    BACKUP_PLURAL,
    BACKUPS,
    finish_pod,
    phase,
    summary_for,
    wait_job,
    wait_phase,
)
from tests.operator.runtime.conftest import (
    BOOKSTORES,
    NAMESPACE,
    RESYNC_SECONDS,
    Operator,
    api,
    create_bookstore,
    eventually,
    mark_workloads_ready,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator

STORE = "downtown"
# Long enough for a test to finish the backup; the bound's own test starts with a short one.
TIMEOUT_SECONDS = 30.0
SHORT_TIMEOUT_SECONDS = 2.0


@pytest.fixture(autouse=True)
def final_backup_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator (started after this fixture) waits for a final backup at most 30 s."""
    monkeypatch.setenv("BOOKSTORE_FINAL_BACKUP_TIMEOUT_SECONDS", str(TIMEOUT_SECONDS))


def live_store(emulator: Emulator) -> dict[str, Any] | None:
    return emulator.live("bookstore.dev/v1alpha1/bookstores", NAMESPACE, STORE)


async def ready_store(emulator: Emulator, *, final_backup: bool = True) -> dict[str, Any]:
    await create_bookstore(emulator, STORE, {"backup": {"finalBackup": final_backup}})
    await mark_workloads_ready(emulator, STORE)
    return await wait_ready(emulator, STORE)


def final_name(store: dict[str, Any]) -> str:
    return f"{STORE}-final-{store['metadata']['uid'][:8]}"


def events(emulator: Emulator, reason: str) -> list[dict[str, Any]]:
    return [
        event
        for event in emulator.live_items("v1/events")
        if event["reason"] == reason
        and event.get("involvedObject", {}).get("kind") == "Bookstore"
        and event.get("involvedObject", {}).get("name") == STORE
    ]


def backups(emulator: Emulator) -> list[str]:
    return sorted(item["metadata"]["name"] for item in emulator.live_items(BACKUP_PLURAL))


def operator_writes(emulator: Emulator, path: str, since: int) -> list[str]:
    return [
        f"{request.method.value} {request.url.path}"
        for request in emulator.requests_made[since:]
        if request.method.value in ("POST", "PATCH", "PUT", "DELETE")
        and request.url.path.startswith(path)
        and request.headers.get("User-Agent", "").startswith("bookstore-operator/")
    ]


async def posted(emulator: Emulator, reason: str) -> dict[str, Any]:
    """The event of this reason about the Bookstore. kopf posts events from a queue of its own,
    so one may land just after the Bookstore is gone; and its handlers run at least once, so on
    a loaded machine the last attempt may post its event twice (the same message)."""
    await eventually(lambda: events(emulator, reason), what=f"a {reason} event")
    found = events(emulator, reason)
    assert len({(event["type"], event["message"]) for event in found}) == 1, found
    return found[0]


async def gone(emulator: Emulator, *, within: float = 30.0) -> None:
    await eventually(
        lambda: live_store(emulator) is None,
        within=within,
        what=f"Bookstore {STORE} gone",
        show=lambda: (live_store(emulator) or {}).get("metadata"),
    )


async def test_a_final_backup_is_taken_and_waited_for_before_the_bookstore_goes(
    emulator: Emulator, operator: Operator
) -> None:
    store = await ready_store(emulator)
    name = final_name(store)
    since = len(emulator.requests_made)
    await api(emulator, "DELETE", f"{BOOKSTORES}/{STORE}")

    running = await wait_phase(emulator, name, "Running")
    labels = running["metadata"]["labels"]
    assert labels["bookstore.dev/backup-origin"] == "final"
    assert labels["bookstore.dev/bookstore"] == STORE
    assert labels["app.kubernetes.io/managed-by"] == "bookstore-operator"
    assert running["spec"]["bookstore"] == STORE
    assert "ownerReferences" not in running["metadata"]  # backups outlive their Bookstore
    dump = await wait_job(emulator, f"{name}-dump")
    await eventually(lambda: events(emulator, "FinalBackupStarted"), what="FinalBackupStarted")

    # While it runs the finalizer holds the Bookstore (so the garbage collector keeps its
    # database), and a terminating Bookstore gets no scheduled, requested or retention work.
    terminating = live_store(emulator)
    assert terminating is not None
    assert terminating["metadata"]["deletionTimestamp"]
    annotation = {"metadata": {"annotations": {"bookstore.dev/backup-now": "please"}}}
    await api(emulator, "PATCH", f"{BOOKSTORES}/{STORE}", annotation, merge=True)
    await asyncio.sleep(3 * RESYNC_SECONDS)
    assert live_store(emulator) is not None
    assert backups(emulator) == [name]
    assert operator_writes(emulator, f"{BOOKSTORES}/{STORE}/status", since) == []

    await finish_pod(emulator, dump, message=summary_for(running))
    await gone(emulator)
    assert phase(emulator, name) == "Completed"
    completed = await posted(emulator, "FinalBackupCompleted")
    assert completed["type"] == "Normal"
    assert name in completed["message"]
    assert [w for w in operator_writes(emulator, BACKUPS, since) if w.startswith("POST")] == [
        f"POST {BACKUPS}"
    ]


async def test_a_final_backup_that_never_finishes_releases_the_bookstore_after_the_bound(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOKSTORE_FINAL_BACKUP_TIMEOUT_SECONDS", str(SHORT_TIMEOUT_SECONDS))
    runtime = Operator(emulator)
    await runtime.start()
    try:
        store = await ready_store(emulator)
        name = final_name(store)
        started = time.monotonic()
        await api(emulator, "DELETE", f"{BOOKSTORES}/{STORE}")
        await wait_job(emulator, f"{name}-dump")  # runs, and never finishes
        await gone(emulator)
        assert time.monotonic() - started < SHORT_TIMEOUT_SECONDS + 45  # the bound, not TIMEOUT
        warning = await posted(emulator, "FinalBackupTimedOut")
        assert warning["type"] == "Warning"
        assert name in warning["message"]
        assert f"{SHORT_TIMEOUT_SECONDS:g}s" in warning["message"]
        assert phase(emulator, name) == "Running"  # the backup itself goes on
    finally:
        await runtime.stop()


async def test_without_final_backup_a_deleted_bookstore_goes_at_once(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_store(emulator, final_backup=False)
    await api(emulator, "DELETE", f"{BOOKSTORES}/{STORE}")
    # Nothing waits: the store goes as soon as kopf has stopped its timers (no bound spent).
    await gone(emulator, within=60)
    assert backups(emulator) == []
    assert [e for e in emulator.live_items("v1/events") if "FinalBackup" in e["reason"]] == []


async def test_a_bookstore_whose_database_is_not_ready_goes_without_a_final_backup(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, STORE, {"backup": {"finalBackup": True}})
    await eventually(
        lambda: emulator.live("apps/v1/statefulsets", NAMESPACE, f"{STORE}-postgres"),
        what="the StatefulSet",
    )
    await api(emulator, "DELETE", f"{BOOKSTORES}/{STORE}")
    await gone(emulator, within=60)  # skipped, not waited for: the Warning below says so
    assert backups(emulator) == []
    warning = await posted(emulator, "FinalBackupSkipped")
    assert warning["type"] == "Warning"
    assert "not ready" in warning["message"]

"""BookstoreBackups through the real kopf runtime: one Job per backup, its outcome as status.

The emulator has no Job controller and no garbage collector: the tests play the Job
controller (tests/operator/runtime/backups.finish_pod) as the real one would.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.operator.runtime.backups import (
    BACKUPS,
    backup,
    create_backup,
    events_of,
    finish_pod,
    job,
    phase,
    summary_for,
    wait_job,
    wait_phase,
)
from tests.operator.runtime.conftest import (
    BOOKSTORES,
    CLAIMS,
    JOBS,
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

# Small, so a cleanup that never finishes is given up on within the test.
CLEANUP_TIMEOUT_SECONDS = 2.0


@pytest.fixture(autouse=True)
def short_cleanup_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator (started after this fixture) gives up on a cleanup Job after 2 s."""
    monkeypatch.setenv("BOOKSTORE_BACKUP_CLEANUP_TIMEOUT_SECONDS", str(CLEANUP_TIMEOUT_SECONDS))


async def ready_store(emulator: Emulator, name: str = "downtown") -> None:
    await create_bookstore(emulator, name)
    await mark_workloads_ready(emulator, name)
    await wait_ready(emulator, name)


def operator_requests(emulator: Emulator, method: str, path: str, since: int = 0) -> list[str]:
    """The operator's requests of a method to a path (or below it) since request `since`."""
    return [
        request.url.path
        for request in emulator.requests_made[since:]
        if request.method.value == method
        and request.url.path.startswith(path)
        and request.headers.get("User-Agent", "").startswith("bookstore-operator/")
    ]


def job_creations(emulator: Emulator, name: str) -> int:
    """How many times the operator created Job `name`."""
    return sum(
        1
        for request in emulator.requests_made
        if request.method.value == "POST"
        and request.url.path == JOBS
        and request.headers.get("User-Agent", "").startswith("bookstore-operator/")
        and (request.data or {}).get("metadata", {}).get("name") == name
    )


def claim(emulator: Emulator, name: str) -> dict[str, object] | None:
    return emulator.live("v1/persistentvolumeclaims", NAMESPACE, name)


async def test_backup_runs_one_job_and_completes_with_files_sizes_and_revisions(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_store(emulator)
    created = await create_backup(emulator, "nightly-1", "downtown")

    running = await wait_phase(emulator, "nightly-1", "Running")
    assert running["status"]["startedAt"]
    assert running["metadata"]["labels"]["bookstore.dev/bookstore"] == "downtown"
    dump = await wait_job(emulator, "nightly-1-dump")
    [owner] = dump["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "BookstoreBackup",
        "nightly-1",
        created["metadata"]["uid"],
    )
    assert owner["controller"] is True
    volumes = dump["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "backups",
        "persistentVolumeClaim": {"claimName": "downtown-backups"},
    } in volumes
    backups_claim = claim(emulator, "downtown-backups")
    assert backups_claim is not None
    assert "ownerReferences" not in backups_claim["metadata"]  # type: ignore[operator]
    await eventually(lambda: events_of(emulator, "nightly-1", "BackupStarted"), what="event")

    await finish_pod(emulator, dump, message=summary_for(created))
    done = await wait_phase(emulator, "nightly-1", "Completed")
    status = done["status"]
    assert status["sizeBytes"] == 20192
    assert status["size"] == "19.7Ki"
    assert status["startedAt"] == "2025-01-01T03:00:01Z"
    assert status["completedAt"] == "2025-01-01T03:00:09Z"
    assert status["revisions"] == {"orders": "0005", "catalog": "0004"}
    assert [(f["database"], f["file"], f["sizeBytes"]) for f in status["files"]] == [
        ("orders", "orders.dump", 8886),
        ("catalog", "catalog.dump", 11306),
    ]
    assert status["files"][0]["revisions"] == {"orders": "0005"}
    assert status["observedGeneration"] == 1
    assert "message" not in status
    await eventually(lambda: events_of(emulator, "nightly-1", "BackupCompleted"), what="event")
    assert job_creations(emulator, "nightly-1-dump") == 1
    assert operator_requests(emulator, "POST", CLAIMS) == [CLAIMS]


async def test_a_finished_backup_writes_nothing_more_and_never_runs_again(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_store(emulator)
    created = await create_backup(emulator, "nightly-1", "downtown")
    await finish_pod(
        emulator, await wait_job(emulator, "nightly-1-dump"), message=summary_for(created)
    )
    await wait_phase(emulator, "nightly-1", "Completed")
    await asyncio.sleep(3 * RESYNC_SECONDS)  # kopf's own bookkeeping settles

    since = len(emulator.requests_made)
    await asyncio.sleep(3 * RESYNC_SECONDS)  # several resyncs of the Bookstore
    assert operator_requests(emulator, "PATCH", f"{BACKUPS}/", since) == []

    # The Job's TTL removes it; a restarted operator resumes the backup: nothing runs again.
    await api(emulator, "DELETE", f"{JOBS}/nightly-1-dump")
    await operator.stop()
    await operator.start()
    await asyncio.sleep(3 * RESYNC_SECONDS)
    assert job(emulator, "nightly-1-dump") is None
    assert job_creations(emulator, "nightly-1-dump") == 1
    assert phase(emulator, "nightly-1") == "Completed"


async def test_a_failed_job_fails_the_backup_with_exit_code_message_and_a_warning(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_store(emulator)
    await create_backup(emulator, "nightly-1", "downtown")
    dump = await wait_job(emulator, "nightly-1-dump")
    log = (
        "pg_dump: error: connection to server failed\nbackup: pg_dump of orders failed (see above)"
    )
    await finish_pod(emulator, dump, exit_code=1, message=log, log=log)

    failed = await wait_phase(emulator, "nightly-1", "Failed")
    message = failed["status"]["message"]
    assert "exit code 1" in message
    assert "pg_dump of orders failed" in message
    assert failed["status"]["completedAt"]
    [warning] = await eventually(
        lambda: events_of(emulator, "nightly-1", "BackupFailed"), what="a BackupFailed event"
    )
    assert warning["type"] == "Warning"
    assert "exit code 1" in warning["message"]


async def test_a_backup_of_a_bookstore_that_does_not_exist_fails_naming_it(
    emulator: Emulator, operator: Operator
) -> None:
    await create_backup(emulator, "orphan", "nowhere")
    failed = await wait_phase(emulator, "orphan", "Failed")
    assert "Bookstore shop/nowhere" in failed["status"]["message"]
    assert "spec.bookstore" in failed["status"]["message"]
    assert "startedAt" not in failed["status"]
    assert operator_requests(emulator, "POST", JOBS) == []
    assert operator_requests(emulator, "POST", CLAIMS) == []
    await eventually(lambda: events_of(emulator, "orphan", "BackupFailed"), what="event")

    # It never ran: deleting it runs no cleanup.
    await api(emulator, "DELETE", f"{BACKUPS}/orphan")
    await eventually(lambda: backup(emulator, "orphan") is None, what="the backup gone")
    assert operator_requests(emulator, "POST", JOBS) == []


async def test_a_paused_bookstore_keeps_its_backup_pending_until_resumed(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_store(emulator)
    store = f"{BOOKSTORES}/downtown"
    await api(emulator, "PATCH", store, {"spec": {"paused": True}}, merge=True)
    await create_backup(emulator, "nightly-1", "downtown")
    pending = await wait_phase(emulator, "nightly-1", "Pending")
    assert "paused" in pending["status"]["message"]
    assert job(emulator, "nightly-1-dump") is None

    await api(emulator, "PATCH", store, {"spec": {"paused": False}}, merge=True)
    running = await wait_phase(emulator, "nightly-1", "Running")
    assert "message" not in running["status"]
    assert job(emulator, "nightly-1-dump") is not None


async def test_an_existing_backups_volume_is_left_alone_and_never_deleted(
    emulator: Emulator, operator: Operator
) -> None:
    mine = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "downtown-backups", "labels": {"owner": "me"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "3Gi"}}},
    }
    await api(emulator, "POST", CLAIMS, mine)
    before = claim(emulator, "downtown-backups")
    await ready_store(emulator)
    for name in ("nightly-1", "nightly-2"):
        created = await create_backup(emulator, name, "downtown")
        dump = await wait_job(emulator, f"{name}-dump")
        await finish_pod(emulator, dump, message=summary_for(created))
        await wait_phase(emulator, name, "Completed")
    await api(emulator, "DELETE", f"{BOOKSTORES}/downtown")
    await eventually(
        lambda: not emulator.live_items("bookstore.dev/v1alpha1/bookstores"), what="gone"
    )

    assert claim(emulator, "downtown-backups") == before
    assert operator_requests(emulator, "POST", CLAIMS) == []
    assert operator_requests(emulator, "DELETE", CLAIMS) == []
    assert operator_requests(emulator, "PATCH", f"{CLAIMS}/downtown-backups") == []


async def test_a_restarted_operator_finds_the_running_job_and_makes_no_second_one(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_store(emulator)
    created = await create_backup(emulator, "nightly-1", "downtown")
    await wait_phase(emulator, "nightly-1", "Running")
    dump = await wait_job(emulator, "nightly-1-dump")
    await operator.stop()
    await operator.start()
    await asyncio.sleep(2 * RESYNC_SECONDS)
    assert phase(emulator, "nightly-1") == "Running"

    await finish_pod(emulator, dump, message=summary_for(created))
    await wait_phase(emulator, "nightly-1", "Completed")
    assert job_creations(emulator, "nightly-1-dump") == 1


async def test_deleting_a_backup_removes_its_files_with_a_job_then_lets_it_go(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_store(emulator)
    created = await create_backup(emulator, "nightly-1", "downtown")
    await finish_pod(
        emulator, await wait_job(emulator, "nightly-1-dump"), message=summary_for(created)
    )
    await wait_phase(emulator, "nightly-1", "Completed")

    await api(emulator, "DELETE", f"{BACKUPS}/nightly-1")
    cleanup = await wait_job(emulator, "nightly-1-cleanup")
    container = cleanup["spec"]["template"]["spec"]["containers"][0]
    assert container["env"][1:] == [
        {"name": "BACKUP_NAME", "value": "nightly-1"},
        {"name": "BACKUP_UID", "value": created["metadata"]["uid"]},
    ]
    assert cleanup["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert backup(emulator, "nightly-1") is not None  # held by the finalizer meanwhile

    await finish_pod(emulator, cleanup, message="")
    await eventually(lambda: backup(emulator, "nightly-1") is None, what="the backup gone")
    [removed] = await eventually(
        lambda: events_of(emulator, "nightly-1", "BackupFilesRemoved"), what="the event"
    )
    assert removed["type"] == "Normal"
    assert claim(emulator, "downtown-backups") is not None


async def test_a_cleanup_that_cannot_finish_is_given_up_on_after_the_bound(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_store(emulator)
    created = await create_backup(emulator, "nightly-1", "downtown")
    await finish_pod(
        emulator, await wait_job(emulator, "nightly-1-dump"), message=summary_for(created)
    )
    await wait_phase(emulator, "nightly-1", "Completed")

    await api(emulator, "DELETE", f"{BACKUPS}/nightly-1")
    await wait_job(emulator, "nightly-1-cleanup")  # never finishes: e.g. the volume is stuck
    await eventually(
        lambda: backup(emulator, "nightly-1") is None,
        within=CLEANUP_TIMEOUT_SECONDS + 15,
        what="the backup gone once the bound passed",
    )
    [warning] = await eventually(
        lambda: events_of(emulator, "nightly-1", "BackupCleanupTimedOut"), what="the warning"
    )
    assert warning["type"] == "Warning"
    assert "/backups/nightly-1" in warning["message"]


async def test_deleting_a_running_backup_stops_its_job_before_the_cleanup(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_store(emulator)
    await create_backup(emulator, "nightly-1", "downtown")
    await wait_phase(emulator, "nightly-1", "Running")
    await wait_job(emulator, "nightly-1-dump")

    await api(emulator, "DELETE", f"{BACKUPS}/nightly-1")
    cleanup = await wait_job(emulator, "nightly-1-cleanup")
    assert job(emulator, "nightly-1-dump") is None
    deletes = [
        request
        for request in emulator.requests_made
        if request.method.value == "DELETE" and request.url.path == f"{JOBS}/nightly-1-dump"
    ]
    assert [request.params.get("propagationPolicy") for request in deletes] == ["Background"]
    await finish_pod(emulator, cleanup)
    await eventually(lambda: backup(emulator, "nightly-1") is None, what="the backup gone")

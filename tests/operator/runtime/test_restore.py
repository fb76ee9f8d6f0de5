"""Restore into a new Bookstore (spec.database.restoreFrom) through the real kopf runtime.

The restore Job runs once the database is ready and before any migration Job or Deployment;
the emulator has no StatefulSet, Job or Deployment controller, so the tests play them (a
Job's pod and conditions: backups.finish_pod, conftest.finish_job) as the real ones would.
Most tests restore a backup whose Bookstore is gone (its backups volume and the Completed
BookstoreBackup stay): they are in the API server before the operator starts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.operator.backup_samples import SUMMARY
from tests.operator.runtime.backups import (
    BACKUPS,
    create_backup,
    finish_pod,
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
    SCHEMA_HEAD,
    Operator,
    api,
    bookstore,
    complete_migrations,
    condition,
    create_bookstore,
    eventually,
    finish_job,
    mark_ready,
    mark_workloads_ready,
    migration_jobs,
    settle,
    wait_ready,
    workloads,
)
from tests.operator.runtime.emulator import Emulator

STORE = "uptown"
SOURCE = "downtown"
BACKUP = "nightly"
RESTORE_JOB = f"{STORE}-restore-{BACKUP}"
DEPLOYMENTS = "/deployments/"
RESTORED_AT = "2025-01-02T03:04:05Z"
REFUSAL = (
    "restore: refused: database orders is not empty (6 table(s), view(s) or sequence(s), e.g."
    " public.alembic_version_orders, public.order_items); a restore only fills empty databases;"
    " nothing was changed"
)


async def seed_backup(
    emulator: Emulator, *, phase: str = "Completed", message: str = "", claim: bool = True
) -> None:
    """A BookstoreBackup of a Bookstore that is gone, as its controller left it, and the
    source's backups volume (both outlive their Bookstore)."""
    body = {
        "apiVersion": "bookstore.dev/v1alpha1",
        "kind": "BookstoreBackup",
        "metadata": {"name": BACKUP, "labels": {"bookstore.dev/bookstore": SOURCE}},
        "spec": {"bookstore": SOURCE, "method": "logical"},
    }
    await api(emulator, "POST", BACKUPS, body)
    status: dict[str, Any] = {"phase": phase, "completedAt": "2025-01-01T03:00:09Z"}
    if phase == "Completed":
        files = [{**item, "revisions": item["revisions"]} for item in SUMMARY["files"]]
        status |= {"sizeBytes": 20192, "size": "19.7Ki", "files": files}
    if message:
        status["message"] = message
    await api(emulator, "PATCH", f"{BACKUPS}/{BACKUP}/status", {"status": status}, merge=True)
    if claim:
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": f"{SOURCE}-backups"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        await api(emulator, "POST", CLAIMS, volume)


@pytest.fixture
async def seeded(emulator: Emulator) -> AsyncIterator[Operator]:
    """A Completed backup of a deleted Bookstore, then the operator started."""
    await seed_backup(emulator)
    runtime = Operator(emulator)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def create_restoring_store(emulator: Emulator, backup: str = BACKUP) -> None:
    await create_bookstore(emulator, STORE, {"database": {"restoreFrom": {"backup": backup}}})


def status_of(emulator: Emulator) -> dict[str, Any]:
    return dict(bookstore(emulator, STORE).get("status") or {})


def restore_job(emulator: Emulator) -> dict[str, Any] | None:
    return emulator.live("batch/v1/jobs", NAMESPACE, RESTORE_JOB)


def deployments(emulator: Emulator) -> list[dict[str, Any]]:
    return workloads(emulator, "deployments", STORE)


def events(emulator: Emulator, reason: str, kind: str = "") -> list[str]:
    return [
        event["message"]
        for event in emulator.live_items("v1/events")
        if event["reason"] == reason
        and event.get("involvedObject", {}).get("name") == STORE
        and kind in ("", event["type"])
    ]


def operator_posts(emulator: Emulator, path: str, name: str = "") -> list[int]:
    """Indexes of the operator's creations under `path` (of object `name`, when given)."""
    return [
        index
        for index, request in enumerate(emulator.requests_made)
        if request.method.value == "POST"
        and request.url.path == path
        and request.headers.get("User-Agent", "").startswith("bookstore-operator/")
        and name in ("", (request.data or {}).get("metadata", {}).get("name"))
    ]


def deployment_writes(emulator: Emulator) -> list[int]:
    return [
        index
        for index, request in enumerate(emulator.requests_made)
        if request.method.value in ("POST", "PATCH")
        and DEPLOYMENTS in request.url.path
        and request.headers.get("User-Agent", "").startswith("bookstore-operator/")
    ]


async def database_ready(emulator: Emulator) -> None:
    """Play the StatefulSet controller: the new Bookstore's database is ready."""
    statefulsets = await eventually(
        lambda: workloads(emulator, "statefulsets", STORE), what="the StatefulSet"
    )
    for statefulset in statefulsets:
        await mark_ready(emulator, "statefulsets", statefulset)


async def restored(emulator: Emulator) -> dict[str, Any]:
    """Play the controllers until the restore Job succeeded; returns the Job."""
    await database_ready(emulator)
    job = await wait_job(emulator, RESTORE_JOB)
    summary = {"backup": BACKUP, "completedAt": RESTORED_AT, "restored": []}
    return await finish_pod(emulator, job, message=json.dumps(summary))


async def ready_restored_store(emulator: Emulator) -> dict[str, Any]:
    await create_restoring_store(emulator)
    await restored(emulator)
    await mark_workloads_ready(emulator, STORE)
    return await wait_ready(emulator, STORE)


async def test_the_restore_runs_after_the_database_and_before_migrations_and_deployments(
    emulator: Emulator, seeded: Operator
) -> None:
    await create_restoring_store(emulator)
    statefulsets = await eventually(
        lambda: workloads(emulator, "statefulsets", STORE), what="the StatefulSet"
    )
    await settle(emulator, STORE)
    assert restore_job(emulator) is None  # the database is not ready yet
    progressing = condition(bookstore(emulator, STORE), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "Restoring")
    assert "Waiting for the database" in progressing["message"]
    assert BACKUP in progressing["message"]

    await mark_ready(emulator, "statefulsets", statefulsets[0])
    job = await wait_job(emulator, RESTORE_JOB)
    [owner] = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("Bookstore", STORE)
    pod = job["spec"]["template"]["spec"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": f"{SOURCE}-backups"}} in (
        pod["volumes"]
    )
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "backups"]
    assert mount["readOnly"] is True
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == (
        "backup"
    )

    # While it runs, nothing migrates and no service starts.
    await settle(emulator, STORE)
    assert migration_jobs(emulator, STORE) == []
    assert deployments(emulator) == []
    store = bookstore(emulator, STORE)
    assert store["status"]["phase"] == "Progressing"
    assert condition(store, "Ready")["reason"] == "Restoring"
    assert f"Job/{RESTORE_JOB}" in condition(store, "Progressing")["message"]

    summary = {"backup": BACKUP, "completedAt": RESTORED_AT, "restored": []}
    await finish_pod(emulator, job, message=json.dumps(summary))
    await eventually(lambda: len(migration_jobs(emulator, STORE)) == 2, what="migration Jobs")
    assert deployments(emulator) == []  # the migrations come first
    await mark_workloads_ready(emulator, STORE)
    ready = await wait_ready(emulator, STORE)

    [restore_post] = operator_posts(emulator, JOBS, RESTORE_JOB)
    migration_posts = [i for i in operator_posts(emulator, JOBS) if i != restore_post]
    assert len(migration_posts) == 2
    assert restore_post < min(migration_posts) < min(deployment_writes(emulator))
    assert ready["status"]["database"]["restoredFrom"] == {
        "backup": BACKUP,
        "bookstore": SOURCE,
        "completedAt": RESTORED_AT,
    }
    [message] = await eventually(lambda: events(emulator, "Restored"), what="a Restored event")
    assert f"BookstoreBackup {BACKUP}" in message
    assert SOURCE in message


async def test_a_restored_store_never_restores_again_after_its_job_went_or_a_restart(
    emulator: Emulator, seeded: Operator
) -> None:
    store = await ready_restored_store(emulator)
    recorded = store["status"]["database"]["restoredFrom"]

    await api(emulator, "DELETE", f"{JOBS}/{RESTORE_JOB}")  # its TTL
    await settle(emulator, STORE)
    await seeded.stop()
    await seeded.start()
    await settle(emulator, STORE)
    assert restore_job(emulator) is None
    assert len(operator_posts(emulator, JOBS, RESTORE_JOB)) == 1
    store = await wait_ready(emulator, STORE)
    assert store["status"]["database"]["restoredFrom"] == recorded
    assert len(events(emulator, "Restored")) == 1


async def test_a_refused_restore_fails_the_store_and_nothing_migrates_or_starts(
    emulator: Emulator, seeded: Operator
) -> None:
    await create_restoring_store(emulator)
    await database_ready(emulator)
    job = await wait_job(emulator, RESTORE_JOB)
    await finish_pod(emulator, job, exit_code=3, message=REFUSAL, log=REFUSAL)

    def failed() -> dict[str, Any] | None:
        status = status_of(emulator)
        return status if status.get("phase") == "Failed" else None

    await eventually(failed, what="phase Failed", show=lambda: status_of(emulator))
    ready = condition(bookstore(emulator, STORE), "Ready")
    assert ready["reason"] == "RestoreRefused"
    assert REFUSAL in ready["message"]
    assert f"BookstoreBackup {BACKUP}" in ready["message"]
    [warning] = await eventually(
        lambda: events(emulator, "RestoreRefused", "Warning"), what="a Warning"
    )
    assert "not empty" in warning
    await settle(emulator, STORE)
    assert migration_jobs(emulator, STORE) == []
    assert deployments(emulator) == []
    assert "restoredFrom" not in (status_of(emulator).get("database") or {})


async def test_a_failed_restore_is_degraded_with_a_warning_and_runs_again_once_its_job_is_deleted(
    emulator: Emulator, seeded: Operator
) -> None:
    await create_restoring_store(emulator)
    await database_ready(emulator)
    job = await wait_job(emulator, RESTORE_JOB)
    log = "pg_restore: error: could not connect\nrestore: pg_restore into orders failed"
    await finish_pod(emulator, job, exit_code=1, message=log, log=log)

    def degraded() -> dict[str, Any] | None:
        status = status_of(emulator)
        return status if status.get("phase") == "Degraded" else None

    await eventually(degraded, what="phase Degraded", show=lambda: status_of(emulator))
    ready = condition(bookstore(emulator, STORE), "Ready")
    assert ready["reason"] == "RestoreFailed"
    assert "exit code 1" in ready["message"]
    assert "pg_restore into orders failed" in ready["message"]
    assert f"delete Job/{RESTORE_JOB}" in ready["message"]
    await eventually(lambda: events(emulator, "RestoreFailed", "Warning"), what="a Warning")
    assert migration_jobs(emulator, STORE) == []
    assert deployments(emulator) == []

    # Retry: the user deletes the failed Job; the operator runs the restore again.
    await api(emulator, "DELETE", f"{JOBS}/{RESTORE_JOB}")
    await eventually(lambda: len(operator_posts(emulator, JOBS, RESTORE_JOB)) == 2, what="retry")
    again = await wait_job(emulator, RESTORE_JOB)
    summary = {"backup": BACKUP, "completedAt": RESTORED_AT, "restored": []}
    await finish_pod(emulator, again, message=json.dumps(summary))
    await mark_workloads_ready(emulator, STORE)
    store = await wait_ready(emulator, STORE)
    assert store["status"]["database"]["restoredFrom"]["backup"] == BACKUP


async def test_a_missing_backup_fails_the_store_naming_it_and_nothing_starts(
    emulator: Emulator, seeded: Operator
) -> None:
    await create_restoring_store(emulator, "no-such-backup")
    await database_ready(emulator)

    def failed() -> dict[str, Any] | None:
        status = status_of(emulator)
        return status if status.get("phase") == "Failed" else None

    await eventually(failed, what="phase Failed", show=lambda: status_of(emulator))
    ready = condition(bookstore(emulator, STORE), "Ready")
    assert ready["reason"] == "RestoreSourceMissing"
    assert "BookstoreBackup no-such-backup" in ready["message"]
    await eventually(lambda: events(emulator, "RestoreSourceMissing", "Warning"), what="Warning")
    await settle(emulator, STORE)
    assert [job["metadata"]["name"] for job in emulator.live_items("batch/v1/jobs")] == []
    assert deployments(emulator) == []


async def test_a_failed_backup_fails_the_store_with_the_backups_message(
    emulator: Emulator,
) -> None:
    await seed_backup(emulator, phase="Failed", message="The backup Job failed (exit code 1)")
    runtime = Operator(emulator)
    await runtime.start()
    try:
        await create_restoring_store(emulator)
        await database_ready(emulator)

        def failed() -> dict[str, Any] | None:
            status = status_of(emulator)
            return status if status.get("phase") == "Failed" else None

        await eventually(failed, what="phase Failed", show=lambda: status_of(emulator))
        ready = condition(bookstore(emulator, STORE), "Ready")
        assert ready["reason"] == "RestoreSourceFailed"
        assert f"BookstoreBackup {BACKUP}" in ready["message"]
        assert "exit code 1" in ready["message"]
        await settle(emulator, STORE)
        assert restore_job(emulator) is None
        assert deployments(emulator) == []
    finally:
        await runtime.stop()


async def test_a_restore_waits_for_a_running_backup_of_a_live_store_then_restores_it(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, SOURCE)
    await mark_workloads_ready(emulator, SOURCE)
    await wait_ready(emulator, SOURCE)
    created = await create_backup(emulator, BACKUP, SOURCE)
    dump = await wait_job(emulator, f"{BACKUP}-dump")

    await create_restoring_store(emulator)
    await database_ready(emulator)
    await settle(emulator, STORE)
    progressing = condition(bookstore(emulator, STORE), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "WaitingForBackup")
    assert f"BookstoreBackup {BACKUP}" in progressing["message"]
    assert restore_job(emulator) is None

    await finish_pod(emulator, dump, message=summary_for(created))
    await wait_phase(emulator, BACKUP, "Completed")
    job = await wait_job(emulator, RESTORE_JOB)
    await finish_pod(emulator, job, message=json.dumps({"backup": BACKUP, "restored": []}))
    await mark_workloads_ready(emulator, STORE)
    store = await wait_ready(emulator, STORE)
    assert store["status"]["database"]["restoredFrom"]["backup"] == BACKUP
    assert store["status"]["database"]["restoredFrom"]["bookstore"] == SOURCE


async def test_a_backup_newer_than_the_target_version_is_refused_by_its_migration(
    emulator: Emulator, seeded: Operator
) -> None:
    """The migration Job after the restore exits 3 on a schema its code does not know."""
    await create_restoring_store(emulator)
    await restored(emulator)
    jobs = await eventually(
        lambda: len(found := migration_jobs(emulator, STORE)) == 2 and found, what="migrations"
    )
    report = {"outcome": "downgrade-refused", "revision": "0009", "head": SCHEMA_HEAD}
    for job in jobs:
        service = job["metadata"]["labels"]["bookstore.dev/service"]
        await finish_job(
            emulator, job, exit_code=3, message=json.dumps({**report, "service": service})
        )

    def refused() -> dict[str, Any] | None:
        status = status_of(emulator)
        return status if status.get("phase") == "Failed" else None

    await eventually(refused, what="phase Failed", show=lambda: status_of(emulator))
    assert condition(bookstore(emulator, STORE), "Ready")["reason"] == "DowngradeRefused"
    assert status_of(emulator)["database"]["restoredFrom"]["backup"] == BACKUP
    await asyncio.sleep(2 * RESYNC_SECONDS)
    assert deployments(emulator) == []
    assert await complete_migrations(emulator, STORE) == 0


async def test_a_spec_change_of_a_restored_store_keeps_its_record_and_restores_nothing(
    emulator: Emulator, seeded: Operator
) -> None:
    """Status patches null the keys compute_status leaves out: restoredFrom is carried over."""
    await ready_restored_store(emulator)
    before = status_of(emulator)["database"]["restoredFrom"]
    patch = {"spec": {"backup": {"retention": 3}}}  # changes no child
    await api(emulator, "PATCH", f"{BOOKSTORES}/{STORE}", patch, merge=True)
    store = await wait_ready(emulator, STORE)
    assert store["status"]["database"]["restoredFrom"] == before
    assert len(operator_posts(emulator, JOBS, RESTORE_JOB)) == 1

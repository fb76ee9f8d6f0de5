"""One BookstoreBackup: take it with a Job, report how it went; on deletion, remove its files.

The Bookstore's reconcile does not drive backups: it only reads their status. Long work is a
state read from the API: a reconcile that finds the backup's Job running returns, and the
Job's next event (or the resync timer) wakes the next one. The Job's name derives from the
backup's name, so an operator restarted mid-backup finds it instead of starting another.
Completed and Failed are final: the status is the record, and a backup whose Job is gone
(its TTL) never runs again.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes.client.exceptions import ApiException

from bookstore_operator import jobs, kube
from bookstore_operator.backup_status import (
    BACKUP_API_VERSION,
    BACKUP_KIND,
    BackupRun,
    completed_status,
    completion_note,
    failed_status,
    failure_message,
    parse_summary,
    pending_status,
    running_status,
)
from bookstore_operator.builders import backups as backup_builders
from bookstore_operator.errors import NOT_READY_DELAY, ChildWriteError, classify
from bookstore_operator.inputs import check_inputs
from bookstore_operator.models import Bookstore
from bookstore_operator.settings import OperatorSettings
from bookstore_operator.status import Problem

# How often a deleted backup looks at its cleanup Job again (at most; sooner with a short bound).
CLEANUP_POLL_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Step:
    """What one reconcile of a backup concluded: the status to write and when to look again."""

    status: dict[str, Any] | None = None  # None: leave the status as it is
    retry_after: float | None = None  # waiting for something outside the backup (Pending)
    created: str = ""  # the Job this reconcile created


async def reconcile_backup(
    client: kube.Kube, body: Mapping[str, Any], settings: OperatorSettings, logger: kopf.Logger
) -> float | None:
    """Take the backup, or report how it stands; returns seconds to wait before retrying when
    it waits for something (the Bookstore paused, its database not ready), else None."""
    run = BackupRun.parse(body)
    patch = run.label_patch()
    if patch is not None:
        body = await client.merge_patch(
            BACKUP_API_VERSION, BACKUP_KIND, run.namespace, run.name, patch
        )
    if run.finished or run.deleting:
        return None
    step = await next_step(client, run, settings)
    if step.status is not None and await write_status(client, body, step.status):
        logger.info("Status: phase %s.", step.status["phase"])
        announce(body, run, step)
    return step.retry_after


async def next_step(client: kube.Kube, run: BackupRun, settings: OperatorSettings) -> Step:
    """Where the backup stands: its Job's outcome, or what it waits for, or why it cannot run."""
    name = backup_builders.backup_job_name(run.name)
    job = await client.get("batch/v1", "Job", run.namespace, name)
    if job is not None:
        return await observe(client, run, job)
    found = await client.get(kube.BOOKSTORE_API_VERSION, "Bookstore", run.namespace, run.bookstore)
    if found is None:
        message = (
            f"Bookstore {run.namespace}/{run.bookstore} (spec.bookstore) does not exist: a backup"
            " of it can never be taken; create a BookstoreBackup naming an existing Bookstore"
        )
        return Step(failed_status(run, message, now()))
    store = Bookstore.parse(found, settings)
    # A Bookstore being deleted (its final backup) is backed up even when paused.
    waiting = await waits_for(
        client, store, deleting=bool(found["metadata"].get("deletionTimestamp"))
    )
    if waiting:
        return Step(pending_status(run, waiting), retry_after=NOT_READY_DELAY)
    problems: list[Problem] = []
    store = await check_inputs(client, store, problems)
    if problems:
        message = f"Bookstore {store.name} cannot be backed up yet: {problems[0].message}"
        return Step(pending_status(run, message), retry_after=NOT_READY_DELAY)
    try:
        await ensure_claim(client, store)
        manifest = backup_builders.build_backup_job(store, run.name, run.uid)
        await jobs.create_job(client, manifest)
    except ChildWriteError as refusal:
        message = f"The API server refused {refusal.child} ({refusal.advice}): {refusal.detail}"
        if isinstance(classify(refusal), kopf.PermanentError):
            return Step(failed_status(run, message, now()))
        return Step(pending_status(run, message), retry_after=NOT_READY_DELAY)
    return Step(running_status(run, now()), created=f"Job/{name}")


async def waits_for(client: kube.Kube, store: Bookstore, *, deleting: bool = False) -> str:
    """Why the backup cannot start yet ("" when it can): paused, or no database to dump."""
    if store.spec.paused and not deleting:
        return (
            f"Bookstore {store.name} is paused (spec.paused): the backup starts once it is resumed"
        )
    if store.spec.database.is_external:
        return ""
    statefulset = await client.get(
        "apps/v1", "StatefulSet", store.namespace, store.child_name("postgres")
    )
    if int(((statefulset or {}).get("status") or {}).get("readyReplicas", 0)) < 1:
        return f"Waiting for the database of Bookstore {store.name} to be ready"
    return ""


async def ensure_claim(client: kube.Kube, store: Bookstore) -> None:
    """Create `<name>-backups` from spec.backup.volume when absent; an existing one is left
    alone (never owned, never changed, never deleted by the operator)."""
    volume = store.spec.backup.volume
    manifest = backup_builders.build_backup_claim(store, volume.size, volume.storage_class_name)
    name = manifest["metadata"]["name"]
    if await client.get("v1", "PersistentVolumeClaim", store.namespace, name) is not None:
        return
    try:
        await client.create(manifest)
    except ApiException as exc:
        if exc.status != 409:
            raise ChildWriteError(f"PersistentVolumeClaim/{name}", exc) from exc


async def observe(client: kube.Kube, run: BackupRun, job: Mapping[str, Any]) -> Step:
    """The backup's status from its Job: Running, Completed (the summary) or Failed."""
    outcome = await jobs.observe_job(client, run.namespace, job, backup_builders.BACKUP_CONTAINER)
    started = str(run.status.get("startedAt") or job["metadata"].get("creationTimestamp") or now())
    if outcome.state == "Running":
        return Step(running_status(run, started))
    finished = outcome.finished_at or now()
    if outcome.state == "Failed":
        message = failure_message(outcome.exit_code, outcome.detail)
        return Step(failed_status(run, message, finished, started))
    summary = parse_summary(outcome.message, run.uid)
    if summary is None:
        message = (
            "The backup Job succeeded but its pod reported no summary of this backup"
            f" (termination message: {outcome.message or 'none'})"
        )
        return Step(failed_status(run, message, finished, started))
    return Step(completed_status(run, summary))


async def write_status(
    client: kube.Kube, body: Mapping[str, Any], status: Mapping[str, Any]
) -> bool:
    """Patch the status subresource when it changed (409: read again, unless it is final)."""
    return await kube.write_status(
        client,
        body,
        status,
        api_version=BACKUP_API_VERSION,
        kind=BACKUP_KIND,
        still_ours=lambda _, fresh: not BackupRun.parse(fresh).finished,
    )


def announce(body: Mapping[str, Any], run: BackupRun, step: Step) -> None:
    """Events for a changed phase: Normal for a start or a completion, Warning for a failure."""
    status = step.status or {}
    target = kopf.Body(cast(kopf.RawBody, dict(body)))
    phase = status.get("phase")
    if phase == run.phase and status.get("message") == run.status.get("message"):
        return
    if phase == "Completed":
        kopf.info(target, reason="BackupCompleted", message=completion_note(status))
    elif phase == "Failed":
        kopf.warn(target, reason="BackupFailed", message=str(status.get("message")))
    elif phase == "Running" and step.created:
        kopf.info(target, reason="BackupStarted", message=f"Created {step.created}")
    elif phase == "Pending":
        kopf.info(target, reason="BackupPending", message=str(status.get("message")))


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Cleanup:
    """Where removing a deleted backup's files stands."""

    done: bool
    reason: str = ""  # the event's reason; "" for none
    message: str = ""
    warning: bool = False
    retry_after: float = 0.0


async def clean_up_backup(
    client: kube.Kube, body: Mapping[str, Any], settings: OperatorSettings
) -> Cleanup:
    """Remove a deleted backup's directory from the volume with a small Job, bounded in time.

    A backup that never started has nothing to remove, nor one whose volume is gone. A backup
    Job still running is deleted first (it would write on). Past the bound
    (settings.backup_cleanup_timeout_seconds, counted from the cleanup Job's creation, so a
    restarted operator keeps the count), the deletion goes on without it: a BookstoreBackup,
    or its namespace, never stays Terminating for good.
    """
    run = BackupRun.parse(body)
    backup_job = await client.get(
        "batch/v1", "Job", run.namespace, backup_builders.backup_job_name(run.name)
    )
    if not run.may_hold_files and backup_job is None:
        return Cleanup(done=True)
    claim = backup_builders.backup_claim_name(run.bookstore)
    if await client.get("v1", "PersistentVolumeClaim", run.namespace, claim) is None:
        return Cleanup(done=True)
    stopping = backup_job is not None and backup_job["metadata"].get("deletionTimestamp")
    if backup_job is not None and not stopping and not jobs.is_finished(backup_job):
        await stop_job(client, run.namespace, backup_job["metadata"]["name"])
    store = await store_for_cleanup(client, run, settings)
    manifest = backup_builders.build_cleanup_job(store, run.name, run.uid)
    name = manifest["metadata"]["name"]
    job = await client.get("batch/v1", "Job", run.namespace, name)
    if job is None:
        await jobs.create_job(client, manifest)
        job = manifest
    where = f"/backups/{run.name} on PersistentVolumeClaim/{claim}"
    outcome = await jobs.observe_job(client, run.namespace, job, backup_builders.CLEANUP_CONTAINER)
    if outcome.state == "Succeeded":
        return Cleanup(done=True, reason="BackupFilesRemoved", message=f"Removed {where}")
    if outcome.state == "Failed":
        message = f"Job/{name} could not remove {where}: {outcome.detail}; remove it by hand"
        return Cleanup(done=True, reason="BackupCleanupFailed", message=message, warning=True)
    timeout = settings.backup_cleanup_timeout_seconds
    if age(job) >= timeout:
        message = (
            f"Job/{name} did not remove {where} within {timeout:g}s; the BookstoreBackup goes"
            " anyway: remove the directory by hand if it is still there"
        )
        return Cleanup(done=True, reason="BackupCleanupTimedOut", message=message, warning=True)
    message = f"Waiting for Job/{name} to remove {where} (at most {timeout:g}s)"
    delay = max(0.5, min(CLEANUP_POLL_SECONDS, timeout / 4))
    return Cleanup(done=False, message=message, retry_after=delay)


async def stop_job(client: kube.Kube, namespace: str, name: str) -> None:
    """Delete a Job and its pods (a Job's default propagation would orphan the pods)."""
    path = kube.resource_path("batch/v1", "Job", namespace, name)
    try:
        await client.request("DELETE", path, query={"propagationPolicy": "Background"})
    except ApiException as exc:
        if exc.status != 404:
            raise


async def store_for_cleanup(
    client: kube.Kube, run: BackupRun, settings: OperatorSettings
) -> Bookstore:
    """The backup's Bookstore; when it is gone (backups outlive it), one parsed from its
    name alone: the cleanup Job needs only its labels, volume name and a postgres image."""
    found = await client.get(kube.BOOKSTORE_API_VERSION, "Bookstore", run.namespace, run.bookstore)
    if found is None:
        found = {"metadata": {"name": run.bookstore, "namespace": run.namespace, "uid": ""}}
    return Bookstore.parse(found, settings)


def age(job: Mapping[str, Any]) -> float:
    """Seconds since the API server created the Job (0 for one just sent)."""
    stamp = (job.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return 0.0
    created = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return (datetime.datetime.now(datetime.UTC) - created).total_seconds()

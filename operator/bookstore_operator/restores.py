"""A new Bookstore's restore (spec.database.restoreFrom): where it stands, read from the API.

One Job restores the BookstoreBackup's dumps into the new Bookstore's empty databases, once
the database is ready and before any migration Job or Deployment (upgrades.observe_rollout
holds them until it has succeeded: the restore script refuses a database anything touched).
Once it succeeded, status.database.restoredFrom records it, so a later reconcile (the Job
gone by its TTL, an operator restarted) never restores again. Writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bookstore_operator import jobs, kube
from bookstore_operator.backup_status import BACKUP_API_VERSION, BACKUP_KIND
from bookstore_operator.builders import backups as backup_builders
from bookstore_operator.models import Bookstore
from bookstore_operator.rollout import Restore


def recorded_restore(previous: Mapping[str, Any]) -> Mapping[str, Any]:
    """status.database.restoredFrom as last written ({} when none)."""
    found = (previous.get("database") or {}).get("restoredFrom")
    return found if isinstance(found, Mapping) else {}


async def observe_restore(
    client: kube.Kube, store: Bookstore, previous: Mapping[str, Any]
) -> tuple[Restore | None, dict[str, Any] | None]:
    """Where the restore stands, and the restore Job to create (None when none is due).

    None for a Bookstore without spec.database.restoreFrom. A state "Running" with a manifest
    means the Job is to be created now; the caller checks the database first (it may then
    report WaitingForDatabase instead).
    """
    source = store.spec.database.restore_from
    if source is None:
        return None, None
    backup = source.backup
    recorded = recorded_restore(previous)
    if recorded.get("backup") == backup:
        restored = Restore(
            backup,
            "Restored",
            source=str(recorded.get("bookstore") or ""),
            completed_at=str(recorded.get("completedAt") or ""),
        )
        return restored, None
    name = backup_builders.restore_job_name(store, backup)
    found = await client.get(BACKUP_API_VERSION, BACKUP_KIND, store.namespace, backup)
    origin = str(((found or {}).get("spec") or {}).get("bookstore") or "")
    job = await client.get("batch/v1", "Job", store.namespace, name)
    if job is not None:
        return await _outcome(client, store, backup, origin, job), None
    if found is None:
        detail = f"it does not exist in namespace {store.namespace}"
        return Restore(backup, "SourceMissing", job=name, detail=detail), None
    return await _before_job(client, store, found, name)


async def _before_job(
    client: kube.Kube, store: Bookstore, found: Mapping[str, Any], job: str
) -> tuple[Restore, dict[str, Any] | None]:
    """No restore Job yet: is the backup one that can be restored into this Bookstore?"""
    backup = str(found["metadata"]["name"])
    origin = str((found.get("spec") or {}).get("bookstore") or "")
    status = found.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    if phase == "Failed":
        detail = str(status.get("message") or "")
        return Restore(backup, "SourceFailed", job=job, source=origin, detail=detail), None
    if phase != "Completed":
        detail = f"phase {phase}"
        return Restore(backup, "WaitingForBackup", job=job, source=origin, detail=detail), None
    problem = layout_problem(status, backup_builders.backup_databases(store), backup)
    if problem:
        return Restore(backup, "Refused", job=job, source=origin, detail=problem), None
    claim = backup_builders.backup_claim_name(origin)
    if await client.get("v1", "PersistentVolumeClaim", store.namespace, claim) is None:
        detail = (
            f"its volume PersistentVolumeClaim/{claim} (of Bookstore {origin}) does not exist"
            f" in namespace {store.namespace}"
        )
        return Restore(backup, "SourceMissing", job=job, source=origin, detail=detail), None
    manifest = backup_builders.build_restore_job(store, backup, origin)
    return Restore(backup, "Running", job=job, source=origin), manifest


def layout_problem(status: Mapping[str, Any], expected: tuple[str, ...], backup: str) -> str:
    """Why the backup's dumps do not fit this Bookstore's databases ("" when they do): an
    in-cluster backup holds orders and catalog, one of an external database one shared dump."""
    held = sorted(str(item.get("database")) for item in status.get("files") or [])
    if not held or sorted(expected) == held:
        return ""  # an unreported layout is left to the restore script to check
    return (
        f"BookstoreBackup {backup} holds the database(s) {', '.join(held)}, but this Bookstore"
        f" has {', '.join(sorted(expected))}: it was taken of a Bookstore with another database"
        " layout (in-cluster and spec.database.external backups do not cross)"
    )


async def _outcome(
    client: kube.Kube, store: Bookstore, backup: str, origin: str, job: Mapping[str, Any]
) -> Restore:
    """The restore Job's outcome: Running, Succeeded, Refused (exit 3) or Failed."""
    name = str(job["metadata"]["name"])
    outcome = await jobs.observe_job(
        client, store.namespace, job, backup_builders.RESTORE_CONTAINER
    )
    if outcome.state == "Running":
        return Restore(backup, "Running", job=name, source=origin)
    if outcome.state == "Succeeded":
        completed = (
            _summary_time(outcome.message)
            or outcome.finished_at
            or str(job["metadata"].get("creationTimestamp") or "")
        )
        return Restore(backup, "Succeeded", job=name, source=origin, completed_at=completed)
    refused = outcome.exit_code == backup_builders.RESTORE_REFUSED_EXIT_CODE
    return Restore(
        backup,
        "Refused" if refused else "Failed",
        job=name,
        source=origin,
        exit_code=outcome.exit_code,
        detail=outcome.detail,
    )


def _summary_time(message: str) -> str:
    """completedAt of the restore script's JSON summary ("" when it wrote none)."""
    try:
        summary = json.loads(message)
    except ValueError:
        return ""
    return str(summary.get("completedAt") or "") if isinstance(summary, dict) else ""

"""Thin kopf handlers of the BookstoreBackup resource (its own controller, beside handlers.py).

Triggers: a backup created or seen at operator start; an event of a backup's Job (the Job
controller finished it); a resync timer while the backup is not finished (in case an event
was lost). Each funnels into one serialized `backup_runs.reconcile_backup`. Deleting a
BookstoreBackup runs `backup_runs.clean_up_backup` under kopf's finalizer, bounded in time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import kopf

from bookstore_operator import backup_runs, kube, metrics
from bookstore_operator.backup_status import (
    BACKUP_API_VERSION,
    BACKUP_KIND,
    BACKUP_PLURAL,
    FINAL_PHASES,
)
from bookstore_operator.builders.backups import BACKUP_COMPONENT
from bookstore_operator.errors import classify, outcome
from bookstore_operator.models import API_GROUP, API_VERSION
from bookstore_operator.settings import OperatorSettings
from bookstore_operator.triggers import KeyedLock

BACKUPS = (API_GROUP, API_VERSION, BACKUP_PLURAL)
# The backup and cleanup Jobs (builders.backups): labelled like every child we manage.
BACKUP_JOBS = {
    "app.kubernetes.io/managed-by": "bookstore-operator",
    "app.kubernetes.io/component": BACKUP_COMPONENT,
}
# Read once at import: kopf fixes a timer's interval when the handler is registered.
RESYNC_SECONDS = OperatorSettings().resync_seconds


@kopf.on.startup()
async def configure_backups(memo: kopf.Memo, **_: Any) -> None:
    """Shared state of the backup controller (the API client is shared with handlers.py)."""
    if "operator_settings" not in memo:
        memo.operator_settings = OperatorSettings()
    if "kube" not in memo:
        memo.kube = kube.Kube.from_environment(memo.operator_settings)
    memo.backup_locks = KeyedLock[tuple[str, str]]()


def _unfinished(status: Mapping[str, Any], **_: Any) -> bool:
    return status.get("phase") not in FINAL_PHASES


@kopf.on.resume(*BACKUPS)
@kopf.on.create(*BACKUPS)
async def run_backup(
    namespace: str | None, name: str, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """A backup created, or seen at operator start: take it or report it; kopf retries waits."""
    await reconcile(memo, namespace or "", name, logger, escalate=True)


@kopf.timer(*BACKUPS, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS, when=_unfinished)
async def resync_backup(
    namespace: str | None, name: str, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Safety net while a backup is not finished: its Job's outcome even if an event was lost."""
    await reconcile(memo, namespace or "", name, logger, escalate=False)


@kopf.on.event("batch", "v1", "jobs", labels=BACKUP_JOBS, id="backup-jobs")
async def backup_job_changed(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """A backup's Job changed (e.g. finished) or vanished: reconcile its BookstoreBackup."""
    owner = backup_owner(body)
    if owner is not None:
        await reconcile(memo, body.metadata.namespace or "", owner, logger, escalate=False)


def backup_owner(body: Mapping[str, Any]) -> str | None:
    """The name of the BookstoreBackup that controls this object, if any."""
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == BACKUP_KIND and ref.get("apiVersion") == BACKUP_API_VERSION:
            return str(ref.get("name")) if ref.get("controller") else None
    return None


@kopf.on.delete(*BACKUPS)
async def delete_backup(
    body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **_: Any
) -> None:
    """Remove the backup's files (a Job), waiting for it a bounded time, then let it go."""
    locks: KeyedLock[tuple[str, str]] = memo.backup_locks
    async with locks.hold((namespace or "", name)):
        try:
            cleanup = await backup_runs.clean_up_backup(memo.kube, body, memo.operator_settings)
        except Exception as exc:
            raise classify(exc) from exc
    if not cleanup.done:
        raise kopf.TemporaryError(cleanup.message, delay=cleanup.retry_after)
    if cleanup.reason:
        post = kopf.warn if cleanup.warning else kopf.info
        post(body, reason=cleanup.reason, message=cleanup.message)


async def reconcile(
    memo: kopf.Memo, namespace: str, name: str, logger: kopf.Logger, *, escalate: bool
) -> None:
    """Reconcile one backup at a time, from what the API server holds now."""
    locks: KeyedLock[tuple[str, str]] = memo.backup_locks
    client: kube.Kube = memo.kube
    async with locks.hold((namespace, name)):
        started = time.monotonic()
        try:
            body = await client.get(BACKUP_API_VERSION, BACKUP_KIND, namespace, name)
            if body is None:
                return
            retry_after = await backup_runs.reconcile_backup(
                client, body, memo.operator_settings, logger
            )
        except Exception as exc:
            error = classify(exc)
            metrics.reconciled(BACKUP_KIND, outcome(error), time.monotonic() - started)
            if escalate:
                raise error from exc
            logger.warning("Reconcile of backup %s/%s did not finish: %s", namespace, name, error)
            return
        # Waiting for the backup's Job is a reconcile that went fine, not a failure.
        metrics.reconciled(BACKUP_KIND, "ok", time.monotonic() - started)
    if retry_after is not None and escalate:
        raise kopf.TemporaryError("The backup waits (see status.message)", delay=retry_after)

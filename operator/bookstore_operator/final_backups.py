"""The last backup of a Bookstore being deleted (spec.backup.finalBackup), bounded in time.

kopf's finalizer keeps the Bookstore (so the garbage collector keeps its children, the
database among them) while its deletion handler runs this step again and again: create the
BookstoreBackup `<name>-final-<uid prefix>` once, then read how it stands. The step is done
(and the deletion goes on) when the backup completed or failed, when there is no database to
back up, when the backup cannot be created, or once `settings.final_backup_timeout_seconds`
have passed since the handler first ran (kopf keeps that time across operator restarts): a
Bookstore, or its namespace, never stays Terminating for good.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from bookstore_operator import kube
from bookstore_operator.backup_health import ORIGIN_LABEL, build_backup
from bookstore_operator.backup_status import BACKUP_API_VERSION, BACKUP_KIND
from bookstore_operator.models import Bookstore
from bookstore_operator.settings import OperatorSettings

FINAL_ORIGIN = "final"
UID_PREFIX_LENGTH = 8
# How often the handler looks at the backup again (at most; sooner with a short bound).
POLL_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class FinalStep:
    """Where the final backup stands: done (the deletion goes on) or not, and what to say."""

    done: bool
    reason: str = ""  # the event's reason; "" for none
    message: str = ""
    warning: bool = False
    retry_after: float = 0.0


def wants_final_backup(spec: Mapping[str, Any]) -> bool:
    """spec.backup.finalBackup is true."""
    return bool((spec.get("backup") or {}).get("finalBackup"))


def final_backup_name(name: str, uid: str) -> str:
    """`<name>-final-<uid prefix>`: found again by every attempt, unique per Bookstore object
    (a Bookstore created again with the same name gets another one)."""
    return f"{name}-final-{uid[:UID_PREFIX_LENGTH]}"


def build_final_backup(store: Bookstore) -> dict[str, Any]:
    """The final BookstoreBackup: labelled bookstore.dev/backup-origin=final, so retention never
    deletes it; not owned by the Bookstore (backups outlive it)."""
    backup = build_backup(store, final_backup_name(store.name, store.uid), "requested")
    backup["metadata"]["labels"][ORIGIN_LABEL] = FINAL_ORIGIN
    return backup


def poll_seconds(timeout: float) -> float:
    return max(0.5, min(POLL_SECONDS, timeout / 4))


async def take_final_backup(
    client: kube.Kube, body: Mapping[str, Any], settings: OperatorSettings, elapsed: float
) -> FinalStep:
    """One look at the final backup of a Bookstore being deleted; `elapsed`: seconds since the
    first look. Creates the backup when it is not there yet."""
    store = Bookstore.parse(body, settings)
    name = final_backup_name(store.name, store.uid)
    timeout = settings.final_backup_timeout_seconds
    found = await client.get(BACKUP_API_VERSION, BACKUP_KIND, store.namespace, name)
    if found is None:
        return await _start(client, store, name, timeout, elapsed)
    status = found.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    what = f"BookstoreBackup/{name}"
    if phase == "Completed":
        size = f" ({status['size']})" if status.get("size") else ""
        message = f"The final backup {what}{size} completed; the Bookstore's deletion goes on"
        return FinalStep(True, "FinalBackupCompleted", message)
    if phase == "Failed":
        message = (
            f"The final backup {what} failed ({status.get('message') or 'no message'}); the"
            " Bookstore's deletion goes on without it"
        )
        return FinalStep(True, "FinalBackupFailed", message, warning=True)
    if elapsed >= timeout:
        message = (
            f"The final backup {what} did not finish within {timeout:g}s"
            " (BOOKSTORE_FINAL_BACKUP_TIMEOUT_SECONDS; it is "
            f"{phase}); the Bookstore's deletion goes on without waiting for it"
        )
        return FinalStep(True, "FinalBackupTimedOut", message, warning=True)
    if phase == "Pending":
        why = await _no_database(client, store)
        if why:
            message = f"The final backup {what} cannot run: {why}; the deletion goes on without it"
            return FinalStep(True, "FinalBackupSkipped", message, warning=True)
    message = f"Waiting for the final backup {what} ({phase}; at most {timeout:g}s)"
    return FinalStep(False, message=message, retry_after=poll_seconds(timeout))


async def _start(
    client: kube.Kube, store: Bookstore, name: str, bound: float, elapsed: float
) -> FinalStep:
    """Create the final backup, unless there is no database to back up or time is up."""
    what = f"BookstoreBackup/{name}"
    why = await _no_database(client, store)
    if not why and elapsed >= bound:
        why = f"it could not be created within {bound:g}s"
    if why:
        message = f"No final backup was taken: {why}; the Bookstore's deletion goes on"
        return FinalStep(True, "FinalBackupSkipped", message, warning=True)
    try:
        await client.create(build_final_backup(store))
    except ApiException as exc:
        if exc.status != 409:  # 409: made by an earlier attempt whose answer was lost
            if exc.status == 429 or (exc.status or 0) >= 500:
                message = f"Creating {what} failed ({exc.status} {exc.reason}); trying again"
                return FinalStep(False, message=message, retry_after=poll_seconds(bound))
            message = (
                f"No final backup was taken: the API server refused {what} ({exc.status}"
                f" {exc.reason}); the Bookstore's deletion goes on"
            )
            return FinalStep(True, "FinalBackupSkipped", message, warning=True)
    message = (
        f"Created the final backup {what}; the Bookstore's deletion waits for it at most {bound:g}s"
    )
    return FinalStep(False, "FinalBackupStarted", message, retry_after=poll_seconds(bound))


async def _no_database(client: kube.Kube, store: Bookstore) -> str:
    """Why there is no database to back up ("" when there is): an external one is taken as
    there; ours must be ready."""
    if store.spec.database.is_external:
        return ""
    statefulset = await client.get(
        "apps/v1", "StatefulSet", store.namespace, store.child_name("postgres")
    )
    if statefulset is None:
        return f"the database StatefulSet {store.child_name('postgres')} is gone"
    if int((statefulset.get("status") or {}).get("readyReplicas", 0)) < 1:
        return f"the database StatefulSet {store.child_name('postgres')} is not ready"
    return ""

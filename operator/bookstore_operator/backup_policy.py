"""The Bookstore's backup policy, applied: scheduled and requested BookstoreBackups are
created, and retention deletes the old ones. The backups run on their own controller; this
only creates, reads and deletes BookstoreBackup objects.

Creation is idempotent by name (a slot's or a request's backup has one name: 409 means it is
there), so a reconcile retried after its status write failed makes no second backup. Paused
Bookstores neither create nor delete backups (their status still reports them).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from bookstore_operator import kube
from bookstore_operator.backup_health import (
    BACKUP_API_VERSION,
    BACKUP_KIND,
    BOOKSTORE_LABEL,
    REQUEST_ANNOTATION,
    BackupsObserved,
    Origin,
    backups_of,
    build_backup,
    plan_schedule,
    retention_victims,
)
from bookstore_operator.errors import ChildWriteError
from bookstore_operator.models import Bookstore
from bookstore_operator.schedules import requested_backup_name, slot_backup_name


@dataclasses.dataclass
class BackupReport:
    """What the backup step saw and did in one reconcile."""

    observed: BackupsObserved
    created: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)
    refusals: list[ChildWriteError] = dataclasses.field(default_factory=list)


async def reconcile_backups(
    client: kube.Kube, store: Bookstore, body: Mapping[str, Any], now: datetime.datetime
) -> BackupReport:
    """Create the backup a slot or a backup-now value asks for, delete what retention says,
    and return the backups as they now stand."""
    previous = (body.get("status") or {}).get("backup") or {}
    plan = plan_schedule(store.spec.backup.schedule, previous, now)
    report = BackupReport(BackupsObserved(store.name, plan=plan))
    requested = str(previous.get("lastRequestedBackup") or "")
    write = not store.spec.paused
    if write and plan is not None and plan.due is not None:
        name = slot_backup_name(store.name, plan.due)
        if await _create(client, store, name, "scheduled", report):
            plan = dataclasses.replace(plan, handled=plan.due, due=None)
    value = ((body.get("metadata") or {}).get("annotations") or {}).get(REQUEST_ANNOTATION)
    if write and value is not None and requested_backup_name(store.name, value) != requested:
        name = requested_backup_name(store.name, value)
        if await _create(client, store, name, "requested", report):
            requested = name
    records = backups_of(await _list(client, store), store.name)
    if write:
        for victim in retention_victims(records, store.spec.backup.retention):
            if await _delete(client, store, victim.name, report):
                report.deleted.append(victim.name)
        records = [record for record in records if record.name not in report.deleted]
    report.observed = BackupsObserved(
        store.name, records=tuple(records), plan=plan, requested=requested
    )
    return report


async def _create(
    client: kube.Kube, store: Bookstore, name: str, origin: Origin, report: BackupReport
) -> bool:
    """Create one BookstoreBackup; True when it exists now (made here or already there)."""
    try:
        await client.create(build_backup(store, name, origin))
    except ApiException as exc:
        if exc.status == 409:
            return True
        report.refusals.append(ChildWriteError(f"{BACKUP_KIND}/{name}", exc))
        return False
    report.created.append(name)
    return True


async def _delete(client: kube.Kube, store: Bookstore, name: str, report: BackupReport) -> bool:
    """Delete one BookstoreBackup (its controller's finalizer removes its files first)."""
    try:
        await client.delete(BACKUP_API_VERSION, BACKUP_KIND, store.namespace, name)
    except ApiException as exc:
        if exc.status == 404:
            return True
        report.refusals.append(ChildWriteError(f"{BACKUP_KIND}/{name}", exc))
        return False
    return True


async def _list(client: kube.Kube, store: Bookstore) -> list[dict[str, Any]]:
    """The BookstoreBackups labelled with this Bookstore's name (their controller labels each)."""
    path = kube.resource_path(BACKUP_API_VERSION, BACKUP_KIND, store.namespace)
    try:
        found = await client.request(
            "GET", path, query={"labelSelector": f"{BOOKSTORE_LABEL}={store.name}"}
        )
    except ApiException as exc:
        if exc.status == 404:
            return []  # the BookstoreBackup CRD is not installed: no backups to report
        raise
    return list((found or {}).get("items") or [])

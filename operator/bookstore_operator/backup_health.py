"""The Bookstore's side of its backups, pure: what its schedule asks for now, which backups
retention removes, and what the Bookstore reports about them (status.backup and the
LastBackupSucceeded condition).

`backup_policy` reads the BookstoreBackups and makes the changes; the backups themselves are
run by their own controller (`backup_runs`). Times are UTC datetimes; `now` is always given.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from bookstore_operator.models import API_GROUP, API_VERSION, Bookstore
from bookstore_operator.schedules import (
    FAILING_PERIODS,
    InvalidScheduleError,
    Schedule,
    format_time,
    parse_time,
    requested_backup_name,
    slot_backup_name,
)

BACKUP_API_VERSION = f"{API_GROUP}/{API_VERSION}"
BACKUP_KIND = "BookstoreBackup"
BOOKSTORE_LABEL = f"{API_GROUP}/bookstore"
ORIGIN_LABEL = f"{API_GROUP}/backup-origin"
REQUEST_ANNOTATION = f"{API_GROUP}/backup-now"
MANAGED_BY = ("app.kubernetes.io/managed-by", "bookstore-operator")
CONDITION = "LastBackupSucceeded"
# Failed backups kept for diagnosis; older failed ones the operator made are deleted.
FAILED_KEPT = 3
# The most of a failed backup's message that the condition repeats.
MESSAGE_LIMIT = 512
Origin = Literal["scheduled", "requested"]
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class BackupRecord:
    """One BookstoreBackup of this Bookstore as its controller reported it."""

    name: str
    phase: str
    created: datetime.datetime | None
    finished: datetime.datetime | None  # status.completedAt (Completed and Failed)
    message: str
    operator_made: bool  # created by the schedule or the annotation, not by a user

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> BackupRecord:
        meta, status = body.get("metadata") or {}, body.get("status") or {}
        labels = meta.get("labels") or {}
        return cls(
            name=str(meta.get("name", "")),
            phase=str(status.get("phase") or "Pending"),
            created=parse_time(meta.get("creationTimestamp")),
            finished=parse_time(status.get("completedAt")),
            message=str(status.get("message") or ""),
            operator_made=labels.get(MANAGED_BY[0]) == MANAGED_BY[1]
            and labels.get(ORIGIN_LABEL) in ("scheduled", "requested"),
        )

    @property
    def when(self) -> datetime.datetime:
        """When it finished (else when it was created): the order retention and health use."""
        return self.finished or self.created or EPOCH


def backups_of(items: Iterable[Mapping[str, Any]], store: str) -> list[BackupRecord]:
    """The backups of Bookstore `store` that are not being deleted, newest first."""
    records = [
        BackupRecord.parse(item)
        for item in items
        if (item.get("spec") or {}).get("bookstore") == store
        and not (item.get("metadata") or {}).get("deletionTimestamp")
    ]
    return sorted(records, key=lambda record: (record.when, record.name), reverse=True)


def build_backup(store: Bookstore, name: str, origin: Origin) -> dict[str, Any]:
    """A BookstoreBackup the operator creates. Not owned by the Bookstore: backups outlive it."""
    return {
        "apiVersion": BACKUP_API_VERSION,
        "kind": BACKUP_KIND,
        "metadata": {
            "name": name,
            "namespace": store.namespace,
            "labels": {
                "app.kubernetes.io/name": "bookstore",
                "app.kubernetes.io/instance": store.name,
                "app.kubernetes.io/component": "backup",
                "app.kubernetes.io/part-of": "bookstore",
                MANAGED_BY[0]: MANAGED_BY[1],
                BOOKSTORE_LABEL: store.name,
                ORIGIN_LABEL: origin,
            },
        },
        "spec": {"bookstore": store.name, "method": "logical"},
    }


def retention_victims(records: Sequence[BackupRecord], retention: int) -> list[BackupRecord]:
    """The backups retention deletes: Completed ones past the newest `retention` (every
    Completed backup counts, but only operator-made ones are deleted: a backup a user made is
    never deleted by policy), and Failed ones past the newest FAILED_KEPT, operator-made."""
    newest_first = sorted(records, key=lambda record: (record.when, record.name), reverse=True)
    completed = [record for record in newest_first if record.phase == "Completed"]
    failed = [record for record in newest_first if record.phase == "Failed"]
    return [
        record for record in (*completed[retention:], *failed[FAILED_KEPT:]) if record.operator_made
    ]


@dataclasses.dataclass(frozen=True)
class SchedulePlan:
    """Where spec.backup.schedule stands at `now`."""

    text: str
    error: str = ""  # why the schedule is invalid
    schedule: Schedule | None = None
    since: datetime.datetime | None = None  # when the operator started following it
    handled: datetime.datetime | None = None  # the slot of the last scheduled backup
    due: datetime.datetime | None = None  # the slot to back up now
    next: datetime.datetime | None = None  # the first slot after now


def plan_schedule(
    text: str, previous: Mapping[str, Any], now: datetime.datetime
) -> SchedulePlan | None:
    """The schedule's plan given the previous status.backup; None without a schedule.

    A schedule seen for the first time starts now: a slot that passed before it gets no
    backup. After downtime only the latest missed slot is due (one catch-up backup).
    """
    if not text.strip():
        return None
    try:
        schedule = Schedule.parse(text)
    except InvalidScheduleError as exc:
        return SchedulePlan(text, error=str(exc))
    since = parse_time(previous.get("scheduledSince")) or now.replace(microsecond=0)
    handled = parse_time(previous.get("lastScheduleTime"))
    return SchedulePlan(
        text,
        schedule=schedule,
        since=since,
        handled=handled,
        due=schedule.due(handled, since, now),
        next=schedule.following(now),
    )


@dataclasses.dataclass(frozen=True)
class BackupsObserved:
    """What one reconcile saw and did about the Bookstore's backups."""

    store: str
    records: Sequence[BackupRecord] = ()  # newest first, without the ones just deleted
    plan: SchedulePlan | None = None
    requested: str = ""  # the backup made for the last backup-now value handled

    @property
    def last_success(self) -> BackupRecord | None:
        return next((r for r in self.records if r.phase == "Completed"), None)

    @property
    def last_failure(self) -> BackupRecord | None:
        return next((r for r in self.records if r.phase == "Failed"), None)

    def failing_after(self) -> datetime.datetime | None:
        """When the schedule counts as failing if no backup succeeds before."""
        plan = self.plan
        if plan is None or plan.schedule is None or plan.since is None:
            return None
        success = self.last_success
        reference = max(success.when, plan.since) if success is not None else plan.since
        return plan.schedule.failing_after(reference)


@dataclasses.dataclass(frozen=True)
class Health:
    """The LastBackupSucceeded condition before it is stamped; degraded: phase Degraded."""

    ok: bool
    reason: str
    message: str
    degraded: bool = False


def health(observed: BackupsObserved, now: datetime.datetime) -> Health | None:
    """LastBackupSucceeded: an invalid schedule, then a failing schedule, then the newest
    finished backup's outcome; None (no condition) while no backup has ever finished."""
    plan = observed.plan
    if plan is not None and plan.error:
        return Health(
            False,
            "InvalidBackupSchedule",
            f'spec.backup.schedule "{plan.text}" is not a valid cron expression: {plan.error}.'
            " No scheduled backup is taken until it is fixed; the Bookstore itself and"
            " on-demand backups are not affected",
            degraded=True,
        )
    deadline = observed.failing_after()
    if deadline is not None and now >= deadline:
        return Health(False, "BackupsFailing", _failing_message(observed, deadline), degraded=True)
    finished = [r for r in observed.records if r.phase in ("Completed", "Failed")]
    if not finished:
        return None
    newest = finished[0]
    when = format_time(newest.when)
    if newest.phase == "Completed":
        return Health(True, "BackupCompleted", f"BookstoreBackup {newest.name} completed at {when}")
    return Health(
        False,
        "BackupFailed",
        f"BookstoreBackup {newest.name} failed at {when}: {_bounded(newest.message)}",
    )


def _failing_message(observed: BackupsObserved, deadline: datetime.datetime) -> str:
    plan = observed.plan
    assert plan is not None
    success, failure = observed.last_success, observed.last_failure
    since = (
        f"the last one, BookstoreBackup {success.name}, completed at {format_time(success.when)}"
        if success is not None
        else f"none has since the schedule started at {format_time(plan.since or deadline)}"
    )
    failed = (
        f"; the newest failure is BookstoreBackup {failure.name}: {_bounded(failure.message)}"
        if failure is not None
        else ""
    )
    return (
        f'No backup succeeded for {FAILING_PERIODS} periods of schedule "{plan.text}"'
        f" (due by {format_time(deadline)}): {since}{failed}. See kubectl get bookstorebackups"
    )


def _bounded(message: str) -> str:
    message = " ".join(message.split()) or "no message"
    return message if len(message) <= MESSAGE_LIMIT else f"...{message[-MESSAGE_LIMIT:]}"


def status_fields(observed: BackupsObserved) -> dict[str, Any]:
    """status.backup: the schedule's times, the newest success and failure, the last request."""
    fields: dict[str, Any] = {}
    plan = observed.plan
    if plan is not None and plan.schedule is not None and plan.since is not None:
        fields["scheduledSince"] = format_time(plan.since)
        if plan.handled is not None:
            fields["lastScheduleTime"] = format_time(plan.handled)
        if plan.next is not None:
            fields["nextScheduledBackup"] = {
                "name": slot_backup_name(observed.store, plan.next),
                "time": format_time(plan.next),
            }
    for field, record in (
        ("lastSuccessfulBackup", observed.last_success),
        ("lastFailedBackup", observed.last_failure),
    ):
        if record is not None:
            fields[field] = {"name": record.name, "time": format_time(record.when)}
    if observed.requested:
        fields["lastRequestedBackup"] = observed.requested
    return fields


def new_failures(
    records: Sequence[BackupRecord], previous: Mapping[str, Any]
) -> list[BackupRecord]:
    """Failed backups the previous status did not know of (one Warning event each): those
    newer than its lastFailedBackup; only the newest when it named none."""
    failed = [record for record in records if record.phase == "Failed"]
    known = previous.get("lastFailedBackup") or {}
    if not known:
        return failed[:1]
    seen = parse_time(known.get("time")) or EPOCH
    return [r for r in failed if r.name != known.get("name") and r.when >= seen]


def wake_needed(body: Mapping[str, Any], now: datetime.datetime) -> bool:
    """Whether a Bookstore's backups need a reconcile now, read from the object alone (no API
    call): a new backup-now value, a slot that came, or backups that just became failing."""
    spec, meta = body.get("spec") or {}, body.get("metadata") or {}
    if spec.get("paused") or meta.get("deletionTimestamp"):
        return False
    status = body.get("status") or {}
    previous = status.get("backup") or {}
    value = (meta.get("annotations") or {}).get(REQUEST_ANNOTATION)
    name = str(meta.get("name", ""))
    if value is not None and requested_backup_name(name, value) != previous.get(
        "lastRequestedBackup"
    ):
        return True
    text = str((spec.get("backup") or {}).get("schedule") or "")
    if not text.strip():
        return "scheduledSince" in previous
    try:
        schedule = Schedule.parse(text)
    except InvalidScheduleError:
        return False  # the spec change that made it invalid was reconciled
    since = parse_time(previous.get("scheduledSince"))
    upcoming = parse_time((previous.get("nextScheduledBackup") or {}).get("time"))
    if since is None or upcoming is None or now >= upcoming:
        return True
    success = parse_time((previous.get("lastSuccessfulBackup") or {}).get("time"))
    deadline = schedule.failing_after(max(success, since) if success is not None else since)
    shown = any(
        c.get("type") == CONDITION and c.get("reason") == "BackupsFailing"
        for c in status.get("conditions") or []
    )
    return deadline is not None and (now >= deadline) != shown

"""Backup schedules, on-demand backups, retention and backup health through the real kopf runtime.

Time is the operator's injected clock (memo.clock), moved by the test: nothing waits for a
real cron slot. The test plays the BookstoreBackup controller where it matters by writing a
backup's final status (Completed and Failed are final: that controller never rewrites them).
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bookstore_operator.schedules import parse_time, requested_backup_name

from tests.operator.runtime.conftest import (
    BOOKSTORES,
    NAMESPACE,
    Operator,
    api,
    bookstore,
    condition,
    create_bookstore,
    eventually,
    mark_workloads_ready,
    settle,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator

BACKUPS = f"/apis/bookstore.dev/v1alpha1/namespaces/{NAMESPACE}/bookstorebackups"
BACKUP_PLURAL = "bookstore.dev/v1alpha1/bookstorebackups"
START = "2026-11-21T10:00:00Z"
DAILY = {"backup": {"schedule": "0 3 * * *"}}


class Clock:
    """The operator's clock, moved only by the test."""

    def __init__(self, start: str) -> None:
        self.now = at(start)

    def __call__(self) -> datetime.datetime:
        return self.now

    def set(self, moment: str) -> None:
        self.now = at(moment)


def at(text: str) -> datetime.datetime:
    moment = parse_time(text)
    assert moment is not None
    return moment


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def operator(emulator: Emulator, clock: Clock) -> AsyncIterator[Operator]:
    """The operator with the test's clock; stopped at the end of the test."""
    runtime = Operator(emulator, clock=clock)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


def backups(emulator: Emulator, *, going: bool = False) -> dict[str, dict[str, Any]]:
    """The BookstoreBackups by name (without those being deleted, unless `going`)."""
    return {
        item["metadata"]["name"]: item
        for item in emulator.live_items(BACKUP_PLURAL)
        if going or not item["metadata"].get("deletionTimestamp")
    }


def backup_status(emulator: Emulator) -> dict[str, Any]:
    return dict((bookstore(emulator, "downtown").get("status") or {}).get("backup") or {})


def backup_creations(emulator: Emulator) -> list[str]:
    """Every BookstoreBackup the operator created (POSTs not made by the test)."""
    return [
        str(request.data["metadata"]["name"])
        for request in emulator.writes()
        if request.method.value == "POST" and request.url.path == BACKUPS
    ]


def events(emulator: Emulator, reason: str) -> list[str]:
    return [e["message"] for e in emulator.live_items("v1/events") if e["reason"] == reason]


async def finish(
    emulator: Emulator, name: str, phase: str, completed_at: str, message: str = ""
) -> None:
    """Play the BookstoreBackup controller: the backup ended (a final status)."""
    status: dict[str, Any] = {"phase": phase, "completedAt": completed_at}
    if phase == "Completed":
        status |= {"startedAt": completed_at, "sizeBytes": 20192, "size": "19.7Ki"}
    else:
        status["message"] = message
    await api(emulator, "PATCH", f"{BACKUPS}/{name}/status", {"status": status}, merge=True)


async def slot_backup(emulator: Emulator, clock: Clock, moment: str, name: str) -> None:
    """Move the clock past a slot and wait for its backup."""
    clock.set(moment)
    await eventually(lambda: name in backups(emulator), what=f"BookstoreBackup {name}")


async def test_a_scheduled_backup_is_created_at_its_slot_and_only_once(
    emulator: Emulator, clock: Clock, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown", DAILY)
    status = await eventually(
        lambda: backup_status(emulator).get("nextScheduledBackup") and backup_status(emulator),
        what="the next scheduled backup in status",
    )
    assert status["scheduledSince"] == START
    assert status["nextScheduledBackup"] == {
        "name": "downtown-202611220300",
        "time": "2026-11-22T03:00:00Z",
    }
    await settle(emulator, "downtown")
    assert backups(emulator) == {}  # a slot before the schedule started gets no backup

    await slot_backup(emulator, clock, "2026-11-22T03:00:20Z", "downtown-202611220300")
    created = backups(emulator)["downtown-202611220300"]
    assert created["spec"] == {"bookstore": "downtown", "method": "logical"}
    labels = created["metadata"]["labels"]
    assert labels["bookstore.dev/bookstore"] == "downtown"
    assert labels["bookstore.dev/backup-origin"] == "scheduled"
    assert labels["app.kubernetes.io/managed-by"] == "bookstore-operator"
    assert "ownerReferences" not in created["metadata"]  # backups outlive the Bookstore
    await eventually(
        lambda: backup_status(emulator).get("lastScheduleTime") == "2026-11-22T03:00:00Z",
        what="status.backup.lastScheduleTime",
    )
    assert backup_status(emulator)["nextScheduledBackup"]["name"] == "downtown-202611230300"
    await settle(emulator, "downtown")
    clock.set("2026-11-22T03:40:00Z")
    await settle(emulator, "downtown")
    assert backup_creations(emulator) == ["downtown-202611220300"]
    assert events(emulator, "BackupCreated") == ["Created BookstoreBackup/downtown-202611220300"]


async def test_after_downtime_one_backup_catches_up_the_latest_missed_slot(
    emulator: Emulator, clock: Clock, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown", DAILY)
    await eventually(lambda: backup_status(emulator).get("scheduledSince"), what="schedule")
    await slot_backup(emulator, clock, "2026-11-22T03:00:05Z", "downtown-202611220300")
    await eventually(
        lambda: backup_status(emulator).get("lastScheduleTime") == "2026-11-22T03:00:00Z",
        what="the slot recorded",
    )
    await operator.stop()
    clock.set("2026-11-25T09:00:00Z")  # three slots passed while no operator ran
    await operator.start()

    await eventually(
        lambda: "downtown-202611250300" in backups(emulator), what="the catch-up backup"
    )
    await settle(emulator, "downtown")
    assert sorted(backups(emulator)) == ["downtown-202611220300", "downtown-202611250300"]
    assert backup_creations(emulator) == ["downtown-202611220300", "downtown-202611250300"]
    assert backup_status(emulator)["lastScheduleTime"] == "2026-11-25T03:00:00Z"


async def annotate(emulator: Emulator, value: str) -> None:
    """`kubectl annotate --overwrite bookstore downtown bookstore.dev/backup-now=<value>`."""
    patch = {"metadata": {"annotations": {"bookstore.dev/backup-now": value}}}
    await api(emulator, "PATCH", f"{BOOKSTORES}/downtown", patch, merge=True)


async def test_each_backup_now_value_creates_one_backup(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await settle(emulator, "downtown", 1)
    first = requested_backup_name("downtown", "1763719200")
    await annotate(emulator, "1763719200")
    await eventually(lambda: first in backups(emulator), what="the requested backup")
    assert backups(emulator)[first]["metadata"]["labels"]["bookstore.dev/backup-origin"] == (
        "requested"
    )
    await eventually(
        lambda: backup_status(emulator).get("lastRequestedBackup") == first,
        what="the request recorded",
    )
    await settle(emulator, "downtown")
    assert backup_creations(emulator) == [first]

    second = requested_backup_name("downtown", "1763722800")
    await annotate(emulator, "1763722800")
    await eventually(lambda: second in backups(emulator), what="the second requested backup")
    await settle(emulator, "downtown")
    assert backup_creations(emulator) == [first, second]
    assert "scheduledSince" not in backup_status(emulator)  # no schedule: nothing scheduled


async def create_finished_backup(
    emulator: Emulator, name: str, completed_at: str, *, origin: str | None
) -> None:
    labels = {"bookstore.dev/bookstore": "downtown"}
    if origin is not None:
        labels |= {
            "bookstore.dev/backup-origin": origin,
            "app.kubernetes.io/managed-by": "bookstore-operator",
        }
    body = {
        "apiVersion": "bookstore.dev/v1alpha1",
        "kind": "BookstoreBackup",
        "metadata": {"name": name, "labels": labels},
        "spec": {"bookstore": "downtown", "method": "logical"},
    }
    await api(emulator, "POST", BACKUPS, body)
    await finish(emulator, name, "Completed", completed_at)


async def test_retention_deletes_the_oldest_operator_made_completed_backups_only(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown", {"backup": {"retention": 2}})
    await settle(emulator, "downtown", 1)
    await create_finished_backup(emulator, "by-hand", "2026-11-17T12:00:00Z", origin=None)
    for day in (18, 19, 20):
        name = f"downtown-202611{day}0300"
        await create_finished_backup(emulator, name, f"2026-11-{day}T03:01:00Z", origin="scheduled")

    await eventually(
        lambda: "downtown-202611180300" not in backups(emulator),
        what="the oldest scheduled backup deleted",
    )
    await settle(emulator, "downtown")
    # Four Completed, two kept: of the two older ones, the hand-made one is never deleted.
    assert sorted(backups(emulator)) == [
        "by-hand",
        "downtown-202611190300",
        "downtown-202611200300",
    ]
    assert events(emulator, "BackupDeleted") == [
        "Deleted BookstoreBackup/downtown-202611180300: older than spec.backup.retention keeps"
    ]
    status = backup_status(emulator)
    assert status["lastSuccessfulBackup"] == {
        "name": "downtown-202611200300",
        "time": "2026-11-20T03:01:00Z",
    }
    ready = condition(bookstore(emulator, "downtown"), "LastBackupSucceeded")
    assert (ready["status"], ready["reason"]) == ("True", "BackupCompleted")


async def test_failed_backups_warn_and_two_periods_without_success_degrade_until_one_succeeds(
    emulator: Emulator, clock: Clock, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown", DAILY)
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    assert condition(bookstore(emulator, "downtown"), "LastBackupSucceeded") == {}

    await slot_backup(emulator, clock, "2026-11-22T03:00:10Z", "downtown-202611220300")
    await finish(
        emulator, "downtown-202611220300", "Failed", "2026-11-22T03:01:00Z", "pg_dump: refused"
    )

    def last_backup() -> dict[str, Any]:
        return condition(bookstore(emulator, "downtown"), "LastBackupSucceeded")

    failed = await eventually(
        lambda: last_backup().get("reason") == "BackupFailed" and last_backup(),
        what="LastBackupSucceeded False",
        show=lambda: (backups(emulator), bookstore(emulator, "downtown")["status"]),
    )
    assert failed["status"] == "False"
    assert "downtown-202611220300" in failed["message"]
    assert "pg_dump: refused" in failed["message"]
    assert bookstore(emulator, "downtown")["status"]["phase"] == "Ready"  # one failure: not yet
    await eventually(lambda: events(emulator, "BackupFailed"), what="a Warning event")

    await slot_backup(emulator, clock, "2026-11-23T03:00:10Z", "downtown-202611230300")
    await finish(
        emulator, "downtown-202611230300", "Failed", "2026-11-23T03:01:00Z", "pg_dump: refused"
    )
    await eventually(
        lambda: len(events(emulator, "BackupFailed")) == 2,
        what="a second Warning",
        show=lambda: (
            [(e["reason"], e["message"]) for e in emulator.live_items("v1/events")],
            backups(emulator),
            bookstore(emulator, "downtown")["status"],
        ),
    )
    assert bookstore(emulator, "downtown")["status"]["phase"] == "Ready"

    clock.set("2026-11-23T10:00:00Z")  # two periods after the schedule started, no success
    store = await eventually(
        lambda: (
            (found := bookstore(emulator, "downtown"))["status"]["phase"] == "Degraded" and found
        ),
        what="Degraded",
    )
    failing = condition(store, "LastBackupSucceeded")
    assert (failing["status"], failing["reason"]) == ("False", "BackupsFailing")
    assert "downtown-202611230300" in failing["message"]
    assert condition(store, "Ready")["status"] == "True"  # it still serves
    await eventually(lambda: events(emulator, "BackupsFailing"), what="a BackupsFailing Warning")

    await slot_backup(emulator, clock, "2026-11-24T03:00:10Z", "downtown-202611240300")
    await finish(emulator, "downtown-202611240300", "Completed", "2026-11-24T03:02:00Z")
    store = await eventually(
        lambda: (found := bookstore(emulator, "downtown"))["status"]["phase"] == "Ready" and found,
        what="Ready again",
    )
    recovered = condition(store, "LastBackupSucceeded")
    assert (recovered["status"], recovered["reason"]) == ("True", "BackupCompleted")
    assert store["status"]["backup"]["lastSuccessfulBackup"]["name"] == "downtown-202611240300"
    assert store["status"]["backup"]["lastFailedBackup"]["name"] == "downtown-202611230300"
    await settle(emulator, "downtown")
    assert len(events(emulator, "BackupFailed")) == 2  # once per failed backup
    assert len(events(emulator, "BackupsFailing")) == 1

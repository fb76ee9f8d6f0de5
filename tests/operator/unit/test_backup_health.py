"""The Bookstore's side of its backups, pure: schedule plan, retention, health, status, wake-ups."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from bookstore_operator.backup_health import (
    FAILED_KEPT,
    BackupRecord,
    BackupsObserved,
    backups_of,
    build_backup,
    health,
    new_failures,
    plan_schedule,
    retention_victims,
    status_fields,
    wake_needed,
)
from bookstore_operator.models import Bookstore
from bookstore_operator.schedules import parse_time, requested_backup_name
from bookstore_operator.settings import OperatorSettings
from bookstore_operator.status import Observed, compute_status


def at(text: str) -> datetime.datetime:
    moment = parse_time(text)
    assert moment is not None
    return moment


def backup(
    name: str,
    phase: str = "Completed",
    completed: str | None = "2026-11-20T03:01:00Z",
    *,
    origin: str | None = "scheduled",
    store: str = "downtown",
    message: str = "",
    deleting: bool = False,
) -> dict[str, Any]:
    labels = {"bookstore.dev/bookstore": store}
    if origin is not None:
        labels |= {"bookstore.dev/backup-origin": origin}
        labels |= {"app.kubernetes.io/managed-by": "bookstore-operator"}
    meta: dict[str, Any] = {
        "name": name,
        "labels": labels,
        "creationTimestamp": "2026-11-01T00:00:00Z",
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-11-21T00:00:00Z"
    status: dict[str, Any] = {"phase": phase, "message": message}
    if completed is not None:
        status["completedAt"] = completed
    return {"metadata": meta, "spec": {"bookstore": store}, "status": status}


def day(n: int) -> str:
    return f"2026-11-{n:02d}T03:01:00Z"


def names(records: list[BackupRecord]) -> list[str]:
    return [record.name for record in records]


def test_a_bookstores_backups_are_its_own_newest_first_without_those_going() -> None:
    items = [
        backup("b1", completed=day(1)),
        backup("b3", completed=day(3)),
        backup("other", completed=day(4), store="uptown"),
        backup("gone", completed=day(5), deleting=True),
        backup("running", "Running", completed=None),
    ]
    # Unfinished ones sort by creation (here older than every finished one).
    assert names(backups_of(items, "downtown")) == ["b3", "b1", "running"]


def test_retention_keeps_the_newest_completed_and_never_deletes_a_users_backup() -> None:
    items = [backup(f"s{n}", completed=day(n)) for n in range(1, 6)]
    items += [backup("hand-made", completed=day(0), origin=None)]
    items += [backup("requested", completed=day(2).replace("03:01", "04:00"), origin="requested")]
    records = backups_of(items, "downtown")
    # Seven completed, keep 3: s5, s4, s3; of the older ones the hand-made one stays.
    assert names(retention_victims(records, 3)) == ["requested", "s2", "s1"]
    assert retention_victims(records, 7) == []


def test_the_newest_failed_backups_are_kept_for_diagnosis_older_ones_deleted() -> None:
    failed = [backup(f"f{n}", "Failed", completed=day(n)) for n in range(1, FAILED_KEPT + 3)]
    failed += [backup("users-failed", "Failed", completed=day(0), origin=None)]
    running = [backup("now", "Running", completed=None)]
    victims = retention_victims(backups_of(failed + running, "downtown"), 1)
    assert names(victims) == ["f2", "f1"]


def test_the_operators_backup_is_labelled_for_its_bookstore_and_not_owned_by_it() -> None:
    store = bookstore()
    manifest = build_backup(store, "downtown-202611210300", "scheduled")
    meta = manifest["metadata"]
    assert manifest["spec"] == {"bookstore": "downtown", "method": "logical"}
    assert meta["labels"]["bookstore.dev/bookstore"] == "downtown"
    assert meta["labels"]["bookstore.dev/backup-origin"] == "scheduled"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "bookstore-operator"
    assert "ownerReferences" not in meta
    assert BackupRecord.parse({**manifest, "status": {}}).operator_made


def test_a_schedule_seen_first_starts_now_and_plans_the_next_slot() -> None:
    now = at("2026-11-21T10:00:00Z")
    plan = plan_schedule("0 3 * * *", {}, now)
    assert plan is not None
    assert (plan.since, plan.handled, plan.due) == (now, None, None)
    assert plan.next == at("2026-11-22T03:00:00Z")
    assert plan_schedule("", {"scheduledSince": "2026-11-01T00:00:00Z"}, now) is None


def test_a_plan_after_downtime_is_due_once_for_the_latest_slot() -> None:
    previous = {
        "scheduledSince": "2026-11-01T00:00:00Z",
        "lastScheduleTime": "2026-11-17T03:00:00Z",
    }
    plan = plan_schedule("0 3 * * *", previous, at("2026-11-21T09:00:00Z"))
    assert plan is not None
    assert plan.due == at("2026-11-21T03:00:00Z")


def test_an_invalid_schedule_is_degraded_naming_the_field_and_nothing_is_planned() -> None:
    now = at("2026-11-21T10:00:00Z")
    plan = plan_schedule("0 3 * * 8", {}, now)
    assert plan is not None
    assert plan.schedule is None
    assert plan.error
    found = health(BackupsObserved("downtown", plan=plan), now)
    assert found is not None
    assert (found.ok, found.reason, found.degraded) == (False, "InvalidBackupSchedule", True)
    assert "spec.backup.schedule" in found.message
    assert status_fields(BackupsObserved("downtown", plan=plan)) == {}


def observed(
    items: list[dict[str, Any]], now: str = "2026-11-21T10:00:00Z", **previous: str
) -> BackupsObserved:
    plan = plan_schedule("0 3 * * *", previous, at(now))
    return BackupsObserved("downtown", records=tuple(backups_of(items, "downtown")), plan=plan)


def test_no_condition_while_no_backup_has_finished() -> None:
    seen = observed([backup("running", "Running", completed=None)])
    assert health(seen, at("2026-11-21T10:00:00Z")) is None


def test_the_newest_finished_backup_decides_the_condition() -> None:
    since = {"scheduledSince": "2026-11-20T00:00:00Z"}
    now = at("2026-11-21T10:00:00Z")
    ok = health(observed([backup("b20", completed=day(20))], **since), now)
    assert ok is not None
    assert (ok.ok, ok.reason, ok.degraded) == (True, "BackupCompleted", False)
    assert "b20" in ok.message
    items = [
        backup("b20", completed=day(20)),
        backup("f21", "Failed", completed=day(21), message="pg_dump: connection refused"),
    ]
    failed = health(observed(items, **since), now)
    assert failed is not None
    assert (failed.ok, failed.reason, failed.degraded) == (False, "BackupFailed", False)
    assert "f21" in failed.message
    assert "connection refused" in failed.message


def test_two_periods_without_success_is_backups_failing() -> None:
    since = {"scheduledSince": "2026-11-01T00:00:00Z"}
    items = [
        backup("b19", completed="2026-11-19T03:05:00Z"),
        backup("f20", "Failed", completed="2026-11-20T03:01:00Z", message="disk full"),
    ]
    before = health(observed(items, "2026-11-21T03:04:00Z", **since), at("2026-11-21T03:04:00Z"))
    assert before is not None
    assert before.reason == "BackupFailed"
    after = health(observed(items, "2026-11-21T03:05:00Z", **since), at("2026-11-21T03:05:00Z"))
    assert after is not None
    assert (after.ok, after.reason, after.degraded) == (False, "BackupsFailing", True)
    assert "b19" in after.message
    assert "disk full" in after.message
    # A success clears it.
    items.append(backup("b21", completed="2026-11-21T03:06:00Z"))
    cleared = health(observed(items, "2026-11-21T03:07:00Z", **since), at("2026-11-21T03:07:00Z"))
    assert cleared is not None
    assert cleared.reason == "BackupCompleted"


def test_a_schedule_that_never_succeeded_fails_two_periods_after_it_started() -> None:
    since = {"scheduledSince": "2026-11-19T10:00:00Z"}
    young = health(observed([], "2026-11-21T09:59:00Z", **since), at("2026-11-21T09:59:00Z"))
    assert young is None
    old = health(observed([], "2026-11-21T10:00:00Z", **since), at("2026-11-21T10:00:00Z"))
    assert old is not None
    assert old.reason == "BackupsFailing"


def test_status_fields_name_the_backups_and_the_next_slot() -> None:
    items = [
        backup("downtown-202611200300", completed="2026-11-20T03:02:00Z"),
        backup("downtown-202611210300", "Failed", completed="2026-11-21T03:01:00Z"),
    ]
    seen = observed(
        items,
        scheduledSince="2026-11-01T00:00:00Z",
        lastScheduleTime="2026-11-21T03:00:00Z",
    )
    seen = BackupsObserved(seen.store, seen.records, seen.plan, requested="downtown-requested-x")
    assert status_fields(seen) == {
        "scheduledSince": "2026-11-01T00:00:00Z",
        "lastScheduleTime": "2026-11-21T03:00:00Z",
        "nextScheduledBackup": {"name": "downtown-202611220300", "time": "2026-11-22T03:00:00Z"},
        "lastSuccessfulBackup": {"name": "downtown-202611200300", "time": "2026-11-20T03:02:00Z"},
        "lastFailedBackup": {"name": "downtown-202611210300", "time": "2026-11-21T03:01:00Z"},
        "lastRequestedBackup": "downtown-requested-x",
    }


def test_each_failed_backup_is_announced_once() -> None:
    items = [
        backup("f21", "Failed", completed=day(21)),
        backup("f20", "Failed", completed=day(20)),
    ]
    records = backups_of(items, "downtown")
    assert names(new_failures(records, {})) == ["f21"]
    assert names(new_failures(records, {"lastFailedBackup": {"name": "f20", "time": day(20)}})) == [
        "f21"
    ]
    assert new_failures(records, {"lastFailedBackup": {"name": "f21", "time": day(21)}}) == []


def bookstore(spec: dict[str, Any] | None = None) -> Bookstore:
    body = {"metadata": {"name": "downtown", "namespace": "shop", "uid": "u"}, "spec": spec or {}}
    return Bookstore.parse(body, OperatorSettings())


def body_with(
    schedule: str = "0 3 * * *", annotation: str | None = None, **backup_status: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "downtown", "namespace": "shop"}
    if annotation is not None:
        meta["annotations"] = {"bookstore.dev/backup-now": annotation}
    return {
        "metadata": meta,
        "spec": {"backup": {"schedule": schedule}},
        "status": {"backup": backup_status} if backup_status else {},
    }


SCHEDULED = {
    "scheduledSince": "2026-11-01T00:00:00Z",
    "nextScheduledBackup": {"name": "downtown-202611220300", "time": "2026-11-22T03:00:00Z"},
    "lastSuccessfulBackup": {"name": "downtown-202611210300", "time": "2026-11-21T03:01:00Z"},
}


@pytest.mark.parametrize(
    ("body", "now", "wake"),
    [
        (body_with(**SCHEDULED), "2026-11-21T10:00:00Z", False),
        (body_with(**SCHEDULED), "2026-11-22T03:00:00Z", True),  # the slot came
        (body_with(), "2026-11-21T10:00:00Z", True),  # a schedule not yet followed
        (body_with("", **SCHEDULED), "2026-11-21T10:00:00Z", True),  # schedule removed
        (body_with(""), "2026-11-21T10:00:00Z", False),
        (body_with("0 3 * * 8"), "2026-11-21T10:00:00Z", False),  # invalid: nothing to wake for
        (body_with("", "1763694000"), "2026-11-21T10:00:00Z", True),
        (
            body_with(
                "",
                "1763694000",
                lastRequestedBackup=requested_backup_name("downtown", "1763694000"),
            ),
            "2026-11-21T10:00:00Z",
            False,
        ),
        # Two periods after the last success, before the status says BackupsFailing.
        (
            body_with(
                **{
                    **SCHEDULED,
                    "nextScheduledBackup": {"name": "n", "time": "2026-11-24T03:00:00Z"},
                }
            ),
            "2026-11-23T03:01:00Z",
            True,
        ),
    ],
)
def test_a_bookstore_wakes_for_backups_only_when_something_is_due(
    body: dict[str, Any], now: str, wake: bool
) -> None:
    assert wake_needed(body, at(now)) is wake


def test_a_paused_bookstore_does_not_wake_for_backups() -> None:
    body = body_with(annotation="now")
    body["spec"]["paused"] = True
    assert wake_needed(body, at("2026-11-21T10:00:00Z")) is False


def workload(replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    }


def test_failing_backups_make_a_serving_bookstore_degraded_but_still_ready() -> None:
    store = bookstore({"backup": {"schedule": "0 3 * * *"}})
    now = "2026-11-21T10:00:00Z"
    seen = observed([], now, scheduledSince="2026-11-01T00:00:00Z")
    serving = Observed(catalog=workload(2), orders=workload(2), database=workload(1))
    status = compute_status(store, Observed(**{**serving.__dict__, "backups": seen}), {}, now)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Degraded"
    assert conditions["Ready"]["status"] == "True"
    assert conditions["LastBackupSucceeded"]["status"] == "False"
    assert conditions["LastBackupSucceeded"]["reason"] == "BackupsFailing"
    assert status["backup"]["scheduledSince"] == "2026-11-01T00:00:00Z"
    # Without backups to report, neither the condition nor status.backup appears.
    plain = compute_status(bookstore(), serving, {}, now)
    assert plain["phase"] == "Ready"
    assert "backup" not in plain
    assert "LastBackupSucceeded" not in {c["type"] for c in plain["conditions"]}

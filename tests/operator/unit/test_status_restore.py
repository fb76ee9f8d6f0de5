"""A new Bookstore's restore (spec.database.restoreFrom) as status reports it, and the pure
helpers of the restore and of the final backup (no API)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from bookstore_operator.final_backups import (
    build_final_backup,
    final_backup_name,
    poll_seconds,
    wants_final_backup,
)
from bookstore_operator.restores import layout_problem, recorded_restore
from bookstore_operator.rollout import Restore, Rollout
from bookstore_operator.status import Observed, compute_status, restored_from, rollout_problems

from tests.operator.unit.test_status import NOW, READY, STATUS_SCHEMA, store

VERSION = "0.1.0"
JOB = "uptown-restore-nightly"
RECORD = {"backup": "nightly", "bookstore": "downtown", "completedAt": "2025-01-02T03:04:05Z"}


def restoring(state: str, **fields: Any) -> Observed:
    restore = Restore("nightly", state, job=JOB, source="downtown", **fields)  # type: ignore[arg-type]
    rollout = Rollout("", VERSION, "Restoring", restore=restore)
    return dataclasses.replace(
        READY, catalog=None, orders=None, rollout=rollout, problems=tuple(rollout_problems(rollout))
    )


def status_for(seen: Observed, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = {"version": VERSION, "database": {"restoreFrom": {"backup": "nightly"}}}
    status = compute_status(store(spec), seen, previous or {}, NOW)
    jsonschema.validate(status, STATUS_SCHEMA)
    return status


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return dict(next(c for c in status["conditions"] if c["type"] == kind))


@pytest.mark.parametrize(
    ("state", "reason", "says"),
    [
        ("WaitingForBackup", "WaitingForBackup", "Waiting for BookstoreBackup nightly"),
        ("WaitingForDatabase", "Restoring", "Waiting for the database to be ready"),
        ("Running", "Restoring", f"with Job/{JOB}"),
    ],
)
def test_a_restore_under_way_is_progressing_and_not_ready(
    state: str, reason: str, says: str
) -> None:
    status = status_for(restoring(state, detail="phase Running"))
    assert status["phase"] == "Progressing"
    progressing, ready = condition(status, "Progressing"), condition(status, "Ready")
    assert (progressing["status"], progressing["reason"]) == ("True", reason)
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert says in progressing["message"]
    assert "no service starts" in progressing["message"]
    assert "restoredFrom" not in (status.get("database") or {})
    assert status["version"] == ""


@pytest.mark.parametrize(
    ("state", "reason", "phase", "says"),
    [
        ("SourceMissing", "RestoreSourceMissing", "Failed", "it does not exist"),
        ("SourceFailed", "RestoreSourceFailed", "Failed", "nothing to restore"),
        ("Refused", "RestoreRefused", "Failed", "Nothing was changed"),
        ("Failed", "RestoreFailed", "Degraded", f"delete Job/{JOB}"),
    ],
)
def test_a_restore_that_cannot_go_on_names_the_backup_and_what_to_do(
    state: str, reason: str, phase: str, says: str
) -> None:
    status = status_for(restoring(state, exit_code=1, detail="it does not exist"))
    assert status["phase"] == phase
    ready = condition(status, "Ready")
    assert ready["reason"] == reason
    assert "BookstoreBackup nightly (spec.database.restoreFrom.backup)" in ready["message"]
    assert says in ready["message"]


def test_a_failed_restore_gives_its_exit_code_and_a_bounded_log() -> None:
    status = status_for(restoring("Failed", exit_code=1, detail="x" * 10000))
    message = condition(status, "Ready")["message"]
    assert "with exit code 1" in message
    assert len(message) < 3000


def test_a_succeeded_restore_is_recorded_and_the_record_stays() -> None:
    seen = restoring("Succeeded", completed_at=RECORD["completedAt"])
    status = status_for(seen)
    assert status["database"]["restoredFrom"] == RECORD
    later = dataclasses.replace(READY, rollout=Rollout(VERSION, VERSION, "Serving"))
    again = status_for(later, status)
    assert again["database"]["restoredFrom"] == RECORD
    assert recorded_restore(again) == RECORD


def test_restored_from_is_absent_without_a_restore() -> None:
    assert restored_from(None, {}) == {}
    assert restored_from(Rollout("", VERSION, "Migrating"), {"database": {}}) == {}


@pytest.mark.parametrize(
    ("files", "expected", "fits"),
    [
        (["orders", "catalog"], ("orders", "catalog"), True),
        (["shared"], ("shared",), True),
        ([], ("orders", "catalog"), True),  # unreported: the restore script checks
        (["shared"], ("orders", "catalog"), False),
        (["orders", "catalog"], ("shared",), False),
    ],
)
def test_a_backup_of_another_database_layout_does_not_fit(
    files: list[str], expected: tuple[str, ...], fits: bool
) -> None:
    status = {"files": [{"database": name} for name in files]}
    problem = layout_problem(status, expected, "nightly")
    assert (problem == "") is fits
    if not fits:
        assert "another database layout" in problem


def test_the_final_backup_is_labelled_final_and_not_owned() -> None:
    downtown = store({"backup": {"finalBackup": True}})
    backup = build_final_backup(downtown)
    meta = backup["metadata"]
    assert meta["name"] == final_backup_name(downtown.name, downtown.uid)
    assert meta["name"] == f"{downtown.name}-final-{downtown.uid[:8]}"
    assert meta["labels"]["bookstore.dev/backup-origin"] == "final"
    assert meta["labels"]["bookstore.dev/bookstore"] == downtown.name
    assert "ownerReferences" not in meta
    assert backup["spec"] == {"bookstore": downtown.name, "method": "logical"}


def test_final_backup_wanted_only_when_set_and_polled_within_its_bound() -> None:
    assert wants_final_backup({"backup": {"finalBackup": True}})
    assert not wants_final_backup({"backup": {}})
    assert not wants_final_backup({})
    assert poll_seconds(900) == 10
    assert poll_seconds(2) == 0.5

"""A change of version as observed: the restore, the migration Jobs, the stage, and what to
tell the user.

Pure, like status: `upgrades` reads the Jobs and Deployments and fills these in;
`status.compute_status` turns them into conditions and fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

Stage = Literal[
    "Serving",  # the spec's version serves (or nothing to upgrade)
    "Restoring",  # a new Bookstore's restore (spec.database.restoreFrom) is not done yet
    "WaitingForDatabase",  # a new version waits for the database before its migrations
    "Migrating",  # migration Jobs are running
    "MigrationFailed",  # a migration Job failed: the serving version stays
    "DowngradeRefused",  # a migration Job refused to go below the applied schema
    "RollingOut",  # migrations done: the Deployments run the new version
    "RolloutStuck",  # new pods not ready within spec.upgrade.progressDeadlineSeconds
    "RolledBack",  # ...and the Deployments were returned to the serving version
]
HOLDING: frozenset[Stage] = frozenset(
    {"Restoring", "WaitingForDatabase", "Migrating", "MigrationFailed", "DowngradeRefused"}
)
# `bookstore-<service> migrate` exits 3 when the schema is newer than its code: a downgrade.
DOWNGRADE_EXIT_CODE = 3
# The most of a migration's message and log tail that status and events carry.
DETAIL_LIMIT = 2000


@dataclasses.dataclass(frozen=True)
class Migration:
    """One migration Job as observed: its state and what its pod reported."""

    service: str
    job: str
    state: Literal["Running", "Succeeded", "Failed"]
    exit_code: int | None = None
    outcome: str = ""  # migrated | downgrade-refused | failed (the pod's termination message)
    revision: str | None = None  # the database's schema revision
    head: str | None = None  # the code's schema head
    detail: str = ""  # the pod's message, the last lines of its log, or the Job's reason

    @property
    def refused(self) -> bool:
        return self.outcome == "downgrade-refused" or self.exit_code == DOWNGRADE_EXIT_CODE


RestoreState = Literal[
    "Restored",  # status.database.restoredFrom records it: never again
    "WaitingForBackup",  # the BookstoreBackup is Pending or Running
    "WaitingForDatabase",  # the restore Job waits for the database to be ready
    "Running",  # the restore Job is created (or about to be) and has not finished
    "Succeeded",  # the restore Job succeeded (recorded in status by this reconcile)
    "Refused",  # exit 3: a database already holds data, or the dumps do not fit
    "Failed",  # the restore Job failed otherwise
    "SourceMissing",  # no such BookstoreBackup (or its volume is gone)
    "SourceFailed",  # the BookstoreBackup failed: there is nothing to restore
]
# Where a restore stands -> (reason, phase) of the problem the user must act on.
RESTORE_PROBLEMS: dict[str, tuple[str, Literal["Failed", "Degraded"]]] = {
    "SourceMissing": ("RestoreSourceMissing", "Failed"),
    "SourceFailed": ("RestoreSourceFailed", "Failed"),
    "Refused": ("RestoreRefused", "Failed"),
    "Failed": ("RestoreFailed", "Degraded"),
}


@dataclasses.dataclass(frozen=True)
class Restore:
    """A new Bookstore's restore from a BookstoreBackup (spec.database.restoreFrom), observed."""

    backup: str
    state: RestoreState
    job: str = ""  # the restore Job's name
    source: str = ""  # the Bookstore the backup was taken of (its spec.bookstore)
    exit_code: int | None = None
    detail: str = ""  # the pod's message or log tail, or why the source cannot be used
    completed_at: str = ""  # when the restore finished (Restored, Succeeded)

    @property
    def done(self) -> bool:
        """The databases hold the backup: migrations and Deployments may go on."""
        return self.state in ("Restored", "Succeeded")


@dataclasses.dataclass(frozen=True)
class Rollout:
    """Where a change of version stands (upgrades.observe_rollout decides the stage)."""

    serving: str  # status.version: serves everywhere ("" before the first rollout)
    target: str  # the version the spec asks for
    stage: Stage = "Serving"
    migrations: Sequence[Migration] = ()
    rolled_back_from: str = ""
    deadline_seconds: int = 600
    stuck: Sequence[str] = ()  # the services whose new pods missed the deadline
    restore: Restore | None = None  # None: no spec.database.restoreFrom, or not looked at

    @property
    def holding(self) -> bool:
        """The Deployments (and their autoscalers) are not written at all."""
        return self.stage in HOLDING


def rollout_problem(rollout: Rollout) -> tuple[str, str, Literal["Failed", "Degraded"]] | None:
    """What a version change the user must act on reports (reason, message, phase): a
    refused or failed restore or migration, a stuck rollout (rolled back or not)."""
    restore = rollout.restore
    if rollout.stage == "Restoring" and restore is not None and restore.state in RESTORE_PROBLEMS:
        reason, phase = RESTORE_PROBLEMS[restore.state]
        return reason, restore_problem_message(restore), phase
    if rollout.stage == "DowngradeRefused":
        refused = [m for m in rollout.migrations if m.state == "Failed" and m.refused]
        refused = refused or [m for m in rollout.migrations if m.state == "Failed"]
        return "DowngradeRefused", _downgrade_message(rollout, refused), "Failed"
    if rollout.stage == "MigrationFailed":
        failed = [m for m in rollout.migrations if m.state == "Failed"]
        return "MigrationFailed", _failure_message(rollout, failed), "Degraded"
    if rollout.stage in ("RolloutStuck", "RolledBack"):
        return "RolloutStuck", _stuck_message(rollout), "Degraded"
    return None


def _downgrade_message(rollout: Rollout, refused: Sequence[Migration]) -> str:
    what = "; ".join(
        f"{m.service}: the database's schema is at revision {m.revision or 'unknown'}, newer"
        f" than version {rollout.target}'s head {m.head or 'unknown'}"
        f"{f' ({_bounded(m.detail)})' if m.detail else ''}"
        for m in refused
    )
    back = (
        f"set spec.version back to {rollout.serving}" if rollout.serving else "use a newer version"
    )
    return (
        f"Version {rollout.target} would run below the schema already applied, so it was refused"
        f" before anything changed: {what}. Nothing was touched"
        f"{f' and {rollout.serving} keeps serving' if rollout.serving else ''}: {back}"
    )


def _failure_message(rollout: Rollout, failed: Sequence[Migration]) -> str:
    what = "; ".join(
        f"Job/{m.job} ({m.service}) failed"
        f"{f' with exit code {m.exit_code}' if m.exit_code is not None else ''}:"
        f" {_bounded(m.detail) or 'no output'}"
        for m in failed
    )
    serving = (
        f"version {rollout.serving} keeps serving; set spec.version back to {rollout.serving}, or"
        if rollout.serving
        else "nothing serves yet;"
    )
    jobs = " ".join(f"Job/{m.job}" for m in failed)
    return (
        f"The schema migration to version {rollout.target} failed: {what}. The Deployments were"
        f" not touched: {serving} fix the image and delete {jobs} to run the migration again"
    )


def _stuck_message(rollout: Rollout) -> str:
    # Services are named while stuck only: after the rollback the message must stay the same.
    if rollout.stage == "RolledBack":
        version, services = rollout.rolled_back_from, ""
    else:
        version, services = rollout.target, f" ({', '.join(rollout.stuck)})"
    late = (
        f"New pods of version {version}{services} were not ready within"
        f" {rollout.deadline_seconds}s (spec.upgrade.progressDeadlineSeconds)"
    )
    if rollout.stage == "RolledBack":
        return (
            f"{late}: the Deployments were rolled back to version {rollout.serving}"
            " (spec.upgrade.autoRollback), which serves. Change spec.version to try again"
        )
    why = (
        "spec.upgrade.autoRollback is false"
        if rollout.serving
        else "there is no earlier version to roll back to"
    )
    return f"{late}; {why}, so they stay at version {rollout.target}: check the new pods"


def _bounded(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_LIMIT else f"...{text[-DETAIL_LIMIT:]}"


def restore_problem_message(restore: Restore) -> str:
    """Why a restore cannot go on, and what the user can do."""
    what = f"BookstoreBackup {restore.backup} (spec.database.restoreFrom.backup)"
    recreate = (
        "delete this Bookstore (with spec.database.deletionPolicy Delete, so that its data volume"
        " goes too) and create it again"
    )
    if restore.state == "SourceMissing":
        return (
            f"{what} cannot be restored: {restore.detail or 'it does not exist'}. The services"
            f" are not started; create it in this namespace, or {recreate} naming another backup"
        )
    if restore.state == "SourceFailed":
        return (
            f"{what} failed, so there is nothing to restore"
            f"{f' ({_bounded(restore.detail)})' if restore.detail else ''}. The services are not"
            f" started: {recreate} naming a Completed backup"
        )
    if restore.state == "Refused":
        return (
            f"The restore of {what} was refused: {_bounded(restore.detail) or 'no message'}."
            " Nothing was changed and the services were not started: a restore only fills empty"
            f" databases; {recreate} from empty databases"
        )
    code = f" with exit code {restore.exit_code}" if restore.exit_code is not None else ""
    return (
        f"The restore of {what} failed: Job/{restore.job} failed{code}:"
        f" {_bounded(restore.detail) or 'no output'}. The services were not started: fix the"
        f" cause and delete Job/{restore.job} to run the restore again (a database it already"
        f" restored makes the retry refused: then {recreate})"
    )


def progress_reason(rollout: Rollout) -> str:
    """The reason Progressing (True) and Ready (False) give while the Deployments are held."""
    if rollout.stage == "Restoring" and rollout.restore is not None:
        return "WaitingForBackup" if rollout.restore.state == "WaitingForBackup" else "Restoring"
    return "Migrating"


def migrating_message(rollout: Rollout) -> str:
    """What Progressing and Ready say while the Deployments wait for the restore or the
    migrations."""
    restore = rollout.restore
    if rollout.stage == "Restoring" and restore is not None:
        return _restoring_message(restore)
    if rollout.stage == "WaitingForDatabase":
        return (
            f"Version {rollout.target}: waiting for the database to be ready before migrating"
            " its schema; the Deployments are not changed until the migrations succeed"
        )
    jobs = ", ".join(f"Job/{m.job} {m.state.lower()}" for m in rollout.migrations)
    return (
        f"Version {rollout.target}: migrating the database schema ({jobs or 'starting'}); the"
        " Deployments are changed once every migration has succeeded"
    )


def _restoring_message(restore: Restore) -> str:
    held = "; no migration runs and no service starts until it has succeeded"
    if restore.state == "WaitingForBackup":
        return (
            f"Waiting for BookstoreBackup {restore.backup} to complete"
            f" ({restore.detail or 'not finished'}) before restoring it{held}"
        )
    if restore.state == "WaitingForDatabase":
        return f"Waiting for the database to be ready before restoring {restore.backup}{held}"
    return (
        f"Restoring BookstoreBackup {restore.backup} (of Bookstore {restore.source or 'unknown'})"
        f" with Job/{restore.job}{held}"
    )

"""A BookstoreBackup as the controller reads it, and its status computed from what was observed.

Pure (no I/O): `backup_runs` reads the API and calls these. Completed and Failed are final:
once written, the status is the backup's record and nothing computes it again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal

from bookstore_operator.builders.backups import BACKUP_KIND
from bookstore_operator.models import API_GROUP, API_VERSION

__all__ = ["BACKUP_KIND"]

BACKUP_API_VERSION = f"{API_GROUP}/{API_VERSION}"
BACKUP_PLURAL = "bookstorebackups"
# Every BookstoreBackup carries its Bookstore's name here, so a Bookstore's backups are listed
# by label (the controller adds it when a user's object lacks it).
BOOKSTORE_LABEL = f"{API_GROUP}/bookstore"
Phase = Literal["Pending", "Running", "Completed", "Failed"]
FINAL_PHASES: frozenset[str] = frozenset({"Completed", "Failed"})
# The longest status.message (a termination message is at most 4 KiB; a log tail is bounded).
MESSAGE_LIMIT = 2048
SIZE_UNITS = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


@dataclasses.dataclass(frozen=True)
class BackupRun:
    """One BookstoreBackup: identity, what it backs up, and its status as last written."""

    name: str
    namespace: str
    uid: str
    generation: int
    bookstore: str
    labels: Mapping[str, str]
    status: Mapping[str, Any]
    deleting: bool

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> BackupRun:
        meta = body.get("metadata") or {}
        return cls(
            name=str(meta["name"]),
            namespace=str(meta["namespace"]),
            uid=str(meta["uid"]),
            generation=int(meta.get("generation", 1)),
            bookstore=str((body.get("spec") or {}).get("bookstore", "")),
            labels=dict(meta.get("labels") or {}),
            status=dict(body.get("status") or {}),
            deleting=bool(meta.get("deletionTimestamp")),
        )

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "")

    @property
    def finished(self) -> bool:
        """Completed or Failed: the status is the record; the backup never runs again."""
        return self.phase in FINAL_PHASES

    @property
    def may_hold_files(self) -> bool:
        """Whether its Job may have written files (it completed, or started at least)."""
        return self.phase == "Completed" or bool(self.status.get("startedAt"))

    def label_patch(self) -> dict[str, Any] | None:
        """The merge patch that adds the Bookstore label, or None when it is there."""
        if not self.bookstore or self.labels.get(BOOKSTORE_LABEL) == self.bookstore:
            return None
        return {"metadata": {"labels": {BOOKSTORE_LABEL: self.bookstore}}}

    def described(self) -> str:
        return f"BookstoreBackup {self.namespace}/{self.name}"


def human_size(size_bytes: int) -> str:
    """`19.7Ki`: binary units, one decimal (dropped when it is .0), bytes below 1Ki."""
    if size_bytes < 1024:
        return f"{size_bytes}B"
    value = float(size_bytes)
    for unit in SIZE_UNITS:
        value /= 1024
        if value < 1024 or unit == SIZE_UNITS[-1]:
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text}{unit}"
    raise AssertionError("unreachable: the last unit returns")


def bounded(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message cut to `limit` characters (its end kept: the cause is usually last)."""
    message = message.strip()
    return message if len(message) <= limit else "…" + message[-(limit - 1) :]


def parse_summary(message: str, uid: str) -> dict[str, Any] | None:
    """The backup script's JSON summary for this backup (its uid), else None."""
    try:
        summary = json.loads(message)
    except ValueError:
        return None
    if not isinstance(summary, dict) or summary.get("uid") != uid:
        return None
    if not isinstance(summary.get("files"), list):
        return None
    return summary


def pending_status(run: BackupRun, message: str) -> dict[str, Any]:
    """Waiting to start, saying why."""
    return {"phase": "Pending", "observedGeneration": run.generation, "message": message}


def running_status(run: BackupRun, started_at: str) -> dict[str, Any]:
    """Its Job runs (started when the Job was created)."""
    return {"phase": "Running", "observedGeneration": run.generation, "startedAt": started_at}


def completed_status(run: BackupRun, summary: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a completed backup, from the script's summary."""
    files: list[dict[str, Any]] = []
    revisions: dict[str, str] = {}
    for item in summary.get("files") or []:
        file_revisions = {str(k): str(v) for k, v in (item.get("revisions") or {}).items()}
        revisions.update(file_revisions)
        entry: dict[str, Any] = {
            "database": str(item.get("database", "")),
            "file": str(item.get("file", "")),
            "sizeBytes": int(item.get("sizeBytes", 0)),
            "revisions": file_revisions,
        }
        if item.get("serverVersion"):
            entry["serverVersion"] = str(item["serverVersion"])
        files.append(entry)
    size = int(summary.get("sizeBytes", sum(entry["sizeBytes"] for entry in files)))
    status: dict[str, Any] = {
        "phase": "Completed",
        "observedGeneration": run.generation,
        "startedAt": summary.get("startedAt") or run.status.get("startedAt"),
        "completedAt": summary.get("completedAt"),
        "sizeBytes": size,
        "size": human_size(size),
        "files": files,
        "revisions": revisions,
    }
    return {key: value for key, value in status.items() if value is not None}


def failed_status(
    run: BackupRun, message: str, completed_at: str, started_at: str | None = None
) -> dict[str, Any]:
    """The record of a backup that could not be taken."""
    status: dict[str, Any] = {
        "phase": "Failed",
        "observedGeneration": run.generation,
        "completedAt": completed_at,
        "message": bounded(message),
    }
    started = started_at or run.status.get("startedAt")
    if started:
        status["startedAt"] = started
    return status


def failure_message(exit_code: int | None, detail: str) -> str:
    """`The backup Job failed (exit code 1): <termination message / log tail>`."""
    code = f" (exit code {exit_code})" if exit_code is not None else ""
    return f"The backup Job failed{code}: {detail or 'no message'}"


def completion_note(status: Mapping[str, Any]) -> str:
    """The Normal event's message for a completed backup."""
    files = status.get("files") or []
    databases = ", ".join(str(item.get("database")) for item in files)
    return f"Backup completed: {len(files)} file(s) ({databases}), {status.get('size', '?')}"

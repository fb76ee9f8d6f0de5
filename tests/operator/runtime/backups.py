"""Helpers of the BookstoreBackup runtime tests: create backups, play the Job controller."""

from __future__ import annotations

import json
from typing import Any

from tests.operator.backup_samples import SUMMARY
from tests.operator.runtime.conftest import NAMESPACE, api, eventually, run_job_pod
from tests.operator.runtime.emulator import Emulator

BACKUPS = f"/apis/bookstore.dev/v1alpha1/namespaces/{NAMESPACE}/bookstorebackups"
BACKUP_PLURAL = "bookstore.dev/v1alpha1/bookstorebackups"


async def create_backup(
    emulator: Emulator, name: str, bookstore: str, *, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """`kubectl create` a BookstoreBackup."""
    body = {
        "apiVersion": "bookstore.dev/v1alpha1",
        "kind": "BookstoreBackup",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels or {}},
        "spec": {"bookstore": bookstore, "method": "logical"},
    }
    return await api(emulator, "POST", BACKUPS, body)


def backup(emulator: Emulator, name: str) -> dict[str, Any] | None:
    """The BookstoreBackup as the API server holds it (None once gone)."""
    return emulator.live(BACKUP_PLURAL, NAMESPACE, name)


def phase(emulator: Emulator, name: str) -> str:
    return str(((backup(emulator, name) or {}).get("status") or {}).get("phase", ""))


async def wait_phase(emulator: Emulator, name: str, wanted: str) -> dict[str, Any]:
    """Wait until the backup reports `wanted`; returns the backup."""
    found: dict[str, Any] = await eventually(
        lambda: backup(emulator, name) if phase(emulator, name) == wanted else None,
        what=f"BookstoreBackup {name} {wanted}",
        show=lambda: (backup(emulator, name) or {}).get("status"),
    )
    return found


def job(emulator: Emulator, name: str) -> dict[str, Any] | None:
    return emulator.live("batch/v1/jobs", NAMESPACE, name)


async def wait_job(emulator: Emulator, name: str, *, within: float = 30.0) -> dict[str, Any]:
    found: dict[str, Any] = await eventually(
        lambda: job(emulator, name), within=within, what=f"Job {name}"
    )
    return found


def summary_for(backup_body: dict[str, Any]) -> str:
    """The termination message the backup script writes for this backup."""
    meta = backup_body["metadata"]
    return json.dumps({**SUMMARY, "backup": meta["name"], "uid": meta["uid"]})


async def finish_pod(
    emulator: Emulator,
    job_body: dict[str, Any],
    *,
    exit_code: int = 0,
    message: str = "",
    log: str = "",
) -> dict[str, Any]:
    """Play the Job controller and the kubelet: the Job's one container ran and exited with
    `exit_code`, its termination message and log; then the Job is Complete or Failed."""
    return await run_job_pod(emulator, job_body, exit_code=exit_code, message=message, log=log)


def events_of(emulator: Emulator, name: str, reason: str) -> list[dict[str, Any]]:
    """The events about BookstoreBackup `name` with this reason."""
    return [
        event
        for event in emulator.live_items("v1/events")
        if event.get("reason") == reason
        and event.get("involvedObject", {}).get("kind") == "BookstoreBackup"
        and event.get("involvedObject", {}).get("name") == name
    ]

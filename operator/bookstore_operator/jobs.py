"""Where a one-off Job stands: running, or finished with its pod's exit code and message.

Read from the API, never waited for: the Job's conditions, then its most recent pod's
terminated state (the termination message) and, for a failure, a bounded tail of its log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from bookstore_operator import builders, kube
from bookstore_operator.errors import ChildWriteError

# The bounded tail of a failed pod's log that reaches status and events.
LOG_TAIL_LINES = 20
LOG_LIMIT_BYTES = 4096
JobState = Literal["Running", "Succeeded", "Failed"]


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """A Job's state; once finished, its pod's exit code, termination message and detail."""

    state: JobState
    exit_code: int | None = None
    message: str = ""  # the container's termination message, as written
    detail: str = ""  # why it failed: the message, the log's tail, or the Job's condition
    finished_at: str = ""  # when the Job controller marked it finished

    @property
    def finished(self) -> bool:
        return self.state != "Running"


async def create_job(client: kube.Kube, manifest: Mapping[str, Any]) -> bool:
    """Create a Job once; False when it exists already (its name derives from its inputs)."""
    try:
        await client.create(manifest)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise ChildWriteError(f"Job/{manifest['metadata']['name']}", exc) from exc
    return True


def is_finished(job: Mapping[str, Any]) -> bool:
    """The Job controller marked the Job Complete or Failed."""
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


async def observe_job(
    client: kube.Kube,
    namespace: str,
    job: Mapping[str, Any],
    container: str,
    describe: Callable[[str], str] = str,
) -> JobOutcome:
    """The Job's outcome: its conditions, then its last pod's exit code and message.

    `describe` turns the termination message into the start of `detail` (e.g. the words of
    a JSON report); a failure's bounded log tail follows it.
    """
    conditions = {
        c.get("type"): c
        for c in (job.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }
    if "Complete" in conditions:
        state: JobState = "Succeeded"
    elif "Failed" in conditions:
        state = "Failed"
    else:
        return JobOutcome("Running")
    finished = conditions.get("Complete") or conditions["Failed"]
    pod = await last_pod(client, namespace, job["metadata"]["name"])
    terminated = terminated_state(pod, container)
    message = str(terminated.get("message") or "").strip()
    detail = describe(message)
    if state == "Failed" and pod is not None:
        tail = await log_tail(client, namespace, pod["metadata"]["name"], container)
        if tail and tail not in detail:
            detail = f"{detail}; last log lines: {tail}" if detail else f"last log lines: {tail}"
    if state == "Failed" and not detail:
        detail = f"{finished.get('reason', 'Failed')}: {finished.get('message', '')}".strip(": ")
    exit_code = terminated.get("exitCode")
    return JobOutcome(
        state,
        exit_code=int(exit_code) if exit_code is not None else None,
        message=message,
        detail=detail,
        finished_at=str(finished.get("lastTransitionTime") or ""),
    )


async def last_pod(client: kube.Kube, namespace: str, job: str) -> dict[str, Any] | None:
    """The Job's most recent pod (the Job controller labels its pods with the Job's name)."""
    path = kube.resource_path("v1", "Pod", namespace)
    found = await client.request(
        "GET", path, query={"labelSelector": f"{builders.JOB_NAME_LABEL}={job}"}
    )
    pods: list[dict[str, Any]] = list((found or {}).get("items") or [])
    pods.sort(key=lambda pod: str(pod["metadata"].get("creationTimestamp", "")))
    return pods[-1] if pods else None


def terminated_state(pod: Mapping[str, Any] | None, container: str) -> dict[str, Any]:
    """The container's terminated state (or last terminated state), else {}."""
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != container:
            continue
        for key in ("state", "lastState"):
            terminated = (status.get(key) or {}).get("terminated")
            if terminated:
                return dict(terminated)
    return {}


async def log_tail(client: kube.Kube, namespace: str, pod: str, container: str) -> str:
    """The last lines of the container's log, bounded; "" when it cannot be read."""
    path = kube.resource_path("v1", "Pod", namespace, pod, "log")
    query = {
        "container": container,
        "tailLines": str(LOG_TAIL_LINES),
        "limitBytes": str(LOG_LIMIT_BYTES),
    }
    try:
        log = await client.request("GET", path, query=query)
    except ApiException:
        return ""  # the pod or its log is gone: the termination message still says why
    return " | ".join(line for line in str(log or "").splitlines() if line.strip())

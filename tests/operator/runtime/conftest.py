"""Harness: the emulated API server on a real port, and the real kopf runtime in this loop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator
from typing import Any, TypeVar

import kmock
import kopf
import pytest

# kopf fixes a timer's interval when the handler is registered, i.e. at import.
RESYNC_SECONDS = 1.0
os.environ["BOOKSTORE_RESYNC_SECONDS"] = str(RESYNC_SECONDS)

from bookstore_operator import backup_handlers, handlers  # noqa: E402, F401
from bookstore_operator.kube import Kube  # noqa: E402
from bookstore_operator.settings import OperatorSettings  # noqa: E402

from tests.operator.runtime import rbac  # noqa: E402
from tests.operator.runtime.emulator import Emulator  # noqa: E402

NAMESPACE = "shop"
BOOKSTORES = f"/apis/bookstore.dev/v1alpha1/namespaces/{NAMESPACE}/bookstores"
CLAIMS = f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
SCHEMA_HEAD = "0005"
TIMEOUT = 30.0


@kopf.on.login()
def login_to_emulator(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """Point kopf at the emulator of the running test (the URL travels in the memo)."""
    return kopf.ConnectionInfo(server=memo.server)


async def eventually(
    check: Callable[[], Any],
    *,
    within: float = TIMEOUT,
    what: str = "condition",
    show: Callable[[], Any] | None = None,
) -> Any:
    """Poll until `check()` returns something truthy; after `within` seconds, fail showing it."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            seen = show() if show is not None else value
            pytest.fail(f"Timed out after {within}s waiting for {what}; last seen: {seen!r}")
        await asyncio.sleep(0.05)


class ForeignTasks(Collection["asyncio.Task[Any]"]):
    """Every task whose coroutine is not kopf's: the ones kopf must not cancel when it stops.

    kopf cancels all tasks created after its start, which here includes the emulator's
    connection handlers and pytest's own tasks.
    """

    def __contains__(self, task: object) -> bool:
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        code = getattr(coro, "cr_code", None)
        return code is None or f"{os.sep}kopf{os.sep}" not in code.co_filename

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(())

    def __len__(self) -> int:
        return 0


class Operator:
    """The real kopf runtime with all our handlers against the emulator; stop and restart."""

    def __init__(self, emulator: Emulator, *, clock: Callable[[], Any] | None = None) -> None:
        self.emulator = emulator
        self.clock = clock  # the operator's clock (handlers.utc_now unless a test drives it)
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._kube: Kube | None = None

    async def start(self, *, peering: str | None = None) -> None:
        """Spawn kopf's tasks (standalone unless a peering name is given) and wait until ready."""
        assert handlers.RESYNC_SECONDS == RESYNC_SECONDS, "handlers imported before conftest"
        url = str(self.emulator.url).rstrip("/")
        self._kube = Kube.for_host(url)
        self._stop, ready = asyncio.Event(), asyncio.Event()
        settings = kopf.OperatorSettings()
        settings.watching.reconnect_backoff = 0.1
        settings.networking.request_timeout = 10
        memo = kopf.Memo(
            server=url,
            kube=self._kube,
            operator_settings=OperatorSettings(resync_seconds=RESYNC_SECONDS),
        )
        if self.clock is not None:
            memo.clock = self.clock
        tasks = await kopf.spawn_tasks(
            clusterwide=True,
            standalone=peering is None,
            peering_name=peering,
            settings=settings,
            memo=memo,
            stop_flag=self._stop,
            ready_flag=ready,
        )
        self._task = asyncio.create_task(kopf.run_tasks(tasks, ignored=ForeignTasks()))
        await asyncio.wait_for(ready.wait(), TIMEOUT)

    async def stop(self) -> None:
        """Ask kopf to stop and wait until every one of its tasks has finished."""
        if self._task is None or self._stop is None:
            return
        self._stop.set()
        await asyncio.wait_for(self._task, TIMEOUT)
        self._task = None
        if self._kube is not None:
            self._kube.close()


E = TypeVar("E", bound=Emulator)


@contextlib.asynccontextmanager
async def serving(server: E) -> AsyncIterator[E]:
    """Serve an emulator on 127.0.0.1; at the end, it served every request and each passed RBAC."""
    async with server, kmock.Server(server):
        yield server
        crashes = [e for e in server.errors if not isinstance(e, kmock.KubernetesError)]
        assert not crashes, "the emulator failed to serve requests"
    assert not rbac.denied(server.requests_made), "requests role.yaml does not allow"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A fresh emulated API server on 127.0.0.1; at the end, every request passed RBAC."""
    async with serving(Emulator()) as server:
        yield server


@pytest.fixture
async def operator(emulator: Emulator) -> AsyncIterator[Operator]:
    """The operator, running; stopped at the end of the test."""
    runtime = Operator(emulator)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def api(
    emulator: Emulator, method: str, path: str, body: Any = None, *, merge: bool = False
) -> dict[str, Any]:
    """A request made by the test itself (a user with kubectl); fails on an error status."""
    headers = {"Content-Type": "application/merge-patch+json"} if merge else {}
    async with emulator.request(method, path, json=body, headers=headers) as response:
        payload: dict[str, Any] = await response.json()
        assert response.status < 300, payload
        return payload


async def create_bookstore(
    emulator: Emulator, name: str, spec: dict[str, Any] | None = None
) -> None:
    """Apply a Bookstore, as `kubectl apply` would."""
    body = {
        "apiVersion": "bookstore.dev/v1alpha1",
        "kind": "Bookstore",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec or {},
    }
    await api(emulator, "POST", BOOKSTORES, body)


async def create_secret(emulator: Emulator, name: str, values: dict[str, str]) -> None:
    """Create a user's Secret (not managed by the operator)."""
    data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}
    await api(emulator, "POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", body)


def reconciles(emulator: Emulator, name: str, *, since: int = 0) -> int:
    """How many reconciles of a Bookstore started since request `since` (each fetches it once)."""
    return sum(
        1
        for request in emulator.requests_made[since:]
        if request.method.value == "GET"
        and request.url.path == f"{BOOKSTORES}/{name}"
        and request.headers.get("User-Agent", "").startswith("bookstore-operator/")
    )


async def settle(emulator: Emulator, name: str, count: int = 3) -> int:
    """Wait until `count` more reconciles of a Bookstore started (the resync timer runs every
    second); returns the request index before them."""
    start = len(emulator.requests_made)
    await eventually(
        lambda: reconciles(emulator, name, since=start) >= count,
        within=10 * RESYNC_SECONDS + 10,
        what=f"{count} reconciles",
    )
    return start


def bookstore(emulator: Emulator, name: str) -> dict[str, Any]:
    """The Bookstore as the API server holds it."""
    found = emulator.live("bookstore.dev/v1alpha1/bookstores", NAMESPACE, name)
    assert found is not None, f"Bookstore {name} does not exist"
    return found


def condition(store: dict[str, Any], kind: str) -> dict[str, Any]:
    """One status condition (empty when absent)."""
    for item in (store.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


async def create_claims(emulator: Emulator, statefulset: dict[str, Any]) -> None:
    """Play the StatefulSet controller: one PVC per pod and claim template, made once."""
    spec, owner = statefulset["spec"], statefulset["metadata"]["name"]
    for template in spec.get("volumeClaimTemplates") or []:
        for ordinal in range(spec.get("replicas", 1)):
            claim = f"{template['metadata']['name']}-{owner}-{ordinal}"
            if emulator.live("v1/persistentvolumeclaims", NAMESPACE, claim) is not None:
                continue
            body = {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "labels": template["metadata"].get("labels", {})},
                "spec": template["spec"],
            }
            await api(emulator, "POST", CLAIMS, body)


def migration_jobs(emulator: Emulator, name: str) -> list[dict[str, Any]]:
    """The migration Jobs of a Bookstore, as the API server holds them (not its backups')."""
    return [
        job
        for job in emulator.live_items("batch/v1/jobs")
        if job["metadata"]["labels"].get("app.kubernetes.io/instance") == name
        and "bookstore.dev/service" in job["metadata"]["labels"]
    ]


def finished(job: dict[str, Any]) -> bool:
    """The Job controller has marked the Job Complete or Failed."""
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)


async def finish_job(
    emulator: Emulator,
    job: dict[str, Any],
    *,
    exit_code: int = 0,
    message: str | None = None,
    log: str = "",
) -> dict[str, Any]:
    """Play the Job controller and the kubelet for a migration Job: its pod ran and exited
    with `exit_code`, its termination message (default: `migrate`'s success report) and log."""
    if message is None:
        service = job["metadata"]["labels"]["bookstore.dev/service"]
        report = {"service": service, "outcome": "migrated", "revision": SCHEMA_HEAD}
        message = json.dumps({**report, "head": SCHEMA_HEAD})
    return await run_job_pod(emulator, job, exit_code=exit_code, message=message, log=log)


def fail_job_exit_codes(job: dict[str, Any]) -> set[int]:
    """The exit codes on which the Job's podFailurePolicy fails it at once (FailJob In)."""
    rules = (job["spec"].get("podFailurePolicy") or {}).get("rules") or []
    return {
        int(code)
        for rule in rules
        if rule.get("action") == "FailJob"
        and (rule.get("onExitCodes") or {}).get("operator") == "In"
        for code in rule["onExitCodes"].get("values") or []
    }


async def run_job_pod(
    emulator: Emulator, job: dict[str, Any], *, exit_code: int, message: str, log: str
) -> dict[str, Any]:
    """Play the Job controller and the kubelet: one pod of the Job ran its one container,
    which exited with `exit_code`, its termination message and log; then the Job is Complete
    (exit 0), or Failed: at once on an exit code its podFailurePolicy names, else out of
    retries."""
    meta = job["metadata"]
    template = job["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{meta['name']}-",
            "labels": {
                **template["metadata"]["labels"],
                "batch.kubernetes.io/job-name": meta["name"],
                "job-name": meta["name"],
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template["spec"],
    }
    created = await api(emulator, "POST", PODS, pod)
    pod_name = created["metadata"]["name"]
    emulator.pod_logs[(NAMESPACE, pod_name)] = log
    container = template["spec"]["containers"][0]["name"]
    terminated = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "message": message,
    }
    pod_status = {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "containerStatuses": [
            {"name": container, "ready": False, "state": {"terminated": terminated}}
        ],
    }
    await api(emulator, "PATCH", f"{PODS}/{pod_name}/status", {"status": pod_status}, merge=True)
    if exit_code == 0:
        condition = {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
        counts = {"succeeded": 1}
    elif exit_code in fail_job_exit_codes(job):
        condition = {"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}
        counts = {"failed": 1}
    else:
        condition = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
        counts = {"failed": int(job["spec"].get("backoffLimit", 6)) + 1}
    status = {**counts, "conditions": [condition]}
    return await api(
        emulator, "PATCH", f"{JOBS}/{meta['name']}/status", {"status": status}, merge=True
    )


async def complete_migrations(emulator: Emulator, name: str) -> int:
    """Play the Job controller: every unfinished migration Job of `name` succeeds."""
    pending = [job for job in migration_jobs(emulator, name) if not finished(job)]
    for job in pending:
        await finish_job(emulator, job)
    return len(pending)


async def mark_ready(emulator: Emulator, plural: str, obj: dict[str, Any]) -> None:
    """Play the Deployment or StatefulSet controller: the workload rolled out and ready."""
    if plural == "statefulsets":
        await create_claims(emulator, obj)
    replicas = obj["spec"].get("replicas", 2)
    status = {
        "observedGeneration": obj["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [{"type": "Available", "status": "True"}],
    }
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/{plural}/{obj['metadata']['name']}/status"
    await api(emulator, "PATCH", path, {"status": status}, merge=True)


def workloads(emulator: Emulator, plural: str, name: str) -> list[dict[str, Any]]:
    """The Deployments or StatefulSets of a Bookstore."""
    return [
        obj
        for obj in emulator.live_items(f"apps/v1/{plural}")
        if obj["metadata"]["labels"].get("app.kubernetes.io/instance") == name
    ]


async def migrate_first_version(emulator: Emulator, name: str) -> None:
    """Play the StatefulSet and Job controllers: the database ready, then both migration
    Jobs of the Bookstore's first version created by the operator and complete."""

    async def migrated() -> bool:
        for statefulset in workloads(emulator, "statefulsets", name):
            await mark_ready(emulator, "statefulsets", statefulset)
        await complete_migrations(emulator, name)
        jobs = migration_jobs(emulator, name)
        return len(jobs) == 2 and all(finished(job) for job in jobs)

    await eventually(migrated, what=f"the migration Jobs of {name}")


async def release_deployments(emulator: Emulator, name: str, *, database: bool = True) -> None:
    """Play the StatefulSet and Job controllers until the operator writes the Deployments:
    the database ready, then the first version's migration Jobs complete."""
    expected = [("deployments", f"{name}-catalog"), ("deployments", f"{name}-orders")]
    expected += [("statefulsets", f"{name}-postgres")] if database else []

    async def progressed() -> bool:
        for statefulset in workloads(emulator, "statefulsets", name):
            await mark_ready(emulator, "statefulsets", statefulset)
        await complete_migrations(emulator, name)
        return all(emulator.live(f"apps/v1/{p}", NAMESPACE, n) for p, n in expected)

    await eventually(progressed, what=f"workloads of {name}")


async def mark_workloads_ready(emulator: Emulator, name: str, *, database: bool = True) -> None:
    """Play the StatefulSet, Job and Deployment controllers: the database ready, the
    migration Jobs the operator then starts complete, and the Deployments it then writes
    rolled out and ready."""
    await release_deployments(emulator, name, database=database)
    for plural in ("deployments", "statefulsets"):
        for obj in workloads(emulator, plural, name):
            await mark_ready(emulator, plural, obj)


async def wait_ready(emulator: Emulator, name: str) -> dict[str, Any]:
    """Wait until the Bookstore reports Ready=True for its current generation."""

    def ready() -> dict[str, Any] | None:
        store = bookstore(emulator, name)
        status = store.get("status") or {}
        current = status.get("observedGeneration") == store["metadata"]["generation"]
        ok = current and status.get("phase") == "Ready"
        return store if ok and condition(store, "Ready").get("status") == "True" else None

    found: dict[str, Any] = await eventually(
        ready, what=f"Bookstore {name} Ready", show=lambda: bookstore(emulator, name).get("status")
    )
    return found

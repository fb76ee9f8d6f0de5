"""Upgrades through the real kopf runtime: the migration Jobs first, the Deployments after.

The emulator has no Job or Deployment controller: the tests play them, writing a Job's
pod and conditions (conftest.finish_job) and a Deployment's status as the real ones would.
"""

from __future__ import annotations

import json
from typing import Any

from tests.operator.runtime.conftest import (
    BOOKSTORES,
    JOBS,
    NAMESPACE,
    SCHEMA_HEAD,
    Operator,
    api,
    bookstore,
    condition,
    create_bookstore,
    eventually,
    finish_job,
    finished,
    mark_workloads_ready,
    migration_jobs,
    settle,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator

DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
FIRST = "0.1.0"
SECOND = "0.2.0"
CHILD_WORKLOADS = ("/deployments/", "/horizontalpodautoscalers/")


def image(emulator: Emulator, service: str) -> str:
    deployment = emulator.live("apps/v1/deployments", NAMESPACE, f"downtown-{service}")
    assert deployment is not None
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def jobs_for(emulator: Emulator, version: str) -> list[dict[str, Any]]:
    slug = version.replace(".", "-")
    return [
        job
        for job in migration_jobs(emulator, "downtown")
        if f"-migrate-{slug}-" in job["metadata"]["name"]
    ]


def workload_writes(emulator: Emulator, since: int) -> list[str]:
    """The operator's writes to Deployments and HPAs since request `since`."""
    return [
        f"{r.method.value} {r.url.path}"
        for r in emulator.writes(since=since)
        if any(part in r.url.path for part in CHILD_WORKLOADS)
    ]


def job_creations(emulator: Emulator, since: int = 0) -> list[int]:
    """Indexes of the operator's Job creations among all requests."""
    return [
        index
        for index, r in enumerate(emulator.requests_made)
        if index >= since
        and r.method.value == "POST"
        and r.url.path == JOBS
        and not r.headers.get("User-Agent", "").startswith("kmock/")
    ]


def warnings(emulator: Emulator, reason: str) -> list[str]:
    return [
        e["message"]
        for e in emulator.live_items("v1/events")
        if e["type"] == "Warning" and e["reason"] == reason
    ]


def status_of(emulator: Emulator) -> dict[str, Any]:
    return dict(bookstore(emulator, "downtown").get("status") or {})


async def ready_at_first_version(emulator: Emulator, spec: dict[str, Any] | None = None) -> None:
    await create_bookstore(emulator, "downtown", {"version": FIRST, **(spec or {})})
    await mark_workloads_ready(emulator, "downtown")
    store = await wait_ready(emulator, "downtown")
    assert store["status"]["version"] == FIRST


async def change_version(emulator: Emulator, version: str) -> None:
    await api(
        emulator, "PATCH", f"{BOOKSTORES}/downtown", {"spec": {"version": version}}, merge=True
    )


async def two_jobs(emulator: Emulator, version: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = await eventually(
        lambda: (found := jobs_for(emulator, version)) and len(found) == 2 and found,
        what=f"the migration Jobs of {version}",
    )
    return sorted(jobs, key=lambda job: str(job["metadata"]["name"]))


async def test_new_version_runs_one_job_per_service_before_the_deployments_change(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_at_first_version(emulator)
    start = len(emulator.requests_made)
    await change_version(emulator, SECOND)

    catalog_job, orders_job = await two_jobs(emulator, SECOND)
    for job, service in ((catalog_job, "catalog"), (orders_job, "orders")):
        pod = job["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["image"].endswith(f":{SECOND}")
        assert container["command"] == [f"bookstore-{service}", "migrate"]
        assert job["spec"]["backoffLimit"] >= 1
        assert job["spec"]["activeDeadlineSeconds"] > 0
        assert job["spec"]["ttlSecondsAfterFinished"] > 0
        assert pod["restartPolicy"] == "Never"
        assert job["metadata"]["ownerReferences"][0]["kind"] == "Bookstore"

    def migrating() -> dict[str, Any] | None:
        status = status_of(emulator)
        progressing = condition(bookstore(emulator, "downtown"), "Progressing")
        ok = progressing.get("reason") == "Migrating" and status.get("targetVersion") == SECOND
        return status if ok and catalog_job["metadata"]["name"] in progressing["message"] else None

    status = await eventually(migrating, what="Progressing Migrating naming the Job")
    assert status["version"] == FIRST  # `kubectl get bookstores` VERSION: still the one serving
    assert status["phase"] == "Progressing"

    await finish_job(emulator, catalog_job)
    await settle(emulator, "downtown", 2)
    assert workload_writes(emulator, start) == [], "Deployments written before every Job ended"
    assert image(emulator, "catalog").endswith(f":{FIRST}")

    await finish_job(emulator, orders_job)
    await eventually(
        lambda: (
            image(emulator, "catalog").endswith(f":{SECOND}")
            and image(emulator, "orders").endswith(f":{SECOND}")
        ),
        what="the Deployments at the new version",
    )
    first_workload_write = min(
        index
        for index, r in enumerate(emulator.requests_made)
        if index >= start
        and r in emulator.writes(since=start)
        and any(part in r.url.path for part in CHILD_WORKLOADS)
    )
    assert max(job_creations(emulator, start)) < first_workload_write

    def rolling_out() -> bool:
        progressing = condition(bookstore(emulator, "downtown"), "Progressing")
        return (
            progressing.get("reason") == "RollingOut" and "pods updated" in progressing["message"]
        )

    await eventually(rolling_out, what="Progressing RollingOut", show=lambda: status_of(emulator))
    assert status_of(emulator)["version"] == FIRST

    await mark_workloads_ready(emulator, "downtown")

    def finished_rollout() -> dict[str, Any] | None:
        status = status_of(emulator)
        return status if status.get("version") == SECOND and status["phase"] == "Ready" else None

    status = await eventually(finished_rollout, what=f"version {SECOND} serving")
    assert "targetVersion" not in status
    assert condition(bookstore(emulator, "downtown"), "Progressing")["reason"] == "RolloutComplete"
    assert status["database"]["schemaRevision"] == {"catalog": SCHEMA_HEAD, "orders": SCHEMA_HEAD}
    assert len(job_creations(emulator, start)) == 2  # one Job per service and version


async def test_failed_migration_keeps_the_old_version_serving_until_the_version_goes_back(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_at_first_version(emulator)
    start = len(emulator.requests_made)
    await change_version(emulator, SECOND)
    catalog_job, _ = await two_jobs(emulator, SECOND)
    report = {
        "service": "catalog",
        "outcome": "failed",
        "revision": "0004",
        "head": "0005",
        "message": "column books.isbn contains duplicates",
    }
    log = "\n".join(f"line {n}" for n in range(100)) + "\nalembic: UniqueViolation on books.isbn"
    await finish_job(emulator, catalog_job, exit_code=1, message=json.dumps(report), log=log)

    def failed() -> dict[str, Any] | None:
        ready = condition(bookstore(emulator, "downtown"), "Ready")
        degraded = status_of(emulator).get("phase") == "Degraded"
        return ready if degraded and ready.get("reason") == "MigrationFailed" else None

    ready = await eventually(
        failed, what="Degraded MigrationFailed", show=lambda: status_of(emulator)
    )
    assert "exit code 1" in ready["message"]
    assert "column books.isbn contains duplicates" in ready["message"]
    assert "alembic: UniqueViolation on books.isbn" in ready["message"]  # the log's tail
    assert "line 50" not in ready["message"]  # bounded: the last lines only
    assert f"delete Job/{catalog_job['metadata']['name']}" in ready["message"]
    await eventually(lambda: warnings(emulator, "MigrationFailed"), what="a Warning event")
    await settle(emulator, "downtown", 2)
    assert workload_writes(emulator, start) == []
    assert image(emulator, "catalog").endswith(f":{FIRST}")
    assert status_of(emulator)["version"] == FIRST

    await change_version(emulator, FIRST)
    store = await wait_ready(emulator, "downtown")
    assert "targetVersion" not in store["status"]
    assert store["status"]["version"] == FIRST


async def test_deleting_the_failed_job_runs_the_migration_again(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_at_first_version(emulator)
    await change_version(emulator, SECOND)
    catalog_job, orders_job = await two_jobs(emulator, SECOND)
    await finish_job(emulator, orders_job)
    await finish_job(emulator, catalog_job, exit_code=1, message="Traceback: boom")
    await eventually(
        lambda: (
            condition(bookstore(emulator, "downtown"), "Ready").get("reason") == "MigrationFailed"
        ),
        what="MigrationFailed",
    )
    start = len(emulator.requests_made)
    name = catalog_job["metadata"]["name"]
    await api(emulator, "DELETE", f"{JOBS}/{name}")  # the user, after fixing the image

    retried = await eventually(
        lambda: (
            (job := emulator.live("batch/v1/jobs", NAMESPACE, name))
            and job["metadata"]["uid"] != catalog_job["metadata"]["uid"]
            and job
        ),
        what="a new Job under the same name",
    )
    assert len(job_creations(emulator, start)) == 1
    await finish_job(emulator, retried)
    await eventually(
        lambda: image(emulator, "catalog").endswith(f":{SECOND}"),
        what="the Deployments at the new version",
    )


async def test_downgrade_below_the_applied_schema_is_refused_and_nothing_is_touched(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_at_first_version(emulator)
    start = len(emulator.requests_made)
    await change_version(emulator, "0.0.9")
    jobs = await two_jobs(emulator, "0.0.9")
    report = {
        "service": "catalog",
        "outcome": "downgrade-refused",
        "revision": "0005",
        "head": "0003",
        "message": "the database schema is newer than this code",
    }
    catalog_job = next(j for j in jobs if "-catalog-" in j["metadata"]["name"])
    await finish_job(emulator, catalog_job, exit_code=3, message=json.dumps(report))

    def refused() -> dict[str, Any] | None:
        ready = condition(bookstore(emulator, "downtown"), "Ready")
        failed = status_of(emulator).get("phase") == "Failed"
        return ready if failed and ready.get("reason") == "DowngradeRefused" else None

    ready = await eventually(
        refused, what="Failed DowngradeRefused", show=lambda: status_of(emulator)
    )
    assert "0005" in ready["message"]
    assert "0003" in ready["message"]
    assert f"set spec.version back to {FIRST}" in ready["message"]
    await eventually(lambda: warnings(emulator, "DowngradeRefused"), what="a Warning event")
    await settle(emulator, "downtown", 2)
    assert workload_writes(emulator, start) == []
    assert image(emulator, "orders").endswith(f":{FIRST}")
    assert status_of(emulator)["version"] == FIRST


async def test_stuck_rollout_rolls_back_and_stays_degraded_until_the_version_changes(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_at_first_version(emulator, {"upgrade": {"progressDeadlineSeconds": 120}})
    deployment = emulator.live("apps/v1/deployments", NAMESPACE, "downtown-catalog")
    assert deployment is not None
    assert deployment["spec"]["progressDeadlineSeconds"] == 120
    await change_version(emulator, SECOND)
    for job in await two_jobs(emulator, SECOND):
        await finish_job(emulator, job)
    await eventually(
        lambda: image(emulator, "catalog").endswith(f":{SECOND}"), what="the new version rolling"
    )

    # The Deployment controller gives up on the new pods: ProgressDeadlineExceeded.
    catalog = emulator.live("apps/v1/deployments", NAMESPACE, "downtown-catalog")
    assert catalog is not None
    stuck = {
        "observedGeneration": catalog["metadata"]["generation"],
        "replicas": 3,
        "updatedReplicas": 1,
        "readyReplicas": 2,
        "conditions": [
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
        ],
    }
    await api(
        emulator, "PATCH", f"{DEPLOYMENTS}/downtown-catalog/status", {"status": stuck}, merge=True
    )

    await eventually(
        lambda: (
            image(emulator, "catalog").endswith(f":{FIRST}")
            and image(emulator, "orders").endswith(f":{FIRST}")
        ),
        what="the Deployments back at the serving version",
    )

    def rolled_back() -> dict[str, Any] | None:
        status = status_of(emulator)
        ready = condition(bookstore(emulator, "downtown"), "Ready")
        ok = status.get("rolledBackFrom") == SECOND and ready.get("reason") == "RolloutStuck"
        return status if ok and status["phase"] == "Degraded" else None

    status = await eventually(rolled_back, what="rolledBackFrom", show=lambda: status_of(emulator))
    assert status["version"] == FIRST
    assert "targetVersion" not in status
    [warning] = await eventually(lambda: warnings(emulator, "RolloutStuck"), what="a Warning")
    assert f"rolled back to version {FIRST}" in warning

    await mark_workloads_ready(emulator, "downtown")
    start = await settle(emulator, "downtown", 2)
    assert status_of(emulator)["phase"] == "Degraded"  # until spec.version changes
    assert image(emulator, "catalog").endswith(f":{FIRST}")
    assert not job_creations(emulator, start)

    await change_version(emulator, FIRST)
    store = await wait_ready(emulator, "downtown")
    assert "rolledBackFrom" not in store["status"]


async def test_operator_restarted_mid_upgrade_resumes_without_a_second_job(
    emulator: Emulator,
) -> None:
    first = Operator(emulator)
    await first.start()
    try:
        await ready_at_first_version(emulator)
        await change_version(emulator, SECOND)
        jobs = await two_jobs(emulator, SECOND)
    finally:
        await first.stop()
    start = len(emulator.requests_made)
    second = Operator(emulator)
    await second.start()
    try:
        await settle(emulator, "downtown", 2)
        assert job_creations(emulator, start) == []
        for job in jobs:
            await finish_job(emulator, job)
        await eventually(
            lambda: image(emulator, "orders").endswith(f":{SECOND}"), what="the rollout resumed"
        )
        assert job_creations(emulator, start) == []
        assert all(finished(job) for job in jobs_for(emulator, SECOND))
    finally:
        await second.stop()


async def test_reconciles_while_a_migration_runs_write_nothing(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_at_first_version(emulator)
    await change_version(emulator, SECOND)
    await two_jobs(emulator, SECOND)
    await eventually(
        lambda: (
            condition(bookstore(emulator, "downtown"), "Progressing").get("reason") == "Migrating"
        ),
        what="Migrating",
    )
    await settle(emulator, "downtown", 2)  # the tail of the first reconciles (events) lands
    start = await settle(emulator, "downtown", 2)
    assert [f"{r.method.value} {r.url.path}" for r in emulator.writes(since=start)] == []

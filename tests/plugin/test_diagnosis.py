"""`why`'s reasoning on variations of the recorded objects (pure: no API server): other pull
failures, an out-of-memory crash, a missing key, a failing readiness probe, no status."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from bookstore_kubectl.cluster import Snapshot
from bookstore_kubectl.diagnosis import Finding, diagnose

from tests.plugin.conftest import NAMESPACE, recorded

FIELDS = {
    "Bookstore": None,
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "HorizontalPodAutoscaler": "autoscalers",
    "Service": "services",
    "Ingress": "ingresses",
    "Job": "jobs",
    "Pod": "pods",
    "PersistentVolumeClaim": "claims",
    "BookstoreBackup": "backups",
    "Event": "events",
}


def snapshot(scenario: str = "healthy") -> Snapshot:
    """The objects `kubectl bookstore` would read for Bookstore downtown."""
    objects = recorded(scenario)
    store = next(o for o in objects if o["kind"] == "Bookstore")
    snap = Snapshot(namespace=NAMESPACE, bookstore=store)
    for obj in objects:
        field = FIELDS[obj["kind"]]
        labels = obj["metadata"].get("labels") or {}
        if field and labels.get("app.kubernetes.io/instance", "downtown") == "downtown":
            getattr(snap, field).append(obj)
    return snap


def pod(snap: Snapshot, prefix: str) -> dict[str, Any]:
    return next(p for p in snap.pods if p["metadata"]["name"].startswith(prefix))


def break_orders(snap: Snapshot, state: dict[str, Any], last: dict[str, Any] | None = None) -> None:
    """Make every orders pod unready with this container state, and the Deployment 0/2."""
    for p in snap.pods_of("orders"):
        status = p["status"]
        status["conditions"] = [{"type": "Ready", "status": "False"}]
        status["containerStatuses"][0].update(
            ready=False, state=copy.deepcopy(state), lastState=last or {}, restartCount=4
        )
    snap.workload("orders")["status"]["readyReplicas"] = 0  # type: ignore[index]


def only(snap: Snapshot) -> Finding:
    report = diagnose(snap)
    assert len(report.findings) == 1, report
    return report.findings[0]


def event(about: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Event",
        "metadata": {"name": f"{about['metadata']['name']}.1", "namespace": NAMESPACE},
        "involvedObject": {"kind": about["kind"], "name": about["metadata"]["name"]},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "lastTimestamp": "2026-11-28T12:00:00Z",
    }


def test_a_refused_pull_is_told_apart_from_a_missing_image() -> None:
    snap = snapshot()
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}
    break_orders(snap, waiting)
    target = pod(snap, "downtown-orders")
    snap.events.append(
        event(
            target,
            "Failed",
            'Failed to pull image "ghcr.io/bookstore-operator/bookstore:0.1.0": failed to'
            " authorize: failed to fetch anonymous token: 401 Unauthorized",
        )
    )
    found = only(snap)
    assert "the registry refused to serve image" in found.steps[-1]
    assert "pull credentials" in found.fix


def test_an_out_of_memory_crash_asks_for_more_memory() -> None:
    snap = snapshot()
    waiting = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}
    break_orders(snap, waiting, {"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    found = only(snap)
    assert found.steps[-1].startswith("exit code 137 (OOMKilled: out of memory)")
    assert found.fix.startswith("raise spec.orders.resources.limits.memory")


def test_a_database_image_that_does_not_exist_points_at_spec_database_image() -> None:
    snap = snapshot()
    snap.bookstore["spec"]["database"]["image"] = "postgres:16.99"
    postgres = pod(snap, "downtown-postgres-0")
    postgres["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    postgres["status"]["containerStatuses"][0].update(
        image="postgres:16.99",
        ready=False,
        state={
            "waiting": {
                "reason": "ErrImagePull",
                "message": "docker.io/library/postgres:16.99: not found",
            }
        },
    )
    snap.workload("database")["status"]["readyReplicas"] = 0  # type: ignore[index]
    found = only(snap)
    assert found.steps == (
        "database: 0/1 ready",
        "pod downtown-postgres-0: ErrImagePull",
        "image postgres:16.99 not found",
    )
    assert found.fix == "check spec.database.image (postgres:16.99)"


def test_a_missing_key_names_the_secret_and_the_key() -> None:
    snap = snapshot()
    message = "couldn't find key api-key in Secret shop/downtown-api-key"
    break_orders(snap, {"waiting": {"reason": "CreateContainerConfigError", "message": message}})
    found = only(snap)
    assert found.steps[-1] == "Secret downtown-api-key has no key api-key (and 1 more pod)"
    assert "the operator recreates this Secret" in found.fix


def test_a_failing_readiness_probe_points_at_the_database() -> None:
    snap = snapshot()
    break_orders(snap, {"running": {"startedAt": "2026-11-28T11:00:00Z"}})
    for p in snap.pods_of("orders"):
        snap.events.append(
            event(p, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503")
        )
    found = only(snap)
    assert found.steps[1].endswith(": running, not ready")
    assert found.steps[2].startswith(
        "Readiness probe failed: HTTP probe failed with statuscode: 503"
    )
    assert "/health/ready" in found.fix


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.bookstore.pop("status"), "no Ready condition"),
        (lambda s: s.bookstore["spec"].update(paused=True), "spec.paused is true"),
    ],
)
def test_a_bookstore_the_operator_does_not_drive_is_not_called_healthy(
    change: Any, expected: str
) -> None:
    snap = snapshot()
    change(snap)
    report = diagnose(snap)
    assert not report.healthy
    assert any(expected in " ".join(f.steps) for f in report.findings), report


def test_a_ready_bookstore_with_nothing_wrong_has_no_findings() -> None:
    report = diagnose(snapshot())
    assert report.healthy
    assert (
        report.headline == "Bookstore shop/downtown: Ready True (AllComponentsReady), phase Ready"
    )


def test_a_stuck_rollout_blames_the_new_pod_while_the_old_ones_serve() -> None:
    snap = snapshot()
    orders = snap.workload("orders")
    assert orders is not None
    orders["status"]["updatedReplicas"] = 1
    snap.bookstore["status"]["conditions"][3].update(status="False", reason="RolloutInProgress")
    new = copy.deepcopy(pod(snap, "downtown-orders"))
    new["metadata"].update(
        name="downtown-orders-5f6d7c8b9-new01", creationTimestamp="2026-11-28T12:00:00Z"
    )
    new["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    new["status"]["containerStatuses"][0].update(
        image="ghcr.io/bookstore-operator/bookstore:0.3.0",
        ready=False,
        state={"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}},
    )
    snap.pods.append(new)
    found = only(snap)
    assert found.steps[:2] == (
        "orders: 2/2 ready, 1/2 updated",
        "pod downtown-orders-5f6d7c8b9-new01: ImagePullBackOff",
    )
    assert found.steps[2] == (
        "image ghcr.io/bookstore-operator/bookstore:0.3.0 cannot be pulled (no event says why"
        " any more)"
    )
    assert found.fix.startswith("check spec.version (0.1.0) and spec.image")

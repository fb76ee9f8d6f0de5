"""Child watches: server-side label selector, chunked lists, and no reconcile for HPA noise."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.operator.runtime.conftest import (
    NAMESPACE,
    Operator,
    api,
    bookstore,
    eventually,
    release_deployments,
)
from tests.operator.runtime.conftest import (
    create_bookstore as create_store,
)
from tests.operator.runtime.emulator import Emulator

SELECTOR = "app.kubernetes.io/managed-by=bookstore-operator"
CHILD_PATHS = (
    "/api/v1/configmaps",
    "/api/v1/services",
    "/apis/apps/v1/deployments",
    "/apis/apps/v1/statefulsets",
    "/apis/autoscaling/v2/horizontalpodautoscalers",
    "/apis/policy/v1/poddisruptionbudgets",
    "/apis/networking.k8s.io/v1/networkpolicies",
    "/apis/networking.k8s.io/v1/ingresses",
)
HPA = f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers/downtown-catalog"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
TRIGGERED = "reconciling Bookstore"
IGNORED = "not reconciling"


def handled(caplog: pytest.LogCaptureFixture, name: str, what: str) -> list[logging.LogRecord]:
    """The child-watch log records about the object `name` that contain `what`."""
    return [
        record
        for record in caplog.records
        if (getattr(record, "k8s_ref", None) or {}).get("name") == name
        and what in record.getMessage()
    ]


def operator_requests(emulator: Emulator, path: str) -> list[Any]:
    """The operator's (not the test's) GET requests to a collection path."""
    return [
        request
        for request in emulator.requests_made
        if request.method.value == "GET"
        and request.url.path == path
        and not request.headers.get("User-Agent", "").startswith("kmock/")
    ]


async def test_child_lists_and_watches_ask_the_server_for_our_label_in_chunks(
    emulator: Emulator, operator: Operator
) -> None:
    await create_store(emulator, "downtown")
    await eventually(lambda: bookstore(emulator, "downtown").get("status"), what="a status")

    for path in CHILD_PATHS:
        requests = operator_requests(emulator, path)
        lists = [r for r in requests if r.params.get("watch") != "true"]
        watches = [r for r in requests if r.params.get("watch") == "true"]
        assert lists, f"no list of {path}"
        assert watches, f"no watch of {path}"
        for request in requests:
            assert request.params.get("labelSelector") == SELECTOR, (path, dict(request.params))
        for request in lists:
            assert request.params.get("limit") == "500", (path, dict(request.params))
    bookstores = operator_requests(emulator, "/apis/bookstore.dev/v1alpha1/bookstores")
    assert bookstores
    assert all("labelSelector" not in request.params for request in bookstores)


async def test_hpa_metrics_refresh_triggers_no_reconcile_but_a_replica_change_does(
    emulator: Emulator, operator: Operator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kopf.objects")
    await create_store(emulator, "downtown")
    await eventually(lambda: bookstore(emulator, "downtown").get("status"), what="a status")
    await release_deployments(emulator, "downtown")  # the HPAs come with the Deployments
    await eventually(lambda: hpa_records(caplog, TRIGGERED), what="the HPA seen by its watch")
    status: dict[str, Any] = {"currentReplicas": 2, "desiredReplicas": 2}
    await set_hpa_status(emulator, caplog, status, TRIGGERED)  # first status: it matters
    triggered = len(hpa_records(caplog, TRIGGERED))

    for utilization in (41, 55, 63):
        metric = {"name": "cpu", "current": {"averageUtilization": utilization}}
        status["currentMetrics"] = [{"type": "Resource", "resource": metric}]
        status["lastScaleTime"] = f"2026-01-01T00:00:{utilization}Z"
        await set_hpa_status(emulator, caplog, status, IGNORED)
    assert len(hpa_records(caplog, TRIGGERED)) == triggered

    status["desiredReplicas"] = 3
    await set_hpa_status(emulator, caplog, status, TRIGGERED)


async def set_hpa_status(
    emulator: Emulator, caplog: pytest.LogCaptureFixture, status: dict[str, Any], outcome: str
) -> None:
    """Write the HPA's status as its controller would; wait until the watch handled it so."""
    before = len(hpa_records(caplog, outcome))
    await api(emulator, "PATCH", f"{HPA}/status", {"status": status}, merge=True)
    await eventually(
        lambda: len(hpa_records(caplog, outcome)) > before, what=f"HPA status: {outcome}"
    )


def hpa_records(caplog: pytest.LogCaptureFixture, what: str) -> list[logging.LogRecord]:
    """Child-watch records of the catalog HPA (not of the same-named Deployment)."""
    return [
        record
        for record in handled(caplog, "downtown-catalog", what)
        if record.k8s_ref["kind"] == "HorizontalPodAutoscaler"  # type: ignore[attr-defined]
    ]


def deployment(name: str, labels: dict[str, str], owner: dict[str, Any]) -> dict[str, Any]:
    """A Deployment someone else made, controlled by our Bookstore."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "ownerReferences": [owner], "labels": labels},
        "spec": {"selector": {"matchLabels": labels}, "template": {}},
    }


async def test_a_deployment_without_our_label_triggers_nothing(
    emulator: Emulator, operator: Operator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kopf.objects")
    await create_store(emulator, "downtown")
    store = bookstore(emulator, "downtown")
    owner = {
        "apiVersion": "bookstore.dev/v1alpha1",
        "kind": "Bookstore",
        "name": "downtown",
        "uid": store["metadata"]["uid"],
        "controller": True,
    }
    await api(emulator, "POST", DEPLOYMENTS, deployment("stray", {"app": "stray"}, owner))
    # Then a labelled one on the same watch stream: once it is handled, the stray one
    # (earlier in the stream) has been seen and filtered out.
    labelled = {"app": "sentinel", "app.kubernetes.io/managed-by": "bookstore-operator"}
    await api(emulator, "POST", DEPLOYMENTS, deployment("sentinel", labelled, owner))
    await eventually(lambda: handled(caplog, "sentinel", TRIGGERED), what="the labelled one")
    assert [r for r in caplog.records if getattr(r, "k8s_ref", {}).get("name") == "stray"] == []

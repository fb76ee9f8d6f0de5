"""spec.monitoring on the emulator: the PodMonitor and PrometheusRule where the Prometheus
Operator's CRDs are served, the MonitoringReady condition and one Warning where they are not,
CRDs installed later, disabling, drift repair and refused writes: Ready is never affected."""

from __future__ import annotations

from typing import Any

import kmock

from tests.operator.runtime import rbac
from tests.operator.runtime.conftest import (
    NAMESPACE,
    Operator,
    api,
    bookstore,
    condition,
    create_bookstore,
    eventually,
    mark_workloads_ready,
    settle,
    wait_ready,
)
from tests.operator.runtime.emulator import VERBS, Emulator

STORE = "downtown"
GROUP_VERSION = "monitoring.coreos.com/v1"
KINDS = {"podmonitors": "PodMonitor", "prometheusrules": "PrometheusRule"}
STORE_PATH = f"/apis/bookstore.dev/v1alpha1/namespaces/{NAMESPACE}/bookstores/{STORE}"
MONITORING = {"enabled": True, "interval": "30s", "labels": {"release": "prometheus"}}


def install_crds(emulator: Emulator, *plurals: str) -> None:
    """Install Prometheus Operator CRDs: the API server then serves (and discovers) them."""
    for plural in plurals or tuple(KINDS):
        emulator.resources[f"{GROUP_VERSION}/{plural}"] = kmock.ResourceInfo(
            kind=KINDS[plural], namespaced=True, verbs=VERBS
        )


def child(emulator: Emulator, plural: str) -> dict[str, Any] | None:
    return emulator.live(f"{GROUP_VERSION}/{plural}", NAMESPACE, STORE)


def child_path(plural: str) -> str:
    return f"/apis/{GROUP_VERSION}/namespaces/{NAMESPACE}/{plural}/{STORE}"


def events(emulator: Emulator, reason: str) -> list[dict[str, Any]]:
    return [
        event
        for event in emulator.live_items("v1/events")
        if event.get("reason") == reason and event.get("involvedObject", {}).get("name") == STORE
    ]


def monitoring_ready(emulator: Emulator) -> dict[str, Any]:
    return condition(bookstore(emulator, STORE), "MonitoringReady")


async def ready_store(emulator: Emulator, monitoring: dict[str, Any]) -> dict[str, Any]:
    await create_bookstore(emulator, STORE, {"monitoring": monitoring})
    await mark_workloads_ready(emulator, STORE)
    return await wait_ready(emulator, STORE)


async def wait_condition(emulator: Emulator, reason: str) -> dict[str, Any]:
    found: dict[str, Any] = await eventually(
        lambda: monitoring_ready(emulator).get("reason") == reason and monitoring_ready(emulator),
        what=f"MonitoringReady {reason}",
        show=lambda: monitoring_ready(emulator),
    )
    return found


async def test_children_are_created_where_the_crds_are_served(
    emulator: Emulator, operator: Operator
) -> None:
    install_crds(emulator)
    await ready_store(emulator, MONITORING)
    ready = await wait_condition(emulator, "MonitoringApplied")
    assert ready["status"] == "True"
    store = bookstore(emulator, STORE)
    for plural, kind in KINDS.items():
        found = child(emulator, plural)
        assert found is not None, f"no {kind}"
        assert found["kind"] == kind
        assert found["metadata"]["labels"]["release"] == "prometheus"
        [owner] = found["metadata"]["ownerReferences"]
        assert (owner["uid"], owner["controller"]) == (store["metadata"]["uid"], True)
        managers = {entry["manager"] for entry in found["metadata"]["managedFields"]}
        assert managers == {"bookstore-operator"}
    monitor = child(emulator, "podmonitors")
    assert monitor is not None
    assert monitor["spec"]["podMetricsEndpoints"][0]["interval"] == "30s"
    rule = child(emulator, "prometheusrules")
    assert rule is not None
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert {"BookstoreNotReady", "CatalogDown", "OrdersFailingHigh"} <= alerts
    await eventually(
        lambda: (
            {f"Created PodMonitor/{STORE}", f"Created PrometheusRule/{STORE}"}
            <= {event["message"] for event in events(emulator, "Created")}
        ),
        what="a Created event for each (kopf posts events in the background)",
    )


async def test_missing_crds_are_reported_once_and_the_store_is_still_ready(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_store(emulator, MONITORING)
    missing = await wait_condition(emulator, "MonitoringCRDsMissing")
    assert missing["status"] == "False"
    assert "podmonitors.monitoring.coreos.com" in missing["message"]
    assert "prometheusrules.monitoring.coreos.com" in missing["message"]
    await settle(emulator, STORE)
    store = bookstore(emulator, STORE)
    assert store["status"]["phase"] == "Ready"
    assert condition(store, "Ready")["status"] == "True"
    [warning] = events(emulator, "MonitoringCRDsMissing")
    assert warning["type"] == "Warning"
    assert "install the Prometheus Operator's CRDs" in warning["message"]
    # Nothing was written to the resources the cluster does not serve.
    assert not [r for r in emulator.writes() if "monitoring.coreos.com" in r.url.path]

    # The CRDs installed later: the next resync creates the children.
    install_crds(emulator)
    await wait_condition(emulator, "MonitoringApplied")
    assert child(emulator, "podmonitors") is not None
    assert child(emulator, "prometheusrules") is not None
    assert condition(bookstore(emulator, STORE), "Ready")["status"] == "True"


async def test_with_only_the_podmonitor_crd_it_is_applied_and_the_rule_reported_missing(
    emulator: Emulator, operator: Operator
) -> None:
    install_crds(emulator, "podmonitors")
    await ready_store(emulator, MONITORING)
    missing = await wait_condition(emulator, "MonitoringCRDsMissing")
    assert "prometheusrules.monitoring.coreos.com" in missing["message"]
    assert "podmonitors.monitoring.coreos.com" not in missing["message"]
    assert f"PodMonitor/{STORE} applied" in missing["message"]
    assert child(emulator, "podmonitors") is not None


async def test_enabling_creates_disabling_deletes_and_drift_is_repaired(
    emulator: Emulator, operator: Operator
) -> None:
    install_crds(emulator)
    await ready_store(emulator, {})
    await settle(emulator, STORE)
    assert monitoring_ready(emulator) == {}
    assert child(emulator, "podmonitors") is None

    await api(emulator, "PATCH", STORE_PATH, {"spec": {"monitoring": MONITORING}}, merge=True)
    await wait_condition(emulator, "MonitoringApplied")
    assert child(emulator, "podmonitors") is not None

    # Drift: the PodMonitor edited by hand, the PrometheusRule deleted by hand.
    edit = {"spec": {"podMetricsEndpoints": [{"port": "wrong"}]}}
    await api(emulator, "PATCH", child_path("podmonitors"), edit, merge=True)
    await api(emulator, "DELETE", child_path("prometheusrules"))

    def repaired() -> bool:
        monitor, rule = child(emulator, "podmonitors"), child(emulator, "prometheusrules")
        return bool(
            monitor
            and rule
            and monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http"
            and monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
        )

    await eventually(repaired, what="the PodMonitor restored and the PrometheusRule recreated")
    assert condition(bookstore(emulator, STORE), "Ready")["status"] == "True"

    await api(
        emulator, "PATCH", STORE_PATH, {"spec": {"monitoring": {"enabled": False}}}, merge=True
    )
    await eventually(
        lambda: (
            child(emulator, "podmonitors") is None and child(emulator, "prometheusrules") is None
        ),
        what="both monitoring children deleted",
    )
    await eventually(lambda: monitoring_ready(emulator) == {}, what="MonitoringReady removed")
    await eventually(
        lambda: (
            {f"Deleted PodMonitor/{STORE}", f"Deleted PrometheusRule/{STORE}"}
            <= {event["message"] for event in events(emulator, "Deleted")}
        ),
        what="a Deleted event for each (kopf posts events in the background)",
    )
    # Every monitoring permission of role.yaml was needed, and nothing else of that group.
    used = {p for p in rbac.used(emulator.requests_made) if p[0] == "monitoring.coreos.com"}
    granted = {p for p in rbac.granted() if p[0] == "monitoring.coreos.com"}
    assert used == granted


async def test_a_refused_rule_is_reported_and_the_next_resync_applies_it(
    emulator: Emulator, operator: Operator
) -> None:
    install_crds(emulator)
    # A validating webhook (the Prometheus Operator's) refuses the rule, until it is fixed.
    emulator.faults[("PATCH", "prometheusrules")] = [422] * 1000
    await ready_store(emulator, MONITORING)
    refused = await wait_condition(emulator, "MonitoringRefused")
    await settle(emulator, STORE)
    assert f"PrometheusRule/{STORE}" in refused["message"]
    assert "422" in refused["message"]
    store = bookstore(emulator, STORE)
    assert store["status"]["phase"] == "Ready"
    assert condition(store, "Ready")["status"] == "True"
    assert child(emulator, "podmonitors") is not None  # applied before the rule
    assert child(emulator, "prometheusrules") is None
    emulator.faults[("PATCH", "prometheusrules")] = []
    await wait_condition(emulator, "MonitoringApplied")
    assert child(emulator, "prometheusrules") is not None
    # One Warning when it turned refused, not one per reconcile that still found it refused.
    assert len(events(emulator, "MonitoringRefused")) == 1


async def test_a_foreign_podmonitor_of_that_name_is_left_alone(
    emulator: Emulator, operator: Operator
) -> None:
    install_crds(emulator)
    theirs = {
        "apiVersion": GROUP_VERSION,
        "kind": "PodMonitor",
        "metadata": {"name": STORE, "labels": {"team": "sre"}},
        "spec": {"selector": {}, "podMetricsEndpoints": [{"port": "web"}]},
    }
    await api(emulator, "POST", f"/apis/{GROUP_VERSION}/namespaces/{NAMESPACE}/podmonitors", theirs)
    await ready_store(emulator, MONITORING)
    foreign = await wait_condition(emulator, "ChildNotOwned")
    assert f"PodMonitor/{STORE}" in foreign["message"]
    monitor = child(emulator, "podmonitors")
    assert monitor is not None
    assert monitor["metadata"]["labels"] == {"team": "sre"}
    assert child(emulator, "prometheusrules") is not None
    assert condition(bookstore(emulator, STORE), "Ready")["status"] == "True"


async def test_paused_looks_but_does_not_touch_the_monitoring_children(
    emulator: Emulator, operator: Operator
) -> None:
    install_crds(emulator)
    await ready_store(emulator, MONITORING)
    await wait_condition(emulator, "MonitoringApplied")
    await api(emulator, "PATCH", STORE_PATH, {"spec": {"paused": True}}, merge=True)
    # Pausing changes the rule (a paused store's alerts expect no catalog pods): not applied.
    await wait_condition(emulator, "Paused")
    await api(emulator, "DELETE", child_path("podmonitors"))
    await eventually(
        lambda: (
            monitoring_ready(emulator).get("reason") == "Paused"
            and f"PodMonitor/{STORE}" in monitoring_ready(emulator)["message"]
        ),
        what="MonitoringReady Paused, naming the PodMonitor it does not recreate",
        show=lambda: monitoring_ready(emulator),
    )
    await settle(emulator, STORE)
    assert child(emulator, "podmonitors") is None

    await api(emulator, "PATCH", STORE_PATH, {"spec": {"paused": False}}, merge=True)
    await wait_condition(emulator, "MonitoringApplied")
    assert child(emulator, "podmonitors") is not None

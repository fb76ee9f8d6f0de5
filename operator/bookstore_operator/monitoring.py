"""Reconcile the monitoring children (PodMonitor, PrometheusRule) of a Bookstore (issue 13).

They are Prometheus Operator kinds, so they can only exist where its CRDs are served: every
reconcile asks the API server's discovery (one GET of /apis/monitoring.coreos.com/v1), so CRDs
installed later are picked up by the next resync. Where they are missing, or a write is
refused, the MonitoringReady condition and one Warning event (on the change, not on every
reconcile) say so, and the reconcile goes on: monitoring never makes a Bookstore unready,
Degraded or retried. The children are written like the others (server-side apply as
`bookstore-operator`, the applied-hash of `apply`, the controller ownerReference), but they
are kept out of the reconcile's ApplyReport: creating a PodMonitor is not a rollout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

import kopf
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from bookstore_operator import kube
from bookstore_operator.apply import apply_body, needs_apply
from bookstore_operator.builders.monitoring import (
    MONITORING_API_VERSION,
    build_pod_monitor,
    build_prometheus_rule,
)
from bookstore_operator.client import PLURALS as KIND_PLURALS
from bookstore_operator.errors import ChildWriteError
from bookstore_operator.models import Bookstore
from bookstore_operator.status import Verdict

CONDITION = "MonitoringReady"
MONITORING_GROUP = MONITORING_API_VERSION.split("/", 1)[0]
# kind -> plural, in the order they are applied.
PLURALS = {
    kind: KIND_PLURALS[(MONITORING_API_VERSION, kind)] for kind in ("PodMonitor", "PrometheusRule")
}
# Failures of this step's API calls: reported, never raised (see the module docstring).
API_FAILURES = (ApiException, TimeoutError, ConnectionError, urllib3.exceptions.HTTPError)
FAILING_REASONS = frozenset({"MonitoringCRDsMissing", "MonitoringRefused", "ChildNotOwned"})


@dataclasses.dataclass
class MonitoringReport:
    """What the monitoring step found and did in one reconcile."""

    enabled: bool
    missing: list[str] = dataclasses.field(default_factory=list)  # e.g. podmonitors.monitoring...
    present: list[str] = dataclasses.field(default_factory=list)  # children in their desired state
    created: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)
    waiting: list[str] = dataclasses.field(default_factory=list)  # paused: not written
    foreign: list[str] = dataclasses.field(default_factory=list)
    failure: str = ""

    @property
    def verdict(self) -> Verdict | None:
        """The MonitoringReady condition; None (no condition) while monitoring is disabled."""
        if not self.enabled:
            return None
        if self.failure:
            return Verdict(False, "MonitoringRefused", self.failure)
        if self.foreign:
            names = ", ".join(self.foreign)
            message = (
                f"{names} exists but is not owned by this Bookstore; the operator leaves it"
                " alone: delete or rename it"
            )
            return Verdict(False, "ChildNotOwned", message)
        if self.missing:
            message = (
                f"This cluster serves no {' and no '.join(self.missing)}: install the Prometheus"
                " Operator's CRDs (monitoring.coreos.com/v1) for the operator to create them; it"
                " looks again on every resync. The Bookstore itself is unaffected"
            )
            if self.present:
                message = f"{message} ({', '.join(self.present)} applied)"
            return Verdict(False, "MonitoringCRDsMissing", message)
        if self.waiting:
            message = f"spec.paused is true: {', '.join(self.waiting)} not applied"
            return Verdict(False, "Paused", message)
        return Verdict(True, "MonitoringApplied", f"{' and '.join(self.present)} applied")


def desired(store: Bookstore) -> dict[str, dict[str, Any] | None]:
    """The monitoring children by kind; None where the spec does not want one."""
    return {"PodMonitor": build_pod_monitor(store), "PrometheusRule": build_prometheus_rule(store)}


async def served_resources(client: kube.Kube) -> set[str]:
    """The monitoring.coreos.com/v1 resources the API server serves (empty without the CRDs)."""
    try:
        found = await client.request("GET", f"/apis/{MONITORING_API_VERSION}")
    except ApiException as exc:
        if exc.status == 404:
            return set()
        raise
    return {
        str(resource["name"])
        for resource in (found or {}).get("resources") or []
        if "/" not in str(resource.get("name", "/"))  # not a subresource
    }


async def reconcile_monitoring(client: kube.Kube, store: Bookstore) -> MonitoringReport:
    """Bring the PodMonitor and PrometheusRule to the spec where the cluster serves them.

    Disabled: the ones that exist are deleted. Paused: looked at, not written. Never raises
    for the API's answers: they become the report's failure (the MonitoringReady condition).
    """
    report = MonitoringReport(enabled=store.spec.monitoring.enabled)
    child = ""
    try:
        served = await served_resources(client)
        for kind, manifest in desired(store).items():
            child = f"{kind}/{store.child_name()}"
            if PLURALS[kind] not in served:
                if manifest is not None:
                    report.missing.append(f"{PLURALS[kind]}.{MONITORING_GROUP}")
                continue
            await converge(client, store, kind, manifest, report)
    except ApiException as exc:
        refusal = ChildWriteError(child or "monitoring discovery", exc)
        report.failure = (
            f"The API server refused {refusal.child} ({refusal.advice}): {refusal.detail}"
        )
    except API_FAILURES as exc:
        report.failure = (
            f"The API server could not be reached for {child}: {exc!r}; retried on resync"
        )
    return report


async def converge(
    client: kube.Kube,
    store: Bookstore,
    kind: str,
    manifest: dict[str, Any] | None,
    report: MonitoringReport,
) -> None:
    """One monitoring child: create or apply it when it differs, delete it when unwanted."""
    name = store.child_name()
    label = f"{kind}/{name}"
    live = await client.get(MONITORING_API_VERSION, kind, store.namespace, name)
    if live is not None and not kube.is_owned(live, store):
        if manifest is not None:
            report.foreign.append(label)
        return
    if manifest is None:
        if live is not None and not store.spec.paused:
            await client.delete(MONITORING_API_VERSION, kind, store.namespace, name)
            report.deleted.append(label)
        return
    body = apply_body(manifest)
    if live is not None and not needs_apply(live, body):
        report.present.append(label)
        return
    if store.spec.paused:
        report.waiting.append(label)
        return
    applied = await client.apply(body)
    report.present.append(label)
    if live is None:
        report.created.append(label)
    elif _version(applied) != _version(live):
        report.updated.append(label)
    # else the API server found nothing to change (e.g. a value its schema defaults): no event


def _version(obj: Mapping[str, Any] | None) -> str | None:
    version = ((obj or {}).get("metadata") or {}).get("resourceVersion")
    return None if version is None else str(version)


def announce_monitoring(
    body: Mapping[str, Any],
    report: MonitoringReport,
    previous: Mapping[str, Any],
    status: Mapping[str, Any],
) -> None:
    """Normal events for the children written; one Warning when MonitoringReady turns to a
    failure reason (not on every reconcile that still finds it)."""
    target = kopf.Body(cast(kopf.RawBody, dict(body)))
    for verb, names in (
        ("Created", report.created),
        ("Updated", report.updated),
        ("Deleted", report.deleted),
    ):
        for name in names:
            kopf.info(target, reason=verb, message=f"{verb} {name}")
    before = {c.get("type"): c for c in previous.get("conditions") or []}.get(CONDITION, {})
    after = {c["type"]: c for c in status.get("conditions") or []}.get(CONDITION)
    if (
        after is not None
        and after["reason"] in FAILING_REASONS
        and before.get("reason") != after["reason"]
    ):
        kopf.warn(target, reason=after["reason"], message=after["message"])

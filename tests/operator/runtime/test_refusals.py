"""Every refused child write reaches the status and an event within one reconcile (issue 9 #2).

The API servers' own answers are replayed: a ResourceQuota's 403, an admission webhook's
denial, a 422, a storm of 409s. The emulator here refuses writes to chosen children with
the exact Status a real kube-apiserver sends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp.web
import attrs
import kmock
import pytest
from kmock._internal import rendering

from tests.operator.runtime.conftest import (
    BOOKSTORES,
    NAMESPACE,
    Operator,
    api,
    bookstore,
    condition,
    create_bookstore,
    eventually,
    mark_workloads_ready,
    migrate_first_version,
    serving,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator

# One reconcile of a new Bookstore takes well under a second here; kopf's retry delays for
# these failures are 10 s and more, so status within this time came from the first reconcile.
ONE_RECONCILE = 5.0
QUOTA = (
    'deployments.apps "downtown-orders" is forbidden: exceeded quota: q, requested:'
    " count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"
)
DENIED = (
    'admission webhook "validate.kyverno.svc-fail" denied the request: policy'
    " require-team-label: label 'team' is required"
)


@dataclasses.dataclass
class Refusal:
    """Refuse the operator's writes (create, patch, apply) to one child, as the server would."""

    plural: str
    name: str
    status: int
    reason: str
    message: str
    remaining: int = 1000

    def matches(self, request: rendering.Request) -> bool:
        if request.resource is None or request.resource.plural != self.plural:
            return False
        if request.method.value not in ("POST", "PUT", "PATCH") or request.subresource:
            return False
        data = request.data if isinstance(request.data, dict) else {}
        name = request.name or (data.get("metadata") or {}).get("name")
        return bool(name == self.name and self.remaining > 0)


@attrs.define(kw_only=True)
class RefusingEmulator(Emulator):
    """The emulator, refusing the writes named in `refusals` with a real server's Status."""

    refusals: list[Refusal] = attrs.field(factory=list, init=False)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        for refusal in self.refusals:
            if refusal.matches(request):
                refusal.remaining -= 1
                raise kmock.KubernetesError(
                    status=refusal.status, reason=refusal.reason, message=refusal.message
                )
        return await super()._handle(request)

    def attempts(self, plural: str, name: str) -> int:
        """Write requests made for one child (refused or not)."""
        probe = Refusal(plural, name, 0, "", "")
        return sum(1 for request in self.writes() if probe.matches(request))


@pytest.fixture
async def emulator() -> AsyncIterator[RefusingEmulator]:
    """The conftest fixture's emulator, able to refuse writes."""
    async with serving(RefusingEmulator()) as server:
        yield server


def reported(emulator: Emulator, reason: str, phase: str) -> dict[str, Any] | None:
    """The Ready condition once the status says phase/reason, else None."""
    store = bookstore(emulator, "downtown")
    ready = condition(store, "Ready")
    ok = (store.get("status") or {}).get("phase") == phase and ready.get("reason") == reason
    return ready if ok and ready["status"] == "False" else None


def warnings(emulator: Emulator, reason: str) -> list[str]:
    return [
        e["message"]
        for e in emulator.live_items("v1/events")
        if e.get("type") == "Warning"
        and e.get("reason") == reason
        and e["involvedObject"]["name"] == "downtown"
    ]


async def refused_in_one_reconcile(
    emulator: Emulator, reason: str, phase: str, child: str
) -> dict[str, Any]:
    """Status and a Warning event name the refusal and the child within one reconcile."""
    ready: dict[str, Any] = await eventually(
        lambda: reported(emulator, reason, phase),
        within=ONE_RECONCILE,
        what=f"phase {phase}, Ready reason {reason}",
        show=lambda: bookstore(emulator, "downtown").get("status"),
    )
    assert child in ready["message"]
    [message, *_] = await eventually(
        lambda: warnings(emulator, reason), within=ONE_RECONCILE, what=f"a Warning {reason}"
    )
    assert child in message
    return ready


async def test_quota_refusal_reaches_status_and_an_event_while_the_rest_is_applied(
    emulator: RefusingEmulator, operator: Operator
) -> None:
    emulator.refusals.append(Refusal("deployments", "downtown-orders", 403, "Forbidden", QUOTA))
    await create_bookstore(emulator, "downtown")
    await migrate_first_version(emulator, "downtown")

    ready = await refused_in_one_reconcile(
        emulator, "QuotaExceeded", "Degraded", "Deployment/downtown-orders"
    )
    assert QUOTA in ready["message"]  # the API server's own words
    assert "ResourceQuota" in ready["message"]
    # The children the quota did not refuse were applied in the same reconcile.
    assert emulator.live("apps/v1/deployments", NAMESPACE, "downtown-catalog") is not None
    assert emulator.live("v1/services", NAMESPACE, "downtown-orders") is not None
    assert emulator.live("apps/v1/deployments", NAMESPACE, "downtown-orders") is None

    emulator.refusals.clear()  # the quota was raised: the retries create it
    await eventually(
        lambda: emulator.live("apps/v1/deployments", NAMESPACE, "downtown-orders"),
        what="the orders Deployment once the quota allows it",
    )
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")


@pytest.mark.parametrize(("status", "phase"), [(400, "Failed"), (403, "Degraded")])
async def test_admission_webhook_denial_reaches_status_and_an_event(
    emulator: RefusingEmulator, operator: Operator, status: int, phase: str
) -> None:
    # A webhook's denial comes with the code it chose (400 when it gives none).
    emulator.refusals.append(Refusal("deployments", "downtown-catalog", status, "x", DENIED))
    await create_bookstore(emulator, "downtown")
    await migrate_first_version(emulator, "downtown")

    ready = await refused_in_one_reconcile(
        emulator, "AdmissionDenied", phase, "Deployment/downtown-catalog"
    )
    assert DENIED in ready["message"]


async def test_invalid_child_fails_the_bookstore_and_the_others_are_still_applied(
    emulator: RefusingEmulator, operator: Operator
) -> None:
    message = 'ConfigMap "downtown-postgres-init" is invalid: data: Too long: must have at most'
    emulator.refusals.append(
        Refusal("configmaps", "downtown-postgres-init", 422, "Invalid", message)
    )
    await create_bookstore(emulator, "downtown")
    await migrate_first_version(emulator, "downtown")

    ready = await refused_in_one_reconcile(
        emulator, "ChildRejected", "Failed", "ConfigMap/downtown-postgres-init"
    )
    assert "422" in ready["message"]
    assert message in ready["message"]
    await eventually(
        lambda: emulator.live("apps/v1/deployments", NAMESPACE, "downtown-orders"),
        what="the orders Deployment, after the migrations",
    )


async def test_conflict_storm_is_retried_then_reaches_status_and_an_event(
    emulator: RefusingEmulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    conflict = (
        'Operation cannot be fulfilled on deployments.apps "downtown-catalog": the object has'
        " been modified; please apply your changes to the latest version and try again"
    )
    emulator.refusals.append(Refusal("deployments", "downtown-catalog", 409, "Conflict", conflict))
    before = emulator.attempts("deployments", "downtown-catalog")
    change = {"spec": {"catalog": {"resources": {"requests": {"cpu": "300m"}}}}}
    await api(emulator, "PATCH", f"{BOOKSTORES}/downtown", change, merge=True)

    ready = await refused_in_one_reconcile(
        emulator, "ChildConflict", "Degraded", "Deployment/downtown-catalog"
    )
    assert conflict in ready["message"]
    # Retried at once within that reconcile before it was reported.
    assert emulator.attempts("deployments", "downtown-catalog") - before >= 3

    emulator.refusals.clear()
    await eventually(
        lambda: (
            (emulator.live("apps/v1/deployments", NAMESPACE, "downtown-catalog") or {})["spec"][
                "template"
            ]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
            == "300m"
        ),
        what="the change applied once the conflicts stop",
    )
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")

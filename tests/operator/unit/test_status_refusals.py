"""Refused child writes as status reports them: reason, phase and the API server's own words."""

from __future__ import annotations

import json

import pytest
from bookstore_operator.builders import ChildKey, build_children
from bookstore_operator.errors import ChildWriteError
from bookstore_operator.models import Bookstore
from bookstore_operator.reconciler import apply_units, refusal_problem
from bookstore_operator.settings import OperatorSettings
from kubernetes.client.exceptions import ApiException

QUOTA = (
    'deployments.apps "q-orders" is forbidden: exceeded quota: q, requested:'
    " count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"
)
WEBHOOK = 'admission webhook "validate.kyverno.svc" denied the request: images must be signed'
POLICY = "ValidatingAdmissionPolicy 'no-hostpath' with binding 'b' denied request: no hostPath"
UNREACHABLE = (
    'Internal error occurred: failed calling webhook "mutate.example.com": context deadline'
    " exceeded"
)


def refused(status: int, reason: str, message: str) -> ChildWriteError:
    """A ChildWriteError carrying the Status body a real API server answers with."""
    body = {"kind": "Status", "status": "Failure", "reason": reason, "message": message}
    cause = ApiException(status=status, reason=reason)
    cause.body = json.dumps({**body, "code": status})
    return ChildWriteError("Deployment/q-orders", cause)


@pytest.mark.parametrize(
    ("status", "reason", "message", "refusal", "phase"),
    [
        (403, "Forbidden", QUOTA, "QuotaExceeded", "Degraded"),
        (400, "BadRequest", WEBHOOK, "AdmissionDenied", "Failed"),
        (403, "Forbidden", WEBHOOK, "AdmissionDenied", "Degraded"),
        (403, "Forbidden", POLICY, "AdmissionDenied", "Degraded"),
        (500, "InternalError", UNREACHABLE, "AdmissionWebhookFailed", "Degraded"),
        (409, "Conflict", "the object has been modified", "ChildConflict", "Degraded"),
        (503, "ServiceUnavailable", "etcd leader changed", "ApiServerError", "Degraded"),
        (422, "Invalid", 'Deployment.apps "q-orders" is invalid: x', "ChildRejected", "Failed"),
    ],
    ids=lambda value: value if isinstance(value, int) else None,
)
def test_refusal_names_its_cause_the_child_and_the_servers_words(
    status: int, reason: str, message: str, refusal: str, phase: str
) -> None:
    problem = refusal_problem(refused(status, reason, message))
    assert (problem.reason, problem.phase) == (refusal, phase)
    assert problem.message.startswith("The API server refused Deployment/q-orders (")
    assert f"{status} {reason}: {message}" in problem.message


def test_quota_refusal_says_what_to_change() -> None:
    problem = refusal_problem(refused(403, "Forbidden", QUOTA))
    assert "ResourceQuota" in problem.message


def store(spec: dict[str, object]) -> Bookstore:
    body = {"metadata": {"name": "q", "namespace": "shop", "uid": "u1"}, "spec": spec}
    return Bookstore.parse(body, OperatorSettings())


@pytest.mark.parametrize("autoscaling", [True, False])
def test_children_are_applied_one_by_one_each_deployment_with_its_hpa(autoscaling: bool) -> None:
    spec = {c: {"autoscaling": {"enabled": autoscaling}} for c in ("catalog", "orders")}
    desired = build_children(store(spec))
    units = apply_units(desired)
    flat = [key for unit in units for key in unit]
    assert sorted(flat) == sorted(desired)  # every child once, and nothing else
    others = [key for key in desired if key.kind != "HorizontalPodAutoscaler" or not autoscaling]
    assert [unit_key for unit_key, *_ in units] == others  # in creation order
    for unit in units:
        first, *rest = unit
        if first.kind == "Deployment" and autoscaling:
            assert rest == [ChildKey("autoscaling/v2", "HorizontalPodAutoscaler", first.name)]
        else:
            assert rest == []

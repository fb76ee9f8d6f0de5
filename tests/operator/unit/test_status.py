"""compute_status, the pure half of status reporting: phases, conditions, and the CRD's shape.

Pure and fast: no kopf runtime, no emulator; tests/operator/runtime checks the same status
end to end.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kopf
import pydantic
import pytest
import yaml
from bookstore_operator.errors import ChildWriteError, UserFixableError, classify
from bookstore_operator.models import Bookstore
from bookstore_operator.settings import OperatorSettings
from bookstore_operator.status import Observed, Problem, compute_status
from kubernetes.client.exceptions import ApiException

CRD = pathlib.Path(__file__).parents[3] / "crds" / "bookstore.dev_bookstores.yaml"
NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def closed(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema with additionalProperties: false everywhere (what pruning amounts to)."""
    result = dict(schema)
    if "properties" in result:
        result["properties"] = {k: closed(v) for k, v in result["properties"].items()}
        result["additionalProperties"] = False
    if "items" in result:
        result["items"] = closed(result["items"])
    return result


STATUS_SCHEMA = closed(
    yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["status"]
)


def store(spec: dict[str, Any] | None = None, generation: int = 3) -> Bookstore:
    body = {
        "metadata": {
            "name": "downtown",
            "namespace": "shop",
            "uid": "u1",
            "generation": generation,
        },
        "spec": spec or {},
    }
    return Bookstore.parse(body, OperatorSettings())


def workload(ready: int, *, replicas: int = 2, rolled_out: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"generation": 5},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 5 if rolled_out else 4,
            "replicas": replicas,
            "updatedReplicas": replicas if rolled_out else 0,
            "readyReplicas": ready,
            "conditions": [{"type": "Available", "status": "True" if ready else "False"}],
        },
    }


def conditions(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


DATABASE = workload(1, replicas=1)
READY = Observed(catalog=workload(2), orders=workload(2), database=DATABASE)
SCENARIOS = {
    "nothing yet": (store(), Observed(), "Pending", "False", "StatefulSetMissing"),
    "rolling out": (
        store(),
        Observed(catalog=workload(0, rolled_out=False), orders=workload(2), database=DATABASE),
        "Progressing",
        "True",
        "StatefulSetReady",
    ),
    "all ready": (store(), READY, "Ready", "False", "StatefulSetReady"),
    "just changed": (
        store(),
        Observed(**{**READY.__dict__, "changed": True}),
        "Progressing",
        "True",
        "StatefulSetReady",
    ),
    "unavailable after rollout": (
        store(),
        Observed(catalog=workload(1), orders=workload(2), database=DATABASE),
        "Progressing",
        "True",
        "StatefulSetReady",
    ),
    "secret missing": (
        store({"database": {"external": {"secretName": "pg"}}}),
        Observed(problems=(Problem("ExternalSecretMissing", "create Secret pg"),)),
        "Failed",
        "False",
        "ExternalSecretMissing",
    ),
    "foreign child": (
        store(),
        Observed(**{**READY.__dict__, "problems": (Problem("ChildNotOwned", "x", "Degraded"),)}),
        "Degraded",
        "False",
        "StatefulSetReady",
    ),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_phase_and_conditions_follow_the_observed_state(scenario: str) -> None:
    bookstore, observed, phase, progressing, database_reason = SCENARIOS[scenario]
    status = compute_status(bookstore, observed, {}, NOW)
    assert status["phase"] == phase
    found = conditions(status)
    assert found["Progressing"]["status"] == progressing
    assert found["DatabaseReady"]["reason"] == database_reason
    assert found["Ready"]["status"] == ("True" if phase == "Ready" else "False")
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    jsonschema.validate(status, STATUS_SCHEMA)  # only fields the CRD declares (none pruned)


def test_ready_status_reports_version_replicas_and_endpoints() -> None:
    status = compute_status(store({"version": "1.2.3"}), READY, {}, NOW)
    assert status["version"] == "1.2.3"
    assert status["catalog"] == {"replicas": 2, "readyReplicas": 2, "ready": "2/2"}
    assert status["endpoints"] == {
        "catalog": "http://downtown-catalog.shop.svc:8000",
        "orders": "http://downtown-orders.shop.svc:8000",
    }


def test_version_stays_at_the_last_one_fully_rolled_out_until_the_new_one_is() -> None:
    previous = compute_status(store({"version": "1.0.0"}), READY, {}, NOW)
    rolling = Observed(catalog=workload(0, rolled_out=False), orders=workload(2))
    status = compute_status(store({"version": "2.0.0"}), rolling, previous, LATER)
    assert status["version"] == "1.0.0"


def test_transition_time_changes_only_when_a_condition_status_changes() -> None:
    first = compute_status(store(), READY, {}, NOW)
    same = compute_status(store(), READY, first, LATER)
    assert same == first
    rolling = Observed(catalog=workload(0, rolled_out=False), orders=workload(2))
    flipped = conditions(compute_status(store(), rolling, first, LATER))
    assert flipped["Ready"]["lastTransitionTime"] == LATER
    assert flipped["OrdersReady"]["lastTransitionTime"] == NOW


def test_paused_says_so_and_is_not_ready_while_changes_wait() -> None:
    drifted = Observed(**{**READY.__dict__, "in_sync": False})
    found = conditions(compute_status(store({"paused": True}), drifted, {}, NOW))
    assert found["Progressing"]["status"] == "False"
    assert found["Progressing"]["reason"] == "Paused"
    assert found["Progressing"]["message"].startswith("spec.paused is true: ")
    assert found["Ready"]["reason"] == "Paused"


def api_error(status: int) -> ApiException:
    return ApiException(status=status, reason="Reason")


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (api_error(409), kopf.TemporaryError),
        (api_error(429), kopf.TemporaryError),
        (api_error(500), kopf.TemporaryError),
        (api_error(503), kopf.TemporaryError),
        (api_error(403), kopf.TemporaryError),
        (TimeoutError(), kopf.TemporaryError),
        (UserFixableError("ExternalSecretMissing", "create it"), kopf.TemporaryError),
        (api_error(422), kopf.PermanentError),
        (api_error(400), kopf.PermanentError),
        (ChildWriteError("Deployment/x", api_error(422)), kopf.PermanentError),
        (ChildWriteError("Deployment/x", api_error(500)), kopf.TemporaryError),
    ],
    ids=repr,
)
def test_every_failure_is_classified_permanent_or_temporary(
    failure: Exception, kind: type[Exception]
) -> None:
    assert type(classify(failure)) is kind


def test_invalid_spec_is_permanent() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        store({"database": {"deletionPolicy": "Sometimes"}})
    assert isinstance(classify(caught.value), kopf.PermanentError)


def test_conflicts_retry_sooner_than_server_errors() -> None:
    conflict, server = classify(api_error(409)), classify(api_error(500))
    assert isinstance(conflict, kopf.TemporaryError)
    assert isinstance(server, kopf.TemporaryError)
    assert conflict.delay is not None
    assert server.delay is not None
    assert conflict.delay < server.delay


def claim(requested: str, capacity: str | None = None) -> dict[str, Any]:
    status = {"capacity": {"storage": capacity}} if capacity else {}
    return {"spec": {"resources": {"requests": {"storage": requested}}}, "status": status}


@pytest.mark.parametrize(
    ("claims", "storage"),
    [
        ((claim("5Gi", "5Gi"),), "5Gi"),
        ((claim("10Gi", "5Gi"),), "5Gi"),  # growth asked for, not done: the volume is 5Gi
        ((claim("5Gi"),), "5Gi"),  # no capacity reported yet: the request
        ((claim("10Gi", "10Gi"), claim("10Gi", "6144Mi")), "6144Mi"),  # the smallest
        ((), None),  # no volume yet
    ],
    ids=repr,
)
def test_status_reports_the_data_volume_size_the_spec_may_return_to(
    claims: tuple[dict[str, Any], ...], storage: str | None
) -> None:
    status = compute_status(store(), Observed(**{**READY.__dict__, "claims": claims}), {}, NOW)
    assert status.get("database") == (None if storage is None else {"storage": storage})
    jsonschema.validate(status, STATUS_SCHEMA)


def test_external_database_reports_no_volume_size() -> None:
    external = store({"database": {"external": {"secretName": "pg"}}})
    status = compute_status(external, Observed(claims=(claim("5Gi", "5Gi"),)), {}, NOW)
    assert "database" not in status


def test_drift_repair_that_needs_no_new_pods_keeps_ready_and_its_transition_time() -> None:
    before = compute_status(store(), READY, {}, NOW)
    repaired = Observed(**{**READY.__dict__, "changed": True, "in_sync": False})
    after = compute_status(store(), repaired, before, LATER)
    assert after == before  # nothing to write: Ready True since NOW, Progressing False
    assert conditions(after)["Ready"]["lastTransitionTime"] == NOW


def test_the_same_writes_after_a_spec_change_are_a_rollout() -> None:
    before = compute_status(store(generation=2), READY, {}, NOW)
    changed = Observed(**{**READY.__dict__, "changed": True, "in_sync": False})
    found = conditions(compute_status(store(generation=3), changed, before, LATER))
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("False", "RolloutInProgress")
    assert found["Progressing"]["status"] == "True"


def test_drift_repair_that_rolls_pods_out_again_is_progressing() -> None:
    before = compute_status(store(), READY, {}, NOW)
    rolling = Observed(
        catalog=workload(2, rolled_out=False), orders=workload(2), database=DATABASE, changed=True
    )
    status = compute_status(store(), rolling, before, LATER)
    found = conditions(status)
    assert found["Progressing"]["status"] == "True"
    assert found["CatalogReady"]["reason"] == "RolloutInProgress"
    assert status["phase"] == "Progressing"


@pytest.mark.parametrize(
    ("spec", "ready_pods", "reason"),
    [
        ({"autoscaling": {"minReplicas": 3}}, 2, "BelowMinReplicas"),
        ({"autoscaling": {"minReplicas": 3}}, 3, "DeploymentAvailable"),
        ({"replicas": 3, "autoscaling": {"enabled": False}}, 2, "BelowMinReplicas"),
        ({"replicas": 1, "autoscaling": {"enabled": False}}, 1, "DeploymentAvailable"),
    ],
    ids=repr,
)
def test_ready_waits_for_the_minimum_replicas_even_when_the_deployment_is_rolled_out(
    spec: dict[str, Any], ready_pods: int, reason: str
) -> None:
    # The Deployment asks for no more pods than are ready (e.g. the HPA has not raised it yet).
    catalog = workload(ready_pods, replicas=ready_pods)
    observed = Observed(catalog=catalog, orders=workload(2), database=DATABASE)
    status = compute_status(store({"catalog": spec}), observed, {}, NOW)
    found = conditions(status)
    assert found["CatalogReady"]["reason"] == reason
    below = reason == "BelowMinReplicas"
    assert found["Ready"]["status"] == ("False" if below else "True")
    assert status["phase"] == ("Progressing" if below else "Ready")
    if below:
        assert "spec.catalog." in found["CatalogReady"]["message"]

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

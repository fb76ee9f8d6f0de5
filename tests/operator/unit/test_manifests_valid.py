"""Every manifest any builder can produce is valid Kubernetes and its pods are "restricted"."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from tests.operator.unit.stores import (
    all_bookstore_bodies,
    all_manifests,
    example_documents,
    parse_store,
    store_for,
)
from tests.pod_security import restricted_violations

BODIES = all_bookstore_bodies()
OLDEST_SUPPORTED = "1.30"
VERSIONS = [OLDEST_SUPPORTED, kubernetes_validate.utils.latest_version()]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("body_name", BODIES)
def test_every_manifest_validates_strictly(body_name: str, version: str) -> None:
    for manifest in all_manifests(parse_store(BODIES[body_name])):
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_strict_validation_catches_an_unknown_field(version: str) -> None:
    [deployment] = [m for m in all_manifests(store_for("defaults")) if m["kind"] == "Deployment"][
        :1
    ]
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


@pytest.mark.parametrize("body_name", BODIES)
def test_every_pod_meets_pod_security_restricted_with_requests_and_limits(body_name: str) -> None:
    pods = [
        manifest["spec"]["template"]["spec"]
        for manifest in all_manifests(parse_store(BODIES[body_name]))
        if "template" in manifest.get("spec", {})
    ]
    assert pods
    for pod in pods:
        assert restricted_violations(pod) == []
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert any(mount["mountPath"] == "/tmp" for mount in container["volumeMounts"])


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"hostNetwork": True}, "hostNetwork is set"),
        (
            {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
            "volume root has type ['hostPath']",
        ),
        ({"securityContext": {}}, "runAsNonRoot is not true"),
    ],
)
def test_pod_security_check_reports_violations(change: dict[str, object], problem: str) -> None:
    [deployment] = [m for m in all_manifests(store_for("defaults")) if m["kind"] == "Deployment"][
        :1
    ]
    pod = {**deployment["spec"]["template"]["spec"], **change}
    if "securityContext" in change:
        del pod["containers"][0]["securityContext"]["runAsNonRoot"]
    assert any(problem in found for found in restricted_violations(pod))


@pytest.mark.parametrize("version", VERSIONS)
def test_every_other_example_document_validates_strictly(version: str) -> None:
    others = [doc for _, doc in example_documents() if doc["kind"] != "Bookstore"]
    assert others  # the external database example ships its Secret
    for document in others:
        kubernetes_validate.validate(document, version, strict=True)

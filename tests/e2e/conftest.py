"""Fixtures of the end-to-end suite: a reachable cluster (else ONE skip line), the chart
installed with the image under test, and throwaway namespaces.

The cluster is whatever the current kubeconfig points at (`make demo` makes a kind cluster
with the image loaded). The image is $BOOKSTORE_E2E_IMAGE (default bookstore:dev, the tag
`make demo` builds and loads).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.chart.helm import CHART, find_helm
from tests.e2e.cluster import eventually, run, unreachable_reason

RELEASE = "bookstore-operator"
RELEASE_NAMESPACE = "bookstore-system"
GROUP, VERSION, PLURAL = "bookstore.dev", "v1alpha1", "bookstores"


@functools.cache
def skip_reason() -> str | None:
    """Checked once per session: why the suite cannot run here, if it cannot."""
    return unreachable_reason()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Without a reachable cluster, skip every e2e test from here: one reason, one line."""
    if Path(__file__).parent in item.path.parents:
        reason = skip_reason()
        if reason is not None:
            pytest.skip(f"e2e needs a reachable Kubernetes cluster: {reason}")


def image_under_test() -> tuple[str, str]:
    """(repository, tag) of the image the chart installs and the operator runs."""
    image = os.environ.get("BOOKSTORE_E2E_IMAGE", "bookstore:dev")
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return image, "latest"
    return repository, tag


@pytest.fixture(scope="session")
def operator_release() -> Iterator[str]:
    """The chart installed or upgraded as release `bookstore-operator` (removed if we made it)."""
    helm = find_helm()
    if helm is None:
        pytest.fail("No helm binary: run `make helm` (or set $HELM).", pytrace=False)
    existed = run(helm, "status", RELEASE, "-n", RELEASE_NAMESPACE, check=False).returncode == 0
    repository, tag = image_under_test()
    run(
        helm, "upgrade", "--install", RELEASE, str(CHART),
        "--namespace", RELEASE_NAMESPACE, "--create-namespace",
        "--set", f"image.repository={repository}",
        "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=IfNotPresent",
        "--set", "resyncSeconds=15",
        "--wait", "--timeout", "5m",
    )  # fmt: skip
    yield repository
    if not existed:
        run(helm, "uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", check=False)


@pytest.fixture
def new_namespace() -> Iterator[Callable[[], str]]:
    """Make throwaway namespaces; all are deleted (with what they hold) after the test."""
    made: list[str] = []
    core = client.CoreV1Api()

    def make() -> str:
        name = f"bookstore-e2e-{uuid.uuid4().hex[:6]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        made.append(name)
        return name

    yield make
    for name in made:
        core.delete_namespace(name)


def create_bookstore(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Create a Bookstore object and return it as the API server stored it."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Bookstore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    api = client.CustomObjectsApi()
    return cast(
        dict[str, Any], api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    )


def get_bookstore(namespace: str, name: str) -> dict[str, Any]:
    """The Bookstore as it is now."""
    api = client.CustomObjectsApi()
    return cast(
        dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    )


def patch_bookstore(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch the Bookstore's spec."""
    api = client.CustomObjectsApi()
    patched = api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": spec}
    )
    return cast(dict[str, Any], patched)


def as_dict(obj: object) -> dict[str, Any]:
    """A kubernetes-client model as the plain JSON dict the API server sent."""
    serialized = client.ApiClient().sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    return cast(dict[str, Any], serialized)


def read(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """One object of a core kind as a dict, None when it does not exist."""
    core, apps, scaling = client.CoreV1Api(), client.AppsV1Api(), client.AutoscalingV2Api()
    readers: dict[str, Callable[[str, str], object]] = {
        "Service": core.read_namespaced_service,
        "Secret": core.read_namespaced_secret,
        "PersistentVolumeClaim": core.read_namespaced_persistent_volume_claim,
        "Deployment": apps.read_namespaced_deployment,
        "StatefulSet": apps.read_namespaced_stateful_set,
        "HorizontalPodAutoscaler": scaling.read_namespaced_horizontal_pod_autoscaler,
    }
    try:
        return as_dict(readers[kind](name, namespace))
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def wait_ready(namespace: str, name: str, timeout: float = 600) -> dict[str, Any]:
    """Wait until Ready is True for the Bookstore's current generation."""

    def ready() -> dict[str, Any] | None:
        store = get_bookstore(namespace, name)
        status = store.get("status", {})
        current = status.get("observedGeneration") == store["metadata"]["generation"]
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        return store if current and conditions.get("Ready") == "True" else None

    return eventually(ready, timeout=timeout, interval=5, what=f"bookstore/{name} Ready")

"""Fixtures of the end-to-end suite: a reachable cluster (else ONE skip line, or a failure when
`make e2e` asked for it), the chart installed with the image under test, throwaway namespaces.

The cluster is whatever the current kubeconfig points at. `make e2e` (hack/e2e.py) builds the
image and loads it into a kind cluster, or takes IMAGE= for any other cluster, and passes it as
$BOOKSTORE_E2E_IMAGE. Teardown deletes the Bookstores and waits until they are gone before it
deletes their namespace or uninstalls the operator: kopf's finalizer needs the operator running.
"""

from __future__ import annotations

import contextlib
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
# The suite's own waits, and pytest's per-test timeout above their sum: a slow cluster gets the
# suite's "timed out after ...s waiting for ..." message, not pytest-timeout's stack dump.
HELM_WAIT_SECONDS = 300
READY_WAIT_SECONDS = 600
GONE_WAIT_SECONDS = 300
# The worst test: the session's helm install, a module's first Ready, a test's own Ready wait
# plus a 180 s rollout probe, then the teardown's wait for its Bookstores to go.
E2E_TEST_TIMEOUT_SECONDS = (
    HELM_WAIT_SECONDS + 2 * READY_WAIT_SECONDS + 180 + GONE_WAIT_SECONDS + 300
)
RELEASE_NAMESPACE = "bookstore-system"
GROUP, VERSION, PLURAL = "bookstore.dev", "v1alpha1", "bookstores"
NAMESPACE_PREFIX = "bookstore-e2e-"


@functools.cache
def skip_reason() -> str | None:
    """Checked once per session: why the suite cannot run here, if it cannot."""
    return unreachable_reason()


def in_suite(item: pytest.Item) -> bool:
    """Whether this test belongs to the e2e suite (hooks here see every collected test)."""
    return Path(__file__).parent in item.path.parents


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every e2e test a timeout longer than the longest wait it may sit through."""
    for item in items:
        if in_suite(item):
            item.add_marker(pytest.mark.timeout(E2E_TEST_TIMEOUT_SECONDS))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Without a reachable cluster, skip every e2e test from here: one reason, one line.

    Under `make e2e` ($BOOKSTORE_E2E_REQUIRED=1) the same reason fails the test instead.
    """
    if in_suite(item):
        reason = skip_reason()
        if reason is not None:
            message = f"e2e needs a reachable Kubernetes cluster: {reason}"
            if os.environ.get("BOOKSTORE_E2E_REQUIRED") == "1":
                pytest.fail(message, pytrace=False)
            pytest.skip(message)


def image_under_test() -> tuple[str, str]:
    """(repository, tag) of the image the chart installs and the operator runs."""
    image = os.environ.get("BOOKSTORE_E2E_IMAGE")
    if not image:
        pytest.fail(
            "No image under test: run `make e2e` (it builds and kind-loads one, or takes IMAGE=),"
            " or set $BOOKSTORE_E2E_IMAGE to an image the cluster's nodes can pull.",
            pytrace=False,
        )
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
        "--wait", "--timeout", f"{HELM_WAIT_SECONDS}s",
        timeout=HELM_WAIT_SECONDS + 60,
    )  # fmt: skip
    yield repository
    # Bookstores the tests left anywhere go first, while the operator can still remove
    # kopf's finalizer; only then the operator itself.
    for namespace in namespaces_with_bookstores():
        delete_bookstores(namespace)
    if not existed:
        run(helm, "uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", check=False)


def list_bookstores(namespace: str | None = None) -> list[dict[str, Any]]:
    """The Bookstores in one namespace, or in every namespace."""
    api = client.CustomObjectsApi()
    if namespace is None:
        listed = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    else:
        listed = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return cast(list[dict[str, Any]], cast(dict[str, Any], listed)["items"])


def namespaces_with_bookstores() -> set[str]:
    """The e2e namespaces that still hold a Bookstore."""
    namespaces = {item["metadata"]["namespace"] for item in list_bookstores()}
    return {namespace for namespace in namespaces if namespace.startswith(NAMESPACE_PREFIX)}


def delete_bookstores(namespace: str) -> None:
    """Delete every Bookstore in the namespace and wait until the operator has let them go."""
    api = client.CustomObjectsApi()
    for item in list_bookstores(namespace):
        with contextlib.suppress(ApiException):  # already going, or gone
            api.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, item["metadata"]["name"]
            )
    eventually(
        lambda: not list_bookstores(namespace),
        timeout=GONE_WAIT_SECONDS,
        interval=3,
        what=f"the Bookstores in {namespace} to be deleted (their finalizer needs the operator)",
    )


def delete_namespace(namespace: str) -> None:
    """Delete a test namespace: its Bookstores first (and wait), then the namespace."""
    delete_bookstores(namespace)
    client.CoreV1Api().delete_namespace(namespace)


@pytest.fixture
def new_namespace() -> Iterator[Callable[[], str]]:
    """Make throwaway namespaces; all are deleted (with what they hold) after the test."""
    made: list[str] = []
    core = client.CoreV1Api()

    def make() -> str:
        name = f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:6]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        made.append(name)
        return name

    yield make
    for name in made:
        delete_namespace(name)


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


def wait_ready(namespace: str, name: str, timeout: float = READY_WAIT_SECONDS) -> dict[str, Any]:
    """Wait until Ready is True for the Bookstore's current generation."""

    def ready() -> dict[str, Any] | None:
        store = get_bookstore(namespace, name)
        status = store.get("status", {})
        current = status.get("observedGeneration") == store["metadata"]["generation"]
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        return store if current and conditions.get("Ready") == "True" else None

    return eventually(ready, timeout=timeout, interval=5, what=f"bookstore/{name} Ready")

"""An upgrade on a real cluster: a Bookstore moves between two tags of the same image while a
client in the cluster keeps placing orders, before, during and after it; none fails, a migration
Job per service runs with the new tag, and status.version ends at it.

The second tag is the image under test tagged `<tag>-next`: on kind it is tagged and loaded
here (docker + kind); on any other cluster, push it first and name it in
$BOOKSTORE_E2E_NEXT_IMAGE (same repository as $BOOKSTORE_E2E_IMAGE).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.e2e.cluster import eventually, port_forward, run
from tests.e2e.conftest import (
    as_dict,
    create_bookstore,
    get_bookstore,
    image_under_test,
    patch_bookstore,
    read,
    wait_ready,
)

NEXT_IMAGE_ENV = "BOOKSTORE_E2E_NEXT_IMAGE"
CLIENT_LABEL = {"app.kubernetes.io/name": "upgrade-orders-client"}
SERVICE_UID = 10001  # the image's user
TWO = {"autoscaling": {"enabled": False}, "replicas": 2}
# Orders the client must place in each phase for the phase to count as tested.
ORDERS_PER_PHASE = 3
# Within the suite's per-test timeout (tests/e2e/conftest.py): the Bookstore's first Ready,
# then the upgrade, then Ready at the new version (which follows closely).
UPGRADE_WAIT_SECONDS = 600
AFTER_UPGRADE_READY_SECONDS = 180
ISBN = "9780306406157"

# The client: one order every half second to the orders Service, one JSON line per attempt.
# Standard library only; any answer but 201 (or no answer) is a failed order.
CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, os, time, urllib.error, urllib.request

    url = os.environ["ORDERS_URL"] + "/orders"
    body = json.dumps({
        "customer_name": "Upgrade", "customer_email": "upgrade@example.com",
        "items": [{"book_id": int(os.environ["BOOK_ID"]), "quantity": 1}],
    }).encode()
    attempt = 0
    while True:
        attempt += 1
        headers = {
            "Content-Type": "application/json",
            "X-API-Key": os.environ["API_KEY"],
            "Idempotency-Key": f"{os.environ['HOSTNAME']}-{attempt}",
        }
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                line = {"attempt": attempt, "status": response.status}
        except urllib.error.HTTPError as error:
            line = {"attempt": attempt, "status": error.code, "error": error.read().decode()[:300]}
        except Exception as error:
            line = {"attempt": attempt, "status": 0, "error": repr(error)[:300]}
        print(json.dumps(line), flush=True)
        time.sleep(0.5)
    """
)


def kind_cluster() -> str | None:
    """The kind cluster behind the current `kind-<name>` context, if it is one."""
    try:
        _, active = config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        return None
    name = str(active["name"])
    return name.removeprefix("kind-") if name.startswith("kind-") else None


def next_version(repository: str, tag: str) -> str:
    """A second tag of the image under test, which the cluster's nodes can run."""
    explicit = os.environ.get(NEXT_IMAGE_ENV)
    if explicit:
        next_repository, _, next_tag = explicit.rpartition(":")
        if next_repository != repository or not next_tag:
            pytest.fail(f"${NEXT_IMAGE_ENV} must be {repository}:<another tag>", pytrace=False)
        return next_tag
    cluster = kind_cluster()
    if cluster is None or shutil.which("docker") is None or shutil.which("kind") is None:
        pytest.fail(
            f"The upgrade test needs a second tag of {repository}:{tag}: on kind it makes one "
            f"(docker and kind on PATH); elsewhere push one and set ${NEXT_IMAGE_ENV}.",
            pytrace=False,
        )
    second = f"{tag}-next"
    run("docker", "tag", f"{repository}:{tag}", f"{repository}:{second}")
    run("kind", "load", "docker-image", f"{repository}:{second}", "--name", cluster)
    return second


def create_book(namespace: str, name: str, api_key: str) -> int:
    """A book with stock for every order the test places; its id."""
    with port_forward(namespace, f"{name}-catalog") as catalog_url:
        book = httpx.post(
            f"{catalog_url}/books",
            headers={"X-API-Key": api_key},
            json={"title": "Upgrades", "author": "E2E", "isbn": ISBN, "price": "1.00",
                  "quantity": 1_000_000},
            timeout=30,
        )  # fmt: skip
    assert book.status_code == 201, book.text
    return int(book.json()["id"])


def client_pod(name: str, orders_url: str, book_id: int, api_key_secret: str) -> dict[str, Any]:
    """The ordering client's Pod: the image under test running CLIENT_SCRIPT, "restricted"."""
    repository, tag = image_under_test()
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": CLIENT_LABEL},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": SERVICE_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "client",
                    "image": f"{repository}:{tag}",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-B", "-u", "-c", CLIENT_SCRIPT],
                    "env": [
                        {"name": "ORDERS_URL", "value": orders_url},
                        {"name": "BOOK_ID", "value": str(book_id)},
                        {
                            "name": "API_KEY",
                            "valueFrom": {
                                "secretKeyRef": {"name": api_key_secret, "key": "api-key"}
                            },
                        },
                    ],
                    "resources": {
                        "requests": {"cpu": "20m", "memory": "32Mi"},
                        "limits": {"cpu": "200m", "memory": "128Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


@contextmanager
def ordering_client(
    namespace: str, pod: dict[str, Any]
) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Run the client Pod; yields a function that returns every attempt it logged so far."""
    core = client.CoreV1Api()
    name = pod["metadata"]["name"]
    body: Any = pod  # the client takes a plain dict body as it takes its models
    core.create_namespaced_pod(namespace, body)

    def attempts() -> list[dict[str, Any]]:
        log = core.read_namespaced_pod_log(name, namespace, container="client")
        return [json.loads(line) for line in str(log).splitlines() if line.startswith("{")]

    try:
        eventually(
            lambda: (
                as_dict(core.read_namespaced_pod(name, namespace))["status"].get("phase")
                == "Running"
            ),
            timeout=120,
            what=f"the ordering client pod {name} to run",
        )
        yield attempts
    finally:
        try:
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as error:
            if error.status != 404:
                raise


def migration_jobs(namespace: str, store_uid: str) -> dict[str, str]:
    """The Bookstore's Jobs that run `bookstore-<service> migrate`: name -> image."""
    found = {}
    for job in as_dict(client.BatchV1Api().list_namespaced_job(namespace))["items"]:
        owners = job["metadata"].get("ownerReferences") or []
        if not any(owner.get("uid") == store_uid for owner in owners):
            continue
        for container in job["spec"]["template"]["spec"]["containers"]:
            command = container.get("command") or []
            if command[-1:] == ["migrate"] and command[0].startswith("bookstore-"):
                found[job["metadata"]["name"]] = f"{command[0]} {container['image']}"
    return found


def warmed_up(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The attempts from the client's first placed order on: a new pod's first packets may
    race its network setup (CNI, NetworkPolicy), which is no part of the upgrade."""
    first = next((i for i, attempt in enumerate(attempts) if attempt["status"] == 201), None)
    return [] if first is None else attempts[first:]


def wait_for_attempts(attempts: Callable[[], list[dict[str, Any]]], count: int, what: str) -> int:
    """Wait until the client has logged `count` attempts since its first order; their number."""

    def enough() -> int | None:
        logged = len(warmed_up(attempts()))
        return logged if logged >= count else None

    return eventually(enough, timeout=120, interval=1, what=what)


def test_an_upgrade_to_another_tag_migrates_once_per_service_and_fails_no_order(
    operator_release: str, new_namespace: Callable[[], str]
) -> None:
    repository, tag = image_under_test()
    target = next_version(repository, tag)
    namespace, name = new_namespace(), "upgrade"
    spec = {
        "version": tag,
        "catalog": TWO,
        "orders": TWO,
        "database": {"storage": "1Gi"},
        "networkPolicy": {"allowFrom": [{"podSelector": {"matchLabels": CLIENT_LABEL}}]},
    }
    store = create_bookstore(namespace, name, spec)
    before = wait_ready(namespace, name)
    assert before["status"]["version"] == tag
    secret = read("Secret", namespace, f"{name}-api-key")
    assert secret is not None
    api_key = base64.b64decode(secret["data"]["api-key"]).decode()
    book_id = create_book(namespace, name, api_key)
    orders_url = f"http://{name}-orders.{namespace}.svc:8000"
    pod = client_pod("upgrade-orders-client", orders_url, book_id, f"{name}-api-key")

    with ordering_client(namespace, pod) as attempts:
        wait_for_attempts(attempts, ORDERS_PER_PHASE, "orders before the upgrade")
        placed_before = len(warmed_up(attempts()))
        patch_bookstore(namespace, name, {"version": target})

        jobs_seen: dict[str, str] = {}

        def upgraded() -> bool:
            jobs_seen.update(migration_jobs(namespace, store["metadata"]["uid"]))
            current = get_bookstore(namespace, name)
            return bool(current.get("status", {}).get("version") == target)

        started = time.monotonic()
        eventually(upgraded, timeout=UPGRADE_WAIT_SECONDS, interval=2, what=f"version {target}")
        after_upgrade = wait_ready(namespace, name, timeout=AFTER_UPGRADE_READY_SECONDS)
        jobs_seen.update(migration_jobs(namespace, store["metadata"]["uid"]))
        placed_during = len(warmed_up(attempts())) - placed_before
        total_at_end = len(warmed_up(attempts()))
        wait_for_attempts(attempts, total_at_end + ORDERS_PER_PHASE, "orders after the upgrade")
        every_attempt = warmed_up(attempts())

    failed = [attempt for attempt in every_attempt if attempt["status"] != 201]
    assert failed == [], f"{len(failed)} of {len(every_attempt)} orders failed: {failed[:5]}"
    assert placed_during >= 1, (
        f"no order was placed during the {time.monotonic() - started:.0f}s upgrade"
    )
    assert after_upgrade["status"]["version"] == target
    for service in ("catalog", "orders"):
        deployment = read("Deployment", namespace, f"{name}-{service}")
        assert deployment is not None
        images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
        assert images == [f"{repository}:{target}"]
        with_target = [
            job for job, what in jobs_seen.items()
            if what == f"bookstore-{service} {repository}:{target}"
        ]  # fmt: skip
        assert len(with_target) == 1, f"migration Jobs of {service}: {jobs_seen}"

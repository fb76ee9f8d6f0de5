"""The only module that talks to the Kubernetes API: read, create, apply, delete, status.

It uses the official `kubernetes` client's ApiClient for raw, generic calls (one code path
for every child kind instead of a typed API class per kind), run in a bounded pool of worker
threads so the event loop never blocks. Children are written with server-side apply as field
manager `bookstore-operator` (see `apply`): keyed lists merge with what webhooks inject,
fields the spec dropped are removed, and fields others own (HPA-owned replicas, server
defaults) stay theirs. Generated Secrets are created once and never written again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import copy
import dataclasses
import functools
import logging
from collections.abc import Collection, Mapping
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from bookstore_operator import __version__
from bookstore_operator.apply import (
    FIELD_MANAGER,
    HANDOVER_MANAGER,
    apply_body,
    needs_apply,
    owns,
)
from bookstore_operator.builders import ChildKey
from bookstore_operator.errors import ChildWriteError
from bookstore_operator.models import API_GROUP, API_VERSION, PLURAL, Bookstore
from bookstore_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

USER_AGENT = f"{FIELD_MANAGER}/{__version__}"
APPLY_PATCH = "application/apply-patch+yaml"  # a JSON body is valid YAML
DEFAULT_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5.0
# Parallel API calls at most (threads of the pool); each one holds a pooled connection.
DEFAULT_CONCURRENCY = 8

# (apiVersion, kind) -> plural, for every kind the operator reads or writes (all namespaced).
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "Secret"): "secrets",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("networking.k8s.io/v1", "Ingress"): "ingresses",
    (f"{API_GROUP}/{API_VERSION}", "Bookstore"): PLURAL,
}
BOOKSTORE_API_VERSION = f"{API_GROUP}/{API_VERSION}"
# Spec fields the API server refuses to change once the object exists (422): set at creation,
# then left out of every apply (see creation_only).
FIXED_AT_CREATION: dict[tuple[str, str], tuple[str, ...]] = {
    ("apps/v1", "StatefulSet"): ("volumeClaimTemplates",),
}
STATUS_WRITE_ATTEMPTS = 3


def resource_path(
    api_version: str, kind: str, namespace: str, name: str = "", subresource: str = ""
) -> str:
    """The REST path of a namespaced object (or of its collection when name is empty)."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{PLURALS[(api_version, kind)]}"
    return "/".join(part for part in (path, name, subresource) if part)


class Kube:
    """A thin async facade over the official client's ApiClient.

    Every call runs in a dedicated, bounded thread pool (not the loop's default executor)
    with connect and read timeouts, so a hung API server ties up neither the event loop nor
    a Bookstore's lock for longer than the timeout. Every write names the field manager.
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._api = api_client
        self._api.user_agent = USER_AGENT
        self.timeout = (min(CONNECT_TIMEOUT_SECONDS, timeout), timeout)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="kube-api"
        )

    @classmethod
    def from_environment(cls, settings: OperatorSettings | None = None) -> Kube:
        """In-cluster service account when running in a pod, else the local kubeconfig."""
        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(), **_tuning(settings or OperatorSettings()))

    @classmethod
    def for_host(cls, host: str, settings: OperatorSettings | None = None) -> Kube:
        """An unauthenticated client for a local API server (tests, emulators)."""
        configuration = kubernetes.client.Configuration(host=host)
        return cls(
            kubernetes.client.ApiClient(configuration), **_tuning(settings or OperatorSettings())
        )

    def close(self) -> None:
        """Release the connection pool and the worker threads."""
        self._api.close()  # type: ignore[no-untyped-call]
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _call(
        self, method: str, path: str, body: Any, content_type: str, query: list[tuple[str, str]]
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(*request, _request_timeout=self.timeout)
        response.read()  # type: ignore[no-untyped-call]
        return self._api.response_deserialize(response, {"2XX": "object"}).data

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "",
        query: Mapping[str, str] | None = None,
    ) -> Any:
        """One API call in a worker thread; raises ApiException on a non-2xx answer.

        A write without a field manager gets ours, so managedFields and audit logs name us.
        """
        params = dict(query or {})
        if method in ("POST", "PUT", "PATCH"):
            params.setdefault("fieldManager", FIELD_MANAGER)
        call = functools.partial(self._call, method, path, body, content_type, list(params.items()))
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        try:
            found: dict[str, Any] = await self.request(
                "GET", resource_path(api_version, kind, namespace, name)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object from a full manifest."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta["namespace"])
        created: dict[str, Any] = await self.request(
            "POST", path, dict(manifest), "application/json"
        )
        return created

    async def apply(
        self, body: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER
    ) -> dict[str, Any]:
        """Server-side apply (creates the object when absent), forcing conflicts: we own it."""
        meta = body["metadata"]
        path = resource_path(body["apiVersion"], body["kind"], meta["namespace"], meta["name"])
        query = {"fieldManager": field_manager, "force": "true"}
        applied: dict[str, Any] = await self.request("PATCH", path, dict(body), APPLY_PATCH, query)
        return applied

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Send an RFC 7386 JSON merge patch (lists are replaced whole)."""
        path = resource_path(api_version, kind, namespace, name, subresource)
        patched: dict[str, Any] = await self.request(
            "PATCH", path, dict(patch), "application/merge-patch+json"
        )
        return patched

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete an object; a missing one is already what we want."""
        try:
            await self.request("DELETE", resource_path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's keys with decoded values, or None when it does not exist."""
        secret = await self.get("v1", "Secret", namespace, name)
        if secret is None:
            return None
        values = {key: _decode(value) for key, value in (secret.get("data") or {}).items()}
        values.update(secret.get("stringData") or {})
        return values


def _tuning(settings: OperatorSettings) -> dict[str, Any]:
    return {"timeout": settings.api_timeout_seconds}


@dataclasses.dataclass
class ApplyReport:
    """What one pass over the children found and did."""

    live: dict[ChildKey, dict[str, Any] | None] = dataclasses.field(default_factory=dict)
    created: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)
    foreign: list[str] = dataclasses.field(default_factory=list)
    drifted: list[str] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


def label(key: ChildKey) -> str:
    """`Deployment/downtown-catalog`, for events and messages."""
    return f"{key.kind}/{key.name}"


def is_owned(live: Mapping[str, Any], store: Bookstore) -> bool:
    """True when the object carries our Bookstore's controller ownerReference."""
    refs = live.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == store.uid and ref.get("controller") for ref in refs)


def creation_only(key: ChildKey, autoscaled: Collection[str]) -> tuple[str, ...]:
    """Spec fields set when the child is created and never applied again.

    A StatefulSet's claim templates are immutable (a larger spec.database.storage grows each
    PVC instead: reconciler.reconcile_storage). An autoscaled Deployment starts at
    minReplicas, then its HPA owns `replicas`: applying it again would fight the HPA.
    """
    fixed = FIXED_AT_CREATION.get((key.api_version, key.kind), ())
    if key.kind == "Deployment" and key.name in autoscaled:
        fixed = (*fixed, "replicas")
    return fixed


def autoscaled(desired: Mapping[ChildKey, dict[str, Any] | None]) -> set[str]:
    """Names of the Deployments an HPA we want scales."""
    return {
        manifest["spec"]["scaleTargetRef"]["name"]
        for key, manifest in desired.items()
        if manifest is not None and key.kind == "HorizontalPodAutoscaler"
    }


def desired_body(
    key: ChildKey,
    manifest: Mapping[str, Any],
    live: Mapping[str, Any] | None,
    autoscaled: Collection[str],
) -> dict[str, Any]:
    """What to apply: the full manifest to create; later, without creation-only fields.

    An immutable field is applied again with its live value instead of being left out:
    our manager owns it since creation, and a field an apply drops is removed, which the
    API server refuses (422) for a StatefulSet's claim templates.
    """
    fixed = creation_only(key, autoscaled)
    if live is None:
        return apply_body(manifest, fixed, creating=True)
    body = apply_body(manifest, fixed)
    spec = live.get("spec") or {}
    for field in FIXED_AT_CREATION.get((key.api_version, key.kind), ()):
        if field in spec:
            body["spec"][field] = copy.deepcopy(spec[field])
    return body


async def apply_children(
    kube: Kube, store: Bookstore, desired: Mapping[ChildKey, dict[str, Any] | None], *, write: bool
) -> ApplyReport:
    """Bring every child to its desired state (or, with write=False, only look at them)."""
    report = ApplyReport()
    scaled = autoscaled(desired)
    for key, manifest in desired.items():
        live = await kube.get(key.api_version, key.kind, store.namespace, key.name)
        report.live[key] = live
        if live is not None and not is_owned(live, store):
            if manifest is not None:
                report.foreign.append(label(key))
            continue
        try:
            if manifest is None:
                await _remove(kube, store, key, live, report, write=write)
            else:
                body = desired_body(key, manifest, live, scaled)
                scaled_here = "replicas" in creation_only(key, scaled)
                await _converge(
                    kube, key, manifest, body, live, report, write=write, hpa=scaled_here
                )
        except ApiException as exc:
            raise ChildWriteError(label(key), exc) from exc
    return report


async def _remove(
    kube: Kube,
    store: Bookstore,
    key: ChildKey,
    live: dict[str, Any] | None,
    report: ApplyReport,
    *,
    write: bool,
) -> None:
    """A child the spec no longer wants: delete it if it exists."""
    if live is None:
        return
    report.drifted.append(label(key))
    if write:
        await kube.delete(key.api_version, key.kind, store.namespace, key.name)
        report.live[key] = None
        report.deleted.append(label(key))


async def _converge(
    kube: Kube,
    key: ChildKey,
    manifest: dict[str, Any],
    body: dict[str, Any],
    live: dict[str, Any] | None,
    report: ApplyReport,
    *,
    write: bool,
    hpa: bool,
) -> None:
    """One wanted child: create it when absent, else apply our fields when they differ.

    Generated Secrets are created once and never written again (a new password under a
    running database locks the services out).
    """
    if live is None:
        report.drifted.append(label(key))
        if write:
            if key.kind == "Secret":
                report.live[key] = await kube.create(manifest)
            else:
                report.live[key] = await kube.apply(body)
            report.created.append(label(key))
        return
    if key.kind == "Secret" or not needs_apply(live, body):
        return
    report.drifted.append(label(key))
    if not write:
        return
    if hpa:
        await hand_over_replicas(kube, live, manifest)
    applied = await kube.apply(body)
    report.live[key] = applied
    if _version(applied) != _version(live):
        report.updated.append(label(key))
    else:  # the API server found nothing to change: not drift after all
        report.drifted.remove(label(key))
        logger.debug("Applying %s changed nothing.", label(key))


async def hand_over_replicas(
    kube: Kube, live: Mapping[str, Any], manifest: Mapping[str, Any]
) -> None:
    """Keep a Deployment's replicas when its HPA takes over from our apply.

    When our apply stops sending a field it owned, the API server removes it, and a
    Deployment without `replicas` defaults to 1: switching autoscaling on would scale the
    service down to one pod until the HPA reacts. So, while our Apply manager still owns
    `replicas` (autoscaling was off, or the HPA has not changed it since creation), a second
    Apply manager first applies max(current, minReplicas) (the Kubernetes documentation's
    "transferring ownership"). A merge patch would not do: an Update that changes nothing
    takes no ownership. The handover manager's share goes when the HPA next writes replicas.
    """
    body = handover_body(live, manifest)
    if body is not None:
        await kube.apply(body, field_manager=HANDOVER_MANAGER)


def handover_body(live: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The handover apply (see hand_over_replicas), or None when our apply owns no replicas."""
    current = (live.get("spec") or {}).get("replicas")
    if current is None or not owns(live, FIELD_MANAGER, "Apply", ("spec", "replicas")):
        return None
    meta = live["metadata"]
    return {
        "apiVersion": live["apiVersion"],
        "kind": live["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": max(int(current), int(manifest["spec"]["replicas"]))},
    }


def _version(obj: Mapping[str, Any]) -> str | None:
    version: str | None = obj.get("metadata", {}).get("resourceVersion")
    return version


async def write_status(kube: Kube, body: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Patch the Bookstore's status subresource when it changed; retry on a conflict.

    The patch carries the resourceVersion we read, so a concurrent writer makes it fail
    with 409 instead of being overwritten; we then re-read and try again while the object
    is still at the generation this status describes.
    """
    meta = body["metadata"]
    current: Mapping[str, Any] = body
    for _ in range(STATUS_WRITE_ATTEMPTS):
        previous = current.get("status") or {}
        if dict(previous) == dict(status):
            return False
        patch = {
            "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "status": {**{key: None for key in previous if key not in status}, **status},
        }
        try:
            await kube.merge_patch(
                BOOKSTORE_API_VERSION,
                "Bookstore",
                meta["namespace"],
                meta["name"],
                patch,
                subresource="status",
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            fresh = await kube.get(
                BOOKSTORE_API_VERSION, "Bookstore", meta["namespace"], meta["name"]
            )
            if fresh is None or fresh["metadata"].get("generation") != meta.get("generation"):
                return False  # gone or changed again: the next reconcile reports the new state
            current = fresh
            continue
        return True
    logger.warning(
        "Status of %s/%s kept conflicting; the next reconcile retries.",
        meta["namespace"],
        meta["name"],
    )
    return False


def _decode(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""

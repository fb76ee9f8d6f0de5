"""The only module that talks to the Kubernetes API: read, create, merge-patch, delete, status.

It uses the official `kubernetes` client's ApiClient for raw, generic calls (one code path
for every child kind instead of a typed API class per kind), run in a worker thread with
`asyncio.to_thread` so the event loop never blocks. Writes are create or JSON merge patch:
they work on every API server and leave fields we do not manage (server defaults, HPA-owned
replicas) alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from bookstore_operator.builders import ChildKey
from bookstore_operator.errors import ChildWriteError
from bookstore_operator.models import API_GROUP, API_VERSION, PLURAL, Bookstore

logger = logging.getLogger(__name__)

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
# Only these metadata fields are ours to set; the rest belongs to the API server.
OWNED_METADATA = ("labels", "annotations", "ownerReferences")
NOT_COMPARED = frozenset({"apiVersion", "kind", "metadata", "status"})
# Spec fields the API server refuses to change once the object exists (422): set at creation,
# then left out of drift detection and patches. A larger spec.database.storage grows each
# PVC instead (reconciler.reconcile_storage).
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
    """A thin async facade over the official client's ApiClient."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._api = api_client

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster service account when running in a pod, else the local kubeconfig."""
        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient())

    @classmethod
    def for_host(cls, host: str) -> Kube:
        """An unauthenticated client for a local API server (tests, emulators)."""
        configuration = kubernetes.client.Configuration(host=host)
        return cls(kubernetes.client.ApiClient(configuration))

    def close(self) -> None:
        """Release the connection pool."""
        self._api.close()  # type: ignore[no-untyped-call]

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "") -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = self._api.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(*request)
        response.read()  # type: ignore[no-untyped-call]
        return self._api.response_deserialize(response, {"2XX": "object"}).data

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = ""
    ) -> Any:
        """One API call in a worker thread; raises ApiException on a non-2xx answer."""
        return await asyncio.to_thread(self._call, method, path, body, content_type)

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


def contains(live: Any, desired: Any) -> bool:
    """True when every field of `desired` is in `live` (extras such as server defaults ignored)."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and contains(live[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(lv, dv) for lv, dv in zip(live, desired, strict=True))
        )
    return bool(live == desired)


def managed_part(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The fields we own in a manifest: our metadata and everything but apiVersion/kind/status."""
    meta = manifest.get("metadata", {})
    part = {key: value for key, value in manifest.items() if key not in NOT_COMPARED}
    part["metadata"] = {key: meta[key] for key in OWNED_METADATA if key in meta}
    return part


def updatable_part(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The fields we own that an existing object may still change (FIXED_AT_CREATION aside)."""
    part = managed_part(manifest)
    fixed = FIXED_AT_CREATION.get((manifest["apiVersion"], manifest["kind"]), ())
    if fixed and isinstance(part.get("spec"), Mapping):
        part["spec"] = {key: value for key, value in part["spec"].items() if key not in fixed}
    return part


async def apply_children(
    kube: Kube, store: Bookstore, desired: Mapping[ChildKey, dict[str, Any] | None], *, write: bool
) -> ApplyReport:
    """Bring every child to its desired state (or, with write=False, only look at them)."""
    report = ApplyReport()
    for key, manifest in desired.items():
        live = await kube.get(key.api_version, key.kind, store.namespace, key.name)
        report.live[key] = live
        if live is not None and not is_owned(live, store):
            if manifest is not None:
                report.foreign.append(label(key))
            continue
        try:
            await _converge(kube, store, key, manifest, live, report, write=write)
        except ApiException as exc:
            raise ChildWriteError(label(key), exc) from exc
    return report


async def _converge(
    kube: Kube,
    store: Bookstore,
    key: ChildKey,
    manifest: dict[str, Any] | None,
    live: dict[str, Any] | None,
    report: ApplyReport,
    *,
    write: bool,
) -> None:
    """One child we own (or that is absent): delete, create or merge-patch it as needed."""
    if manifest is None:
        if live is None:
            return
        report.drifted.append(label(key))
        if write:
            await kube.delete(key.api_version, key.kind, store.namespace, key.name)
            report.live[key] = None
            report.deleted.append(label(key))
    elif live is None:
        report.drifted.append(label(key))
        if write:
            report.live[key] = await kube.create(manifest)
            report.created.append(label(key))
    elif key.kind != "Secret" and not contains(live, updatable_part(manifest)):
        report.drifted.append(label(key))
        if write:
            report.live[key] = await kube.merge_patch(
                key.api_version, key.kind, store.namespace, key.name, updatable_part(manifest)
            )
            report.updated.append(label(key))


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

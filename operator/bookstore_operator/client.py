"""The Kubernetes API client: one raw, generic call path for every kind the operator uses.

It uses the official `kubernetes` client's ApiClient (one code path for every child kind
instead of a typed API class per kind), names itself `bookstore-operator` in the user agent
and in every write's fieldManager, bounds every call with connect/read timeouts, and runs the
calls in a bounded pool of worker threads so the event loop never blocks. Only `kube` uses it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import functools
from collections.abc import Mapping
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from bookstore_operator import __version__, metrics
from bookstore_operator.apply import FIELD_MANAGER
from bookstore_operator.models import API_GROUP, API_VERSION, PLURAL
from bookstore_operator.settings import OperatorSettings

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
    ("v1", "Pod"): "pods",
    ("batch/v1", "Job"): "jobs",
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("networking.k8s.io/v1", "Ingress"): "ingresses",
    (f"{API_GROUP}/{API_VERSION}", "Bookstore"): PLURAL,
    (f"{API_GROUP}/{API_VERSION}", "BookstoreBackup"): "bookstorebackups",
    # The Prometheus Operator's kinds (spec.monitoring), where its CRDs are installed.
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitors",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrules",
}
BOOKSTORE_API_VERSION = f"{API_GROUP}/{API_VERSION}"
KINDS_BY_PLURAL = {plural: kind for (_, kind), plural in PLURALS.items()}


def resource_path(
    api_version: str, kind: str, namespace: str, name: str = "", subresource: str = ""
) -> str:
    """The REST path of a namespaced object (or of its collection when name is empty)."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{PLURALS[(api_version, kind)]}"
    return "/".join(part for part in (path, name, subresource) if part)


def request_labels(method: str, path: str, content_type: str = "") -> tuple[str, str]:
    """The (verb, kind) of a request for the metrics: RBAC's verbs (a collection GET is
    `list`) plus `apply` for server-side apply; the kind from the path's resource (its plural
    when it is not one of ours, e.g. `clusterkopfpeerings`)."""
    parts = [part for part in path.split("?")[0].split("/") if part]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]  # after /api/v1 or /apis/g/v
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    plural, named = (rest[0] if rest else ""), len(rest) > 1
    verb = {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(method, "")
    if method == "GET":
        verb = "get" if named else "list"
    elif method == "PATCH":
        verb = "apply" if content_type == APPLY_PATCH else "patch"
    return verb or method.lower(), KINDS_BY_PLURAL.get(plural, plural or "unknown")


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
        status = None  # no HTTP response (a timeout, a refused connection): code "error"
        try:
            response = self._api.call_api(*request, _request_timeout=self.timeout)
            status = response.status
            response.read()  # type: ignore[no-untyped-call]
            return self._api.response_deserialize(response, {"2XX": "object"}).data
        except ApiException as exc:
            status = status or exc.status  # e.g. a 429 the client's retries gave up on
            raise
        finally:
            metrics.api_request(*request_labels(method, path, content_type), status)

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


def _decode(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""

"""A kmock KubernetesEmulator that behaves enough like a real API server to run kopf end to end.

kmock 0.8 stores objects as plain dicts. This subclass adds what kopf and the operator rely
on: uid/creationTimestamp/resourceVersion/generateName on create, a resourceVersion that
moves on every change (409 on a stale one), `metadata.generation` bumped on spec changes,
status written only through the /status subresource, JSON patch (422 on a failed `test`),
RFC 7386 merge patch (lists replaced), server-side apply (tests/operator/ssa.py: keyed lists
merge, fields an Apply manager dropped are removed, 409 on a conflict without force, 400
without fieldManager or apiVersion/kind/name), `metadata.managedFields` per manager and
operation on every write, no-op patches that change nothing, 422 on a change
the real API server forbids (a StatefulSet's volumeClaimTemplates, selector or serviceName,
a Deployment's selector, a PVC's spec other than a growing storage request), real list
resourceVersions and watches that honour `?resourceVersion=` (objects changed since that
version are replayed as MODIFIED; deletions in that short window are not replayed).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from decimal import Decimal
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
import yaml
from kmock._internal import enums, rendering
from kubernetes.utils.quantity import parse_quantity

from tests.operator import ssa

# (group/version/plural, kind, namespaced, subresources)
RESOURCES: list[tuple[str, str, bool, tuple[str, ...]]] = [
    ("bookstore.dev/v1alpha1/bookstores", "Bookstore", True, ("status",)),
    ("bookstore.dev/v1alpha1/bookstorebackups", "BookstoreBackup", True, ("status",)),
    ("v1/namespaces", "Namespace", False, ("status",)),
    ("v1/events", "Event", True, ()),
    ("v1/secrets", "Secret", True, ()),
    ("v1/configmaps", "ConfigMap", True, ()),
    ("v1/services", "Service", True, ("status",)),
    ("v1/persistentvolumeclaims", "PersistentVolumeClaim", True, ("status",)),
    ("apps/v1/deployments", "Deployment", True, ("status",)),
    ("apps/v1/statefulsets", "StatefulSet", True, ("status",)),
    ("autoscaling/v2/horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ("status",)),
    ("policy/v1/poddisruptionbudgets", "PodDisruptionBudget", True, ("status",)),
    ("networking.k8s.io/v1/networkpolicies", "NetworkPolicy", True, ()),
    ("networking.k8s.io/v1/ingresses", "Ingress", True, ("status",)),
    ("batch/v1/jobs", "Job", True, ("status",)),
    ("v1/pods", "Pod", True, ("status", "log")),
    ("kopf.dev/v1/clusterkopfpeerings", "ClusterKopfPeering", False, ()),
    ("kopf.dev/v1/kopfpeerings", "KopfPeering", True, ()),
]
# plural -> spec fields a real API server refuses (422) to change once the object exists.
IMMUTABLE_SPEC: dict[str, tuple[str, ...]] = {
    "statefulsets": ("volumeClaimTemplates", "selector", "serviceName"),
    "deployments": ("selector",),
}
VERBS = ("get", "list", "watch", "create", "patch", "update", "delete")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
APPLY_PATCH = "application/apply-patch+yaml"


class ConflictError(kmock.KubernetesError):
    """409: the object changed since the client read it, or already exists."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge, null deletes, everything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """An in-memory API server for the operator's runtime tests."""

    _revisions: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _revision: int = attrs.field(default=0, init=False)
    _with_status: set[kmock.resource] = attrs.field(factory=set, init=False)
    # (METHOD, plural) -> statuses to answer the next such requests with, instead of serving.
    faults: dict[tuple[str, str], list[int]] = attrs.field(factory=dict, init=False)
    # (METHOD, plural) -> seconds to wait before serving such a request (a slow API server).
    latency: dict[tuple[str, str], float] = attrs.field(factory=dict, init=False)
    # (namespace, pod) -> what GET pods/<pod>/log answers (the kubelet's part), as text/plain.
    pod_logs: dict[tuple[str, str], str] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for key, kind, namespaced, subresources in RESOURCES:
            self.resources[key] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
            )
            if "status" in subresources:
                self._with_status.add(kmock.resource(key))

    # --- what tests read -------------------------------------------------------------------

    def live(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The live object (a deep copy), or None when absent."""
        key = (kmock.resource(plural), namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].last.raw)

    def live_items(self, plural: str) -> list[dict[str, Any]]:
        """Every live object of a resource."""
        res = kmock.resource(plural)
        return [
            copy.deepcopy(obj.last.raw)
            for (r, _, _), obj in self.objects.items()
            if r == res and not obj.deleted
        ]

    @property
    def requests_made(self) -> list[rendering.Request]:
        """Every request served so far, in order."""
        return list(self._requests)

    def writes(self, *, since: int = 0) -> list[rendering.Request]:
        """Write requests made by anyone but the test itself (kmock's own client)."""
        return [
            request
            for request in self._requests[since:]
            if request.method.value in WRITE_METHODS
            and not request.headers.get("User-Agent", "").startswith("kmock/")
        ]

    def applies(self, *, since: int = 0, manager: str = "") -> list[rendering.Request]:
        """Server-side apply requests (by one field manager, when given)."""
        return [
            request
            for request in self._requests[since:]
            if request.headers.get("Content-Type", "").startswith(APPLY_PATCH)
            and manager in ("", request.params.get("fieldManager"))
        ]

    async def mutate(
        self,
        plural: str,
        namespace: str,
        name: str,
        change: Callable[[dict[str, Any]], None],
        *,
        manager: str,
    ) -> dict[str, Any]:
        """Change a live object as another field manager would (a mutating webhook, a
        controller): an Update that owns what it changed, published to watchers."""
        key = (kmock.resource(plural), namespace, name)
        async with self._lock:
            old = self.objects[key].last.raw
            new = copy.deepcopy(old)
            change(new)
            owners = ssa.from_managed_fields(old["metadata"].get("managedFields"))
            ssa.update(old, new, owners, manager)
            new["metadata"]["managedFields"] = ssa.to_managed_fields(owners, new["apiVersion"])
            if _spec_of(new) != _spec_of(old):
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            self._bump(new)
            self.objects[key].create(new)
        await self._buses[key[0]].put({"type": "MODIFIED", "object": copy.deepcopy(new)})
        return copy.deepcopy(new)

    # --- request handling ------------------------------------------------------------------

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.resource is not None and request.params.get("watch") != "true":
            await asyncio.sleep(
                self.latency.get((request.method.value, request.resource.plural or ""), 0)
            )
        if request.subresource == "log" and request.method.value == "GET":
            return self._serve_log(request)
        action = request.action
        if request.resource is None or action not in {
            enums.action.CREATE,
            enums.action.UPDATE,
            enums.action.DELETE,
        }:
            return await super()._handle(request)
        planned = self.faults.get((request.method.value, request.resource.plural or ""))
        if planned:
            status = planned.pop(0)
            raise kmock.KubernetesError(status=status, reason="Injected", message=f"{status} fault")
        async with self._lock:
            if action == enums.action.CREATE:
                body, status = self._create(request), 201
            elif action == enums.action.UPDATE and _is_apply(request):
                body, status = self._apply(request)
            elif action == enums.action.UPDATE:
                body, status = self._patch(request), 200
            else:
                body, status = self._delete(request), 200
        return aiohttp.web.json_response(body, status=status)

    def _serve_log(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """A pod's log, its last `tailLines` lines and at most `limitBytes` bytes of them."""
        if self.live("v1/pods", request.namespace, request.name or "") is None:
            raise kmock.KubernetesObjectNotFoundError()
        lines = self.pod_logs.get((request.namespace or "", request.name or ""), "").splitlines()
        if "tailLines" in request.params:
            lines = (
                lines[-int(request.params["tailLines"]) :]
                if int(request.params["tailLines"])
                else []
            )
        text = "".join(f"{line}\n" for line in lines)
        if "limitBytes" in request.params:
            text = text.encode()[: int(request.params["limitBytes"])].decode(errors="ignore")
        return aiohttp.web.Response(text=text, content_type="text/plain")

    def _key(self, request: rendering.Request, name: str | None = None) -> Any:
        return (request.resource, request.namespace, name or request.name)

    def _bump(self, obj: dict[str, Any]) -> None:
        self._revision = next(self._revisions)
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._revision)

    async def _publish(self, request: rendering.Request, kind: str, obj: dict[str, Any]) -> None:
        assert request.resource is not None
        await self._buses[request.resource].put({"type": kind, "object": copy.deepcopy(obj)})

    def _create(self, request: rendering.Request) -> dict[str, Any]:
        obj: dict[str, Any] = copy.deepcopy(request.data)
        owners: ssa.Owners = {}
        ssa.update(None, obj, owners, _manager(request))
        return self._insert(request, obj, owners)

    def _insert(
        self, request: rendering.Request, obj: dict[str, Any], owners: ssa.Owners
    ) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        if request.namespace:
            meta["namespace"] = request.namespace
        key = self._key(request, meta["name"])
        if key in self.objects and not self.objects[key].deleted:
            raise ConflictError(
                status=409, reason="AlreadyExists", message=f"{meta['name']} exists"
            )
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        meta.pop("resourceVersion", None)
        if request.resource in self._with_status:
            obj.pop("status", None)
        meta["managedFields"] = ssa.to_managed_fields(owners, obj.get("apiVersion", ""))
        self._bump(obj)
        if key in self.objects:
            self.objects[key].create(obj)
        else:
            self.objects[key] = obj
        self._pending.append((request, "ADDED", obj))
        return obj

    def _patch(self, request: rendering.Request) -> dict[str, Any]:
        key = self._key(request)
        if key not in self.objects or self.objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        old: dict[str, Any] = copy.deepcopy(self.objects[key].last.raw)
        on_status = request.subresource == "status"
        splits_status = request.resource in self._with_status
        if isinstance(request.data, list):
            ops = [
                op
                for op in request.data
                if op["op"] == "test"
                or not splits_status
                or op["path"].startswith("/status") == on_status
            ]
            try:
                new: dict[str, Any] = jsonpatch.apply_patch(old, ops)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from exc
        else:
            patch = copy.deepcopy(dict(request.data or {}))
            # The precondition holds on the status subresource too (its metadata is read).
            wanted_rv = (patch.get("metadata") or {}).pop("resourceVersion", None)
            if splits_status:
                status = patch.pop("status", None)
                patch = ({"status": status} if status is not None else {}) if on_status else patch
            if wanted_rv is not None and wanted_rv != old["metadata"].get("resourceVersion"):
                raise ConflictError(status=409, reason="Conflict", message="stale resourceVersion")
            new = merge_patch(old, patch)
        for field in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion"):
            if field in old["metadata"]:
                new["metadata"][field] = old["metadata"][field]
        if new == old:
            return old
        owners = ssa.from_managed_fields(old["metadata"].get("managedFields"))
        ssa.update(old, new, owners, _manager(request), request.subresource or "")
        new["metadata"]["managedFields"] = ssa.to_managed_fields(owners, new["apiVersion"])
        return self._store(request, key, old, new, on_status=on_status)

    def _apply(self, request: rendering.Request) -> tuple[dict[str, Any], int]:
        """Server-side apply: create when absent, else merge and take/drop owned fields."""
        manager = request.params.get("fieldManager")
        if not manager:
            raise _bad_request("fieldManager: Required value: is required for apply patch")
        config = yaml.safe_load(request.text)
        if not isinstance(config, dict) or not config.get("apiVersion") or not config.get("kind"):
            raise _bad_request("apply patches must specify apiVersion and kind")
        name = (config.get("metadata") or {}).get("name")
        if name != request.name:
            raise _bad_request(
                f"the name of the object ({name}) does not match the name on the URL"
                f" ({request.name})"
            )
        assert request.resource is not None
        kind = self.resources[request.resource].kind
        if config["kind"] != kind:
            raise _bad_request(f"kind {config['kind']} does not match the expected kind {kind}")
        key = self._key(request)
        exists = key in self.objects and not self.objects[key].deleted
        old = copy.deepcopy(self.objects[key].last.raw) if exists else None
        if request.resource in self._with_status:
            config.pop("status", None)
        owners = ssa.from_managed_fields((old or {}).get("metadata", {}).get("managedFields"))
        force = request.params.get("force") == "true"
        try:
            new = ssa.apply(old, config, owners, manager, force=force)
        except ssa.ApplyConflictError as exc:
            raise ConflictError(status=409, reason="Conflict", message=str(exc)) from exc
        new.setdefault("metadata", {})["managedFields"] = ssa.to_managed_fields(
            owners, config["apiVersion"]
        )
        if old is None:
            return self._insert(request, new, owners), 201
        for field in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion"):
            if field in old["metadata"]:
                new["metadata"][field] = old["metadata"][field]
        if new == old:
            return old, 200
        return self._store(request, key, old, new, on_status=False), 200

    def _store(
        self,
        request: rendering.Request,
        key: Any,
        old: dict[str, Any],
        new: dict[str, Any],
        *,
        on_status: bool,
    ) -> dict[str, Any]:
        """Save a changed object: immutable fields checked, generation and version moved."""
        assert request.resource is not None
        if not on_status:
            _refuse_immutable_changes(request.resource.plural or "", old, new)
        if _spec_of(new) != _spec_of(old):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        self._bump(new)
        meta = new["metadata"]
        self.objects[key].create(new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.objects[key].delete()
            self._pending.append((request, "DELETED", new))
        else:
            self._pending.append((request, "MODIFIED", new))
        return new

    def _delete(self, request: rendering.Request) -> dict[str, Any]:
        key = self._key(request)
        if key not in self.objects or self.objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        obj: dict[str, Any] = copy.deepcopy(self.objects[key].last.raw)
        meta = obj["metadata"]
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = _now()
                self._bump(obj)
                self.objects[key].create(obj)
                self._pending.append((request, "MODIFIED", obj))
            return obj
        self._bump(obj)
        self.objects[key].delete()
        self._pending.append((request, "DELETED", obj))
        return obj

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Serve one request, then publish the watch events it caused (outside the lock)."""
        response = await super().__call__(raw_request)
        while self._pending:
            request, kind, obj = self._pending.pop(0)
            await self._publish(request, kind, obj)
        return response

    _pending: list[tuple[rendering.Request, str, dict[str, Any]]] = attrs.field(
        factory=list, init=False
    )

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        selector = _equality_selector(request.params.get("labelSelector", ""))
        async with self._lock:
            items = [
                copy.deepcopy(o)
                for o in self._matching(request)
                if selector.items() <= ((o.get("metadata") or {}).get("labels") or {}).items()
            ]
            revision = self._revision
        return {"metadata": {"resourceVersion": str(revision)}, "items": items}

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        yield b""
        assert request.resource is not None
        bus = self._buses[request.resource]
        mark = await bus.mark()  # subscribe BEFORE the snapshot: nothing is lost in between
        try:
            async with self._lock:
                since = int(request.params.get("resourceVersion") or 0)
                snapshot = [copy.deepcopy(o) for o in self._matching(request)]
                revision = self._revision
            for obj in snapshot:
                if int(obj["metadata"]["resourceVersion"]) > since:
                    yield {"type": "ADDED" if since == 0 else "MODIFIED", "object": obj}
            async for event in bus.stream(since=mark):
                obj = event["object"]
                if int(obj["metadata"]["resourceVersion"]) <= revision:
                    continue  # already in the snapshot
                if request.namespace in (None, obj["metadata"].get("namespace")) and (
                    request.name in (None, obj["metadata"]["name"])
                ):
                    yield event
        finally:
            await bus.unmark(mark)

    def _matching(self, request: rendering.Request) -> list[dict[str, Any]]:
        return [
            obj.last.raw
            for (resource, namespace, name), obj in self.objects.items()
            if resource == request.resource
            and not obj.deleted
            and request.namespace in (None, namespace)
            and request.name in (None, name)
        ]


def _refuse_immutable_changes(plural: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """422, as the real API server's validation answers, for a change it never allows."""
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    name = f'{old.get("kind", plural)} "{old["metadata"]["name"]}"'
    changed = [f for f in IMMUTABLE_SPEC.get(plural, ()) if old_spec.get(f) != new_spec.get(f)]
    if changed:
        raise kmock.KubernetesError(
            status=422,
            reason="Invalid",
            message=f"{name} is invalid: spec.{changed[0]}: Forbidden: field is immutable",
        )
    if plural != "persistentvolumeclaims":
        return
    old_size, new_size = _storage_request(old_spec), _storage_request(new_spec)
    if _without_requests(old_spec) != _without_requests(new_spec):
        message = "spec is immutable after creation except resources.requests"
    elif new_size < old_size:
        message = "spec.resources.requests.storage: field can not be less than previous value"
    else:
        return
    raise kmock.KubernetesError(
        status=422, reason="Invalid", message=f"{name} is invalid: Forbidden: {message}"
    )


def _equality_selector(selector: str) -> dict[str, str]:
    """A labelSelector of `key=value` terms (the only form the operator sends) as a dict."""
    terms = [term.partition("=") for term in selector.split(",") if term.strip()]
    return {key.strip(): value.strip().lstrip("=") for key, _, value in terms}


def _is_apply(request: rendering.Request) -> bool:
    return request.headers.get("Content-Type", "").startswith(APPLY_PATCH)


def _manager(request: rendering.Request) -> str:
    """The field manager: the query's, else the user agent's product (like the API server)."""
    agent = request.headers.get("User-Agent", "unknown")
    return request.params.get("fieldManager") or agent.split("/", 1)[0]


def _bad_request(message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=400, reason="BadRequest", message=message)


def _storage_request(spec: Mapping[str, Any]) -> Decimal:
    return parse_quantity(spec.get("resources", {}).get("requests", {}).get("storage", "0"))


def _without_requests(spec: Mapping[str, Any]) -> dict[str, Any]:
    resources = {k: v for k, v in (spec.get("resources") or {}).items() if k != "requests"}
    return {**spec, "resources": resources}


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in {"metadata", "status"}}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(obj: Any) -> str:
    """Compact JSON for assertion messages."""
    return json.dumps(obj, sort_keys=True)

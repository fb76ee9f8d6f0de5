"""Read one Bookstore and everything it made from the API server, through the user's kubeconfig.

The plugin only reads (get and list), with plain JSON through the official client's ApiClient,
so it needs no more than `view`-like rights on the Bookstore's namespace. A list the user may
not read (403) leaves that part of the picture empty and is reported, instead of failing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import kubernetes
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException

API_GROUP = "bookstore.dev"
API_VERSION = "v1alpha1"
# Every child of a Bookstore carries these two labels (DESIGN.md); backups carry BACKUP_LABEL.
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
BACKUP_LABEL = "bookstore.dev/bookstore"
TIMEOUT = (5.0, 30.0)  # connect, read (seconds)
USER_AGENT = "kubectl-bookstore"

Obj = dict[str, Any]


class PluginError(Exception):
    """Something the user must fix before the plugin can answer: one line, exit status 2."""


@dataclasses.dataclass
class Snapshot:
    """One Bookstore and what belongs to it, as the API server holds them now."""

    namespace: str
    bookstore: Obj
    deployments: list[Obj] = dataclasses.field(default_factory=list)
    statefulsets: list[Obj] = dataclasses.field(default_factory=list)
    autoscalers: list[Obj] = dataclasses.field(default_factory=list)
    services: list[Obj] = dataclasses.field(default_factory=list)
    ingresses: list[Obj] = dataclasses.field(default_factory=list)
    jobs: list[Obj] = dataclasses.field(default_factory=list)
    pods: list[Obj] = dataclasses.field(default_factory=list)
    claims: list[Obj] = dataclasses.field(default_factory=list)
    backups: list[Obj] = dataclasses.field(default_factory=list)
    events: list[Obj] = dataclasses.field(default_factory=list)
    unreadable: list[str] = dataclasses.field(default_factory=list)  # lists we were refused

    @property
    def name(self) -> str:
        return str(self.bookstore["metadata"]["name"])

    def workload(self, component: str) -> Obj | None:
        """The Deployment (catalog, orders) or StatefulSet (database) of a component."""
        wanted = f"{self.name}-postgres" if component == "database" else f"{self.name}-{component}"
        found = [o for o in (*self.deployments, *self.statefulsets) if name_of(o) == wanted]
        return found[0] if found else None

    def pods_of(self, component: str) -> list[Obj]:
        return [p for p in self.pods if labels_of(p).get(COMPONENT_LABEL) == component]

    def pods_of_job(self, job: Obj) -> list[Obj]:
        uid = job["metadata"].get("uid")
        return [
            p
            for p in self.pods
            if labels_of(p).get("batch.kubernetes.io/job-name") == name_of(job)
            or labels_of(p).get("job-name") == name_of(job)
            or any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or [])
        ]

    def claim(self, name: str) -> Obj | None:
        return next((c for c in self.claims if name_of(c) == name), None)

    def events_of(self, obj: Obj) -> list[Obj]:
        """Events about one object, oldest first."""
        kind, name = obj.get("kind"), name_of(obj)
        return [
            e
            for e in self.events
            if (e.get("involvedObject") or e.get("regarding") or {}).get("name") == name
            and (e.get("involvedObject") or e.get("regarding") or {}).get("kind") == kind
        ]


def name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def event_time(event: Mapping[str, Any]) -> str:
    """When an event last happened (core/v1 and events.k8s.io fields), sortable as text."""
    series = event.get("series") or {}
    return str(
        event.get("lastTimestamp")
        or series.get("lastObservedTime")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


class Cluster:
    """The API server of a kubeconfig context, read with plain JSON."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self._api = api
        self._api.user_agent = USER_AGENT
        self.namespace = namespace

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: str | None, context: str | None, namespace: str | None
    ) -> Cluster:
        """The context's API server and namespace (`default` when the context names none)."""
        try:
            contexts, active = kubernetes.config.list_kube_config_contexts(kubeconfig)  # type: ignore[no-untyped-call]
            chosen = active
            if context:
                chosen = next((c for c in contexts if c.get("name") == context), None)
                if chosen is None:
                    raise PluginError(f'context "{context}" not found in the kubeconfig')
            api = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
                kubeconfig, context=context
            )
        except (kubernetes.config.ConfigException, yaml.YAMLError, KeyError, TypeError) as exc:
            raise PluginError(f"invalid kubeconfig: {_one_line(str(exc))}") from exc
        except OSError as exc:
            raise PluginError(f"cannot read the kubeconfig: {exc}") from exc
        default = ((chosen or {}).get("context") or {}).get("namespace") or "default"
        return cls(api, namespace or default)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """GET a path as JSON; raises ApiException on an error answer, PluginError when the
        API server cannot be reached."""
        request = self._api.param_serialize(
            method="GET",
            resource_path=path,
            query_params=list((query or {}).items()) or None,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*request, _request_timeout=TIMEOUT)
        except urllib3.exceptions.HTTPError as exc:
            host = self._api.configuration.host
            raise PluginError(f"cannot reach the API server at {host}: {_cause(exc)}") from exc
        response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return json.loads(response.data or b"null")

    def snapshot(self, name: str) -> Snapshot:
        """The Bookstore `name` and everything of it; PluginError when it cannot be read."""
        ns = self.namespace
        path = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{ns}/bookstores/{name}"
        try:
            bookstore = self.get(path)
        except ApiException as exc:
            raise PluginError(_refusal(exc, f'bookstore "{name}"', ns)) from exc
        snap = Snapshot(namespace=ns, bookstore=bookstore)
        children = {"labelSelector": f"{NAME_LABEL}=bookstore,{INSTANCE_LABEL}={name}"}
        lists: list[tuple[str, str, Mapping[str, str]]] = [
            ("deployments", f"/apis/apps/v1/namespaces/{ns}/deployments", children),
            ("statefulsets", f"/apis/apps/v1/namespaces/{ns}/statefulsets", children),
            (
                "autoscalers",
                f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
                children,
            ),
            ("services", f"/api/v1/namespaces/{ns}/services", children),
            ("ingresses", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", children),
            ("jobs", f"/apis/batch/v1/namespaces/{ns}/jobs", children),
            ("pods", f"/api/v1/namespaces/{ns}/pods", children),
            ("claims", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", children),
            (
                "backups",
                f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{ns}/bookstorebackups",
                {"labelSelector": f"{BACKUP_LABEL}={name}"},
            ),
        ]
        for field, list_path, query in lists:
            setattr(snap, field, self._list(snap, field, list_path, query))
        self._add_missing_claims(snap)
        self._add_events(snap)
        return snap

    def _list(self, snap: Snapshot, what: str, path: str, query: Mapping[str, str]) -> list[Obj]:
        try:
            items: list[Obj] = (self.get(path, query) or {}).get("items") or []
        except ApiException as exc:
            if exc.status in (401, 403, 404):
                # 404: the kind is not served (no BookstoreBackup CRD, an old cluster).
                if exc.status != 404:
                    snap.unreadable.append(what)
                return []
            raise PluginError(_refusal(exc, what, snap.namespace)) from exc
        return sorted(items, key=name_of)

    def _add_missing_claims(self, snap: Snapshot) -> None:
        """Claims the pods mount that carry no Bookstore label (e.g. made by hand)."""
        wanted = {
            volume["persistentVolumeClaim"]["claimName"]
            for pod in snap.pods
            for volume in (pod.get("spec") or {}).get("volumes") or []
            if volume.get("persistentVolumeClaim")
        }
        for claim in sorted(wanted - {name_of(c) for c in snap.claims}):
            try:
                snap.claims.append(
                    self.get(f"/api/v1/namespaces/{snap.namespace}/persistentvolumeclaims/{claim}")
                )
            except ApiException as exc:
                if exc.status not in (401, 403, 404):
                    raise PluginError(_refusal(exc, f"claim {claim}", snap.namespace)) from exc

    def _add_events(self, snap: Snapshot) -> None:
        """Events of the namespace about the Bookstore, its children, pods and backups."""
        about = {
            (str(o.get("kind")), name_of(o))
            for o in (
                snap.bookstore,
                *snap.deployments,
                *snap.statefulsets,
                *snap.autoscalers,
                *snap.services,
                *snap.ingresses,
                *snap.jobs,
                *snap.pods,
                *snap.claims,
                *snap.backups,
            )
        }
        events = self._list(snap, "events", f"/api/v1/namespaces/{snap.namespace}/events", {})
        snap.events = sorted(
            (
                e
                for e in events
                if (
                    str((e.get("involvedObject") or {}).get("kind")),
                    str((e.get("involvedObject") or {}).get("name")),
                )
                in about
            ),
            key=event_time,
        )


def _refusal(exc: ApiException, what: str, namespace: str) -> str:
    if exc.status == 404:
        return f'{what} not found in namespace "{namespace}"'
    if exc.status in (401, 403):
        return f'not allowed to read {what} in namespace "{namespace}" ({exc.status}): ' + (
            _message(exc) or str(exc.reason)
        )
    return f"the API server answered {exc.status} reading {what}: {_message(exc) or exc.reason}"


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return ""
    return _one_line(str(body.get("message") or "")) if isinstance(body, dict) else ""


def _cause(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return _one_line(str(reason or exc))


def _one_line(text: str) -> str:
    return " ".join(text.split())

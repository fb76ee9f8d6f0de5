"""Which (group, resource, verb) each emulated request needs, and whether role.yaml grants it."""

from __future__ import annotations

import pathlib
from collections.abc import Iterable

import yaml
from kmock._internal import rendering

ROLE = pathlib.Path(__file__).parents[3] / "operator" / "rbac" / "role.yaml"
Permission = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)


def granted() -> set[Permission]:
    """Every (group, resource, verb) the ClusterRole allows (no wildcards are used)."""
    role = yaml.safe_load(ROLE.read_text())
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def needed(request: rendering.Request) -> Permission | None:
    """The permission a resource request needs; None for discovery (allowed to everyone)."""
    resource = request.resource
    if resource is None or not resource.plural:
        return None
    plural = f"{resource.plural}/{request.subresource}" if request.subresource else resource.plural
    method = request.method.value
    if method == "GET":
        verb = (
            "watch" if request.params.get("watch") == "true" else "get" if request.name else "list"
        )
    else:
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]
    return (resource.group or "", plural, verb)


def permissions(request: rendering.Request) -> list[Permission]:
    """What a request needs: a server-side apply may create the object, so it needs both
    patch and create (the API server checks create when the object is absent)."""
    permission = needed(request)
    if permission is None:
        return []
    if request.headers.get("Content-Type", "").startswith("application/apply-patch"):
        return [permission, (permission[0], permission[1], "create")]
    return [permission]


def denied(requests: Iterable[rendering.Request]) -> list[tuple[Permission, str]]:
    """The operator's requests that role.yaml would forbid, with their paths."""
    allowed = granted()
    return [
        (permission, request.url.path)
        for request in requests
        if not request.headers.get("User-Agent", "").startswith("kmock/")
        for permission in permissions(request)
        if permission not in allowed
    ]


def used(requests: Iterable[rendering.Request]) -> set[Permission]:
    """Every permission the operator exercised."""
    return {
        permission
        for request in requests
        if not request.headers.get("User-Agent", "").startswith("kmock/")
        for permission in permissions(request)
    }

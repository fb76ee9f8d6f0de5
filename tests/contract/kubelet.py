"""What a kubelet does to a container spec before it starts it: env resolution and expansion.

Mirrors kubelet's `makeEnvironmentVariables` and `third_party/forked/golang/expansion`, so a
container built by the operator can be run as a local process with the environment it would
really get: `envFrom` first, then `env` in order; `$(VAR)` in a `value` expands only to
variables defined before it; `$$` is a literal `$`; an unknown reference stays as written.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Data = Mapping[str, str]


class ContainerConfigError(Exception):
    """The kubelet would refuse to start the container (CreateContainerConfigError)."""


def decode_secret(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret manifest's values as the API server stores them: `data` decoded, `stringData`
    merged over it (the API server folds stringData into data on write)."""
    values = {
        key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()
    }
    values.update(secret.get("stringData") or {})
    return values


@dataclass(frozen=True)
class Sources:
    """The Secrets and ConfigMaps of the pod's namespace, by name, with decoded values."""

    secrets: Mapping[str, Data] = field(default_factory=dict)
    config_maps: Mapping[str, Data] = field(default_factory=dict)

    @classmethod
    def from_manifests(cls, manifests: Sequence[Mapping[str, Any]]) -> Sources:
        """Index Secret and ConfigMap manifests (other kinds are ignored)."""
        secrets = {
            m["metadata"]["name"]: decode_secret(m) for m in manifests if m["kind"] == "Secret"
        }
        config_maps = {
            m["metadata"]["name"]: dict(m.get("data") or {})
            for m in manifests
            if m["kind"] == "ConfigMap"
        }
        return cls(secrets=secrets, config_maps=config_maps)


def expand(value: str, mapping: Callable[[str], str]) -> str:
    """Kubernetes `$(VAR)` expansion: `$$` escapes, an unclosed `$(` and a lone `$` stay."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(value):
        if value[cursor] == "$" and cursor + 1 < len(value):
            out.append(value[checkpoint:cursor])
            rest = value[cursor + 1 :]
            if rest[0] == "$":
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    out.append(mapping(rest[1:close]))
                    advance = close + 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + value[checkpoint:]


def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    """The first context that defines a name gives its value; otherwise `$(NAME)` is kept."""

    def lookup(name: str) -> str:
        for context in contexts:
            if name in context:
                return context[name]
        return f"$({name})"

    return lookup


def _key_ref(
    ref: Mapping[str, Any], store: Mapping[str, Data], kind: str, variable: str
) -> str | None:
    """A configMapKeyRef/secretKeyRef value; None when missing and optional."""
    optional = bool(ref.get("optional", False))
    data = store.get(ref["name"])
    if data is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind} "{ref["name"]}" not found (env {variable})')
    if ref["key"] not in data:
        if optional:
            return None
        raise ContainerConfigError(
            f"couldn't find key {ref['key']} in {kind} {ref['name']} (env {variable})"
        )
    return data[ref["key"]]


def _env_from(container: Mapping[str, Any], sources: Sources) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref, store, kind = source["configMapRef"], sources.config_maps, "configmap"
        else:
            ref, store, kind = source["secretRef"], sources.secrets, "secret"
        data = store.get(ref["name"])
        if data is None:
            if ref.get("optional", False):
                continue
            raise ContainerConfigError(f'{kind} "{ref["name"]}" not found (envFrom)')
        env.update({prefix + key: value for key, value in data.items()})
    return env


def resolve_env(container: Mapping[str, Any], sources: Sources) -> dict[str, str]:
    """The container's environment as the kubelet builds it (service links off, as in our pods).

    Only `value`, `secretKeyRef`, `configMapKeyRef` and `envFrom` are supported; any other
    source (fieldRef, resourceFieldRef) raises, so a new kind of reference is noticed here.
    """
    env = _env_from(container, sources)
    for variable in container.get("env") or []:
        name = variable["name"]
        source = variable.get("valueFrom")
        if source is None:
            env[name] = expand(variable.get("value", ""), mapping_for(env))
            continue
        if "secretKeyRef" in source:
            value = _key_ref(source["secretKeyRef"], sources.secrets, "secret", name)
        elif "configMapKeyRef" in source:
            value = _key_ref(source["configMapKeyRef"], sources.config_maps, "configmap", name)
        else:
            raise NotImplementedError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[name] = value
    return env


def resolve_command(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """`command` + `args` with `$(VAR)` expanded from the resolved env (kubelet semantics).

    A container without `command` would run its image's ENTRYPOINT, which only the image
    knows, so that raises.
    """
    command = container.get("command")
    if not command:
        raise NotImplementedError(f"container {container['name']} relies on its image ENTRYPOINT")
    lookup = mapping_for(env)
    return [expand(part, lookup) for part in [*command, *(container.get("args") or [])]]

"""The kubelet emulation resolves env and commands as a real kubelet does."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.contract.kubelet import (
    ContainerConfigError,
    Sources,
    decode_secret,
    expand,
    mapping_for,
    resolve_command,
    resolve_env,
)

SOURCES = Sources(
    secrets={"db": {"password": "s3cr$t", "user": "shop"}},
    config_maps={"settings": {"LEVEL": "debug", "MODE": "fast"}},
)


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", **fields}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$(A)", "alpha"),
        ("x-$(A)-$(B)-y", "x-alpha-beta-y"),
        ("$(UNKNOWN)", "$(UNKNOWN)"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$alpha"),
        ("cost $5", "cost $5"),
        ("end$", "end$"),
        ("$(A", "$(A"),
        ("$()", "$()"),
        ("$(A)$(A)", "alphaalpha"),
        ("naïve $(A) ☃", "naïve alpha ☃"),
    ],
)
def test_expand_follows_kubernetes_expansion_rules(template: str, expected: str) -> None:
    assert expand(template, mapping_for({"A": "alpha", "B": "beta"})) == expected


def test_value_expands_only_variables_defined_before_it() -> None:
    env = resolve_env(
        container(
            env=[
                {"name": "URL", "value": "pg://$(USER)@$(HOST)"},
                {"name": "USER", "value": "shop"},
                {"name": "HOST", "value": "db"},
                {"name": "URL2", "value": "pg://$(USER)@$(HOST)"},
            ]
        ),
        SOURCES,
    )
    assert env["URL"] == "pg://$(USER)@$(HOST)"
    assert env["URL2"] == "pg://shop@db"


def test_secret_values_are_not_expanded_but_can_be_referenced() -> None:
    env = resolve_env(
        container(
            env=[
                {
                    "name": "PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                },
                {"name": "DSN", "value": "user=shop password=$(PASSWORD)"},
            ]
        ),
        SOURCES,
    )
    assert env == {"PASSWORD": "s3cr$t", "DSN": "user=shop password=s3cr$t"}


def test_missing_secret_or_key_refuses_the_container() -> None:
    for ref in ({"name": "nope", "key": "password"}, {"name": "db", "key": "nope"}):
        with pytest.raises(ContainerConfigError):
            resolve_env(container(env=[{"name": "X", "valueFrom": {"secretKeyRef": ref}}]), SOURCES)


def test_optional_missing_reference_leaves_the_variable_unset() -> None:
    env = resolve_env(
        container(
            env=[
                {
                    "name": "X",
                    "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}},
                },
                {
                    "name": "Y",
                    "valueFrom": {
                        "configMapKeyRef": {"name": "settings", "key": "nope", "optional": True}
                    },
                },
                {"name": "Z", "value": "$(X)$(Y)"},
            ]
        ),
        SOURCES,
    )
    assert env == {"Z": "$(X)$(Y)"}


def test_config_map_key_ref_gives_the_value() -> None:
    env = resolve_env(
        container(
            env=[
                {
                    "name": "L",
                    "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}},
                }
            ]
        ),
        SOURCES,
    )
    assert env == {"L": "debug"}


def test_env_from_comes_first_with_its_prefix_and_env_overrides_it() -> None:
    env = resolve_env(
        container(
            envFrom=[
                {"configMapRef": {"name": "settings"}},
                {"secretRef": {"name": "db"}, "prefix": "DB_"},
                {"secretRef": {"name": "absent", "optional": True}},
            ],
            env=[{"name": "MODE", "value": "slow-$(LEVEL)-$(DB_user)"}],
        ),
        SOURCES,
    )
    assert env == {
        "LEVEL": "debug",
        "MODE": "slow-debug-shop",
        "DB_password": "s3cr$t",
        "DB_user": "shop",
    }


def test_env_from_a_missing_required_source_refuses_the_container() -> None:
    with pytest.raises(ContainerConfigError):
        resolve_env(container(envFrom=[{"configMapRef": {"name": "absent"}}]), SOURCES)


def test_unsupported_reference_is_reported_not_ignored() -> None:
    ref = {"fieldRef": {"fieldPath": "metadata.name"}}
    with pytest.raises(NotImplementedError):
        resolve_env(container(env=[{"name": "POD", "valueFrom": ref}]), SOURCES)


def test_command_and_args_expand_from_the_resolved_env() -> None:
    spec = container(command=["serve", "--port=$(PORT)"], args=["$(MISSING)", "$$(PORT)"])
    assert resolve_command(spec, {"PORT": "8000"}) == [
        "serve",
        "--port=8000",
        "$(MISSING)",
        "$(PORT)",
    ]


def test_container_without_command_cannot_be_run_here() -> None:
    with pytest.raises(NotImplementedError):
        resolve_command(container(args=["x"]), {})


def test_secret_manifest_is_decoded_with_string_data_on_top() -> None:
    secret = {
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a": base64.b64encode(b"one").decode(), "b": base64.b64encode(b"two").decode()},
        "stringData": {"b": "three"},
    }
    assert decode_secret(secret) == {"a": "one", "b": "three"}
    assert Sources.from_manifests([secret]).secrets == {"s": {"a": "one", "b": "three"}}

"""The catalog and orders Deployments: one image, two commands, PSS "restricted" pods."""

from __future__ import annotations

from bookstore_operator.builders.common import (
    API_KEY_SECRET_KEY,
    DEFAULT_SERVICE_RESOURCES,
    POSTGRES_PORT,
    SERVICE_PASSWORD_KEYS,
    SERVICE_PORT,
    SERVICE_UID,
    Manifest,
    Service,
    container_security_context,
    labels,
    metadata,
    pod_security_context,
    resources,
    selector_labels,
    version_label,
)
from bookstore_operator.models import Bookstore, ExternalDatabaseFacts
from bookstore_operator.models import Component as ComponentSpec

TERMINATION_GRACE_SECONDS = 30


def _secret_env(name: str, secret: str, key: str) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _value_env(name: str, value: str) -> Manifest:
    return {"name": name, "value": value}


def database_env(store: Bookstore, service: Service) -> list[Manifest]:
    """DATABASE_URL without a password plus DATABASE_PASSWORD from a Secret, so no credential
    is ever written into the pod spec; an external database's URL is assembled by the kubelet
    from the user's Secret with dependent env expansion (each `$(VAR)` defined before use)."""
    external = store.spec.database.external
    if store.spec.database.is_external and external is not None:
        facts = store.external_database or ExternalDatabaseFacts()
        secret = external.secret_name
        return [
            _secret_env("DATABASE_HOST", secret, "host"),
            _secret_env("DATABASE_PORT", secret, "port"),
            _secret_env("DATABASE_USER", secret, "username"),
            _secret_env("DATABASE_PASSWORD", secret, "password"),
            _value_env(
                "DATABASE_URL",
                "postgresql://$(DATABASE_USER)@$(DATABASE_HOST):$(DATABASE_PORT)/"
                f"{facts.database}?sslmode={facts.sslmode}",
            ),
        ]
    host = store.child_name("postgres")
    return [
        _value_env("DATABASE_URL", f"postgresql://{service}@{host}:{POSTGRES_PORT}/{service}"),
        _secret_env("DATABASE_PASSWORD", store.child_name("db"), SERVICE_PASSWORD_KEYS[service]),
    ]


def service_env(store: Bookstore, service: Service) -> list[Manifest]:
    """Every environment variable of a service container (DESIGN.md "The services")."""
    env = [
        _value_env("HOST", "0.0.0.0"),  # noqa: S104 - a container listens on its pod IP
        _value_env("PORT", str(SERVICE_PORT)),
        _value_env("LOG_LEVEL", "info"),
        # The migration Job of each version migrates, before the rollout (builders.migrations).
        _value_env("MIGRATE_ON_START", "false"),
        *database_env(store, service),
        _secret_env("API_KEY", store.api_key_secret_name, API_KEY_SECRET_KEY),
    ]
    if service == "catalog":
        env.append(_value_env("SAMPLE_DATA", "true" if store.spec.sample_data else "false"))
    else:
        env.append(
            _value_env("CATALOG_URL", f"http://{store.child_name('catalog')}:{SERVICE_PORT}")
        )
    return env


def _http_probe(path: str, period: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def service_container(store: Bookstore, service: Service) -> Manifest:
    """The service container: health probes, resources and a read-only root filesystem."""
    return {
        "name": service,
        "image": store.image,
        "imagePullPolicy": store.image_pull_policy,
        "command": [f"bookstore-{service}"],
        "ports": [{"name": "http", "containerPort": SERVICE_PORT, "protocol": "TCP"}],
        "env": service_env(store, service),
        # No migration at start (MIGRATE_ON_START): a minute to start before liveness takes over.
        "startupProbe": _http_probe("/health/live", period=2, failures=30),
        "readinessProbe": _http_probe("/health/ready", period=5, failures=3),
        "livenessProbe": _http_probe("/health/live", period=10, failures=3),
        # Keep serving while endpoints drop this pod, so a rollout loses no request.
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "resources": resources(_component(store, service).resources, DEFAULT_SERVICE_RESOURCES),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }


def _component(store: Bookstore, service: Service) -> ComponentSpec:
    return store.spec.catalog if service == "catalog" else store.spec.orders


def _spread(store: Bookstore, service: Service) -> list[Manifest]:
    selector = {"matchLabels": selector_labels(store, service)}
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
            "matchLabelKeys": ["pod-template-hash"],
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]


def build_deployment(store: Bookstore, service: Service) -> Manifest:
    """`<name>-<service>`; under autoscaling it starts at minReplicas, then its HPA owns
    `replicas` (kube.creation_only leaves them out of every later apply)."""
    component = _component(store, service)
    autoscaling = component.autoscaling
    replicas = autoscaling.min_replicas if autoscaling.enabled else component.replicas
    pod_labels = {**labels(store, service), **version_label(store.image)}
    spec: Manifest = {
        "replicas": replicas,
        "selector": {"matchLabels": selector_labels(store, service)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": 600,
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security_context(SERVICE_UID),
                "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                "topologySpreadConstraints": _spread(store, service),
                "containers": [service_container(store, service)],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            },
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(store, store.child_name(service), service, version_label(store.image)),
        "spec": spec,
    }

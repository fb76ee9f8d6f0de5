"""The Bookstore resource as typed, immutable Python objects, parsed once per event.

Field names follow the CRD (camelCase in YAML, snake_case here). Defaults repeat the
CRD's so that an object the API server has not defaulted (an emulator, a unit test)
still parses to the same desired state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from bookstore_operator.settings import OperatorSettings

API_GROUP = "bookstore.dev"
API_VERSION = "v1alpha1"
KIND = "Bookstore"
PLURAL = "bookstores"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class Autoscaling(_Model):
    enabled: bool = True
    min_replicas: int = 2
    max_replicas: int = 5
    target_cpu_utilization_percentage: int | None = Field(
        70, alias="targetCPUUtilizationPercentage"
    )
    target_memory_utilization_percentage: int | None = 80


class Component(_Model):
    """A service (catalog or orders): replicas or autoscaling, and resources."""

    replicas: int = 2
    autoscaling: Autoscaling = Autoscaling()
    resources: dict[str, Any] = Field(default_factory=dict)


ORDERS_DEFAULT_MAX_REPLICAS = 10


class ExternalDatabase(_Model):
    secret_name: str = ""


class ExternalDatabaseFacts(_Model):
    """Non-secret facts read from the external database Secret by the reconciler.

    The Secret must hold host, port, username and password (referenced from the pods,
    never copied); `database` (default "postgres") and `sslmode` (default "prefer") are
    optional and, not being secret, are written into the pod spec as plain values. `port`
    is also read, as the NetworkPolicy must name it to let the services reach the server.
    Values that would not fit a URL or a NetworkPolicy fail validation (reported in status).
    """

    database: str = Field("postgres", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_$.-]{0,62}$")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    port: str = Field("5432", pattern=r"^[0-9]{1,5}$")

    @field_validator("port")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        """A TCP port the NetworkPolicy can name (1-65535)."""
        if not 0 < int(value) < 65536:
            raise ValueError("port must be between 1 and 65535")
        return value


class RestoreFrom(_Model):
    """The BookstoreBackup a new Bookstore starts from (set at creation only)."""

    backup: str


class Database(_Model):
    storage: str = "5Gi"
    storage_class_name: str = ""
    image: str = "postgres:16"
    resources: dict[str, Any] = Field(default_factory=dict)
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    external: ExternalDatabase | None = None
    restore_from: RestoreFrom | None = None

    @property
    def is_external(self) -> bool:
        return self.external is not None and bool(self.external.secret_name)


class Auth(_Model):
    api_key_secret_name: str = ""


class NetworkPolicySpec(_Model):
    enabled: bool = True
    allow_from: list[dict[str, Any]] = Field(default_factory=list)


class Ingress(_Model):
    enabled: bool = False
    class_name: str = ""
    host: str = ""
    tls_secret_name: str = ""


DEFAULT_PROGRESS_DEADLINE_SECONDS = 600


class Upgrade(_Model):
    """How a new version rolls out: how long new pods may take, and what happens then."""

    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_SECONDS
    auto_rollback: bool = True


class BackupVolume(_Model):
    """The `<name>-backups` PersistentVolumeClaim (fixed at its creation)."""

    size: str = "10Gi"
    storage_class_name: str = ""


class BackupSpec(_Model):
    """Scheduled and on-demand backups of the databases, and their retention."""

    schedule: str = ""
    retention: int = 7
    volume: BackupVolume = BackupVolume()
    final_backup: bool = False


class MonitoringSpec(_Model):
    """Prometheus Operator children: a PodMonitor and a PrometheusRule (issue 13)."""

    enabled: bool = False
    interval: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class BookstoreSpec(_Model):
    version: str = ""
    image: str = ""
    catalog: Component = Component()
    orders: Component = Component(autoscaling=Autoscaling(max_replicas=ORDERS_DEFAULT_MAX_REPLICAS))
    database: Database = Database()
    auth: Auth = Auth()
    network_policy: NetworkPolicySpec = NetworkPolicySpec()
    ingress: Ingress = Ingress()
    upgrade: Upgrade = Upgrade()
    backup: BackupSpec = BackupSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    sample_data: bool = False
    paused: bool = False

    @field_validator("orders", mode="before")
    @classmethod
    def _orders_max_replicas_default(cls, value: Any) -> Any:
        """Orders scales further than catalog by default (CRD default maxReplicas: 10)."""
        if isinstance(value, Mapping):
            autoscaling = dict(value.get("autoscaling") or {})
            autoscaling.setdefault("maxReplicas", ORDERS_DEFAULT_MAX_REPLICAS)
            value = {**value, "autoscaling": autoscaling}
        return value


class Bookstore(_Model):
    """One Bookstore: identity, spec, and what the spec resolves to with operator defaults."""

    name: str
    namespace: str
    uid: str
    generation: int = 1
    spec: BookstoreSpec = BookstoreSpec()
    # Resolved with OperatorSettings at parse time, so builders need nothing else.
    version: str
    image: str
    image_pull_policy: str = "IfNotPresent"
    # Filled in by the reconciler after it has read and checked the external Secret.
    external_database: ExternalDatabaseFacts | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any], settings: OperatorSettings) -> Bookstore:
        """Parse a Bookstore object as the API server returns it."""
        meta = body.get("metadata", {})
        spec = BookstoreSpec.model_validate(body.get("spec") or {})
        version = spec.version or settings.default_version
        repository = spec.image or settings.image_repository
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            generation=meta.get("generation", 1),
            spec=spec,
            version=version,
            image=f"{repository}:{version}",
            image_pull_policy=settings.image_pull_policy,
        )

    def at_version(self, version: str) -> Bookstore:
        """This Bookstore with its services at another version (same image repository)."""
        repository = self.image.removesuffix(f":{self.version}")
        return self.model_copy(update={"version": version, "image": f"{repository}:{version}"})

    def child_name(self, suffix: str = "") -> str:
        """`<name>-<suffix>`, the naming rule of every child (DESIGN.md)."""
        return f"{self.name}-{suffix}" if suffix else self.name

    @property
    def api_key_secret_name(self) -> str:
        return self.spec.auth.api_key_secret_name or self.child_name("api-key")

    @property
    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

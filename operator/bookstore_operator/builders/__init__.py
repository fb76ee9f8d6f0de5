"""Pure builders: a parsed Bookstore in, the manifests of its children out (no I/O)."""

from bookstore_operator.builders.children import ChildKey, build_children
from bookstore_operator.builders.common import (
    API_KEY_SECRET_KEY,
    CATALOG_PASSWORD_KEY,
    DATABASE_SECRET_KEYS,
    EXTERNAL_SECRET_KEYS,
    ORDERS_PASSWORD_KEY,
    POSTGRES_PASSWORD_KEY,
    POSTGRES_PORT,
    SERVICE_PORT,
    SERVICES,
    instance_labels,
    labels,
    selector_labels,
)
from bookstore_operator.builders.database import build_claim_growth, postgres_claim_name
from bookstore_operator.builders.migrations import (
    JOB_NAME_LABEL,
    MIGRATION_CONTAINER,
    build_migration_job,
    migration_job_name,
)
from bookstore_operator.builders.monitoring import (
    MONITORING_API_VERSION,
    build_pod_monitor,
    build_prometheus_rule,
)
from bookstore_operator.builders.secrets import build_api_key_secret, build_database_secret

__all__ = [
    "API_KEY_SECRET_KEY",
    "CATALOG_PASSWORD_KEY",
    "DATABASE_SECRET_KEYS",
    "EXTERNAL_SECRET_KEYS",
    "JOB_NAME_LABEL",
    "MIGRATION_CONTAINER",
    "MONITORING_API_VERSION",
    "ORDERS_PASSWORD_KEY",
    "POSTGRES_PASSWORD_KEY",
    "POSTGRES_PORT",
    "SERVICES",
    "SERVICE_PORT",
    "ChildKey",
    "build_api_key_secret",
    "build_children",
    "build_claim_growth",
    "build_database_secret",
    "build_migration_job",
    "build_pod_monitor",
    "build_prometheus_rule",
    "instance_labels",
    "labels",
    "migration_job_name",
    "postgres_claim_name",
    "selector_labels",
]

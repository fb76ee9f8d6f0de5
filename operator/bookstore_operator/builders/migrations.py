"""The migration Jobs: one per service and version, run with the new image before any new pod.

A Job's name derives from the version and the image, so a retried reconcile (or a restarted
operator) finds the Job it made instead of making a second one; a new version gets a new Job.
Jobs are immutable once created: the reconciler creates them and never applies them again.
"""

from __future__ import annotations

import hashlib
import re

from bookstore_operator.builders.common import (
    DEFAULT_SERVICE_RESOURCES,
    SERVICE_UID,
    Manifest,
    Service,
    container_security_context,
    labels,
    metadata,
    pod_security_context,
    resources,
    version_label,
)
from bookstore_operator.builders.deployments import service_env
from bookstore_operator.models import Bookstore
from bookstore_operator.rollout import DOWNGRADE_EXIT_CODE

MIGRATION_CONTAINER = "migrate"
# Retries of a failed migration pod (the database may still be starting), then the Job fails.
MIGRATION_BACKOFF_LIMIT = 2
# The whole Job, retries included: `migrate` waits for the database, within this bound.
MIGRATION_DEADLINE_SECONDS = 600
# Long enough for the operator to read the outcome, short enough not to pile up Jobs.
MIGRATION_TTL_SECONDS = 3600
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
SERVICE_LABEL = "bookstore.dev/service"
MAX_NAME_LENGTH = 63  # the Job controller copies the name into a label of its pods
HASH_LENGTH = 8


def migration_job_name(store: Bookstore, service: Service) -> str:
    """`<name>-<service>-migrate-<version>-<hash of image>`, a DNS label of at most 63 chars.

    The version (then `-migrate`) is cut when the name would be too long; the hash of the
    whole image keeps two versions (or two repositories) apart even then.
    """
    digest = hashlib.sha256(store.image.encode()).hexdigest()[:HASH_LENGTH]
    version = re.sub(r"[^a-z0-9]+", "-", store.version.lower()).strip("-") or "v"
    prefix = store.child_name(f"{service}-migrate")
    room = MAX_NAME_LENGTH - len(prefix) - len(digest) - 2
    version = version[: max(room, 0)].strip("-")
    # A 40-character Bookstore name leaves no room for the version: the hash alone tells.
    prefix = prefix[: MAX_NAME_LENGTH - len(digest) - 1].rstrip("-")
    return "-".join(part for part in (prefix, version, digest) if part)


def build_migration_job(store: Bookstore, service: Service) -> Manifest:
    """The Job that runs `bookstore-<service> migrate` with the new image and the service's env.

    Pod Security "restricted", bounded by backoffLimit and activeDeadlineSeconds, removed
    ttlSecondsAfterFinished after it finishes; exit code 3 (a refused downgrade) fails the Job
    at once, as retrying cannot help.
    """
    component = store.spec.catalog if service == "catalog" else store.spec.orders
    extra = {**version_label(store.image), SERVICE_LABEL: service}
    container: Manifest = {
        "name": MIGRATION_CONTAINER,
        "image": store.image,
        "imagePullPolicy": store.image_pull_policy,
        "command": [f"bookstore-{service}", "migrate"],
        "env": service_env(store, service),
        "resources": resources(component.resources, DEFAULT_SERVICE_RESOURCES),
        "securityContext": container_security_context(),
        # The outcome is a JSON line in /dev/termination-log; a crash leaves the log's tail.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(store, migration_job_name(store, service), "migration", extra),
        "spec": {
            "backoffLimit": MIGRATION_BACKOFF_LIMIT,
            "activeDeadlineSeconds": MIGRATION_DEADLINE_SECONDS,
            "ttlSecondsAfterFinished": MIGRATION_TTL_SECONDS,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": MIGRATION_CONTAINER,
                            "operator": "In",
                            "values": [DOWNGRADE_EXIT_CODE],
                        },
                    }
                ]
            },
            "template": {
                "metadata": {"labels": {**labels(store, "migration"), **extra}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(SERVICE_UID),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }

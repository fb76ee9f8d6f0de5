"""Backups of a Bookstore's databases: the backup and restore Jobs, and the `<name>-backups` volume.

A backup is one `pg_dump --format=custom` per database, run by a Job with the database's own
postgres image (so pg_dump matches the server) into `/backups/<backup name>/` on the
`<name>-backups` PVC, which outlives the Bookstore. Each Job runs ONE shell script (below),
the same text the round-trip test runs against a real PostgreSQL.

Least privilege: in-cluster, each database is dumped and restored by its own service role
(the owner of its database and of every object its migrations made), so a Job never holds
the superuser's password; with spec.database.external, by the user's role (the only one the
operator knows), exactly as the services connect (builders.deployments.database_env).
"""

from __future__ import annotations

import hashlib

from bookstore_operator.builders.common import (
    COMPONENT_LABEL,
    POSTGRES_UID,
    SERVICES,
    Manifest,
    container_security_context,
    labels,
    metadata,
    pod_security_context,
    resources,
    version_label,
)
from bookstore_operator.builders.deployments import database_env
from bookstore_operator.builders.quantity import canonical_quantity
from bookstore_operator.models import API_GROUP, API_VERSION, Bookstore

BACKUP_KIND = "BookstoreBackup"
# The pods' component label: not "database", whose label selects the postgres Service's pods.
BACKUP_COMPONENT = "backup"
BACKUP_CONTAINER = "backup"
RESTORE_CONTAINER = "restore"
CLEANUP_CONTAINER = "cleanup"
BACKUP_ROOT = "/backups"
BACKUP_VOLUME = "backups"
MANIFEST_FILE = "manifest.json"
# Each service's Alembic version table (services' config: ServiceSchema.version_table).
VERSION_TABLES = {"catalog": "alembic_version_catalog", "orders": "alembic_version_orders"}
# With an external database both services share one database (one dump, "shared").
SHARED_DATABASE = "shared"
# orders before catalog: the two snapshots are a moment apart, and a reservation whose order is
# not in the (earlier) orders snapshot only holds stock; the other way round, a restored order
# could lack the reservation that took its stock, and cancelling it would create stock.
IN_CLUSTER_DATABASES = ("orders", "catalog")
# A restore that can never succeed (data in the target, no such dump): fail the Job at once.
RESTORE_REFUSED_EXIT_CODE = 3
JOB_BACKOFF_LIMIT = 2
JOB_DEADLINE_SECONDS = 3600
# Long enough for the operator to read the outcome; a re-run Job reports a finished backup
# again from its manifest, so the result outlives the Job.
JOB_TTL_SECONDS = 86400
# Removing a directory takes seconds; the operator stops waiting for it sooner than this
# anyway (OperatorSettings.backup_cleanup_timeout_seconds).
CLEANUP_DEADLINE_SECONDS = 300
DEFAULT_JOB_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "512Mi"},
}
MAX_NAME_LENGTH = 63  # the Job controller copies the Job's name into a label of its pods
HASH_LENGTH = 8

# Shell functions both scripts share. Credentials only come from the environment; each
# database's connection is a URL without password plus a password variable, as the services'.
_COMMON = r"""set -eu
umask 077
root="${BACKUP_ROOT:-/backups}"
termination_log="${TERMINATION_LOG:-/dev/termination-log}"
scratch="${TMPDIR:-/tmp}/bookstore-revisions.sql"
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-15}"

check_name() {
  case "$BACKUP_NAME" in
    '' | [!a-z0-9]* | *[!a-z0-9.-]*)
      fail "BACKUP_NAME '$BACKUP_NAME' is not a Kubernetes object name" ;;
  esac
}

# Sets url and password for database $1.
connection() {
  case "$1" in
    catalog) url="$CATALOG_DATABASE_URL" password="$CATALOG_DATABASE_PASSWORD" ;;
    orders) url="$ORDERS_DATABASE_URL" password="$ORDERS_DATABASE_PASSWORD" ;;
    shared) url="$SHARED_DATABASE_URL" password="$SHARED_DATABASE_PASSWORD" ;;
    *) fail "unknown database '$1' in DATABASES" ;;
  esac
}

# A JSON object: the Alembic revision of each service whose version table is in dump $1,
# read from the dump itself, so it is the revision of that very snapshot.
revisions() {
  found=""
  for pair in catalog:alembic_version_catalog orders:alembic_version_orders; do
    service="${pair%%:*}" table="${pair#*:}"
    pg_restore --data-only --table="$table" --file="$scratch" "$1" ||
      fail "cannot read $table in $1"
    revision=$(awk '/^COPY /{copying = 1; next} $0 == "\\." {copying = 0}
      copying {printf "%s%s", sep, $0; sep = ","}' "$scratch")
    case "$revision" in *[!A-Za-z0-9_,]*) fail "unexpected revision '$revision' in $table" ;; esac
    [ -z "$revision" ] || found="$found${found:+,}\"$service\":\"$revision\""
  done
  rm -f "$scratch"
  printf '{%s}' "$found"
}
"""

BACKUP_SCRIPT = (
    "# Dumps each database in $DATABASES (pg_dump, custom format: one consistent snapshot\n"
    "# per database) into $BACKUP_ROOT/$BACKUP_NAME/<database>.dump, then writes a JSON\n"
    "# summary (files, sizes, revisions) to manifest.json and to the termination log.\n"
    + _COMMON
    + r"""
fail() { echo "backup: $*" >&2; exit 1; }
check_name
case "$BACKUP_UID" in '' | *[!a-f0-9-]*) fail "BACKUP_UID '$BACKUP_UID' is not a uid" ;; esac
dir="$root/$BACKUP_NAME"
manifest="$dir/manifest.json"
if [ -f "$manifest" ] && grep -q "\"uid\":\"$BACKUP_UID\"" "$manifest"; then
  echo "backup: $BACKUP_NAME is already complete; reporting it again" >&2
  cat "$manifest" >"$termination_log"
  cat "$manifest"
  exit 0
fi
# Leftovers of a failed attempt, or of a deleted backup that had the same name.
rm -rf "$dir"
mkdir -p "$dir"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
files="" total=0
for database in $DATABASES; do
  connection "$database"
  # Written under a temporary name: a partial file is never taken for a dump.
  partial="$dir/.$database.dump.partial"
  echo "backup: dumping $database" >&2
  PGPASSWORD="$password" pg_dump --format=custom --no-password --lock-wait-timeout=120s \
    --file="$partial" --dbname="$url" || fail "pg_dump of $database failed (see above)"
  server=$(pg_restore --list "$partial" |
    sed -n 's/^;[[:space:]]*Dumped from database version: \([^ ]*\).*/\1/p' | tr -cd 'A-Za-z0-9.')
  found=$(revisions "$partial")
  size=$(wc -c <"$partial" | tr -cd '0-9')
  mv "$partial" "$dir/$database.dump"
  total=$((total + size))
  files="$files${files:+,}{\"database\":\"$database\",\"file\":\"$database.dump\",\"sizeBytes\":$size,\"serverVersion\":\"$server\",\"revisions\":$found}"
done
client=$(pg_dump --version | awk '{print $3}' | tr -cd 'A-Za-z0-9.')
completed=$(date -u +%Y-%m-%dT%H:%M:%SZ)
summary="{\"backup\":\"$BACKUP_NAME\",\"uid\":\"$BACKUP_UID\",\"method\":\"logical\",\"format\":\"custom\",\"pgDumpVersion\":\"$client\",\"startedAt\":\"$started\",\"completedAt\":\"$completed\",\"sizeBytes\":$total,\"files\":[$files]}"
sync
# The manifest last, and atomically: a directory without one is not a backup.
printf '%s\n' "$summary" >"$dir/.manifest.json.partial"
mv "$dir/.manifest.json.partial" "$manifest"
sync
printf '%s' "$summary" >"$termination_log"
printf '%s\n' "$summary"
"""
)

RESTORE_SCRIPT = "".join(
    (
        "# Restores $BACKUP_ROOT/$BACKUP_NAME/<database>.dump into each database in $DATABASES,\n"
        "# which must all be empty: any table, view or sequence in one refuses the whole restore\n"
        "# (exit 3, RESTORE_REFUSED_EXIT_CODE) before anything is changed.\n",
        _COMMON,
        r"""
fail() { echo "restore: $*" >&2; exit 1; }
refuse() { echo "restore: refused: $*" >&2; exit 3; }
check_name
dir="$root/$BACKUP_NAME"
[ -f "$dir/manifest.json" ] || refuse "backup $BACKUP_NAME is not complete (no $dir/manifest.json)"
for database in $DATABASES; do
  if [ ! -f "$dir/$database.dump" ]; then
    held=$(cd "$dir" && ls -- *.dump 2>/dev/null | tr '\n' ' ')
    refuse "backup $BACKUP_NAME has no $database.dump (it holds: ${held:-nothing}):" \
      "it was taken of a Bookstore with another database layout"
  fi
  connection "$database"
  relations=$(PGPASSWORD="$password" psql --no-psqlrc --no-password --quiet --tuples-only \
    --no-align --set=ON_ERROR_STOP=1 --dbname="$url" <<'SQL'
SELECT count(*) || ' table(s), view(s) or sequence(s), e.g. '
       || string_agg(name, ', ' ORDER BY name) FILTER (WHERE rank <= 5)
FROM (
  SELECT format('%I.%I', n.nspname, c.relname) AS name,
         row_number() OVER (ORDER BY n.nspname, c.relname) AS rank
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
) AS found
HAVING count(*) > 0;
SQL
  ) || fail "cannot inspect database $database (see above)"
  [ -z "$relations" ] ||
    refuse "database $database is not empty ($relations);" \
      "a restore only fills empty databases; nothing was changed"
done
restored=""
for database in $DATABASES; do
  connection "$database"
  echo "restore: restoring $database from $BACKUP_NAME" >&2
  PGPASSWORD="$password" pg_restore --no-owner --no-privileges --exit-on-error \
    --single-transaction --no-password --dbname="$url" "$dir/$database.dump" ||
    fail "pg_restore into $database failed (see above); its transaction was rolled back"
  # Fresh statistics for the planner; quiet about the shared catalogs only a superuser analyzes.
  PGPASSWORD="$password" PGOPTIONS="-c client_min_messages=error" psql --no-psqlrc \
    --no-password --quiet --set=ON_ERROR_STOP=1 --dbname="$url" --command=ANALYZE ||
    fail "ANALYZE of $database failed (see above)"
  found=$(revisions "$dir/$database.dump")
  restored="$restored${restored:+,}{\"database\":\"$database\",\"file\":\"$database.dump\",\"revisions\":$found}"
done
completed=$(date -u +%Y-%m-%dT%H:%M:%SZ)
summary="{\"backup\":\"$BACKUP_NAME\",\"completedAt\":\"$completed\",\"restored\":[$restored]}"
printf '%s' "$summary" >"$termination_log"
printf '%s\n' "$summary"
""",
    )
)

CLEANUP_SCRIPT = r"""# Removes $BACKUP_ROOT/$BACKUP_NAME, a deleted BookstoreBackup's files, unless
# a manifest.json there names another backup (a later BookstoreBackup of the same name).
set -eu
case "$BACKUP_NAME" in
  '' | [!a-z0-9]* | *[!a-z0-9.-]*)
    echo "cleanup: BACKUP_NAME '$BACKUP_NAME' is not a Kubernetes object name" >&2; exit 1 ;;
esac
dir="${BACKUP_ROOT:-/backups}/$BACKUP_NAME"
if [ -f "$dir/manifest.json" ] && ! grep -q "\"uid\":\"$BACKUP_UID\"" "$dir/manifest.json"; then
  echo "cleanup: $dir belongs to another backup named $BACKUP_NAME; left alone" >&2
  exit 0
fi
rm -rf -- "$dir"
echo "cleanup: removed $dir" >&2
"""


def bounded_name(name: str) -> str:
    """`name` itself when it fits 63 characters, else its start and a hash of the whole."""
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]
    return f"{name[: MAX_NAME_LENGTH - HASH_LENGTH - 1].rstrip('-.')}-{digest}"


def backup_claim_name(store_name: str) -> str:
    """`<name>-backups`: the volume holding a Bookstore's backups (found by name on restore)."""
    return f"{store_name}-backups"


def backup_job_name(backup_name: str) -> str:
    """`<backup>-dump`: one Job per BookstoreBackup, found again by a retried reconcile."""
    return bounded_name(f"{backup_name}-dump")


def cleanup_job_name(backup_name: str) -> str:
    """`<backup>-cleanup`: the one Job removing a deleted backup's files."""
    return bounded_name(f"{backup_name}-cleanup")


def restore_job_name(store: Bookstore, backup_name: str) -> str:
    """`<name>-restore-<backup>`: the one restore of a Bookstore (restoreFrom is immutable)."""
    return bounded_name(f"{store.child_name('restore')}-{backup_name}")


def backup_databases(store: Bookstore) -> tuple[str, ...]:
    """The databases a backup of this store dumps, in order: one per service in-cluster, one
    shared by both services with an external database."""
    return (SHARED_DATABASE,) if store.spec.database.is_external else IN_CLUSTER_DATABASES


def _prefixed(env: list[Manifest], prefix: str) -> list[Manifest]:
    """A service's DATABASE_* variables renamed `<prefix>DATABASE_*`, references included."""
    renamed = []
    for variable in env:
        item = {**variable, "name": prefix + variable["name"]}
        if "value" in item:
            item["value"] = item["value"].replace("$(", f"$({prefix}")
        renamed.append(item)
    return renamed


def _connection_env(store: Bookstore) -> list[Manifest]:
    """Each database's URL (no password) and password variable, as its service connects."""
    if store.spec.database.is_external:
        return _prefixed(database_env(store, SERVICES[0]), f"{SHARED_DATABASE.upper()}_")
    return [
        variable
        for service in SERVICES
        for variable in _prefixed(database_env(store, service), f"{service.upper()}_")
    ]


def _job(
    store: Bookstore,
    *,
    name: str,
    container: str,
    script: str,
    env: list[Manifest],
    claim: str,
    read_only: bool,
    connects: bool = True,
    deadline_seconds: int = JOB_DEADLINE_SECONDS,
) -> Manifest:
    """A restricted Job running `sh -c <script>` with the postgres image and the backups PVC;
    `connects`: it gets each database's connection (the services' Secrets) and DATABASES."""
    extra = {COMPONENT_LABEL: BACKUP_COMPONENT, **version_label(store.spec.database.image)}
    if connects:
        databases = {"name": "DATABASES", "value": " ".join(backup_databases(store))}
        env = [databases, *env, *_connection_env(store)]
    spec: Manifest = {
        "backoffLimit": JOB_BACKOFF_LIMIT,
        "activeDeadlineSeconds": deadline_seconds,
        "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
        "template": {
            "metadata": {"labels": {**labels(store, None), **extra}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security_context(POSTGRES_UID),
                "containers": [
                    {
                        "name": container,
                        "image": store.spec.database.image,
                        "imagePullPolicy": store.image_pull_policy,
                        "command": ["sh", "-c", script],
                        "env": [{"name": "BACKUP_ROOT", "value": BACKUP_ROOT}, *env],
                        "resources": resources({}, DEFAULT_JOB_RESOURCES),
                        "securityContext": container_security_context(),
                        # The summary is JSON in /dev/termination-log; a failure leaves the
                        # log's tail (the script's and pg_dump's own messages).
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "volumeMounts": [
                            {
                                "name": BACKUP_VOLUME,
                                "mountPath": BACKUP_ROOT,
                                "readOnly": read_only,
                            },
                            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir
                        ],
                    }
                ],
                "volumes": [
                    {"name": BACKUP_VOLUME, "persistentVolumeClaim": {"claimName": claim}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                ],
            },
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(store, name, None, extra),
        "spec": spec,
    }


def build_backup_job(store: Bookstore, backup_name: str, backup_uid: str) -> Manifest:
    """The Job taking backup `backup_name` of `store`, owned by that BookstoreBackup (deleting
    the backup object deletes its Job; the files stay until the controller removes them)."""
    job = _job(
        store,
        name=backup_job_name(backup_name),
        container=BACKUP_CONTAINER,
        script=BACKUP_SCRIPT,
        env=[
            {"name": "BACKUP_NAME", "value": backup_name},
            {"name": "BACKUP_UID", "value": backup_uid},
        ],
        claim=backup_claim_name(store.name),
        read_only=False,
    )
    job["metadata"]["ownerReferences"] = [_backup_owner(backup_name, backup_uid)]
    return job


def _backup_owner(backup_name: str, backup_uid: str) -> Manifest:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": BACKUP_KIND,
        "name": backup_name,
        "uid": backup_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def build_cleanup_job(store: Bookstore, backup_name: str, backup_uid: str) -> Manifest:
    """The Job removing the files of deleted backup `backup_name` from `store`'s backups volume,
    owned by that BookstoreBackup (the garbage collector removes it once the backup is gone).

    It needs no database and no Secret (the Bookstore may be gone already: `store` is then
    the Bookstore as parsed from its name alone, with the default database image).
    """
    job = _job(
        store,
        name=cleanup_job_name(backup_name),
        container=CLEANUP_CONTAINER,
        script=CLEANUP_SCRIPT,
        env=[
            {"name": "BACKUP_NAME", "value": backup_name},
            {"name": "BACKUP_UID", "value": backup_uid},
        ],
        claim=backup_claim_name(store.name),
        read_only=False,
        connects=False,
        deadline_seconds=CLEANUP_DEADLINE_SECONDS,
    )
    job["metadata"]["ownerReferences"] = [_backup_owner(backup_name, backup_uid)]
    return job


def build_restore_job(store: Bookstore, backup_name: str, source_store_name: str) -> Manifest:
    """The Job restoring backup `backup_name` (taken of Bookstore `source_store_name`, whose
    volume it mounts read-only) into `store`'s empty databases; owned by `store`.

    Exit code 3 (a refused restore: data in a target, or no matching dump) fails the Job at
    once, as retrying cannot help.
    """
    job = _job(
        store,
        name=restore_job_name(store, backup_name),
        container=RESTORE_CONTAINER,
        script=RESTORE_SCRIPT,
        env=[{"name": "BACKUP_NAME", "value": backup_name}],
        claim=backup_claim_name(source_store_name),
        read_only=True,
    )
    job["spec"]["podFailurePolicy"] = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": RESTORE_CONTAINER,
                    "operator": "In",
                    "values": [RESTORE_REFUSED_EXIT_CODE],
                },
            }
        ]
    }
    return job


def build_backup_claim(store: Bookstore, size: str, storage_class_name: str = "") -> Manifest:
    """`<name>-backups`, WITHOUT an ownerReference: the backups outlive the Bookstore, whatever
    its deletionPolicy says; `storage_class_name` empty means the cluster's default class."""
    meta = metadata(store, backup_claim_name(store.name), None, {COMPONENT_LABEL: BACKUP_COMPONENT})
    del meta["ownerReferences"]
    spec: Manifest = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": canonical_quantity(size)}},
    }
    if storage_class_name:
        spec["storageClassName"] = storage_class_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}

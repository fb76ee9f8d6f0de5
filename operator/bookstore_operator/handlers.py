"""Thin kopf handlers: every trigger funnels into one serialized, idempotent reconcile.

Triggers: the Bookstore's create/update/resume, any change to a child we manage that drift
repair or readiness can see (drift repair and status refresh), a periodic resync timer, and
for backups: a BookstoreBackup's change (its Bookstore's status), a new backup-now annotation
value (kopf's diff ignores our annotations) and a cheap timer that reconciles only when a
schedule slot came or backups just became failing (backup_health.wake_needed).
Reconciles of one Bookstore never overlap, and triggers that arrive while one is
queued are coalesced into it. The child watches ask the API server for our label only
(a server-side labelSelector, lists in chunks), so the operator never lists every
ConfigMap or Deployment of the cluster.
Deletion needs no handler of its own: children carry a controller ownerReference, so the
garbage collector deletes them with the Bookstore (the StatefulSet's PVC retention policy
follows spec.database.deletionPolicy). kopf puts one finalizer on every Bookstore for the
timers (`bookstore.dev/finalizer`; kopf gives every timer one, there is no opt-out, and a
hand-made resync loop would avoid it but would ignore peering), and removes it once the
timers stop (within seconds), so a Bookstore deleted while no operator runs waits for one
(see the README's troubleshooting for the command that releases it). With
spec.backup.finalBackup the same finalizer also waits for the last backup
(final_backups.take_final_backup), bounded by BOOKSTORE_FINAL_BACKUP_TIMEOUT_SECONDS: the
finalizer keeps the Bookstore, so the garbage collector keeps its database until then.
A Bookstore made from a backup (spec.database.restoreFrom) is also reconciled when that
backup changes (an index of the backups Bookstores restore from), so it does not wait for
the resync to see its backup complete.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from bookstore_operator import kube, metrics
from bookstore_operator.backup_health import BOOKSTORE_LABEL, wake_needed
from bookstore_operator.errors import UserFixableError, classify, outcome
from bookstore_operator.final_backups import take_final_backup, wants_final_backup
from bookstore_operator.models import API_GROUP, API_VERSION, KIND, PLURAL
from bookstore_operator.reconciler import reconcile
from bookstore_operator.settings import OperatorSettings
from bookstore_operator.triggers import ChangeFilter, KeyedLock

BOOKSTORES = (API_GROUP, API_VERSION, PLURAL)
BACKUPS = (API_GROUP, API_VERSION, "bookstorebackups")
MANAGED = {"app.kubernetes.io/managed-by": "bookstore-operator"}
MANAGED_SELECTOR = ",".join(f"{key}={value}" for key, value in MANAGED.items())
# Objects per page of the initial lists (the API server's `limit`, followed by `continue`).
LIST_CHUNK_SIZE = 500
# Secrets are not watched: that would need list/watch on every Secret in the cluster; the
# generated ones are create-only and the resync timer recreates a deleted one.
CHILDREN = (
    ("v1", "configmaps"),
    ("v1", "services"),
    ("apps/v1", "deployments"),
    ("apps/v1", "statefulsets"),
    ("autoscaling/v2", "horizontalpodautoscalers"),
    ("policy/v1", "poddisruptionbudgets"),
    ("networking.k8s.io/v1", "networkpolicies"),
    ("networking.k8s.io/v1", "ingresses"),
    # A migration Job finishing is what lets an upgrade go on (upgrades.observe_rollout).
    ("batch/v1", "jobs"),
)
CHILD_RESOURCES = frozenset(
    (*api_version.rpartition("/")[::2], plural) for api_version, plural in CHILDREN
)
TIMER_STOP_POLL_SECONDS = 2.0
# Read once at import: kopf fixes a timer's interval when the handler is registered.
RESYNC_SECONDS = OperatorSettings().resync_seconds
BACKUP_CHECK_SECONDS = OperatorSettings().backup_check_seconds
# A replica exports a Bookstore's phase and conditions for this many resyncs after it last
# saw it: a replica that lost the peering stops exporting its stale values (metrics.py).
STATES_MAX_AGE_RESYNCS = 2.5
Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    """The operator's clock (tests put another one in the memo, as `clock`)."""
    return datetime.datetime.now(datetime.UTC)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping in annotations (never in status) and set up shared state."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    # A deleted Bookstore goes once its resync timer stops; a timer caught mid-reconcile is
    # re-checked after this many seconds (kopf's default, 60, kept deletions waiting a minute).
    settings.background.cancellation_polling = TIMER_STOP_POLL_SECONDS
    # Resources are discovered once at startup: no need to list/watch CRDs and namespaces.
    settings.scanning.disabled = True
    settings.watching.label_selectors[_is_child_resource] = MANAGED_SELECTOR
    settings.watching.chunk_size = LIST_CHUNK_SIZE
    if "operator_settings" not in memo:
        memo.operator_settings = OperatorSettings()
    if "kube" not in memo:
        memo.kube = kube.Kube.from_environment(memo.operator_settings)
    if "clock" not in memo:
        memo.clock = utc_now
    memo.locks = KeyedLock[tuple[str, str]](observe_wait=metrics.LOCK_WAIT.observe)
    # Every Bookstore is reconciled at least once per resync while this replica is active.
    metrics.BOOKSTORES.max_age = STATES_MAX_AGE_RESYNCS * memo.operator_settings.resync_seconds
    memo.queued = set()
    memo.changes = ChangeFilter()
    memo.background = set()


def _is_child_resource(resource: kopf.Resource) -> bool:
    """True for the kinds of children we watch (not the Bookstores, not kopf's peerings)."""
    return (resource.group, resource.version, resource.plural) in CHILD_RESOURCES


@kopf.on.resume(*BOOKSTORES)
@kopf.on.create(*BOOKSTORES)
@kopf.on.update(*BOOKSTORES)
async def reconcile_bookstore(
    namespace: str | None, name: str, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Bookstore created, changed, or seen at operator start: reconcile; kopf retries failures."""
    await run_reconcile(memo, namespace or "", name, logger, escalate=True)


@kopf.timer(*BOOKSTORES, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def resync(
    namespace: str | None, name: str, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Periodic safety net: repairs drift and refreshes status even if a watch event was lost."""
    await run_reconcile(memo, namespace or "", name, logger, escalate=False)


@kopf.timer(*BOOKSTORES, interval=BACKUP_CHECK_SECONDS, id="backup-schedule")
async def check_backup_schedule(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """A slot came or backups just became failing: reconcile. Reads no API otherwise."""
    await wake_for_backups(body, namespace or "", name, memo, logger)


@kopf.on.event(*BOOKSTORES, id="backup-request")
async def check_backup_request(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """A new bookstore.dev/backup-now value (kopf's diff ignores our annotations): reconcile."""
    await wake_for_backups(body, namespace or "", name, memo, logger)


async def wake_for_backups(
    body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, logger: kopf.Logger
) -> None:
    clock: Clock = memo.clock
    if wake_needed(body, clock()):
        logger.debug("Backups of %s/%s need a reconcile.", namespace, name)
        await run_reconcile(memo, namespace, name, logger, escalate=False)


@kopf.on.event(*BOOKSTORES, id="forget-deleted")
async def forget_deleted(
    event: kopf.RawEvent, namespace: str | None, name: str, memo: kopf.Memo, **_: Any
) -> None:
    """A Bookstore is gone: drop its gauges, after any reconcile of it still running (which
    would report it again)."""
    if event.get("type") != "DELETED":
        return
    locks: KeyedLock[tuple[str, str]] = memo.locks
    async with locks.hold((namespace or "", name)):
        kube.forget_bookstore(namespace or "", name)


@kopf.index(*BOOKSTORES)
def restore_sources(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[tuple[str, str], str]:
    """(namespace, backup) -> the Bookstores restoring from that BookstoreBackup."""
    backup = ((spec.get("database") or {}).get("restoreFrom") or {}).get("backup")
    return {(namespace or "", str(backup)): name} if backup else {}


@kopf.on.event(*BACKUPS, id="backup-changed")
async def backup_changed(
    event: kopf.RawEvent,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """A BookstoreBackup appeared, changed phase or went: reconcile its Bookstore's status,
    and the Bookstores waiting to restore it."""
    restore_sources: kopf.Index[tuple[str, str], str] = kwargs["restore_sources"]
    store = backup_store(body)
    changes: ChangeFilter = memo.changes
    if not changes.matters(event.get("type"), body):
        return
    namespace = body.metadata.namespace or ""
    restoring = list(restore_sources.get((namespace, body.metadata.name or ""), []))
    for name in ([store] if store is not None else []) + restoring:
        spawn_reconcile(memo, namespace, name, logger)


def spawn_reconcile(memo: kopf.Memo, namespace: str, name: str, logger: kopf.Logger) -> None:
    """Reconcile a Bookstore in the background: the caller is another object's handler (a
    BookstoreBackup's), whose own events and deletion must not wait behind that reconcile.
    A trigger already queued for the Bookstore absorbs this one (run_reconcile)."""
    tasks: set[asyncio.Task[None]] = memo.background
    task = asyncio.create_task(run_reconcile(memo, namespace, name, logger, escalate=False))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


@kopf.on.cleanup()
async def stop_background(memo: kopf.Memo, **_: Any) -> None:
    """Cancel the background reconciles still running when the operator stops."""
    tasks: set[asyncio.Task[None]] = memo.get("background") or set()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _final_backup_wanted(spec: kopf.Spec, **_: Any) -> bool:
    return wants_final_backup(spec)


@kopf.on.delete(*BOOKSTORES, id="final-backup", when=_final_backup_wanted)
async def final_backup(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, runtime: datetime.timedelta, **_: Any
) -> None:
    """spec.backup.finalBackup: take one last backup before the children go, waiting for it a
    bounded time (the finalizer is released then, whatever happened)."""
    settings: OperatorSettings = memo.operator_settings
    elapsed = runtime.total_seconds()
    try:
        step = await take_final_backup(memo.kube, body, settings, elapsed)
    except Exception as exc:
        error = classify(exc)
        if (
            isinstance(error, kopf.TemporaryError)
            and elapsed < settings.final_backup_timeout_seconds
        ):
            raise error from exc
        message = f"No final backup was taken ({error}); the Bookstore's deletion goes on"
        kopf.warn(body, reason="FinalBackupSkipped", message=message)
        return
    if step.reason:
        post = kopf.warn if step.warning else kopf.info
        post(body, reason=step.reason, message=step.message)
    if not step.done:
        logger.info(step.message)
        raise kopf.TemporaryError(step.message, delay=step.retry_after)


def backup_store(body: Mapping[str, Any]) -> str | None:
    """The Bookstore a BookstoreBackup is of: its label, else its spec."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    name = labels.get(BOOKSTORE_LABEL) or (body.get("spec") or {}).get("bookstore")
    return str(name) if name else None


def _register_child_watches() -> None:
    for api_version, plural in CHILDREN:
        group, _, version = api_version.rpartition("/")
        kopf.on.event(group, version, plural, labels=MANAGED, id=f"child-{plural}")(child_changed)


async def child_changed(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """A managed child changed in a way that matters, or vanished: reconcile its Bookstore."""
    owner = controller_owner(body)
    if owner is None:
        return
    changes: ChangeFilter = memo.changes
    if not changes.matters(event.get("type"), body):
        logger.debug("Only fields no reconcile reads changed; not reconciling %s.", owner)
        return
    logger.debug("Changed or gone: reconciling Bookstore %s.", owner)
    await run_reconcile(memo, body.metadata.namespace or "", owner, logger, escalate=False)


def controller_owner(body: Mapping[str, Any]) -> str | None:
    """The name of the Bookstore that controls this object, if any."""
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        ours = ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(f"{API_GROUP}/")
        if ours and ref.get("controller"):
            return str(ref.get("name"))
    return None


async def run_reconcile(
    memo: kopf.Memo, namespace: str, name: str, logger: kopf.Logger, *, escalate: bool
) -> None:
    """Reconcile one Bookstore, one at a time; a trigger already queued absorbs new ones."""
    key = (namespace, name)
    if key in memo.queued and not escalate:
        return
    memo.queued.add(key)
    locks: KeyedLock[tuple[str, str]] = memo.locks
    async with locks.hold(key):
        memo.queued.discard(key)
        client: kube.Kube = memo.kube
        settings: OperatorSettings = memo.operator_settings
        started = time.monotonic()
        try:
            body = await client.get(kube.BOOKSTORE_API_VERSION, KIND, namespace, name)
            if body is None:
                kube.forget_bookstore(namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return  # gone or going (the garbage collector removes the children): no reconcile
            metrics.BOOKSTORES.observe(namespace, name, body.get("status") or {})
            clock: Clock = memo.clock
            await reconcile(client, body, settings, logger, clock())
        except Exception as exc:
            error = classify(_sooner(exc, settings))
            metrics.reconciled(KIND, outcome(error), time.monotonic() - started)
            if escalate:
                raise error from exc
            logger.warning("Reconcile of %s/%s did not finish: %s", namespace, name, error)
        else:
            metrics.reconciled(KIND, "ok", time.monotonic() - started)


def _sooner(exc: Exception, settings: OperatorSettings) -> Exception:
    """Never wait longer than a resync period before retrying a user-fixable problem."""
    if isinstance(exc, UserFixableError):
        exc.delay = min(exc.delay, settings.resync_seconds)
    return exc


_register_child_watches()

"""The command line both services share: `serve` (default) and `migrate`, with --help
that describes each command and the environment variables the service reads."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import uvicorn

from bookstore_common.logs import configure_logging, logging_config
from bookstore_common.metrics import MULTIPROC_ENV
from bookstore_common.problems import is_database_unavailable, is_login_refused
from bookstore_common.schema_state import SchemaAheadError, ServiceSchema
from bookstore_common.settings import ServiceSettings
from bookstore_common.termination import (
    DEFAULT_TERMINATION_MESSAGE_PATH,
    TERMINATION_MESSAGE_ENV,
    write_termination_message,
)

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)

# Finish in-flight requests on SIGTERM, well inside Kubernetes' default 30 s grace period.
GRACEFUL_SHUTDOWN_SECONDS = 20


def _prepare_multiprocess_metrics(name: str) -> Path | None:
    """Give the workers one empty directory to share their metric samples.

    Uses PROMETHEUS_MULTIPROC_DIR when set (emptied first), else a fresh directory under
    the temp dir (/tmp: the only writable place in the pod), which is returned for removal.
    """
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        directory = Path(existing)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return None
    created = tempfile.mkdtemp(prefix=f"{name}-metrics-")
    os.environ[MULTIPROC_ENV] = created
    return Path(created)


class LoginRefusedError(Exception):
    """The database refused the service's credentials."""


def migrate_when_database_is_up(migrate: Callable[[S], None], settings: S) -> None:
    """Run `migrate`, retrying with backoff while the database is unreachable.

    The database may start after the service (e.g. a fresh StatefulSet); waiting up to
    STARTUP_TIMEOUT seconds beats a crash loop. A refused login ends the wait at once (the
    password will not change under a running process), and other errors are raised at once.
    """
    deadline = time.monotonic() + settings.startup_timeout
    delay = 1.0
    while True:
        try:
            migrate(settings)
            return
        except Exception as exc:
            if is_login_refused(exc):
                raise LoginRefusedError(
                    "the database refused the login: check the user in DATABASE_URL and"
                    f" DATABASE_PASSWORD (in Kubernetes: the <name>-db Secret): {exc}"
                ) from exc
            if not is_database_unavailable(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "database not reachable yet; retrying",
                extra={"error": type(exc).__name__, "retry_in_seconds": delay},
            )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


SERVE, MIGRATE = "serve", "migrate"
# `migrate` exit statuses (a migration Job's outcome, with its termination message).
EXIT_MIGRATED, EXIT_FAILED, EXIT_DOWNGRADE_REFUSED = 0, 1, 3
# Lines of a failed migration's traceback kept in its termination message.
FAILURE_LINES = 20
_NAME_WIDTH, _HELP_WIDTH = 27, 79  # a NAME column, then descriptions; 80-column terminals
COMMANDS = {
    SERVE: "unless MIGRATE_ON_START is false, migrate the schema to head (waiting for the "
    "database); then serve the HTTP API on HOST:PORT with WORKERS processes; the default "
    "command",
    MIGRATE: "migrate the schema to head (waiting for the database) and exit: 0 when the "
    "schema is at head, 1 when the migration failed, 3 when the database is at a revision "
    "this version does not know (a downgrade, refused: nothing changed); the outcome is also "
    f"written as one JSON object to {TERMINATION_MESSAGE_ENV} "
    f"[{DEFAULT_TERMINATION_MESSAGE_PATH}] when that file can be written",
}


def _help_entry(name: str, text: str) -> str:
    """One `NAME  description` entry of --help, wrapped under its description column."""
    first = f"  {name:<{_NAME_WIDTH}}  "
    return textwrap.fill(
        text, width=_HELP_WIDTH, initial_indent=first, subsequent_indent=" " * len(first)
    )


def environment_help(settings_class: type[ServiceSettings], command: str | None = None) -> str:
    """The environment variables a command reads, from the settings class (so it never
    drifts): NAME, description and default; `migrate` reads only the fields marked so."""
    entries = []
    for field_name, field in settings_class.model_fields.items():
        extra = field.json_schema_extra
        if command == MIGRATE and not (isinstance(extra, dict) and extra.get(MIGRATE)):
            continue
        default = field.default
        shown = "unset" if default is None else str(default)
        if isinstance(default, bool):
            shown = shown.lower()
        entries.append(_help_entry(field_name.upper(), f"{field.description} [{shown}]"))
    if command != MIGRATE:
        entries.append(
            _help_entry(
                MULTIPROC_ENV,
                "the directory where WORKERS share metric samples [a new one under the temp dir]",
            )
        )
    scope = "" if command is None else f" by {command}"
    return f"environment variables read{scope} [default]:\n" + "\n".join(entries)


def build_parser(name: str, settings_class: type[ServiceSettings]) -> argparse.ArgumentParser:
    """`bookstore-<name> [serve|migrate]`, with each command and its environment in --help."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=f"bookstore-{name}",
        description=f"The bookstore {name} service, configured by environment variables.",
        epilog=environment_help(settings_class),
        formatter_class=formatter,
    )
    commands = parser.add_subparsers(
        dest="command", title="commands", metavar="{serve,migrate}", required=False
    )
    for command, summary in COMMANDS.items():
        commands.add_parser(
            command,
            help=summary,
            description=textwrap.fill(f"bookstore-{name} {command}: {summary}.", _HELP_WIDTH),
            epilog=environment_help(settings_class, command),
            formatter_class=formatter,
        )
    parser.set_defaults(command=SERVE)
    return parser


def run_cli(
    name: str,
    *,
    settings_factory: type[S],
    app_factory: str,
    migrate: Callable[[S], None],
    schema: ServiceSchema | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse argv and run `serve` (migrate unless MIGRATE_ON_START is false, then uvicorn)
    or `migrate` (then exit with EXIT_MIGRATED, EXIT_FAILED or EXIT_DOWNGRADE_REFUSED).

    `app_factory` is an import string ("pkg.app:create_app_from_env") that each uvicorn
    worker calls to build its app; `migrate(settings)` must be idempotent and safe to run
    from many processes at once (see `bookstore_common.migrations.run_migrations`);
    `schema` names the service's migrations, for the outcome `migrate` reports (None: an
    app without a database, e.g. the bench's ceiling).
    """
    args = build_parser(name, settings_factory).parse_args(argv)
    settings = settings_factory()
    configure_logging(settings.log_level)
    if args.command == MIGRATE:
        return run_migrate(name, migrate, settings, schema, report=write_termination_message)
    if settings.migrate_on_start:
        status = run_migrate(name, migrate, settings, schema, report=lambda _: None)
        # A newer version's schema is servable (expand-then-contract): serve on it unchanged.
        if status not in (EXIT_MIGRATED, EXIT_DOWNGRADE_REFUSED):
            return status
    else:
        log.info(
            "not migrating at start (MIGRATE_ON_START=false): /health/ready waits for the schema",
            extra={"service": name, "head": schema.head if schema else None},
        )
    serve(name, app_factory, settings)
    return 0


def run_migrate(
    name: str,
    migrate: Callable[[S], None],
    settings: S,
    schema: ServiceSchema | None,
    *,
    report: Callable[[dict[str, object]], None],
) -> int:
    """Migrate (waiting for the database), log the outcome and `report` it (the termination
    message of `migrate`); returns the exit status."""
    head = schema.head if schema else None
    service: dict[str, object] = {"service": name}
    try:
        migrate_when_database_is_up(migrate, settings)
    except SchemaAheadError as exc:
        log.error(  # one line, no traceback: the reason is the message
            "migration refused: %s",
            exc,
            extra={"service": name, "revision": exc.revision, "head": exc.head},
        )
        outcome = {"outcome": "downgrade-refused", "revision": exc.revision, "head": exc.head}
        report(service | outcome | {"message": str(exc)})
        return EXIT_DOWNGRADE_REFUSED
    except LoginRefusedError as exc:
        log.error("migration failed: %s", exc, extra={"service": name})  # the reason, no traceback
        report(service | failure(exc, schema, settings, full=False))
        return EXIT_FAILED
    except Exception as exc:
        log.exception("migration failed", extra={"service": name})
        report(service | failure(exc, schema, settings, full=True))
        return EXIT_FAILED
    log.info("schema is up to date", extra={"service": name, "revision": head})
    report(service | {"outcome": "migrated", "revision": head, "head": head})
    return EXIT_MIGRATED


def failure(
    exc: BaseException, schema: ServiceSchema | None, settings: ServiceSettings, *, full: bool
) -> dict[str, object]:
    """A failed migration's report: the database's revision (None when it cannot be read)
    and the error, with the last lines of its traceback when `full`."""
    revisions: tuple[str, ...] = ()
    try:
        if schema is not None:
            revisions = schema.read_revisions_sync(settings)
    except Exception:  # the database may be the reason the migration failed
        log.debug("could not read the schema revision", exc_info=True)
    lines = "".join(traceback.format_exception(exc) if full else [str(exc)]).splitlines()
    return {
        "outcome": "failed",
        "revision": revisions[0] if revisions else None,
        "head": schema.head if schema else None,
        "message": "\n".join(lines[-FAILURE_LINES:]),
    }


def serve(name: str, app_factory: str, settings: ServiceSettings) -> None:
    """Serve the app with uvicorn until SIGTERM (graceful shutdown)."""
    metrics_dir = _prepare_multiprocess_metrics(name) if settings.workers > 1 else None
    log.info(
        "serving",
        extra={"service": name, "port": settings.port, "workers": settings.workers},
    )
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        log_config=logging_config(settings.log_level),
        log_level=settings.log_level,
    )
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)

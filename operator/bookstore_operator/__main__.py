"""`bookstore-operator`: run the operator (kubeconfig or in-cluster credentials, via kopf)."""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Sequence
from typing import Any

import kopf

# Importing these registers the kopf handlers (of Bookstores, and of BookstoreBackups).
import bookstore_operator.backup_handlers
import bookstore_operator.handlers  # noqa: F401
from bookstore_operator import __version__, metrics, preflight
from bookstore_operator.settings import OperatorSettings

LOG_FORMATS = {
    "json": kopf.LogFormat.JSON,
    "plain": kopf.LogFormat.PLAIN,
    "full": kopf.LogFormat.FULL,
}
# Exit status when credentials or the --peering object are missing (argparse uses 2 too).
EXIT_PREFLIGHT = 2
logger = logging.getLogger("bookstore_operator")
# Exclusive upper bound of the random peering priority (see run_arguments).
PRIORITY_RANGE = 2**31


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; BOOKSTORE_* environment variables configure the rest (settings.py)."""
    parser = argparse.ArgumentParser(
        prog="bookstore-operator",
        description="Run the Bookstore operator. Credentials: in-cluster service account, "
        "else the current kubeconfig context.",
        epilog="Environment: "
        + "; ".join(
            f"BOOKSTORE_{name.upper()}: {(field.description or '').rstrip('.')}"
            for name, field in OperatorSettings.model_fields.items()
        ),
    )
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="Serve only this namespace (repeatable). Default: all namespaces.",
    )
    parser.add_argument(
        "--liveness-port",
        type=int,
        default=8080,
        help="Port of the /healthz liveness endpoint (0 disables it). Default: 8080.",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=8081,
        help="Port of the Prometheus /metrics endpoint, served by every replica, standbys too"
        " (0 disables it). Default: 8081.",
    )
    parser.add_argument(
        "--peering",
        metavar="NAME",
        help="ClusterKopfPeering (KopfPeering per namespace with -n) that keeps replicas from "
        f"both acting. Given, it must exist. Default: {preflight.DEFAULT_PEERING}, and when "
        "that does not exist, run standalone with a warning.",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="Do not coordinate with other replicas (development only).",
    )
    parser.add_argument(
        "--log-format",
        choices=sorted(LOG_FORMATS),
        default="json",
        help="Log line format. Default: json (one JSON object per line).",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="Debug logging.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def run_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `kopf.run` for this command line (one process, one call)."""
    liveness = f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None
    return {
        "clusterwide": not args.namespace,
        "namespaces": args.namespace,
        "standalone": args.standalone,
        "peering_name": None if args.standalone else args.peering or preflight.DEFAULT_PEERING,
        # kopf pauses every peer when two share a priority, so replicas with kopf's default
        # (0 for all) would all stand still. A random one per process lets the highest act
        # while the others wait as hot standbys (a clash is ~1 in 2**31).
        "priority": random.randrange(1, PRIORITY_RANGE),
        "liveness_endpoint": liveness,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `bookstore-operator` console script."""
    args = parse_args(argv)
    kopf.configure(verbose=args.verbose, log_format=LOG_FORMATS[args.log_format])
    try:
        standalone_because = preflight_checks(args)
    except preflight.PreflightError as exc:
        logger.error("Not starting: %s", exc)  # one line, in the chosen --log-format
        raise SystemExit(EXIT_PREFLIGHT) from None
    if standalone_because:
        logger.warning(standalone_because)
        args.standalone = True
    serve_metrics(args.metrics_port)
    kopf.run(**run_arguments(args))


def serve_metrics(port: int) -> None:
    """Serve /metrics from a thread of its own, once per process and before kopf runs: a
    scrape never waits on the event loop, and a replica on standby (peering) serves too."""
    if not port:
        return
    try:
        metrics.serve(port)
    except OSError as exc:
        logger.error("Not starting: cannot serve /metrics on port %d: %s", port, exc)
        raise SystemExit(EXIT_PREFLIGHT) from None


def preflight_checks(args: argparse.Namespace) -> str | None:
    """Refuse to start without credentials or a --peering object; a warning to run alone."""
    client = preflight.connect()
    try:
        if args.standalone:
            return None
        peering = preflight.Peering(
            name=args.peering or preflight.DEFAULT_PEERING,
            namespaces=args.namespace,
            explicit=args.peering is not None,
        )
        return preflight.check_peering(client, peering)
    finally:
        client.close()


if __name__ == "__main__":
    main()

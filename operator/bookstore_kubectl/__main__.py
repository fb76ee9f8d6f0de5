"""Entry point of the `kubectl-bookstore` console script (`kubectl bookstore ...`).

Exit status: 0 the Bookstore is healthy (`why`) or the summary was printed (`status`); 1 `why`
found a problem; 2 a usage error, a Bookstore that does not exist, or an API server that cannot
be read (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from typing import NoReturn

from kubernetes.client.exceptions import ApiException

from bookstore_kubectl.cluster import Cluster, PluginError
from bookstore_kubectl.diagnosis import Report, diagnose
from bookstore_kubectl.summary import render_status

HEALTHY, PROBLEM, ERROR = 0, 1, 2
ARROW = " → "


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("name", help="the Bookstore's name")
    common.add_argument(
        "-n", "--namespace", help="the Bookstore's namespace (default: the context's namespace)"
    )
    common.add_argument("--context", help="the kubeconfig context to use (default: the current)")
    common.add_argument("--kubeconfig", help="the kubeconfig file (default: $KUBECONFIG)")
    main_parser = argparse.ArgumentParser(
        prog="kubectl bookstore",
        description="Summarize a Bookstore, or explain why it is not ready.",
        epilog="Exit status: 0 healthy (why) or printed (status), 1 why found a problem,"
        " 2 usage error, not found or API error.",
    )
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "status",
        parents=[common],
        help="phase, conditions, versions, replicas, endpoints, backups and the last events",
    )
    commands.add_parser(
        "why",
        parents=[common],
        help="walk from the Ready condition to the child at fault and print the likely fix",
    )
    return main_parser


def render_report(report: Report) -> str:
    """`why`'s output: the headline, then each chain and its fix."""
    if report.healthy:
        return f"{report.headline}\nHealthy: nothing to fix.\n"
    lines = [report.headline]
    for finding in report.findings:
        lines.append(f"  {ARROW.join(finding.steps)}")
        lines.append(f"    fix: {finding.fix}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run one command; exits with the documented status."""
    args = parser().parse_args(argv)
    try:
        cluster = Cluster.from_kubeconfig(args.kubeconfig, args.context, args.namespace)
        try:
            snap = cluster.snapshot(args.name)
        finally:
            cluster.close()
    except PluginError as exc:
        _fail(str(exc))
    except ApiException as exc:  # an answer the reads above did not expect
        _fail(f"the API server answered {exc.status}: {exc.reason}")
    except Exception as exc:  # a bug or an object we did not expect: still one line
        _fail(f"unexpected {type(exc).__name__}: {exc} (please report this)")
    if args.command == "status":
        sys.stdout.write(render_status(snap, datetime.datetime.now(datetime.UTC)))
        sys.exit(HEALTHY)
    report = diagnose(snap)
    sys.stdout.write(render_report(report))
    sys.exit(HEALTHY if report.healthy else PROBLEM)


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"kubectl-bookstore: {message}\n")
    sys.exit(ERROR)


if __name__ == "__main__":
    main()

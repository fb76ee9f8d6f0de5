"""`make e2e`: say in the first line where the suite runs and with which image, then run it.

- No reachable cluster: that reason is the first line, and the exit status is 2 (the user asked
  for e2e, so "everything skipped" would be a lie).
- The current context is a kind cluster: build the image, tagged by content, and load it there.
- Any other cluster: take IMAGE=, pushed already (`make image-push IMAGE=...`) where the nodes
  can pull it; without IMAGE=, stop and say so.
Then `pytest tests/e2e` runs with that image, and fails (not skips) if the cluster goes away.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kubernetes import client, config  # noqa: E402

from tests.e2e.cluster import unreachable_reason  # noqa: E402

KIND_PREFIX = "kind-"
EXIT_CANNOT_RUN = 2


@dataclass(frozen=True)
class Plan:
    """Where the suite runs, with which image, and whether to build and kind-load it first."""

    image: str
    kind_cluster: str | None
    line: str


def current_context() -> str:
    """The kubeconfig's current context, or `in-cluster` when there is no kubeconfig."""
    try:
        _, active = config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        return "in-cluster"
    return str(active["name"])


def kind_cluster_of(context: str) -> str | None:
    """The kind cluster behind a `kind-<name>` context, if `kind` lists it."""
    if not context.startswith(KIND_PREFIX) or shutil.which("kind") is None:
        return None
    name = context.removeprefix(KIND_PREFIX)
    listed = subprocess.run(
        ["kind", "get", "clusters"],  # noqa: S607 - kind is found on PATH, as the user runs it
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return name if name in listed.stdout.split() else None


def content_image(image: str | None) -> str:
    """IMAGE, or bookstore:<content tag>, completed with the content tag when it has no tag."""
    env = {**os.environ, "IMAGE": image or "bookstore"}
    script = str(ROOT / "hack" / "image.sh")
    ref = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [script, "ref"], env=env, capture_output=True, text=True, check=True
    )
    return ref.stdout.strip()


def plan(image: str | None) -> Plan | str:
    """What `make e2e` will do here, or why it cannot run (the line to print either way)."""
    reason = unreachable_reason()
    if reason is not None:
        return f"e2e: cannot run: no reachable Kubernetes cluster: {reason}"
    context = current_context()
    host = client.Configuration.get_default_copy().host
    kind = kind_cluster_of(context)
    if kind is not None:
        built = content_image(image)
        line = f"e2e: kind cluster '{kind}' (context {context}): building {built} and loading it"
        return Plan(built, kind, line)
    if image:
        line = (
            f"e2e: cluster {host} (context {context}), not kind: installing IMAGE={image}, "
            "which its nodes must be able to pull (make image-push IMAGE=...)"
        )
        return Plan(image, None, line)
    return (
        f"e2e: cannot run: context {context} ({host}) is not a kind cluster, so a local build "
        "cannot reach its nodes: push one with `make image-push IMAGE=registry/repo:tag`, "
        "then run `make e2e IMAGE=registry/repo:tag`"
    )


def main(argv: list[str] | None = None) -> int:
    """Print the plan (first line), build and load the image if kind, then run the suite."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", action="store_true", help="print the first line and stop")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args(argv)
    decided = plan(os.environ.get("IMAGE") or None)
    if isinstance(decided, str):
        sys.stderr.write(decided + "\n")
        return EXIT_CANNOT_RUN
    sys.stdout.write(decided.line + "\n")
    sys.stdout.flush()
    if args.plan:
        return 0
    if decided.kind_cluster is not None:
        env = {**os.environ, "IMAGE": decided.image, "KIND_CLUSTER": decided.kind_cluster}
        script = str(ROOT / "hack" / "image.sh")
        subprocess.run([script, "kind"], env=env, check=True)  # noqa: S603 - fixed argv
    env = {**os.environ, "BOOKSTORE_E2E_IMAGE": decided.image, "BOOKSTORE_E2E_REQUIRED": "1"}
    pytest = [sys.executable, "-m", "pytest", "tests/e2e", "-v", *args.pytest_args]
    return subprocess.run(pytest, cwd=ROOT, env=env, check=False).returncode  # noqa: S603


if __name__ == "__main__":
    sys.exit(main())

"""What the previous release (0.1.0) left in a cluster: its CRD, examples, stores and children.

The files under fixtures/release-0.1.0/ were rendered by that release's own code (see the
README.md there); `created` writes them into an ownership map the way an API server does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from bookstore_operator.apply import FIELD_MANAGER

from tests.operator import ssa

RELEASE = "0.1.0"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / f"release-{RELEASE}"
STORES = sorted(path.stem for path in (FIXTURES / "stores").glob("*.yaml"))


def crd() -> dict[str, Any]:
    """The release's Bookstore CRD."""
    found: dict[str, Any] = yaml.safe_load((FIXTURES / "crd.yaml").read_text())
    return found


def example_bookstores() -> list[dict[str, Any]]:
    """Every Bookstore of the release's examples/, as a user applied it."""
    return [
        doc
        for path in sorted((FIXTURES / "examples").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "Bookstore"
    ]


def store(name: str) -> dict[str, Any]:
    """One store: `bookstore` (stored object with the release's status), `inputs`,
    `created` (generated Secrets) and `applied` (bodies the release server-side applied)."""
    found: dict[str, Any] = yaml.safe_load((FIXTURES / "stores" / f"{name}.yaml").read_text())
    return found


def applied_object(body: dict[str, Any]) -> dict[str, Any]:
    """A child as the API server holds it after the release's operator created it by
    server-side apply: the body merged, `metadata.managedFields` naming its field manager."""
    owners: ssa.Owners = {}
    live = ssa.apply(None, body, owners, FIELD_MANAGER, force=True)
    live["metadata"]["managedFields"] = ssa.to_managed_fields(owners, body["apiVersion"])
    live["metadata"].setdefault("generation", 1)
    live["metadata"].setdefault("resourceVersion", "1")
    return live


def workloads(name: str) -> list[dict[str, Any]]:
    """The store's Deployments and StatefulSets, as applied bodies."""
    return [b for b in store(name)["applied"] if b["kind"] in ("Deployment", "StatefulSet")]

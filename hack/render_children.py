"""Write, as multi-document YAML, every manifest the operator builds for the Bookstores of
examples/ (children, generated Secrets, and the backup, restore and cleanup Jobs and the
backups volume of one BookstoreBackup), so a security scanner can check them.

Usage: python hack/render_children.py OUTPUT_DIR [EXAMPLE.yaml ...]
(default: every examples/*.yaml; one OUTPUT_DIR/<example>.yaml per example file).
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from bookstore_operator.builders import (
    build_api_key_secret,
    build_children,
    build_database_secret,
)
from bookstore_operator.builders.backups import (
    build_backup_claim,
    build_backup_job,
    build_cleanup_job,
    build_restore_job,
)
from bookstore_operator.models import API_GROUP, KIND, Bookstore
from bookstore_operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[1]
# The namespace is the user's choice, not the builders'; an example that names none is
# rendered into this one (the operator never writes into "default" on its own).
FALLBACK_NAMESPACE = "bookstore-examples"

log = logging.getLogger("render_children")


def bookstores(path: Path) -> Iterator[dict[str, Any]]:
    """The Bookstore objects of one example file (other kinds, e.g. Secrets, are skipped)."""
    for document in yaml.safe_load_all(path.read_text()):
        if (
            isinstance(document, dict)
            and document.get("kind") == KIND
            and str(document.get("apiVersion", "")).startswith(f"{API_GROUP}/")
        ):
            yield document


def manifests_for(body: dict[str, Any], settings: OperatorSettings) -> list[dict[str, Any]]:
    """Every manifest the operator would create for one Bookstore, as the API server sees it."""
    metadata = dict(body.get("metadata") or {})
    metadata.setdefault("namespace", FALLBACK_NAMESPACE)
    metadata.setdefault("uid", str(uuid.uuid5(uuid.NAMESPACE_URL, metadata["name"])))
    store = Bookstore.parse({**body, "metadata": metadata}, settings)
    backup = f"{store.name}-example"
    backup_uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{store.namespace}/{backup}"))
    volume = store.spec.backup.volume
    built = [
        build_database_secret(store),
        build_api_key_secret(store),
        *build_children(store).values(),
        build_backup_claim(store, volume.size, volume.storage_class_name),
        build_backup_job(store, backup, backup_uid),
        build_restore_job(store, backup, store.name),
        build_cleanup_job(store, backup, backup_uid),
    ]
    return [manifest for manifest in built if manifest is not None]


def render(example: Path, output_dir: Path, settings: OperatorSettings) -> Path:
    """Render one example file's children into OUTPUT_DIR/<example name>.yaml."""
    manifests = [m for body in bookstores(example) for m in manifests_for(body, settings)]
    if not manifests:
        raise SystemExit(f"{example}: no {KIND} object in it")
    target = output_dir / example.name
    target.write_text(yaml.safe_dump_all(manifests, sort_keys=False))
    log.info("%s: %d manifests -> %s", example.name, len(manifests), target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Render every given (or every) example."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("examples", type=Path, nargs="*")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="render_children: %(message)s")
    examples = args.examples or sorted((ROOT / "examples").glob("*.yaml"))
    if not examples:
        log.error("no example to render in %s", ROOT / "examples")
        return 1
    args.output_dir.mkdir(parents=True, exist_ok=True)
    settings = OperatorSettings()
    for example in examples:
        render(example, args.output_dir, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pod templates across releases: a workload the previous release wrote keeps its template
until the spec or the version changes, so upgrading the operator restarts no pod."""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from bookstore_operator import kube, templates
from bookstore_operator.apply import FIELD_MANAGER, contains, needs_apply
from bookstore_operator.builders import ChildKey, build_children
from bookstore_operator.models import Bookstore, ExternalDatabaseFacts
from bookstore_operator.settings import OperatorSettings
from bookstore_operator.templates import RELEASE_ANNOTATION, TEMPLATE_RELEASE

from tests.operator import previous_release, ssa
from tests.operator.unit.stores import SPECS, store_for

# The previous release's stores follow its default version, 0.1.0, unless they pin one.
SETTINGS = OperatorSettings(default_version=previous_release.RELEASE)
RECORD = Path(__file__).resolve().parents[1] / "fixtures" / "template-release.json"


def this_release(name: str, settings: OperatorSettings = SETTINGS) -> Bookstore:
    """A previous release's store as this release parses it (external facts included)."""
    fixture = previous_release.store(name)
    store = Bookstore.parse(fixture["bookstore"], settings)
    external = store.spec.database.external
    if external is None or not store.spec.database.is_external:
        return store
    [secret] = [s for s in fixture["inputs"] if s["metadata"]["name"] == external.secret_name]
    known = {
        k: v for k, v in secret["stringData"].items() if k in ExternalDatabaseFacts.model_fields
    }
    return store.model_copy(update={"external_database": ExternalDatabaseFacts(**known)})


def wanted(store: Bookstore) -> dict[ChildKey, dict[str, Any] | None]:
    return build_children(store)


def workload_cases() -> list[tuple[str, str]]:
    return [
        (name, body["metadata"]["name"])
        for name in previous_release.STORES
        for body in previous_release.workloads(name)
    ]


def live_workload(store_name: str, name: str) -> dict[str, Any]:
    [body] = [b for b in previous_release.workloads(store_name) if b["metadata"]["name"] == name]
    return previous_release.applied_object(body)


def key_of(manifest: dict[str, Any]) -> ChildKey:
    return ChildKey(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])


def manifest_for(store: Bookstore, name: str) -> dict[str, Any]:
    [manifest] = [
        m
        for k, m in wanted(store).items()
        if m is not None and k.name == name and k.kind in templates.WORKLOAD_KINDS
    ]
    return manifest


def server_apply(live: dict[str, Any], body: dict[str, Any], manager: str) -> dict[str, Any]:
    """The object after a forced server-side apply by `manager`, managedFields updated."""
    owners = ssa.from_managed_fields(live["metadata"]["managedFields"])
    after = ssa.apply(live, body, owners, manager, force=True)
    after["metadata"]["managedFields"] = ssa.to_managed_fields(owners, body["apiVersion"])
    return after


def edited(live: dict[str, Any], change: Any, manager: str) -> dict[str, Any]:
    """The object after another manager's Update (kubectl edit, a controller)."""
    new = copy.deepcopy(live)
    change(new)
    owners = ssa.from_managed_fields(live["metadata"]["managedFields"])
    ssa.update(live, new, owners, manager)
    new["metadata"]["managedFields"] = ssa.to_managed_fields(owners, new["apiVersion"])
    return new


def reconcile_once(
    store: Bookstore, live: dict[str, Any], *, spec_applied: bool = True
) -> dict[str, Any]:
    """The body kube.apply_children would apply to one live workload."""
    manifest = manifest_for(store, live["metadata"]["name"])
    template = templates.held_template(manifest, live)
    if template is not None and spec_applied:
        manifest = templates.holding(manifest, template, live)
    else:
        manifest = templates.marked(manifest)
    return kube.desired_body(key_of(manifest), manifest, live, kube.autoscaled(wanted(store)))


@pytest.mark.parametrize(("store_name", "name"), workload_cases())
def test_previous_release_workload_keeps_exactly_the_template_it_applied(
    store_name: str, name: str
) -> None:
    live = live_workload(store_name, name)
    store = this_release(store_name)
    before = copy.deepcopy(live["spec"]["template"])

    body = reconcile_once(store, live)

    assert body["spec"]["template"] == before
    assert RELEASE_ANNOTATION not in body["metadata"]["annotations"]
    after = server_apply(live, body, FIELD_MANAGER) if needs_apply(live, body) else live
    assert after["spec"]["template"] == before  # no pod restarts
    # Deferred, the next reconcile writes nothing: the hash annotation does not loop.
    assert not needs_apply(after, reconcile_once(store, after))


@pytest.mark.parametrize(("store_name", "name"), workload_cases())
def test_a_spec_change_brings_the_new_template_and_the_marker(store_name: str, name: str) -> None:
    live = live_workload(store_name, name)
    store = this_release(store_name)

    body = reconcile_once(store, live, spec_applied=False)
    after = server_apply(live, body, FIELD_MANAGER)

    new = manifest_for(store, name)["spec"]["template"]
    assert contains(after["spec"]["template"], new, ("spec", "template"))
    assert after["spec"]["template"] != live["spec"]["template"] or body["kind"] == "StatefulSet"
    assert after["metadata"]["annotations"][RELEASE_ANNOTATION] == str(TEMPLATE_RELEASE)
    # From then on it is this release's workload: the normal path, and no further write.
    assert templates.held_template(manifest_for(store, name), after) is None
    assert not needs_apply(after, reconcile_once(store, after))


@pytest.mark.parametrize("store_name", previous_release.STORES)
def test_a_new_version_brings_the_new_template_even_with_the_spec_applied(
    store_name: str,
) -> None:
    store = this_release(store_name, OperatorSettings(default_version="0.2.0"))
    for body in previous_release.workloads(store_name):
        live = previous_release.applied_object(body)
        manifest = manifest_for(store, body["metadata"]["name"])
        same_images = body["kind"] == "StatefulSet" or store.spec.version
        assert (templates.held_template(manifest, live) is not None) == bool(same_images)


def test_this_release_changed_the_service_templates() -> None:
    """Why TEMPLATE_RELEASE is 2: release 0.1.0's Deployments had other pod templates."""
    store = this_release("downtown")
    for body in previous_release.workloads("downtown"):
        new = manifest_for(store, body["metadata"]["name"])["spec"]["template"]
        assert (new != body["spec"]["template"]) == (body["kind"] == "Deployment")


@pytest.mark.parametrize(
    ("marker", "held"),
    [(None, True), ("1", True), (str(TEMPLATE_RELEASE), False), ("adopt", False), ("99", False)],
)
def test_only_an_older_release_marker_keeps_the_template(marker: str | None, held: bool) -> None:
    live = live_workload("pinned", "pinned-catalog")
    if marker is not None:
        live["metadata"]["annotations"][RELEASE_ANNOTATION] = marker
    manifest = manifest_for(this_release("pinned"), "pinned-catalog")

    template = templates.held_template(manifest, live)

    assert (template is not None) is held
    if template is not None:  # the old marker stays until the new template goes in
        annotations = templates.holding(manifest, template, live)["metadata"]["annotations"]
        assert annotations.get(RELEASE_ANNOTATION) == marker


def test_every_other_field_still_converges_while_the_template_is_held() -> None:
    live = live_workload("pinned", "pinned-orders")
    manifest = manifest_for(this_release("pinned"), "pinned-orders")
    manifest["metadata"]["labels"]["team"] = "books"
    manifest["spec"]["replicas"] = 4

    held = templates.holding(manifest, templates.held_template(manifest, live) or {}, live)

    assert held["metadata"]["labels"]["team"] == "books"
    assert held["spec"]["replicas"] == 4
    assert held["spec"]["template"] == live["spec"]["template"]


def test_a_hand_edit_of_a_template_field_is_repaired_with_the_new_template() -> None:
    live = live_workload("pinned", "pinned-catalog")

    def raise_limit(obj: dict[str, Any]) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "3"

    hacked = edited(live, raise_limit, "kubectl-edit")
    manifest = manifest_for(this_release("pinned"), "pinned-catalog")

    assert templates.held_template(manifest, hacked) is None


def test_a_sidecar_a_restart_and_server_defaults_neither_end_the_hold_nor_become_ours() -> None:
    live = live_workload("pinned", "pinned-catalog")
    applied = copy.deepcopy(live["spec"]["template"])

    def inject(obj: dict[str, Any]) -> None:
        pod = obj["spec"]["template"]
        pod["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "now"}
        pod["spec"]["containers"].append({"name": "proxy", "image": "proxy:1"})

    live = edited(live, inject, "kubectl-rollout")
    # Server defaults are nobody's fields.
    live["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/x"
    manifest = manifest_for(this_release("pinned"), "pinned-catalog")

    assert templates.held_template(manifest, live) == applied


@pytest.mark.parametrize(
    ("generation", "status", "applied"),
    [
        (3, {"observedGeneration": 3, "phase": "Ready"}, True),
        (3, {"observedGeneration": 3, "phase": "Progressing"}, True),
        (4, {"observedGeneration": 3, "phase": "Ready"}, False),  # changed since
        (3, {"observedGeneration": 3, "phase": "Failed"}, False),  # inputs missing
        (3, {"observedGeneration": 3, "phase": "Degraded"}, False),  # maybe refused
        (3, {"observedGeneration": 3, "phase": "Pending"}, False),
        (3, {}, False),
    ],
)
def test_spec_counts_as_applied_only_when_status_says_so_for_this_generation(
    generation: int, status: dict[str, Any], applied: bool
) -> None:
    body = {"metadata": {"generation": generation}, "status": status}
    assert templates.spec_applied(body, 3) is applied
    assert templates.spec_applied(body, 2) is False  # the reconcile read an older generation
    assert templates.spec_applied(None, 3) is False


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "Service"])
def test_workloads_of_this_release_carry_its_marker(kind: str) -> None:
    manifest = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}}
    annotations = templates.marked(manifest)["metadata"].get("annotations") or {}
    expected = {RELEASE_ANNOTATION: str(TEMPLATE_RELEASE)} if kind != "Service" else {}
    assert annotations == expected
    assert "annotations" not in manifest["metadata"]  # the builder's manifest is not changed


async def test_the_bookstore_is_read_only_when_a_workload_could_keep_its_template() -> None:
    asked: list[bool] = []

    async def spec_applied() -> bool:
        asked.append(True)
        return True

    store = this_release("pinned")
    manifest = manifest_for(store, "pinned-catalog")
    created = await kube.release_manifest(manifest, None, spec_applied)
    ours = previous_release.applied_object(kube.desired_body(key_of(created), created, None, ()))
    again = await kube.release_manifest(manifest, ours, spec_applied)
    assert asked == []
    assert again["metadata"]["annotations"][RELEASE_ANNOTATION] == str(TEMPLATE_RELEASE)

    old = live_workload("pinned", "pinned-catalog")
    held = await kube.release_manifest(manifest, old, spec_applied)
    assert asked == [True]
    assert held["spec"]["template"] == old["spec"]["template"]


def template_digests() -> dict[str, str]:
    """A digest of every workload pod template the builders make for the spec matrix."""
    digests = {}
    for spec_name in SPECS:
        for key, manifest in build_children(store_for(spec_name)).items():
            if manifest is not None and key.kind in templates.WORKLOAD_KINDS:
                text = json.dumps(manifest["spec"]["template"], sort_keys=True)
                digests[f"{spec_name}/{key.kind}/{key.name}"] = hashlib.sha256(
                    text.encode()
                ).hexdigest()[:16]
    return digests


def test_pod_templates_change_only_with_a_new_template_release() -> None:
    recorded = json.loads(RECORD.read_text())
    assert (recorded["release"], recorded["templates"]) == (TEMPLATE_RELEASE, template_digests()), (
        "The builders' pod templates changed: bump templates.TEMPLATE_RELEASE (workloads of"
        " earlier releases then keep theirs until their spec or version changes), then record"
        " them again: .venv/bin/python -m tests.operator.unit.test_template_release"
    )


if __name__ == "__main__":  # record the pod templates of this TEMPLATE_RELEASE
    RECORD.write_text(
        json.dumps({"release": TEMPLATE_RELEASE, "templates": template_digests()}, indent=1) + "\n"
    )
    sys.exit(0)


def test_on_a_real_api_server_object_the_held_template_is_exactly_what_we_applied() -> None:
    """A v1.36 server's object (tests/operator/unit/fixtures/live): FieldsV1 with `.` items,
    server defaults, and an injected sidecar, env var and volume that are not ours."""
    live = json.loads((Path(__file__).parent / "fixtures" / "live" / "deployment.json").read_text())
    manifest = build_children(store_for("defaults"))[
        ChildKey("apps/v1", "Deployment", "downtown-catalog")
    ]
    assert manifest is not None

    assert templates.held_template(manifest, live) == manifest["spec"]["template"]

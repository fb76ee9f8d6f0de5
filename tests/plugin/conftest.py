"""Harness: recorded API objects served over real HTTP by the emulated API server, a kubeconfig
pointing at it, and the plugin's main() run against it."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import pathlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from bookstore_kubectl.__main__ import main
from kmock._internal import rendering

from tests.operator.runtime.emulator import Emulator, merge_patch

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
NAMESPACE = "shop"
# kind -> resource of the emulator (group/version/plural)
RESOURCES = {
    "Bookstore": "bookstore.dev/v1alpha1/bookstores",
    "BookstoreBackup": "bookstore.dev/v1alpha1/bookstorebackups",
    "Deployment": "apps/v1/deployments",
    "StatefulSet": "apps/v1/statefulsets",
    "HorizontalPodAutoscaler": "autoscaling/v2/horizontalpodautoscalers",
    "Service": "v1/services",
    "Ingress": "networking.k8s.io/v1/ingresses",
    "Job": "batch/v1/jobs",
    "Pod": "v1/pods",
    "PersistentVolumeClaim": "v1/persistentvolumeclaims",
    "Event": "v1/events",
}


def recorded(scenario: str) -> list[dict[str, Any]]:
    """The healthy objects, with a scenario's changes merged in (RFC 7386: lists are replaced,
    null removes) and its `remove` list taken out."""
    objects = {
        (o["kind"], o["metadata"]["name"]): o
        for o in yaml.safe_load_all((FIXTURES / "healthy.yaml").read_text())
    }
    if scenario != "healthy":
        change: Mapping[str, Any] = yaml.safe_load((FIXTURES / f"{scenario}.yaml").read_text())
        for gone in change.get("remove") or []:
            kind, _, name = gone.partition("/")
            assert objects.pop((kind, name), None) is not None, f"{gone} is not in healthy.yaml"
        for obj in change.get("objects") or []:
            key = (obj["kind"], obj["metadata"]["name"])
            objects[key] = merge_patch(objects[key], obj) if key in objects else obj
    return [copy.deepcopy(o) for o in objects.values()]


def load(emulator: Emulator, objects: list[dict[str, Any]]) -> None:
    """Put objects into the API server exactly as recorded (uid, timestamps, status)."""
    for index, obj in enumerate(objects, start=1):
        obj["metadata"].setdefault("namespace", NAMESPACE)
        obj["metadata"].setdefault("resourceVersion", str(1000 + index))
        key = (
            kmock.resource(RESOURCES[obj["kind"]]),
            obj["metadata"]["namespace"],
            obj["metadata"]["name"],
        )
        emulator.objects[key] = obj


def write_kubeconfig(
    path: pathlib.Path, server: str, namespace: str | None = NAMESPACE
) -> pathlib.Path:
    """A kubeconfig with one current context `test` (in `namespace`) and a spare `elsewhere`."""
    context: dict[str, Any] = {"cluster": "emulator", "user": "tester"}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
        "contexts": [
            {"name": "test", "context": context},
            {
                "name": "elsewhere",
                "context": {"cluster": "emulator", "user": "tester", "namespace": "other"},
            },
        ],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    return path


class Served:
    """The API server holding a scenario, and a way to run the plugin against it."""

    def __init__(self, emulator: Emulator, kubeconfig: pathlib.Path) -> None:
        self.emulator = emulator
        self.kubeconfig = kubeconfig

    async def run(self, *argv: str) -> tuple[int, str, str]:
        """main(argv) in a worker thread (it blocks on HTTP); its exit status, stdout, stderr."""
        return await asyncio.to_thread(run_main, [*argv, "--kubeconfig", str(self.kubeconfig)])


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        else:
            code = 0
    return code, out.getvalue(), err.getvalue()


@attrs.define(kw_only=True)
class RefusingEmulator(Emulator):
    """An API server where the user may not read some resources (RBAC answers 403)."""

    refused: frozenset[str] = frozenset()

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        plural = request.resource.plural if request.resource is not None else None
        if plural in self.refused:
            raise kmock.KubernetesError(
                status=403,
                reason="Forbidden",
                message=f'{plural} is forbidden: User "tester" cannot list resource "{plural}"'
                f' in API group "" in the namespace "{NAMESPACE}"',
            )
        return await super()._handle(request)


@contextlib.asynccontextmanager
async def serving(
    scenario: str, tmp_path: pathlib.Path, *, refused: frozenset[str] = frozenset()
) -> AsyncIterator[Served]:
    """The scenario's objects served on 127.0.0.1, and a kubeconfig (context `test`) for it."""
    emulator = RefusingEmulator(refused=refused)
    load(emulator, recorded(scenario))
    async with emulator, kmock.Server(emulator):
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(emulator.url).rstrip("/"))
        yield Served(emulator, kubeconfig)
        crashes = [e for e in emulator.errors if not isinstance(e, kmock.KubernetesError)]
        assert not crashes, f"the emulator failed to serve: {crashes}"

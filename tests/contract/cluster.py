"""A namespace on one host: the operator's manifests for a Bookstore, their volumes, a DNS
that sends every Service name to 127.0.0.1, and containers run as process groups."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
from bookstore_operator import builders, kube
from bookstore_operator.models import Bookstore
from bookstore_operator.reconciler import check_inputs
from bookstore_operator.settings import OperatorSettings
from bookstore_operator.status import Problem

from tests.contract.kubelet import Sources, resolve_command, resolve_env

NAMESPACE = "shops"
LOOPBACK = "127.0.0.1"
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432}
READY_SECONDS = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class _UserObjects:
    """The reads the reconciler's input checks make, answered from the user's own objects
    (nothing the operator creates exists yet: a first reconcile)."""

    def __init__(self, objects: Sequence[Mapping[str, Any]]) -> None:
        self.objects = objects
        self.sources = Sources.from_manifests(objects)

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> Mapping[str, Any] | None:
        for manifest in self.objects:
            meta = manifest["metadata"]
            if (manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]) == (
                api_version,
                kind,
                namespace,
                name,
            ):
                return manifest
        return None

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        values = self.sources.secrets.get(name)
        return None if values is None else dict(values)


@dataclass
class Namespace:
    """A Bookstore, the user's objects beside it, and every manifest the operator creates."""

    store: Bookstore
    manifests: list[dict[str, Any]]
    sources: Sources

    def get(self, kind: str, name: str) -> dict[str, Any]:
        """The manifest of that kind and name (KeyError when the operator makes none)."""
        for manifest in self.manifests:
            if manifest["kind"] == kind and manifest["metadata"]["name"] == name:
                return manifest
        raise KeyError(f"{kind}/{name}")

    def secret(self, name: str, key: str) -> str:
        """A decoded Secret value, as a pod would read it."""
        return self.sources.secrets[name][key]


def build_namespace(documents: Sequence[Mapping[str, Any]]) -> Namespace:
    """What the operator makes of an example: the same parsing, input checks and builders."""
    user_objects = [
        {**doc, "metadata": {"namespace": NAMESPACE, **doc["metadata"]}}
        for doc in documents
        if doc["kind"] != "Bookstore"
    ]
    (body,) = (doc for doc in documents if doc["kind"] == "Bookstore")
    metadata = {
        "namespace": NAMESPACE,
        "uid": str(uuid.uuid4()),
        "generation": 1,
        **body["metadata"],
    }
    store = Bookstore.parse({**body, "metadata": metadata}, OperatorSettings())
    problems: list[Problem] = []
    reader = cast(kube.Kube, _UserObjects(user_objects))
    store = asyncio.run(check_inputs(reader, store, problems))
    assert not problems, problems
    generated = [builders.build_database_secret(store), builders.build_api_key_secret(store)]
    children = builders.build_children(store).values()
    manifests = [m for m in [*generated, *children] if m is not None]
    return Namespace(
        store, [*user_objects, *manifests], Sources.from_manifests([*user_objects, *manifests])
    )


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The pod template's spec of a Deployment, StatefulSet or Job."""
    return cast(dict[str, Any], workload["spec"]["template"]["spec"])


def container_named(workload: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The container `name` of a workload's pod template."""
    (container,) = (c for c in pod_spec(workload)["containers"] if c["name"] == name)
    return cast(dict[str, Any], container)


def materialize_volumes(
    workload: Mapping[str, Any], container: Mapping[str, Any], sources: Sources, root: Path
) -> dict[str, Path]:
    """Host directories for the container's mounts: ConfigMap and Secret volumes written with
    their file modes, emptyDirs and claim templates empty."""
    root.chmod(0o755)  # the pod's users (postgres) must reach their volumes
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes") or []}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        host = root / mount["name"]
        host.mkdir(exist_ok=True)
        volume = volumes.get(mount["name"], {})
        if "configMap" in volume or "secret" in volume:
            if "configMap" in volume:
                ref, data = volume["configMap"], sources.config_maps[volume["configMap"]["name"]]
            else:
                ref, data = volume["secret"], sources.secrets[volume["secret"]["secretName"]]
            mode = ref.get("defaultMode", 0o644)
            items = ref.get("items") or [{"key": key, "path": key} for key in data]
            for item in items:
                path = host / item["path"]
                path.write_text(data[item["key"]])
                path.chmod(item.get("mode", mode))
        mounts[mount["mountPath"]] = host
    return mounts


@dataclass
class Network:
    """Cluster DNS on one host: Service names (short and qualified) and ports -> local ports."""

    routes: dict[tuple[str, int], int] = field(default_factory=dict)

    def route(self, host: str, port: int, local_port: int, namespace: str = NAMESPACE) -> None:
        """Send `host:port` (as `host`, `host.ns`, `host.ns.svc[.cluster.local]`) to 127.0.0.1."""
        names = {host}
        if "." not in host:
            names |= {
                f"{host}.{namespace}",
                f"{host}.{namespace}.svc",
                f"{host}.{namespace}.svc.cluster.local",
            }
        for name in names:
            self.routes[(name, port)] = local_port

    def rewrite(self, value: str) -> str:
        """A URL with its host:port replaced by its 127.0.0.1 route; other values unchanged.

        A URL to a host without a route raises, so nothing ever leaves this machine.
        """
        if "://" not in value:
            return value
        parts = urlsplit(value)
        if parts.hostname is None:
            return value
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        if (parts.hostname, port) not in self.routes:
            if parts.hostname in (LOOPBACK, "localhost"):
                return value
            raise LookupError(f"no route to {parts.hostname}:{port} (from {parts.scheme} URL)")
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@" if user else ""
        netloc += f"{LOOPBACK}:{self.routes[(parts.hostname, port)]}"
        return urlunsplit(parts._replace(netloc=netloc))


def probe_port(container: Mapping[str, Any], probe: Mapping[str, Any]) -> int:
    """The container port an httpGet probe targets (by name or number)."""
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    (number,) = (p["containerPort"] for p in container["ports"] if p.get("name") == port)
    return int(number)


class ContainerProcess:
    """A container run as a local process group with its kubelet-resolved env and command.

    Its container ports are served on local ports: PORT (the variable the services bind)
    is set to the local port of the container's first port, HOST to 127.0.0.1.
    """

    def __init__(
        self,
        container: Mapping[str, Any],
        sources: Sources,
        network: Network,
        workdir: Path,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.container = container
        self.name = str(container["name"])
        self.ports = {int(p["containerPort"]): free_port() for p in container.get("ports") or []}
        env = {
            key: network.rewrite(value) for key, value in resolve_env(container, sources).items()
        }
        if self.ports:
            env["PORT"] = str(next(iter(self.ports.values())))
            env["HOST"] = LOOPBACK
        env.update(overrides or {})
        self.env = env
        self.argv = resolve_command(container, env)
        self.workdir = workdir
        self.log_path = workdir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _process_env(self) -> dict[str, str]:
        # The image's PATH holds the console scripts, as the venv's bin does here; /tmp is
        # the pod's emptyDir.
        bindir = (
            Path(os.environ.get("VIRTUAL_ENV", Path(__file__).resolve().parents[2] / ".venv"))
            / "bin"
        )
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        base = {
            "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
            "TMPDIR": str(tmp),
            "PYTHONUNBUFFERED": "1",
        }
        return {**base, **self.env}

    def start(self) -> None:
        """Start the command in a new session (its own process group), output to a log file."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self._process_env(),
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def run_to_completion(self, timeout: float = 120.0) -> int:
        """Run it like a Job's or an init container's pod: start, wait, return the exit code."""
        self.start()
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.stop()

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def probe_url(self, kind: str = "readinessProbe") -> str:
        """The local URL of the container's httpGet probe."""
        probe = self.container[kind]
        local = self.ports[probe_port(self.container, probe)]
        return f"http://{LOOPBACK}:{local}{probe['httpGet']['path']}"

    def service_url(self) -> str:
        """The local base URL of the container's first port."""
        return f"http://{LOOPBACK}:{next(iter(self.ports.values()))}"

    def probe(self, kind: str = "readinessProbe") -> int | None:
        """One probe: the HTTP status, or None when nothing answers."""
        timeout = float(self.container[kind].get("timeoutSeconds", 1))
        try:
            return httpx.get(self.probe_url(kind), timeout=timeout).status_code
        except httpx.TransportError:
            return None

    def wait_for_probe(self, kind: str = "readinessProbe", seconds: float = READY_SECONDS) -> None:
        """Probe until it answers 200; fail early, with the log, if the process exits."""
        deadline = time.monotonic() + seconds
        while (status := self.probe(kind)) != 200:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} {kind} answered {status} after {seconds} s:\n{self.log()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM to the group (as the kubelet does), SIGKILL after the grace period; also
        reaps what a command that already exited left behind in its group."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

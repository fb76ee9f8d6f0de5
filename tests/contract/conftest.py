"""Fixtures of the contract tier: each example's manifests run as processes on a fresh server."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contract.cluster import (
    ContainerProcess,
    Namespace,
    Network,
    build_namespace,
    container_named,
    free_port,
    materialize_volumes,
    pod_spec,
)
from tests.contract.kubelet import resolve_env
from tests.contract.postgres import SOCKET_DIR, PostgresContainer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Examples whose database the contract tier can stand up: the bundled one, and the
# external one played by a fresh server with TLS (its Secret asks for sslmode=require).
EXAMPLE_FILES = ("bookstore.yaml", "production.yaml", "external-database.yaml")
BUNDLED_DATABASE_EXAMPLES = ("bookstore.yaml", "production.yaml")


@dataclass
class RunningStore:
    """One example, running: its namespace, database server, catalog and orders."""

    example: str
    namespace: Namespace
    postgres: PostgresContainer
    network: Network
    workdir: Path
    catalog: ContainerProcess
    orders: ContainerProcess

    @property
    def api_key(self) -> str:
        return self.namespace.secret(self.namespace.store.api_key_secret_name, "api-key")

    def service(self, name: str) -> ContainerProcess:
        """A new, not yet started process of a service's container, wired like the pod."""
        deployment = self.namespace.get("Deployment", self.namespace.store.child_name(name))
        container = container_named(deployment, name)
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        return ContainerProcess(container, self.namespace.sources, self.network, workdir)


def _bundled_database(namespace: Namespace, root: Path) -> PostgresContainer:
    """The StatefulSet's postgres container, initialized by the image's entrypoint steps."""
    stateful_set = namespace.get("StatefulSet", namespace.store.child_name("postgres"))
    container = container_named(stateful_set, "postgres")
    env = resolve_env(container, namespace.sources)
    mounts = materialize_volumes(stateful_set, container, namespace.sources, root)
    postgres = PostgresContainer(container, env, mounts, free_port())
    assert postgres.initialize() == ["10-bookstore-databases.sh"]
    postgres.start()
    return postgres


def _external_database(namespace: Namespace, root: Path) -> PostgresContainer:
    """A DBA's server for the external Secret: its role and database, TLS on (sslmode=require)."""
    external = namespace.store.spec.database.external
    assert external is not None
    values = namespace.sources.secrets[external.secret_name]
    root.chmod(0o755)
    mounts = {
        path: root / name
        for path, name in ((SOCKET_DIR, "run"), ("/var/lib/postgresql/data", "data"))
    }
    for host in mounts.values():
        host.mkdir()
    env = {"POSTGRES_PASSWORD": secrets.token_urlsafe(16)}
    postgres = PostgresContainer({"name": "postgres"}, env, mounts, free_port())
    postgres.initialize()
    socket_dir = mounts[SOCKET_DIR]
    key, certificate = socket_dir / "tls.key", socket_dir / "tls.crt"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*openssl, "-subj", "/CN=db", "-keyout", str(key), "-out", str(certificate)],
        user=postgres.user,
        cwd=socket_dir,
        check=True,
        capture_output=True,
    )
    postgres.extra_options = [
        *("-c", "ssl=on"),
        *("-c", f"ssl_cert_file={certificate}"),
        *("-c", f"ssl_key_file={key}"),
    ]
    postgres.start()
    sql = (
        "CREATE ROLE :\"user\" LOGIN PASSWORD :'password';\n"
        'CREATE DATABASE :"database" OWNER :"user";\n'
    )
    variables = {"user": "username", "password": "password", "database": "database"}
    psql = ["psql", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "--username", "postgres"]
    for variable, secret_key in variables.items():
        psql += ["--set", f"{variable}={values[secret_key]}"]
    subprocess.run(
        [*psql, "--dbname", "postgres"],
        input=sql,
        text=True,
        env=postgres.env,
        user=postgres.user,
        check=True,
        capture_output=True,
    )
    return postgres


def _database_route(namespace: Namespace) -> tuple[str, int]:
    """Where the services look for their database: the postgres Service or the Secret's host."""
    store = namespace.store
    external = store.spec.database.external
    if store.spec.database.is_external and external is not None:
        values = namespace.sources.secrets[external.secret_name]
        return values["host"], int(values["port"])
    service = namespace.get("Service", store.child_name("postgres"))
    return store.child_name("postgres"), int(service["spec"]["ports"][0]["port"])


def _route_service(network: Network, service: dict[str, Any], process: ContainerProcess) -> None:
    """Route a Service's ports to the local ports of the container behind its targetPort."""
    for port in service["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        if isinstance(target, str):
            (target,) = (
                p["containerPort"] for p in process.container["ports"] if p["name"] == target
            )
        network.route(service["metadata"]["name"], int(port["port"]), process.ports[int(target)])


def _migrate(
    deployment: dict[str, Any], process: ContainerProcess, namespace: Namespace, network: Network
) -> None:
    """Play the migration Job the operator runs before any pod of a version serves: the
    service's container with `migrate`, to success (the pods do not migrate at start)."""
    job = ContainerProcess(process.container, namespace.sources, network, process.workdir)
    job.argv = [*job.argv, "migrate"]
    code = job.run_to_completion()
    assert code == 0, f"migrating {deployment['metadata']['name']} exited {code}:\n{job.log()}"


def _start(
    deployment: dict[str, Any], process: ContainerProcess, namespace: Namespace, network: Network
) -> None:
    """Run the pod's init containers in order, each to success (as the kubelet does), then
    start its container."""
    for init in pod_spec(deployment).get("initContainers") or []:
        step = ContainerProcess(init, namespace.sources, network, process.workdir)
        code = step.run_to_completion()
        assert code == 0, f"init container {init['name']} exited {code}:\n{step.log()}"
    process.start()


@pytest.fixture(scope="module", params=EXAMPLE_FILES)
def running_store(request: pytest.FixtureRequest) -> Iterator[RunningStore]:
    """An example's Bookstore with its database, catalog and orders running as processes."""
    example = str(request.param)
    documents = [doc for doc in yaml.safe_load_all((EXAMPLES / example).read_text()) if doc]
    namespace = build_namespace(documents)
    workdir = Path(tempfile.mkdtemp(prefix="contract-"))
    workdir.chmod(0o755)  # the postgres user reaches its volumes below
    running: list[ContainerProcess] = []
    postgres: PostgresContainer | None = None
    try:
        database_dir = workdir / "database"
        database_dir.mkdir()
        if namespace.store.spec.database.is_external:
            postgres = _external_database(namespace, database_dir)
        else:
            postgres = _bundled_database(namespace, database_dir)
        network = Network()
        host, port = _database_route(namespace)
        network.route(host, port, postgres.port)
        processes: dict[str, ContainerProcess] = {}
        for name in ("catalog", "orders"):
            deployment = namespace.get("Deployment", namespace.store.child_name(name))
            service_dir = workdir / name
            service_dir.mkdir()
            processes[name] = ContainerProcess(
                container_named(deployment, name), namespace.sources, network, service_dir
            )
            _route_service(
                network, namespace.get("Service", namespace.store.child_name(name)), processes[name]
            )
            running.append(processes[name])
            _migrate(deployment, processes[name], namespace, network)
            _start(deployment, processes[name], namespace, network)
        for process in processes.values():
            process.wait_for_probe("readinessProbe")
        yield RunningStore(
            example,
            namespace,
            postgres,
            network,
            workdir,
            processes["catalog"],
            processes["orders"],
        )
    finally:
        for process in running:
            process.stop()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)

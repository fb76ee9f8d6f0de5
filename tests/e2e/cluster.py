"""Talking to the real cluster of the current kubeconfig: reachability, kubectl, port-forwards."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
VERSION_TIMEOUT_SECONDS = 5

T = TypeVar("T")


def kubeconfig_paths() -> list[Path]:
    """The kubeconfig files kubectl would read: $KUBECONFIG's, else ~/.kube/config."""
    value = os.environ.get("KUBECONFIG")
    if value:
        return [Path(p).expanduser() for p in value.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def unreachable_reason() -> str | None:
    """Why no cluster can be tested (None when one answers /version within a few seconds)."""
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and IN_CLUSTER_TOKEN.exists()
    try:
        if any(path.is_file() for path in kubeconfig_paths()):
            config.load_kube_config()  # type: ignore[no-untyped-call]
        elif in_cluster:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        else:
            shown = ", ".join(str(p) for p in kubeconfig_paths())
            return f"no kubeconfig ({shown} absent) and not running in a pod"
    except (ConfigException, OSError, ValueError) as error:
        return f"the kubeconfig cannot be loaded: {error}"
    host = client.Configuration.get_default_copy().host
    try:
        client.VersionApi().get_code(_request_timeout=VERSION_TIMEOUT_SECONDS)
    except Exception as error:
        waited = f"{VERSION_TIMEOUT_SECONDS}s ({type(error).__name__})"
        return f"the cluster at {host} did not answer /version within {waited}"
    return None


def run(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (kubectl, helm); on failure raise with its output."""
    completed = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed


def eventually(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 2.0
) -> T:
    """Poll until probe returns something truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except ApiException as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})"
    )


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The status condition of this type (empty when absent)."""
    for item in obj.get("status", {}).get("conditions", []) or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def port_forward(namespace: str, service: str, remote_port: int = 8000) -> Iterator[str]:
    """`kubectl port-forward` a Service to 127.0.0.1; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            "kubectl",
            "port-forward",
            "--namespace",
            namespace,
            "--address",
            "127.0.0.1",
            f"service/{service}",
            f"{port}:{remote_port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def listening() -> bool:
            if process.poll() is not None:
                error = process.stderr.read() if process.stderr else ""
                raise AssertionError(f"port-forward to {service} exited: {error}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=1),
            ):
                return True
            return False

        eventually(listening, timeout=30, interval=0.5, what=f"port-forward to {service}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()

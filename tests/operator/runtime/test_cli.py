"""The `bookstore-operator` command: kubeconfig login, namespace, liveness, JSON logs."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import pathlib
import socket
import sys

import aiohttp
import kopf
import yaml
from bookstore_operator.__main__ import parse_args, run_arguments

from tests.operator.runtime.conftest import (
    create_bookstore,
    eventually,
    mark_workloads_ready,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_kubeconfig(path: pathlib.Path, server: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "emulator", "user": "tester"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))


async def healthy(port: int) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def test_command_serves_a_namespace_with_kubeconfig_liveness_and_json_logs(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, str(emulator.url).rstrip("/"))
    port = free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "BOOKSTORE_RESYNC_SECONDS": "1"}
    env.pop("KUBERNETES_SERVICE_HOST", None)  # never take the in-cluster path here
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bookstore_operator",
        "--standalone", "--namespace", "shop", "--liveness-port", str(port),
        "--metrics-port", "0",  # the default 8081 may be taken by a test running beside
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        await eventually(lambda: healthy(port), what="/healthz answering 200")
        await create_bookstore(emulator, "downtown")
        await mark_workloads_ready(emulator, "downtown")
        await wait_ready(emulator, "downtown")
    finally:
        process.terminate()
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    lines = [line for line in output.decode().splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]
    assert all("message" in record for record in records)
    assert process.returncode == 0, lines[-5:]


def test_each_process_gets_its_own_peering_priority_so_one_replica_acts() -> None:
    runs = [run_arguments(parse_args([])) for _ in range(5)]
    assert all(run["peering_name"] == "bookstore-operator" for run in runs)
    assert all(run["priority"] > 0 for run in runs)  # above kopf's default of 0
    assert len({run["priority"] for run in runs}) > 1
    inspect.signature(kopf.run).bind(**runs[0])  # every argument is one kopf.run takes


def test_standalone_or_namespaced_command_line_maps_to_kopf_run_arguments() -> None:
    run = run_arguments(parse_args(["--standalone", "-n", "a", "-n", "b", "--liveness-port", "0"]))
    assert run["standalone"] is True
    assert run["peering_name"] is None
    assert run["clusterwide"] is False
    assert run["namespaces"] == ["a", "b"]
    assert run["liveness_endpoint"] is None


def without_cluster_env(tmp_path: pathlib.Path) -> dict[str, str]:
    """An environment with no cluster credentials: empty HOME, no KUBECONFIG, not in a pod."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        env.pop(name, None)
    return env


async def run_to_exit(*argv: str, env: dict[str, str], within: float = 20) -> tuple[int, str]:
    """Run `bookstore-operator ARGV` until it exits by itself; its exit status and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bookstore_operator", *argv,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"bookstore-operator still running after {within}s") from None
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_no_credentials_exits_2_with_one_line_naming_what_was_tried(
    tmp_path: pathlib.Path,
) -> None:
    env = without_cluster_env(tmp_path)
    code, stderr = await run_to_exit("--log-format", "plain", env=env)

    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert "no Kubernetes credentials" in lines[0]
    assert "KUBERNETES_SERVICE_HOST is not set" in lines[0]
    assert f"{tmp_path / 'home'}/.kube/config (KUBECONFIG is not set)" in lines[0]


async def test_kubeconfig_pointing_at_a_missing_file_is_named_in_a_json_error(
    tmp_path: pathlib.Path,
) -> None:
    env = {**without_cluster_env(tmp_path), "KUBECONFIG": str(tmp_path / "missing")}
    code, stderr = await run_to_exit(env=env)

    assert code == 2
    (line,) = stderr.strip().splitlines()
    record = json.loads(line)
    assert record["severity"] == "error"
    assert f"{tmp_path / 'missing'} (from KUBECONFIG)" in record["message"]

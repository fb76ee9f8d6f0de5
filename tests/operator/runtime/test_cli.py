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

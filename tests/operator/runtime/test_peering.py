"""`bookstore-operator` and its peering object: fall back with a warning, peer, or refuse."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from tests.operator.runtime.conftest import (
    api,
    create_bookstore,
    eventually,
    mark_workloads_ready,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator
from tests.operator.runtime.test_cli import run_to_exit, write_kubeconfig

PEERINGS = "/apis/kopf.dev/v1/clusterkopfpeerings"
NAME = "bookstore-operator"


def operator_env(emulator: Emulator, tmp_path: pathlib.Path, pod: str) -> dict[str, str]:
    """Credentials for the emulator (a kubeconfig), and POD_ID naming this replica in peering."""
    kubeconfig = tmp_path / "kubeconfig"
    if not kubeconfig.exists():
        write_kubeconfig(kubeconfig, str(emulator.url).rstrip("/"))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_ID": pod}
    env["BOOKSTORE_RESYNC_SECONDS"] = "1"
    env.pop("KUBERNETES_SERVICE_HOST", None)  # never take the in-cluster path here
    return env


class Running:
    """One `bookstore-operator` process; its log lines (JSON records) as written so far."""

    def __init__(self, log: pathlib.Path) -> None:
        self.log = log

    def records(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    def said(self, text: str) -> list[dict[str, Any]]:
        return [record for record in self.records() if text in record["message"]]

    def acting(self) -> bool:
        """kopf starts a peered replica paused; True once its last word was resuming."""
        turns = [
            record["message"]
            for record in self.records()
            if record["message"].startswith(("Resuming operations", "Pausing"))
        ]
        return bool(turns) and turns[-1].startswith("Resuming")


@contextlib.asynccontextmanager
async def running(
    emulator: Emulator, tmp_path: pathlib.Path, pod: str, *argv: str
) -> AsyncIterator[Running]:
    """Run `bookstore-operator ARGV` (all namespaces, no liveness or metrics port unless ARGV
    gives one) until the block ends."""
    log = tmp_path / f"{pod}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bookstore_operator", "--liveness-port", "0",
            "--metrics-port", "0", *argv,  # two replicas here: one default port (8081) each
            env=operator_env(emulator, tmp_path, pod), stdout=sink, stderr=sink,
        )  # fmt: skip
        try:
            yield Running(log)
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 0, log.read_text()[-2000:]


def peers(emulator: Emulator) -> dict[str, Any]:
    """The entries of the ClusterKopfPeering: replica id -> {priority, lastseen, lifetime}."""
    found = emulator.live("kopf.dev/v1/clusterkopfpeerings", None, NAME)
    return dict((found or {}).get("status") or {})


async def create_peering(emulator: Emulator) -> None:
    """What the chart (or the kubectl command in the warning) creates."""
    body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": NAME}}
    await api(emulator, "POST", PEERINGS, body)


async def serve_one_bookstore(emulator: Emulator) -> None:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")


async def test_without_a_peering_object_it_warns_once_and_reconciles_alone(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    async with running(emulator, tmp_path, "solo") as operator:
        await serve_one_bookstore(emulator)
        warnings = operator.said("running standalone")

    assert len(warnings) == 1, operator.records()
    (warning,) = warnings
    assert warning["severity"] == "warn"
    assert f'ClusterKopfPeering "{NAME}" not found' in warning["message"]
    assert "kubectl apply -f crds/kopf-peering.yaml" in warning["message"]
    assert "kind: ClusterKopfPeering" in warning["message"]


async def test_with_the_peering_object_it_registers_there_and_reconciles(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    await create_peering(emulator)
    async with running(emulator, tmp_path, "replica-a") as operator:
        await eventually(lambda: "replica-a" in peers(emulator), what="this replica's entry")
        assert peers(emulator)["replica-a"]["priority"] > 0
        await serve_one_bookstore(emulator)

    assert operator.said("running standalone") == []
    assert "replica-a" not in peers(emulator)  # it removed itself on the way out


async def test_two_replicas_share_the_object_and_only_the_higher_priority_one_acts(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    await create_peering(emulator)
    async with (
        running(emulator, tmp_path, "replica-a", "--peering", NAME) as first,
        running(emulator, tmp_path, "replica-b", "--peering", NAME) as second,
    ):
        await eventually(lambda: {"replica-a", "replica-b"} <= set(peers(emulator)), what="both")
        entries = peers(emulator)
        by_priority = sorted(
            [(entries["replica-a"]["priority"], first), (entries["replica-b"]["priority"], second)],
            key=lambda pair: pair[0],
        )
        standby, leader = by_priority[0][1], by_priority[1][1]
        await eventually(
            lambda: leader.acting() and not standby.acting(), what="one leader, one standby"
        )
        await serve_one_bookstore(emulator)
        assert leader.acting()
        assert not standby.acting()


async def test_a_peering_name_given_but_missing_refuses_to_start_with_one_line(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    env = operator_env(emulator, tmp_path, "replica-a")
    code, stderr = await run_to_exit("--peering", "elsewhere", env=env)

    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    message = json.loads(line)["message"]
    assert 'ClusterKopfPeering "elsewhere" not found' in message
    assert "--standalone" in message

"""The plugin as a command: kubeconfig, context and namespace; exit statuses; one-line errors;
the console script on PATH; and it only ever reads."""

from __future__ import annotations

import asyncio
import os
import pathlib
import socket
import sys

import pytest

from tests.plugin.conftest import run_main, serving, write_kubeconfig


async def test_a_missing_bookstore_is_one_line_and_exit_2(tmp_path: pathlib.Path) -> None:
    async with serving("healthy", tmp_path) as served:
        code, out, err = await served.run("why", "nosuch")
    assert (code, out) == (2, "")
    assert err == 'kubectl-bookstore: bookstore "nosuch" not found in namespace "shop"\n'


async def test_the_namespace_comes_from_the_context_unless_given(tmp_path: pathlib.Path) -> None:
    async with serving("healthy", tmp_path) as served:
        elsewhere = await served.run("status", "downtown", "--context", "elsewhere")
        flagged = await served.run("why", "downtown", "--context", "elsewhere", "-n", "shop")
        bare = write_kubeconfig(tmp_path / "bare", str(served.emulator.url), namespace=None)
        default = await asyncio.to_thread(run_main, ["why", "downtown", "--kubeconfig", str(bare)])
    assert elsewhere[0] == 2
    assert 'not found in namespace "other"' in elsewhere[2]
    assert flagged[0] == 0, flagged
    assert default[0] == 2
    assert 'not found in namespace "default"' in default[2]


async def test_the_plugin_only_reads(tmp_path: pathlib.Path) -> None:
    async with serving("failed_migration", tmp_path) as served:
        await served.run("status", "downtown")
        await served.run("why", "downtown")
        methods = {request.method.value for request in served.emulator.requests_made}
    assert methods == {"GET"}


def test_an_unknown_context_is_a_usage_error(tmp_path: pathlib.Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")
    code, out, err = run_main(
        ["why", "downtown", "--context", "nope", "--kubeconfig", str(kubeconfig)]
    )
    assert (code, out) == (2, "")
    assert err == 'kubectl-bookstore: context "nope" not found in the kubeconfig\n'


def test_an_unreachable_api_server_is_one_line_and_exit_2(tmp_path: pathlib.Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    code, out, err = run_main(["status", "downtown", "--kubeconfig", str(kubeconfig)])
    assert (code, out) == (2, "")
    assert err.startswith(
        f"kubectl-bookstore: cannot reach the API server at http://127.0.0.1:{port}"
    )
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("garbage: [", "kubectl-bookstore: invalid kubeconfig: while parsing a flow node"),
        ("apiVersion: v1\nkind: Config\n", "kubectl-bookstore: invalid kubeconfig: Invalid"),
    ],
)
def test_a_broken_kubeconfig_is_one_line_and_exit_2(
    tmp_path: pathlib.Path, text: str, expected: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(text)
    code, out, err = run_main(["why", "downtown", "--kubeconfig", str(kubeconfig)])
    assert (code, out) == (2, "")
    assert err.startswith(expected), err
    assert err.count("\n") == 1


def test_a_missing_command_prints_usage_and_exits_2() -> None:
    code, out, err = run_main([])
    assert (code, out) == (2, "")
    assert err.startswith("usage: kubectl bookstore")


async def test_the_console_script_uses_kubeconfig_from_the_environment(
    tmp_path: pathlib.Path,
) -> None:
    """`kubectl bookstore why` runs `kubectl-bookstore why`, with the user's $KUBECONFIG."""
    script = pathlib.Path(sys.executable).parent / "kubectl-bookstore"
    async with serving("crash_loop", tmp_path) as served:
        process = await asyncio.create_subprocess_exec(
            str(script),
            "why",
            "downtown",
            env={**os.environ, "KUBECONFIG": str(served.kubeconfig)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert (process.returncode, err.decode()) == (1, "")
    assert "orders: 0/2 ready → pod downtown-orders-7c5b8d9f4-" in out.decode()

"""Server process handling for bench/dev: CPU accounting, stopping whole sessions, failures."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import bench_procs
import pytest

# A supervisor that starts a worker; the worker burns 0.3 s of CPU, says so, then idles.
SUPERVISOR = textwrap.dedent(
    """
    import subprocess, sys
    worker = subprocess.Popen([sys.executable, "-c", '''
    import time
    while time.process_time() < 0.3:
        pass
    print("burned", flush=True)
    time.sleep(60)
    '''])
    print(worker.pid, flush=True)
    worker.wait()
    """
)


def _pid_alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _gone_soon(pid: int) -> bool:
    """Whether the process is dead within a few seconds (a kill is delivered asynchronously)."""
    deadline = time.monotonic() + 5
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _pid_alive(pid)


def test_cpu_of_a_server_includes_its_workers_and_stopping_it_stops_them() -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert supervisor.stdout is not None
        worker_pid = int(supervisor.stdout.readline())
        assert supervisor.stdout.readline().strip() == "burned"
        assert bench_procs.process_tree_cpu_seconds([supervisor.pid]) >= 0.29
    finally:
        bench_procs.stop_process(supervisor)
    assert supervisor.returncode is not None
    assert _gone_soon(worker_pid)


def test_a_server_that_exits_at_start_is_reported_with_its_output(tmp_path: Path) -> None:
    group = bench_procs.ProcessGroup(log_dir=tmp_path)
    server = group.start(
        "broken",
        [sys.executable, "-c", "import sys; print('no database here'); sys.exit(3)"],
        bench_procs.service_env(),
        bench_procs.free_port(),
    )
    try:
        with pytest.raises(bench_procs.ServerFailedError, match="no database here"):
            bench_procs.wait_ready(server, "/health/ready", timeout=30)
    finally:
        group.stop_all()


def test_services_do_not_inherit_stray_settings_from_the_shell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_PASSWORD", "from-my-shell")
    monkeypatch.setenv("PATH", "/usr/bin")
    env = bench_procs.service_env(PORT="9000")
    assert "DATABASE_PASSWORD" not in env
    assert env["PORT"] == "9000"
    assert env["PATH"] == "/usr/bin"


def test_a_failing_one_shot_command_raises_with_its_output() -> None:
    with pytest.raises(bench_procs.ServerFailedError, match="migration broke"):
        bench_procs.run_checked(
            "migrate",
            [sys.executable, "-c", "import sys; sys.exit('migration broke')"],
            bench_procs.service_env(),
            timeout=30,
        )

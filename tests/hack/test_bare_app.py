"""The benchmark ceiling runs through the services' own CLI, with their worker count."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import bench_procs
import httpx

BARE_APP = Path(__file__).resolve().parents[2] / "hack" / "bare_app.py"


def _spawned_workers(parent: int) -> set[int]:
    """Pids of the multiprocessing workers (uvicorn's) whose parent is `parent`."""
    workers = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent_pid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if parent_pid == parent and b"spawn_main" in command:
            workers.add(int(entry.name))
    return workers


def _all_gone(pids: set[int]) -> bool:
    """Whether none of these processes exists any more (waiting a few seconds for it)."""
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_ceiling_serves_its_constant_book_with_two_workers_and_stops_them_all(
    tmp_path: Path,
) -> None:
    group = bench_procs.ProcessGroup(log_dir=tmp_path)
    port = bench_procs.free_port()
    env = bench_procs.service_env(
        HOST="127.0.0.1", PORT=str(port), WORKERS="2", LOG_LEVEL="warning"
    )
    ceiling = group.start("ceiling", [sys.executable, str(BARE_APP)], env, port)
    workers: set[int] = set()
    try:
        bench_procs.wait_ready(ceiling, "/ceiling", timeout=60)
        assert httpx.get(f"{ceiling.url}/ceiling").json()["title"] == "The Ceiling"
        workers = _spawned_workers(ceiling.process.pid)
        assert len(workers) == 2
    finally:
        group.stop_all()
    assert _all_gone(workers)

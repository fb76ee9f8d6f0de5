"""Local server processes for `make bench` and `make dev`: start, wait ready, CPU, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT_SECONDS = 10.0


class ServerFailedError(RuntimeError):
    """A server process exited or never became ready; the message holds its log tail."""


# The services' own settings: never inherited from the caller's shell, always set by us.
SERVICE_VARIABLES = frozenset(
    {
        "API_KEY",
        "CATALOG_URL",
        "DATABASE_PASSWORD",
        "DATABASE_URL",
        "HOST",
        "LOG_LEVEL",
        "PORT",
        "PROMETHEUS_MULTIPROC_DIR",
        "SAMPLE_DATA",
        "SQLITE_PATH",
        "WORKERS",
    }
)


def service_env(**settings: str) -> dict[str, str]:
    """This process's environment without stray service settings, plus `settings`."""
    env = {key: value for key, value in os.environ.items() if key not in SERVICE_VARIABLES}
    return {**env, **settings}


def venv_script(name: str) -> str:
    """Path of a console script installed next to the running interpreter (.venv/bin)."""
    return str(Path(sys.prefix, "bin", name))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """One started server process (and, through its session, all its workers)."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path | None

    @property
    def url(self) -> str:
        """Base URL of the server on the loopback interface."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log, to explain a failure."""
        if self.log_path is None:
            return "(its output is above)"
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class ProcessGroup:
    """Every server started for one run, stopped together (newest first) at the end."""

    log_dir: Path | None
    servers: list[Server] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: Mapping[str, str], port: int) -> Server:
        """Start a server in its own session so stopping it reaches all its workers.

        Its output goes to `<log_dir>/<name>.log`, or to our terminal when log_dir is None.
        """
        log_path = None if self.log_dir is None else self.log_dir / f"{name}.log"
        with contextlib.ExitStack() as stack:
            output: IO[bytes] | None = None
            if log_path is not None:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                output = stack.enter_context(log_path.open("wb"))
            process = subprocess.Popen(  # noqa: S603 - argv is built by us, never a shell
                argv,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                start_new_session=True,
            )
        server = Server(name=name, process=process, port=port, log_path=log_path)
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        """Stop every server: SIGTERM to its session, SIGKILL after a grace period."""
        for server in reversed(self.servers):
            stop_process(server.process)
        self.servers.clear()


def run_checked(name: str, argv: list[str], env: Mapping[str, str], timeout: float) -> None:
    """Run a short command (e.g. a migration); raise with its output when it fails."""
    result = subprocess.run(  # noqa: S603 - argv is built by us, never a shell
        argv,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        raise ServerFailedError(f"{name} failed ({result.returncode}):\n{output[-3000:]}")


def stop_process(process: subprocess.Popen[Any]) -> None:
    """Terminate a process and its session (workers included); kill it if it lingers."""
    if process.poll() is not None:
        return
    _signal_session(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _signal_session(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    # Workers that outlive their supervisor still share its session id.
    _signal_session(process.pid, signal.SIGKILL)


def _signal_session(session_leader: int, signum: signal.Signals) -> None:
    """Send a signal to the process group led by a process we started."""
    try:
        os.killpg(session_leader, signum)
    except (ProcessLookupError, PermissionError):
        return


def wait_ready(server: Server, path: str, timeout: float) -> None:
    """Poll the server until `path` answers 200; fail fast when the process exits."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise ServerFailedError(
                    f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
                )
            try:
                if client.get(server.url + path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise ServerFailedError(f"{server.name} not ready after {timeout:.0f}s:\n{server.log_tail()}")


@dataclass(frozen=True)
class ProcessStat:
    """The parts of /proc/<pid>/stat the CPU accounting needs."""

    command: str
    parent: int
    cpu_ticks: int


def _read_stat(pid: int) -> ProcessStat | None:
    """Command, parent pid and utime+stime ticks of one process; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split at the last one.
    head, tail = text.rsplit(")", 1)
    fields = tail.split()
    return ProcessStat(head.split("(", 1)[1], int(fields[1]), int(fields[11]) + int(fields[12]))


def _all_stats() -> dict[int, ProcessStat]:
    """A snapshot of every process on the machine."""
    stats: dict[int, ProcessStat] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _read_stat(int(entry))) is not None:
            stats[int(entry)] = stat
    return stats


def postgres_backend_ticks(databases: Collection[str]) -> dict[int, int]:
    """CPU ticks used so far by each PostgreSQL backend serving one of `databases`, by pid."""
    ticks: dict[int, int] = {}
    for pid, stat in _all_stats().items():
        if stat.command != "postgres":
            continue
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        # A backend's title: "postgres: <cluster>: <user> <database> <client> <state>".
        if any(word in databases for word in title.split()):
            ticks[pid] = stat.cpu_ticks
    return ticks


def cpu_seconds_between(before: Mapping[int, int], after: Mapping[int, int]) -> float:
    """CPU used between two tick snapshots (new processes count whole, ended ones are lost)."""
    ticks = sum(count - before.get(pid, 0) for pid, count in after.items())
    return ticks / CLOCK_TICKS_PER_SECOND


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy since boot (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_SECOND


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children (here: every wrk run so far)."""
    times = os.times()
    return times.children_user + times.children_system


def process_tree_cpu_seconds(roots: list[int]) -> float:
    """CPU time (user+system) used so far by the given processes and all their descendants."""
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.parent, []).append(pid)
    total_ticks = 0
    pending = [pid for pid in roots if pid in stats]
    seen: set[int] = set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total_ticks += stats[pid].cpu_ticks
        pending.extend(children.get(pid, []))
    return total_ticks / CLOCK_TICKS_PER_SECOND


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so the cleanup in `finally` runs."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """While active, SIGTERM and SIGHUP stop the run like Ctrl-C does (cleanly)."""
    previous = {
        signum: signal.signal(signum, _raise_keyboard_interrupt)
        for signum in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

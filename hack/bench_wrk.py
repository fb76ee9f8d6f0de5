"""Run wrk with hack/bench.lua and read its JSON summary (requests, latency percentiles)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("bench.lua")
RESULT_MARKER = "BENCH_JSON "
WRK_THREADS = 2
WRK_CONNECTIONS = 64


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no summary."""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    duration_us: int
    non_2xx: int
    socket_errors: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    mean_us: float

    @property
    def requests_per_second(self) -> float:
        """Completed requests per second over the run."""
        return self.requests / (self.duration_us / 1_000_000) if self.duration_us else 0.0


def ensure_wrk() -> str:
    """Path of wrk; install the Debian package when missing and we are root, else explain."""
    found = shutil.which("wrk")
    if found:
        return found
    apt_get = shutil.which("apt-get")
    if os.geteuid() != 0 or apt_get is None:
        raise WrkError(
            "wrk is not installed: run `sudo apt-get install -y wrk` (Debian/Ubuntu) "
            "or `brew install wrk` (macOS), then `make bench` again"
        )
    for argv in ([apt_get, "update"], [apt_get, "install", "-y", "wrk"]):
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv,
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            timeout=300,
        )
    found = shutil.which("wrk")
    if not found:
        raise WrkError("apt-get installed wrk but it is not on PATH")
    return found


def parse_summary(output: str) -> WrkResult:
    """The WrkResult from the line bench.lua's done() prints."""
    for line in output.splitlines():
        if line.startswith(RESULT_MARKER):
            data = json.loads(line.removeprefix(RESULT_MARKER))
            return WrkResult(**data)
    raise WrkError(f"wrk printed no {RESULT_MARKER.strip()} line:\n{output[-2000:]}")


def run_wrk(
    wrk: str,
    url: str,
    mode: str,
    seconds: float,
    values_file: Path | None = None,
    api_key: str = "",
) -> WrkResult:
    """Load `url` for `seconds` with 64 connections on 2 threads; return the summary."""
    env = {
        **os.environ,
        "BENCH_MODE": mode,
        "BENCH_VALUES": str(values_file) if values_file else "",
        "BENCH_API_KEY": api_key,
    }
    argv = [
        wrk,
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    result = subprocess.run(  # noqa: S603 - argv is built by us, never a shell
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if result.returncode != 0:
        raise WrkError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return parse_summary(result.stdout)

"""`make dev` end to end: both services on SQLite, sample books, an order, a clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import bench_procs
import httpx

DEV_SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "dev.py"


def _wait_for_line(process: subprocess.Popen[str], text: str, timeout: float) -> list[str]:
    """Read the script's output until a line contains `text` (or fail with what it said)."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} in the output of dev.py:\n{''.join(lines)}")


def _listening(port: int) -> bool:
    """Whether something accepts connections on this local port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_dev_serves_sample_books_takes_an_order_and_stops_both_on_ctrl_c(tmp_path: Path) -> None:
    catalog_port, orders_port = bench_procs.free_port(), bench_procs.free_port()
    env = {
        **os.environ,
        "CATALOG_PORT": str(catalog_port),
        "ORDERS_PORT": str(orders_port),
        "DEV_DATA_DIR": str(tmp_path),
        "DEV_API_KEY": "test-dev-key",
        "LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, str(DEV_SCRIPT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = "".join(_wait_for_line(process, "Ctrl-C stops both", timeout=120))
        catalog = f"http://127.0.0.1:{catalog_port}"
        assert f"{catalog}/docs" in output
        assert "test-dev-key" in output
        assert httpx.get(f"{catalog}/health/ready").status_code == 200
        books = httpx.get(f"{catalog}/books").json()
        assert books["total"] > 0
        order = httpx.post(
            f"http://127.0.0.1:{orders_port}/orders",
            headers={"X-API-Key": "test-dev-key"},
            json={
                "customer_name": "Ada Lovelace",
                "customer_email": "ada@example.com",
                "items": [{"book_id": books["items"][0]["id"], "quantity": 1}],
            },
        )
        assert order.status_code == 201, order.text
        assert order.json()["status"] == "confirmed"
        assert sorted(path.name for path in tmp_path.glob("*.db")) == ["catalog.db", "orders.db"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            returncode = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert returncode == 0
    assert not _listening(catalog_port)
    assert not _listening(orders_port)

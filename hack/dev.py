"""`make dev`: catalog and orders on this machine, on SQLite files under .dev/, with sample books.

No PostgreSQL and no Docker needed. Ports: CATALOG_PORT (8001) and ORDERS_PORT (8002);
API key: DEV_API_KEY (default `dev-api-key`); data: DEV_DATA_DIR (.dev); LOG_LEVEL (info).
Ctrl-C stops both.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
import time
from pathlib import Path

import bench_procs
import httpx

log = logging.getLogger("dev")

REPO = Path(__file__).resolve().parent.parent
DEV_DIR = Path(os.environ.get("DEV_DATA_DIR", REPO / ".dev")).resolve()
READY_TIMEOUT_SECONDS = 60.0


def _port(name: str, default: int) -> int:
    """A port from the environment; refuse early (and clearly) when it is taken."""
    port = int(os.environ.get(name, default))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is in use: set {name} to a free port")
    return port


def _first_book_id(catalog_url: str) -> object:
    """The id of one sample book, for the printed order example."""
    response = httpx.get(f"{catalog_url}/books", params={"limit": 1}, timeout=10)
    items = response.json().get("items", []) if response.status_code == 200 else []
    return items[0]["id"] if items else 1


def _welcome(catalog: bench_procs.Server, orders: bench_procs.Server, api_key: str) -> str:
    """What to do next: the URLs, the key and a ready-to-paste order."""
    order = {
        "customer_name": "Ada Lovelace",
        "customer_email": "ada@example.com",
        "items": [{"book_id": _first_book_id(catalog.url), "quantity": 1}],
    }
    curl = (
        f"curl -s -X POST {orders.url}/orders -H 'Content-Type: application/json' "
        f"-H 'X-API-Key: {api_key}' -d {shlex.quote(json.dumps(order))}"
    )
    return "\n".join(
        [
            "",
            f"  catalog  {catalog.url}   (docs: {catalog.url}/docs)",
            f"  orders   {orders.url}   (docs: {orders.url}/docs)",
            f"  API key  {api_key}",
            f"  data     {DEV_DIR}/*.db (delete to start over)",
            "",
            f"  curl -s '{catalog.url}/books?limit=5'",
            f"  {curl}",
            "",
            "  Ctrl-C stops both.",
            "",
        ]
    )


def serve(group: bench_procs.ProcessGroup) -> int:
    """Start both services, print how to use them, and wait until Ctrl-C or a crash."""
    api_key = os.environ.get("DEV_API_KEY", "dev-api-key")
    catalog_port = _port("CATALOG_PORT", 8001)
    orders_port = _port("ORDERS_PORT", 8002)
    common = {"HOST": "127.0.0.1", "API_KEY": api_key, "WORKERS": "1"}
    common["LOG_LEVEL"] = os.environ.get("LOG_LEVEL", "info")
    catalog = group.start(
        "catalog",
        [bench_procs.venv_script("bookstore-catalog")],
        bench_procs.service_env(
            **common,
            PORT=str(catalog_port),
            SQLITE_PATH=str(DEV_DIR / "catalog.db"),
            SAMPLE_DATA="true",
        ),
        catalog_port,
    )
    orders = group.start(
        "orders",
        [bench_procs.venv_script("bookstore-orders")],
        bench_procs.service_env(
            **common,
            PORT=str(orders_port),
            SQLITE_PATH=str(DEV_DIR / "orders.db"),
            CATALOG_URL=catalog.url,
        ),
        orders_port,
    )
    for server in (catalog, orders):
        bench_procs.wait_ready(server, "/health/ready", READY_TIMEOUT_SECONDS)
    sys.stdout.write(_welcome(catalog, orders, api_key))
    sys.stdout.flush()
    while True:
        for server in (catalog, orders):
            if server.process.poll() is not None:
                log.error("%s exited with %s", server.name, server.process.returncode)
                return 1
        time.sleep(0.5)


def main() -> int:
    """Run the local stack until interrupted; every process is stopped on the way out."""
    logging.basicConfig(level=logging.INFO, format="dev: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    DEV_DIR.mkdir(parents=True, exist_ok=True)
    group = bench_procs.ProcessGroup(log_dir=None)
    try:
        with bench_procs.interrupts_as_keyboard_interrupt():
            return serve(group)
    except KeyboardInterrupt:
        log.info("stopping catalog and orders")
        return 0
    except bench_procs.ServerFailedError as error:
        log.error("%s", error)
        return 1
    finally:
        group.stop_all()


if __name__ == "__main__":
    sys.exit(main())

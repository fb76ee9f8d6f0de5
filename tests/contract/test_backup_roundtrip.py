"""Backup and restore through exactly the scripts the Jobs run, on real PostgreSQL servers.

The backup Job's container (builders.backups) runs as a local process with the env the kubelet
would give it, against an example's database while orders keep flowing through the running
orders service; the restore Job's container then fills the empty databases of a second,
freshly bootstrapped server, and the services start on them.

What "equal to the snapshot" can check, rigorously. pg_dump reads each database in one
REPEATABLE READ transaction: one snapshot per database (orders and catalog are two snapshots,
a moment apart, so nothing is asserted ACROSS the two databases). Without a record of the
snapshot instant, the test checks what must hold of ANY correct snapshot, and would break for
a torn copy or a lossy restore:
- faithful restore: every table of the restored database holds exactly the rows the dump
  holds (COPY text, compared as sorted lines), and every sequence is where the dump set it;
- per-database atomicity: in catalog, each book's stock + its active reservations equals the
  stock it started with (each reservation is one atomic statement, so this holds in every
  committed state and hence in a snapshot; a table-by-table copy taken while reservations
  flow breaks it);
- snapshot bounds: every order acknowledged (201) before the backup started is restored,
  identical (row, items, idempotency key); no order whose request began after the backup
  ended is; every restored order, item and idempotency key exists identically in the source.
Then behaviour: the services serve the restored data (totals), a replayed Idempotency-Key
returns its restored order and makes no new one, new books and orders get fresh ids
(sequences continue), and a second restore into the now non-empty databases is refused with
nothing changed.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from bookstore_catalog.config import SCHEMA as CATALOG_SCHEMA
from bookstore_operator.builders.backups import (
    BACKUP_ROOT,
    BACKUP_VOLUME,
    RESTORE_REFUSED_EXIT_CODE,
    build_backup_job,
    build_restore_job,
)
from bookstore_orders.config import SCHEMA as ORDERS_SCHEMA
from psycopg import sql

from tests.contract.cluster import (
    ContainerProcess,
    Namespace,
    Network,
    build_namespace,
    container_named,
)
from tests.contract.conftest import (
    EXAMPLES,
    _bundled_database,
    _database_route,
    _external_database,
    _route_service,
)
from tests.contract.postgres import PostgresContainer

BACKUP = "nightly-1"
BACKUP_UID = str(uuid.uuid4())
HEADS = {"catalog": CATALOG_SCHEMA.head, "orders": ORDERS_SCHEMA.head}
INITIAL_STOCK = 100_000
ORDER_THREADS = 4
ORDERS_AROUND_THE_BACKUP = 15  # acknowledged before it starts, and begun after it ends
CUSTOMER = {"customer_name": "Grace Hopper", "customer_email": "grace@example.com"}
MAX_OBJECT_NAME = 253
TERMINATION_MESSAGE_LIMIT = 4096


@dataclass
class Site:
    """One example's namespace running on this host: its database server and services."""

    namespace: Namespace
    postgres: PostgresContainer
    network: Network
    workdir: Path
    services: dict[str, ContainerProcess] = field(default_factory=dict)

    @property
    def api_key(self) -> str:
        return self.namespace.secret(self.namespace.store.api_key_secret_name, "api-key")

    def database(self, service: str) -> str:
        """The database a service's tables live in (one shared database when external)."""
        url = self.namespace.get("Deployment", self.namespace.store.child_name(service))
        env = container_named(url, service)["env"]
        value = next(v["value"] for v in env if v["name"] == "DATABASE_URL")
        return str(value.rsplit("/", 1)[1].split("?", 1)[0])

    def connect(self, service: str) -> psycopg.Connection[Any]:
        """The superuser on the server's socket, in the service's database."""
        return psycopg.connect(
            host=str(self.postgres.socket_dir),
            port=self.postgres.port,
            user="postgres",
            dbname=self.database(service),
            autocommit=True,
        )

    def start_services(self, migrate_on_start: bool) -> None:
        store = self.namespace.store
        for name in ("catalog", "orders"):
            deployment = self.namespace.get("Deployment", store.child_name(name))
            workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
            process = ContainerProcess(
                container_named(deployment, name),
                self.namespace.sources,
                self.network,
                workdir,
                # Migrating is the migration Job's work; here it is the source's first start.
                overrides={"MIGRATE_ON_START": "true" if migrate_on_start else "false"},
            )
            _route_service(
                self.network, self.namespace.get("Service", store.child_name(name)), process
            )
            self.services[name] = process
            process.start()
        for process in self.services.values():
            process.wait_for_probe("readinessProbe")

    def url(self, service: str) -> str:
        return self.services[service].service_url()

    def stop(self) -> None:
        for process in self.services.values():
            process.stop()
        self.postgres.stop()


def _start_site(example: str, root: Path) -> Site:
    """A fresh namespace for the example (new generated Secrets) and its empty databases."""
    documents = [doc for doc in yaml.safe_load_all((EXAMPLES / example).read_text()) if doc]
    namespace = build_namespace(documents)
    root.mkdir()
    root.chmod(0o755)
    database_dir = root / "database"
    database_dir.mkdir()
    if namespace.store.spec.database.is_external:
        postgres = _external_database(namespace, database_dir)
    else:
        postgres = _bundled_database(namespace, database_dir)
    network = Network()
    host, port = _database_route(namespace)
    network.route(host, port, postgres.port)
    return Site(namespace, postgres, network, root)


@dataclass(frozen=True)
class JobRun:
    code: int
    log: str
    message: str


def _run_job(site: Site, job: dict[str, Any], backups: Path) -> JobRun:
    """The Job's one container to completion, its backups volume mounted at `backups`."""
    [container] = job["spec"]["template"]["spec"]["containers"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == BACKUP_VOLUME]
    assert mount["mountPath"] == BACKUP_ROOT
    workdir = Path(tempfile.mkdtemp(prefix=f"{container['name']}-", dir=site.workdir))
    termination_log = workdir / "termination-log"
    process = ContainerProcess(
        container,
        site.namespace.sources,
        site.network,
        workdir,
        # The volume mount and the kubelet's /dev/termination-log, as host paths.
        overrides={"BACKUP_ROOT": str(backups), "TERMINATION_LOG": str(termination_log)},
    )
    assert process.argv[:2] == ["sh", "-c"]
    assert process.argv == container["command"]  # kubelet's $(VAR) expansion changes nothing
    code = process.run_to_completion(timeout=180)
    message = termination_log.read_text() if termination_log.exists() else ""
    return JobRun(code, process.log(), message)


def _isbn13(number: int) -> str:
    digits = f"978{number:09d}"
    check = (10 - sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits)) % 10) % 10
    return digits + str(check)


@dataclass(frozen=True)
class Placed:
    key: str
    body: dict[str, Any]
    started: float
    finished: float
    status: int
    order_id: int | None


class OrderTraffic:
    """Threads placing orders (each with its own Idempotency-Key) until stopped."""

    def __init__(self, site: Site, book_ids: list[int]) -> None:
        self.site = site
        self.book_ids = book_ids
        self.placed: list[Placed] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(ORDER_THREADS)]

    def _run(self, seed: int) -> None:
        chooser = random.Random(seed)
        url = f"{self.site.url('orders')}/orders"
        with httpx.Client(timeout=30) as client:
            while not self.stopping.is_set():
                books = chooser.sample(self.book_ids, chooser.randint(1, 2))
                items = [{"book_id": b, "quantity": chooser.randint(1, 3)} for b in books]
                body = {**CUSTOMER, "items": items}
                key = str(uuid.uuid4())
                started = time.monotonic()
                response = client.post(
                    url, json=body, headers={"X-API-Key": self.site.api_key, "Idempotency-Key": key}
                )
                finished = time.monotonic()
                order_id = response.json().get("id") if response.status_code == 201 else None
                with self.lock:
                    self.placed.append(
                        Placed(key, body, started, finished, response.status_code, order_id)
                    )

    def count(self, after: float = 0.0) -> int:
        with self.lock:
            return sum(1 for p in self.placed if p.status == 201 and p.started > after)

    def wait_for(self, orders: int, after: float = 0.0, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while self.count(after) < orders:
            assert time.monotonic() < deadline, f"only {self.count(after)} orders placed"
            time.sleep(0.05)

    def __enter__(self) -> OrderTraffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)


def _dump_contents(dump: Path) -> tuple[dict[str, list[str]], dict[str, int]]:
    """The rows of each table (COPY text lines) and each sequence's value, as in the dump."""
    script = _pg_restore_script(dump)
    tables: dict[str, list[str]] = {}
    sequences: dict[str, int] = {}
    lines = iter(script.splitlines())
    for line in lines:
        if line.startswith("COPY "):
            rows = list(itertools.takewhile(lambda row: row != "\\.", lines))
            tables[line.removesuffix(" FROM stdin;")] = sorted(rows)
        elif match := re.match(r"SELECT pg_catalog\.setval\('([^']+)', (\d+), true\);", line):
            sequences[match[1]] = int(match[2])
    return tables, sequences


def _pg_restore_script(dump: Path) -> str:
    result = subprocess.run(
        ["pg_restore", "--data-only", "--file=-", str(dump)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _restored_contents(
    connection: psycopg.Connection[Any], copies: list[str], sequences: list[str]
) -> tuple[dict[str, list[str]], dict[str, int]]:
    tables: dict[str, list[str]] = {}
    for copy_from in copies:
        target = copy_from.removeprefix("COPY ")
        # The table and columns come from the dump's own COPY line.
        statement = sql.SQL("COPY {} TO STDOUT").format(sql.SQL(target))  # type: ignore[arg-type]
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        tables[copy_from] = sorted(data.decode().splitlines())
    values: dict[str, int] = {}
    for sequence in sequences:
        row = connection.execute(
            sql.SQL("SELECT last_value FROM {}").format(sql.Identifier(*sequence.split(".")))
        ).fetchone()
        assert row is not None
        values[sequence] = int(row[0])
    return tables, values


def _orders(connection: psycopg.Connection[Any]) -> dict[int, tuple[Any, ...]]:
    rows = connection.execute(
        "SELECT id, status, customer_email, total_price, created_at FROM orders"
    ).fetchall()
    return {row[0]: tuple(row) for row in rows}


def _items(connection: psycopg.Connection[Any], ids: set[int]) -> set[tuple[Any, ...]]:
    rows = connection.execute(
        "SELECT order_id, book_id, quantity, unit_price, reservation_id FROM order_items"
        " WHERE order_id = ANY(%s)",
        [sorted(ids)],
    ).fetchall()
    return {tuple(row) for row in rows}


def _keys(connection: psycopg.Connection[Any]) -> dict[str, tuple[Any, ...]]:
    rows = connection.execute(
        "SELECT key, scope, request_hash, response_status, response_body FROM idempotency_keys"
    ).fetchall()
    return {row[0]: tuple(row) for row in rows}


@pytest.fixture(params=["bookstore.yaml", "external-database.yaml"])
def sites(request: pytest.FixtureRequest) -> Iterator[tuple[Site, Site, Path]]:
    """The example running with its services (source), a fresh empty one (target), and the
    host directory standing for the source's `<name>-backups` volume."""
    workdir = Path(tempfile.mkdtemp(prefix="backup-"))
    workdir.chmod(0o755)
    started: list[Site] = []
    try:
        source = _start_site(str(request.param), workdir / "source")
        started.append(source)
        target = _start_site(str(request.param), workdir / "target")
        started.append(target)
        backups = workdir / "backups"
        backups.mkdir()
        yield source, target, backups
    finally:
        for site in started:
            site.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_backup_taken_during_orders_restores_the_snapshot_into_empty_databases(
    sites: tuple[Site, Site, Path],
) -> None:
    source, target, backups = sites
    source.start_services(migrate_on_start=True)
    headers = {"X-API-Key": source.api_key}
    with httpx.Client(timeout=30) as client:
        book_ids = []
        for n in range(4):
            book = {"title": f"Book {n}", "author": "A. Writer", "isbn": _isbn13(n + 1)}
            book |= {"price": "12.50", "quantity": INITIAL_STOCK}
            created = client.post(f"{source.url('catalog')}/books", json=book, headers=headers)
            assert created.status_code == 201, created.text
            book_ids.append(created.json()["id"])

    # The backup, while orders flow.
    backup_job = build_backup_job(source.namespace.store, BACKUP, BACKUP_UID)
    with OrderTraffic(source, book_ids) as traffic:
        traffic.wait_for(ORDERS_AROUND_THE_BACKUP)
        backup_started = time.monotonic()
        backup = _run_job(source, backup_job, backups)
        backup_ended = time.monotonic()
        traffic.wait_for(ORDERS_AROUND_THE_BACKUP, after=backup_ended)
    assert backup.code == 0, backup.log
    placed = [p for p in traffic.placed if p.status == 201]
    assert all(p.status in (201, 409) for p in traffic.placed), [p.status for p in traffic.placed]
    before = {p.order_id for p in placed if p.finished < backup_started}
    after = {p.order_id for p in placed if p.started > backup_ended}
    during = [p for p in placed if backup_started < p.started and p.finished < backup_ended]
    assert during, "no order was written while the backup ran"

    # The summary: in the termination message and manifest.json, with each file's size and
    # each database's revision; short enough for a 4096-byte termination message.
    summary = json.loads(backup.message)
    directory = backups / BACKUP
    assert json.loads((directory / "manifest.json").read_text()) == summary
    assert (summary["backup"], summary["uid"], summary["format"]) == (BACKUP, BACKUP_UID, "custom")
    external = source.namespace.store.spec.database.is_external
    databases = ["shared"] if external else ["orders", "catalog"]
    assert [f["database"] for f in summary["files"]] == databases
    for entry in summary["files"]:
        assert entry["sizeBytes"] == (directory / entry["file"]).stat().st_size > 0
    revisions = {k: v for f in summary["files"] for k, v in f["revisions"].items()}
    assert revisions == HEADS
    assert summary["sizeBytes"] == sum(f["sizeBytes"] for f in summary["files"])
    longest = len(backup.message) + MAX_OBJECT_NAME - len(BACKUP)
    assert longest < TERMINATION_MESSAGE_LIMIT
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        ["manifest.json", *(f"{d}.dump" for d in databases)]
    )

    # The restore, into the target's empty databases.
    restore_job = build_restore_job(target.namespace.store, BACKUP, source.namespace.store.name)
    restore = _run_job(target, restore_job, backups)
    assert restore.code == 0, restore.log
    restored_summary = json.loads(restore.message)
    assert [r["database"] for r in restored_summary["restored"]] == databases
    assert {k: v for r in restored_summary["restored"] for k, v in r["revisions"].items()} == HEADS

    # Faithful: each restored database holds exactly its dump's rows and sequence values.
    for entry in summary["files"]:
        service = "catalog" if entry["database"] == "catalog" else "orders"
        tables, sequences = _dump_contents(directory / entry["file"])
        assert {"orders", "books"} & {t.split(" ")[1].split(".")[1] for t in tables}
        with target.connect(service) as connection:
            assert _restored_contents(connection, list(tables), list(sequences)) == (
                tables,
                sequences,
            )

    # A snapshot of catalog: stock + active reservations = the initial stock, book by book.
    with target.connect("catalog") as connection:
        rows = connection.execute(
            "SELECT b.id, b.quantity + coalesce(sum(r.quantity)"
            " FILTER (WHERE r.released_at IS NULL), 0)"
            " FROM books b LEFT JOIN reservations r ON r.book_id = b.id"
            " WHERE b.id = ANY(%s) GROUP BY b.id",
            [book_ids],
        ).fetchall()
        assert dict(rows) == dict.fromkeys(book_ids, INITIAL_STOCK)
        restored_books = connection.execute("SELECT count(*), max(id) FROM books").fetchone()
        assert restored_books is not None
        taken = connection.execute(
            "SELECT sum(quantity) FROM reservations WHERE released_at IS NULL"
        ).fetchone()
        assert taken is not None
        assert taken[0] > 0

    # Bounds of the orders snapshot, and every restored row as it is in the source.
    with source.connect("orders") as live, target.connect("orders") as restored:
        live_orders, restored_orders = _orders(live), _orders(restored)
        assert before <= restored_orders.keys()
        assert not after & restored_orders.keys()
        assert restored_orders.keys() <= live_orders.keys()
        confirmed = set()
        for order_id, row in restored_orders.items():
            if row[1] == "confirmed":  # final here (nothing is cancelled): all of it as now
                assert row == live_orders[order_id]
                confirmed.add(order_id)
            else:  # caught pending, mid-placement: confirmed since, with its total and items
                assert row[1] == "pending"
                assert (row[2], row[4]) == (live_orders[order_id][2], live_orders[order_id][4])
        assert before <= confirmed
        assert _items(restored, confirmed) == _items(live, confirmed)
        live_keys, restored_keys = _keys(live), _keys(restored)
        keys_before = {p.key for p in placed if p.order_id in before}
        assert keys_before <= restored_keys.keys() <= live_keys.keys()
        answered = {k for k, row in restored_keys.items() if row[3] is not None}
        assert keys_before <= answered
        assert all(restored_keys[k] == live_keys[k] for k in answered)
        orders_max = max(restored_orders)

    # The services run on the restored databases, at the backup's schema revision: readiness
    # (schema at the code's head) without migrating.
    target.start_services(migrate_on_start=False)
    headers = {"X-API-Key": target.api_key}
    with httpx.Client(timeout=30) as client:
        books = client.get(f"{target.url('catalog')}/books", params={"limit": 1}).json()
        assert books["total"] == restored_books[0]
        # Pending orders are listed only by status, and orders may settle the ones restored
        # pending (its recovery of interrupted placements) while this runs.
        orders = client.get(f"{target.url('orders')}/orders", params={"limit": 1}).json()
        assert len(confirmed) <= orders["total"] <= len(restored_orders)
        for order_id in sorted(confirmed)[:: max(1, len(confirmed) // 5)]:
            found = client.get(f"{target.url('orders')}/orders/{order_id}")
            assert found.status_code == 200, found.text
            assert found.json()["status"] == "confirmed"

        # An Idempotency-Key of a restored order replays it: same order, no second one.
        first = next(p for p in placed if p.order_id in before)
        replay = client.post(
            f"{target.url('orders')}/orders",
            json=first.body,
            headers={**headers, "Idempotency-Key": first.key},
        )
        assert replay.status_code == 201, replay.text
        assert replay.json()["id"] == first.order_id

        # Sequences continue: new rows get fresh ids.
        book = {"title": "After", "author": "B. Writer", "isbn": _isbn13(99), "price": "9.00"}
        created = client.post(
            f"{target.url('catalog')}/books", json={**book, "quantity": 5}, headers=headers
        )
        assert created.status_code == 201, created.text
        assert created.json()["id"] > restored_books[1]
        order = client.post(
            f"{target.url('orders')}/orders",
            json={**CUSTOMER, "items": [{"book_id": created.json()["id"], "quantity": 1}]},
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert order.status_code == 201, order.text
        assert order.json()["id"] > orders_max

    # A second restore into databases that now hold data is refused, and changes nothing.
    with target.connect("orders") as connection:
        counted = _orders(connection)
    again = _run_job(target, restore_job, backups)
    assert again.code == RESTORE_REFUSED_EXIT_CODE, again.log
    assert f"database {databases[0]} is not empty" in again.log
    assert "nothing was changed" in again.log
    with target.connect("orders") as connection:
        assert _orders(connection) == counted

"""`make bench`: catalog and orders on PostgreSQL under wrk, next to a bare FastAPI ceiling.

Knobs (environment): BENCH_SECONDS (per scenario, default 10), BENCH_WARMUP_SECONDS (2),
BENCH_BOOKS (100000; up to millions: seeded with SQL, see bench_seed.py), BENCH_WORKERS (per
server, 2), BENCH_ONLY (e.g. "book,q-common,cursor": only these scenarios, next to the
ceiling; keys: book, reserve, order, q-common, q-rare, relevance, surname, price, offset,
cursor), BENCH_ADMIN_URL (a PostgreSQL URL allowed to create databases; default
postgresql://postgres@127.0.0.1:5432/postgres).
Other variables (e.g. DATABASE_POOL_SIZE, CATALOG_MAX_CONNECTIONS) reach the services as is.
Search scenarios also report their statement's execution time (EXPLAIN ANALYZE, warm).
Results: a table on stdout and .bench/results.json. Exit status 1 when the harness fails
or books are oversold.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_data
import bench_procs
import bench_report
import bench_search
import bench_seed
import bench_wrk

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent
OUTPUT_DIR = REPO / ".bench"
WORKERS = os.environ.get("BENCH_WORKERS", "2")
HOT_BOOK_STOCK = 50
RACE_ATTEMPTS = 200
READY_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Scenario:
    """One wrk load: what to hit and whose processes' CPU the requests cost."""

    name: str
    url: str
    mode: str
    cpu_servers: tuple[bench_procs.Server, ...]
    values_file: Path | None = None
    api_key: str = ""
    key: str = ""  # what BENCH_ONLY names it by (default: its mode)

    def chosen(self, only: str) -> bool:
        """Whether BENCH_ONLY (comma-separated keys; empty: all) includes this scenario."""
        keys = {key.strip() for key in only.split(",") if key.strip()}
        return self.mode == "ceiling" or not keys or (self.key or self.mode) in keys


def _env_number(name: str, default: float) -> float:
    """A positive number from the environment, or the default."""
    value = float(os.environ.get(name, default))
    if value <= 0:
        raise SystemExit(f"{name} must be positive, got {value}")
    return value


def _git(*args: str) -> str:
    """The output of a read-only git command in the repository ("" when git fails)."""
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["/usr/bin/git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )
    return result.stdout.strip()


def _git_commit() -> str:
    """The commit being measured, `+dirty` when services/ has uncommitted changes."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if _git("status", "--porcelain", "--", "services") else "")


def start_servers(
    group: bench_procs.ProcessGroup, catalog_db: str, orders_db: str, api_key: str
) -> tuple[bench_procs.Server, bench_procs.Server, bench_procs.Server]:
    """Migrate both databases, then start the ceiling, catalog and orders (2 workers each)."""
    production = {"HOST": "127.0.0.1", "WORKERS": WORKERS, "LOG_LEVEL": "warning"}
    catalog_env = bench_procs.service_env(**production, DATABASE_URL=catalog_db, API_KEY=api_key)
    orders_env = bench_procs.service_env(**production, DATABASE_URL=orders_db, API_KEY=api_key)
    for name, env in (("catalog", catalog_env), ("orders", orders_env)):
        script = bench_procs.venv_script(f"bookstore-{name}")
        bench_procs.run_checked(f"{name} migrate", [script, "migrate"], env, timeout=120)
    ports = [bench_procs.free_port() for _ in range(3)]
    ceiling = group.start(
        "ceiling",
        [sys.executable, str(REPO / "hack" / "bare_app.py")],
        bench_procs.service_env(**production, PORT=str(ports[0])),
        ports[0],
    )
    catalog = group.start(
        "catalog",
        [bench_procs.venv_script("bookstore-catalog")],
        {**catalog_env, "PORT": str(ports[1])},
        ports[1],
    )
    orders = group.start(
        "orders",
        [bench_procs.venv_script("bookstore-orders")],
        {**orders_env, "PORT": str(ports[2]), "CATALOG_URL": catalog.url},
        ports[2],
    )
    bench_procs.wait_ready(ceiling, "/ceiling", READY_TIMEOUT_SECONDS)
    for server in (catalog, orders):
        bench_procs.wait_ready(server, "/health/ready", READY_TIMEOUT_SECONDS)
    return ceiling, catalog, orders


def measure(
    wrk: str, scenario: Scenario, seconds: float, warmup: float, databases: list[str]
) -> bench_report.ScenarioResult:
    """Warm up, then load the scenario and charge its servers' CPU time to each request."""
    log.info("measuring %s (%.0fs after %.0fs warm-up)", scenario.name, seconds, warmup)
    bench_wrk.run_wrk(
        wrk, scenario.url, scenario.mode, warmup, scenario.values_file, scenario.api_key
    )
    cpu_before = {
        s.name: bench_procs.process_tree_cpu_seconds([s.process.pid]) for s in scenario.cpu_servers
    }
    postgres_before = bench_procs.postgres_backend_ticks(databases)
    machine_before = bench_procs.machine_busy_seconds()
    wrk_before = bench_procs.children_cpu_seconds()
    result = bench_wrk.run_wrk(
        wrk, scenario.url, scenario.mode, seconds, scenario.values_file, scenario.api_key
    )
    cpu_used = {
        s.name: bench_procs.process_tree_cpu_seconds([s.process.pid]) - cpu_before[s.name]
        for s in scenario.cpu_servers
    }
    postgres_used = bench_procs.cpu_seconds_between(
        postgres_before, bench_procs.postgres_backend_ticks(databases)
    )
    # Whatever else kept the cores busy meanwhile (other users of the machine): the noise.
    ours = sum(cpu_used.values()) + postgres_used + bench_procs.children_cpu_seconds() - wrk_before
    other = bench_procs.machine_busy_seconds() - machine_before - ours
    per_request = 1000 / result.requests if result.requests else 0.0
    return bench_report.ScenarioResult(
        scenario=scenario.name,
        requests=result.requests,
        requests_per_second=result.requests_per_second,
        p50_ms=result.p50_us / 1000,
        p99_ms=result.p99_us / 1000,
        cpu_ms_per_request=sum(cpu_used.values()) * per_request,
        cpu_ms_per_request_by_server={name: used * per_request for name, used in cpu_used.items()},
        postgres_cpu_ms_per_request=postgres_used * per_request,
        non_2xx=result.non_2xx,
        socket_errors=result.socket_errors,
        other_cpu_cores=max(0.0, other) * 1_000_000 / result.duration_us,
    )


def run(seconds: float, warmup: float) -> dict[str, Any]:
    """The whole benchmark; every process and database it makes is gone when it returns."""
    wrk = bench_wrk.ensure_wrk()
    admin_url = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    names = [f"bench_catalog_{os.getpid()}", f"bench_orders_{os.getpid()}"]
    server_base = admin_url.rsplit("/", 1)[0]
    api_key = secrets.token_urlsafe(24)
    group = bench_procs.ProcessGroup(log_dir=OUTPUT_DIR / "logs")
    load_before = os.getloadavg()
    with bench_data.temporary_databases(admin_url, names):
        try:
            ceiling, catalog, orders = start_servers(
                group, f"{server_base}/{names[0]}", f"{server_base}/{names[1]}", api_key
            )
            books = int(_env_number("BENCH_BOOKS", 100_000))
            catalog_db = f"{server_base}/{names[0]}"
            corpus = bench_seed.make_corpus()
            log.info("seeding %d books with SQL", books)
            seed_started = time.monotonic()
            seeded = bench_data.seed_catalog(catalog_db, books, HOT_BOOK_STOCK, corpus)
            seed_seconds = time.monotonic() - seed_started
            log.info("seeded %d books in %.1f s", books, seed_seconds)
            ids_file = seeded.write_ids_file(OUTPUT_DIR)
            searches = bench_search.search_scenarios(catalog_db, corpus)
            scenarios = [
                Scenario(bench_report.CEILING, ceiling.url + "/ceiling", "ceiling", (ceiling,)),
                Scenario("GET /books/{id}", catalog.url, "book", (catalog,), ids_file),
                *(
                    Scenario(
                        search.name,
                        catalog.url,
                        "get",
                        (catalog,),
                        bench_search.write_paths(OUTPUT_DIR, search),
                        key=search.key,
                    )
                    for search in searches
                ),
                Scenario(
                    "POST /books/{id}/reservations",
                    catalog.url,
                    "reserve",
                    (catalog,),
                    ids_file,
                    api_key,
                ),
                Scenario("POST /orders", orders.url, "order", (orders, catalog), ids_file, api_key),
            ]
            only = os.environ.get("BENCH_ONLY", "")
            chosen = [s for s in scenarios if s.chosen(only)]
            results = bench_report.with_ratios(
                [measure(wrk, scenario, seconds, warmup, names) for scenario in chosen]
            )
            measured = {s.key for s in chosen}
            timed = [search for search in searches if search.key in measured]
            log.info("timing %d search statements (EXPLAIN ANALYZE)", len(timed))
            statements = bench_search.statement_timings(catalog_db, timed)
            log.info("racing %d orders for %d copies", RACE_ATTEMPTS, HOT_BOOK_STOCK)
            correctness = bench_data.check_no_oversell(
                orders.url, catalog.url, api_key, seeded.hot_book_id, HOT_BOOK_STOCK, RACE_ATTEMPTS
            )
        finally:
            group.stop_all()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "wrk": {"threads": bench_wrk.WRK_THREADS, "connections": bench_wrk.WRK_CONNECTIONS},
        "seconds": seconds,
        "warmup_seconds": warmup,
        "workers_per_service": int(WORKERS),
        "books": books,
        "seed_seconds": round(seed_seconds, 1),
        "scenarios": [result.__dict__ for result in results],
        "targets": bench_report.evaluate_targets(
            results, bench_report.TARGETS + bench_report.search_targets([s.name for s in searches])
        ),
        "statements": bench_report.evaluate_statements(
            {name: timing.execution_ms for name, timing in statements.items()},
            bench_search.MAX_STATEMENT_MS,
            {name: timing.planning_ms for name, timing in statements.items()},
        ),
        "correctness": correctness,
    }


def print_report(document: dict[str, Any]) -> None:
    """The human-readable summary of one run."""
    results = [bench_report.ScenarioResult(**row) for row in document["scenarios"]]
    lines = [
        "",
        bench_report.format_table(results),
        *filter(None, [bench_report.format_cpu_breakdown(results)]),
        "",
        "Targets:",
        bench_report.format_targets(document["targets"]),
        "",
        "Search statements (EXPLAIN ANALYZE, warm, median of "
        f"{bench_search.STATEMENT_RUNS}; each scenario's broadest request):",
        bench_report.format_statements(document["statements"]),
        "",
        "Correctness:",
        bench_report.format_correctness(document["correctness"]),
        "",
        f"Catalog: {document['books']:,} books, seeded with SQL in {document['seed_seconds']} s.",
        f"Caveat: {document['cpus']} CPUs shared by wrk (-t{bench_wrk.WRK_THREADS}), the servers "
        f"and PostgreSQL; load average before the run {document['load_average_before'][0]:.2f}. "
        "CPU ms/req: the service processes (catalog too for POST /orders); PG ms/req: the "
        "PostgreSQL backends serving the bench databases; other CPU: cores kept busy by "
        "processes outside the benchmark meanwhile (noise: compare runs only when it is low); "
        "x ceiling (CPU): the ceiling's CPU per request over the scenario's (services + "
        "PostgreSQL), the share CPU alone would allow, steady under noise.",
        f"JSON: {OUTPUT_DIR / 'results.json'}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def main() -> int:
    """Run the benchmark, print the table, write the JSON; 1 on failure or oversell."""
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per seed request otherwise
    seconds = _env_number("BENCH_SECONDS", 10)
    warmup = _env_number("BENCH_WARMUP_SECONDS", 2)
    started = time.monotonic()
    try:
        with bench_procs.interrupts_as_keyboard_interrupt():
            document = run(seconds, warmup)
    except KeyboardInterrupt:
        log.error("interrupted; every server stopped and the bench databases dropped")
        return 130
    except (bench_procs.ServerFailedError, bench_wrk.WrkError, RuntimeError) as error:
        log.error("%s", error)
        return 1
    document["elapsed_seconds"] = round(time.monotonic() - started, 1)
    bench_report.write_json(OUTPUT_DIR / "results.json", document)
    print_report(document)
    return 0 if document["correctness"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

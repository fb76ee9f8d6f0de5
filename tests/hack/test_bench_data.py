"""The benchmark's throwaway databases on the local PostgreSQL."""

from __future__ import annotations

import os

import bench_data
import bench_procs
import psycopg

ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _existing(names: list[str]) -> set[str]:
    """Which of these databases exist on the server right now."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)
        ).fetchall()
    return {row[0] for row in rows}


def test_bench_databases_exist_during_the_run_and_are_dropped_after_even_when_in_use() -> None:
    names = [f"bench_test_catalog_{os.getpid()}", f"bench_test_orders_{os.getpid()}"]
    with bench_data.temporary_databases(ADMIN_URL, names):
        assert _existing(names) == set(names)
        # A connection left open (like a server that did not stop) must not block the drop.
        lingering = psycopg.connect(ADMIN_URL.rsplit("/", 1)[0] + "/" + names[0])
    assert _existing(names) == set()
    lingering.close()


def test_postgres_cpu_is_counted_only_for_backends_of_the_bench_databases() -> None:
    name = f"bench_test_backends_{os.getpid()}"
    with bench_data.temporary_databases(ADMIN_URL, [name]):
        with psycopg.connect(ADMIN_URL.rsplit("/", 1)[0] + "/" + name) as connection:
            backend_pid = connection.info.backend_pid
            before = bench_procs.postgres_backend_ticks([name])
            connection.execute("SELECT count(*) FROM generate_series(1, 3000000)").fetchone()
            after = bench_procs.postgres_backend_ticks([name])
        assert set(after) == {backend_pid}
        assert bench_procs.cpu_seconds_between(before, after) > 0

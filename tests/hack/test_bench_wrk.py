"""bench.lua under the real wrk: the requests each scenario sends, and the summary it prints."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bench_wrk
import pytest


@dataclass
class Recorded:
    """What the stub server saw."""

    paths: set[str] = field(default_factory=set)
    bodies: set[bytes] = field(default_factory=set)
    api_keys: set[str] = field(default_factory=set)


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    recorded: Recorded

    def _answer(self, status: int) -> None:
        """Record the request and answer with an empty JSON object."""
        self.recorded.paths.add(self.path)
        self.recorded.api_keys.add(self.headers.get("X-API-Key", ""))
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:
        """Every GET succeeds."""
        self._answer(200)

    def do_POST(self) -> None:
        """Every POST is refused (409), so non-2xx counting can be checked."""
        self.recorded.bodies.add(self.rfile.read(int(self.headers["Content-Length"])))
        self._answer(409)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""
        return


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """wrk drops its connections mid-request when time is up: not worth a traceback."""


@pytest.fixture
def wrk() -> str:
    """The wrk binary; the wrk tests skip (saying why) on machines without it."""
    found = shutil.which("wrk")
    if found is None:
        pytest.skip("wrk is not installed (apt-get install -y wrk); make bench installs it")
    return found


@pytest.fixture
def stub_server() -> Iterator[tuple[str, Recorded]]:
    """A local HTTP server that records what wrk sends it."""
    recorded = Recorded()
    handler = type("Handler", (_RecordingHandler,), {"recorded": recorded})
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()


def test_book_scenario_requests_random_ids_from_the_values_file(
    wrk: str, stub_server: tuple[str, Recorded], tmp_path: Path
) -> None:
    url, recorded = stub_server
    values = tmp_path / "ids.txt"
    values.write_text('7\n"abc-def"\n')
    result = bench_wrk.run_wrk(wrk, url, "book", 1, values)
    assert recorded.paths == {"/books/7", "/books/abc-def"}
    assert result.requests > 0
    assert result.non_2xx == 0


def test_order_scenario_posts_json_orders_with_the_api_key_and_counts_non_2xx(
    wrk: str, stub_server: tuple[str, Recorded], tmp_path: Path
) -> None:
    url, recorded = stub_server
    values = tmp_path / "ids.txt"
    values.write_text("42\n")
    result = bench_wrk.run_wrk(wrk, url, "order", 1, values, api_key="bench-key")
    assert recorded.paths == {"/orders"}
    assert recorded.api_keys == {"bench-key"}
    (body,) = recorded.bodies
    assert json.loads(body)["items"] == [{"book_id": 42, "quantity": 1}]
    assert result.non_2xx == result.requests > 0


def test_reserve_scenario_takes_one_copy_of_random_books_with_the_api_key(
    wrk: str, stub_server: tuple[str, Recorded], tmp_path: Path
) -> None:
    url, recorded = stub_server
    values = tmp_path / "ids.txt"
    values.write_text("3\n")
    bench_wrk.run_wrk(wrk, url, "reserve", 1, values, api_key="bench-key")
    assert recorded.paths == {"/books/3/reservations"}
    assert recorded.api_keys == {"bench-key"}
    assert {json.loads(body)["quantity"] for body in recorded.bodies} == {1}


def test_get_scenario_requests_the_paths_of_the_values_file(
    wrk: str, stub_server: tuple[str, Recorded], tmp_path: Path
) -> None:
    url, recorded = stub_server
    values = tmp_path / "paths.txt"
    values.write_text("/books?q=dune\n/books?limit=20&cursor=eyJpZCI6MX0\n")
    result = bench_wrk.run_wrk(wrk, url, "get", 1, values)
    assert recorded.paths == {"/books?q=dune", "/books?limit=20&cursor=eyJpZCI6MX0"}
    assert result.non_2xx == 0

"""The benchmark's pure helpers: ISBNs, wrk summaries, targets and the table."""

from __future__ import annotations

import bench
import bench_data
import bench_report
import bench_wrk
import pytest


@pytest.mark.parametrize(
    ("number", "expected"),
    [(30640615, "9780306406157"), (0, "9780000000002"), (123456789, "9781234567897")],
)
def test_isbn13_has_the_correct_check_digit(number: int, expected: str) -> None:
    assert bench_data.isbn13(number) == expected


def test_seed_isbns_are_unique() -> None:
    assert len({bench_data.isbn13(number) for number in range(5000)}) == 5000


def test_wrk_summary_is_read_from_the_marker_line() -> None:
    output = (
        "Running 1s test @ http://127.0.0.1:1/\n"
        'BENCH_JSON {"requests":10,"duration_us":2000000,"non_2xx":1,"socket_errors":0,'
        '"p50_us":1500,"p90_us":2500,"p99_us":9000,"max_us":12000,"mean_us":1700.5}\n'
    )
    result = bench_wrk.parse_summary(output)
    assert result.requests == 10
    assert result.requests_per_second == 5.0
    assert result.p99_us == 9000


def test_wrk_output_without_summary_is_an_error() -> None:
    with pytest.raises(bench_wrk.WrkError, match="BENCH_JSON"):
        bench_wrk.parse_summary("unable to connect to 127.0.0.1:1 Connection refused\n")


def _result(
    scenario: str, rps: float, p99_ms: float, non_2xx: int = 0
) -> bench_report.ScenarioResult:
    """A measured scenario with the given throughput, p99 and non-2xx count."""
    return bench_report.ScenarioResult(
        scenario=scenario,
        requests=10_000,
        requests_per_second=rps,
        p50_ms=1.0,
        p99_ms=p99_ms,
        cpu_ms_per_request=0.5,
        postgres_cpu_ms_per_request=0.1,
        non_2xx=non_2xx,
        socket_errors=0,
    )


def test_targets_pass_only_with_enough_throughput_low_p99_and_no_errors() -> None:
    results = bench_report.with_ratios(
        [
            _result(bench_report.CEILING, 10_000, 5),
            _result("GET /books/{id}", 3_000, 20),
            _result("POST /orders", 500, 100, non_2xx=500),
        ]
    )
    verdicts = {v["scenario"]: v["passed"] for v in bench_report.evaluate_targets(results)}
    assert verdicts == {"GET /books/{id}": True, "POST /orders": False}


def test_slow_p99_misses_the_target_even_with_enough_throughput() -> None:
    results = bench_report.with_ratios(
        [_result(bench_report.CEILING, 10_000, 5), _result("GET /books/{id}", 9_000, 40)]
    )
    verdicts = {v["scenario"]: v["passed"] for v in bench_report.evaluate_targets(results)}
    assert verdicts["GET /books/{id}"] is False
    assert verdicts["POST /orders"] is False


def test_table_lists_every_scenario_with_its_ratio_of_the_ceiling() -> None:
    results = bench_report.with_ratios(
        [_result(bench_report.CEILING, 10_000, 5), _result("GET /books/{id}", 2_500, 20)]
    )
    table = bench_report.format_table(results)
    assert "GET /books/{id}" in table
    assert "25.0%" in table
    assert "100.0%" in table


def test_cpu_breakdown_names_each_server_of_a_cross_service_scenario() -> None:
    order = bench_report.ScenarioResult(
        **{
            **_result("POST /orders", 500, 100).__dict__,
            "cpu_ms_per_request": 3.0,
            "cpu_ms_per_request_by_server": {"orders": 2.0, "catalog": 1.0},
        }
    )
    breakdown = bench_report.format_cpu_breakdown([_result("GET /books/{id}", 1, 1), order])
    assert breakdown == "  POST /orders: orders 2.00 + catalog 1.00 = 3.00 CPU ms/req"


def test_cpu_ratio_compares_the_ceilings_cpu_per_request_with_services_plus_postgres() -> None:
    ceiling = _result(bench_report.CEILING, 10_000, 5)
    book = bench_report.ScenarioResult(
        **{**_result("GET /books/{id}", 2_000, 20).__dict__, "cpu_ms_per_request": 1.9}
    )
    _, measured = bench_report.with_ratios([ceiling, book])
    # The ceiling's own CPU (0.5 ms) over the scenario's services + PostgreSQL (1.9 + 0.1).
    assert measured.cpu_ratio_of_ceiling == 0.5 / (1.9 + 0.1)
    assert measured.ratio_of_ceiling == 0.2


def test_every_search_scenario_needs_a_tenth_of_the_ceiling_and_p99_within_100_ms() -> None:
    results = bench_report.with_ratios(
        [
            _result(bench_report.CEILING, 10_000, 5),
            _result("GET /books?q=<rare word>", 1_500, 60),
            _result("GET /books page 5000 by offset", 900, 60),
            _result("GET /books?q=&sort=relevance", 2_000, 150),
        ]
    )
    targets = bench_report.search_targets(
        [
            "GET /books?q=<rare word>",
            "GET /books page 5000 by offset",
            "GET /books?q=&sort=relevance",
        ]
    )
    verdicts = {v["scenario"]: v["passed"] for v in bench_report.evaluate_targets(results, targets)}
    assert verdicts == {
        "GET /books?q=<rare word>": True,
        "GET /books page 5000 by offset": False,  # 9% of the ceiling
        "GET /books?q=&sort=relevance": False,  # p99 150 ms
    }


def test_search_statements_pass_within_their_time_and_are_listed_with_it() -> None:
    verdicts = bench_report.evaluate_statements({"q": 19.5, "relevance": 42.0}, max_ms=20)
    assert [v["passed"] for v in verdicts] == [True, False]
    assert bench_report.format_statements(verdicts).splitlines() == [
        "  PASS  q: 19.5 ms (<= 20 ms)",
        "  MISS  relevance: 42.0 ms (<= 20 ms)",
    ]
    planned = bench_report.evaluate_statements({"q": 19.5}, max_ms=20, planning={"q": 0.64})
    assert bench_report.format_statements(planned) == (
        "  PASS  q: 19.5 ms (<= 20 ms), planned in 0.6 ms"
    )


def test_bench_only_names_scenarios_by_key_and_always_keeps_the_ceiling() -> None:
    ceiling = bench.Scenario(bench_report.CEILING, "http://x", "ceiling", ())
    common = bench.Scenario("q common", "http://x", "get", (), key="q-common")
    book = bench.Scenario("GET /books/{id}", "http://x", "book", ())
    chosen = [s.name for s in (ceiling, common, book) if s.chosen("q-common, cursor")]
    assert chosen == [bench_report.CEILING, "q common"]
    assert all(s.chosen("") for s in (ceiling, common, book))
    assert not common.chosen("q")  # whole keys, not substrings

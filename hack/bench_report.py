"""Results of `make bench`: per-scenario rows, the targets, the table and the JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CEILING = "ceiling (bare FastAPI)"
MAX_ERROR_FRACTION = 0.001


@dataclass(frozen=True)
class Target:
    """A scenario's goal: a share of the ceiling's throughput and a p99 bound."""

    scenario: str
    min_ratio: float
    max_p99_ms: float


SEARCH_MIN_RATIO = 0.10
SEARCH_MAX_P99_MS = 100.0
TARGETS = (
    Target("GET /books/{id}", min_ratio=0.25, max_p99_ms=25.0),
    Target("POST /orders", min_ratio=0.06, max_p99_ms=150.0),
)


def search_targets(scenarios: list[str]) -> tuple[Target, ...]:
    """Every search scenario: 10% of the ceiling's throughput, p99 within 100 ms."""
    return tuple(Target(name, SEARCH_MIN_RATIO, SEARCH_MAX_P99_MS) for name in scenarios)


@dataclass(frozen=True)
class ScenarioResult:
    """One measured scenario, in the units the table prints."""

    scenario: str
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    postgres_cpu_ms_per_request: float
    non_2xx: int
    socket_errors: int
    cpu_ms_per_request_by_server: dict[str, float] = field(default_factory=dict)
    other_cpu_cores: float = 0.0
    ratio_of_ceiling: float = 1.0
    cpu_ratio_of_ceiling: float = 1.0


def _ratio(part: float, whole: float) -> float:
    """part / whole, 0 when whole is 0."""
    return part / whole if whole else 0.0


def with_ratios(results: list[ScenarioResult]) -> list[ScenarioResult]:
    """The results with each scenario's throughput as a fraction of the ceiling's.

    Also the CPU ratio: the ceiling's CPU per request over the scenario's (services and
    PostgreSQL), i.e. its share of the ceiling if CPU were the only limit. Unlike req/s it
    barely moves when other work shares the machine.
    """
    ceiling = next((r for r in results if r.scenario == CEILING), None)
    rps = ceiling.requests_per_second if ceiling else 0.0
    cpu = ceiling.cpu_ms_per_request if ceiling else 0.0
    return [
        ScenarioResult(
            **{
                **asdict(r),
                "ratio_of_ceiling": _ratio(r.requests_per_second, rps),
                "cpu_ratio_of_ceiling": _ratio(
                    cpu, r.cpu_ms_per_request + r.postgres_cpu_ms_per_request
                ),
            }
        )
        for r in results
    ]


def evaluate_targets(
    results: list[ScenarioResult], targets: tuple[Target, ...] = TARGETS
) -> list[dict[str, Any]]:
    """PASS/MISS per target: enough throughput, a low enough p99, (almost) no errors."""
    by_name = {result.scenario: result for result in results}
    verdicts = []
    for target in targets:
        result = by_name.get(target.scenario)
        passed = result is not None and (
            result.ratio_of_ceiling >= target.min_ratio
            and result.p99_ms <= target.max_p99_ms
            and result.non_2xx + result.socket_errors <= MAX_ERROR_FRACTION * result.requests
        )
        verdicts.append({**asdict(target), "measured": result is not None, "passed": passed})
    return verdicts


def format_table(results: list[ScenarioResult]) -> str:
    """The side-by-side table of every scenario."""
    header = (
        "scenario",
        "req/s",
        "x ceiling",
        "x ceiling (CPU)",
        "p50 ms",
        "p99 ms",
        "CPU ms/req",
        "PG ms/req",
        "non-2xx",
        "errors",
        "other CPU",
    )
    rows = [
        (
            r.scenario,
            f"{r.requests_per_second:,.0f}",
            f"{r.ratio_of_ceiling:.1%}",
            f"{r.cpu_ratio_of_ceiling:.1%}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.cpu_ms_per_request:.2f}",
            f"{r.postgres_cpu_ms_per_request:.2f}",
            str(r.non_2xx),
            str(r.socket_errors),
            f"{r.other_cpu_cores:.2f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        )
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_cpu_breakdown(results: list[ScenarioResult]) -> str:
    """Where the CPU of scenarios that cross services goes, server by server."""
    return "\n".join(
        f"  {r.scenario}: "
        + " + ".join(f"{name} {ms:.2f}" for name, ms in r.cpu_ms_per_request_by_server.items())
        + f" = {r.cpu_ms_per_request:.2f} CPU ms/req"
        for r in results
        if len(r.cpu_ms_per_request_by_server) > 1
    )


def format_targets(verdicts: list[dict[str, Any]]) -> str:
    """One line per target with PASS or MISS."""
    return "\n".join(
        f"  {'PASS' if v['passed'] else 'MISS'}  {v['scenario']}: >= {v['min_ratio']:.0%} of "
        f"ceiling, p99 <= {v['max_p99_ms']:.0f} ms, errors <= {MAX_ERROR_FRACTION:.1%}"
        + ("" if v["measured"] else " (not measured)")
        for v in verdicts
    )


def evaluate_statements(
    timings: dict[str, float], max_ms: float, planning: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """PASS/MISS per search statement: its execution time (EXPLAIN ANALYZE) within max_ms;
    its planning time beside it when given (not part of the target)."""
    return [
        {"scenario": name, "ms": ms, "max_ms": max_ms, "passed": ms <= max_ms}
        | ({"planning_ms": planning[name]} if planning is not None else {})
        for name, ms in timings.items()
    ]


def format_statements(verdicts: list[dict[str, Any]]) -> str:
    """One line per search statement with its execution time and PASS or MISS."""
    return "\n".join(
        f"  {'PASS' if v['passed'] else 'MISS'}  {v['scenario']}: {v['ms']:.1f} ms "
        f"(<= {v['max_ms']:.0f} ms)"
        + (f", planned in {v['planning_ms']:.1f} ms" if "planning_ms" in v else "")
        for v in verdicts
    )


def format_correctness(check: dict[str, Any]) -> str:
    """One line for the oversell check."""
    verdict = "PASS" if check["passed"] else "MISS"
    return (
        f"  {verdict}  {check['attempts']} concurrent 1-copy orders at a book with "
        f"{check['stock']} copies: {check['confirmed']} confirmed, final stock "
        f"{check['final_stock']}, statuses {check['statuses']}"
    )


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write the results document (for CI artefacts and comparisons between runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")

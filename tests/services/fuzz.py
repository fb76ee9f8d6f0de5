"""Schemathesis fuzzing shared by both services: every operation, valid and invalid input.

Operations are parametrized from the app's own schema and driven with hypothesis, because
schemathesis' pytest `from_fixture` loader does not run under pytest 9.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

MAX_EXAMPLES = 25  # per operation and mode: bounded so CI stays fast


def operations(openapi: dict[str, Any]) -> dict[str, Any]:
    """`"METHOD /path"` -> schemathesis operation, for every operation in the schema."""
    schema = schemathesis.openapi.from_dict(openapi)
    return {
        f"{op.method.upper()} {op.path}": op
        for op in (result.ok() for result in schema.get_all_operations())
    }


def cases(ops: Mapping[str, Any]) -> list[tuple[str, GenerationMode]]:
    """(operation, mode) pairs; operations without any input have no invalid form."""
    return [
        (name, mode)
        for name, op in sorted(ops.items())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if mode is GenerationMode.POSITIVE or op.path_parameters or op.query or op.body
    ]


def assert_no_server_error(
    operation: Any, mode: GenerationMode, base_url: str, headers: Mapping[str, str]
) -> None:
    """Send generated requests for one operation to a live server; none may answer 5xx."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers=dict(headers), timeout=10)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"

    no_server_error()

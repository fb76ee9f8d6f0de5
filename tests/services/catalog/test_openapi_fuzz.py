"""Property-based fuzzing of every catalog OpenAPI operation: no input ever yields a 5xx.

schemathesis generates valid (positive) and invalid (negative) requests from the schema and
sends them to a real catalog server. (Its pytest `from_fixture` loader does not work with
pytest 9, so operations are parametrized from the app's schema and driven with hypothesis.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import schemathesis
from bookstore_catalog.app import create_app
from bookstore_catalog.config import CatalogSettings
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.services.conftest import LiveCatalog, start_catalog_server

SCHEMA = schemathesis.openapi.from_dict(
    create_app(CatalogSettings(database_url="postgresql://unused@127.0.0.1:1/unused")).openapi()
)
OPERATIONS = {
    f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in SCHEMA.get_all_operations())
}
# Negative generation needs some input to break: operations without any have no invalid form.
CASES = [
    (name, mode)
    for name, op in sorted(OPERATIONS.items())
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or op.path_parameters or op.query or op.body
]


@pytest.fixture(scope="module")
def fuzz_catalog(make_database: Callable[[str], str]) -> Iterator[LiveCatalog]:
    """A real catalog server with its own database, just for fuzzing."""
    yield from start_catalog_server(make_database("fuzz_catalog"))


@pytest.mark.parametrize("with_key", [True, False], ids=["with-key", "without-key"])
@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_no_generated_request_causes_a_server_error(
    fuzz_catalog: LiveCatalog, operation: str, with_key: bool, mode: GenerationMode
) -> None:
    headers = {"X-API-Key": fuzz_catalog.api_key} if with_key else {}

    @given(case=OPERATIONS[operation].as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case: schemathesis.Case) -> None:
        response = case.call(base_url=fuzz_catalog.base_url, headers=headers, timeout=10)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"

    no_server_error()

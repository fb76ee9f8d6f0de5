"""Property-based fuzzing of every catalog OpenAPI operation: no input ever yields a 5xx.

schemathesis generates valid (positive) and invalid (negative) requests from the schema and
sends them to a real catalog server. (Its pytest `from_fixture` loader does not work with
pytest 9, so operations are parametrized from the app's schema and driven with hypothesis.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from bookstore_catalog.app import create_app
from bookstore_catalog.config import CatalogSettings
from schemathesis import GenerationMode

from tests.services.conftest import LiveCatalog, start_catalog_server
from tests.services.fuzz import assert_no_server_error, cases, operations

OPERATIONS = operations(
    create_app(CatalogSettings(database_url="postgresql://unused@127.0.0.1:1/unused")).openapi()
)
CASES = cases(OPERATIONS)


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

    assert_no_server_error(OPERATIONS[operation], mode, fuzz_catalog.base_url, headers)

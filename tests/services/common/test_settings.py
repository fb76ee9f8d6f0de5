"""ServiceSettings: database URL handling (driver, password override, sslmode)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bookstore_catalog.config import CatalogSettings
from bookstore_common.settings import ServiceSettings


def test_plain_postgres_url_gets_the_asyncpg_driver() -> None:
    settings = ServiceSettings(database_url="postgresql://shop:pw@db:5432/catalog")
    url, connect_args = settings.async_engine_args()
    assert url.drivername == "postgresql+asyncpg"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "shop",
        "pw",
        "db",
        5432,
        "catalog",
    )
    assert connect_args == {}


def test_database_password_replaces_the_url_password_without_escaping() -> None:
    settings = ServiceSettings(
        database_url="postgresql://shop:old@db/catalog", database_password="p@ss/w:rd#%"
    )
    async_url, _ = settings.async_engine_args()
    sync_url, _ = settings.sync_engine_args()
    assert async_url.password == "p@ss/w:rd#%"
    assert sync_url.password == "p@ss/w:rd#%"


@pytest.mark.parametrize(
    "mode", ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
)
def test_sslmode_is_passed_to_both_drivers(mode: str) -> None:
    settings = ServiceSettings(database_url=f"postgresql://u:p@db/x?sslmode={mode}")
    async_url, async_args = settings.async_engine_args()
    sync_url, sync_args = settings.sync_engine_args()
    assert async_args == {"ssl": mode}
    assert sync_args == {"sslmode": mode}
    assert "sslmode" not in async_url.query
    assert sync_url.drivername == "postgresql+psycopg"


def test_unknown_sslmode_is_rejected() -> None:
    settings = ServiceSettings(database_url="postgresql://u:p@db/x?sslmode=sometimes")
    with pytest.raises(ValueError, match="sslmode"):
        settings.async_engine_args()


def test_non_postgres_url_is_rejected() -> None:
    settings = ServiceSettings(database_url="mysql://u:p@db/x")
    with pytest.raises(ValueError, match="postgresql"):
        settings.async_engine_args()


def test_without_database_url_an_sqlite_file_is_used(tmp_path: Path) -> None:
    settings = ServiceSettings(sqlite_path=tmp_path / "dev.db")
    url, _ = settings.async_engine_args()
    assert settings.uses_sqlite
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == str(tmp_path / "dev.db")


def test_safe_description_hides_the_password() -> None:
    settings = ServiceSettings(
        database_url="postgresql://u:secret1@db/x", database_password="secret2"
    )
    description = settings.safe_database_description()
    assert "secret" not in description
    assert "db" in description


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "from-env")
    monkeypatch.setenv("WORKERS", "2")
    monkeypatch.setenv("SAMPLE_DATA", "true")
    settings = CatalogSettings()
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "from-env"
    assert (settings.workers, settings.sample_data, settings.port) == (2, True, 8000)
    assert "from-env" not in repr(settings)


def test_log_level_is_case_insensitive_and_checked() -> None:
    assert ServiceSettings(log_level="WARNING").log_level == "warning"
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        ServiceSettings(log_level="loud")


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "")
    monkeypatch.setenv("DATABASE_URL", " ")
    monkeypatch.setenv("DATABASE_PASSWORD", "")
    settings = ServiceSettings()
    assert settings.api_key is None
    assert settings.database_password is None
    assert settings.uses_sqlite

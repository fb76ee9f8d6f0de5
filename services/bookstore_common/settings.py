"""Environment configuration shared by both services (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, JsonValue, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
SSL_MODES: frozenset[str] = frozenset(
    ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
)

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

# Marks a setting that `migrate` reads too (every setting is read by `serve`); see cli.py.
MIGRATE: dict[str, JsonValue] = {"migrate": True}


class ServiceSettings(BaseSettings):
    """Settings every service reads from its environment; services subclass it."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:port/db (optional ?sslmode=require); "
        "unset: an embedded SQLite file (dev mode)",
        json_schema_extra=MIGRATE,
    )
    database_password: SecretStr | None = Field(
        default=None,
        description="the database password, replacing any in DATABASE_URL",
        json_schema_extra=MIGRATE,
    )
    sqlite_path: Path = Field(
        default=Path(".dev/service.db"),
        description="the SQLite file used when DATABASE_URL is unset",
        json_schema_extra=MIGRATE,
    )
    database_pool_size: int = Field(
        default=10, ge=1, le=200, description="database connections per worker process"
    )
    database_pool_timeout: float = Field(
        default=10.0, gt=0, description="seconds a request waits for a free connection"
    )
    ready_timeout: float = Field(
        default=2.0, gt=0, description="seconds /health/ready waits for the database"
    )
    startup_timeout: float = Field(
        default=120.0,
        ge=0,
        description="seconds to wait for an unreachable database at start before exiting 1",
        json_schema_extra=MIGRATE,
    )
    migrate_on_start: bool = Field(
        default=True,
        description="serve migrates the schema to head before serving (dev mode); false: "
        "never (in Kubernetes a migration Job runs `migrate` once per version), and "
        "/health/ready answers 503 while the schema is older than this version needs",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="the X-API-Key that writes must carry; unset: writes are refused (503)",
    )
    host: str = Field(
        default="0.0.0.0",  # noqa: S104 - a container must listen on every interface
        description="the address to listen on",
    )
    port: int = Field(default=8000, ge=1, le=65535, description="the HTTP port")
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    log_level: str = Field(
        default="info",
        description=f"one of {', '.join(LOG_LEVELS)} (logs are JSON lines)",
        json_schema_extra=MIGRATE,
    )

    @field_validator("database_url", "database_password", "api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable means "not set" (an empty API key must never match)."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        """LOG_LEVEL is one of Python's level names, in any case; stored lower-case."""
        level = value.strip().lower()
        if level not in LOG_LEVELS:
            raise ValueError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        return level

    @property
    def uses_sqlite(self) -> bool:
        """Whether no DATABASE_URL is set and the embedded SQLite file is used (dev mode)."""
        return self.database_url is None

    def _postgres_url(self) -> tuple[URL, str | None]:
        """Parse DATABASE_URL, apply DATABASE_PASSWORD, and split off `sslmode`."""
        assert self.database_url is not None
        try:
            url = make_url(self.database_url.get_secret_value())
        except ArgumentError:
            raise ValueError("DATABASE_URL is not a valid URL") from None  # never echo it
        if url.get_backend_name() not in ("postgresql", "postgres"):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        if self.database_password is not None:
            url = url.set(password=self.database_password.get_secret_value())
        query = dict(url.query)
        sslmode = query.pop("sslmode", None)
        if isinstance(sslmode, tuple):
            sslmode = sslmode[-1]
        if sslmode is not None and sslmode not in SSL_MODES:
            raise ValueError(f"DATABASE_URL sslmode must be one of {sorted(SSL_MODES)}")
        return url.set(query=query), sslmode

    def async_engine_args(self) -> tuple[URL, dict[str, Any]]:
        """Return the async driver URL (asyncpg or aiosqlite) and its `connect_args`."""
        if self.database_url is None:
            return URL.create("sqlite+aiosqlite", database=str(self.sqlite_path)), {}
        url, sslmode = self._postgres_url()
        connect_args: dict[str, Any] = {}
        if sslmode is not None:
            connect_args["ssl"] = sslmode  # asyncpg takes libpq's sslmode names as `ssl`
        return url.set(drivername="postgresql+asyncpg"), connect_args

    def sync_engine_args(self) -> tuple[URL, dict[str, Any]]:
        """Return the sync driver URL (psycopg or sqlite) used by migrations."""
        if self.database_url is None:
            return URL.create("sqlite", database=str(self.sqlite_path)), {}
        url, sslmode = self._postgres_url()
        connect_args: dict[str, Any] = {}
        if sslmode is not None:
            connect_args["sslmode"] = sslmode
        return url.set(drivername="postgresql+psycopg"), connect_args

    def safe_database_description(self) -> str:
        """Describe the database for logs without the password."""
        if self.database_url is None:
            return f"sqlite:{self.sqlite_path}"
        url, _ = self._postgres_url()
        return url.render_as_string(hide_password=True)

"""Operator configuration, read once from the environment (prefix ``BOOKSTORE_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bookstore_operator import __version__


class OperatorSettings(BaseSettings):
    """What the operator needs to know that is not in a Bookstore's spec."""

    model_config = SettingsConfigDict(env_prefix="BOOKSTORE_", frozen=True)

    image_repository: str = Field(
        "ghcr.io/bookstore-operator/bookstore",
        description="Services image used when a Bookstore sets no spec.image.",
    )
    default_version: str = Field(
        __version__, description="Services image tag used when a Bookstore sets no spec.version."
    )
    image_pull_policy: str = Field("IfNotPresent", description="imagePullPolicy of every child.")
    resync_seconds: float = Field(300.0, gt=0, description="Period of the drift-repair timer.")
    api_timeout_seconds: float = Field(
        30.0, gt=0, description="Read timeout of every API call (connect: at most 5 s)."
    )
    backup_check_seconds: float = Field(
        30.0,
        gt=0,
        description="How often each Bookstore's backup schedule is checked for a slot that came"
        " (a check reads no API unless a backup is due).",
    )
    backup_cleanup_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="How long a deleted BookstoreBackup waits for the Job removing its files"
        " before it goes anyway (with a Warning event).",
    )
    final_backup_timeout_seconds: float = Field(
        900.0,
        gt=0,
        description="How long a deleted Bookstore with spec.backup.finalBackup waits for its last"
        " backup before it goes anyway (with a Warning event); counted from the first attempt.",
    )

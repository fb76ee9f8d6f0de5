"""`--help` of both services: each command described, every environment variable listed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bookstore_catalog.config import CatalogSettings
from bookstore_common import cli
from bookstore_common.settings import ServiceSettings
from bookstore_orders.config import OrdersSettings

SERVICES: dict[str, type[ServiceSettings]] = {
    "catalog": CatalogSettings,
    "orders": OrdersSettings,
}
# What the README and DESIGN promise a user can set, whatever else the classes grow.
DOCUMENTED = ("DATABASE_URL", "DATABASE_PASSWORD", "API_KEY", "PORT", "HOST", "LOG_LEVEL")


def help_of(service: str, *args: str) -> str:
    """The console script's --help output (it exits 0)."""
    script = Path(sys.executable).with_name(f"bookstore-{service}")
    result = subprocess.run(
        [str(script), *args, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def flat(text: str) -> str:
    """Help text with its line wrapping undone, to search for phrases."""
    return " ".join(text.split())


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_top_level_help_describes_both_commands_and_every_environment_variable(
    service: str,
) -> None:
    text = flat(help_of(service))
    assert f"usage: bookstore-{service} [-h] {{serve,migrate}}" in text
    for summary in cli.COMMANDS.values():
        assert summary in text
    for field_name in SERVICES[service].model_fields:
        assert f" {field_name.upper()} " in text
    assert all(f" {name} " in text for name in DOCUMENTED)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_serve_help_lists_the_service_specific_variables(service: str) -> None:
    text = flat(help_of(service, "serve"))
    assert f"bookstore-{service} serve: {cli.COMMANDS['serve']}." in text
    assert "environment variables read by serve [default]:" in text
    specific = "CATALOG_URL" if service == "orders" else "SAMPLE_DATA"
    assert f" {specific} " in text
    assert " PROMETHEUS_MULTIPROC_DIR " in text


def test_orders_help_gives_catalog_url_with_its_default() -> None:
    text = flat(help_of("orders"))
    assert "CATALOG_URL catalog's base URL; orders reserve stock there with API_KEY" in text
    assert "[http://127.0.0.1:8001]" in text
    assert "SAMPLE_DATA" not in text  # catalog only


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_migrate_help_lists_only_what_migrate_reads(service: str) -> None:
    text = cli.environment_help(SERVICES[service], "migrate")
    names = {
        line.split()[0]
        for line in text.splitlines()[1:]
        if line.startswith("  ") and not line.startswith("   ")
    }
    expected = {"DATABASE_URL", "DATABASE_PASSWORD", "SQLITE_PATH", "STARTUP_TIMEOUT", "LOG_LEVEL"}
    assert names == expected | ({"SAMPLE_DATA"} if service == "catalog" else set())


@pytest.mark.parametrize("settings_class", [CatalogSettings, OrdersSettings])
def test_every_setting_has_a_description_for_the_help(
    settings_class: type[ServiceSettings],
) -> None:
    undescribed = [
        name for name, field in settings_class.model_fields.items() if not field.description
    ]
    assert undescribed == []


def test_no_command_means_serve_and_an_unknown_command_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = cli.build_parser("catalog", CatalogSettings)
    assert parser.parse_args([]).command == "serve"
    assert parser.parse_args(["migrate"]).command == "migrate"
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["deploy"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'deploy'" in capsys.readouterr().err


def test_help_exits_before_reading_settings_or_touching_a_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "not-a-port")  # would fail settings validation if read
    with pytest.raises(SystemExit) as exit_info:
        cli.run_cli(
            "orders",
            settings_factory=OrdersSettings,
            app_factory="unused:unused",
            migrate=lambda _: pytest.fail("--help must not migrate"),
            argv=["migrate", "--help"],
        )
    assert exit_info.value.code == 0
    assert "environment variables read by migrate" in capsys.readouterr().out

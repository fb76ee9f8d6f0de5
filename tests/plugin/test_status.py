"""`kubectl bookstore status` against recorded API objects: the key facts on one screen."""

from __future__ import annotations

import pathlib
import re

from tests.plugin.conftest import serving

SCREEN_LINES = 60  # one screen


def section(out: str, title: str) -> list[str]:
    """The lines of one section (`Title:` up to the next blank line)."""
    blocks = out.split("\n\n")
    found = [b for b in blocks if b.startswith(f"{title}:")]
    assert found, f"no {title} section in:\n{out}"
    return found[0].splitlines()[1:]


def row(lines: list[str], first: str) -> list[str]:
    """A table row's cells (split at runs of 2+ spaces), found by its first cell."""
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in {lines}")


async def test_status_of_a_healthy_bookstore_shows_every_part(tmp_path: pathlib.Path) -> None:
    async with serving("healthy", tmp_path) as served:
        code, out, err = await served.run("status", "downtown")
    assert (code, err) == (0, "")
    assert len(out.splitlines()) <= SCREEN_LINES, out
    head = out.split("\n\n")[0].splitlines()
    assert re.split(r"\s{2,}", head[0]) == ["Bookstore", "shop/downtown"]
    assert re.split(r"\s{2,}", head[1]) == ["Phase", "Ready"]
    assert "Version     spec 0.1.0, serving 0.1.0" in out
    assert row(section(out, "Conditions"), "Ready")[:3] == ["Ready", "True", "AllComponentsReady"]
    assert row(section(out, "Conditions"), "LastBackupSucceeded")[1:3] == [
        "True",
        "BackupCompleted",
    ]
    components = section(out, "Components")
    assert row(components, "database")[1:3] == ["StatefulSet/downtown-postgres", "1/1"]
    assert row(components, "orders")[1:5] == [
        "Deployment/downtown-orders",
        "2/2",
        "2",
        "2..10 (now 2, wants 2)",
    ]
    endpoints = "\n".join(section(out, "Endpoints"))
    assert "http://downtown-catalog.shop.svc:8000" in endpoints
    assert "https://downtown.books.example.com/orders (address 203.0.113.40)" in endpoints
    backups = section(out, "Backups")
    assert "  last success: downtown-202611280300 at 2026-11-28T03:00:41Z" in backups
    assert row(backups, "downtown-202611280300")[1:3] == ["Completed", "19.7Ki"]
    events = "\n".join(section(out, "Events"))
    assert "BackupCreated" in events
    assert "uptown" not in out  # the other Bookstore's pod and events


async def test_status_of_a_failed_migration_shows_versions_jobs_and_events(
    tmp_path: pathlib.Path,
) -> None:
    async with serving("failed_migration", tmp_path) as served:
        code, out, _ = await served.run("status", "downtown")
    assert code == 0
    assert "Phase       Degraded" in out
    assert "Version     spec 0.2.0, serving 0.1.0, target 0.2.0" in out
    assert row(section(out, "Conditions"), "Ready")[1:3] == ["False", "MigrationFailed"]
    jobs = section(out, "Jobs")
    assert row(jobs, "downtown-orders-migrate-0-2-0-8c1e4b")[1] == "Failed"
    assert row(jobs, "downtown-catalog-migrate-0-2-0-8c1e4b")[1] == "Complete"
    events = section(out, "Events")
    assert "Warning  MigrationFailed" in events[-1], events  # the newest event comes last


async def test_status_before_the_database_exists_shows_what_is_missing(
    tmp_path: pathlib.Path,
) -> None:
    async with serving("pending_pvc", tmp_path) as served:
        code, out, _ = await served.run("status", "downtown")
    assert code == 0
    components = section(out, "Components")
    assert row(components, "database")[1:3] == ["StatefulSet/downtown-postgres", "0/1"]
    assert row(components, "catalog")[1] == "(missing)"
    assert "Backups:" not in out
    assert "ProvisioningFailed (x46)" in "\n".join(section(out, "Events"))


async def test_status_without_the_right_to_list_events_says_so(tmp_path: pathlib.Path) -> None:
    async with serving("healthy", tmp_path, refused=frozenset({"events"})) as served:
        code, out, err = await served.run("status", "downtown")
    assert (code, err) == (0, "")
    assert "Events: none recent" in out
    assert out.endswith("Not shown (not allowed to list): events\n")
    assert row(section(out, "Components"), "orders")[2] == "2/2"

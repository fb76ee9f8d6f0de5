"""Backup schedules: cron slots in UTC, one catch-up after downtime, and the failing deadline."""

from __future__ import annotations

import datetime
import itertools

import pytest
from bookstore_operator.schedules import (
    InvalidScheduleError,
    Schedule,
    format_time,
    parse_time,
    requested_backup_name,
    slot_backup_name,
)


def at(text: str) -> datetime.datetime:
    moment = parse_time(text)
    assert moment is not None
    return moment


DAILY = Schedule.parse("0 3 * * *")


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("0 3 * * *", "0 3 * * *"),
        ("*/15 * * * 1-5", "*/15 * * * 1-5"),
        ("@daily", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
        ("@weekly", "0 0 * * 0"),
        ("  0 3 * * *  ", "0 3 * * *"),
    ],
)
def test_cron_expressions_and_shorthands_parse(text: str, expression: str) -> None:
    assert Schedule.parse(text).expression == expression


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("61 * * * *", "Bad minute"),
        ("0 25 * * *", "Bad hour"),
        ("0 3 31 2 *", "Bad day-of-month"),
        ("0 3 * 13 *", "Bad month"),
        ("a b c d e", "Bad minute"),
        ("0 0 3 * * *", "6 fields, five are needed"),
        ("0 3 * *", "4 fields, five are needed"),
        ("@fortnightly", "1 fields, five are needed"),
    ],
)
def test_an_invalid_schedule_says_why(text: str, why: str) -> None:
    with pytest.raises(InvalidScheduleError, match=why):
        Schedule.parse(text)


def test_latest_slot_is_at_or_before_now_and_following_is_strictly_after() -> None:
    assert DAILY.latest(at("2026-11-21T03:00:00Z")) == at("2026-11-21T03:00:00Z")
    assert DAILY.latest(at("2026-11-21T02:59:59Z")) == at("2026-11-20T03:00:00Z")
    assert DAILY.following(at("2026-11-21T03:00:00Z")) == at("2026-11-22T03:00:00Z")
    assert DAILY.following(at("2026-11-21T02:59:59.900Z")) == at("2026-11-21T03:00:00Z")


def test_slots_are_utc_so_a_daylight_saving_change_neither_skips_nor_doubles_one() -> None:
    # 2026-03-29 and 2026-10-25 are the European DST changes; UTC has none.
    hourly = Schedule.parse("30 * * * *")
    for day in ("2026-03-29", "2026-10-25"):
        slot, slots = at(f"{day}T00:00:00Z"), []
        for _ in range(4):
            found = hourly.following(slot)
            assert found is not None
            slots.append(found)
            slot = found
        gaps = {b - a for a, b in itertools.pairwise(slots)}
        assert gaps == {datetime.timedelta(hours=1)}


def test_a_new_schedule_takes_no_backup_for_a_slot_before_it_started() -> None:
    since = at("2026-11-21T10:00:00Z")
    assert DAILY.due(None, since, since) is None
    assert DAILY.due(None, since, at("2026-11-22T02:59:00Z")) is None
    assert DAILY.due(None, since, at("2026-11-22T03:00:00Z")) == at("2026-11-22T03:00:00Z")


def test_a_handled_slot_is_not_due_again() -> None:
    since, slot = at("2026-11-01T00:00:00Z"), at("2026-11-21T03:00:00Z")
    assert DAILY.due(slot, since, at("2026-11-21T03:00:30Z")) is None
    assert DAILY.due(slot, since, at("2026-11-22T02:59:59Z")) is None


def test_after_downtime_only_the_latest_missed_slot_is_due_once() -> None:
    since, handled = at("2026-11-01T00:00:00Z"), at("2026-11-18T03:00:00Z")
    back = at("2026-11-21T09:00:00Z")  # three slots missed
    due = DAILY.due(handled, since, back)
    assert due == at("2026-11-21T03:00:00Z")
    assert DAILY.due(due, since, back) is None  # once handled, nothing else is due


@pytest.mark.parametrize(
    ("expression", "reference", "deadline"),
    [
        # Daily: two periods after the last success.
        ("0 3 * * *", "2026-11-20T03:05:00Z", "2026-11-22T03:05:00Z"),
        # Hourly.
        ("0 * * * *", "2026-11-20T03:05:00Z", "2026-11-20T05:05:00Z"),
        # Weekdays only: a Friday success lasts over the weekend until Tuesday.
        ("0 3 * * 1-5", "2026-11-20T03:05:00Z", "2026-11-24T03:05:00Z"),
    ],
)
def test_backups_count_as_failing_two_periods_after_the_last_success(
    expression: str, reference: str, deadline: str
) -> None:
    assert Schedule.parse(expression).failing_after(at(reference)) == at(deadline)


def test_backup_names_derive_from_the_slot_and_the_request_value() -> None:
    assert slot_backup_name("downtown", at("2026-11-21T03:00:00Z")) == "downtown-202611210300"
    first = requested_backup_name("downtown", "1763694000")
    assert first == requested_backup_name("downtown", "1763694000")
    assert first != requested_backup_name("downtown", "1763694001")
    assert first.startswith("downtown-requested-")
    longest = requested_backup_name("a" * 40, "x" * 10_000)
    assert len(longest) <= 63
    assert len(slot_backup_name("a" * 40, at("2026-11-21T03:00:00Z"))) <= 63


def test_times_read_and_written_as_the_api_server_does() -> None:
    assert format_time(at("2026-11-21T03:00:00Z")) == "2026-11-21T03:00:00Z"
    assert parse_time("") is None
    assert parse_time("not a time") is None
    assert parse_time(None) is None

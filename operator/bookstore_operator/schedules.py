"""Backup schedules as pure time arithmetic: cron slots in UTC, catch-up, and overdue backups.

No I/O and no clock of its own: every function takes `now`. Cron expressions are evaluated by
cronsim (Debian cron semantics, strict parsing) in UTC, so no slot is ever skipped or doubled
by a daylight saving change. A slot is the minute a backup is due; a backup is named after it.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib

from cronsim import CronSim, CronSimError

# The CRD's pattern allows these shorthands (as Kubernetes CronJobs do); cronsim does not.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_FIELDS = 5
# A schedule is failing once its last success (or its start) is this many periods behind.
FAILING_PERIODS = 2
REQUEST_HASH_LENGTH = 10
ONE_SECOND = datetime.timedelta(seconds=1)


class InvalidScheduleError(ValueError):
    """spec.backup.schedule is not a cron expression this operator can follow."""


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A cron schedule evaluated in UTC."""

    expression: str

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """The schedule for `text` (five cron fields or a @ shorthand); raises when invalid."""
        expression = MACROS.get(text.strip().lower(), text.strip())
        if len(expression.split()) != CRON_FIELDS:
            raise InvalidScheduleError(
                f"{len(expression.split())} fields, five are needed (minute hour day-of-month"
                " month day-of-week)"
            )
        try:
            CronSim(expression, datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
        except CronSimError as exc:
            raise InvalidScheduleError(str(exc).rstrip(".")) from exc
        schedule = cls(expression)
        if schedule.following(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)) is None:
            raise InvalidScheduleError("it never matches a date")
        return schedule

    def latest(self, now: datetime.datetime) -> datetime.datetime | None:
        """The last slot at or before `now` (None when there is none in 50 years)."""
        start = now.replace(microsecond=0) + ONE_SECOND
        return next(CronSim(self.expression, start, reverse=True), None)

    def following(self, now: datetime.datetime) -> datetime.datetime | None:
        """The first slot strictly after `now` (None when there is none in 50 years)."""
        return next(CronSim(self.expression, now.replace(microsecond=0)), None)

    def due(
        self, handled: datetime.datetime | None, since: datetime.datetime, now: datetime.datetime
    ) -> datetime.datetime | None:
        """The slot to back up now, if any: the latest one not yet handled and not before the
        schedule started. Missed slots (an operator that was down) give one backup, for the
        latest of them, never one per slot."""
        slot = self.latest(now)
        floor = max(handled, since) if handled is not None else since
        return slot if slot is not None and slot > floor else None

    def failing_after(self, reference: datetime.datetime) -> datetime.datetime | None:
        """When backups count as failing if none succeeds after `reference` (the last success,
        else the start of the schedule): two periods later, the periods counted on the schedule
        from the slot before `reference`. For a regular schedule that is reference + 2 x the
        gap between slots; a weekday-only schedule does not fail over its weekend."""
        base = self.latest(reference) or reference
        slot: datetime.datetime | None = base
        for _ in range(FAILING_PERIODS):
            slot = self.following(slot) if slot is not None else None
        return None if slot is None else reference + (slot - base)


def slot_backup_name(store: str, slot: datetime.datetime) -> str:
    """`<store>-<yyyymmddhhmm>` (UTC): the scheduled backup of one slot, whoever creates it."""
    return f"{store}-{slot.astimezone(datetime.UTC):%Y%m%d%H%M}"


def requested_backup_name(store: str, value: str) -> str:
    """`<store>-requested-<hash>`: the one backup for one value of the backup-now annotation."""
    digest = hashlib.sha256(value.encode()).hexdigest()[:REQUEST_HASH_LENGTH]
    return f"{store}-requested-{digest}"


def parse_time(text: object) -> datetime.datetime | None:
    """An RFC 3339 time as the API server writes it (None when absent or unreadable)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    """`2026-11-21T03:00:00Z`, the form status times take."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

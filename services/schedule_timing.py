"""When a backup schedule runs next: pure wall-clock arithmetic in the schedule's time zone.

A schedule's times are what the clock on the wall shows in its zone, so "daily at 02:00
Europe/Berlin" runs at 02:00 local time all year: 00:00 UTC in summer, 01:00 UTC in winter.
Where daylight saving time changes the clock:

- **Spring forward.** A local time that does not exist (02:30 on the last Sunday of March in
  Berlin) runs when the gap ends, at the first wall-clock time that exists (03:00 CEST,
  01:00 UTC). Cron does the same: jobs in the skipped hour run right after the change.
  Several times in one gap (cron "*/15 2 * * *") become that one run.
- **Fall back.** A local time that happens twice (02:30 on the last Sunday of October in
  Berlin) runs once, at its first occurrence (fold=0, 02:30 CEST, 00:30 UTC).
- **Hourly** schedules are the exception: they run every real hour at their minute of the
  local clock, so both 02:30 CEST and 02:30 CET run, and nothing runs at the end of a gap.
  An hourly schedule never goes two hours without a run, nor runs twice in one hour.

Candidate runs are naive local wall-clock times, converted one by one with zoneinfo. That
conversion never goes backwards in time, so the first candidate after ``after`` is the next
run, and DST is right by construction; croniter only enumerates naive times.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

FREQUENCIES = ("hourly", "daily", "weekly", "monthly", "cron")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-6 or SUN-SAT, 0 and 7 are Sunday"),
)
_TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_TIME_HINT = "use HH:MM, 00:00-23:59"
_WEEKDAY_HINT = "use 0=Monday … 6=Sunday"
_MONTHDAY_HINT = "use 1-31; a month without that day runs on its last day"

# Which frequencies use each optional field, and what to fill in when it is missing.
_FIELD_USE = {
    "time": (("hourly", "daily", "weekly", "monthly"), f"a time ({_TIME_HINT})"),
    "day_of_week": (("weekly",), f"a day_of_week ({_WEEKDAY_HINT})"),
    "day_of_month": (("monthly",), f"a day_of_month ({_MONTHDAY_HINT})"),
    "cron": (("cron",), 'a 5-field cron expression, e.g. "*/15 * * * *"'),
}


class TimingError(ValueError):
    """A schedule's timing is invalid; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class Timing:
    """When a schedule runs. Constructing one validates every field (raises TimingError).

    ``time`` is "HH:MM" (24 h); hourly schedules use only its minutes ("00:15" and "13:15"
    both mean a quarter past every hour). ``day_of_week`` is 0=Monday … 6=Sunday (weekly
    only), ``day_of_month`` 1-31 (monthly only; 31 runs on Feb 28/29, Apr 30, ...), ``cron``
    a 5-field expression (frequency "cron" only) whose fields are wall-clock times in
    ``timezone``, an IANA name.
    """

    frequency: str
    time: str | None = None
    day_of_week: int | None = None
    day_of_month: int | None = None
    cron: str | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.frequency not in FREQUENCIES:
            raise TimingError(
                "frequency", f'"{self.frequency}" is not one of {", ".join(FREQUENCIES)}'
            )
        _check_zone(self.timezone)
        for field, (users, what) in _FIELD_USE.items():
            _check_presence(field, getattr(self, field), self.frequency, users, what)
        if self.time is not None:
            _parse_time(self.time)
        if self.day_of_week is not None:
            _check_day("day_of_week", self.day_of_week, 0, 6, _WEEKDAY_HINT)
        if self.day_of_month is not None:
            _check_day("day_of_month", self.day_of_month, 1, 31, _MONTHDAY_HINT)
        if self.cron is not None:
            _check_cron(self.cron)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_run(self, after: datetime) -> datetime:
        """The first run strictly after ``after`` (an aware datetime), as an aware UTC datetime."""
        after = _as_utc(after, "after")
        zone = self.zone
        if self.frequency == "hourly":
            return _next_at_minute(after, zone, _parse_time(self.time)[1])
        start = after.astimezone(zone).replace(tzinfo=None, fold=0)
        runs = (_wall_to_utc(wall, zone) for wall in self._wall_times(start))
        return next(run for run in runs if run > after)

    def runs_between(self, start: datetime, end: datetime, limit: int = 10_000) -> list[datetime]:
        """Every run after ``start`` up to and including ``end`` (aware datetimes), in UTC.

        Raises ValueError rather than return more than ``limit`` runs.
        """
        end = _as_utc(end, "end")
        runs: list[datetime] = []
        run = self.next_run(start)
        while run <= end:
            if len(runs) == limit:
                raise ValueError(f"more than {limit} runs between {start} and {end}")
            runs.append(run)
            run = self.next_run(run)
        return runs

    def describe(self) -> str:
        """Human text, e.g. "weekly on Monday at 03:15 UTC"."""
        if self.frequency == "cron":
            return f"cron '{self.cron}' in {self.timezone}"
        if self.frequency == "hourly":
            assert self.time is not None  # __post_init__: hourly schedules have a time
            return f"hourly at :{self.time[3:]} {self.timezone}"
        when = self.frequency
        if self.frequency == "weekly":
            assert self.day_of_week is not None  # __post_init__: weekly ones have a day_of_week
            when = f"weekly on {WEEKDAYS[self.day_of_week]}"
        elif self.frequency == "monthly":
            assert self.day_of_month is not None  # __post_init__: monthly ones a day_of_month
            last = " (or the month's last day)" if self.day_of_month > 28 else ""
            when = f"monthly on day {self.day_of_month}{last}"
        return f"{when} at {self.time} {self.timezone}"

    def _wall_times(self, start: datetime) -> Iterator[datetime]:
        """Naive local wall-clock times of runs after ``start`` (naive local), in order."""
        if self.frequency == "cron":
            times = croniter(self.cron, start)
            return iter(lambda: times.get_next(datetime), None)
        hour, minute = _parse_time(self.time)
        days = (start.date() + timedelta(days=n) for n in count())
        walls = (datetime(d.year, d.month, d.day, hour, minute) for d in days if self._runs_on(d))
        return (wall for wall in walls if wall > start)

    def _runs_on(self, day: date) -> bool:
        if self.frequency == "weekly":
            return day.weekday() == self.day_of_week
        if self.frequency == "monthly":
            assert self.day_of_month is not None  # __post_init__: monthly ones a day_of_month
            last = calendar.monthrange(day.year, day.month)[1]
            return day.day == min(self.day_of_month, last)
        return True


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise TimingError(
            "timezone", f'"{name}" is not an IANA time zone name, e.g. Europe/Berlin'
        ) from None


def _check_presence(
    field: str, value: object, frequency: str, users: tuple[str, ...], what: str
) -> None:
    if frequency in users and value is None:
        raise TimingError(field, f"{frequency} schedules need {what}")
    if frequency not in users and value is not None:
        raise TimingError(
            field, f"only {'/'.join(users)} schedules use it; leave it empty for {frequency}"
        )


def _parse_time(value: object) -> tuple[int, int]:
    match = _TIME_OF_DAY.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise TimingError("time", f'"{value}" is not a time of day ({_TIME_HINT})')
    return int(match[1]), int(match[2])


def _check_day(field: str, value: object, low: int, high: int, hint: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TimingError(field, f'"{value}" is not a whole number; {hint}')
    if not low <= value <= high:
        raise TimingError(field, f"{value} is out of range; {hint}")


def _check_cron(expr: object) -> None:
    if not isinstance(expr, str):
        raise TimingError("cron", f'"{expr}" is not a cron expression; use 5 fields')
    fields = expr.split()
    names = " ".join(name for name, _ in CRON_FIELDS)
    if len(fields) != len(CRON_FIELDS):
        raise TimingError("cron", f'"{expr}" needs 5 fields ({names}), not {len(fields)}')
    for i, (name, allowed) in enumerate(CRON_FIELDS):
        alone = " ".join(field if j == i else "*" for j, field in enumerate(fields))
        if not croniter.is_valid(alone):
            raise TimingError(
                "cron", f'"{expr}": the {name} field "{fields[i]}" is invalid ({allowed})'
            )
    try:
        croniter(expr, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError:
        raise TimingError(
            "cron", f'"{expr}" never matches a date; check its day-of-month and month'
        ) from None


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, e.g. datetime.now(UTC)")
    return moment.astimezone(UTC)


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _next_at_minute(after: datetime, zone: ZoneInfo, minute: int) -> datetime:
    """The first whole minute after ``after`` whose local clock shows ``minute``."""
    run = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while _local(run, zone).minute != minute:
        run += timedelta(minutes=1)
    return run


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a naive wall-clock time names: its first occurrence if it happens twice,
    the end of the gap if it never happens."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _local(instant, zone) == wall:
        return instant
    return _gap_end(wall, zone)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant the clock jumps over a nonexistent ``wall`` time (whole seconds)."""
    # fold=1 reads ``wall`` with the offset after the jump: an instant before the gap;
    # fold=0 with the offset before it: an instant after the gap. Bisect in between.
    before = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    after = int(wall.replace(tzinfo=zone, fold=0).timestamp())
    while after - before > 1:
        middle = (before + after) // 2
        if _local(datetime.fromtimestamp(middle, UTC), zone) < wall:
            before = middle
        else:
            after = middle
    return datetime.fromtimestamp(after, UTC)

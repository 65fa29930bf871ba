"""Next-run arithmetic of schedule_timing: wall-clock times across DST changes, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.schedule_timing import Timing, TimingError

BERLIN = "Europe/Berlin"  # 2024: spring forward Mar 31 01:00Z, fall back Oct 27 01:00Z
NEW_YORK = "America/New_York"  # 2024: spring forward Mar 10 07:00Z, fall back Nov 3 06:00Z


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def daily(at: str, zone: str) -> Timing:
    return Timing("daily", time=at, timezone=zone)


def cron(expr: str, zone: str) -> Timing:
    return Timing("cron", cron=expr, timezone=zone)


def hourly(at: str, zone: str) -> Timing:
    return Timing("hourly", time=at, timezone=zone)


def weekly(day: int, at: str, zone: str) -> Timing:
    return Timing("weekly", time=at, day_of_week=day, timezone=zone)


def monthly(day: int, at: str, zone: str) -> Timing:
    return Timing("monthly", time=at, day_of_month=day, timezone=zone)


NEXT_RUNS = [
    # Europe/Berlin, daily 02:00: wall-clock 02:00 all year
    ("berlin winter", daily("02:00", BERLIN), "2024-01-14 12:00", "2024-01-15 01:00"),
    ("berlin summer", daily("02:00", BERLIN), "2024-06-30 12:00", "2024-07-01 00:00"),
    ("berlin before spring", daily("02:00", BERLIN), "2024-03-29 12:00", "2024-03-30 01:00"),
    ("berlin 02:00 in gap", daily("02:00", BERLIN), "2024-03-30 12:00", "2024-03-31 01:00"),
    ("berlin after spring", daily("02:00", BERLIN), "2024-03-31 12:00", "2024-04-01 00:00"),
    ("berlin 02:00 fall, 1st", daily("02:00", BERLIN), "2024-10-26 12:00", "2024-10-27 00:00"),
    ("berlin 02:00 fall, once", daily("02:00", BERLIN), "2024-10-27 00:00", "2024-10-28 01:00"),
    # daily 02:30: the gap runs at its end (03:00 CEST); the repeated hour runs once
    ("berlin 02:30 in gap", daily("02:30", BERLIN), "2024-03-30 12:00", "2024-03-31 01:00"),
    ("berlin 02:30 fall, 1st", daily("02:30", BERLIN), "2024-10-26 12:00", "2024-10-27 00:30"),
    ("berlin 02:30 after 1st", daily("02:30", BERLIN), "2024-10-27 00:30", "2024-10-28 01:30"),
    ("berlin 02:30 in 2nd pass", daily("02:30", BERLIN), "2024-10-27 01:15", "2024-10-28 01:30"),
    # cron fields are wall-clock too
    ("berlin cron in gap", cron("30 2 * * *", BERLIN), "2024-03-30 12:00", "2024-03-31 01:00"),
    ("berlin cron after gap", cron("30 2 * * *", BERLIN), "2024-03-31 01:00", "2024-04-01 00:30"),
    ("berlin cron fall", cron("30 2 * * *", BERLIN), "2024-10-26 12:00", "2024-10-27 00:30"),
    ("berlin cron fall once", cron("30 2 * * *", BERLIN), "2024-10-27 00:30", "2024-10-28 01:30"),
    ("cron gap once", cron("*/15 2 * * *", BERLIN), "2024-03-31 01:00", "2024-04-01 00:00"),
    # weekly on Sunday, the day of both changes
    ("berlin weekly gap", weekly(6, "02:30", BERLIN), "2024-03-25 00:00", "2024-03-31 01:00"),
    ("berlin weekly fall", weekly(6, "02:30", BERLIN), "2024-10-21 00:00", "2024-10-27 00:30"),
    ("berlin weekly next", weekly(6, "02:30", BERLIN), "2024-10-27 00:30", "2024-11-03 01:30"),
    # monthly on the 31st: the month's last day when it has no 31st
    ("feb leap year", monthly(31, "02:00", BERLIN), "2024-02-01 00:00", "2024-02-29 01:00"),
    ("feb common year", monthly(31, "02:00", BERLIN), "2023-02-01 00:00", "2023-02-28 01:00"),
    ("march 31 in gap", monthly(31, "02:00", BERLIN), "2024-03-01 00:00", "2024-03-31 01:00"),
    ("april has 30 days", monthly(31, "02:00", BERLIN), "2024-04-01 00:00", "2024-04-30 00:00"),
    ("may has 31", monthly(31, "02:00", BERLIN), "2024-04-30 00:00", "2024-05-31 00:00"),
    ("monthly 29 in feb", monthly(29, "02:00", "UTC"), "2023-02-01 00:00", "2023-02-28 02:00"),
    # America/New_York: 02:00-03:00 is skipped in March, 01:00-02:00 repeats in November
    ("ny winter", daily("02:00", NEW_YORK), "2024-01-15 12:00", "2024-01-16 07:00"),
    ("ny summer", daily("02:00", NEW_YORK), "2024-07-01 12:00", "2024-07-02 06:00"),
    ("ny 02:00 in gap", daily("02:00", NEW_YORK), "2024-03-09 12:00", "2024-03-10 07:00"),
    ("ny 02:30 in gap", daily("02:30", NEW_YORK), "2024-03-09 12:00", "2024-03-10 07:00"),
    ("ny after spring", daily("02:30", NEW_YORK), "2024-03-10 07:00", "2024-03-11 06:30"),
    ("ny 02:00 fall is EST", daily("02:00", NEW_YORK), "2024-11-02 12:00", "2024-11-03 07:00"),
    ("ny 01:30 fall, 1st", daily("01:30", NEW_YORK), "2024-11-02 12:00", "2024-11-03 05:30"),
    ("ny 01:30 fall, once", daily("01:30", NEW_YORK), "2024-11-03 05:30", "2024-11-04 06:30"),
    ("ny cron in gap", cron("30 2 * * *", NEW_YORK), "2024-03-09 12:00", "2024-03-10 07:00"),
    ("ny cron fall", cron("30 2 * * *", NEW_YORK), "2024-11-02 12:00", "2024-11-03 07:30"),
    ("ny cron 01:30 once", cron("30 1 * * *", NEW_YORK), "2024-11-03 05:30", "2024-11-04 06:30"),
    ("ny weekly gap", weekly(6, "02:30", NEW_YORK), "2024-03-04 00:00", "2024-03-10 07:00"),
    ("ny weekly fall", weekly(6, "01:30", NEW_YORK), "2024-10-28 00:00", "2024-11-03 05:30"),
    ("ny feb leap", monthly(31, "02:30", NEW_YORK), "2024-02-01 00:00", "2024-02-29 07:30"),
    ("ny feb common", monthly(31, "02:30", NEW_YORK), "2025-02-01 00:00", "2025-02-28 07:30"),
    ("ny april", monthly(31, "02:30", NEW_YORK), "2024-04-01 00:00", "2024-04-30 06:30"),
    # a whole day skipped: Samoa jumped from Dec 29 to Dec 31, 2011
    ("apia lost day", daily("02:00", "Pacific/Apia"), "2011-12-29 12:00", "2011-12-30 10:00"),
    ("apia next day", daily("02:00", "Pacific/Apia"), "2011-12-30 10:00", "2011-12-30 12:00"),
    # hourly: only the minutes count
    ("hourly ignores hour", hourly("13:15", "UTC"), "2024-05-01 10:20", "2024-05-01 11:15"),
    ("hourly +05:30", hourly("00:00", "Asia/Kolkata"), "2024-05-01 10:00", "2024-05-01 10:30"),
]


@pytest.mark.parametrize(
    ("timing", "after", "expected"),
    [pytest.param(t, a, e, id=name) for name, t, a, e in NEXT_RUNS],
)
def test_next_run(timing: Timing, after: str, expected: str) -> None:
    assert timing.next_run(utc(after)) == utc(expected)


RUNS = [
    # hourly runs every real hour: none extra at the end of the gap, both 02:30s in autumn
    ("berlin spring", hourly("00:30", BERLIN), "2024-03-30 23:00", "2024-03-31 03:00",
     ["2024-03-30 23:30", "2024-03-31 00:30", "2024-03-31 01:30", "2024-03-31 02:30"]),
    ("berlin fall", hourly("00:30", BERLIN), "2024-10-26 23:00", "2024-10-27 03:00",
     ["2024-10-26 23:30", "2024-10-27 00:30", "2024-10-27 01:30", "2024-10-27 02:30"]),
    ("ny spring", hourly("00:30", NEW_YORK), "2024-03-10 05:00", "2024-03-10 09:00",
     ["2024-03-10 05:30", "2024-03-10 06:30", "2024-03-10 07:30", "2024-03-10 08:30"]),
    ("ny fall", hourly("00:30", NEW_YORK), "2024-11-03 04:00", "2024-11-03 08:00",
     ["2024-11-03 04:30", "2024-11-03 05:30", "2024-11-03 06:30", "2024-11-03 07:30"]),
    # cron every 30 minutes: the gap collapses into one run at its end
    ("cron spring", cron("*/30 * * * *", BERLIN), "2024-03-31 00:00", "2024-03-31 02:00",
     ["2024-03-31 00:30", "2024-03-31 01:00", "2024-03-31 01:30", "2024-03-31 02:00"]),
    # ... and the repeated hour runs once: 02:00 and 02:30 CET are not run again
    ("cron fall", cron("*/30 * * * *", BERLIN), "2024-10-26 23:45", "2024-10-27 02:30",
     ["2024-10-27 00:00", "2024-10-27 00:30", "2024-10-27 02:00", "2024-10-27 02:30"]),
    ("daily fall week", daily("02:30", BERLIN), "2024-10-25 00:00", "2024-10-29 00:00",
     ["2024-10-25 00:30", "2024-10-26 00:30", "2024-10-27 00:30", "2024-10-28 01:30"]),
]


@pytest.mark.parametrize(
    ("timing", "start", "end", "expected"),
    [pytest.param(t, s, e, x, id=name) for name, t, s, e, x in RUNS],
)
def test_runs_between(timing: Timing, start: str, end: str, expected: list[str]) -> None:
    assert timing.runs_between(utc(start), utc(end)) == [utc(run) for run in expected]


def test_runs_between_is_bounded() -> None:
    every_minute = Timing("cron", cron="* * * * *")
    with pytest.raises(ValueError, match="more than 100 runs"):
        every_minute.runs_between(utc("2024-01-01 00:00"), utc("2024-01-02 00:00"), limit=100)


def test_utc_is_the_default_zone() -> None:
    timing = Timing("daily", time="02:00")
    assert timing.timezone == "UTC"
    assert timing.next_run(utc("2024-03-31 00:00")) == utc("2024-03-31 02:00")


def test_next_run_is_strictly_after_and_in_utc() -> None:
    timing = daily("02:00", BERLIN)
    in_berlin = datetime(2024, 7, 1, 2, 0, tzinfo=timing.zone)
    run = timing.next_run(in_berlin)
    assert run == utc("2024-07-02 00:00")
    assert run.tzinfo is UTC


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        daily("02:00", BERLIN).next_run(datetime(2024, 7, 1))


@pytest.mark.parametrize(
    ("timing", "text"),
    [
        (daily("02:00", BERLIN), "daily at 02:00 Europe/Berlin"),
        (Timing("weekly", time="03:15", day_of_week=0), "weekly on Monday at 03:15 UTC"),
        (monthly(31, "04:00", "UTC"), "monthly on day 31 (or the month's last day) at 04:00 UTC"),
        (monthly(15, "04:00", "UTC"), "monthly on day 15 at 04:00 UTC"),
        (hourly("07:45", BERLIN), "hourly at :45 Europe/Berlin"),
        (cron("*/15 * * * *", NEW_YORK), "cron '*/15 * * * *' in America/New_York"),
    ],
)
def test_describe(timing: Timing, text: str) -> None:
    assert timing.describe() == text


INVALID = [
    ({"frequency": "yearly", "time": "02:00"}, "frequency",
     'frequency: "yearly" is not one of hourly, daily, weekly, monthly, cron'),
    ({"frequency": "daily", "time": "25:00"}, "time",
     'time: "25:00" is not a time of day (use HH:MM, 00:00-23:59)'),
    ({"frequency": "daily", "time": "12:60"}, "time", '"12:60" is not a time of day'),
    ({"frequency": "daily", "time": "2:00"}, "time", '"2:00" is not a time of day'),
    ({"frequency": "daily", "time": "02:00:00"}, "time", '"02:00:00" is not a time of day'),
    ({"frequency": "daily", "time": ""}, "time", '"" is not a time of day'),
    ({"frequency": "daily"}, "time", "daily schedules need a time"),
    ({"frequency": "hourly"}, "time", "hourly schedules need a time"),
    ({"frequency": "daily", "time": "02:00", "timezone": "Mars/Olympus"}, "timezone",
     'timezone: "Mars/Olympus" is not an IANA time zone name, e.g. Europe/Berlin'),
    ({"frequency": "daily", "time": "02:00", "timezone": ""}, "timezone", "not an IANA"),
    ({"frequency": "daily", "time": "02:00", "timezone": "../etc/passwd"}, "timezone", "IANA"),
    ({"frequency": "cron", "cron": "61 * * * *"}, "cron",
     'cron: "61 * * * *": the minute field "61" is invalid (0-59)'),
    ({"frequency": "cron", "cron": "0 24 * * *"}, "cron", 'the hour field "24" is invalid'),
    ({"frequency": "cron", "cron": "0 0 0 * *"}, "cron", 'the day-of-month field "0"'),
    ({"frequency": "cron", "cron": "0 0 * 13 *"}, "cron", 'the month field "13"'),
    ({"frequency": "cron", "cron": "0 0 * * 8"}, "cron", 'the day-of-week field "8"'),
    ({"frequency": "cron", "cron": "*/0 * * * *"}, "cron", 'the minute field "*/0"'),
    ({"frequency": "cron", "cron": "* * *"}, "cron",
     'cron: "* * *" needs 5 fields (minute hour day-of-month month day-of-week), not 3'),
    ({"frequency": "cron", "cron": "0 0 * * * 0"}, "cron", "not 6"),
    ({"frequency": "cron", "cron": "@daily"}, "cron", "not 1"),
    ({"frequency": "cron", "cron": "0 0 30 2 *"}, "cron", "never matches a date"),
    ({"frequency": "cron"}, "cron", "cron schedules need a 5-field cron expression"),
    ({"frequency": "daily", "time": "02:00", "cron": "0 2 * * *"}, "cron",
     "only cron schedules use it; leave it empty for daily"),
    ({"frequency": "cron", "cron": "0 2 * * *", "time": "02:00"}, "time",
     "only hourly/daily/weekly/monthly schedules use it; leave it empty for cron"),
    ({"frequency": "weekly", "time": "02:00"}, "day_of_week",
     "weekly schedules need a day_of_week (use 0=Monday … 6=Sunday)"),
    ({"frequency": "weekly", "time": "02:00", "day_of_week": 7}, "day_of_week",
     "day_of_week: 7 is out of range; use 0=Monday … 6=Sunday"),
    ({"frequency": "weekly", "time": "02:00", "day_of_week": -1}, "day_of_week", "out of range"),
    ({"frequency": "weekly", "time": "02:00", "day_of_week": True}, "day_of_week",
     "not a whole number"),
    ({"frequency": "weekly", "time": "02:00", "day_of_week": "1"}, "day_of_week",
     "not a whole number"),
    ({"frequency": "daily", "time": "02:00", "day_of_week": 1}, "day_of_week",
     "only weekly schedules use it; leave it empty for daily"),
    ({"frequency": "monthly", "time": "02:00"}, "day_of_month",
     "monthly schedules need a day_of_month"),
    ({"frequency": "monthly", "time": "02:00", "day_of_month": 0}, "day_of_month",
     "day_of_month: 0 is out of range; use 1-31"),
    ({"frequency": "monthly", "time": "02:00", "day_of_month": 32}, "day_of_month",
     "32 is out of range"),
    ({"frequency": "weekly", "time": "02:00", "day_of_week": 1, "day_of_month": 3},
     "day_of_month", "only monthly schedules use it; leave it empty for weekly"),
]


@pytest.mark.parametrize(("fields", "field", "message"), INVALID)
def test_invalid_timings_say_what_is_wrong(fields: dict, field: str, message: str) -> None:
    with pytest.raises(TimingError) as caught:
        Timing(**fields)
    assert caught.value.field == field
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "expr", ["0 0 29 2 *", "5-2 * * * *", "0 0 * * 7", "0 0 L * *", "0 9 * JAN-MAR MON-FRI"]
)
def test_valid_cron_expressions(expr: str) -> None:
    Timing("cron", cron=expr)


ZONES = [
    "UTC", BERLIN, NEW_YORK, "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Apia",
    "America/Santiago",
]
timings = st.one_of(
    st.builds(hourly, st.sampled_from(["00:00", "07:30", "23:59"]), st.sampled_from(ZONES)),
    st.builds(daily, st.sampled_from(["00:00", "01:30", "02:00", "02:30", "23:59"]),
              st.sampled_from(ZONES)),
    st.builds(weekly, st.integers(0, 6), st.sampled_from(["02:30", "12:00"]),
              st.sampled_from(ZONES)),
    st.builds(monthly, st.integers(1, 31), st.sampled_from(["00:00", "02:30"]),
              st.sampled_from(ZONES)),
    st.builds(cron, st.sampled_from(["*/15 * * * *", "30 2 * * *", "0 0 29 2 *", "0 * * * 0"]),
              st.sampled_from(ZONES)),
)
moments = st.datetimes(datetime(1995, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC))


@given(timings, moments, st.floats(0, 1, exclude_max=True))
def test_no_run_is_skipped(timing: Timing, after: datetime, fraction: float) -> None:
    """next_run is strictly later, and any moment before it leads to the same run."""
    run = timing.next_run(after)
    assert run > after
    assert run.tzinfo is UTC
    between = after + (run - after - timedelta(microseconds=1)) * fraction
    assert timing.next_run(between) == run


@given(timings, moments, moments)
def test_next_run_is_monotonic(timing: Timing, a: datetime, b: datetime) -> None:
    early, late = sorted((a, b))
    assert timing.next_run(early) <= timing.next_run(late)


@given(st.sampled_from(["UTC", BERLIN, NEW_YORK, "Asia/Kolkata"]), st.integers(0, 59), moments)
def test_hourly_runs_every_real_hour(zone: str, minute: int, after: datetime) -> None:
    timing = hourly(f"00:{minute:02d}", zone)
    run = timing.next_run(after)
    assert run.astimezone(timing.zone).minute == minute
    assert timing.next_run(run) - run == timedelta(hours=1)


@given(st.sampled_from(ZONES), st.sampled_from(["00:00", "02:00", "02:30", "23:30"]), moments)
def test_daily_runs_at_its_time_or_where_a_gap_ends(zone: str, at: str, after: datetime) -> None:
    timing = daily(at, zone)
    run = timing.next_run(after)
    on_time = run.astimezone(timing.zone).strftime("%H:%M") == at
    offset_before = (run - timedelta(seconds=1)).astimezone(timing.zone).utcoffset()
    gap_end = offset_before != run.astimezone(timing.zone).utcoffset()
    assert on_time or gap_end

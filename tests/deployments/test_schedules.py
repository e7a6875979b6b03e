"""Schedules: checked with messages that say what is wrong, described in words, and the times they
fire, across daylight-saving changes (unit level: no beat here)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.deployments.schedules import describe, due_times, schedule_from
from orchestrator.exceptions import InvalidInput

UTC = timezone.utc


def times(spec: dict, start: datetime, days: int = 4) -> list[str]:
    return [t.strftime("%m-%d %H:%M") for t in due_times(schedule_from(spec), start, start + timedelta(days=days))]


def test_a_daily_cron_keeps_its_local_time_across_both_dst_changes():
    paris = {"cron": "0 9 * * *", "timezone": "Europe/Paris"}
    # Clocks go forward on 2026-03-29 and back on 2026-10-25: 09:00 in Paris is 08:00 UTC, then 07:00 UTC.
    assert times(paris, datetime(2026, 3, 27, tzinfo=UTC)) == ["03-27 08:00", "03-28 08:00", "03-29 07:00", "03-30 07:00"]
    assert times(paris, datetime(2026, 10, 23, tzinfo=UTC)) == ["10-23 07:00", "10-24 07:00", "10-25 08:00", "10-26 08:00"]


def test_a_time_skipped_by_the_clocks_runs_at_the_jump_and_a_repeated_one_runs_once():
    night = {"cron": "30 2 * * *", "timezone": "Europe/Paris"}
    spring = times(night, datetime(2026, 3, 28, tzinfo=UTC), days=3)
    autumn = times(night, datetime(2026, 10, 24, tzinfo=UTC), days=3)
    assert spring == ["03-28 01:30", "03-29 01:00", "03-30 00:30"]  # 02:30 does not exist on the 29th: 03:00 local
    assert autumn == ["10-24 00:30", "10-25 00:30", "10-26 01:30"]  # 02:30 happens twice on the 25th: once


def test_an_hourly_cron_runs_in_both_of_the_repeated_hours():
    hourly = {"cron": "0 * * * *", "timezone": "Europe/Paris"}
    fired = times(hourly, datetime(2026, 10, 24, 23, 30, tzinfo=UTC), days=1)[:4]
    assert fired == ["10-25 00:00", "10-25 01:00", "10-25 02:00", "10-25 03:00"]  # 02:00 local twice, 2 UTC hours


def test_interval_and_rrule_schedules():
    every_90 = {"interval_seconds": 5400, "anchor_date": "2026-01-01T00:15:00+00:00"}
    assert times(every_90, datetime(2026, 1, 1, 1, 0, tzinfo=UTC), days=1)[:3] == ["01-01 01:45", "01-01 03:15", "01-01 04:45"]
    mondays = {"rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0", "timezone": "Europe/Paris"}
    assert times(mondays, datetime(2026, 3, 20, tzinfo=UTC), days=14) == ["03-23 08:00", "03-30 07:00"]


@pytest.mark.parametrize("spec, message", [
    ({"cron": "0 9 * *"}, "cron '0 9 * *' has 4 field(s); a cron has 5: minute hour day-of-month month day-of-week"),
    ({"cron": "0 25 * * *"}, "cron '0 25 * * *' is not valid"),
    ({"cron": "0 9 * * * 2026"}, "has 6 field(s)"),
    ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"rrule": "FREQ=SOMETIMES"}, "rrule 'FREQ=SOMETIMES' is not valid: invalid 'FREQ': SOMETIMES"),
    ({"interval_seconds": 0}, "interval_seconds must be at least 1"),
    ({"interval_seconds": "soon"}, "interval_seconds must be a number of seconds, got 'soon'"),
    ({"interval_seconds": 60, "anchor_date": "yesterday"}, "anchor_date 'yesterday' is not an ISO 8601 date and time"),
    ({"cron": "0 9 * * *", "rrule": "FREQ=DAILY"}, "exactly one of cron, interval_seconds or rrule; got cron, rrule"),
    ({}, "a schedule needs exactly one of cron, interval_seconds or rrule"),
])  # fmt: skip
def test_malformed_schedules_are_refused_saying_what_is_wrong(spec, message):
    with pytest.raises(InvalidInput) as refused:
        schedule_from(spec)
    assert message in str(refused.value)


def test_schedules_in_words():
    assert describe(schedule_from({"cron": "0 9 * * *", "timezone": "Europe/Paris"})) == "At 09:00, Europe/Paris"
    assert describe(schedule_from({"interval_seconds": 7200, "anchor_date": "2026-01-01T00:00:00+00:00"})) == (
        "Every 2 hours from 2026-01-01 00:00 UTC")

"""Deployment schedules: cron (in a time zone), interval (from an anchor) and RRule; checked when
given, described in words, and turned into the times runs are due.

Cron and DST, as cron daemons do it: a time that does not exist on the day clocks go forward
(02:30 in Paris on the last Sunday of March) runs at the first time after the jump (03:00);
a time that happens twice on the day clocks go back runs once, at its first occurrence, unless
the hour field is `*` (an hourly job runs in both of the repeated hours). Intervals are exact
durations in seconds from their anchor (an interval of a day is 24 hours, also across a DST
change); use a cron to keep a wall-clock time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.exceptions import InvalidInput

CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
MIN_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class Schedule:
    """One schedule, checked: kind is "cron", "interval" or "rrule"."""

    kind: str
    cron: str = ""
    timezone: str = "UTC"
    interval_seconds: float | None = None
    anchor_date: datetime | None = None
    rrule: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "timezone": self.timezone}
        if self.kind == "cron":
            out["cron"] = self.cron
        elif self.kind == "interval":
            out.update(interval_seconds=self.interval_seconds, anchor_date=self.anchor_date.isoformat())
        else:
            out["rrule"] = self.rrule
        return out


def schedule_from(spec: dict[str, Any]) -> Schedule:
    """A checked Schedule from {"cron": "0 9 * * *", "timezone": "Europe/Paris"}, {"interval_seconds": 3600,
    "anchor_date": ...} or {"rrule": "FREQ=DAILY;BYHOUR=9"}; InvalidInput saying what is wrong."""
    given = [kind for kind in ("cron", "interval_seconds", "rrule") if spec.get(kind) not in (None, "")]
    if len(given) != 1:
        raise InvalidInput("a schedule needs exactly one of cron, interval_seconds or rrule"
                           + (f"; got {', '.join(given)}" if given else ""))  # fmt: skip
    zone = check_timezone(spec.get("timezone") or "UTC")
    if given == ["cron"]:
        return Schedule("cron", cron=check_cron(spec["cron"]), timezone=zone)
    if given == ["rrule"]:
        return Schedule("rrule", rrule=check_rrule(spec["rrule"], zone), timezone=zone)
    return Schedule("interval", interval_seconds=_interval(spec["interval_seconds"]), timezone=zone,
                    anchor_date=_anchor(spec.get("anchor_date"), zone))  # fmt: skip


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris' or 'UTC'") from None
    return str(name)


def check_cron(expression: str) -> str:
    """A standard five-field cron expression, or InvalidInput naming what is wrong."""
    from croniter import croniter

    text = " ".join(str(expression).split())
    fields = text.split(" ") if text else []
    if len(fields) != len(CRON_FIELDS) and not text.startswith("@"):
        raise InvalidInput(f"cron {expression!r} has {len(fields)} field(s); a cron has 5: "
                           f"{' '.join(CRON_FIELDS)} (e.g. '0 9 * * *' for 09:00 every day)")  # fmt: skip
    try:
        croniter(text)
    except Exception as exc:  # croniter's errors name the bad part
        raise InvalidInput(f"cron {expression!r} is not valid: {exc}") from None
    return text


def check_rrule(text: str, zone: str = "UTC") -> str:
    from dateutil.rrule import rrulestr

    try:
        rrulestr(str(text), dtstart=datetime(2000, 1, 1, tzinfo=ZoneInfo(zone)))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"rrule {text!r} is not valid: {exc} (e.g. 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0')") from None
    return str(text)


def _interval(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"interval_seconds must be a number of seconds, got {value!r}") from None
    if not seconds >= MIN_INTERVAL_SECONDS or seconds == float("inf"):
        raise InvalidInput(f"interval_seconds must be at least {MIN_INTERVAL_SECONDS:g}, got {value!r}")
    return seconds


def _anchor(value: Any, zone: str) -> datetime:
    if value in (None, ""):
        return datetime(2020, 1, 1, tzinfo=ZoneInfo(zone))
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"anchor_date {value!r} is not an ISO 8601 date and time") from None
    if not isinstance(value, datetime):
        raise InvalidInput(f"anchor_date must be a date and time, got {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone))


# --- when runs are due -----------------------------------------------------------------------
def due_times(schedule: Schedule, start: datetime, end: datetime, limit: int = 1000) -> list[datetime]:
    """The times in [start, end) the schedule fires, in UTC, oldest first (at most `limit`)."""
    if schedule.kind == "cron":
        times = _cron_times(schedule, start, end, limit)
    elif schedule.kind == "interval":
        times = _interval_times(schedule, start, end, limit)
    else:
        times = _rrule_times(schedule, start, end, limit)
    return [t.astimezone(timezone.utc) for t in times]


def _cron_times(schedule: Schedule, start: datetime, end: datetime, limit: int) -> list[datetime]:
    from croniter import croniter

    zone = ZoneInfo(schedule.timezone)
    fixed_hours = schedule.cron.split(" ")[1] != "*" if not schedule.cron.startswith("@") else True
    it = croniter(schedule.cron, (start - timedelta(microseconds=1)).astimezone(zone))
    found: list[datetime] = []
    while len(found) < limit:
        when = it.get_next(datetime)
        if when >= end:
            break
        if fixed_hours and _second_occurrence(when, zone):
            continue  # the same wall-clock time again, in the hour clocks went back: run once
        found.append(when)
    return found


def _second_occurrence(when: datetime, zone: ZoneInfo) -> bool:
    """Whether `when` is the repeat of a wall-clock time the clocks went back over (its first
    occurrence an hour earlier). Decided from `when` alone, so that a schedule asked from a
    start between the two occurrences does not take the repeat for a new time."""
    wall = when.replace(tzinfo=None)
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    return first.utcoffset() != second.utcoffset() and when.astimezone(timezone.utc) == second.astimezone(timezone.utc)


def _interval_times(schedule: Schedule, start: datetime, end: datetime, limit: int) -> list[datetime]:
    step = timedelta(seconds=schedule.interval_seconds)
    anchor = schedule.anchor_date
    first = 0 if start <= anchor else -(-(start - anchor) // step)  # ceiling: the first slot at or after start
    found = []
    k = first
    while len(found) < limit:
        when = anchor + k * step
        if when >= end:
            break
        found.append(when)
        k += 1
    return found


def _rrule_times(schedule: Schedule, start: datetime, end: datetime, limit: int) -> list[datetime]:
    from dateutil.rrule import rrulestr

    rule = rrulestr(schedule.rrule, dtstart=datetime(2020, 1, 1, tzinfo=ZoneInfo(schedule.timezone)))
    found = []
    for when in rule.xafter(start - timedelta(microseconds=1), inc=False):
        if when >= end or len(found) >= limit:
            break
        found.append(when)
    return found


# --- in words -------------------------------------------------------------------------------
def describe(schedule: Schedule) -> str:
    """"At 09:00, Europe/Paris"; "Every 1 hour from 2026-01-01 00:00 UTC"; "RRule FREQ=DAILY, UTC"."""
    if schedule.kind == "cron":
        from cron_descriptor import Options, get_description

        options = Options()
        options.use_24hour_time_format = True
        return f"{get_description(schedule.cron, options)}, {schedule.timezone}"
    if schedule.kind == "interval":
        return f"Every {_duration(schedule.interval_seconds)} from {schedule.anchor_date:%Y-%m-%d %H:%M} {schedule.timezone}"
    return f"RRule {schedule.rrule}, {schedule.timezone}"


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"

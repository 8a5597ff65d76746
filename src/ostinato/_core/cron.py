"""EventBridge Scheduler recurrence expressions: `cron(...)` and `rate(...)`, parsed and stepped.

Pure: validates what users pass to `create_schedule` (so a bad expression is refused before
anything is written) and computes fire times for `list_schedules` and the local Scheduler
emulation. The dialect is Scheduler's: six cron fields `minutes hours day-of-month month
day-of-week year`, exactly one of the two day fields `?`, day-of-week 1-7 = SUN-SAT, the
wildcards `, - * / ? L W #`; rates of whole minutes, hours or days.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {name: i for i, name in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)}
WEEKDAYS = {name: i for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}
YEARS = (1970, 2199)
RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}

#: (year, month) -> the days of that month a day field selects
DaySet = Callable[[int, int], set[int]]


def timezone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; `ValueError` if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as "
                         "'UTC' or 'Europe/Paris')") from None


def _number(token: str, low: int, high: int, names: dict[str, int], what: str) -> int:
    value = names.get(token.upper()) if names else None
    if value is None:
        if not token.isdigit():
            raise ValueError(f"{what}: {token!r} is not a number"
                             + (f" or one of {', '.join(names)}" if names else ""))
        value = int(token)
    if not low <= value <= high:
        raise ValueError(f"{what}: {value} is outside {low}-{high}")
    return value


def _values(field: str, low: int, high: int, what: str,
            names: dict[str, int] | None = None) -> set[int]:
    """A plain field: lists of `*`, `n`, `a-b`, each optionally stepped with `/s`."""
    found: set[int] = set()
    for item in field.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{what}: bad step {step_text!r}")
            step = int(step_text)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _number(first, low, high, names or {}, what)
            stop = _number(last, low, high, names or {}, what)
            if start > stop:
                raise ValueError(f"{what}: range {base!r} runs backwards")
        else:
            start = _number(base, low, high, names or {}, what)
            stop = high if step_text else start
        found.update(range(start, stop + 1, step))
    return found


def _weekday(year: int, month: int, day: int) -> int:
    """1 = Sunday ... 7 = Saturday, as cron counts."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def _nearest_weekday(year: int, month: int, day: int) -> int:
    last = calendar.monthrange(year, month)[1]
    day = min(day, last)
    match _weekday(year, month, day):
        case 7:  # Saturday: Friday, unless that leaves the month
            return day - 1 if day > 1 else day + 2
        case 1:  # Sunday: Monday, unless that leaves the month
            return day + 1 if day < last else day - 2
    return day


def _last_day(year: int, month: int) -> set[int]:
    return {calendar.monthrange(year, month)[1]}


def _last_weekday_of_month(year: int, month: int) -> set[int]:
    return {_nearest_weekday(year, month, calendar.monthrange(year, month)[1])}


def _fixed(days: set[int]) -> DaySet:
    def select(year: int, month: int) -> set[int]:
        return {d for d in days if d <= calendar.monthrange(year, month)[1]}
    return select


def _weekday_near(day: int) -> DaySet:
    def select(year: int, month: int) -> set[int]:
        return {_nearest_weekday(year, month, day)}
    return select


def _weekdays(weekdays: set[int]) -> DaySet:
    def select(year: int, month: int) -> set[int]:
        return {d for d in range(1, calendar.monthrange(year, month)[1] + 1)
                if _weekday(year, month, d) in weekdays}
    return select


def _union(parts: list[DaySet]) -> DaySet:
    def select(year: int, month: int) -> set[int]:
        return set().union(*(part(year, month) for part in parts))
    return select


def _day_of_month(field: str) -> DaySet:
    parts: list[DaySet] = []
    for item in field.split(","):
        upper = item.upper()
        if upper == "L":
            parts.append(_last_day)
        elif upper == "LW":
            parts.append(_last_weekday_of_month)
        elif upper.endswith("W"):
            parts.append(_weekday_near(_number(upper[:-1], 1, 31, {}, "day-of-month")))
        else:
            parts.append(_fixed(_values(item, 1, 31, "day-of-month")))
    return _union(parts)


def _day_of_week(field: str) -> DaySet:
    parts: list[DaySet] = []
    for item in field.split(","):
        upper = "7" if item.upper() == "L" else item.upper()  # L: the week's last day, SAT
        if "#" in upper:
            day_text, _, nth_text = upper.partition("#")
            weekday = _number(day_text, 1, 7, WEEKDAYS, "day-of-week")
            if not nth_text.isdigit() or not 1 <= int(nth_text) <= 5:
                raise ValueError(f"day-of-week: {item!r} needs #1 to #5")
            parts.append(_nth(weekday, int(nth_text)))
        elif upper.endswith("L"):
            parts.append(_nth(_number(upper[:-1], 1, 7, WEEKDAYS, "day-of-week"), -1))
        else:
            parts.append(_weekdays(_values(upper, 1, 7, "day-of-week", WEEKDAYS)))
    return _union(parts)


def _nth(weekday: int, nth: int) -> DaySet:
    """The nth (1-5, or -1: last) `weekday` of the month."""
    def select(year: int, month: int) -> set[int]:
        days = [d for d in range(1, calendar.monthrange(year, month)[1] + 1)
                if _weekday(year, month, d) == weekday]
        if nth == -1:
            return {days[-1]}
        return {days[nth - 1]} if nth <= len(days) else set()
    return select


def _local_to_epoch(local: datetime, tz: ZoneInfo) -> float | None:
    """Epoch seconds of a wall-clock time in `tz`; None if DST skips it."""
    stamp = local.replace(tzinfo=tz).timestamp()
    if datetime.fromtimestamp(stamp, tz).replace(tzinfo=None) != local:
        return None
    return stamp


@dataclass(frozen=True)
class Cron:
    """A parsed `cron(...)` expression."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    days: DaySet

    def next_fire(self, after: float, tz: str = "UTC", start: float | None = None
                  ) -> float | None:
        """The first fire time strictly after `after` (epoch seconds), or None if none is left."""
        zone = timezone(tz)
        if start is not None and start > after:
            after = start - 1e-6
        begin = datetime.fromtimestamp(after, zone).replace(tzinfo=None, second=0, microsecond=0)
        for year in self.years:
            if year < begin.year:
                continue
            for month in self.months:
                if (year, month) < (begin.year, begin.month):
                    continue
                for day in sorted(self.days(year, month)):
                    if (year, month, day) < (begin.year, begin.month, begin.day):
                        continue
                    for hour in self.hours:
                        for minute in self.minutes:
                            local = datetime(year, month, day, hour, minute)
                            if local < begin:
                                continue
                            stamp = _local_to_epoch(local, zone)
                            if stamp is not None and stamp > after:
                                return stamp
        return None


@dataclass(frozen=True)
class Rate:
    """A parsed `rate(...)` expression: every `seconds`, counted from the schedule's start."""

    expression: str
    seconds: int

    def next_fire(self, after: float, tz: str = "UTC", start: float | None = None
                  ) -> float | None:
        """The first `start + k * seconds` strictly after `after` (k >= 0)."""
        origin = after if start is None else start
        if after < origin:
            return origin
        return origin + (math.floor((after - origin) / self.seconds) + 1) * self.seconds


Recurrence = Cron | Rate


def parse_cron(text: str) -> Cron:
    """`"0 3 * * ? *"` or `"cron(0 3 * * ? *)"` -> Cron; `ValueError` naming the problem."""
    inner = _unwrap(text, "cron")
    fields = inner.split()
    if len(fields) != 6:
        raise ValueError(f"cron expression {inner!r} needs 6 fields (minutes hours "
                         f"day-of-month month day-of-week year), not {len(fields)}")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ValueError(f"cron expression {inner!r}: exactly one of day-of-month and "
                         "day-of-week must be '?'")
    days = _day_of_month(dom) if dow == "?" else _day_of_week(dow)
    return Cron(f"cron({' '.join(fields)})",
                tuple(sorted(_values(minute, 0, 59, "minutes"))),
                tuple(sorted(_values(hour, 0, 23, "hours"))),
                tuple(sorted(_values(month, 1, 12, "month", MONTHS))),
                tuple(sorted(_values(year, *YEARS, "year"))), days)


def parse_rate(value: str | timedelta) -> Rate:
    """`"5 minutes"`, `"rate(1 hour)"` or a timedelta of whole minutes -> Rate."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds < 60 or seconds % 60:
            raise ValueError(f"rate {value} must be a positive whole number of minutes")
        for unit, size in reversed(RATE_UNITS.items()):
            if seconds % size == 0:
                return _rate(int(seconds // size), unit)
    inner = _unwrap(str(value), "rate")
    match = re.fullmatch(r"\s*(\d+)\s+(minute|hour|day)s?\s*", inner, re.IGNORECASE)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"rate {inner!r}: use 'N minutes', 'N hours' or 'N days' with N >= 1")
    return _rate(int(match.group(1)), match.group(2).lower())


def _rate(count: int, unit: str) -> Rate:
    label = unit if count == 1 else unit + "s"
    return Rate(f"rate({count} {label})", count * RATE_UNITS[unit])


def parse_expression(expression: str) -> Recurrence:
    """A full Scheduler expression, `cron(...)` or `rate(...)`."""
    if expression.startswith("cron("):
        return parse_cron(expression)
    if expression.startswith("rate("):
        return parse_rate(expression)
    raise ValueError(f"{expression!r} is not a recurring schedule expression "
                     "(cron(...) or rate(...))")


def _unwrap(text: str, kind: str) -> str:
    text = text.strip()
    if text.startswith(f"{kind}(") and text.endswith(")"):
        return text[len(kind) + 1:-1].strip()
    return text


def iso(stamp: float) -> str:
    """Scheduler's `<aws.scheduler.scheduled-time>` format: `2022-03-22T18:59:43Z`."""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO-8601 UTC time such as Scheduler's scheduled time."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

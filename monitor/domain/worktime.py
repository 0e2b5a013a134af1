"""Working-time arithmetic on an office calendar.

Office hours are local wall times of the calendar's time zone. Each date's intervals are
turned into absolute instants (POSIX seconds) on that date, so DST days come out right: on
the spring-forward day an interval covering 02:00–03:00 loses that hour, on the fall-back
day it gains one. A wall time that does not exist (spring forward) is read with the offset
in force before the change (``fold=0``); an ambiguous one (fall back) as its first occurrence.

Sums over many days use per-year prefix tables (cached per calendar and year), so a span of
years costs a few look-ups per year instead of a walk over every day.

Every datetime argument must be timezone-aware: a naive one is a bug and raises ValueError.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from monitor.domain.calendar import OfficeCalendar

WORKING_DAY_SECONDS = 9 * 3600  # KKiK: one working day = 9 office hours

# A calendar validated by build_calendar opens at least one weekday, but closed_dates may
# still hide every opening for a while; beyond this a search is a configuration error.
_SEARCH_LIMIT_DAYS = 3660
_ONE_DAY = timedelta(days=1)
# No answer comes years after its question: a message dated further than this from its probe
# has a broken date (a header, a server clock), a defect to report, not a time to measure.
REPLY_HORIZON = timedelta(days=3 * 366)
# Working time is never summed over more than this: each year costs a table of its days, so
# an absurd span (year 9000) would be seconds of work, and the last years overflow.
MAX_SPAN = timedelta(days=50 * 366)


class SpanTooLong(ValueError):
    """A span of working time longer than MAX_SPAN was asked for."""


Span = tuple[float, float]  # [opening, closing) as POSIX seconds


@dataclass(frozen=True)
class _YearTable:
    """Prefix sums over one calendar year: index i = before day i (Jan 1 is day 0)."""

    seconds_before: tuple[float, ...]
    working_days_before: tuple[int, ...]


def is_working_day(cal: OfficeCalendar, day: date) -> bool:
    """True when the office has hours on ``day`` and the date is not closed."""
    return bool(cal.hours[day.weekday()]) and day not in cal.closed_dates


def is_open(cal: OfficeCalendar, at: datetime) -> bool:
    """True when the office is open at the instant ``at`` (openings inclusive, closings not)."""
    moment = _timestamp(at)
    return any(start <= moment < end for start, end in _spans(cal, _local_date(cal, at)))


def next_opening(cal: OfficeCalendar, at: datetime) -> datetime:
    """``at`` itself when open, else the next opening; in the calendar's time zone."""
    moment = _timestamp(at)
    day = _local_date(cal, at)
    for _ in range(_SEARCH_LIMIT_DAYS):
        for start, end in _spans(cal, day):
            if moment < end:
                return at.astimezone(cal.timezone) if start <= moment else _instant(cal, start)
        day += _ONE_DAY
    raise ValueError(f"calendar {cal.name!r} has no opening within {_SEARCH_LIMIT_DAYS} days")


def within_horizon(start: datetime, end: datetime, horizon: timedelta = REPLY_HORIZON) -> bool:
    """Whether ``end`` lies at most ``horizon`` after ``start`` (any time before is within)."""
    return _timestamp(end) - _timestamp(start) <= horizon.total_seconds()


def working_seconds(cal: OfficeCalendar, start: datetime, end: datetime) -> float:
    """Office seconds in [start, end); 0 when end <= start; SpanTooLong beyond MAX_SPAN."""
    begin, finish = _timestamp(start), _timestamp(end)
    if finish <= begin:
        return 0.0
    _require_bounded(begin, finish)
    first, last = _local_date(cal, start), _local_date(cal, end)
    if first == last:
        return _overlap(_spans(cal, first), begin, finish)
    whole_days, _ = _between(cal, first + _ONE_DAY, last)
    head = _overlap(_spans(cal, first), begin, float("inf"))
    tail = _overlap(_spans(cal, last), float("-inf"), finish)
    return head + whole_days + tail


def add_working_seconds(cal: OfficeCalendar, start: datetime, seconds: float) -> datetime:
    """The earliest instant t with working_seconds(cal, start, t) == seconds.

    So a sum that ends exactly at a closing gives that closing (17:00), not the next
    opening. ``seconds`` must not be negative. The result is in the calendar's time zone.
    """
    moment = _timestamp(start)
    if seconds < 0:
        raise ValueError(f"cannot add a negative working time ({seconds} s)")
    if seconds == 0:
        return start.astimezone(cal.timezone)
    day = _local_date(cal, start)
    landed, remaining = _consume_day(_spans(cal, day), moment, seconds)
    if landed is not None:
        return _instant(cal, landed)
    day, remaining = _skip_whole_days(cal, day + _ONE_DAY, remaining)
    landed, _ = _consume_day(_spans(cal, day), float("-inf"), remaining)
    if landed is None:  # _skip_whole_days stops on the day that holds the remainder
        raise AssertionError("working-time table is inconsistent")
    return _instant(cal, landed)


def working_days_between(cal: OfficeCalendar, start: datetime, end: datetime) -> int:
    """Whole working days elapsed: working days all of whose office hours lie in [start, end].

    A probe sent on Monday at 10:00 has 0 whole working days behind it on Tuesday at 16:59
    and 1 at Tuesday 17:00; one sent on Monday at 07:00 has 1 already at Monday 17:00.
    """
    if _timestamp(end) <= _timestamp(start):
        return 0
    _require_bounded(_timestamp(start), _timestamp(end))
    first, last = _first_whole_day(cal, start), _last_whole_day(cal, end)
    if last < first:
        return 0
    _, count = _between(cal, first, last + _ONE_DAY)
    return count


def working_days_deadline(cal: OfficeCalendar, start: datetime, days: int) -> datetime:
    """The instant at which working_days_between(cal, start, ·) first reaches ``days``.

    That is the last closing of the ``days``-th whole working day after ``start``
    (``start`` itself for 0), in the calendar's time zone.
    """
    _timestamp(start)
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    if days == 0:
        return start.astimezone(cal.timezone)
    day, seen = _first_whole_day(cal, start), 0
    for _ in range(_SEARCH_LIMIT_DAYS + days):
        spans = _spans(cal, day)
        seen += bool(spans)
        if seen == days:
            return _instant(cal, spans[-1][1])
        day += _ONE_DAY
    raise ValueError(f"calendar {cal.name!r} has too few working days to reach {days}")


def _require_bounded(begin: float, finish: float) -> None:
    if finish - begin > MAX_SPAN.total_seconds():
        days = (finish - begin) / 86400
        raise SpanTooLong(f"a span of {days:.0f} days is beyond {MAX_SPAN.days} days")


def _timestamp(at: datetime) -> float:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} given; working time needs tz-aware")
    return at.timestamp()


def _local_date(cal: OfficeCalendar, at: datetime) -> date:
    return at.astimezone(cal.timezone).date()


def _instant(cal: OfficeCalendar, moment: float) -> datetime:
    return datetime.fromtimestamp(moment, cal.timezone)


def _wall_to_timestamp(cal: OfficeCalendar, day: date, wall: time) -> float:
    return datetime.combine(day, wall, tzinfo=cal.timezone).timestamp()


@functools.lru_cache(maxsize=4096)
def _spans(cal: OfficeCalendar, day: date) -> tuple[Span, ...]:
    return _compute_spans(cal, day)


def _compute_spans(cal: OfficeCalendar, day: date) -> tuple[Span, ...]:
    """Open spans of one local date, as instants; empty on closed days."""
    if not is_working_day(cal, day):
        return ()
    spans = (
        (_wall_to_timestamp(cal, day, opening), _wall_to_timestamp(cal, day, closing))
        for opening, closing in cal.hours[day.weekday()]
    )
    # An interval made only of a skipped DST hour has no instants at all.
    return tuple((start, end) for start, end in spans if start < end)


def _overlap(spans: tuple[Span, ...], begin: float, finish: float) -> float:
    return sum(max(0.0, min(end, finish) - max(start, begin)) for start, end in spans)


def _consume_day(
    spans: tuple[Span, ...], moment: float, seconds: float
) -> tuple[float | None, float]:
    """Spend ``seconds`` of the spans after ``moment``: (landing instant or None, remainder)."""
    remaining = seconds
    for start, end in spans:
        if end <= moment:
            continue
        begin = max(start, moment)
        if remaining <= end - begin:
            return begin + remaining, 0.0
        remaining -= end - begin
    return None, remaining


def _skip_whole_days(cal: OfficeCalendar, day: date, seconds: float) -> tuple[date, float]:
    """Skip from ``day`` the whole days whose office time is all spent: (day, remainder)."""
    remaining = seconds
    for _ in range(_SEARCH_LIMIT_DAYS // 365 + int(seconds // WORKING_DAY_SECONDS) + 1):
        rest_of_year, _ = _between(cal, day, date(day.year + 1, 1, 1))
        if remaining <= rest_of_year:
            break
        remaining -= rest_of_year
        day = date(day.year + 1, 1, 1)
    else:
        raise ValueError(f"calendar {cal.name!r} has too little office time to add {seconds} s")
    day, remaining = _jump_within_year(cal, day, remaining)
    while True:  # normally no turn at all; absorbs float rounding of the jump
        today = _day_seconds(cal, day)
        if today > 0 and remaining <= today:
            return day, remaining
        remaining -= today
        day += _ONE_DAY


def _jump_within_year(cal: OfficeCalendar, day: date, seconds: float) -> tuple[date, float]:
    """Jump to the day of this year on which ``seconds`` of office time run out."""
    cumulative = _year_table(cal, day.year).seconds_before
    index = _day_index(day)
    target = cumulative[index] + seconds
    landing = max(index, bisect.bisect_left(cumulative, target, lo=index + 1) - 1)
    return day + timedelta(days=landing - index), target - cumulative[landing]


def _day_seconds(cal: OfficeCalendar, day: date) -> float:
    table = _year_table(cal, day.year)
    index = _day_index(day)
    return table.seconds_before[index + 1] - table.seconds_before[index]


def _first_whole_day(cal: OfficeCalendar, start: datetime) -> date:
    day = _local_date(cal, start)
    spans = _spans(cal, day)
    return day + _ONE_DAY if spans and _timestamp(start) > spans[0][0] else day


def _last_whole_day(cal: OfficeCalendar, end: datetime) -> date:
    day = _local_date(cal, end)
    spans = _spans(cal, day)
    return day - _ONE_DAY if spans and _timestamp(end) < spans[-1][1] else day


def _between(cal: OfficeCalendar, first: date, stop: date) -> tuple[float, int]:
    """(office seconds, working days) of the dates first <= d < stop."""
    if stop <= first:
        return 0.0, 0
    if first.year == stop.year:
        (seconds_stop, days_stop), (seconds_first, days_first) = (
            _before(cal, stop),
            _before(cal, first),
        )
        return seconds_stop - seconds_first, days_stop - days_first
    seconds_first, days_first = _before(cal, first)
    seconds, days = _year_total(cal, first.year)
    seconds, days = seconds - seconds_first, days - days_first
    for year in range(first.year + 1, stop.year):
        year_seconds, year_days = _year_total(cal, year)
        seconds, days = seconds + year_seconds, days + year_days
    seconds_stop, days_stop = _before(cal, stop)
    return seconds + seconds_stop, days + days_stop


def _before(cal: OfficeCalendar, day: date) -> tuple[float, int]:
    table = _year_table(cal, day.year)
    index = _day_index(day)
    return table.seconds_before[index], table.working_days_before[index]


def _year_total(cal: OfficeCalendar, year: int) -> tuple[float, int]:
    table = _year_table(cal, year)
    return table.seconds_before[-1], table.working_days_before[-1]


def _day_index(day: date) -> int:
    return day.toordinal() - date(day.year, 1, 1).toordinal()


@functools.lru_cache(maxsize=1024)
def _year_table(cal: OfficeCalendar, year: int) -> _YearTable:
    seconds, days = [0.0], [0]
    day = date(year, 1, 1)
    while day.year == year:
        spans = _compute_spans(cal, day)
        seconds.append(seconds[-1] + sum(end - start for start, end in spans))
        days.append(days[-1] + bool(spans))
        day += _ONE_DAY
    return _YearTable(seconds_before=tuple(seconds), working_days_before=tuple(days))

"""Report periods: a year, a quarter, a month or any range of whole days.

A period is a run of local calendar days ``first_day`` .. ``last_day`` (both included); its
instants are ``[midnight of first_day, midnight after last_day)`` in the time zone the report
is made in (the Swedish calendar's Europe/Stockholm by default). A probe belongs to the period
in which it was sent. The previous period is the one of the same kind just before: 2025 for
2026, 2026-Q2 for 2026-Q3, 2026-08 for 2026-09, and for a range the same number of days ending
the day before it starts.

The default period is the current calendar year, evaluated as of now (year to date): KKiK is an
annual measurement, and a year to date is never empty for long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

_YEAR = re.compile(r"(\d{4})")
_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
PERIOD_FORMS = "YYYY, YYYY-Qn or YYYY-MM"
# The days a report can cover, its previous period included: no probe predates 1970, and
# the last representable days have no next midnight or UTC instant to bound them with.
FIRST_REPORT_DAY = date(1970, 1, 1)
LAST_REPORT_DAY = date(9998, 12, 31)


class PeriodKind(StrEnum):
    YEAR = "year"
    QUARTER = "quarter"
    MONTH = "month"
    RANGE = "range"


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    first_day: date
    last_day: date  # included

    @property
    def label(self) -> str:
        if self.kind is PeriodKind.YEAR:
            return f"{self.first_day.year:04d}"
        if self.kind is PeriodKind.QUARTER:
            return f"{self.first_day.year:04d}-Q{(self.first_day.month - 1) // 3 + 1}"
        if self.kind is PeriodKind.MONTH:
            return f"{self.first_day:%Y-%m}"
        return f"{self.first_day.isoformat()}..{self.last_day.isoformat()}"

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) as aware instants: local midnights in ``zone``."""
        return _midnight(self.first_day, zone), _midnight(self.last_day + timedelta(days=1), zone)

    def previous(self) -> Period:
        if self.kind is PeriodKind.YEAR:
            return year(self.first_day.year - 1)
        if self.kind is PeriodKind.QUARTER:
            return _quarter_starting(_months_before(self.first_day, 3))
        if self.kind is PeriodKind.MONTH:
            return month(*_year_month(_months_before(self.first_day, 1)))
        last = self.first_day - timedelta(days=1)
        return Period(PeriodKind.RANGE, last - timedelta(days=self.days - 1), last)

    def months(self) -> tuple[Period, ...]:
        """The calendar months the period touches, each clipped to the period."""
        found: list[Period] = []
        cursor = self.first_day.replace(day=1)
        while cursor <= self.last_day:
            whole = month(cursor.year, cursor.month)
            first, last = max(whole.first_day, self.first_day), min(whole.last_day, self.last_day)
            kind = (
                PeriodKind.MONTH
                if (first, last) == (whole.first_day, whole.last_day)
                else (PeriodKind.RANGE)
            )
            found.append(Period(kind, first, last))
            cursor = whole.last_day + timedelta(days=1)
        return tuple(found)


def year(number: int) -> Period:
    return Period(PeriodKind.YEAR, date(number, 1, 1), date(number, 12, 31))


def quarter(number: int, which: int) -> Period:
    if not 1 <= which <= 4:
        raise ValueError(f"quarter must be 1 to 4, got {which}")
    return _quarter_starting(date(number, 3 * which - 2, 1))


def month(number: int, which: int) -> Period:
    if not 1 <= which <= 12:
        raise ValueError(f"month must be 01 to 12, got {which:02d}")
    first = date(number, which, 1)
    return Period(PeriodKind.MONTH, first, _months_after(first, 1) - timedelta(days=1))


def date_range(first_day: date, last_day: date) -> Period:
    """The days from ``first_day`` to ``last_day``, both included."""
    if last_day < first_day:
        raise ValueError(f"the period ends ({last_day}) before it starts ({first_day})")
    return Period(PeriodKind.RANGE, first_day, last_day)


def parse_period(text: str) -> Period:
    """``2026`` | ``2026-Q3`` | ``2026-09``; ValueError names the accepted forms."""
    value = text.strip()
    try:
        if found := _YEAR.fullmatch(value):
            return year(int(found[1]))
        if found := _QUARTER.fullmatch(value):
            return quarter(int(found[1]), int(found[2]))
        if found := _MONTH.fullmatch(value):
            return month(int(found[1]), int(found[2]))
    except ValueError as error:
        raise ValueError(f"period {text!r}: {error}") from error
    raise ValueError(f"period {text!r} is not one of {PERIOD_FORMS}")


def parse_day(text: str) -> date:
    """An ISO date ``YYYY-MM-DD``; ValueError with the offending text."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError as error:
        raise ValueError(f"date {text!r} is not a YYYY-MM-DD date") from error


def choose_period(
    *, period: str | None, first: str | None, last: str | None, today: date
) -> Period:
    """The period a report asked for: --period, or --from/--to, or the current year.

    ``--from`` alone runs to ``today``; ``--to`` alone starts on 1 January of its year.
    """
    if period is not None and (first is not None or last is not None):
        raise ValueError("give either --period or --from/--to, not both")
    if period is not None:
        return reportable(parse_period(period))
    if first is None and last is None:
        return year(today.year)
    last_day = parse_day(last) if last is not None else today
    first_day = parse_day(first) if first is not None else date(last_day.year, 1, 1)
    return reportable(date_range(first_day, last_day))


def reportable(period: Period) -> Period:
    """``period`` when it and its previous period lie within the days a report can cover."""
    try:
        first = period.previous().first_day
    except (ValueError, OverflowError):
        first = date.min
    if first < FIRST_REPORT_DAY or period.last_day > LAST_REPORT_DAY:
        raise ValueError(
            f"period {period.label} is out of range: a report covers {FIRST_REPORT_DAY} to "
            f"{LAST_REPORT_DAY}, the previous period included"
        )
    return period


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=zone)


def _quarter_starting(first: date) -> Period:
    return Period(PeriodKind.QUARTER, first, _months_after(first, 3) - timedelta(days=1))


def _year_month(day: date) -> tuple[int, int]:
    return day.year, day.month


def _months_after(first: date, count: int) -> date:
    index = first.year * 12 + first.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _months_before(first: date, count: int) -> date:
    return _months_after(first, -count)

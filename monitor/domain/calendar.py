"""Office calendars: when a municipality's contact centre is open.

A calendar is a plain value: a time zone, office hours per weekday (Monday = 0, several
intervals per day allowed) and a set of closed dates (public holidays and extra closed
days such as klämdagar). The working-time arithmetic lives in ``worktime``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

DEFAULT_OPENING = time(8, 0)
DEFAULT_CLOSING = time(17, 0)
DEFAULT_YEARS = range(2000, 2051)
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# In the holidays package Sweden's allmänna helgdagar are "public"; midsommarafton, julafton
# and nyårsafton (closed in practice though not by law) are "de_facto". "bank" and "optional"
# add half days and klämdagar, which are not whole closed days.
_CATEGORIES_BY_COUNTRY: Mapping[str, tuple[str, ...]] = {"SE": ("public", "de_facto")}
# Sweden counts every Sunday as a holiday; older holidays releases list them by default,
# which would close the Sundays of a calendar that is open on Sundays.
_OPTIONS_BY_COUNTRY: Mapping[str, Mapping[str, Any]] = {"SE": {"include_sundays": False}}

Interval = tuple[time, time]


@dataclass(frozen=True)
class OfficeCalendar:
    """Office hours in local wall time of ``timezone``; ``hours[weekday]`` is sorted intervals."""

    name: str
    timezone: ZoneInfo
    hours: tuple[tuple[Interval, ...], ...]  # 7 entries, Monday = 0
    closed_dates: frozenset[date]  # holidays + extra closed days


def build_calendar(
    *,
    name: str = "default",
    country: str = "SE",
    subdivision: str | None = None,
    timezone: str = "Europe/Stockholm",
    hours: Mapping[int, Sequence[Interval]] | None = None,
    extra_closed: Iterable[date] = (),
    years: range = DEFAULT_YEARS,
) -> OfficeCalendar:
    """A validated calendar; ``hours=None`` means Monday–Friday 08:00–17:00.

    ``hours`` maps weekday (Monday = 0) to its intervals; a weekday left out is closed.
    Holidays are known only for ``years``: outside them only weekdays and ``extra_closed``
    count. Raises ValueError for an unknown time zone, country or subdivision, and for
    intervals that are empty, unsorted or overlapping.
    """
    return OfficeCalendar(
        name=name,
        timezone=_zone(timezone),
        hours=_week_hours(hours),
        closed_dates=_holidays(country, subdivision, years) | frozenset(extra_closed),
    )


@functools.cache
def swedish_default_calendar() -> OfficeCalendar:
    """Mon–Fri 08:00–17:00 Europe/Stockholm, closed on Swedish holidays and their eves."""
    return build_calendar(name="default")


def _zone(key: str) -> ZoneInfo:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {key!r}") from error


def _week_hours(hours: Mapping[int, Sequence[Interval]] | None) -> tuple[tuple[Interval, ...], ...]:
    if hours is None:
        weekdays = ((DEFAULT_OPENING, DEFAULT_CLOSING),)
        return (weekdays,) * 5 + ((), ())
    unknown = sorted(day for day in hours if day not in range(7))
    if unknown:
        raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {unknown}")
    week = tuple(_day_hours(WEEKDAY_NAMES[day], hours.get(day, ())) for day in range(7))
    if not any(week):
        raise ValueError("office hours are empty: the office would never open")
    return week


def _day_hours(day_name: str, intervals: Sequence[Interval]) -> tuple[Interval, ...]:
    checked = tuple((start, end) for start, end in intervals)
    for start, end in checked:
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError(f"{day_name}: office hours are local wall times, without tzinfo")
        if not start < end:
            raise ValueError(
                f"{day_name}: interval {start:%H:%M}-{end:%H:%M} must start before end"
            )
    for (_, previous_end), (start, end) in itertools.pairwise(checked):
        if start < previous_end:
            raise ValueError(
                f"{day_name}: interval {start:%H:%M}-{end:%H:%M} must come after and not "
                f"overlap the one ending {previous_end:%H:%M}"
            )
    return checked


def _holidays(country: str, subdivision: str | None, years: range) -> frozenset[date]:
    code = country.upper()
    try:
        known = holidays.country_holidays(
            code,
            subdiv=subdivision,
            years=years,
            categories=_CATEGORIES_BY_COUNTRY.get(code, ("public",)),
            **_OPTIONS_BY_COUNTRY.get(code, {}),
        )
    except NotImplementedError as error:
        raise ValueError(f"no holiday calendar for country {country!r}: {error}") from error
    return frozenset(known.keys())

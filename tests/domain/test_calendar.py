from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.domain.calendar import OfficeCalendar, build_calendar, swedish_default_calendar

EIGHT_TO_FIVE = ((time(8), time(17)),)


def test_default_hours_are_monday_to_friday_eight_to_five() -> None:
    cal = build_calendar()
    assert cal.hours == (EIGHT_TO_FIVE,) * 5 + ((), ())
    assert cal.timezone == ZoneInfo("Europe/Stockholm")


def test_swedish_default_calendar_is_built_once() -> None:
    assert swedish_default_calendar() is swedish_default_calendar()
    assert isinstance(swedish_default_calendar(), OfficeCalendar)


@pytest.mark.parametrize(
    ("day", "what"),
    [
        (date(2026, 1, 1), "nyårsdagen"),
        (date(2026, 1, 6), "trettondedag jul"),
        (date(2026, 4, 3), "långfredagen"),
        (date(2026, 4, 6), "annandag påsk"),
        (date(2026, 5, 1), "första maj"),
        (date(2026, 5, 14), "Kristi himmelsfärdsdag"),
        (date(2026, 6, 6), "nationaldagen"),
        (date(2026, 6, 19), "midsommarafton (de facto)"),
        (date(2026, 10, 31), "alla helgons dag"),
        (date(2026, 12, 24), "julafton (de facto)"),
        (date(2026, 12, 25), "juldagen"),
        (date(2026, 12, 26), "annandag jul"),
        (date(2026, 12, 31), "nyårsafton (de facto)"),
    ],
)
def test_swedish_default_calendar_closes_on_holidays_and_their_eves(day: date, what: str) -> None:
    assert day in swedish_default_calendar().closed_dates, what


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 1, 5),  # trettondagsafton: an ordinary working day
        date(2026, 4, 30),  # valborgsmässoafton
        date(2026, 5, 15),  # klämdag after Kristi himmelsfärd: open unless configured
        date(2026, 11, 2),
    ],
)
def test_eves_that_are_not_closed_stay_open(day: date) -> None:
    assert day not in swedish_default_calendar().closed_dates


def test_extra_closed_dates_are_added_to_the_holidays() -> None:
    cal = build_calendar(extra_closed=[date(2026, 5, 15)])
    assert date(2026, 5, 15) in cal.closed_dates
    assert date(2026, 5, 14) in cal.closed_dates


def test_holidays_are_known_only_for_the_years_asked() -> None:
    cal = build_calendar(years=range(2026, 2027))
    assert date(2026, 12, 25) in cal.closed_dates
    assert date(2027, 12, 24) not in cal.closed_dates


def test_other_country_uses_its_public_holidays() -> None:
    cal = build_calendar(country="NO", timezone="Europe/Oslo", years=range(2026, 2027))
    assert date(2026, 5, 17) in cal.closed_dates  # grunnlovsdagen
    assert date(2026, 6, 6) not in cal.closed_dates


def test_subdivision_adds_regional_holidays() -> None:
    bavaria = build_calendar(country="DE", subdivision="BY", timezone="Europe/Berlin")
    berlin = build_calendar(country="DE", subdivision="BE", timezone="Europe/Berlin")
    assert date(2026, 1, 6) in bavaria.closed_dates
    assert date(2026, 1, 6) not in berlin.closed_dates


def test_several_intervals_per_day_and_closed_weekdays() -> None:
    lunch_break = [(time(8), time(12)), (time(13), time(17))]
    cal = build_calendar(hours={0: lunch_break, 5: [(time(10), time(14))]})
    assert cal.hours[0] == ((time(8), time(12)), (time(13), time(17)))
    assert cal.hours[1] == ()
    assert cal.hours[5] == ((time(10), time(14)),)


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({0: [(time(17), time(8))]}, "must start before end"),
        ({0: [(time(8), time(8))]}, "must start before end"),
        ({0: [(time(13), time(17)), (time(8), time(12))]}, "must come after"),
        ({0: [(time(8), time(12)), (time(11), time(17))]}, "not overlap"),
        ({7: [(time(8), time(17))]}, "weekday must be 0"),
        ({}, "never open"),
        ({0: []}, "never open"),
    ],
)
def test_invalid_office_hours_are_refused_with_a_clear_message(
    hours: dict[int, list[tuple[time, time]]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_calendar(hours=hours)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"timezone": "Europe/Nowhere"}, "unknown time zone"),
        ({"country": "XX"}, "no holiday calendar"),
        ({"country": "SE", "subdivision": "ZZ"}, "no holiday calendar"),
    ],
)
def test_unknown_zone_country_or_subdivision_is_a_value_error(
    arguments: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_calendar(**arguments)  # type: ignore[arg-type]


def test_ordinary_sundays_are_not_holidays_for_a_calendar_open_on_sundays() -> None:
    sundays = [date(2026, 3, 1) + timedelta(weeks=week) for week in range(52)]
    closed = swedish_default_calendar().closed_dates
    assert [day for day in sundays if day in closed] == [
        date(2026, 4, 5),  # påskdagen
        date(2026, 5, 24),  # pingstdagen
    ]

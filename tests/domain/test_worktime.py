from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.domain.calendar import OfficeCalendar, build_calendar, swedish_default_calendar
from monitor.domain.worktime import (
    MAX_SPAN,
    REPLY_HORIZON,
    WORKING_DAY_SECONDS,
    SpanTooLong,
    add_working_seconds,
    is_open,
    is_working_day,
    next_opening,
    within_horizon,
    working_days_between,
    working_days_deadline,
    working_seconds,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
HOUR = 3600.0
SE = swedish_default_calendar()
LUNCH_BREAK = build_calendar(
    name="lunch", hours={day: [(time(8), time(12)), (time(13), time(17))] for day in range(5)}
)
KLAMDAG_CLOSED = build_calendar(name="klämdag", extra_closed=[date(2026, 5, 15)])
# Open every day across the 02:00–03:00 DST hour, to see the hour vanish and repeat.
NIGHT_SHIFT = build_calendar(
    name="night", hours={day: [(time(1), time(4)), (time(9), time(10))] for day in range(7)}
)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=STOCKHOLM)


# Every Swedish holiday (allmän helgdag + the de facto closed eves) of 2025–2027.
SWEDISH_HOLIDAYS_2025_2027 = {
    date(2025, 1, 1): "nyårsdagen",
    date(2025, 1, 6): "trettondedag jul",
    date(2025, 4, 18): "långfredagen",
    date(2025, 4, 20): "påskdagen",
    date(2025, 4, 21): "annandag påsk",
    date(2025, 5, 1): "första maj",
    date(2025, 5, 29): "Kristi himmelsfärdsdag",
    date(2025, 6, 6): "nationaldagen",
    date(2025, 6, 8): "pingstdagen",
    date(2025, 6, 20): "midsommarafton",
    date(2025, 6, 21): "midsommardagen",
    date(2025, 11, 1): "alla helgons dag (lördag)",
    date(2025, 12, 24): "julafton",
    date(2025, 12, 25): "juldagen",
    date(2025, 12, 26): "annandag jul",
    date(2025, 12, 31): "nyårsafton",
    date(2026, 1, 1): "nyårsdagen",
    date(2026, 1, 6): "trettondedag jul",
    date(2026, 4, 3): "långfredagen",
    date(2026, 4, 5): "påskdagen",
    date(2026, 4, 6): "annandag påsk",
    date(2026, 5, 1): "första maj",
    date(2026, 5, 14): "Kristi himmelsfärdsdag",
    date(2026, 5, 24): "pingstdagen",
    date(2026, 6, 6): "nationaldagen (lördag)",
    date(2026, 6, 19): "midsommarafton",
    date(2026, 6, 20): "midsommardagen",
    date(2026, 10, 31): "alla helgons dag (lördag)",
    date(2026, 12, 24): "julafton",
    date(2026, 12, 25): "juldagen",
    date(2026, 12, 26): "annandag jul",
    date(2026, 12, 31): "nyårsafton",
    date(2027, 1, 1): "nyårsdagen",
    date(2027, 1, 6): "trettondedag jul",
    date(2027, 3, 26): "långfredagen",
    date(2027, 3, 28): "påskdagen",
    date(2027, 3, 29): "annandag påsk",
    date(2027, 5, 1): "första maj (lördag)",
    date(2027, 5, 6): "Kristi himmelsfärdsdag",
    date(2027, 5, 16): "pingstdagen",
    date(2027, 6, 6): "nationaldagen (söndag)",
    date(2027, 6, 25): "midsommarafton",
    date(2027, 6, 26): "midsommardagen",
    date(2027, 11, 6): "alla helgons dag (lördag)",
    date(2027, 12, 24): "julafton",
    date(2027, 12, 25): "juldagen",
    date(2027, 12, 26): "annandag jul",
    date(2027, 12, 31): "nyårsafton",
}


@pytest.mark.parametrize(("day", "name"), sorted(SWEDISH_HOLIDAYS_2025_2027.items()))
def test_swedish_holiday_has_no_working_time(day: date, name: str) -> None:
    midnight = datetime.combine(day, time(0), tzinfo=STOCKHOLM)
    assert not is_working_day(SE, day), name
    assert working_seconds(SE, midnight, midnight + timedelta(days=1)) == 0.0
    assert not is_open(SE, midnight.replace(hour=10))


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2025, 11, 1), "alla helgons dag"),
        (date(2026, 10, 31), "alla helgons dag"),
        (date(2027, 11, 6), "alla helgons dag"),
    ],
)
def test_alla_helgons_dag_falls_on_a_saturday(day: date, name: str) -> None:
    assert day.weekday() == 5, name


def test_closed_weekdays_2025_to_2027_are_exactly_the_holidays() -> None:
    day, closed = date(2025, 1, 1), set()
    while day.year <= 2027:
        if day.weekday() < 5 and not is_working_day(SE, day):
            closed.add(day)
        day += timedelta(days=1)
    expected = {day for day in SWEDISH_HOLIDAYS_2025_2027 if day.weekday() < 5}
    assert closed == expected


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 3, 2), True),  # Monday
        (date(2026, 3, 6), True),  # Friday
        (date(2026, 3, 7), False),  # Saturday
        (date(2026, 3, 8), False),  # Sunday
        (date(2026, 1, 5), True),  # trettondagsafton is an ordinary day
        (date(2026, 4, 30), True),  # valborgsmässoafton
        (date(2026, 5, 15), True),  # klämdag: open unless configured
    ],
)
def test_weekdays_work_and_weekends_rest(day: date, working: bool) -> None:
    assert is_working_day(SE, day) is working


def test_extra_closed_klamdag_is_not_a_working_day() -> None:
    assert not is_working_day(KLAMDAG_CLOSED, date(2026, 5, 15))


@pytest.mark.parametrize(
    ("cal", "start", "end", "hours"),
    [
        # same day, inside office hours
        (SE, at(2026, 3, 2, 9), at(2026, 3, 2, 11, 30), 2.5),
        # exactly one working day: 08:00–17:00 and 10:00 to 10:00 next day
        (SE, at(2026, 3, 2, 8), at(2026, 3, 2, 17), 9),
        (SE, at(2026, 3, 2, 10), at(2026, 3, 3, 10), 9),
        # sent before 08:00: the clock starts at 08:00
        (SE, at(2026, 3, 2, 7), at(2026, 3, 2, 9), 1),
        (SE, at(2026, 3, 2, 0), at(2026, 3, 2, 8), 0),
        # sent after 17:00: the clock starts next morning
        (SE, at(2026, 3, 2, 18), at(2026, 3, 3, 8, 30), 0.5),
        (SE, at(2026, 3, 2, 17), at(2026, 3, 2, 23, 59), 0),
        # across midnight and the weekend
        (SE, at(2026, 3, 6, 16), at(2026, 3, 9, 9), 2),
        (SE, at(2026, 3, 6, 18), at(2026, 3, 9, 8), 0),
        (SE, at(2026, 3, 7, 10), at(2026, 3, 8, 15), 0),
        # across midsommarafton + weekend: Thursday 16:00 to Monday 09:00
        (SE, at(2026, 6, 18, 16), at(2026, 6, 22, 9), 2),
        # across Kristi himmelsfärd and the klämdag, open and closed
        (SE, at(2026, 5, 13, 16), at(2026, 5, 18, 9), 11),
        (KLAMDAG_CLOSED, at(2026, 5, 13, 16), at(2026, 5, 18, 9), 2),
        # across påsk: Thursday 16:00 to Tuesday 09:00 skips långfredag and annandag påsk
        (SE, at(2026, 4, 2, 16), at(2026, 4, 7, 9), 2),
        # across jul and nyår: 2026-12-23 16:00 to 2027-01-04 09:00 (28–30 Dec open)
        (SE, at(2026, 12, 23, 16), at(2027, 1, 4, 9), 1 + 3 * 9 + 1),
        # DST: spring forward Sun 2026-03-29, fall back Sun 2026-10-25
        (SE, at(2026, 3, 27, 16), at(2026, 3, 30, 9), 2),
        (SE, at(2026, 10, 23, 16), at(2026, 10, 26, 9), 2),
        (SE, at(2026, 3, 23, 8), at(2026, 4, 2, 17), 9 * 9),
        # a calendar open across 02:00–03:00: the spring hour vanishes, the autumn one repeats
        (NIGHT_SHIFT, at(2026, 3, 29, 0), at(2026, 3, 30, 0), 2 + 1),
        (NIGHT_SHIFT, at(2026, 10, 25, 0), at(2026, 10, 26, 0), 4 + 1),
        (NIGHT_SHIFT, at(2026, 3, 28, 0), at(2026, 3, 29, 0), 3 + 1),
        # 1.5 h on the first day, 210 whole days of 4 h less the lost hour and the 9
        # holidays from långfredagen to midsommardagen, 3.5 h on the last
        (NIGHT_SHIFT, at(2026, 3, 28, 3, 30), at(2026, 10, 25, 3, 30), 1.5 + 201 * 4 - 1 + 3.5),
        # several intervals per day: the lunch hour is not counted
        (LUNCH_BREAK, at(2026, 3, 2, 11), at(2026, 3, 2, 14), 2),
        (LUNCH_BREAK, at(2026, 3, 2, 12, 15), at(2026, 3, 2, 12, 45), 0),
        (LUNCH_BREAK, at(2026, 3, 2, 12, 30), at(2026, 3, 3, 12, 30), 8),
        # end before or at start
        (SE, at(2026, 3, 2, 11), at(2026, 3, 2, 10), 0),
        (SE, at(2026, 3, 2, 11), at(2026, 3, 2, 11), 0),
    ],
)
def test_working_seconds_counts_only_office_hours(
    cal: OfficeCalendar, start: datetime, end: datetime, hours: float
) -> None:
    assert working_seconds(cal, start, end) == hours * HOUR


def test_working_seconds_over_a_year_sums_every_working_day() -> None:
    # 2026 has 251 Swedish working days.
    assert working_seconds(SE, at(2026, 1, 1), at(2027, 1, 1)) == 251 * 9 * HOUR
    assert working_days_between(SE, at(2026, 1, 1), at(2027, 1, 1)) == 251


def test_working_seconds_over_decades_and_past_the_holiday_years() -> None:
    short = build_calendar(name="short", years=range(2026, 2027))
    seconds = working_seconds(short, at(2025, 1, 1), at(2031, 1, 1))
    weekdays = sum(
        1
        for offset in range((date(2031, 1, 1) - date(2025, 1, 1)).days)
        if (date(2025, 1, 1) + timedelta(days=offset)).weekday() < 5
    )
    assert seconds == (weekdays - 10) * 9 * HOUR  # 2026 has 10 closed weekdays


def test_instants_in_other_zones_are_read_in_the_calendar_zone() -> None:
    start = datetime(2026, 3, 2, 7, tzinfo=UTC)  # 08:00 in Stockholm
    end = datetime(2026, 3, 2, 16, tzinfo=UTC)  # 17:00 in Stockholm
    assert working_seconds(SE, start, end) == 9 * HOUR
    assert is_open(SE, start)
    assert not is_open(SE, end)


@pytest.mark.parametrize(
    ("cal", "moment", "open_"),
    [
        (SE, at(2026, 3, 2, 7, 59), False),
        (SE, at(2026, 3, 2, 8), True),
        (SE, at(2026, 3, 2, 16, 59), True),
        (SE, at(2026, 3, 2, 17), False),
        (SE, at(2026, 3, 7, 12), False),
        (SE, at(2026, 6, 19, 10), False),
        (LUNCH_BREAK, at(2026, 3, 2, 12, 30), False),
        (LUNCH_BREAK, at(2026, 3, 2, 13), True),
    ],
)
def test_is_open_includes_opening_and_excludes_closing(
    cal: OfficeCalendar, moment: datetime, open_: bool
) -> None:
    assert is_open(cal, moment) is open_


@pytest.mark.parametrize(
    ("cal", "moment", "opening"),
    [
        (SE, at(2026, 3, 2, 10, 15), at(2026, 3, 2, 10, 15)),
        (SE, at(2026, 3, 2, 8), at(2026, 3, 2, 8)),
        (SE, at(2026, 3, 2, 6), at(2026, 3, 2, 8)),
        (SE, at(2026, 3, 2, 17), at(2026, 3, 3, 8)),
        (SE, at(2026, 3, 6, 17, 30), at(2026, 3, 9, 8)),
        (SE, at(2026, 6, 18, 17), at(2026, 6, 22, 8)),
        (SE, at(2026, 12, 23, 18), at(2026, 12, 28, 8)),
        (SE, at(2026, 3, 27, 18), at(2026, 3, 30, 8)),  # over the spring DST weekend
        (LUNCH_BREAK, at(2026, 3, 2, 12), at(2026, 3, 2, 13)),
        (NIGHT_SHIFT, at(2026, 3, 29, 1, 59), at(2026, 3, 29, 1, 59)),
    ],
)
def test_next_opening_is_the_moment_itself_when_open(
    cal: OfficeCalendar, moment: datetime, opening: datetime
) -> None:
    result = next_opening(cal, moment)
    assert result == opening
    assert result.tzinfo == STOCKHOLM


def test_next_opening_answers_in_the_calendar_zone() -> None:
    result = next_opening(SE, datetime(2026, 3, 2, 5, tzinfo=UTC))
    assert result.tzinfo == STOCKHOLM
    assert result == datetime(2026, 3, 2, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cal", "start", "seconds", "expected"),
    [
        (SE, at(2026, 3, 2, 10), 0, at(2026, 3, 2, 10)),
        (SE, at(2026, 3, 2, 10), 9 * HOUR, at(2026, 3, 3, 10)),
        # ending exactly at a closing gives the closing, not the next opening
        (SE, at(2026, 3, 2, 8), 9 * HOUR, at(2026, 3, 2, 17)),
        (SE, at(2026, 3, 2, 7), 9 * HOUR, at(2026, 3, 2, 17)),
        (SE, at(2026, 3, 2, 18), 1, at(2026, 3, 3, 8, 0) + timedelta(seconds=1)),
        (SE, at(2026, 3, 6, 16), 2 * HOUR, at(2026, 3, 9, 9)),
        (SE, at(2026, 6, 18, 16), 2 * HOUR, at(2026, 6, 22, 9)),
        (SE, at(2026, 1, 1), 251 * 9 * HOUR, at(2026, 12, 30, 17)),
        (SE, at(2026, 1, 1), 251 * 9 * HOUR + 1, at(2027, 1, 4, 8) + timedelta(seconds=1)),
        (KLAMDAG_CLOSED, at(2026, 5, 13, 16), 2 * HOUR, at(2026, 5, 18, 9)),
        (LUNCH_BREAK, at(2026, 3, 2, 11), HOUR, at(2026, 3, 2, 12)),
        (LUNCH_BREAK, at(2026, 3, 2, 11, 30), HOUR, at(2026, 3, 2, 13, 30)),
        (NIGHT_SHIFT, at(2026, 3, 29, 1, 30), HOUR, at(2026, 3, 29, 3, 30)),
        (NIGHT_SHIFT, at(2026, 10, 25, 1), 3 * HOUR, at(2026, 10, 25, 3)),
    ],
)
def test_add_working_seconds_lands_on_the_earliest_instant(
    cal: OfficeCalendar, start: datetime, seconds: float, expected: datetime
) -> None:
    assert add_working_seconds(cal, start, seconds) == expected


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (at(2026, 3, 2, 10), at(2026, 3, 3, 16, 59), 0),
        (at(2026, 3, 2, 10), at(2026, 3, 3, 17), 1),
        (at(2026, 3, 2, 8), at(2026, 3, 2, 17), 1),
        (at(2026, 3, 2, 7), at(2026, 3, 2, 17), 1),
        (at(2026, 3, 2, 8, 1), at(2026, 3, 2, 23), 0),
        (at(2026, 3, 2, 17), at(2026, 3, 16, 17), 10),
        (at(2026, 6, 18, 16), at(2026, 6, 22, 17), 1),
        (at(2026, 6, 18, 16), at(2026, 7, 3, 17), 10),
        (at(2026, 3, 2, 10), at(2026, 3, 2, 9), 0),
    ],
)
def test_working_days_between_counts_whole_office_days(
    start: datetime, end: datetime, days: int
) -> None:
    assert working_days_between(SE, start, end) == days


@pytest.mark.parametrize(
    ("start", "days", "deadline"),
    [
        (at(2026, 3, 2, 10), 0, at(2026, 3, 2, 10)),
        (at(2026, 3, 2, 10), 1, at(2026, 3, 3, 17)),
        (at(2026, 3, 2, 7), 1, at(2026, 3, 2, 17)),
        (at(2026, 6, 18, 16), 10, at(2026, 7, 3, 17)),
        (at(2026, 12, 22, 12), 3, at(2026, 12, 29, 17)),
    ],
)
def test_working_days_deadline_is_where_the_count_is_reached(
    start: datetime, days: int, deadline: datetime
) -> None:
    result = working_days_deadline(SE, start, days)
    assert result == deadline
    assert working_days_between(SE, start, result) == days
    if days:
        assert working_days_between(SE, start, result - timedelta(microseconds=1)) == days - 1


NAIVE = datetime(2026, 3, 2, 10)


@pytest.mark.parametrize(
    "call",
    [
        lambda: is_open(SE, NAIVE),
        lambda: next_opening(SE, NAIVE),
        lambda: working_seconds(SE, NAIVE, at(2026, 3, 3)),
        lambda: working_seconds(SE, at(2026, 3, 1), NAIVE),
        lambda: add_working_seconds(SE, NAIVE, 60),
        lambda: working_days_between(SE, NAIVE, at(2026, 3, 3)),
        lambda: working_days_deadline(SE, NAIVE, 1),
    ],
)
def test_naive_datetimes_are_refused(call: object) -> None:
    with pytest.raises(ValueError, match="naive"):
        call()  # type: ignore[operator]


def test_negative_working_time_cannot_be_added() -> None:
    with pytest.raises(ValueError, match="negative"):
        add_working_seconds(SE, at(2026, 3, 2, 10), -1)


def test_calendar_closed_for_good_has_no_next_opening() -> None:
    closed = build_calendar(
        name="closed",
        hours={6: [(time(8), time(9))]},
        extra_closed=[date(2026, 3, 1) + timedelta(weeks=week) for week in range(600)],
    )
    with pytest.raises(ValueError, match="no opening"):
        next_opening(closed, at(2026, 3, 1))


def test_one_working_day_is_nine_office_hours() -> None:
    assert WORKING_DAY_SECONDS == 9 * 3600


# --- properties against a plain day-by-day reference -------------------------------------


def reference_working_seconds(cal: OfficeCalendar, start: datetime, end: datetime) -> float:
    """Day by day with aware datetimes in UTC (same-tzinfo arithmetic ignores DST)."""
    total = 0.0
    day = start.astimezone(cal.timezone).date() - timedelta(days=1)
    while day <= end.astimezone(cal.timezone).date():
        if day not in cal.closed_dates:
            for opening, closing in cal.hours[day.weekday()]:
                low = datetime.combine(day, opening, tzinfo=cal.timezone).astimezone(UTC)
                high = datetime.combine(day, closing, tzinfo=cal.timezone).astimezone(UTC)
                overlap = min(high, end) - max(low, start)
                total += max(overlap.total_seconds(), 0.0)
        day += timedelta(days=1)
    return total


instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
spans = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=80))
calendars = st.sampled_from([SE, LUNCH_BREAK, KLAMDAG_CLOSED, NIGHT_SHIFT])


@settings(max_examples=150, deadline=None)
@given(cal=calendars, start=instants, span=spans)
def test_working_seconds_matches_a_day_by_day_reference(
    cal: OfficeCalendar, start: datetime, span: timedelta
) -> None:
    end = start + span
    assert working_seconds(cal, start, end) == pytest.approx(
        reference_working_seconds(cal, start, end), abs=1e-3
    )


@settings(max_examples=150, deadline=None)
@given(cal=calendars, start=instants, seconds=st.floats(min_value=0, max_value=400 * HOUR))
def test_add_working_seconds_inverts_working_seconds(
    cal: OfficeCalendar, start: datetime, seconds: float
) -> None:
    result = add_working_seconds(cal, start, seconds)
    assert working_seconds(cal, start, result) == pytest.approx(seconds, abs=1e-3)
    if seconds > 0.01:
        earlier = result - timedelta(milliseconds=10)
        assert working_seconds(cal, start, earlier) < seconds


@settings(max_examples=100, deadline=None)
@given(cal=calendars, start=instants, first=spans, second=spans)
def test_working_seconds_adds_up_over_consecutive_spans(
    cal: OfficeCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    middle, end = start + first, start + first + second
    whole = working_seconds(cal, start, end)
    parts = working_seconds(cal, start, middle) + working_seconds(cal, middle, end)
    assert whole == pytest.approx(parts, abs=1e-6)


# --- bounded spans: a date years away is a defect, never a long computation ---------------

SENT = datetime(2026, 3, 2, 10, tzinfo=STOCKHOLM)
END_OF_TIME = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("end", "within"),
    [
        (SENT - timedelta(days=400), True),  # before the send: not this rule's concern
        (SENT, True),
        (SENT + timedelta(days=30), True),
        (SENT + REPLY_HORIZON, True),
        (SENT + REPLY_HORIZON + timedelta(seconds=1), False),
        (datetime(2100, 1, 1, tzinfo=UTC), False),
        (datetime(9000, 1, 1, tzinfo=UTC), False),
        (END_OF_TIME, False),
    ],
)
def test_a_date_more_than_the_reply_horizon_after_the_send_is_outside_it(
    end: datetime, within: bool
) -> None:
    assert within_horizon(SENT, end) is within


@pytest.mark.parametrize(
    "end",
    [
        SENT + MAX_SPAN + timedelta(days=1),
        datetime(9000, 1, 1, tzinfo=UTC),
        END_OF_TIME,  # its local date is in year 10000
    ],
)
def test_working_time_over_more_than_the_maximum_span_is_refused_not_computed(
    end: datetime,
) -> None:
    with pytest.raises(SpanTooLong, match="beyond"):
        working_seconds(SE, SENT, end)
    with pytest.raises(SpanTooLong, match="beyond"):
        working_days_between(SE, SENT, end)


@pytest.mark.parametrize(
    ("end", "days"),
    [
        (SENT + timedelta(days=366), 250),  # a year: about 250 Swedish working days
        (SENT + MAX_SPAN - timedelta(days=1), 12_800),  # just within: still computed
    ],
)
def test_working_time_within_the_maximum_span_is_computed(end: datetime, days: int) -> None:
    assert working_days_between(SE, SENT, end) == pytest.approx(days, rel=0.02)
    assert working_seconds(SE, SENT, end) > 0

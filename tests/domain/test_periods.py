from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.domain.periods import (
    Period,
    PeriodKind,
    choose_period,
    date_range,
    parse_period,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")


@pytest.mark.parametrize(
    ("text", "kind", "first", "last", "label"),
    [
        ("2026", PeriodKind.YEAR, date(2026, 1, 1), date(2026, 12, 31), "2026"),
        ("2026-Q1", PeriodKind.QUARTER, date(2026, 1, 1), date(2026, 3, 31), "2026-Q1"),
        ("2026-q3", PeriodKind.QUARTER, date(2026, 7, 1), date(2026, 9, 30), "2026-Q3"),
        ("2026-Q4", PeriodKind.QUARTER, date(2026, 10, 1), date(2026, 12, 31), "2026-Q4"),
        ("2026-09", PeriodKind.MONTH, date(2026, 9, 1), date(2026, 9, 30), "2026-09"),
        ("2028-02", PeriodKind.MONTH, date(2028, 2, 1), date(2028, 2, 29), "2028-02"),
        (" 2026-12 ", PeriodKind.MONTH, date(2026, 12, 1), date(2026, 12, 31), "2026-12"),
    ],
)
def test_period_text_names_its_days(
    text: str, kind: PeriodKind, first: date, last: date, label: str
) -> None:
    period = parse_period(text)
    assert (period.kind, period.first_day, period.last_day, period.label) == (
        kind,
        first,
        last,
        label,
    )


@pytest.mark.parametrize("text", ["26", "2026-13", "2026-00", "2026-Q5", "2026-9", "Q3", ""])
def test_malformed_period_is_refused_with_its_text(text: str) -> None:
    with pytest.raises(ValueError, match="period"):
        parse_period(text)


@pytest.mark.parametrize(
    ("text", "previous"),
    [
        ("2026", "2025"),
        ("2026-Q1", "2025-Q4"),
        ("2026-Q3", "2026-Q2"),
        ("2026-01", "2025-12"),
        ("2026-03", "2026-02"),
    ],
)
def test_previous_period_is_the_one_of_the_same_kind_just_before(text: str, previous: str) -> None:
    assert parse_period(text).previous() == parse_period(previous)


def test_previous_of_a_range_has_the_same_length_and_ends_the_day_before() -> None:
    period = date_range(date(2026, 3, 10), date(2026, 3, 19))
    assert period.previous() == Period(PeriodKind.RANGE, date(2026, 2, 28), date(2026, 3, 9))


def test_bounds_are_local_midnights_across_a_dst_change() -> None:
    start, end = parse_period("2026-03").bounds(STOCKHOLM)
    assert start == datetime(2026, 3, 1, tzinfo=STOCKHOLM)
    assert end == datetime(2026, 4, 1, tzinfo=STOCKHOLM)
    # March has 31 days, one of them 23 hours long (summer time from 29 March).
    assert end.timestamp() - start.timestamp() == 31 * 86400 - 3600


@pytest.mark.parametrize(
    ("period", "labels"),
    [
        (parse_period("2026-Q3"), ["2026-07", "2026-08", "2026-09"]),
        (parse_period("2026-09"), ["2026-09"]),
        (
            date_range(date(2026, 1, 15), date(2026, 3, 3)),
            ["2026-01-15..2026-01-31", "2026-02", "2026-03-01..2026-03-03"],
        ),
    ],
)
def test_months_of_a_period_are_clipped_to_it(period: Period, labels: list[str]) -> None:
    assert [month.label for month in period.months()] == labels
    assert len(parse_period("2026").months()) == 12


@pytest.mark.parametrize(
    ("period", "first", "last", "expected"),
    [
        (None, None, None, parse_period("2026")),
        ("2026-Q2", None, None, parse_period("2026-Q2")),
        (None, "2026-02-01", "2026-02-10", date_range(date(2026, 2, 1), date(2026, 2, 10))),
        (None, "2026-10-01", None, date_range(date(2026, 10, 1), date(2026, 11, 22))),
        (None, None, "2026-03-31", date_range(date(2026, 1, 1), date(2026, 3, 31))),
    ],
)
def test_report_period_choice_defaults_to_the_current_year(
    period: str | None, first: str | None, last: str | None, expected: Period
) -> None:
    assert choose_period(period=period, first=first, last=last, today=date(2026, 11, 22)) == (
        expected
    )


@pytest.mark.parametrize(
    ("period", "first", "last", "message"),
    [
        ("2026", "2026-01-01", None, "either"),
        (None, "2026-02-10", "2026-02-01", "before"),
        (None, "1 feb", None, "YYYY-MM-DD"),
    ],
)
def test_contradictory_or_malformed_period_choice_is_refused(
    period: str | None, first: str | None, last: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        choose_period(period=period, first=first, last=last, today=date(2026, 11, 22))


@pytest.mark.parametrize(
    ("period", "first", "last"),
    [
        ("0001", None, None),
        ("0000", None, None),
        ("1970", None, None),  # its previous year is 1969
        ("1970-01", None, None),
        ("9999", None, None),
        ("9999-12", None, None),
        (None, "0001-01-01", "0001-01-31"),
        (None, "9998-12-01", "9999-01-01"),
        (None, "1970-01-01", None),
    ],
)
def test_period_outside_the_reportable_days_is_refused_with_one_message(
    period: str | None, first: str | None, last: str | None
) -> None:
    with pytest.raises(ValueError, match=r"out of range|year 0"):
        choose_period(period=period, first=first, last=last, today=date(2026, 11, 22))


@pytest.mark.parametrize(
    ("period", "first", "last"),
    [
        ("1971", None, None),
        ("1970-02", None, None),
        ("9998", None, None),
        (None, "1970-02-01", "1970-02-28"),
    ],
)
def test_period_at_the_edge_of_the_reportable_days_is_accepted(
    period: str | None, first: str | None, last: str | None
) -> None:
    chosen = choose_period(period=period, first=first, last=last, today=date(2026, 11, 22))
    assert chosen.bounds(STOCKHOLM)[0] < chosen.bounds(STOCKHOLM)[1]
    assert chosen.previous().first_day >= date(1970, 1, 1)

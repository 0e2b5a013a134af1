from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.domain.calendar import OfficeCalendar, build_calendar, swedish_default_calendar
from monitor.domain.model import MessageKind, ObservedMessage, OutcomeState, ProbeOutcome, Target
from monitor.domain.outcome import OutcomeRules, compute_outcome
from monitor.domain.periods import date_range, parse_period
from monitor.domain.reporting import (
    Grouping,
    GroupKind,
    OutcomeFact,
    ReportInput,
    Tally,
    TallyBook,
    WaitedUntil,
    build_report,
    fact_from_outcome,
    month_index,
    parse_grouping,
    refreshed,
    tally_stats,
)
from monitor.domain.stats import summarise
from monitor.domain.worktime import working_seconds

STOCKHOLM = ZoneInfo("Europe/Stockholm")
SE = swedish_default_calendar()
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=STOCKHOLM)


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=STOCKHOLM)


# --- tallies give exactly the figures of stats.summarise --------------------------------

replies = st.lists(
    st.tuples(
        st.integers(0, 60 * 24 * 20),  # minutes after the send
        st.sampled_from(
            [
                MessageKind.HUMAN,
                MessageKind.AUTO_REPLY,
                MessageKind.BOUNCE,
                MessageKind.TICKET_RECEIPT,
            ]
        ),
        st.booleans(),
    ),
    max_size=3,
)
probes = st.lists(
    st.tuples(st.integers(0, 60 * 24 * 40), st.booleans(), replies), min_size=0, max_size=25
)


def outcome_of(
    token: str, sent_minutes: int, failed: bool, messages: list[tuple[int, MessageKind, bool]]
) -> tuple[ProbeOutcome, datetime]:
    sent = at(9, 1, 0) + timedelta(minutes=sent_minutes)
    observed = [
        ObservedMessage(
            message_key=f"{token}-{index}",
            kind=kind,
            received_at=sent + timedelta(minutes=minutes),
            has_new_text=new_text,
            permanent=new_text if kind is MessageKind.BOUNCE else None,
        )
        for index, (minutes, kind, new_text) in enumerate(messages)
    ]
    # Computed before NOW: some outcomes are stale "so far", as a stopped daemon leaves them.
    computed = min(NOW, sent + timedelta(days=8))
    outcome = compute_outcome(
        token=token, sent_at=sent, send_failed=failed, messages=observed, cal=SE, now=computed
    )
    return outcome, sent


@settings(max_examples=100, deadline=None)
@given(probes)
def test_tally_figures_equal_summarise_on_the_same_outcomes(
    generated: list[tuple[int, bool, list[tuple[int, MessageKind, bool]]]],
) -> None:
    outcomes = []
    book = TallyBook(1, lambda _target: SE, NOW)
    for number, (sent_minutes, failed, messages) in enumerate(generated):
        outcome, sent = outcome_of(f"p{number}", sent_minutes, failed, messages)
        outcomes.append(outcome)
        book.add([fact_from_outcome(outcome, target_id="t", sent_at=sent, month=0)])
    expected = summarise("t", outcomes, now=NOW, min_probes=5)
    assert tally_stats("t", book.by_target.get("t", Tally(1)), min_probes=5) == expected


# --- grouping ---------------------------------------------------------------------------

LUND = Target("lund", "Lund", "a@lund.invalid", "1281", "Skåne län", ("storstad", "region-skane"))
YSTAD = Target("ystad", "Ystad", "a@ystad.invalid", "1286", "Skåne län", ("region-skane",))
NOWHERE = Target("x", "X", "a@x.invalid")


@pytest.mark.parametrize(
    ("text", "target", "keys"),
    [
        ("target", LUND, ("lund",)),
        ("county", LUND, ("Skåne län",)),
        ("county", NOWHERE, ("(no county)",)),
        ("all", YSTAD, ("all",)),
        ("tag:storstad", LUND, ("storstad",)),
        ("tag:storstad", YSTAD, ("(not storstad)",)),
        ("tag:region-*", LUND, ("region-skane",)),
        ("tag:region-*", NOWHERE, ("(no region-* tag)",)),
    ],
)
def test_a_target_belongs_to_the_groups_its_grouping_names(
    text: str, target: Target, keys: tuple[str, ...]
) -> None:
    assert parse_grouping(text).keys_for(target) == keys


@pytest.mark.parametrize("text", ["kommun", "tag:", "", "Target"])
def test_unknown_grouping_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="group-by"):
        parse_grouping(text)


# --- the report -------------------------------------------------------------------------


def answered(token: str, target: str, hours: float, month: int = 0) -> OutcomeFact:
    seconds = hours * 3600
    return OutcomeFact(
        token, target, month, OutcomeState.ANSWERED, None, None, seconds,
        seconds <= 9 * 3600, seconds <= 18 * 3600, False, False,
    )  # fmt: skip


def final(token: str, target: str, month: int = 0) -> OutcomeFact:
    return OutcomeFact(
        token, target, month, OutcomeState.UNANSWERED_FINAL, None, at(9, 1, 8), None,
        False, False, True, False,
    )  # fmt: skip


def tallies(facts: list[OutcomeFact], months: int) -> dict[str, Tally]:
    book = TallyBook(months, lambda _target: SE, NOW)
    book.add(facts)
    return book.by_target


def test_report_ranks_groups_compares_with_before_and_totals_everything() -> None:
    period = parse_period("2026-Q3")
    now = [
        answered("a", "lund", 2, month=0),
        answered("b", "lund", 20, month=2),
        answered("c", "ystad", 1, month=1),
        final("d", "ystad", month=2),
        answered("e", "x", 3),
    ]
    before = [answered("f", "lund", 1), answered("g", "ystad", 30)]
    report = build_report(
        ReportInput(
            period=period,
            previous_period=period.previous(),
            grouping=Grouping(GroupKind.TARGET),
            targets=[LUND, YSTAD, NOWHERE],
            current=tallies(now, 3),
            before=tallies(before, 3),
            as_of=NOW,
            min_probes=5,
        )
    )
    assert [(row.key, row.rank) for row in report.rows] == [("x", 1), ("lund", 2), ("ystad", 2)]
    rows = {row.key: row for row in report.rows}
    assert rows["lund"].change_pp == pytest.approx(-50.0)  # 1/2 now, 1/1 before
    assert rows["ystad"].change_pp == pytest.approx(50.0)  # 1/2 now, 0/1 before
    assert rows["x"].change_pp is None  # nothing before
    assert rows["lund"].monthly == (1.0, None, 0.0)
    assert rows["ystad"].monthly == (None, 1.0, 0.0)
    assert (rows["lund"].name, rows["lund"].kommunkod, rows["lund"].county) == (
        "Lund",
        "1281",
        "Skåne län",
    )
    assert report.months == ("2026-07", "2026-08", "2026-09")
    total = report.total
    assert (total.stats.within_one.successes, total.stats.within_one.total) == (3, 5)
    assert total.stats.auto_ack_share.successes == 1
    assert total.rank is None and total.targets == 3
    assert all(row.stats.low_confidence for row in report.rows)


@pytest.mark.parametrize(
    ("grouping", "targets", "county"),
    [
        (Grouping(GroupKind.TARGET), [LUND, YSTAD, NOWHERE], None),
        (Grouping(GroupKind.TARGET), [LUND, YSTAD], "Skåne län"),
        (Grouping(GroupKind.TARGET), [LUND], "Skåne län"),
        (Grouping(GroupKind.COUNTY), [LUND, YSTAD], "Skåne län"),
        (Grouping(GroupKind.TAG, "storstad"), [LUND, NOWHERE], None),
        (Grouping(GroupKind.ALL), [NOWHERE], None),
        (Grouping(GroupKind.TARGET), [], None),
    ],
)
def test_total_row_is_alla_with_no_kommunkod_and_a_county_only_when_all_share_it(
    grouping: Grouping, targets: list[Target], county: str | None
) -> None:
    period = parse_period("2026-09")
    report = build_report(
        ReportInput(
            period=period,
            previous_period=period.previous(),
            grouping=grouping,
            targets=targets,
            current=tallies([answered("a", "lund", 2)], 1),
            before={},
            as_of=NOW,
            min_probes=5,
        )
    )
    total = report.total
    assert (total.key, total.name, total.kommunkod, total.county) == ("total", "Alla", None, county)
    assert (total.rank, total.targets) == (None, len(targets))


def test_report_by_county_gives_one_row_per_county_with_its_targets() -> None:
    period = parse_period("2026-09")
    report = build_report(
        ReportInput(
            period=period,
            previous_period=period.previous(),
            grouping=parse_grouping("county"),
            targets=[LUND, YSTAD, NOWHERE],
            current=tallies([answered("a", "lund", 2), answered("b", "ystad", 12)], 1),
            before={},
            as_of=NOW,
            min_probes=1,
        )
    )
    rows = {row.key: row for row in report.rows}
    assert set(rows) == {"Skåne län", "(no county)"}
    assert rows["Skåne län"].targets == 2
    assert rows["Skåne län"].county == "Skåne län"
    assert rows["Skåne län"].stats.within_one.ratio == 0.5
    assert rows["(no county)"].rank is None  # nothing decided, no share, no rank
    assert rows["Skåne län"].stats.low_confidence is False


# --- stale outcomes ---------------------------------------------------------------------


def so_far(sent: datetime) -> OutcomeFact:
    return OutcomeFact(
        "p", "lund", 0, OutcomeState.UNANSWERED_SO_FAR, sent, sent, None, None, None, True, False
    )


@pytest.mark.parametrize(
    ("sent", "down", "state", "within_one"),
    [
        # Sent Tue 1 Sep; by Mon 2 Nov long past 10 working days: final, too late.
        (at(9, 1, 10), [], OutcomeState.UNANSWERED_FINAL, False),
        # Our monitor was down the whole window: never charged to the municipality.
        (at(9, 1, 10), [(at(8, 31, 0), at(10, 1, 0))], OutcomeState.NOT_MEASURABLE, None),
        # Sent Thu 29 Oct: 2 working days ago, still so far (untouched).
        (at(10, 29, 10), [], OutcomeState.UNANSWERED_SO_FAR, None),
    ],
)
def test_stale_unanswered_so_far_is_rejudged_as_of_now(
    sent: datetime,
    down: list[tuple[datetime, datetime]],
    state: OutcomeState,
    within_one: bool | None,
) -> None:
    fact = refreshed(so_far(sent), cal=SE, now=NOW, rules=OutcomeRules(), monitor_down=down)
    assert fact.state is state
    assert fact.within_one == within_one
    assert fact.acknowledged is True  # what the stored outcome knew of messages is kept


@pytest.mark.parametrize(
    ("sent", "index"),
    [
        (datetime(2026, 7, 1, 0, 0, tzinfo=STOCKHOLM), 0),
        (datetime(2026, 7, 31, 23, 59, tzinfo=STOCKHOLM), 0),
        (datetime(2026, 8, 1, 0, 0, tzinfo=STOCKHOLM), 1),
        (datetime(2026, 9, 30, 23, 0, tzinfo=STOCKHOLM), 2),
        (datetime(2026, 10, 1, 0, 0, tzinfo=STOCKHOLM), -1),
    ],
)
def test_a_send_falls_in_the_month_of_its_local_date(sent: datetime, index: int) -> None:
    months = parse_period("2026-Q3").months()
    ends = [month.bounds(STOCKHOLM)[1] for month in months]
    assert month_index(ends, sent) == index
    assert date_range(date(2026, 7, 1), date(2026, 9, 30)).months() == months


# --- waited time, many starts -------------------------------------------------------------

SPLIT_HOURS = build_calendar(
    name="split",
    hours={0: [(time(8), time(12)), (time(13), time(16, 30))], 2: [(time(1), time(4))]},
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([SE, SPLIT_HOURS]),
    st.datetimes(datetime(2025, 12, 20), datetime(2026, 11, 2)),
    st.datetimes(datetime(2026, 3, 27), datetime(2026, 11, 3)),
)
def test_waited_until_equals_working_seconds_across_dst_and_holidays(
    cal: OfficeCalendar, start: datetime, now: datetime
) -> None:
    begin, until = start.replace(tzinfo=STOCKHOLM), now.replace(tzinfo=STOCKHOLM)
    assert WaitedUntil(cal, until)(begin) == pytest.approx(
        working_seconds(cal, begin, until), abs=1e-6
    )

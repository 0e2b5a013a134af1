from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.domain.calendar import swedish_default_calendar
from monitor.domain.model import (
    AnswerKind,
    MessageKind,
    ObservedMessage,
    OutcomeState,
    ProbeOutcome,
)
from monitor.domain.outcome import OutcomeRules, compute_outcome

STOCKHOLM = ZoneInfo("Europe/Stockholm")
SE = swedish_default_calendar()
HOUR = 3600.0
HUMAN, AUTO, TICKET, BOUNCE = (
    MessageKind.HUMAN,
    MessageKind.AUTO_REPLY,
    MessageKind.TICKET_RECEIPT,
    MessageKind.BOUNCE,
)


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=STOCKHOLM)


def msg(
    key: str,
    kind: MessageKind,
    received_at: datetime,
    *,
    new_text: bool = True,
    permanent: bool | None = None,
    ticket: str | None = None,
    answer: AnswerKind | None = None,
) -> ObservedMessage:
    return ObservedMessage(
        message_key=key,
        kind=kind,
        received_at=received_at,
        has_new_text=new_text,
        permanent=permanent,
        ticket_number=ticket,
        answer=answer,
    )


MONDAY_10 = at(2026, 3, 2, 10)  # an ordinary Monday in March
LATER = at(2026, 6, 1, 12)
DEFAULT_RULES = OutcomeRules()


def outcome(
    messages: list[ObservedMessage],
    *,
    sent_at: datetime | None = MONDAY_10,
    now: datetime = LATER,
    send_failed: bool = False,
    rules: OutcomeRules = DEFAULT_RULES,
    monitor_down: tuple[tuple[datetime, datetime], ...] = (),
) -> ProbeOutcome:
    return compute_outcome(
        token="tok",
        sent_at=sent_at,
        send_failed=send_failed,
        messages=messages,
        cal=SE,
        now=now,
        rules=rules,
        monitor_down=monitor_down,
    )


@pytest.mark.parametrize(
    ("sent_at", "answered_at", "working_hours", "within_one", "within_two"),
    [
        (MONDAY_10, at(2026, 3, 2, 14), 4, True, True),
        # exactly one working day is still within it; one second more is not
        (MONDAY_10, at(2026, 3, 3, 10), 9, True, True),
        (MONDAY_10, at(2026, 3, 3, 10, 0, 1), 9 + 1 / 3600, False, True),
        (at(2026, 3, 6, 16), at(2026, 3, 9, 16), 9, True, True),  # over a weekend
        # sent before opening: the clock starts at 08:00
        (at(2026, 3, 2, 7), at(2026, 3, 2, 17), 9, True, True),
        # sent in the evening, answered next morning at 08:30
        (at(2026, 3, 2, 20), at(2026, 3, 3, 8, 30), 0.5, True, True),
        # exactly two working days, and just past them
        (MONDAY_10, at(2026, 3, 4, 10), 18, False, True),
        (MONDAY_10, at(2026, 3, 4, 10, 1), 18 + 1 / 60, False, False),
        # midsommar: four calendar days, eight office hours
        (at(2026, 6, 18, 16), at(2026, 6, 22, 15), 8, True, True),
        # answered during the closed weekend: no office time has passed since Friday 17:00
        (at(2026, 3, 6, 12), at(2026, 3, 7, 11), 5, True, True),
    ],
)
def test_human_answer_is_measured_in_office_hours(
    sent_at: datetime,
    answered_at: datetime,
    working_hours: float,
    within_one: bool,
    within_two: bool,
) -> None:
    result = outcome([msg("a", HUMAN, answered_at)], sent_at=sent_at)
    assert result.state is OutcomeState.ANSWERED
    assert result.first_human_at == answered_at
    assert result.wall_seconds == (answered_at - sent_at).total_seconds()
    assert result.working_seconds == pytest.approx(working_hours * HOUR)
    assert result.within_one_working_day is within_one
    assert result.within_two_working_days is within_two
    assert result.message_keys == ("a",)


@pytest.mark.parametrize(
    ("sent_at", "clock_start"),
    [
        (MONDAY_10, MONDAY_10),
        (at(2026, 3, 2, 6, 30), at(2026, 3, 2, 8)),
        (at(2026, 3, 2, 17), at(2026, 3, 3, 8)),
        (at(2026, 3, 6, 22), at(2026, 3, 9, 8)),
        (at(2026, 12, 23, 17, 30), at(2026, 12, 28, 8)),
    ],
)
def test_clock_starts_at_the_next_office_opening(sent_at: datetime, clock_start: datetime) -> None:
    assert outcome([], sent_at=sent_at, now=sent_at).clock_start == clock_start


def test_wall_time_is_real_elapsed_time_across_the_spring_dst_change() -> None:
    sent_at, answered_at = at(2026, 3, 27, 16), at(2026, 3, 30, 9)
    result = outcome([msg("a", HUMAN, answered_at)], sent_at=sent_at)
    assert result.wall_seconds == 64 * HOUR  # 65 wall-clock hours, one of them skipped
    assert result.working_seconds == 2 * HOUR


def test_messages_from_other_zones_compare_as_instants() -> None:
    answered_at = datetime(2026, 3, 2, 12, tzinfo=UTC)  # 13:00 in Stockholm
    result = outcome([msg("a", HUMAN, answered_at)])
    assert result.working_seconds == 3 * HOUR
    assert result.wall_seconds == 3 * HOUR


def test_human_message_without_new_text_does_not_answer() -> None:
    result = outcome([msg("a", HUMAN, at(2026, 3, 2, 11), new_text=False)], now=at(2026, 3, 2, 12))
    assert result.state is OutcomeState.UNANSWERED_SO_FAR
    assert result.first_human_at is None
    assert result.message_keys == ("a",)


def test_messages_received_before_the_send_are_never_counted() -> None:
    early = msg("early", HUMAN, MONDAY_10 - timedelta(seconds=1))
    late = msg("late", HUMAN, at(2026, 3, 2, 15))
    result = outcome([early, late])
    assert result.first_human_at == at(2026, 3, 2, 15)
    assert result.message_keys == ("late",)


def test_first_human_answer_counts_whatever_order_messages_come_in() -> None:
    messages = [
        msg("second", HUMAN, at(2026, 3, 3, 9)),
        msg("first", HUMAN, at(2026, 3, 2, 11)),
        msg("ack", AUTO, at(2026, 3, 2, 10, 1)),
    ]
    result = outcome(messages)
    assert result.first_human_at == at(2026, 3, 2, 11)
    assert result.message_keys == ("ack", "first", "second")


def test_auto_reply_and_ticket_receipt_are_acknowledgements_not_answers() -> None:
    messages = [
        msg("oof", AUTO, at(2026, 3, 2, 10, 0, 30)),
        msg("receipt", TICKET, at(2026, 3, 2, 10, 2), ticket="ÄR-2026-117"),
    ]
    result = outcome(messages, now=at(2026, 3, 2, 12))
    assert result.state is OutcomeState.UNANSWERED_SO_FAR
    assert result.first_ack_at == at(2026, 3, 2, 10, 0, 30)
    assert result.ack_wall_seconds == 30
    assert result.ack_working_seconds == 30
    assert result.ack_ticket_number == "ÄR-2026-117"  # the first ticket number quoted


def test_acknowledgement_outside_office_hours_has_no_working_time() -> None:
    sent_at = at(2026, 3, 2, 19)
    result = outcome([msg("oof", AUTO, at(2026, 3, 2, 19, 1))], sent_at=sent_at, now=sent_at)
    assert result.ack_wall_seconds == 60
    assert result.ack_working_seconds == 0


@pytest.mark.parametrize(
    ("messages", "state", "bounced", "permanent"),
    [
        ([msg("b", BOUNCE, at(2026, 3, 2, 10, 1), permanent=True)], "not_measurable", True, True),
        (
            [msg("b", BOUNCE, at(2026, 3, 2, 10, 1), permanent=False)],
            "not_measurable",
            True,
            False,
        ),
        ([msg("b", BOUNCE, at(2026, 3, 2, 10, 1))], "not_measurable", True, None),
        # a later permanent bounce outweighs an earlier temporary one
        (
            [
                msg("b1", BOUNCE, at(2026, 3, 2, 10, 1), permanent=False),
                msg("b2", BOUNCE, at(2026, 3, 4, 10, 1), permanent=True),
            ],
            "not_measurable",
            True,
            True,
        ),
        # an answer after a bounce: the question arrived after all (one of several recipients)
        (
            [
                msg("b", BOUNCE, at(2026, 3, 2, 10, 1), permanent=True),
                msg("a", HUMAN, at(2026, 3, 2, 15)),
            ],
            "answered",
            True,
            True,
        ),
        # a bounce after the answer is not a bounce of this measurement
        (
            [
                msg("a", HUMAN, at(2026, 3, 2, 15)),
                msg("b", BOUNCE, at(2026, 3, 2, 16), permanent=True),
            ],
            "answered",
            False,
            None,
        ),
    ],
)
def test_bounce_before_an_answer_makes_the_probe_not_measurable(
    messages: list[ObservedMessage], state: str, bounced: bool, permanent: bool | None
) -> None:
    result = outcome(messages)
    assert result.state == state
    assert result.bounced is bounced
    assert result.bounce_permanent is permanent
    assert result.clock_start == MONDAY_10


def test_failed_send_is_not_measurable() -> None:
    result = outcome([msg("a", HUMAN, at(2026, 3, 2, 11))], send_failed=True)
    assert result.state is OutcomeState.NOT_MEASURABLE
    assert result.clock_start is None
    assert result.first_human_at is None
    assert result.message_keys == ("a",)


def test_probe_without_send_time_is_not_measurable_but_keeps_its_messages() -> None:
    result = outcome([msg("a", HUMAN, at(2026, 3, 2, 11))], sent_at=None)
    assert result.state is OutcomeState.NOT_MEASURABLE
    assert result.clock_start is None
    assert result.message_keys == ("a",)


@pytest.mark.parametrize(
    ("now", "state", "within_one", "within_two"),
    [
        (at(2026, 3, 2, 14), "unanswered_so_far", None, None),
        # exactly one working day elapsed: an answer now would still count
        (at(2026, 3, 3, 10), "unanswered_so_far", None, None),
        (at(2026, 3, 3, 10, 0, 1), "unanswered_so_far", False, None),
        (at(2026, 3, 4, 10, 0, 1), "unanswered_so_far", False, False),
        # ten whole working days after Monday 10:00: Tuesday 3 March to Monday 16 March
        (at(2026, 3, 16, 16, 59), "unanswered_so_far", False, False),
        (at(2026, 3, 16, 17), "unanswered_final", False, False),
        (at(2026, 9, 1, 12), "unanswered_final", False, False),
    ],
)
def test_unanswered_probe_becomes_final_after_ten_working_days(
    now: datetime, state: str, within_one: bool | None, within_two: bool | None
) -> None:
    result = outcome([msg("oof", AUTO, at(2026, 3, 2, 10, 1))], now=now)
    assert result.state == state
    assert result.within_one_working_day is within_one
    assert result.within_two_working_days is within_two
    assert result.first_human_at is None
    assert result.working_seconds is None


def test_final_after_is_configurable() -> None:
    rules = OutcomeRules(final_after_working_days=2)
    assert outcome([], rules=rules, now=at(2026, 3, 4, 16)).state == "unanswered_so_far"
    assert outcome([], rules=rules, now=at(2026, 3, 4, 17)).state == "unanswered_final"


def test_holidays_delay_the_final_verdict() -> None:
    # Whole working days after Tuesday 22 Dec 12:00: 23, 28, 29, 30 Dec, 4, 5, 7, 8, 11, 12 Jan
    sent_at = at(2026, 12, 22, 12)
    assert outcome([], sent_at=sent_at, now=at(2027, 1, 12, 16)).state == "unanswered_so_far"
    assert outcome([], sent_at=sent_at, now=at(2027, 1, 12, 17)).state == "unanswered_final"


# The final window of a probe sent Monday 2 March 10:00 runs to Monday 16 March 17:00:
# 7 + 10 * 9 = 97 office hours, half of it 48.5.
FINAL_NOW = at(2026, 3, 20, 12)


@pytest.mark.parametrize(
    ("monitor_down", "state"),
    [
        ((), "unanswered_final"),
        # down the whole window
        (((at(2026, 3, 1), at(2026, 3, 17)),), "not_measurable"),
        # down the first week: 7 + 4 * 9 = 43 office hours, less than half
        (((at(2026, 3, 2, 9), at(2026, 3, 6, 17)),), "unanswered_final"),
        # down to Monday 9 March 14:00: 43 + 6 = 49 office hours, more than half
        (((at(2026, 3, 2, 9), at(2026, 3, 9, 14)),), "not_measurable"),
        # two overlapping outages count their union once (43 h, not 86 h)
        (
            (
                (at(2026, 3, 2, 9), at(2026, 3, 6, 17)),
                (at(2026, 3, 3, 8), at(2026, 3, 6, 17)),
            ),
            "unanswered_final",
        ),
        # outages after the final deadline or only at night do not count
        (((at(2026, 3, 17), at(2026, 3, 20)),), "unanswered_final"),
        (((at(2026, 3, 6, 17), at(2026, 3, 9, 8)),), "unanswered_final"),
    ],
)
def test_our_own_outage_is_never_charged_to_the_municipality(
    monitor_down: tuple[tuple[datetime, datetime], ...], state: str
) -> None:
    assert outcome([], now=FINAL_NOW, monitor_down=monitor_down).state == state


def test_outage_does_not_matter_while_the_probe_is_not_final() -> None:
    down = ((at(2026, 3, 2), at(2026, 3, 6)),)
    assert outcome([], now=at(2026, 3, 6), monitor_down=down).state == "unanswered_so_far"


def test_outage_does_not_undo_an_answer() -> None:
    down = ((at(2026, 3, 1), at(2026, 3, 17)),)
    result = outcome([msg("a", HUMAN, at(2026, 3, 2, 15))], monitor_down=down)
    assert result.state is OutcomeState.ANSWERED


NAIVE = datetime(2026, 3, 2, 10)


@pytest.mark.parametrize(
    "arguments",
    [
        {"now": NAIVE},
        {"sent_at": NAIVE},
        {"messages": [msg("a", HUMAN, NAIVE)]},
        {"monitor_down": ((NAIVE, at(2026, 3, 17)),), "now": FINAL_NOW},
    ],
)
def test_naive_datetimes_are_a_bug(arguments: dict[str, Any]) -> None:
    keywords = dict(arguments)
    with pytest.raises(ValueError, match="naive"):
        outcome(keywords.pop("messages", []), **keywords)


def test_outcome_is_the_same_when_recomputed() -> None:
    messages = [msg("oof", AUTO, at(2026, 3, 2, 10, 1)), msg("a", HUMAN, at(2026, 3, 3, 9))]
    assert outcome(messages) == outcome(list(reversed(messages)))


@pytest.mark.parametrize(
    ("received", "counted"),
    [
        (at(2026, 3, 3, 9), True),
        (at(2028, 3, 1, 9), True),  # two years late is late, not broken
        (at(2031, 3, 3, 9), False),  # beyond the reply horizon: a broken date
        (datetime(9000, 1, 1, tzinfo=UTC), False),
        (datetime(9999, 12, 31, 23, 59, tzinfo=UTC), False),
    ],
)
def test_a_reply_dated_beyond_the_reply_horizon_is_not_counted_and_costs_nothing(
    received: datetime, counted: bool
) -> None:
    result = outcome([msg("h", HUMAN, received)], now=at(2032, 1, 1, 12))
    assert (result.state is OutcomeState.ANSWERED) is counted
    assert result.message_keys == (("h",) if counted else ())
    if not counted:
        assert result.state is OutcomeState.UNANSWERED_FINAL


# --- holding replies (KKiK: an acknowledgement, not an answer) --------------------------

HOLDING, REFERRED, ANSWERED = AnswerKind.HOLDING, AnswerKind.REFERRED, AnswerKind.ANSWERED
HOLDING_COUNTS = OutcomeRules(holding_reply_counts_as_answer=True)


@pytest.mark.parametrize(
    ("answers", "rules", "answered_by", "acknowledged_by"),
    [
        # (answer of the reply at 11:00 Monday, of the one at 11:00 Wednesday)
        ((HOLDING, ANSWERED), DEFAULT_RULES, "b", "a"),
        ((HOLDING, REFERRED), DEFAULT_RULES, "b", "a"),
        ((HOLDING, HOLDING), DEFAULT_RULES, None, "a"),
        ((REFERRED, ANSWERED), DEFAULT_RULES, "a", None),
        ((ANSWERED, HOLDING), DEFAULT_RULES, "a", "b"),  # acknowledgements count after too
        ((None, ANSWERED), DEFAULT_RULES, "a", None),  # never assessed: counts as before
        ((HOLDING, ANSWERED), HOLDING_COUNTS, "a", None),
        ((HOLDING, HOLDING), HOLDING_COUNTS, "a", None),
    ],
)
def test_the_clock_stops_at_the_first_answered_or_referred_human_reply(
    answers: tuple[AnswerKind | None, AnswerKind | None],
    rules: OutcomeRules,
    answered_by: str | None,
    acknowledged_by: str | None,
) -> None:
    times = {"a": at(2026, 3, 2, 11), "b": at(2026, 3, 4, 11)}
    messages = [
        msg(key, HUMAN, times[key], answer=kind) for key, kind in zip("ab", answers, strict=True)
    ]
    result = outcome(messages, rules=rules, now=at(2026, 3, 5, 12))
    assert result.first_human_at == (times[answered_by] if answered_by else None)
    assert result.first_ack_at == (times[acknowledged_by] if acknowledged_by else None)


def test_holding_reply_from_an_officer_does_not_stop_the_clock() -> None:
    holding = msg("a", HUMAN, at(2026, 3, 2, 11), answer=HOLDING)
    answer = msg("b", HUMAN, at(2026, 3, 4, 11), answer=ANSWERED)
    result = outcome([holding, answer])
    assert result.state is OutcomeState.ANSWERED
    assert result.working_seconds == 19 * HOUR  # Mon 10 → Wed 11: 7 + 9 + 3 office hours
    assert result.within_one_working_day is False
    assert result.ack_working_seconds == HOUR


def test_a_probe_with_only_a_holding_reply_stays_unanswered_and_becomes_final() -> None:
    holding = msg("a", HUMAN, at(2026, 3, 2, 11), answer=HOLDING)
    assert outcome([holding], now=at(2026, 3, 3, 12)).state is OutcomeState.UNANSWERED_SO_FAR
    assert outcome([holding]).state is OutcomeState.UNANSWERED_FINAL


def test_a_holding_reply_counts_as_the_answer_when_the_rules_say_so() -> None:
    holding = msg("a", HUMAN, at(2026, 3, 2, 11), answer=HOLDING)
    result = outcome([holding], rules=HOLDING_COUNTS)
    assert result.state is OutcomeState.ANSWERED
    assert result.within_one_working_day is True

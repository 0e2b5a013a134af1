"""The measurement of one probe, recomputed from scratch from its send and its messages.

The rules, in the order they are applied:

1. A probe whose send failed (or whose send time is unknown) is NOT_MEASURABLE.
2. Messages received before the probe was sent are never counted, nor those dated more
   than ``REPLY_HORIZON`` (years) after it: such a date is broken, not a reply time.
3. The first human answer (a HUMAN message with new text) answers the probe: ANSWERED, with
   its wall time and working time from the send. Working time runs on the target's office
   calendar, so a probe sent outside office hours starts its clock at the next opening.
   KKiK: within one working day means at most 9 office hours. A human reply that the
   answer-quality rubric found ``holding`` (only forwarded, registered, "vi återkommer")
   is an acknowledgement, not an answer: the clock runs on to the first ``answered`` or
   ``referred`` reply (a referral is an answer, a poor one) -- unless the rules say
   ``holding_reply_counts_as_answer``. A reply never assessed counts as an answer.
4. A bounce before that answer marks the probe bounced (permanent or not, as classified).
   Without a human answer a bounced probe is NOT_MEASURABLE: a permanent bounce means our
   address list is wrong, a temporary one that the question never arrived; neither is the
   municipality's doing. A human answer after a bounce still counts (the question evidently
   arrived, e.g. one of several recipients bounced); the probe stays flagged as bounced.
5. Without an answer the probe is UNANSWERED_SO_FAR until ``final_after_working_days`` whole
   working days have passed, then UNANSWERED_FINAL -- unless our monitor was down for more
   than half of the office time of that window (send to the final deadline): then it is
   NOT_MEASURABLE, because our outages are never charged to a municipality.

Auto-replies, ticket receipts and holding replies are acknowledgements: they are measured
(first one) but never answer the probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from monitor.domain.calendar import OfficeCalendar
from monitor.domain.model import (
    AnswerKind,
    MessageKind,
    ObservedMessage,
    OutcomeState,
    ProbeOutcome,
)
from monitor.domain.worktime import (
    WORKING_DAY_SECONDS,
    next_opening,
    within_horizon,
    working_days_between,
    working_days_deadline,
    working_seconds,
)

ACKNOWLEDGEMENTS = frozenset({MessageKind.AUTO_REPLY, MessageKind.TICKET_RECEIPT})

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class OutcomeRules:
    final_after_working_days: int = 10
    # KKiK reads a holding reply as an acknowledgement; True makes it stop the clock.
    holding_reply_counts_as_answer: bool = False


def compute_outcome(
    *,
    token: str,
    sent_at: datetime | None,
    send_failed: bool,
    messages: Sequence[ObservedMessage],
    cal: OfficeCalendar,
    now: datetime,
    rules: OutcomeRules = OutcomeRules(),
    monitor_down: Sequence[Interval] = (),
) -> ProbeOutcome:
    """The outcome of one probe at ``now``; see the module docstring for the rules."""
    _require_aware(now, "now")
    if sent_at is not None:
        _require_aware(sent_at, "sent_at")
    ordered = _in_arrival_order(messages)
    if send_failed or sent_at is None:
        return _not_sent(token, sent_at, ordered)
    counted = _received_since(ordered, sent_at)
    outcome = ProbeOutcome(
        token=token,
        state=OutcomeState.UNANSWERED_SO_FAR,
        clock_start=next_opening(cal, sent_at),
        message_keys=tuple(message.message_key for message in counted),
    )
    outcome = _with_acknowledgement(outcome, counted, sent_at, cal, rules)
    human = _first_human_answer(counted, rules)
    outcome = _with_bounce(outcome, counted, human)
    if human is not None:
        return _answered(outcome, human, sent_at, cal)
    if outcome.bounced:
        return replace(outcome, state=OutcomeState.NOT_MEASURABLE)
    return _unanswered(outcome, sent_at, cal, now, rules, monitor_down)


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} is a naive datetime ({moment.isoformat()})")


def _in_arrival_order(messages: Sequence[ObservedMessage]) -> tuple[ObservedMessage, ...]:
    for message in messages:
        _require_aware(message.received_at, f"received_at of message {message.message_key}")
    # Instants, not datetimes: aware datetimes sharing a tzinfo compare as wall times, which
    # misorders the hour repeated when DST ends.
    return tuple(sorted(messages, key=lambda m: (m.received_at.timestamp(), m.message_key)))


def _received_since(
    ordered: Sequence[ObservedMessage], sent_at: datetime | None
) -> tuple[ObservedMessage, ...]:
    if sent_at is None:
        return tuple(ordered)
    sent = sent_at.timestamp()
    return tuple(
        message
        for message in ordered
        if message.received_at.timestamp() >= sent and within_horizon(sent_at, message.received_at)
    )


def _not_sent(
    token: str, sent_at: datetime | None, ordered: Sequence[ObservedMessage]
) -> ProbeOutcome:
    # A probe in doubt (no send time) may still draw replies; keep them for inspection.
    counted = _received_since(ordered, sent_at)
    return ProbeOutcome(
        token=token,
        state=OutcomeState.NOT_MEASURABLE,
        clock_start=None,
        message_keys=tuple(message.message_key for message in counted),
    )


def _instant(moment: datetime) -> float:
    return moment.timestamp()


def _seconds_between(start: datetime, end: datetime) -> float:
    # Not end - start: two datetimes sharing one tzinfo subtract as wall times, across DST too.
    return end.timestamp() - start.timestamp()


def _with_acknowledgement(
    outcome: ProbeOutcome,
    counted: Sequence[ObservedMessage],
    sent_at: datetime,
    cal: OfficeCalendar,
    rules: OutcomeRules,
) -> ProbeOutcome:
    """The first acknowledgement (auto-reply, ticket receipt, holding reply); the ticket
    number is the first one quoted."""
    acks = [message for message in counted if _acknowledges(message, rules)]
    if not acks:
        return outcome
    first = acks[0]
    return replace(
        outcome,
        first_ack_at=first.received_at,
        ack_ticket_number=next((m.ticket_number for m in acks if m.ticket_number), None),
        ack_wall_seconds=_seconds_between(sent_at, first.received_at),
        ack_working_seconds=working_seconds(cal, sent_at, first.received_at),
    )


def _is_holding_reply(message: ObservedMessage, rules: OutcomeRules) -> bool:
    return (
        message.kind is MessageKind.HUMAN
        and message.has_new_text
        and message.answer is AnswerKind.HOLDING
        and not rules.holding_reply_counts_as_answer
    )


def _acknowledges(message: ObservedMessage, rules: OutcomeRules) -> bool:
    return message.kind in ACKNOWLEDGEMENTS or _is_holding_reply(message, rules)


def _answers(message: ObservedMessage, rules: OutcomeRules) -> bool:
    return (
        message.kind is MessageKind.HUMAN
        and message.has_new_text
        and not _is_holding_reply(message, rules)
    )


def _first_human_answer(
    counted: Sequence[ObservedMessage], rules: OutcomeRules
) -> ObservedMessage | None:
    return next((m for m in counted if _answers(m, rules)), None)


def _with_bounce(
    outcome: ProbeOutcome, counted: Sequence[ObservedMessage], human: ObservedMessage | None
) -> ProbeOutcome:
    before_answer = counted if human is None else counted[: counted.index(human)]
    bounces = [message for message in before_answer if message.kind is MessageKind.BOUNCE]
    if not bounces:
        return outcome
    return replace(outcome, bounced=True, bounce_permanent=_bounce_permanence(bounces))


def _bounce_permanence(bounces: Sequence[ObservedMessage]) -> bool | None:
    """True if any bounce is permanent, False if all known ones are temporary, else None."""
    known = [bounce.permanent for bounce in bounces if bounce.permanent is not None]
    return any(known) if known else None


def _answered(
    outcome: ProbeOutcome, human: ObservedMessage, sent_at: datetime, cal: OfficeCalendar
) -> ProbeOutcome:
    elapsed = working_seconds(cal, sent_at, human.received_at)
    return replace(
        outcome,
        state=OutcomeState.ANSWERED,
        first_human_at=human.received_at,
        wall_seconds=_seconds_between(sent_at, human.received_at),
        working_seconds=elapsed,
        within_one_working_day=elapsed <= WORKING_DAY_SECONDS,
        within_two_working_days=elapsed <= 2 * WORKING_DAY_SECONDS,
    )


def _unanswered(
    outcome: ProbeOutcome,
    sent_at: datetime,
    cal: OfficeCalendar,
    now: datetime,
    rules: OutcomeRules,
    monitor_down: Sequence[Interval],
) -> ProbeOutcome:
    final_days = rules.final_after_working_days
    final = working_days_between(cal, sent_at, now) >= final_days
    if final and _monitor_mostly_down(cal, sent_at, final_days, monitor_down):
        return replace(outcome, state=OutcomeState.NOT_MEASURABLE)
    elapsed = working_seconds(cal, sent_at, now)
    return replace(
        outcome,
        state=OutcomeState.UNANSWERED_FINAL if final else OutcomeState.UNANSWERED_SO_FAR,
        within_one_working_day=_still_possible(final, elapsed, WORKING_DAY_SECONDS),
        within_two_working_days=_still_possible(final, elapsed, 2 * WORKING_DAY_SECONDS),
    )


def _still_possible(final: bool, elapsed: float, limit: float) -> bool | None:
    """False once an answer can no longer come within ``limit``; None while it still can."""
    return False if final or elapsed > limit else None


def _monitor_mostly_down(
    cal: OfficeCalendar, sent_at: datetime, final_days: int, monitor_down: Sequence[Interval]
) -> bool:
    """Was the monitor down for more than half the office time from send to final deadline?"""
    deadline = working_days_deadline(cal, sent_at, final_days)
    window = working_seconds(cal, sent_at, deadline)
    down = sum(
        working_seconds(cal, max(start, sent_at, key=_instant), min(end, deadline, key=_instant))
        for start, end in _merged(monitor_down)
    )
    return down * 2 > window


def _merged(intervals: Sequence[Interval]) -> list[Interval]:
    """Overlapping outages merged, so that no office second is counted twice."""
    merged: list[Interval] = []
    for start, end in intervals:
        _require_aware(start, "monitor_down start")
        _require_aware(end, "monitor_down end")
    for start, end in sorted(intervals, key=lambda interval: _instant(interval[0])):
        if merged and _instant(start) <= _instant(merged[-1][1]):
            merged[-1] = (merged[-1][0], max(end, merged[-1][1], key=_instant))
        else:
            merged.append((start, end))
    return merged

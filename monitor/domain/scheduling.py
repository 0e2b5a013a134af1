"""What to send when: a pure function of targets, history, calendars, limits and now.

APScheduler only wakes the daemon; these functions decide. Nothing here reads the clock
or draws random numbers: jitter and tie-breaks come from hashes of ids and dates, so the
same inputs always give the same plan.

How the history counts (a record's moment is its sent_at, else its planned_at):
- PLANNED, SENDING or ``outstanding`` records block the target until they are settled.
- UNCERTAIN records (connection lost after DATA) may or may not have arrived; they block
  until ``min_spacing`` after their planned_at, and count like a sent probe.
- FAILED records never reached the target: they do not count for spacing, the 30-day
  limit or rotation, but hold the target back for ``retry_after_failure`` so that relay
  trouble does not turn into a retry on every wake-up.
- Every record, failed or not, counts for the global hourly cap: that cap protects the relay.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from monitor.domain.calendar import OfficeCalendar
from monitor.domain.model import Persona, ProbeRecord, ProbeState, Question, Target
from monitor.domain.worktime import is_working_day

ROLLING_MONTH = timedelta(days=30)
ONE_HOUR = timedelta(hours=1)
# A calendar closed for two years is a configuration error, not something to wait for.
_SEARCH_LIMIT_DAYS = 731
_NEVER = datetime.min.replace(tzinfo=UTC)
_IN_FLIGHT = frozenset({ProbeState.PLANNED, ProbeState.SENDING})


class BlockReason(StrEnum):
    """Why a target gets nothing now. OUTSIDE_WINDOW also covers the part of today's window
    before the target's jittered start."""

    PAUSED = "paused"
    OPTED_OUT = "opted_out"
    ADDRESS_FAILING = "address_failing"
    OUTSTANDING = "outstanding"
    SPACING = "spacing"
    MONTHLY_LIMIT = "monthly_limit"
    OUTSIDE_WINDOW = "outside_window"
    NOT_WORKING_DAY = "not_working_day"
    HOURLY_LIMIT = "hourly_limit"
    NO_QUESTION_LEFT = "no_question_left"


@dataclass(frozen=True)
class Politeness:
    send_window: tuple[time, time] = (time(9), time(15))  # local time of the target's calendar
    min_spacing: timedelta = timedelta(days=14)
    max_per_target_per_30_days: int = 2
    max_per_hour: int = 20  # global, across all targets
    question_repeat_span: timedelta = timedelta(days=365)
    jitter: timedelta = timedelta(minutes=90)
    retry_after_failure: timedelta = timedelta(hours=4)

    def __post_init__(self) -> None:
        start, end = self.send_window
        if start.tzinfo is not None or end.tzinfo is not None or not start < end:
            raise ValueError("send_window must be two local times, start before end")
        if self.max_per_target_per_30_days < 1 or self.max_per_hour < 1:
            raise ValueError("max_per_target_per_30_days and max_per_hour must be at least 1")
        durations = (self.min_spacing, self.question_repeat_span, self.jitter)
        if min((*durations, self.retry_after_failure)) < timedelta(0):
            raise ValueError("spacing, repeat span, jitter and retry delay must not be negative")


@dataclass(frozen=True)
class SendDecision:
    target_id: str
    question_id: str
    persona_id: str


@dataclass(frozen=True)
class Blocked:
    """Why a target gets nothing now, and the earliest time it might (None: not by waiting)."""

    target_id: str
    reason: BlockReason
    until: datetime | None


@dataclass(frozen=True)
class _TargetHistory:
    """One target's records, digested once."""

    in_flight: bool
    counted: tuple[ProbeRecord, ...]  # records that reached, or may have reached, the target
    uncertain_release: datetime | None
    spacing_release: datetime | None  # min_spacing after the last probe, or failure retry
    monthly_release: datetime | None
    last_moment: datetime | None
    jitter_key: str


@dataclass(frozen=True)
class _Context:
    """The arguments every target is judged against, gathered once per call."""

    now: datetime
    questions: Sequence[Question]
    personas: Sequence[Persona]
    calendar_for: Callable[[Target], OfficeCalendar]
    politeness: Politeness
    opted_out: Callable[[str], bool]
    failing_targets: Collection[str]


@dataclass(frozen=True)
class _Ready:
    target: Target
    due: datetime
    last_moment: datetime | None
    question: Question
    persona: Persona


def plan_sends(
    *,
    now: datetime,
    targets: Sequence[Target],
    history: Sequence[ProbeRecord],
    questions: Sequence[Question],
    personas: Sequence[Persona],
    calendar_for: Callable[[Target], OfficeCalendar],
    politeness: Politeness,
    opted_out: Callable[[str], bool],
    failing_targets: Collection[str],
) -> list[SendDecision]:
    """The probes to send now, those that waited longest first."""
    context = _Context(
        now, questions, personas, calendar_for, politeness, opted_out, failing_targets
    )
    ready, _ = _assess_all(context, targets, history)
    return [_decision(item) for item in ready]


def explain(
    *,
    now: datetime,
    targets: Sequence[Target],
    history: Sequence[ProbeRecord],
    questions: Sequence[Question],
    personas: Sequence[Persona],
    calendar_for: Callable[[Target], OfficeCalendar],
    politeness: Politeness,
    opted_out: Callable[[str], bool],
    failing_targets: Collection[str],
) -> list[SendDecision | Blocked]:
    """One entry per target, in the order of ``targets``: what plan_sends would do and why."""
    context = _Context(
        now, questions, personas, calendar_for, politeness, opted_out, failing_targets
    )
    ready, blocked = _assess_all(context, targets, history)
    by_target: dict[str, SendDecision | Blocked] = {item.target_id: item for item in blocked}
    by_target.update((item.target.id, _decision(item)) for item in ready)
    return [by_target[target.id] for target in targets]


def next_send_time(
    *,
    target: Target,
    history: Sequence[ProbeRecord],
    calendar: OfficeCalendar,
    politeness: Politeness,
    now: datetime,
    failing: bool = False,
) -> datetime | None:
    """The earliest time the target may get its next probe; at or before ``now`` means due.

    None when only a person or an answer can unblock it: paused, failing, or a probe still
    outstanding. Opt-out and question supply are not known here; ``explain`` covers them.
    """
    _require_aware(now)
    if target.paused or failing:
        return None
    digest = _digest([r for r in history if r.target_id == target.id], politeness)
    if digest.in_flight:
        return None
    return _send_slot(calendar, politeness, now, _earliest(digest), target.id, digest.jitter_key)


def send_now(
    *,
    now: datetime,
    target: Target,
    history: Sequence[ProbeRecord],
    questions: Sequence[Question],
    personas: Sequence[Persona],
    calendar: OfficeCalendar,
    politeness: Politeness,
    opted_out: Callable[[str], bool],
    force: bool = False,
) -> SendDecision | Blocked:
    """The probe for a manual ``send-now``: window, spacing and caps do not apply.

    Pause, opt-out and question rotation always do; an outstanding probe blocks unless
    ``force``. A failing address does not block: a manual send is how one retests it.
    """
    _require_inputs(now, personas)
    context = _Context(now, questions, personas, lambda _: calendar, politeness, opted_out, ())
    if reason := _standing_block(target, opted_out, ()):
        return Blocked(target.id, reason, None)
    digest = _digest([r for r in history if r.target_id == target.id], politeness)
    if digest.in_flight and not force:
        return Blocked(target.id, BlockReason.OUTSTANDING, None)
    local_day = now.astimezone(calendar.timezone).date()
    question = _choose_question(target.id, digest.counted, context, local_day)
    if question is None:
        return _no_question_left(context, target, digest, calendar)
    return SendDecision(
        target.id, question.id, _choose_persona(target.id, digest.counted, personas).id
    )


def optout_matcher(entries: Iterable[str]) -> Callable[[str], bool]:
    """A predicate for ``opted_out`` from an opt-out list.

    An entry with a local part (``registrator@ort.se``) opts out that address; a bare domain
    (``ort.se`` or ``@ort.se``) opts out every address at that domain and its subdomains.
    Case-insensitive; blank entries are ignored.
    """
    cleaned = {entry.strip().lower() for entry in entries} - {""}
    addresses = frozenset(entry for entry in cleaned if not entry.startswith("@") and "@" in entry)
    domains = frozenset(entry.lstrip("@") for entry in cleaned - addresses)

    def is_opted_out(address: str) -> bool:
        bare = address.strip().lower()
        if bare in addresses:
            return True
        domain = bare.rpartition("@")[2]
        labels = domain.split(".")
        return any(".".join(labels[index:]) in domains for index in range(len(labels)))

    return is_opted_out


def _assess_all(
    context: _Context, targets: Sequence[Target], history: Sequence[ProbeRecord]
) -> tuple[list[_Ready], list[Blocked]]:
    _require_inputs(context.now, context.personas)
    records_by_target = _group_by_target(history)
    ready: list[_Ready] = []
    blocked: list[Blocked] = []
    for target in targets:
        outcome = _assess(context, target, records_by_target.get(target.id, ()))
        if isinstance(outcome, _Ready):
            ready.append(outcome)
        else:
            blocked.append(outcome)
    admitted, capped = _apply_hourly_cap(ready, history, context.politeness, context.now)
    return admitted, blocked + capped


def _standing_block(
    target: Target, opted_out: Callable[[str], bool], failing_targets: Collection[str]
) -> BlockReason | None:
    if target.paused:
        return BlockReason.PAUSED
    if opted_out(target.address):
        return BlockReason.OPTED_OUT
    if target.id in failing_targets:
        return BlockReason.ADDRESS_FAILING
    return None


def _assess(context: _Context, target: Target, records: Sequence[ProbeRecord]) -> _Ready | Blocked:
    if reason := _standing_block(target, context.opted_out, context.failing_targets):
        return Blocked(target.id, reason, None)
    digest = _digest(records, context.politeness)
    if digest.in_flight:
        return Blocked(target.id, BlockReason.OUTSTANDING, None)
    calendar, now = context.calendar_for(target), context.now
    due = _send_slot(
        calendar, context.politeness, now, _earliest(digest), target.id, digest.jitter_key
    )
    if due is None or due > now:
        return Blocked(target.id, _waiting_reason(digest, calendar, now), due)
    local_day = now.astimezone(calendar.timezone).date()
    question = _choose_question(target.id, digest.counted, context, local_day)
    if question is None:
        return _no_question_left(context, target, digest, calendar)
    persona = _choose_persona(target.id, digest.counted, context.personas)
    return _Ready(target, due, digest.last_moment, question, persona)


def _no_question_left(
    context: _Context, target: Target, digest: _TargetHistory, calendar: OfficeCalendar
) -> Blocked:
    release = _question_release(digest.counted, context.questions, context.politeness)
    until = None
    if release is not None:
        earliest = max(release, _earliest(digest) or release)
        until = _send_slot(
            calendar, context.politeness, context.now, earliest, target.id, digest.jitter_key
        )
    return Blocked(target.id, BlockReason.NO_QUESTION_LEFT, until)


def _waiting_reason(digest: _TargetHistory, calendar: OfficeCalendar, now: datetime) -> BlockReason:
    """The rule that holds the target back now, the most durable one first."""
    if digest.uncertain_release is not None and digest.uncertain_release > now:
        return BlockReason.OUTSTANDING
    if digest.spacing_release is not None and digest.spacing_release > now:
        return BlockReason.SPACING
    if digest.monthly_release is not None and digest.monthly_release > now:
        return BlockReason.MONTHLY_LIMIT
    if not is_working_day(calendar, now.astimezone(calendar.timezone).date()):
        return BlockReason.NOT_WORKING_DAY
    return BlockReason.OUTSIDE_WINDOW


def _digest(records: Sequence[ProbeRecord], politeness: Politeness) -> _TargetHistory:
    ordered = sorted(records, key=_moment)
    counted = tuple(r for r in ordered if r.state is not ProbeState.FAILED)
    failed = [r for r in ordered if r.state is ProbeState.FAILED]
    uncertain = [r.planned_at for r in counted if r.state is ProbeState.UNCERTAIN]
    releases = [_moment(counted[-1]) + politeness.min_spacing] if counted else []
    releases += [_moment(failed[-1]) + politeness.retry_after_failure] if failed else []
    return _TargetHistory(
        in_flight=any(_is_in_flight(r) for r in ordered),
        counted=counted,
        uncertain_release=max(uncertain) + politeness.min_spacing if uncertain else None,
        spacing_release=max(releases) if releases else None,
        monthly_release=_monthly_release(counted, politeness.max_per_target_per_30_days),
        last_moment=_moment(counted[-1]) if counted else None,
        jitter_key=ordered[-1].token if ordered else "first",
    )


def _is_in_flight(record: ProbeRecord) -> bool:
    # An UNCERTAIN probe may never be settled by a reply, so it gets a timed block instead;
    # a FAILED one never reached the target, so there is nothing to wait for.
    if record.state in _IN_FLIGHT:
        return True
    return record.state is ProbeState.SENT and record.outstanding


def _monthly_release(counted: Sequence[ProbeRecord], limit: int) -> datetime | None:
    """When fewer than ``limit`` probes remain in the rolling 30 days (counted is sorted)."""
    if len(counted) < limit:
        return None
    return _moment(counted[-limit]) + ROLLING_MONTH


def _earliest(digest: _TargetHistory) -> datetime | None:
    releases = [
        moment
        for moment in (digest.uncertain_release, digest.spacing_release, digest.monthly_release)
        if moment is not None
    ]
    return max(releases) if releases else None


def _send_slot(
    calendar: OfficeCalendar,
    politeness: Politeness,
    now: datetime,
    earliest: datetime | None,
    target_id: str,
    jitter_key: str,
) -> datetime | None:
    """The first jittered moment inside a send window on a working day, not before earliest.

    The search starts at today's window opening rather than ``now``, so that the answer does
    not move as the clock ticks: a target is due once ``now`` passes it.
    """
    zone = calendar.timezone
    opening, closing = politeness.send_window
    today = now.astimezone(zone).date()
    floor = datetime.combine(today, opening, zone)
    if earliest is not None and earliest > floor:
        floor = earliest.astimezone(zone)
    fraction = _unit_hash(target_id, jitter_key)
    day = floor.date()
    for _ in range(_SEARCH_LIMIT_DAYS):
        start, end = datetime.combine(day, opening, zone), datetime.combine(day, closing, zone)
        if end > now and is_working_day(calendar, day):
            candidate = max(floor, start) + _jitter(fraction, min(politeness.jitter, end - start))
            if candidate < end:
                return candidate
        day += timedelta(days=1)
    return None


def _jitter(fraction: float, span: timedelta) -> timedelta:
    # Whole seconds: send times read well in status output and logs.
    return timedelta(seconds=int(fraction * span.total_seconds()))


def _choose_question(
    target_id: str, counted: Sequence[ProbeRecord], context: _Context, local_day: date
) -> Question | None:
    """Least recently asked of this target first, then the least recently asked area."""
    asked = _last_use(counted, lambda r: r.question_id)
    area_of = {question.id: question.area for question in context.questions}
    areas = _last_use(counted, lambda r: area_of.get(r.question_id, ""))
    span = context.politeness.question_repeat_span
    allowed = [
        question
        for question in context.questions
        if question.id not in asked or context.now - asked[question.id] >= span
    ]
    if not allowed:
        return None

    def recency(question: Question) -> tuple[datetime, datetime]:
        return asked.get(question.id, _NEVER), areas.get(question.area, _NEVER)

    freshest = min(map(recency, allowed))
    tied = [question for question in allowed if recency(question) == freshest]
    day = local_day.isoformat()
    return min(tied, key=lambda question: _unit_hash(target_id, day, question.id))


def _question_release(
    counted: Sequence[ProbeRecord], questions: Sequence[Question], politeness: Politeness
) -> datetime | None:
    asked = _last_use(counted, lambda r: r.question_id)
    releases = [asked[q.id] + politeness.question_repeat_span for q in questions if q.id in asked]
    return min(releases) if releases else None


def _choose_persona(
    target_id: str, counted: Sequence[ProbeRecord], personas: Sequence[Persona]
) -> Persona:
    """The persona this target has heard from least recently; new targets start anywhere."""
    used = _last_use(counted, lambda r: r.persona_id)
    return min(personas, key=lambda p: (used.get(p.id, _NEVER), _unit_hash(target_id, p.id)))


def _apply_hourly_cap(
    ready: list[_Ready], history: Sequence[ProbeRecord], politeness: Politeness, now: datetime
) -> tuple[list[_Ready], list[Blocked]]:
    """Admit the targets that waited longest, within the global hourly cap."""
    recent = sorted(m for m in map(_moment, history) if now - ONE_HOUR < m <= now)
    room = max(politeness.max_per_hour - len(recent), 0)
    queue = sorted(ready, key=_waiting_priority)
    admitted = queue[:room]
    # Moments that must age out of the hour, oldest first, before the next send fits.
    occupied = recent + [now] * len(admitted)
    excess = len(occupied) - politeness.max_per_hour
    capped = [
        Blocked(item.target.id, BlockReason.HOURLY_LIMIT, _cap_release(occupied, excess + rank))
        for rank, item in enumerate(queue[room:])
    ]
    return admitted, capped


def _cap_release(occupied: Sequence[datetime], index: int) -> datetime | None:
    return occupied[index] + ONE_HOUR if 0 <= index < len(occupied) else None


def _waiting_priority(item: _Ready) -> tuple[bool, datetime, datetime, str]:
    # Never probed first, then the longest since the last probe; then the earlier due time.
    last = item.last_moment
    return (last is not None, last or _NEVER, item.due, item.target.id)


def _decision(item: _Ready) -> SendDecision:
    return SendDecision(item.target.id, item.question.id, item.persona.id)


def _group_by_target(history: Iterable[ProbeRecord]) -> Mapping[str, list[ProbeRecord]]:
    grouped: defaultdict[str, list[ProbeRecord]] = defaultdict(list)
    for record in history:
        grouped[record.target_id].append(record)
    return grouped


def _last_use(
    records: Iterable[ProbeRecord], key: Callable[[ProbeRecord], str]
) -> dict[str, datetime]:
    latest: dict[str, datetime] = {}
    for record in records:
        moment = _moment(record)
        name = key(record)
        if name not in latest or moment > latest[name]:
            latest[name] = moment
    return latest


def _moment(record: ProbeRecord) -> datetime:
    return record.sent_at or record.planned_at


def _unit_hash(*parts: str) -> float:
    """A number in [0, 1) fixed by the parts: reproducible jitter and tie-breaks."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _require_inputs(now: datetime, personas: Sequence[Persona]) -> None:
    _require_aware(now)
    if not personas:
        raise ValueError("no personas to sign probes with")


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("now must be timezone-aware")

"""KKiK-grade report figures over a period, per group of targets, streamed from compact facts.

The figures are exactly those of ``stats.summarise`` (same definitions, same numbers; a test
checks that on random data), computed from one pass over ``OutcomeFact`` rows instead of a list
of ``ProbeOutcome`` objects, so that a year of a million probes fits in memory and time:

- ``TallyBook.add`` counts each fact into its target's ``Tally`` (per month as well, for the
  chart of the monthly share);
- ``build_report`` merges target tallies into groups (target | county | tag | all), turns each
  into a ``GroupStats`` with ``tally_stats``, ranks the groups and compares each with the same
  group in the previous period.

Reply-time quantiles come from ``stats.km_quantiles`` over a tally's answer and waiting times,
the same exact Kaplan–Meier that ``stats.summarise`` uses.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import NamedTuple

from monitor.domain.calendar import OfficeCalendar
from monitor.domain.model import OutcomeState, ProbeOutcome, Target
from monitor.domain.outcome import OutcomeRules, compute_outcome
from monitor.domain.periods import Period
from monitor.domain.stats import HOUR, GroupStats, km_quantiles, rank, wilson_interval
from monitor.domain.worktime import (
    WORKING_DAY_SECONDS,
    is_working_day,
    working_days_between,
    working_seconds,
)

ALL_KEY = "all"
# The row over every target says what it is: it is no municipality, so it has no kommunkod.
TOTAL_KEY = "total"
TOTAL_NAME = "Alla"
NO_COUNTY = "(no county)"
_ANSWERED = OutcomeState.ANSWERED
_FINAL = OutcomeState.UNANSWERED_FINAL
_SO_FAR = OutcomeState.UNANSWERED_SO_FAR
_NOT_MEASURABLE = OutcomeState.NOT_MEASURABLE
_ONE_DAY = float(WORKING_DAY_SECONDS)
_TWO_DAYS = 2.0 * WORKING_DAY_SECONDS


# -- grouping ----------------------------------------------------------------------------------


class GroupKind(StrEnum):
    TARGET = "target"
    COUNTY = "county"
    TAG = "tag"
    ALL = "all"


@dataclass(frozen=True)
class Grouping:
    """How targets are grouped. ``tag`` is an exact tag, or a prefix when it ends with ``*``."""

    kind: GroupKind
    tag: str | None = None

    @property
    def label(self) -> str:
        return f"tag:{self.tag}" if self.kind is GroupKind.TAG else self.kind.value

    def keys_for(self, target: Target) -> tuple[str, ...]:
        """The groups a target belongs to (several for a tag prefix the target has twice)."""
        if self.kind is GroupKind.TARGET:
            return (target.id,)
        if self.kind is GroupKind.COUNTY:
            return (target.county or NO_COUNTY,)
        if self.kind is GroupKind.ALL:
            return (ALL_KEY,)
        return _tag_keys(self.tag or "", target.tags)


def _tag_keys(tag: str, tags: Sequence[str]) -> tuple[str, ...]:
    if tag.endswith("*"):
        matching = sorted({t for t in tags if t.startswith(tag[:-1])})
        return tuple(matching) or (f"(no {tag} tag)",)
    return (tag,) if tag in tags else (f"(not {tag})",)


def parse_grouping(text: str) -> Grouping:
    """``target`` | ``county`` | ``all`` | ``tag:NAME`` | ``tag:PREFIX*``."""
    value = text.strip()
    if value.startswith("tag:") and len(value) > len("tag:"):
        return Grouping(GroupKind.TAG, value[len("tag:") :])
    if value in (GroupKind.TARGET, GroupKind.COUNTY, GroupKind.ALL):
        return Grouping(GroupKind(value))
    raise ValueError(f"group-by {text!r} is not one of target, county, all, tag:NAME")


# -- facts and tallies -------------------------------------------------------------------------


class OutcomeFact(NamedTuple):
    """What the figures need of one probe's stored outcome: a row, not an object graph.

    ``clock_start`` is needed only when the probe is measurable and not answered (or answered
    without a working time); ``sent_at`` only while it is unanswered so far. Either may be None
    otherwise. ``month`` indexes the period's months (-1: outside them).
    """

    token: str
    target_id: str
    month: int
    state: OutcomeState
    sent_at: datetime | None
    clock_start: datetime | None
    working_seconds: float | None
    within_one: bool | None
    within_two: bool | None
    acknowledged: bool
    bounced: bool


@dataclass(frozen=True)
class SettledTargetCounts:
    """One target's settled probes, counted (in SQL where it can).

    Settled: answered with a working time, unanswered final, or not measurable; every
    measurable one of them has its verdict on one and two working days. ``working_seconds``
    lists the reply times of the answered, ``clock_starts`` the clock starts of the final.
    """

    target_id: str
    probes: int
    bounces: int
    measurable: int
    acknowledged: int
    answered: int
    within_one: int
    within_two: int
    month_decided: Sequence[int]
    month_within: Sequence[int]
    working_seconds: Sequence[float]
    clock_starts: Sequence[datetime | None]


@dataclass(slots=True)
class Tally:
    """Counters behind one GroupStats (an accumulator, so not frozen)."""

    months: int
    probes: int = 0
    measurable: int = 0
    bounces: int = 0
    acknowledged: int = 0
    one_decided: int = 0
    one_within: int = 0
    one_answered: int = 0
    two_decided: int = 0
    two_within: int = 0
    events: list[float] = field(default_factory=list)  # working hours to the answer
    censored: list[float] = field(default_factory=list)  # working hours waited so far
    month_decided: list[int] = field(default_factory=list)
    month_within: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.month_decided = [0] * self.months
        self.month_within = [0] * self.months

    def merge(self, other: Tally) -> None:
        self.probes += other.probes
        self.measurable += other.measurable
        self.bounces += other.bounces
        self.acknowledged += other.acknowledged
        self.one_decided += other.one_decided
        self.one_within += other.one_within
        self.one_answered += other.one_answered
        self.two_decided += other.two_decided
        self.two_within += other.two_within
        self.events.extend(other.events)
        self.censored.extend(other.censored)
        for index in range(self.months):
            self.month_decided[index] += other.month_decided[index]
            self.month_within[index] += other.month_within[index]


class TallyBook:
    """Tallies per target, filled from facts in batches (so rows can be streamed)."""

    def __init__(
        self, months: int, calendar_for: Callable[[str], OfficeCalendar], now: datetime
    ) -> None:
        self.months = months
        self.by_target: dict[str, Tally] = {}
        self._calendar_for = calendar_for
        self._now = now
        self._waited_by_target: dict[str, WaitedUntil] = {}
        self._waited_by_calendar: dict[int, WaitedUntil] = {}

    def add(self, facts: Iterable[OutcomeFact]) -> int:
        """Count the facts in; returns how many there were."""
        count = 0
        for fact in facts:
            tally = self.by_target.get(fact.target_id)
            if tally is None:
                tally = self.by_target[fact.target_id] = Tally(self.months)
            self._count(tally, fact)
            count += 1
        return count

    def add_settled(self, counts: Iterable[SettledTargetCounts]) -> int:
        """Add targets' settled counts, as ``add`` would each probe; returns how many probes."""
        total = 0
        for found in counts:
            tally = self.by_target.get(found.target_id)
            if tally is None:
                tally = self.by_target[found.target_id] = Tally(self.months)
            self._count_settled(tally, found)
            total += found.probes
        return total

    def _count_settled(self, tally: Tally, found: SettledTargetCounts) -> None:
        decided = found.measurable  # settled and measurable: every verdict is in
        tally.probes += found.probes
        tally.bounces += found.bounces
        tally.measurable += found.measurable
        tally.acknowledged += found.acknowledged
        tally.one_decided += decided
        tally.one_within += found.within_one
        tally.one_answered += found.answered
        tally.two_decided += decided
        tally.two_within += found.within_two
        for index in range(min(tally.months, len(found.month_decided))):
            tally.month_decided[index] += found.month_decided[index]
            tally.month_within[index] += found.month_within[index]
        tally.events.extend(seconds / HOUR for seconds in found.working_seconds)
        waited = self._waited_for(found.target_id)
        tally.censored.extend(
            (waited(start) if start is not None else 0.0) / HOUR for start in found.clock_starts
        )

    def _count(self, tally: Tally, fact: OutcomeFact) -> None:
        # The rules of stats.summarise, per fact; see its module docstring.
        tally.probes += 1
        tally.bounces += fact.bounced
        if fact.state is _NOT_MEASURABLE:
            return
        tally.measurable += 1
        tally.acknowledged += fact.acknowledged
        answered = fact.state is _ANSWERED
        waited = self._waited(fact, answered)
        settled = answered or fact.state is _FINAL
        if settled or fact.within_one is False or waited > _ONE_DAY:
            within = fact.within_one is True
            tally.one_decided += 1
            tally.one_within += within
            tally.one_answered += answered
            if 0 <= fact.month < tally.months:
                tally.month_decided[fact.month] += 1
                tally.month_within[fact.month] += within
        if settled or fact.within_two is False or waited > _TWO_DAYS:
            tally.two_decided += 1
            tally.two_within += fact.within_two is True
        (tally.events if answered else tally.censored).append(waited / HOUR)

    def _waited(self, fact: OutcomeFact, answered: bool) -> float:
        if answered and fact.working_seconds is not None:
            return fact.working_seconds
        if fact.clock_start is None:
            return 0.0
        return self._waited_for(fact.target_id)(fact.clock_start)

    def _waited_for(self, target_id: str) -> WaitedUntil:
        found = self._waited_by_target.get(target_id)
        if found is None:
            cal = self._calendar_for(target_id)
            found = self._waited_by_calendar.get(id(cal))
            if found is None:
                found = self._waited_by_calendar[id(cal)] = WaitedUntil(cal, self._now)
            self._waited_by_target[target_id] = found
        return found


class WaitedUntil:
    """``working_seconds(cal, start, now)`` for many starts, at a few float operations each.

    Per local date of ``start`` it keeps that day's office spans as instants and the working
    seconds from the next midnight to ``now``; a start is then its day's remaining office time
    plus that. Spans are read as ``worktime`` reads them (wall times on the date, fold=0); a
    test checks the two agree, DST days included.
    """

    def __init__(self, cal: OfficeCalendar, now: datetime) -> None:
        self._cal = cal
        self._now = now
        self._now_ts = now.timestamp()
        self._days: dict[date, tuple[tuple[tuple[float, float], ...], float, float]] = {}

    def __call__(self, start: datetime) -> float:
        moment = start.timestamp()
        if moment >= self._now_ts:
            return 0.0
        day = start.astimezone(self._cal.timezone).date()
        known = self._days.get(day)
        if known is None:
            known = self._days[day] = self._day(day)
        spans, midnight, after = known
        if self._now_ts <= midnight:  # now is on the same day: no shortcut
            return working_seconds(self._cal, start, self._now)
        head = 0.0
        for opening, closing in spans:
            if closing > moment:
                head += closing - max(opening, moment)
        return head + after

    def _day(self, day: date) -> tuple[tuple[tuple[float, float], ...], float, float]:
        zone = self._cal.timezone
        midnight = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
        spans: tuple[tuple[float, float], ...] = ()
        if is_working_day(self._cal, day):
            spans = tuple(
                (
                    datetime.combine(day, opening, tzinfo=zone).timestamp(),
                    datetime.combine(day, closing, tzinfo=zone).timestamp(),
                )
                for opening, closing in self._cal.hours[day.weekday()]
            )
        return spans, midnight.timestamp(), working_seconds(self._cal, midnight, self._now)


def refreshed(
    fact: OutcomeFact,
    *,
    cal: OfficeCalendar,
    now: datetime,
    rules: OutcomeRules,
    monitor_down: Sequence[tuple[datetime, datetime]],
) -> OutcomeFact:
    """An unanswered-so-far fact re-judged at ``now``: final, or not measurable if we were down.

    A stored "unanswered so far" goes stale when the daemon did not run to move it on. Without
    a human answer (there is none, or it would be ANSWERED) the only inputs that matter are the
    send time, the calendar and our downtime, so no messages are needed.
    """
    if fact.state is not _SO_FAR or fact.sent_at is None:
        return fact
    if working_days_between(cal, fact.sent_at, now) < rules.final_after_working_days:
        return fact
    fresh = compute_outcome(
        token=fact.token,
        sent_at=fact.sent_at,
        send_failed=False,
        messages=(),
        cal=cal,
        now=now,
        rules=rules,
        monitor_down=monitor_down,
    )
    return fact._replace(
        state=fresh.state,
        clock_start=fresh.clock_start,
        within_one=fresh.within_one_working_day,
        within_two=fresh.within_two_working_days,
    )


# -- figures -----------------------------------------------------------------------------------


def tally_stats(key: str, tally: Tally, *, min_probes: int) -> GroupStats:
    """The GroupStats of a tally: the same figures ``stats.summarise`` gives for its probes."""
    quantiles = km_quantiles(tally.events, tally.censored)
    within_one = wilson_interval(tally.one_within, tally.one_decided)
    return GroupStats(
        key=key,
        probes=tally.probes,
        measurable=tally.measurable,
        answered=wilson_interval(tally.one_answered, tally.one_decided),
        within_one=within_one,
        within_two=wilson_interval(tally.two_within, tally.two_decided),
        median_working_hours=quantiles[0.5],
        p90_working_hours=quantiles[0.9],
        auto_ack_share=wilson_interval(tally.acknowledged, tally.measurable),
        bounces=tally.bounces,
        low_confidence=within_one.total < min_probes,
    )


# -- the report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    """One group of the report; for target grouping one municipality."""

    key: str
    name: str
    kommunkod: str | None
    county: str | None
    targets: int
    stats: GroupStats
    previous: GroupStats
    rank: int | None
    change_pp: float | None  # within_one share now minus before, in percentage points
    monthly: tuple[float | None, ...]  # within_one share per month of the period


@dataclass(frozen=True)
class Report:
    period: Period
    previous_period: Period
    grouping: Grouping
    as_of: datetime
    months: tuple[str, ...]
    rows: tuple[ReportRow, ...]  # best share first; unranked groups last, by key
    total: ReportRow  # every target together
    min_probes: int


@dataclass(frozen=True)
class ReportInput:
    period: Period
    previous_period: Period
    grouping: Grouping
    targets: Sequence[Target]
    current: Mapping[str, Tally]  # per target id
    before: Mapping[str, Tally]
    as_of: datetime
    min_probes: int


def build_report(given: ReportInput) -> Report:
    """Rows per group, ranked, each compared with the same group in the previous period."""
    months = len(given.period.months())
    members = _members(given.grouping, given.targets)
    rows = [_row(given, key, targets, months) for key, targets in members.items()]
    ranks = rank([row.stats for row in rows])
    rows = [replace(row, rank=ranks.get(row.key)) for row in rows]
    rows.sort(key=lambda row: (row.rank is None, row.rank or 0, row.key))
    total = _total_row(given, months)
    return Report(
        period=given.period,
        previous_period=given.previous_period,
        grouping=given.grouping,
        as_of=given.as_of,
        months=tuple(month.label for month in given.period.months()),
        rows=tuple(rows),
        total=total,
        min_probes=given.min_probes,
    )


def _members(grouping: Grouping, targets: Sequence[Target]) -> dict[str, list[Target]]:
    members: dict[str, list[Target]] = {}
    for target in targets:
        for key in grouping.keys_for(target):
            members.setdefault(key, []).append(target)
    return members


def _row(given: ReportInput, key: str, targets: Sequence[Target], months: int) -> ReportRow:
    now = _merged(given.current, targets, months)
    before = _merged(given.before, targets, len(given.previous_period.months()))
    stats = tally_stats(key, now, min_probes=given.min_probes)
    previous = tally_stats(key, before, min_probes=given.min_probes)
    single = targets[0] if given.grouping.kind is GroupKind.TARGET else None
    return ReportRow(
        key=key,
        name=single.name if single is not None else _group_name(key),
        kommunkod=single.kommunkod if single is not None else None,
        county=single.county if single is not None else _common_county(targets),
        targets=len(targets),
        stats=stats,
        previous=previous,
        rank=None,
        change_pp=_change_pp(stats, previous),
        monthly=_monthly(now),
    )


def _total_row(given: ReportInput, months: int) -> ReportRow:
    """Every target together, labelled as such: a county only when all members share it."""
    targets = list(given.targets)
    row = _row(replace(given, grouping=Grouping(GroupKind.ALL)), TOTAL_KEY, targets, months)
    return replace(row, name=TOTAL_NAME, kommunkod=None, county=_common_county(targets))


def _group_name(key: str) -> str:
    return TOTAL_NAME if key == ALL_KEY else key


def _monthly(tally: Tally) -> tuple[float | None, ...]:
    return tuple(
        within / decided if decided else None
        for within, decided in zip(tally.month_within, tally.month_decided, strict=True)
    )


def _merged(tallies: Mapping[str, Tally], targets: Sequence[Target], months: int) -> Tally:
    merged = Tally(months)
    for target in targets:
        found = tallies.get(target.id)
        if found is not None:
            merged.merge(found)
    return merged


def _common_county(targets: Sequence[Target]) -> str | None:
    counties = {target.county for target in targets}
    return counties.pop() if len(counties) == 1 else None


def _change_pp(now: GroupStats, before: GroupStats) -> float | None:
    if now.within_one.ratio is None or before.within_one.ratio is None:
        return None
    return 100.0 * (now.within_one.ratio - before.within_one.ratio)


def fact_from_outcome(
    outcome: ProbeOutcome, *, target_id: str, sent_at: datetime | None, month: int
) -> OutcomeFact:
    """The fact of a full outcome (for probes recomputed on the spot, and for tests)."""
    return OutcomeFact(
        token=outcome.token,
        target_id=target_id,
        month=month,
        state=outcome.state,
        sent_at=sent_at,
        clock_start=outcome.clock_start,
        working_seconds=outcome.working_seconds,
        within_one=outcome.within_one_working_day,
        within_two=outcome.within_two_working_days,
        acknowledged=outcome.first_ack_at is not None,
        bounced=outcome.bounced,
    )


def month_index(month_ends: Sequence[datetime], sent: datetime) -> int:
    """Index of the first month end after ``sent``; -1 when it is after all of them."""
    moment = sent.timestamp()
    index = bisect.bisect_right([end.timestamp() for end in month_ends], moment)
    return index if index < len(month_ends) else -1

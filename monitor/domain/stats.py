"""Figures over groups of probe outcomes: shares with confidence intervals, reply-time
quantiles that account for unanswered probes, and rankings.

Definitions (the same for metrics and reports):

- A probe is *measurable* unless its outcome is NOT_MEASURABLE (send failed, bounced, or
  our own outage).
- KKiK's indicator is "the share of questions answered within one working day", with
  unanswered questions counting as not answered. A measurable probe enters the denominator
  of ``within_one`` once its verdict is in: it is answered, or final, or still unanswered
  with more than one working day (9 office hours) already gone. Probes still inside their
  first working day are left out, so a fresh probe never drags a share down before it has
  had its chance. ``answered`` (answered so far) uses the same denominator.
  ``within_two`` likewise, with two working days.
- Reply-time quantiles are Kaplan–Meier estimates in working hours: an answer is an event
  at its working time; an unanswered measurable probe is censored at the working time
  elapsed from its clock start to ``now``. A quantile the answers never reach is None.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from monitor.domain.calendar import OfficeCalendar, swedish_default_calendar
from monitor.domain.model import OutcomeState, ProbeOutcome
from monitor.domain.worktime import WORKING_DAY_SECONDS, working_seconds

Z_95 = 1.959964  # two-sided 95 %
HOUR = 3600.0


@dataclass(frozen=True)
class Proportion:
    """successes / total with a Wilson score interval; ratio and bounds None when total is 0."""

    successes: int
    total: int
    ratio: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class SurvivalSummary:
    """Kaplan–Meier median and 90th percentile; None where the curve never gets there."""

    median: float | None
    p90: float | None


@dataclass(frozen=True)
class GroupStats:
    key: str
    probes: int
    measurable: int
    answered: Proportion
    within_one: Proportion
    within_two: Proportion
    median_working_hours: float | None
    p90_working_hours: float | None
    auto_ack_share: Proportion
    bounces: int
    low_confidence: bool  # fewer decided probes than min_probes behind within_one


def wilson_interval(successes: int, total: int, z: float = Z_95) -> Proportion:
    """The Wilson score interval, which stays inside [0, 1] and works for small samples."""
    if not 0 <= successes <= total:
        raise ValueError(f"need 0 <= successes <= total, got {successes}/{total}")
    if total == 0:
        return Proportion(successes=0, total=0, ratio=None, low=None, high=None)
    ratio = successes / total
    z2 = z * z
    denominator = 1 + z2 / total
    centre = (ratio + z2 / (2 * total)) / denominator
    half = z * math.sqrt(ratio * (1 - ratio) / total + z2 / (4 * total * total)) / denominator
    return Proportion(
        successes=successes,
        total=total,
        ratio=ratio,
        low=max(0.0, centre - half),
        high=min(1.0, centre + half),
    )


def kaplan_meier_quantiles(
    observations: Sequence[tuple[float, bool]], quantiles: Sequence[float] = (0.5, 0.9)
) -> dict[float, float | None]:
    """Quantiles of time-to-event from (duration, event_observed) pairs.

    ``event_observed`` False means censored: no event up to that duration (an unanswered
    probe). The q-quantile is the smallest observed event time t with S(t) <= 1 - q, or
    None if the estimated survival never falls that low. At tied times events are taken
    before censorings. Survival is exact (see ``km_quantiles``), so a curve that reaches
    exactly 1 - q is not missed by rounding.
    """
    for duration, _ in observations:
        if duration < 0 or math.isnan(duration):
            raise ValueError(f"durations must not be negative, got {duration}")
    events = [duration for duration, observed in observations if observed]
    censored = [duration for duration, observed in observations if not observed]
    return km_quantiles(events, censored, quantiles)


def km_quantiles(
    events: Sequence[float], censored: Sequence[float], quantiles: Sequence[float] = (0.5, 0.9)
) -> dict[float, float | None]:
    """``kaplan_meier_quantiles`` of event and censoring times, exactly, in O(n log n).

    Between two censoring times no one leaves the risk set but by an event, so there the
    product of (n - d) / n telescopes: after k of a segment's events S = C * (n0 - k) / n0,
    with C the survival at the segment's start and n0 its risk set. The first k that brings
    S to 1 - q is solved for directly; the segment's k-th event time is the quantile.
    Multiplying Fractions at every event time instead is quadratic in the number of distinct
    times (2 s for 50,000 probes).
    """
    for quantile in quantiles:
        if not 0 < quantile < 1:
            raise ValueError(f"quantile must be between 0 and 1, got {quantile}")
    # S only falls, so the levels are reached highest first.
    pending = sorted((_Level(q) for q in quantiles), key=lambda level: -level.rough)
    found: dict[float, float | None] = dict.fromkeys(quantiles)
    times, cut = sorted(events), sorted(censored)
    survival = _Survival()
    start, total = 0, len(times) + len(cut)
    for boundary in [*cut, math.inf]:
        end = bisect.bisect_right(times, boundary, lo=start)  # a repeated boundary adds none
        if end > start:
            # At-risk excludes the censorings before the segment's first event time.
            at_risk = total - start - bisect.bisect_left(cut, times[start])
            events_here = end - start
            while pending and (k := survival.first_k(pending[0], at_risk, events_here)) <= (
                events_here
            ):
                found[pending.pop(0).quantile] = times[start + k - 1]
            survival.close(at_risk - (end - start), at_risk)
        start = end
        if not pending or start == len(times):
            break
    return found


def survival_summary(observations: Sequence[tuple[float, bool]]) -> SurvivalSummary:
    found = kaplan_meier_quantiles(observations, (0.5, 0.9))
    return SurvivalSummary(median=found[0.5], p90=found[0.9])


def summarise(
    key: str,
    outcomes: Sequence[ProbeOutcome],
    *,
    now: datetime,
    cal_for: Callable[[str], OfficeCalendar] | None = None,
    min_probes: int = 5,
) -> GroupStats:
    """Figures for one group (a target, a county, ...); see the module docstring.

    ``cal_for`` maps a probe token to its office calendar, used for the working time that
    unanswered probes have waited until ``now``; None means the Swedish default calendar.
    """
    calendar_of = cal_for or (lambda _token: swedish_default_calendar())
    measurable = [o for o in outcomes if o.state is not OutcomeState.NOT_MEASURABLE]
    waited = [(o, _waited(o, calendar_of, now)) for o in measurable]
    one_day = [
        o for o, w in waited if _decided(o, o.within_one_working_day, w, WORKING_DAY_SECONDS)
    ]
    two_days = [
        o for o, w in waited if _decided(o, o.within_two_working_days, w, 2 * WORKING_DAY_SECONDS)
    ]
    survival = survival_summary([(w / HOUR, _is_answered(o)) for o, w in waited])
    within_one = wilson_interval(
        sum(o.within_one_working_day is True for o in one_day), len(one_day)
    )
    return GroupStats(
        key=key,
        probes=len(outcomes),
        measurable=len(measurable),
        answered=wilson_interval(sum(_is_answered(o) for o in one_day), len(one_day)),
        within_one=within_one,
        within_two=wilson_interval(
            sum(o.within_two_working_days is True for o in two_days), len(two_days)
        ),
        median_working_hours=survival.median,
        p90_working_hours=survival.p90,
        auto_ack_share=wilson_interval(
            sum(o.first_ack_at is not None for o in measurable), len(measurable)
        ),
        bounces=sum(o.bounced for o in outcomes),
        low_confidence=within_one.total < min_probes,
    )


def rank(groups: Sequence[GroupStats]) -> dict[str, int]:
    """Standard competition ranking ("1224") by within_one share, best first.

    Equal shares (compared exactly, so 2/4 ties 1/2) share a rank. Groups without any
    decided probe have no share and are left out.
    """
    ranked = sorted(
        (g for g in groups if g.within_one.total > 0),
        key=lambda g: (-_share(g), g.key),
    )
    ranks: dict[str, int] = {}
    current_share, current_rank = None, 0
    for position, group in enumerate(ranked, start=1):
        if _share(group) != current_share:
            current_share, current_rank = _share(group), position
        ranks[group.key] = current_rank
    return ranks


def _share(group: GroupStats) -> Fraction:
    return Fraction(group.within_one.successes, group.within_one.total)


class _Level:
    """1 - q, exactly and roughly."""

    def __init__(self, quantile: float) -> None:
        exact = 1 - Fraction(str(quantile))  # 0.9 means 9/10, not the float just above it
        self.quantile = quantile
        self.numerator, self.denominator = exact.numerator, exact.denominator
        self.rough = float(exact)


class _Survival:
    """C, the survival after the closed segments: exact (n_after, n_before) pairs + estimate."""

    def __init__(self) -> None:
        self.segments: list[tuple[int, int]] = []
        self.estimate = 1.0

    def close(self, after: int, before: int) -> None:
        self.segments.append((after, before))
        self.estimate *= after / before

    def first_k(self, level: _Level, at_risk: int, events: int) -> int:
        """Smallest k >= 1 with C * (at_risk - k) / at_risk <= level; events + 1 if > events."""
        if self.estimate <= 0.0:
            return 1
        rough = at_risk * (1 - level.rough / self.estimate)
        # Rounding error of the estimate, generously: a few ulps per factor.
        slack = 1e-15 * at_risk * (len(self.segments) + 4)
        if rough - slack > events:
            return events + 1
        # Far from a whole number the float decides; near one, rounding could, so ints do.
        if abs(rough - round(rough)) > slack:
            return max(1, math.ceil(rough))
        c_num = _product([after for after, _ in self.segments])
        c_den = _product([before for _, before in self.segments])
        kept = (level.numerator * c_den * at_risk) // (c_num * level.denominator)
        return max(1, at_risk - kept)


def _product(factors: Sequence[int]) -> int:
    if not factors:
        return 1
    if len(factors) == 1:
        return factors[0]
    middle = len(factors) // 2
    return _product(factors[:middle]) * _product(factors[middle:])


def _waited(
    outcome: ProbeOutcome, calendar_of: Callable[[str], OfficeCalendar], now: datetime
) -> float:
    """Working seconds an unanswered probe has waited by ``now``; the reply time if answered."""
    if outcome.state is OutcomeState.ANSWERED and outcome.working_seconds is not None:
        return outcome.working_seconds
    if outcome.clock_start is None:
        return 0.0
    return working_seconds(calendar_of(outcome.token), outcome.clock_start, now)


def _decided(outcome: ProbeOutcome, within: bool | None, waited: float, limit: float) -> bool:
    """Is the verdict on "answered within ``limit``" in: settled, or already too late?"""
    settled = outcome.state in (OutcomeState.ANSWERED, OutcomeState.UNANSWERED_FINAL)
    # ``waited`` catches probes whose stored outcome predates ``now``.
    return settled or within is False or waited > limit


def _is_answered(outcome: ProbeOutcome) -> bool:
    return outcome.state is OutcomeState.ANSWERED

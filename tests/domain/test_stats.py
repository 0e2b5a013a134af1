from datetime import datetime, time
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.domain.calendar import OfficeCalendar, build_calendar, swedish_default_calendar
from monitor.domain.model import MessageKind, ObservedMessage, ProbeOutcome
from monitor.domain.outcome import compute_outcome
from monitor.domain.stats import (
    GroupStats,
    Proportion,
    SurvivalSummary,
    kaplan_meier_quantiles,
    km_quantiles,
    rank,
    summarise,
    survival_summary,
    wilson_interval,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
SE = swedish_default_calendar()


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=STOCKHOLM)


# --- Wilson score interval -------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "total", "low", "high"),
    [
        # by hand: p=0.8, z²=3.8415, d=1+z²/n=1.38415, centre=(0.8+0.19207)/d=0.71674,
        # half=1.96·sqrt(0.016+0.0096037)/d=0.22659
        (8, 10, 0.4902, 0.9433),
        # p=0.5, n=2: d=2.92074, half=1.96·sqrt(0.125+0.240092)/d=0.405475
        (1, 2, 0.0945, 0.9055),
        # all or nothing: the bounds are n/(n+z²) and z²/(n+z²)
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        # p=0.25, n=100: d=1.038415, centre=0.269207/d=0.25925, half=1.96·0.044397/d=0.08380
        (25, 100, 0.1755, 0.3430),
    ],
)
def test_wilson_interval_matches_hand_computed_bounds(
    successes: int, total: int, low: float, high: float
) -> None:
    result = wilson_interval(successes, total)
    assert result.successes == successes
    assert result.total == total
    assert result.ratio == successes / total
    assert result.low == pytest.approx(low, abs=1e-4)
    assert result.high == pytest.approx(high, abs=1e-4)


def test_wilson_interval_of_nothing_has_no_ratio() -> None:
    assert wilson_interval(0, 0) == Proportion(0, 0, None, None, None)


def test_wilson_interval_narrows_with_a_smaller_z() -> None:
    wide, narrow = wilson_interval(8, 10), wilson_interval(8, 10, z=1.0)
    assert narrow.low is not None and wide.low is not None
    assert narrow.low > wide.low


@pytest.mark.parametrize(("successes", "total"), [(-1, 3), (4, 3), (1, 0)])
def test_wilson_interval_refuses_impossible_counts(successes: int, total: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(successes, total)


# --- Kaplan–Meier ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observations", "median", "p90"),
    [
        # No censoring: the plain empirical quantiles (S(5)=0.5, S(9)=0.1).
        ([(float(t), True) for t in range(1, 11)], 5.0, 9.0),
        # By hand: n=6; S(1)=5/6, S(2)=4/6; censored at 3 leaves 3 at risk;
        # S(4)=4/6·2/3=4/9 <= 0.5; censored at 5 leaves 1; S(6)=0 <= 0.1.
        ([(1, True), (2, True), (3, False), (4, True), (5, False), (6, True)], 4.0, 6.0),
        # Ignoring the censoring would give a median of 2: the unanswered weigh in.
        ([(1, True), (2, True), (3, False), (3, False), (3, False)], None, None),
        # S(2) = 3/4 · 2/3 = exactly 1/2: the median is reached at 2.
        ([(1, True), (2, True), (3, False), (4, False)], 2.0, None),
        # Tied event and censoring: the event comes first, so 3 are at risk at t=2,
        # S(2)=2/3 and the median is 3 (censoring first would give S(2)=1/2, median 2).
        ([(2, True), (2, False), (3, True)], 3.0, 3.0),
        # Only unanswered probes, or nothing at all.
        ([(9, False), (20, False)], None, None),
        ([], None, None),
    ],
)
def test_kaplan_meier_quantiles_match_hand_computed_survival(
    observations: list[tuple[float, bool]], median: float | None, p90: float | None
) -> None:
    assert kaplan_meier_quantiles(observations) == {0.5: median, 0.9: p90}
    assert survival_summary(observations) == SurvivalSummary(median=median, p90=p90)


def test_kaplan_meier_answers_any_quantiles_asked() -> None:
    observations = [(float(t), True) for t in range(1, 5)]
    assert kaplan_meier_quantiles(observations, (0.25, 0.75)) == {0.25: 1.0, 0.75: 3.0}


@pytest.mark.parametrize(
    ("observations", "quantiles"),
    [([(-1.0, True)], (0.5,)), ([(1.0, True)], (1.0,)), ([(1.0, True)], (0.0,))],
)
def test_kaplan_meier_refuses_negative_durations_and_odd_quantiles(
    observations: list[tuple[float, bool]], quantiles: tuple[float, ...]
) -> None:
    with pytest.raises(ValueError):
        kaplan_meier_quantiles(observations, quantiles)


def reference_kaplan_meier_quantiles(
    pairs: list[tuple[float, bool]], quantiles: tuple[float, ...]
) -> dict[float, float | None]:
    """The product-limit estimator from its definition, in exact fractions.

    At each distinct time t: n = durations >= t (censored at t still at risk, so events come
    first at ties), d = events at t, S *= (n - d) / n. The q-quantile is the first event time
    with S <= 1 - q.
    """
    survival, curve = Fraction(1), []
    for time_ in sorted({duration for duration, _ in pairs}):
        at_risk = sum(duration >= time_ for duration, _ in pairs)
        deaths = sum(duration == time_ and observed for duration, observed in pairs)
        if deaths:
            survival *= Fraction(at_risk - deaths, at_risk)
            curve.append((time_, survival))
    return {q: next((t for t, s in curve if s <= 1 - Fraction(str(q))), None) for q in quantiles}


some_quantiles = st.sampled_from([(0.5, 0.9), (0.25, 0.5, 0.75), (0.1, 0.5), (0.9, 0.5, 0.9)])
tied_observations = st.lists(
    st.tuples(st.integers(0, 12).map(float), st.booleans()), min_size=0, max_size=40
)
spread_observations = st.lists(
    st.tuples(st.integers(0, 400).map(lambda eighths: eighths / 8), st.booleans()),
    min_size=0,
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(tied_observations, some_quantiles)
def test_km_quantiles_equal_the_product_limit_definition_on_tied_and_censored_data(
    pairs: list[tuple[float, bool]], quantiles: tuple[float, ...]
) -> None:
    events = [duration for duration, observed in pairs if observed]
    censored = [duration for duration, observed in pairs if not observed]
    expected = reference_kaplan_meier_quantiles(pairs, quantiles)
    assert km_quantiles(events, censored, quantiles) == expected
    assert kaplan_meier_quantiles(pairs, quantiles) == expected


@settings(max_examples=100, deadline=None)
@given(spread_observations, some_quantiles)
def test_km_quantiles_equal_the_product_limit_definition_on_many_distinct_times(
    pairs: list[tuple[float, bool]], quantiles: tuple[float, ...]
) -> None:
    expected = reference_kaplan_meier_quantiles(pairs, quantiles)
    assert kaplan_meier_quantiles(pairs, quantiles) == expected


@pytest.mark.parametrize(
    ("events", "censored", "median", "p90"),
    [
        # No censoring: S after the k-th of n events is exactly (n - k) / n.
        ([float(i) for i in range(1, 1001)], [], 500.0, 900.0),
        # One censored before the first event: 999 at risk, S reaches 1/2 at event 500.
        ([float(i) for i in range(1, 1000)], [0.5], 500.0, 900.0),
        # By hand: events 1, 2, censored 2.5, events 3, 4: S = 4/5, 3/5, (3/5)(1/2) = 0.3, 0
        ([1.0, 2.0, 3.0, 4.0], [2.5], 3.0, 4.0),
        # Half never answered: the curve stops at 1/2; no p90.
        ([1.0, 2.0], [50.0, 60.0], 2.0, None),
        ([], [1.0], None, None),
        ([], [], None, None),
    ],
)
def test_km_quantiles_hit_exact_levels_in_large_samples(
    events: list[float], censored: list[float], median: float | None, p90: float | None
) -> None:
    assert km_quantiles(events, censored) == {0.5: median, 0.9: p90}


def test_km_quantiles_refuse_a_quantile_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="quantile"):
        km_quantiles([1.0], [], (1.0,))


# --- summarise -------------------------------------------------------------------------

NOW = at(3, 11, 12)  # Wednesday 11 March 2026, noon


def probe(
    token: str,
    sent_at: datetime,
    *messages: tuple[MessageKind, datetime],
    computed_at: datetime = NOW,
    send_failed: bool = False,
) -> ProbeOutcome:
    observed = [
        ObservedMessage(
            message_key=f"{token}-{index}",
            kind=kind,
            received_at=received_at,
            has_new_text=True,
            permanent=True if kind is MessageKind.BOUNCE else None,
        )
        for index, (kind, received_at) in enumerate(messages)
    ]
    return compute_outcome(
        token=token,
        sent_at=sent_at,
        send_failed=send_failed,
        messages=observed,
        cal=SE,
        now=computed_at,
    )


HUMAN, AUTO, BOUNCE = MessageKind.HUMAN, MessageKind.AUTO_REPLY, MessageKind.BOUNCE
MONDAY_9 = at(3, 9, 9)

GROUP = [
    probe("fast", MONDAY_9, (AUTO, at(3, 9, 9, 1)), (HUMAN, at(3, 9, 11))),  # 2 h
    probe("same-day", MONDAY_9, (HUMAN, at(3, 9, 14))),  # 5 h
    probe("next-day", MONDAY_9, (HUMAN, at(3, 10, 12))),  # 8 + 4 = 12 h
    probe("never", at(2, 16, 10), (AUTO, at(2, 16, 10, 1))),  # final since 2 March 17:00
    probe("fresh", at(3, 11, 11)),  # waited 1 h: no verdict yet
    # computed on Monday, seen on Wednesday: waited 1 + 9 + 4 = 14 h, late for one day only
    probe("late", at(3, 9, 16), computed_at=at(3, 9, 16)),
    probe("bounced", MONDAY_9, (BOUNCE, at(3, 9, 9, 5))),
    probe("failed", MONDAY_9, send_failed=True),
]


def test_summarise_counts_only_probes_whose_verdict_is_in() -> None:
    stats = summarise("kommun", GROUP, now=NOW)
    assert stats.key == "kommun"
    assert stats.probes == 8
    assert stats.measurable == 6
    assert stats.bounces == 1
    # decided for one working day: fast, same-day, next-day, never, late
    assert (stats.within_one.successes, stats.within_one.total) == (2, 5)
    assert (stats.answered.successes, stats.answered.total) == (3, 5)
    # decided for two working days: fast, same-day, next-day, never
    assert (stats.within_two.successes, stats.within_two.total) == (3, 4)
    assert (stats.auto_ack_share.successes, stats.auto_ack_share.total) == (2, 6)
    assert stats.within_one == wilson_interval(2, 5)
    assert not stats.low_confidence


def test_summarise_reply_time_quantiles_count_unanswered_probes_as_censored() -> None:
    # events at 2, 5, 12 h; censored at 1 h (fresh), 14 h (late) and ~150 h (never):
    # S(2)=4/5, S(5)=3/5, S(12)=2/5 -> median 12 h; S never reaches 0.1.
    stats = summarise("kommun", GROUP, now=NOW)
    assert stats.median_working_hours == pytest.approx(12.0)
    assert stats.p90_working_hours is None


def test_summarise_flags_groups_with_too_few_decided_probes() -> None:
    assert summarise("kommun", GROUP, now=NOW, min_probes=6).low_confidence
    assert summarise("kommun", GROUP[:2], now=NOW, min_probes=2).low_confidence is False


def test_summarise_of_no_probes_has_no_figures() -> None:
    stats = summarise("tom", [], now=NOW)
    assert stats.probes == stats.measurable == stats.bounces == 0
    assert stats.within_one.ratio is None
    assert stats.median_working_hours is None
    assert stats.low_confidence


def test_summarise_uses_each_probes_own_calendar_for_waiting_time() -> None:
    # Sent Tuesday 12:00, seen Wednesday 12:00: 9 office hours on the default calendar (an
    # answer now would still be in time), 10 on a calendar that opens at 07:00.
    waiting = [probe("waiting", at(3, 10, 12), computed_at=at(3, 10, 12))]
    early: OfficeCalendar = build_calendar(
        name="early", hours={day: [(time(7), time(17))] for day in range(5)}
    )
    assert summarise("k", waiting, now=NOW).within_one.total == 0
    assert summarise("k", waiting, now=NOW, cal_for=lambda _token: early).within_one.total == 1


# --- rank ------------------------------------------------------------------------------


def group(key: str, successes: int, total: int) -> GroupStats:
    share = wilson_interval(successes, total)
    return GroupStats(
        key=key,
        probes=total,
        measurable=total,
        answered=share,
        within_one=share,
        within_two=share,
        median_working_hours=None,
        p90_working_hours=None,
        auto_ack_share=share,
        bounces=0,
        low_confidence=False,
    )


def test_rank_shares_places_on_ties_and_skips_the_next_ones() -> None:
    groups = [
        group("D", 1, 4),
        group("B", 1, 2),
        group("A", 3, 4),
        group("C", 2, 4),  # the same share as B: a tie
        group("E", 0, 0),  # nothing decided: not ranked
        group("F", 0, 3),
    ]
    assert rank(groups) == {"A": 1, "B": 2, "C": 2, "D": 4, "F": 5}


def test_rank_of_equal_groups_is_all_first() -> None:
    assert rank([group("x", 1, 3), group("y", 2, 6), group("z", 3, 9)]) == {
        "x": 1,
        "y": 1,
        "z": 1,
    }


def test_rank_of_nothing_is_empty() -> None:
    assert rank([]) == {}

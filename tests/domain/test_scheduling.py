from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.domain.calendar import OfficeCalendar, build_calendar, swedish_default_calendar
from monitor.domain.model import Persona, ProbeRecord, ProbeState, Question, Target
from monitor.domain.scheduling import (
    Blocked,
    BlockReason,
    Politeness,
    SendDecision,
    explain,
    next_send_time,
    optout_matcher,
    plan_sends,
    send_now,
)
from monitor.domain.worktime import is_working_day

STOCKHOLM = ZoneInfo("Europe/Stockholm")
CALENDAR = swedish_default_calendar()
NO_JITTER = Politeness(jitter=timedelta(0))
TARGET = Target(id="0180", name="Stockholm", address="kontakt@stockholm.example.invalid")
OTHER = Target(id="1480", name="Göteborg", address="info@goteborg.example.invalid")
AREAS = ("avfall", "bygglov", "förskola", "skola", "vatten", "parkering")
QUESTIONS = tuple(
    Question(id=f"{AREAS[index % 6]}-{index}", area=AREAS[index % 6], subject="s", body="b")
    for index in range(18)
)
PERSONAS = (Persona("anna", "Anna Berg"), Persona("omar", "Omar Said"), Persona("lena", "Lena Ek"))


def at(day: str, clock: str = "10:00") -> datetime:
    """A Stockholm wall time, e.g. at("2026-03-10", "09:30")."""
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=STOCKHOLM)


def record(
    moment: datetime,
    *,
    state: ProbeState = ProbeState.SENT,
    target: Target = TARGET,
    token: str = "aaaaaaaaaa",
    question: str = "avfall-0",
    persona: str = "anna",
    outstanding: bool = False,
) -> ProbeRecord:
    sent = moment if state is ProbeState.SENT else None
    return ProbeRecord(token, target.id, question, persona, state, moment, sent, outstanding)


def judge(
    now: datetime,
    history: Sequence[ProbeRecord] = (),
    *,
    targets: Sequence[Target] = (TARGET,),
    politeness: Politeness = NO_JITTER,
    questions: Sequence[Question] = QUESTIONS,
    opted_out: Callable[[str], bool] = lambda address: False,
    failing: Collection[str] = (),
    calendar: OfficeCalendar = CALENDAR,
) -> list[SendDecision | Blocked]:
    return explain(
        now=now,
        targets=targets,
        history=history,
        questions=questions,
        personas=PERSONAS,
        calendar_for=lambda target: calendar,
        politeness=politeness,
        opted_out=opted_out,
        failing_targets=failing,
    )


def plan(
    now: datetime,
    history: Sequence[ProbeRecord],
    targets: Sequence[Target],
    politeness: Politeness = NO_JITTER,
    questions: Sequence[Question] = QUESTIONS,
) -> list[SendDecision]:
    return plan_sends(
        now=now,
        targets=targets,
        history=history,
        questions=questions,
        personas=PERSONAS,
        calendar_for=lambda target: CALENDAR,
        politeness=politeness,
        opted_out=lambda address: False,
        failing_targets=(),
    )


def only(results: list[SendDecision | Blocked]) -> SendDecision | Blocked:
    assert len(results) == 1
    return results[0]


# 2026-03-10 is a Tuesday; 2026-03-14/15 a weekend.
NOW = at("2026-03-10", "10:00")

BLOCKING_RULES = [
    pytest.param({"targets": (replace(TARGET, paused=True),)}, (), "paused", None, id="paused"),
    pytest.param(
        {"opted_out": lambda address: address == TARGET.address},
        (),
        "opted_out",
        None,
        id="opted_out",
    ),
    pytest.param({"failing": {"0180"}}, (), "address_failing", None, id="failing"),
    pytest.param(
        {},
        (record(at("2026-01-05"), outstanding=True),),
        "outstanding",
        None,
        id="sent_and_unanswered",
    ),
    pytest.param(
        {},
        (record(at("2026-01-05"), state=ProbeState.PLANNED),),
        "outstanding",
        None,
        id="planned",
    ),
    pytest.param(
        {},
        (record(at("2026-01-05"), state=ProbeState.SENDING),),
        "outstanding",
        None,
        id="sending",
    ),
    pytest.param(
        {},
        (record(at("2026-03-06", "11:00"), state=ProbeState.UNCERTAIN),),
        "outstanding",
        at("2026-03-20", "11:00"),
        id="uncertain_within_spacing",
    ),
    pytest.param(
        {},
        (record(at("2026-03-05", "11:00")),),
        "spacing",
        at("2026-03-19", "11:00"),
        id="spacing_after_answered_probe",
    ),
    pytest.param(
        {},
        (record(at("2026-03-10", "09:15"), state=ProbeState.FAILED),),
        "spacing",
        at("2026-03-10", "13:15"),
        id="retry_delay_after_failed_send",
    ),
    pytest.param(
        {"politeness": replace(NO_JITTER, min_spacing=timedelta(days=1))},
        (record(at("2026-02-17", "09:30")), record(at("2026-03-02", "11:00"))),
        "monthly_limit",
        at("2026-03-19", "09:30"),
        id="two_in_rolling_30_days",
    ),
    pytest.param(
        {"questions": QUESTIONS[:1]},
        (record(at("2025-09-01"), question=QUESTIONS[0].id),),
        "no_question_left",
        at("2026-09-01", "10:00"),
        id="only_question_asked_within_span",
    ),
]


@pytest.mark.parametrize(("setup", "history", "reason", "until"), BLOCKING_RULES)
def test_each_blocking_rule_alone_blocks_with_its_reason_and_release_time(
    setup: dict[str, object],
    history: tuple[ProbeRecord, ...],
    reason: str,
    until: datetime | None,
) -> None:
    assert judge(NOW, history, **setup) == [Blocked("0180", BlockReason(reason), until)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("now", "reason", "until"),
    [
        (at("2026-03-10", "07:30"), "outside_window", at("2026-03-10", "09:00")),
        (at("2026-03-10", "15:00"), "outside_window", at("2026-03-11", "09:00")),
        (at("2026-03-13", "16:30"), "outside_window", at("2026-03-16", "09:00")),
        (at("2026-03-14", "10:00"), "not_working_day", at("2026-03-16", "09:00")),
        (at("2026-03-15", "23:59"), "not_working_day", at("2026-03-16", "09:00")),
    ],
)
def test_outside_the_window_or_on_a_weekend_a_target_waits_for_the_next_window(
    now: datetime, reason: str, until: datetime
) -> None:
    assert judge(now) == [Blocked("0180", BlockReason(reason), until)]


@pytest.mark.parametrize(
    "history",
    [
        (),
        (record(at("2026-02-24", "10:00")),),  # exactly min_spacing ago
        (record(at("2026-02-20", "10:00"), state=ProbeState.UNCERTAIN),),
        (record(at("2026-02-20", "10:00"), state=ProbeState.UNCERTAIN, outstanding=True),),
        (record(at("2026-03-10", "06:00"), state=ProbeState.FAILED),),
        (record(at("2026-03-02", "06:00"), state=ProbeState.FAILED, outstanding=True),),
        (record(at("2026-01-05"), outstanding=False), record(at("2026-02-01"))),
    ],
    ids=[
        "never_probed",
        "spacing_just_over",
        "old_uncertain",
        "old_uncertain_flagged_outstanding",
        "old_failure",
        "failure_flagged_outstanding",
        "two_old",
    ],
)
def test_a_target_with_no_rule_against_it_gets_a_probe_in_the_window(
    history: tuple[ProbeRecord, ...],
) -> None:
    assert isinstance(only(judge(NOW, history)), SendDecision)


@pytest.mark.parametrize(
    ("setup", "history", "reason"),
    [
        # A person's or an answer's decision beats anything time would settle.
        (
            {"targets": (replace(TARGET, paused=True),), "failing": {"0180"}},
            (record(NOW, state=ProbeState.PLANNED),),
            "paused",
        ),
        (
            {"failing": {"0180"}},
            (record(at("2026-03-09"), outstanding=True),),
            "address_failing",
        ),
        (
            {},
            (
                record(at("2026-03-09"), outstanding=True),
                record(at("2026-03-06"), state=ProbeState.UNCERTAIN),
            ),
            "outstanding",
        ),
        ({}, (record(at("2026-03-07"), state=ProbeState.UNCERTAIN),), "outstanding"),
    ],
)
def test_when_rules_combine_the_most_durable_reason_is_reported(
    setup: dict[str, object], history: tuple[ProbeRecord, ...], reason: str
) -> None:
    result = only(judge(NOW, history, **setup))  # type: ignore[arg-type]
    assert isinstance(result, Blocked)
    assert result.reason == reason


@pytest.mark.parametrize(
    ("now", "history", "until"),
    [
        # Spacing ends on Saturday 2026-03-21: the next window is Monday's.
        (NOW, (record(at("2026-03-07", "11:00")),), at("2026-03-23", "09:00")),
        # Spacing ends Friday 14:59 with a 15:00 window end: still Friday.
        (NOW, (record(at("2026-03-06", "14:59")),), at("2026-03-20", "14:59")),
        # Spacing ends at 18:00: next working day's opening.
        (NOW, (record(at("2026-03-04", "18:00")),), at("2026-03-19", "09:00")),
        # Spacing ends on midsommarafton (Friday 2026-06-19): Monday 22 June.
        (at("2026-06-10"), (record(at("2026-06-05", "10:00")),), at("2026-06-22", "09:00")),
        # Spacing ends on julafton; juldagen, annandag jul and the weekend follow.
        (at("2026-12-15"), (record(at("2026-12-10", "10:00")),), at("2026-12-28", "09:00")),
        # Spacing ends on långfredagen 2026-04-03: Easter Monday is closed too.
        (at("2026-03-25"), (record(at("2026-03-20", "10:00")),), at("2026-04-07", "09:00")),
    ],
)
def test_spacing_release_on_a_weekend_or_holiday_moves_to_the_next_working_window(
    now: datetime, history: tuple[ProbeRecord, ...], until: datetime
) -> None:
    assert only(judge(now, history)) == Blocked("0180", BlockReason.SPACING, until)


@pytest.mark.parametrize(
    ("now", "reason", "until"),
    [
        (at("2026-06-19", "10:00"), "not_working_day", at("2026-06-22", "09:00")),  # midsommarafton
        (at("2026-12-24", "10:00"), "not_working_day", at("2026-12-28", "09:00")),  # julafton
        (at("2026-12-31", "10:00"), "not_working_day", at("2027-01-04", "09:00")),  # nyårsafton
        (at("2026-01-06", "10:00"), "not_working_day", at("2026-01-07", "09:00")),  # trettondag
        (at("2026-06-18", "15:30"), "outside_window", at("2026-06-22", "09:00")),
    ],
)
def test_holidays_and_their_eves_are_not_send_days(
    now: datetime, reason: str, until: datetime
) -> None:
    assert judge(now) == [Blocked("0180", BlockReason(reason), until)]


def test_a_local_calendar_with_its_own_closed_day_is_respected() -> None:
    closed = build_calendar(name="ort", extra_closed=[at("2026-03-10").date()])
    assert judge(NOW, calendar=closed) == [
        Blocked("0180", BlockReason.NOT_WORKING_DAY, at("2026-03-11", "09:00"))
    ]


def test_send_window_is_local_time_across_the_spring_dst_change() -> None:
    # 2026-03-29 is the change to CEST; Monday's 09:00 is 07:00 UTC, not 08:00.
    result = only(judge(at("2026-03-28", "12:00")))
    assert result == Blocked("0180", BlockReason.NOT_WORKING_DAY, at("2026-03-30", "09:00"))
    assert isinstance(result, Blocked) and result.until is not None
    assert result.until.utcoffset() == timedelta(hours=2)


def test_next_send_time_agrees_with_the_release_explain_reports() -> None:
    history = (record(at("2026-03-07", "11:00")),)
    for now in (NOW, at("2026-03-14"), at("2026-03-23", "08:00")):
        expected = only(judge(now, history))
        assert isinstance(expected, Blocked)
        assert (
            next_send_time(
                target=TARGET, history=history, calendar=CALENDAR, politeness=NO_JITTER, now=now
            )
            == expected.until
        )


@pytest.mark.parametrize(
    ("target", "history", "failing"),
    [
        (replace(TARGET, paused=True), (), False),
        (TARGET, (), True),
        (TARGET, (record(at("2026-03-01"), outstanding=True),), False),
        (TARGET, (record(at("2026-03-10", "09:00"), state=ProbeState.SENDING),), False),
    ],
    ids=["paused", "failing", "outstanding", "sending"],
)
def test_next_send_time_is_none_when_waiting_cannot_unblock_the_target(
    target: Target, history: tuple[ProbeRecord, ...], failing: bool
) -> None:
    moment = next_send_time(
        target=target,
        history=history,
        calendar=CALENDAR,
        politeness=Politeness(),
        now=NOW,
        failing=failing,
    )
    assert moment is None


def test_next_send_time_ignores_other_targets_history() -> None:
    history = (record(at("2026-03-09"), target=OTHER, outstanding=True),)
    moment = next_send_time(
        target=TARGET, history=history, calendar=CALENDAR, politeness=NO_JITTER, now=NOW
    )
    assert moment == at("2026-03-10", "09:00")


def test_next_send_time_does_not_move_as_the_clock_ticks() -> None:
    history = (record(at("2026-02-10", "12:00")),)
    times = {
        next_send_time(
            target=TARGET, history=history, calendar=CALENDAR, politeness=Politeness(), now=now
        )
        for now in (at("2026-03-10", "06:00"), at("2026-03-10", "09:05"), at("2026-03-10", "14:59"))
    }
    assert len(times) == 1


def many_targets(count: int) -> list[Target]:
    return [
        Target(id=f"t{index:04d}", name=f"T{index}", address=f"a@t{index}.se")
        for index in range(count)
    ]


def test_hourly_cap_counts_recent_sends_and_this_calls_decisions() -> None:
    targets = many_targets(50)
    recent = [
        record(NOW - timedelta(minutes=10 * (index + 1)), target=target)
        for index, target in enumerate(targets[:5])
    ]
    old = [record(at("2025-11-01"), target=target) for target in targets[5:]]
    results = judge(NOW, recent + old, targets=targets)
    decisions = [result for result in results if isinstance(result, SendDecision)]
    capped = [r for r in results if isinstance(r, Blocked) and r.reason == "hourly_limit"]
    assert len(decisions) == 20 - 5
    assert len(capped) == 45 - 15
    # The oldest of the five recent sends (50 minutes ago) frees the first place.
    assert capped[0].until == NOW + timedelta(minutes=10)


def test_hourly_cap_holds_across_consecutive_calls() -> None:
    targets = many_targets(100)
    history: list[ProbeRecord] = []
    sent_per_hour: dict[int, int] = {}
    for minute in range(0, 300, 7):
        now = at("2026-03-10", "09:00") + timedelta(minutes=minute)
        for decision in plan(now, history, targets):
            target = next(t for t in targets if t.id == decision.target_id)
            history.append(record(now, target=target, question=decision.question_id))
        window = [r for r in history if now - timedelta(hours=1) < r.planned_at <= now]
        sent_per_hour[minute] = len(window)
    assert max(sent_per_hour.values()) == 20
    assert len(history) >= 80  # the cap paces sending, it does not stop it


def test_when_the_cap_bites_targets_that_waited_longest_go_first() -> None:
    targets = many_targets(7)
    history = [
        record(at("2026-02-20"), target=targets[0]),
        record(at("2025-12-01"), target=targets[1]),
        record(at("2026-01-15"), target=targets[2]),
        # targets[3] and [4] were never probed; a send to [5] just failed, so it never
        # reached the target, but it uses one of the hour's places.
        record(at("2025-11-01"), target=targets[5]),
        record(NOW - timedelta(minutes=1), target=targets[5], state=ProbeState.FAILED),
        record(at("2026-02-01"), target=targets[6]),
    ]
    cap_five = replace(NO_JITTER, max_per_hour=5, retry_after_failure=timedelta(0))
    decisions = plan(NOW, history, targets, cap_five)
    assert [d.target_id for d in decisions] == ["t0003", "t0004", "t0005", "t0001"]


def test_jitter_is_deterministic_and_keeps_every_send_inside_the_window() -> None:
    targets = many_targets(300)
    polite = Politeness()
    for now in (at("2026-03-10", "06:00"), at("2026-03-13", "14:30"), at("2026-06-18", "12:00")):
        first = [
            next_send_time(target=t, history=(), calendar=CALENDAR, politeness=polite, now=now)
            for t in targets
        ]
        again = [
            next_send_time(target=t, history=(), calendar=CALENDAR, politeness=polite, now=now)
            for t in targets
        ]
        assert first == again
        for moment in first:
            assert moment is not None
            local = moment.astimezone(STOCKHOLM)
            assert time(9) <= local.time() < time(15)
            assert is_working_day(CALENDAR, local.date())


def test_jitter_spreads_first_probes_over_the_jitter_span() -> None:
    moments = [
        next_send_time(target=t, history=(), calendar=CALENDAR, politeness=Politeness(), now=NOW)
        for t in many_targets(300)
    ]
    offsets = [m - at("2026-03-10", "09:00") for m in moments if m is not None]
    assert all(timedelta(0) <= offset < timedelta(minutes=90) for offset in offsets)
    assert len(set(offsets)) > 250
    assert min(offsets) < timedelta(minutes=10) and max(offsets) > timedelta(minutes=80)


@pytest.mark.parametrize("token", ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc", "dddddddddd"])
def test_a_jittered_time_past_the_window_end_moves_to_next_working_day_with_same_jitter(
    token: str,
) -> None:
    def release_after(last_probe: datetime) -> datetime | None:
        history = (record(last_probe, token=token),)
        return next_send_time(
            target=TARGET, history=history, calendar=CALENDAR, politeness=Politeness(), now=NOW
        )

    # The spacing ends on Tuesday 2026-03-24 at 09:00 and 14:30 respectively.
    morning = release_after(at("2026-03-10", "09:00"))
    assert morning is not None
    jitter = morning - at("2026-03-24", "09:00")
    assert timedelta(0) <= jitter < timedelta(minutes=90)
    late = at("2026-03-24", "14:30") + jitter
    expected = late if late < at("2026-03-24", "15:00") else at("2026-03-25", "09:00") + jitter
    assert release_after(at("2026-03-10", "14:30")) == expected


def test_jitter_changes_with_the_last_probe() -> None:
    def release(token: str) -> datetime | None:
        history = (record(at("2026-03-10", "09:00"), token=token),)
        return next_send_time(
            target=TARGET, history=history, calendar=CALENDAR, politeness=Politeness(), now=NOW
        )

    assert len({release(chr(ord("a") + index) * 10) for index in range(20)}) > 15


def test_jitter_never_exceeds_a_short_window() -> None:
    narrow = Politeness(send_window=(time(10), time(10, 30)), jitter=timedelta(hours=2))
    for target in many_targets(50):
        moment = next_send_time(
            target=target, history=(), calendar=CALENDAR, politeness=narrow, now=NOW
        )
        assert moment is not None
        assert at("2026-03-10", "10:00") <= moment < at("2026-03-10", "10:30")


def simulate(
    probes: int,
    *,
    every: timedelta = timedelta(days=15),
    politeness: Politeness = NO_JITTER,
    questions: Sequence[Question] = QUESTIONS,
) -> list[tuple[datetime, SendDecision]]:
    """Probe one target whenever the planner allows, looking every ``every`` after a send
    and daily otherwise; each probe is answered at once."""
    history: list[ProbeRecord] = []
    sends: list[tuple[datetime, SendDecision]] = []
    now = at("2026-01-07", "11:00")
    while len(sends) < probes:
        decisions = plan(now, history, [TARGET], politeness, questions)
        for decision in decisions:
            sends.append((now, decision))
            token = f"{len(history):a>10}"[-10:]
            history.append(
                record(now, token=token, question=decision.question_id, persona=decision.persona_id)
            )
        now += every if decisions else timedelta(days=1)
    return sends


def asked(sends: list[tuple[datetime, SendDecision]]) -> list[str]:
    return [decision.question_id for _, decision in sends]


def test_question_rotation_asks_every_question_once_before_repeating_any() -> None:
    questions = asked(simulate(len(QUESTIONS) * 2))
    first_round, second_round = questions[: len(QUESTIONS)], questions[len(QUESTIONS) :]
    assert sorted(first_round) == sorted(q.id for q in QUESTIONS)
    assert second_round == first_round  # least recently used cycles in the same order


def test_question_rotation_never_repeats_within_the_span() -> None:
    polite = replace(NO_JITTER, question_repeat_span=timedelta(days=200))
    sends = simulate(20, politeness=polite, questions=QUESTIONS[:6])
    last_asked: dict[str, datetime] = {}
    gaps = []
    for moment, decision in sends:
        if decision.question_id in last_asked:
            gaps.append(moment - last_asked[decision.question_id])
        last_asked[decision.question_id] = moment
    assert len(gaps) == 14
    assert min(gaps) >= timedelta(days=200)


def test_question_rotation_spreads_areas_before_returning_to_one() -> None:
    area_of = {q.id: q.area for q in QUESTIONS}
    areas = [area_of[question] for question in asked(simulate(6))]
    assert sorted(areas) == sorted(AREAS)


def test_first_questions_differ_between_targets_on_the_same_day() -> None:
    results = judge(NOW, targets=many_targets(40))
    firsts = {r.question_id for r in results if isinstance(r, SendDecision)}
    assert len(firsts) > 6


def test_persona_rotates_through_all_personas_per_target() -> None:
    personas = [decision.persona_id for _, decision in simulate(6)]
    assert sorted(personas[:3]) == sorted(p.id for p in PERSONAS)
    assert personas[3:] == personas[:3]


def test_planning_is_deterministic_for_the_same_inputs() -> None:
    targets = many_targets(30)
    history = [record(at("2026-01-10"), target=t, question="skola-3") for t in targets[::2]]
    assert judge(NOW, history, targets=targets) == judge(NOW, history, targets=targets)


@pytest.mark.parametrize(
    ("entries", "address", "expected"),
    [
        (["registrator@ort.se"], "registrator@ort.se", True),
        (["registrator@ort.se"], "Registrator@ORT.se", True),
        (["registrator@ort.se"], "kontakt@ort.se", False),
        (["ort.se"], "kontakt@ort.se", True),
        (["@ort.se"], "kontakt@ort.se", True),
        (["ORT.SE "], "kontakt@socialtjanst.ort.se", True),
        (["ort.se"], "kontakt@kort.se", False),
        (["ort.se"], "kontakt@ort.se.example", False),
        (["", "  "], "kontakt@ort.se", False),
    ],
)
def test_optout_matcher_matches_addresses_and_whole_domains(
    entries: list[str], address: str, expected: bool
) -> None:
    assert optout_matcher(entries)(address) is expected


def test_an_opted_out_domain_gets_nothing_while_others_are_planned() -> None:
    results = judge(
        NOW, targets=(TARGET, OTHER), opted_out=optout_matcher(["goteborg.example.invalid"])
    )
    assert isinstance(results[0], SendDecision)
    assert results[1] == Blocked("1480", BlockReason.OPTED_OUT, None)


def test_a_thousand_targets_with_history_are_planned_in_one_call() -> None:
    targets = many_targets(1000)
    history = [
        record(at("2025-06-01") + timedelta(days=15 * step), target=target, question=q.id)
        for step, q in enumerate(QUESTIONS[:5])
        for target in targets
    ]
    results = judge(NOW, history, targets=targets)
    assert len(results) == 1000
    assert [r.target_id for r in results] == [t.id for t in targets]
    decisions = [r for r in results if isinstance(r, SendDecision)]
    assert len(decisions) == 20
    assert all(d.question_id not in {q.id for q in QUESTIONS[:5]} for d in decisions)


def manual(
    target: Target = TARGET,
    history: Sequence[ProbeRecord] = (),
    *,
    now: datetime = NOW,
    force: bool = False,
    questions: Sequence[Question] = QUESTIONS,
    opted_out: Callable[[str], bool] = lambda address: False,
) -> SendDecision | Blocked:
    return send_now(
        now=now,
        target=target,
        history=history,
        questions=questions,
        personas=PERSONAS,
        calendar=CALENDAR,
        politeness=Politeness(),
        opted_out=opted_out,
        force=force,
    )


@pytest.mark.parametrize(
    ("now", "history"),
    [
        (at("2026-03-14", "22:00"), ()),  # Saturday night
        (at("2026-06-19", "10:00"), ()),  # midsommarafton
        (NOW, (record(at("2026-03-09")),)),  # yesterday: spacing
        (NOW, (record(at("2026-02-20")), record(at("2026-03-05")))),  # monthly limit
    ],
)
def test_send_now_ignores_window_spacing_and_limits(
    now: datetime, history: tuple[ProbeRecord, ...]
) -> None:
    assert isinstance(manual(history=history, now=now), SendDecision)


@pytest.mark.parametrize(
    ("target", "history", "force", "opted_out", "reason"),
    [
        (replace(TARGET, paused=True), (), True, False, "paused"),
        (TARGET, (), True, True, "opted_out"),
        (TARGET, (record(at("2026-03-09"), outstanding=True),), False, False, "outstanding"),
        (TARGET, (record(NOW, state=ProbeState.SENDING),), False, False, "outstanding"),
    ],
)
def test_send_now_respects_pause_opt_out_and_outstanding_without_force(
    target: Target, history: tuple[ProbeRecord, ...], force: bool, opted_out: bool, reason: str
) -> None:
    result = manual(target, history, force=force, opted_out=lambda address: opted_out)
    assert result == Blocked("0180", BlockReason(reason), None)


def test_send_now_with_force_sends_despite_an_outstanding_probe_with_a_fresh_question() -> None:
    history = (record(at("2026-03-09"), outstanding=True, question="avfall-0", persona="anna"),)
    result = manual(history=history, force=True)
    assert isinstance(result, SendDecision)
    assert result.question_id != "avfall-0"
    assert result.persona_id != "anna"


def test_send_now_never_repeats_a_question_within_the_span() -> None:
    history = (record(at("2026-01-10"), question=QUESTIONS[0].id),)
    result = manual(history=history, questions=QUESTIONS[:1])
    assert isinstance(result, Blocked)
    assert result.reason == "no_question_left"


@pytest.mark.parametrize(
    "changes",
    [
        {"send_window": (time(15), time(9))},
        {"max_per_hour": 0},
        {"max_per_target_per_30_days": 0},
        {"min_spacing": timedelta(days=-1)},
        {"jitter": timedelta(minutes=-5)},
    ],
)
def test_politeness_refuses_impossible_limits(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Politeness(**changes)  # type: ignore[arg-type]


def test_planning_refuses_a_naive_now_and_missing_personas() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        judge(datetime(2026, 3, 10, 10, 0))
    with pytest.raises(ValueError, match="personas"):
        plan_sends(
            now=NOW,
            targets=[TARGET],
            history=[],
            questions=QUESTIONS,
            personas=[],
            calendar_for=lambda target: CALENDAR,
            politeness=NO_JITTER,
            opted_out=lambda address: False,
            failing_targets=(),
        )

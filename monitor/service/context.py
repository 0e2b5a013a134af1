"""What every use case needs to know of the measured world, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.domain.calendar import OfficeCalendar
from monitor.domain.model import Persona, Question, Target
from monitor.domain.outcome import OutcomeRules
from monitor.domain.scheduling import Politeness

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class MailboxIdentity:
    address: str
    reply_template: str  # contains {token}


@dataclass(frozen=True)
class World:
    """Targets, questions and rules as configured; immutable for the life of a process."""

    targets: tuple[Target, ...]
    questions: tuple[Question, ...]
    personas: tuple[Persona, ...]
    default_calendar: OfficeCalendar
    calendars: Mapping[str, OfficeCalendar]
    politeness: Politeness
    outcome_rules: OutcomeRules
    mailbox: MailboxIdentity
    opted_out: Callable[[str], bool]
    low_confidence_below: int = 5
    _by_id: dict[str, Target] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({target.id: target for target in self.targets})

    def target(self, target_id: str) -> Target | None:
        return self._by_id.get(target_id)

    def calendar_for(self, target: Target) -> OfficeCalendar:
        if target.calendar is None:
            return self.default_calendar
        return self.calendars.get(target.calendar, self.default_calendar)

    def calendar_for_id(self, target_id: str) -> OfficeCalendar:
        target = self.target(target_id)
        return self.default_calendar if target is None else self.calendar_for(target)

    def persona(self, persona_id: str) -> Persona:
        return next(p for p in self.personas if p.id == persona_id)

    def question(self, question_id: str) -> Question:
        return next(q for q in self.questions if q.id == question_id)

    def with_targets(self, targets: Sequence[Target]) -> World:
        return World(
            targets=tuple(targets),
            questions=self.questions,
            personas=self.personas,
            default_calendar=self.default_calendar,
            calendars=self.calendars,
            politeness=self.politeness,
            outcome_rules=self.outcome_rules,
            mailbox=self.mailbox,
            opted_out=self.opted_out,
            low_confidence_below=self.low_confidence_below,
        )

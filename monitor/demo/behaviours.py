"""How each simulated municipality reacts to a probe: which replies, and when.

A behaviour turns "a probe arrived at ``sent_at``" into timed reactions. Timing goes through a
``Pace``: in the history replay people write only in office hours on Swedish working days
(``OfficePace``, via add_working_seconds), automatic systems answer at once; in the live demo
everything is compressed to seconds so that answers arrive while the user watches
(``LivePace``). Every draw comes from the caller's seeded ``random.Random``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from monitor.demo.replies import (
    ReceivedProbe,
    auto_acknowledgement,
    human_answer,
    out_of_office,
    permanent_bounce,
    read_receipt,
    ticket_answer,
    ticket_receipt,
)
from monitor.domain.calendar import OfficeCalendar
from monitor.domain.worktime import WORKING_DAY_SECONDS, add_working_seconds

HOUR = 3600.0
WORKING_DAY_HOURS = WORKING_DAY_SECONDS / HOUR

# (probe as received, raw probe bytes, arrival time) -> raw reply bytes
Writer = Callable[[ReceivedProbe, bytes, datetime], bytes]

ANSWERS = (
    "Tack för din fråga. Du hittar svaret på kommunens webbplats under rubriken för området, "
    "och du är välkommen att ringa oss om något är oklart.",
    "Det går bra. Ansökan gör du via vår e-tjänst och handläggningstiden är ungefär två "
    "veckor från att ansökan är komplett.",
    "Vi har kontrollerat saken med förvaltningen och det gäller från och med nästa månad. "
    "Du behöver inte göra något själv.",
    "Avgiften beror på hushållets inkomst. Du kan räkna ut den i förväg med beräkningshjälpen "
    "på vår webbplats.",
    "Jag har skickat din fråga vidare till handläggaren, men kan redan nu säga att svaret är "
    "ja, så länge du anmäler det senast en vecka innan.",
)


@dataclass(frozen=True)
class Reaction:
    """One reply the municipality sends, arriving in the monitor's mailbox at ``at``."""

    at: datetime
    write: Writer


@dataclass(frozen=True)
class Staff:
    """Who writes back for a municipality."""

    domain: str
    officer: str
    organisation: str

    @property
    def officer_address(self) -> str:
        first, _, last = self.officer.lower().partition(" ")
        return f"{_ascii(first)}.{_ascii(last)}@{self.domain}"


class Pace(Protocol):
    def person(self, after: datetime, working_hours: float) -> datetime:
        """When a person who needs ``working_hours`` of office time writes back."""
        ...

    def machine(self, after: datetime, seconds: float) -> datetime:
        """When an automatic system that needs ``seconds`` answers."""
        ...


@dataclass(frozen=True)
class OfficePace:
    """History: people work office hours on the calendar's working days."""

    calendar: OfficeCalendar

    def person(self, after: datetime, working_hours: float) -> datetime:
        return add_working_seconds(self.calendar, after, working_hours * HOUR)

    def machine(self, after: datetime, seconds: float) -> datetime:
        return after + timedelta(seconds=seconds)


@dataclass(frozen=True)
class LivePace:
    """Live demo: a working hour lasts a few real seconds, so answers come while you watch."""

    seconds_per_working_hour: float = 4.0
    shortest_seconds: float = 2.0
    longest_seconds: float = 240.0

    def person(self, after: datetime, working_hours: float) -> datetime:
        seconds = working_hours * self.seconds_per_working_hour
        seconds = min(max(seconds, self.shortest_seconds), self.longest_seconds)
        return after + timedelta(seconds=seconds)

    def machine(self, after: datetime, seconds: float) -> datetime:
        return after + timedelta(seconds=min(seconds, 2.5 * self.shortest_seconds))


class Behaviour(Protocol):
    @property
    def label(self) -> str:
        """What a visitor of the demo should notice, in Swedish (a tag of the target)."""
        ...

    def react(
        self, staff: Staff, sent_at: datetime, rng: random.Random, pace: Pace
    ) -> tuple[Reaction, ...]: ...


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    """Reply times are skewed: many quick answers, a long tail."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _answer_writer(officer: str, sender: str, text: str, *, threaded: bool = True) -> Writer:
    def write(probe: ReceivedProbe, _raw: bytes, at: datetime) -> bytes:
        return human_answer(
            probe, officer=officer, sender=sender, answer=text, at=at, threaded=threaded
        )

    return write


@dataclass(frozen=True)
class HumanAnswers:
    """A person answers after a log-uniform number of working hours in ``hours``.

    ``sender`` overrides who writes (a shared service centre on another domain);
    ``threaded=False`` drops In-Reply-To and References, as some webmail and CRM tools do.
    """

    label: str
    hours: tuple[float, float]
    threaded: bool = True
    sender: str | None = None
    sender_name: str | None = None

    def react(
        self, staff: Staff, sent_at: datetime, rng: random.Random, pace: Pace
    ) -> tuple[Reaction, ...]:
        at = pace.person(sent_at, log_uniform(rng, *self.hours))
        officer = self.sender_name or staff.officer
        sender = self.sender or staff.officer_address
        text = rng.choice(ANSWERS)
        return (Reaction(at, _answer_writer(officer, sender, text, threaded=self.threaded)),)


@dataclass(frozen=True)
class OutOfOfficeThenHuman:
    """An out-of-office at once; the officer answers after coming back from holiday."""

    label: str
    away_working_days: tuple[int, int]

    def react(
        self, staff: Staff, sent_at: datetime, rng: random.Random, pace: Pace
    ) -> tuple[Reaction, ...]:
        def oof(probe: ReceivedProbe, _raw: bytes, at: datetime) -> bytes:
            return out_of_office(probe, officer=staff.officer, sender=staff.officer_address, at=at)

        away = rng.randint(*self.away_working_days) * WORKING_DAY_HOURS
        back = pace.person(sent_at, away + rng.uniform(0.5, 4.0))
        answer = _answer_writer(staff.officer, staff.officer_address, rng.choice(ANSWERS))
        return (Reaction(pace.machine(sent_at, rng.uniform(5, 60)), oof), Reaction(back, answer))


@dataclass(frozen=True)
class TicketFlow:
    """A case system: a receipt with a case number at once, the agent's answer days later
    from the case system with a rewritten subject and no threading headers."""

    label: str
    answer_hours: tuple[float, float]

    def react(
        self, staff: Staff, sent_at: datetime, rng: random.Random, pace: Pace
    ) -> tuple[Reaction, ...]:
        case = f"{sent_at.year}-{rng.randint(10000, 99999)}"
        system = f"noreply@{staff.domain}"
        text = rng.choice(ANSWERS)

        def receipt(probe: ReceivedProbe, _raw: bytes, at: datetime) -> bytes:
            return ticket_receipt(
                probe, system=staff.organisation, sender=system, case_number=case, at=at
            )

        def answer(probe: ReceivedProbe, _raw: bytes, at: datetime) -> bytes:
            return ticket_answer(
                probe, officer=staff.officer, sender=system, case_number=case, answer=text, at=at
            )

        answered = pace.person(sent_at, log_uniform(rng, *self.answer_hours))
        return (
            Reaction(pace.machine(sent_at, rng.uniform(10, 90)), receipt),
            Reaction(answered, answer),
        )


@dataclass(frozen=True)
class AcknowledgesOnly:
    """An automatic "thank you for your mail", and then nothing ever."""

    label: str

    def react(
        self, staff: Staff, sent_at: datetime, rng: random.Random, pace: Pace
    ) -> tuple[Reaction, ...]:
        def ack(probe: ReceivedProbe, _raw: bytes, at: datetime) -> bytes:
            return auto_acknowledgement(
                probe, sender=f"kontakt@{staff.domain}", organisation=staff.organisation, at=at
            )

        return (Reaction(pace.machine(sent_at, rng.uniform(5, 40)), ack),)


@dataclass(frozen=True)
class NeverAnswers:
    label: str

    def react(
        self, staff: Staff, sent_at: datetime, rng: random.Random, pace: Pace
    ) -> tuple[Reaction, ...]:
        return ()


@dataclass(frozen=True)
class Bounces:
    """The address does not exist: the receiving MTA returns an RFC 3464 report."""

    label: str

    def react(
        self, staff: Staff, sent_at: datetime, rng: random.Random, pace: Pace
    ) -> tuple[Reaction, ...]:
        def dsn(probe: ReceivedProbe, raw: bytes, at: datetime) -> bytes:
            return permanent_bounce(probe, raw_probe=raw, mta=f"mx.{staff.domain}", at=at)

        return (Reaction(pace.machine(sent_at, rng.uniform(2, 20)), dsn),)


@dataclass(frozen=True)
class ReadReceiptThenHuman:
    """A read receipt (MDN) when the officer opens the mail, the answer later."""

    label: str
    read_hours: tuple[float, float]
    answer_hours: tuple[float, float]

    def react(
        self, staff: Staff, sent_at: datetime, rng: random.Random, pace: Pace
    ) -> tuple[Reaction, ...]:
        def mdn(probe: ReceivedProbe, _raw: bytes, at: datetime) -> bytes:
            return read_receipt(probe, reader=staff.officer, sender=staff.officer_address, at=at)

        read_after = log_uniform(rng, *self.read_hours)
        answer_after = read_after + log_uniform(rng, *self.answer_hours)
        answer = _answer_writer(staff.officer, staff.officer_address, rng.choice(ANSWERS))
        return (
            Reaction(pace.person(sent_at, read_after), mdn),
            Reaction(pace.person(sent_at, answer_after), answer),
        )


_ASCII = str.maketrans({"å": "a", "ä": "a", "ö": "o", "é": "e", "ü": "u"})


def _ascii(text: str) -> str:
    return text.translate(_ASCII)

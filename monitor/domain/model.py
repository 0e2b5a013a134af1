"""Domain values shared by every part of svarstid.

Everything here is a frozen dataclass or an Enum: plain values that the pure domain
functions take and return, and that adapters translate to and from wire data and rows.
All datetimes are timezone-aware; a naive datetime anywhere is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class MessageKind(StrEnum):
    """What an incoming message is, seen from the monitor that sent the probe."""

    HUMAN = "human"
    AUTO_REPLY = "auto_reply"
    TICKET_RECEIPT = "ticket_receipt"
    BOUNCE = "bounce"
    DELAY = "delay"
    READ_RECEIPT = "read_receipt"
    COMPLAINT = "complaint"
    BULK = "bulk"


class AnswerKind(StrEnum):
    """What a person's reply does with the question (the answer-quality rubric)."""

    ANSWERED = "answered"  # gives the asked-for information itself
    REFERRED = "referred"  # no answer, only sends the asker elsewhere
    HOLDING = "holding"  # no answer, only forwarded, registered or "we will be in touch"


class MatchMethod(StrEnum):
    """How a message was tied to its probe, most reliable first."""

    ADDRESS = "address"
    DSN_ORIGINAL = "dsn_original"
    IN_REPLY_TO = "in_reply_to"
    REFERENCES = "references"
    SUBJECT = "subject"
    QUOTED_TEXT = "quoted_text"
    SENDER_WINDOW = "sender_window"
    MANUAL = "manual"
    NONE = "none"


class ProbeState(StrEnum):
    """Send state machine: planned -> sending -> sent | failed | uncertain.

    Each state is persisted before the next step is taken, so that a crash can never
    send the same probe twice: a probe found in SENDING after a restart becomes
    UNCERTAIN and is never resent automatically.
    """

    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


class OutcomeState(StrEnum):
    """What the measurement says about one probe."""

    ANSWERED = "answered"
    UNANSWERED_SO_FAR = "unanswered_so_far"
    UNANSWERED_FINAL = "unanswered_final"
    NOT_MEASURABLE = "not_measurable"


@dataclass(frozen=True)
class Persona:
    """A made-up citizen who signs probes."""

    id: str
    name: str


@dataclass(frozen=True)
class Question:
    """A simple citizen question; the body is signed with the persona's name at send time."""

    id: str
    area: str
    subject: str
    body: str


@dataclass(frozen=True)
class Target:
    """A municipal inbox that is measured."""

    id: str
    name: str
    address: str
    kommunkod: str | None = None
    county: str | None = None
    tags: tuple[str, ...] = ()
    calendar: str | None = None  # name of a calendar in config; None = the default
    paused: bool = False


@dataclass(frozen=True)
class Probe:
    """One question sent (or about to be sent) to one target."""

    token: str
    target_id: str
    target_address: str
    question_id: str
    persona_id: str
    reply_address: str
    message_id: str  # with angle brackets, as in the header
    subject: str
    body: str
    state: ProbeState
    planned_at: datetime
    sent_at: datetime | None = None  # SMTP accept time (after the 250 to DATA)
    failure_permanent: bool | None = None
    failure_detail: str | None = None


@dataclass(frozen=True)
class DeliveryStatus:
    """One per-recipient block of a delivery report (RFC 3464) or its non-standard twin."""

    action: str | None  # failed, delayed, delivered, relayed, expanded (lower case)
    status: str | None  # enhanced status code such as 5.1.1, when known
    recipient: str | None
    diagnostic: str | None


@dataclass(frozen=True)
class ParsedMessage:
    """What svarstid needs to know of one incoming mail, read from its raw bytes.

    Header values are decoded (RFC 2047) to str. Addresses are lower-cased bare
    addresses (no display name, no angle brackets). Message-IDs keep their angle
    brackets. Parsing never raises: problems are listed in ``defects``.
    """

    message_id: str | None
    subject: str
    from_address: str | None
    from_name: str | None
    return_path: str | None  # envelope sender as delivered; "" for the null sender <>
    to: tuple[str, ...]
    cc: tuple[str, ...]
    delivered_to: tuple[str, ...]  # Delivered-To, X-Original-To, Envelope-To, X-Envelope-To
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    thread_topic: str | None
    date: datetime | None  # the Date header
    received_at: datetime | None  # from the topmost Received header, else None
    content_type: str  # of the top-level part, lower case, e.g. "multipart/report"
    report_type: str | None  # report-type parameter of multipart/report, lower case
    headers: tuple[tuple[str, str], ...]  # every top-level header, name lower-cased, in order
    text: str  # the best plain-text body: text/plain, else text from text/html
    html: str | None  # the first text/html body, if any
    text_from_html: bool = False  # ``text`` is the conversion of ``html`` (no plain part)
    delivery_statuses: tuple[DeliveryStatus, ...] = ()
    original_envelope_id: str | None = None
    returned_message_id: str | None = None  # Message-ID of a returned copy (DSN/NDR)
    returned_headers_text: str = ""  # raw text of returned headers/message, for token search
    attachment_names: tuple[str, ...] = ()
    size: int = 0
    defects: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of a header, case-insensitive, or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def header_all(self, name: str) -> tuple[str, ...]:
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key == wanted)


@dataclass(frozen=True)
class Classification:
    kind: MessageKind
    permanent: bool | None = None  # only for BOUNCE
    ticket_number: str | None = None  # for TICKET_RECEIPT (and HUMAN from a ticket system)
    reasons: tuple[str, ...] = ()  # which signals decided it, for inspection and tests


@dataclass(frozen=True)
class ProbeCandidate:
    """What the matcher knows of a probe that a message might answer."""

    token: str
    target_id: str
    target_address: str
    reply_address: str
    message_id: str
    subject: str
    body: str
    sent_at: datetime


@dataclass(frozen=True)
class Match:
    probe_token: str | None
    method: MatchMethod

    @property
    def matched(self) -> bool:
        return self.probe_token is not None


NO_MATCH = Match(probe_token=None, method=MatchMethod.NONE)


@dataclass(frozen=True)
class ObservedMessage:
    """A message already tied to a probe, as the outcome computation sees it."""

    message_key: str
    kind: MessageKind
    received_at: datetime
    has_new_text: bool
    permanent: bool | None = None
    ticket_number: str | None = None
    answer: AnswerKind | None = None  # the rubric's verdict on a human reply, when assessed


@dataclass(frozen=True)
class ProbeOutcome:
    """The measurement of one probe; recomputable from its probe and messages."""

    token: str
    state: OutcomeState
    clock_start: datetime | None  # the next office opening at or after sent_at
    first_ack_at: datetime | None = None
    ack_ticket_number: str | None = None
    ack_wall_seconds: float | None = None
    ack_working_seconds: float | None = None
    first_human_at: datetime | None = None
    wall_seconds: float | None = None
    working_seconds: float | None = None
    within_one_working_day: bool | None = None
    within_two_working_days: bool | None = None
    bounced: bool = False
    bounce_permanent: bool | None = None
    message_keys: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class ProbeRecord:
    """A past or pending probe, as the scheduler sees it."""

    token: str
    target_id: str
    question_id: str
    persona_id: str
    state: ProbeState
    planned_at: datetime
    sent_at: datetime | None
    outstanding: bool  # sent (or in flight) and neither answered nor final yet


@dataclass(frozen=True)
class Checkpoint:
    """How far the mailbox has been read; advances only after a message is committed."""

    folder: str
    uidvalidity: int
    last_uid: int


@dataclass(frozen=True)
class StoredMessage:
    """An incoming mail with what svarstid concluded about it, as it is stored."""

    message_key: str  # sha256 hex of the raw bytes: dedupe key across rescans
    message_id: str | None
    folder: str
    uidvalidity: int
    uid: int
    received_at: datetime  # IMAP INTERNALDATE: when our server received it
    from_address: str | None
    subject: str
    size: int
    kind: MessageKind
    permanent: bool | None
    ticket_number: str | None
    has_new_text: bool
    probe_token: str | None
    match_method: MatchMethod
    defects: tuple[str, ...] = ()
    raw: bytes | None = None  # dropped after the configured body retention

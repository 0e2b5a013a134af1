"""Composition of a probe: its token, addresses and the mail that carries the question.

Pure functions: the caller supplies the entropy and the clock.
"""

from __future__ import annotations

import base64
import email.policy
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from monitor.domain.model import Persona, Probe, ProbeState, Question, Target

TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
TOKEN_LENGTH = 10
MIN_ENTROPY_BYTES = 7  # 56 bits, enough for the 50 bits a 10-character token holds
SIGNATURE_GREETING = "Vänliga hälsningar"

_TOKEN_CHARS = frozenset(TOKEN_ALPHABET)
_TOKEN_PLACEHOLDER = "{token}"


def new_token(entropy: bytes) -> str:
    """A 10-character lowercase base32 token made from the caller's random bytes."""
    if len(entropy) < MIN_ENTROPY_BYTES:
        raise ValueError(f"a token needs at least {MIN_ENTROPY_BYTES} random bytes")
    return base64.b32encode(entropy).decode("ascii").lower()[:TOKEN_LENGTH]


def is_token(text: str) -> bool:
    return len(text) == TOKEN_LENGTH and all(char in _TOKEN_CHARS for char in text)


def reply_address(template: str, token: str) -> str:
    """The address replies come back to, e.g. ``svar+{token}@matning.example.se``."""
    if _TOKEN_PLACEHOLDER not in template:
        raise ValueError(f"reply address template has no {_TOKEN_PLACEHOLDER}: {template!r}")
    _require_token(token)
    return template.replace(_TOKEN_PLACEHOLDER, token)


def probe_message_id(token: str, mailbox_address: str) -> str:
    """Message-ID with angle brackets, in the mailbox's own domain."""
    _require_token(token)
    return f"<probe.{token}@{_domain_of(mailbox_address)}>"


def sign_body(body: str, persona: Persona) -> str:
    return f"{body.rstrip()}\n\n{SIGNATURE_GREETING}\n{persona.name}"


def build_probe(
    *,
    token: str,
    target: Target,
    question: Question,
    persona: Persona,
    reply_template: str,
    mailbox_address: str,
    planned_at: datetime,
) -> Probe:
    """A probe in state PLANNED, ready to be persisted before anything is sent."""
    _require_aware(planned_at, "planned_at")
    return Probe(
        token=token,
        target_id=target.id,
        target_address=target.address,
        question_id=question.id,
        persona_id=persona.id,
        reply_address=reply_address(reply_template, token),
        message_id=probe_message_id(token, mailbox_address),
        subject=question.subject,
        body=sign_body(question.body, persona),
        state=ProbeState.PLANNED,
        planned_at=planned_at,
    )


def render_probe(probe: Probe, persona: Persona, *, date: datetime) -> EmailMessage:
    """The probe as an ordinary citizen's mail.

    Deliberately without Auto-Submitted, Precedence, X-Auto-Response-Suppress, receipt
    requests or List-* headers: they make receivers suppress the very auto-replies and
    receipts the monitor measures, and mark the mail as machine-made.
    """
    _require_aware(date, "date")
    message = EmailMessage(policy=email.policy.SMTP)
    sender = _address(persona.name, probe.reply_address)
    message["From"] = sender
    message["Reply-To"] = sender
    message["To"] = probe.target_address
    message["Subject"] = probe.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = probe.message_id
    # Quoted-printable keeps the mail 7-bit, so relays without SMTPUTF8/8BITMIME accept it.
    message.set_content(probe.body, subtype="plain", charset="utf-8", cte="quoted-printable")
    return message


def _address(display_name: str, addr_spec: str) -> Address:
    # Address + the SMTP policy writes a non-ASCII display name as an RFC 2047 encoded-word.
    return Address(display_name=display_name, addr_spec=addr_spec)


def _domain_of(address: str) -> str:
    _, at, domain = address.rpartition("@")
    if not at or not domain:
        raise ValueError(f"not an e-mail address: {address!r}")
    return domain.lower()


def _require_token(token: str) -> None:
    if not is_token(token):
        raise ValueError(f"not a probe token: {token!r}")


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")

"""Realistic replies that simulated municipalities send back to a probe.

Each builder takes the probe as the municipality received it and returns the raw bytes
of the reply as it would land in the monitor's mailbox.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid, parseaddr


@dataclass(frozen=True)
class ReceivedProbe:
    message_id: str
    subject: str
    reply_to: str
    from_name: str
    to: str
    body: str
    date: str


def read_probe(raw: bytes) -> ReceivedProbe:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    name, _address = parseaddr(str(message.get("From", "")))
    body_part = message.get_body(preferencelist=("plain",))
    body = body_part.get_content() if isinstance(body_part, EmailMessage) else ""
    return ReceivedProbe(
        message_id=str(message.get("Message-ID", "")),
        subject=str(message.get("Subject", "")),
        reply_to=parseaddr(str(message.get("Reply-To") or message.get("From", "")))[1],
        from_name=name,
        to=parseaddr(str(message.get("To", "")))[1],
        body=str(body),
        date=str(message.get("Date", "")),
    )


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def _base(
    probe: ReceivedProbe, *, sender: str, sender_name: str, subject: str, at: datetime
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{sender_name} <{sender}>"
    message["To"] = probe.reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = make_msgid(domain=_domain(sender))
    return message


def _quoted(probe: ReceivedProbe) -> str:
    quoted = "\n".join(f"> {line}" if line else ">" for line in probe.body.splitlines())
    return f"\n\nDen {probe.date} skrev {probe.from_name} <{probe.reply_to}>:\n{quoted}\n"


def _threaded(message: EmailMessage, probe: ReceivedProbe) -> None:
    message["In-Reply-To"] = probe.message_id
    message["References"] = probe.message_id


def human_answer(
    probe: ReceivedProbe,
    *,
    officer: str,
    sender: str,
    answer: str,
    at: datetime,
    threaded: bool = True,
) -> bytes:
    message = _base(
        probe, sender=sender, sender_name=officer, subject=f"SV: {probe.subject}", at=at
    )
    if threaded:
        _threaded(message, probe)
    greeting = f"Hej {probe.from_name.split()[0]}!\n\n" if probe.from_name else "Hej!\n\n"
    signature = f"\n\nMed vänliga hälsningar\n{officer}\nKontaktcenter"
    message.set_content(greeting + answer + signature + _quoted(probe))
    return message.as_bytes()


def out_of_office(probe: ReceivedProbe, *, officer: str, sender: str, at: datetime) -> bytes:
    message = _base(
        probe,
        sender=sender,
        sender_name=officer,
        subject=f"Automatiskt svar: {probe.subject}",
        at=at,
    )
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    _threaded(message, probe)
    message.set_content(
        "Hej!\n\nJag är på semester och är tillbaka på måndag. Ditt mejl läses då.\n"
        "Brådskande ärenden: ring kommunens kontaktcenter.\n\nVänliga hälsningar\n" + officer
    )
    return message.as_bytes()


def ticket_receipt(
    probe: ReceivedProbe, *, system: str, sender: str, case_number: str, at: datetime
) -> bytes:
    message = _base(
        probe,
        sender=sender,
        sender_name=system,
        subject=f"[Ärende #{case_number}] {probe.subject}",
        at=at,
    )
    message["Auto-Submitted"] = "auto-generated"
    _threaded(message, probe)
    message.set_content(
        f"Tack för ditt meddelande!\n\nVi har registrerat ditt ärende med ärendenummer "
        f"{case_number}. Vi besvarar normalt frågor inom två arbetsdagar.\n\n"
        "Detta är ett automatiskt meddelande och kan inte besvaras."
    )
    return message.as_bytes()


def ticket_answer(
    probe: ReceivedProbe,
    *,
    officer: str,
    sender: str,
    case_number: str,
    answer: str,
    at: datetime,
) -> bytes:
    """An agent's answer from a case system: rewritten subject, no threading headers."""
    message = _base(
        probe,
        sender=sender,
        sender_name=officer,
        subject=f"Svar i ärende {case_number}: {probe.subject}",
        at=at,
    )
    message.set_content(f"Hej!\n\n{answer}\n\nMed vänlig hälsning\n{officer}\n" + _quoted(probe))
    return message.as_bytes()


def permanent_bounce(probe: ReceivedProbe, *, raw_probe: bytes, mta: str, at: datetime) -> bytes:
    """An RFC 3464 delivery status notification for an unknown mailbox, as Postfix sends it.

    Written out by hand: the stdlib generator cannot serialise a message/delivery-status
    part it did not parse itself.
    """
    boundary = f"dsn-{make_msgid(domain=mta).strip('<>').split('@')[0]}"
    head = (
        f"From: Mail Delivery System <MAILER-DAEMON@{mta}>\r\n"
        f"To: {probe.reply_to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(at)}\r\n"
        f"Message-ID: {make_msgid(domain=mta)}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
    )
    notice = (
        f"This is the mail system at host {mta}.\r\n\r\nI'm sorry to have to inform you that "
        "your message could not be delivered to one or more recipients.\r\n\r\n"
        f"<{probe.to}>: host {mta} said: 550 5.1.1 <{probe.to}>: Recipient address rejected: "
        "User unknown in local recipient table\r\n"
    )
    status = (
        f"Reporting-MTA: dns; {mta}\r\n\r\nFinal-Recipient: rfc822; {probe.to}\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
    )
    parts = [
        ("text/plain; charset=us-ascii", notice.encode()),
        ("message/delivery-status", status.encode()),
        ("message/rfc822", raw_probe.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")),
    ]
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n".encode() + content + b"\r\n"
        for kind, content in parts
    )
    return head.encode() + b"\r\n" + body + f"--{boundary}--\r\n".encode()

"""Realistic replies that simulated municipalities send back to a probe.

Each builder takes the probe as the municipality received it and returns the raw bytes
of the reply as it would land in the monitor's mailbox.
"""

from __future__ import annotations

import email.policy
import quopri
from dataclasses import dataclass
from datetime import datetime
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

# compat32 parsing and hand-written headers: the demo builds hundreds of replies while the
# user waits, and the default policy's header objects cost milliseconds per message.
_PARSER = BytesParser(policy=email.policy.compat32)


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
    message = _PARSER.parsebytes(raw)
    name, _address = parseaddr(_decoded(message, "From"))
    return ReceivedProbe(
        message_id=_decoded(message, "Message-ID"),
        subject=_decoded(message, "Subject"),
        reply_to=parseaddr(_decoded(message, "Reply-To") or _decoded(message, "From"))[1],
        from_name=name,
        to=parseaddr(_decoded(message, "To"))[1],
        body=_plain_body(message),
        date=_decoded(message, "Date"),
    )


def _decoded(message: Message, name: str) -> str:
    value = message.get(name)
    if value is None:
        return ""
    return str(make_header(decode_header(str(value)))).replace("\r", "").replace("\n", "")


def _plain_body(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return ""


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def _encoded_header(text: str) -> str:
    return text if text.isascii() else Header(text, "utf-8").encode()


def _mailbox(name: str, address: str) -> str:
    return formataddr((name, address), charset="utf-8")


@dataclass
class _Reply:
    """A text/plain reply assembled by hand (RFC 5322 + RFC 2047 + quoted-printable)."""

    headers: list[tuple[str, str]]

    def __setitem__(self, name: str, value: str) -> None:
        self.headers.append((name, value))

    def set_content(self, text: str) -> None:
        self.body = quopri.encodestring(text.replace("\n", "\r\n").encode("utf-8"))

    def as_bytes(self) -> bytes:
        head = "".join(f"{name}: {value}\r\n" for name, value in self.headers)
        mime = (
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        return (head + mime).encode("ascii") + self.body


def _base(
    probe: ReceivedProbe, *, sender: str, sender_name: str, subject: str, at: datetime
) -> _Reply:
    return _Reply(
        [
            ("From", _mailbox(sender_name, sender)),
            ("To", probe.reply_to),
            ("Subject", _encoded_header(subject)),
            ("Date", format_datetime(at)),
            ("Message-ID", make_msgid(domain=_domain(sender))),
        ]
    )


def _quoted(probe: ReceivedProbe) -> str:
    quoted = "\n".join(f"> {line}" if line else ">" for line in probe.body.splitlines())
    return f"\n\nDen {probe.date} skrev {probe.from_name} <{probe.reply_to}>:\n{quoted}\n"


def _threaded(message: _Reply, probe: ReceivedProbe) -> None:
    message["In-Reply-To"] = probe.message_id
    message["References"] = probe.message_id


def _automatic(
    probe: ReceivedProbe,
    *,
    sender: str,
    sender_name: str,
    subject: str,
    at: datetime,
    headers: tuple[tuple[str, str], ...],
    text: str,
) -> bytes:
    """A machine's threaded reply; ``headers`` mark it automatic (RFC 3834 Auto-Submitted)."""
    message = _base(probe, sender=sender, sender_name=sender_name, subject=subject, at=at)
    for name, value in headers:
        message[name] = value
    _threaded(message, probe)
    message.set_content(text)
    return message.as_bytes()


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
    return _automatic(
        probe,
        sender=sender,
        sender_name=officer,
        subject=f"Automatiskt svar: {probe.subject}",
        at=at,
        headers=(("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")),
        text="Hej!\n\nJag är på semester och är tillbaka på måndag. Ditt mejl läses då.\n"
        "Brådskande ärenden: ring kommunens kontaktcenter.\n\nVänliga hälsningar\n" + officer,
    )


def ticket_receipt(
    probe: ReceivedProbe, *, system: str, sender: str, case_number: str, at: datetime
) -> bytes:
    return _automatic(
        probe,
        sender=sender,
        sender_name=system,
        subject=f"[Ärende #{case_number}] {probe.subject}",
        at=at,
        headers=(("Auto-Submitted", "auto-generated"),),
        text=f"Tack för ditt meddelande!\n\nVi har registrerat ditt ärende med ärendenummer "
        f"{case_number}. Vi besvarar normalt frågor inom två arbetsdagar.\n\n"
        "Detta är ett automatiskt meddelande och kan inte besvaras.",
    )


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
    return _multipart_report(head, boundary, parts)


def auto_acknowledgement(
    probe: ReceivedProbe, *, sender: str, organisation: str, at: datetime
) -> bytes:
    """A contact centre's automatic "we got your mail" (RFC 3834 auto-replied), no case."""
    return _automatic(
        probe,
        sender=sender,
        sender_name=organisation,
        subject=f"Tack för ditt mejl: {probe.subject}",
        at=at,
        headers=(("Auto-Submitted", "auto-replied"),),
        text="Hej!\n\nTack för ditt mejl. Vi har tagit emot ditt meddelande och strävar efter att "
        "besvara det inom fem arbetsdagar.\n\nDetta är ett automatiskt svar.\n\n"
        f"{organisation}",
    )


def read_receipt(probe: ReceivedProbe, *, reader: str, sender: str, at: datetime) -> bytes:
    """An RFC 8098 message disposition notification ("Läst:"), as Thunderbird sends it.

    Written out by hand for the same reason as permanent_bounce.
    """
    domain = _domain(sender)
    boundary = f"mdn-{make_msgid(domain=domain).strip('<>').split('@')[0]}"
    head = (
        f"From: {_mailbox(reader, sender)}\r\n"
        f"To: {probe.reply_to}\r\n"
        f"Subject: {_encoded_header('Läst: ' + probe.subject)}\r\n"
        f"Date: {format_datetime(at)}\r\n"
        f"Message-ID: {make_msgid(domain=domain)}\r\n"
        f"References: {probe.message_id}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=disposition-notification;\r\n"
        f' boundary="{boundary}"\r\n'
    )
    notice = f"Ditt meddelande lästes {format_datetime(at)}.\r\n".encode()
    disposition = (
        f"Reporting-UA: {domain}; Thunderbird\r\nFinal-Recipient: rfc822; {probe.to}\r\n"
        f"Original-Message-ID: {probe.message_id}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n"
    ).encode()
    parts = [
        ("text/plain; charset=utf-8", notice),
        ("message/disposition-notification", disposition),
    ]
    return _multipart_report(head, boundary, parts)


def _multipart_report(head: str, boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    """``head`` (its header lines, ending in CRLF), then each (content type, bytes) part."""
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n".encode() + content + b"\r\n"
        for kind, content in parts
    )
    return head.encode() + b"\r\n" + body + f"--{boundary}--\r\n".encode()

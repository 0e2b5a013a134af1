"""Decide what an incoming message is, seen from the monitor that sent the probe.

Rules run in a fixed order and the first that decides wins:
1. delivery reports (a DSN often carries Auto-Submitted too, so they come first);
2. complaints (ARF feedback reports, SES complaints, one-click unsubscribe requests);
3. read receipts (MDNs and Outlook "Läst:" receipts);
4. mailing-list mail that is not an RFC 3834 reply (a survey may say auto-generated);
5. a reply that reads as a person's (two of: a salutation naming the asker, a sign-off
   with a person's name, content about the question), even from a noreply case system
   or with Auto-Submitted, unless it states an absence or a registered case;
6. automatic messages: ticket receipts when a case was registered, else auto replies;
7. remaining bulk (Precedence bulk/list/junk, spam verdicts) when it is not a reply;
8. everything else is written by a person.

What a message is follows from what it says and its own headers, never from the thread:
"SV: Automatiskt svar: …" is someone answering an auto reply, and Thread-Topic names the
thread's first message.

A success DSN (Action: delivered/relayed) has no kind of its own: it is classified DELAY
with reason "dsn-delivered", because like a delay it is a delivery report about the probe
that is neither a failure nor an answer, and the outcome must ignore it.

X-Auto-Response-Suppress is a request header (sent by Exchange and ticket systems on any
mail, also by people) and is deliberately not a signal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from monitor.domain import signals_sv as sig
from monitor.domain.bounce import ReportOutcome, delivery_report, is_bounce_sender, ses_complaint
from monitor.domain.model import Classification, MessageKind, ParsedMessage
from monitor.domain.person_reply import person_signs

SHORT_NEW_TEXT = 700  # characters: templates are short, answers usually are not
PERSON_MIN_TEXT = 120  # characters of new text before it can read as a person's reply

# Leading and inner blanks are [ \t], never \s: a \s* that may cross line ends makes the
# search quadratic on a run of empty lines (the fuzz target found 60 s for 10 kB of CRLFs).
_QUOTE_START = re.compile(
    r"^[ \t]*(?:(?:från|from|von|de|van)[ \t]*:[ \t]*\S.*|-{2,}[ \t]*(?:ursprungligt\s+"
    r"meddelande|original(?:\s+message|meddelande)|vidarebefordrat\s+meddelande|forwarded\s+"
    r"message).*|_{10,}|-{20,}|>.*|.{0,120}\b(?:skrev|wrote|schrieb)[ \t]*:[ \t\r]*|"
    r"den[ \t].{0,80}\bskrev\b.*|"
    r".{0,80}\bkl\.?[ \t]+\d{1,2}[:.]\d{2},?[ \t]+skrev[ \t].{0,200}:[ \t\r]*|"
    r"(?:skickat|sent)[ \t]+(?:från|from)[ \t]+(?:min|my)[ \t]+\w+.{0,40})$",
    re.IGNORECASE | re.MULTILINE,
)
_NOREPLY = re.compile(r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|noreply[-_.]\w+|no-?svar)", re.I)
_COMPLAINT_SUBJECT = re.compile(r"\b(?:complaint|abuse\s+report|spam\s+report)\b", re.I)
_SPAM_FLAG = re.compile(r"^\s*(?:yes|true|spam)\b", re.I)

Rule = Callable[[ParsedMessage], Classification | None]


def classify(msg: ParsedMessage) -> Classification:
    """Exactly one kind for a message, with the short names of the signals that decided."""
    for rule in _RULES:
        decided = rule(msg)
        if decided is not None:
            return decided
    return Classification(MessageKind.HUMAN, ticket_number=ticket_number(msg), reasons=("default",))


def _delivery(msg: ParsedMessage) -> Classification | None:
    report = delivery_report(msg)
    if report is None:
        return None
    if report.outcome is ReportOutcome.FAILED:
        return Classification(
            MessageKind.BOUNCE, permanent=report.permanent, reasons=report.reasons
        )
    return Classification(MessageKind.DELAY, reasons=report.reasons)


def _complaint(msg: ParsedMessage) -> Classification | None:
    if msg.report_type == "feedback-report":
        return Classification(MessageKind.COMPLAINT, reasons=("arf",))
    if ses_complaint(msg) and "amazonaws.com" in (msg.from_address or ""):
        return Classification(MessageKind.COMPLAINT, reasons=("ses-complaint",))
    if _COMPLAINT_SUBJECT.search(msg.subject) and msg.returned_headers_text:
        return Classification(MessageKind.COMPLAINT, reasons=("complaint-with-copy",))
    if (msg.header("x-apple-unsubscribe") or "").strip().lower() == "true":
        return Classification(MessageKind.COMPLAINT, reasons=("unsubscribe-request",))
    return None


def _read_receipt(msg: ParsedMessage) -> Classification | None:
    if msg.report_type == "disposition-notification":
        return Classification(MessageKind.READ_RECEIPT, reasons=("mdn",))
    if sig.READ_RECEIPT_SUBJECT.search(msg.subject) and not _has_reply_text(msg):
        return Classification(MessageKind.READ_RECEIPT, reasons=("read-receipt-subject",))
    return None


def _list_mail(msg: ParsedMessage) -> Classification | None:
    has_list = msg.header("list-id") is not None or msg.header("list-unsubscribe") is not None
    if not has_list or _rfc3834_reply(msg) or _threaded_reply(msg):
        return None
    if sig.AUTO_SUBJECT.search(msg.subject):
        return None
    return Classification(MessageKind.BULK, reasons=("list-headers",))


def _person_reply(msg: ParsedMessage) -> Classification | None:
    text = new_text(msg.text)
    if len(text.strip()) < PERSON_MIN_TEXT:
        return None
    question = f"{_topic(msg.subject)}\n{msg.text[len(text) :][:4000]}"
    signs = person_signs(text, question)
    if not signs.reads_as_person or _spam_verdict(msg):
        return None
    if sig.ABSENCE.search(text) or sig.RECEIPT.search(text):
        return None
    return Classification(
        MessageKind.HUMAN, ticket_number=ticket_number(msg), reasons=("person", *signs.names)
    )


def _topic(subject: str) -> str:
    """The subject without reply prefixes and automatic markers: what the question is about."""
    return sig.AUTO_SUBJECT.sub("", sig.REPLY_PREFIX.sub("", subject))


def _automatic(msg: ParsedMessage) -> Classification | None:
    signals = auto_signals(msg)
    receipt = _receipt_signals(msg)
    number = ticket_number(msg)
    # Without automation signs only the body's wording counts: a person may answer
    # under the receipt's subject.
    if number and ((receipt and signals) or ("receipt-wording" in receipt and _short(msg))):
        return Classification(
            MessageKind.TICKET_RECEIPT, ticket_number=number, reasons=(*signals, *receipt)
        )
    if signals:
        return Classification(MessageKind.AUTO_REPLY, ticket_number=number, reasons=tuple(signals))
    return None


def _bulk(msg: ParsedMessage) -> Classification | None:
    if _threaded_reply(msg):
        return None
    precedence = (msg.header("precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return Classification(MessageKind.BULK, reasons=(f"precedence-{precedence}",))
    if _spam_verdict(msg):
        return Classification(MessageKind.BULK, reasons=("spam-verdict",))
    return None


_RULES: tuple[Rule, ...] = (
    _delivery,
    _complaint,
    _read_receipt,
    _list_mail,
    _person_reply,
    _automatic,
    _bulk,
)


# --- signals ---------------------------------------------------------------------------


def auto_signals(msg: ParsedMessage) -> list[str]:
    """Short names of the signs that nobody typed this message."""
    signals = _header_signals(msg)
    if sig.AUTO_SUBJECT.search(msg.subject) and not sig.REPLY_PREFIX.match(msg.subject):
        signals.append("auto-subject")
    if signals:
        return signals
    return _body_signals(msg)


def _header_signals(msg: ParsedMessage) -> list[str]:
    signals = []
    auto_submitted = (msg.header("auto-submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        signals.append("auto-submitted")  # RFC 3834 section 5
    if any(msg.header(h) is not None for h in ("x-autoreply", "x-autorespond", "x-autoresponder")):
        signals.append("x-autoreply")
    if (msg.header("precedence") or "").strip().lower() == "auto_reply":
        signals.append("precedence-auto-reply")
    if msg.header("x-ms-exchange-inbox-rules-loop") is not None:
        signals.append("inbox-rule-reply")  # Exchange sets it on mail an inbox rule sends
    if (msg.header("x-autogenerated") or "").strip().lower() == "reply":
        signals.append("x-autogenerated")
    return signals


def _body_signals(msg: ParsedMessage) -> list[str]:
    text = new_text(msg.text)
    short = len(text.strip()) <= SHORT_NEW_TEXT
    noreply = bool(_NOREPLY.match((msg.from_address or "").split("@", 1)[0]))
    signals = []
    if sig.AUTO_STATEMENT.search(text):
        signals.append("auto-statement")
    if short and sig.ABSENCE.search(text):
        signals.append("absence-wording")
    if sig.ACK_PROMISE.search(text) and (short or noreply):
        signals.append("ack-wording")
    if signals and noreply:
        signals.append("noreply-sender")
    return signals


def _receipt_signals(msg: ParsedMessage) -> list[str]:
    found = []
    if sig.RECEIPT.search(new_text(msg.text)):
        found.append("receipt-wording")
    if sig.RECEIPT_SUBJECT.search(msg.subject) and not sig.REPLY_PREFIX.match(msg.subject):
        found.append("receipt-subject")
    return found


def ticket_number(msg: ParsedMessage) -> str | None:
    """A case, diary or ticket id from the subject tag, the subject, or the new text."""
    for pattern, text in (
        (sig.TICKET_IN_TAG, msg.subject),
        (sig.TICKET_AFTER_KEYWORD, msg.subject),
        (sig.TICKET_AFTER_KEYWORD, new_text(msg.text)),
    ):
        for match in pattern.finditer(text):
            candidate = match.group("id").strip()
            if sum(ch.isdigit() for ch in candidate) >= 3:
                return candidate
    return None


@lru_cache(maxsize=4)
def new_text(text: str) -> str:
    """Text above the first quote or forward block; enough to judge wording, not a quote parser.

    Cached: the rules ask for the new text of the same body up to five times.
    """
    match = _QUOTE_START.search(text)
    return text[: match.start()] if match else text


def _short(msg: ParsedMessage) -> bool:
    return len(new_text(msg.text).strip()) <= SHORT_NEW_TEXT


def _has_reply_text(msg: ParsedMessage) -> bool:
    return len(new_text(msg.text).strip()) > SHORT_NEW_TEXT


def _rfc3834_reply(msg: ParsedMessage) -> bool:
    return (msg.header("auto-submitted") or "").strip().lower().startswith("auto-replied")


def _threaded_reply(msg: ParsedMessage) -> bool:
    """A reply in a thread: newsletters and surveys never carry In-Reply-To with Re:/SV:."""
    return bool(msg.in_reply_to or msg.references) and bool(sig.REPLY_PREFIX.match(msg.subject))


def _spam_verdict(msg: ParsedMessage) -> bool:
    return any(_SPAM_FLAG.match(msg.header(name) or "") for name in ("x-spam", "x-spam-flag"))


__all__ = ["auto_signals", "classify", "is_bounce_sender", "new_text", "ticket_number"]

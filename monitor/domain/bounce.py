"""Delivery reports: RFC 3464 DSNs and the many non-standard bounce formats.

Decides whether a message is a delivery report at all, whether it says failed, delayed
or delivered, and whether a failure is permanent. Permanence follows the measurement's
needs rather than the bare status class: a full mailbox (even as 5.2.2, RFC 3463 calls it
"persistent transient") and a 4.x.x given up after the queue lifetime say nothing about
the address being wrong, so they are not permanent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from monitor.domain.model import DeliveryStatus, ParsedMessage
from monitor.domain.mta_families import (
    GAVE_UP,
    STILL_TRYING,
    MtaFamily,
    folded,
    hinted_families,
    notice_family,
    returned_copy_start,
)
from monitor.domain.signals_sv import Wording

_I = re.IGNORECASE


class ReportOutcome(StrEnum):
    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"


@dataclass(frozen=True)
class DeliveryReport:
    outcome: ReportOutcome
    permanent: bool | None
    reasons: tuple[str, ...]


# Reply prefixes (RFC 5322 3.6.5 "Re:" and its locales), without the forward prefixes.
_ANSWER_PREFIX = re.compile(r"^\s*(?:re|sv|aw|vs|antw|ynt|odp|res|r)\s*:", _I)
_BOUNCE_LOCAL = re.compile(
    r"^(?:mailer-daemon|mailerdaemon|mail-daemon|postmaster|post_master|mdaemon|"
    r"microsoftexchange[0-9a-f]*|bounces?|mail\.?delivery|mailadmin|maildelivery|"
    r"double-bounce|[\w.]+-(?:admin|owner|bounces?))$",
    _I,
)
_BOUNCE_NAME = re.compile(
    r"\b(?:mail\s+delivery\s+(?:system|subsystem|service)|mailer-daemon|postmaster|"
    r"delivery\s+status\s+notification|mail\s+administrator|e-?mail\s+delivery)\b",
    _I,
)
_FAILURE_SUBJECT = re.compile(
    r"undeliver(?:able|ed)|returned\s+mail|mail\s+delivery\s+failed|delivery\s+(?:status\s+)?"
    r"(?:notification|failure|report)|failure\s+notice|non[- ]?deliver|kan\s+inte\s+levereras|"
    r"olevererbar|could\s+not\s+be\s+delivered|delivery\s+has\s+failed|mail\s+system\s+error|"
    r"message\s+not\s+delivered|delivery\s+problem|unzustellbar|onbestelbaar|"
    r"non\s+recapitabile|(?:returned|rejected|bounced?)\s+(?:mail|message|e-?mail)|"
    r"delivery\s+(?:delayed|unsuccessful|notification)|delayed\s+mail|warning:\s+could\s+not|"
    r"not\s+delivered|mail\s+could\s+not|nicht\s+zugestellt|bounce\s+notification|"
    r"permanent\s+(?:error|failure)|leverans(?:en)?\s+(?:misslyckades|försenad)|försenad",
    _I,
)
_FAILURE_BODY = Wording(
    r"could\s*n[o']t\s+be\s+delivered|could\s+not\s+deliver|unable\s+to\s+deliver|"
    r"undeliverable|not\s+(?:be\s+)?delivered|delivery\s+(?:to\s+the\s+following\s+"
    r"recipients?\s+)?(?:has\s+)?failed|failed\s+permanently|permanent\s+(?:error|failure|fatal)|"
    r"following\s+addresse?s?\(?e?s?\)?\s+(?:had\s+)?(?:permanent\s+)?(?:fatal\s+)?(?:errors|failed)|"
    r"user\s+unknown|unknown\s+user|no\s+such\s+(?:user|mailbox|recipient|address)|"
    r"mailbox\s+(?:unavailable|not\s+found|is\s+full|full)|recipient\s+address\s+rejected|"
    r"does\s+not\s+exist|returned\s+to\s+sender|wasn't\s+able\s+to\s+deliver|"
    r"kunde\s+inte\s+levereras|host\s+unknown|message\s+(?:was\s+)?rejected|"
    r"this\s+is\s+the\s+mail\s+system\s+at|i'm\s+sorry\s+to\s+have\s+to\s+inform\s+you|"
    r"error\s+message\s+below|delivery\s+status\s+notification|invalid\s+(?:user|recipient)|"
    r"this\s+is\s+a\s+permanent\s+error|sorry,?\s+(?:we|i)\s+(?:were|was|couldn't)|"
    r"not\s+a\s+member\s+of|delivery\s+(?:is\s+|has\s+been\s+)?delayed|will\s+(?:continue\s+to\s+)?"
    r"(?:be\s+)?retr(?:y|ied)|could\s+not\s+send\s+message|transcript\s+of\s+session\s+follows",
)
_DELAY_BODY = Wording(
    r"this\s+is\s+a\s+warning\s+only|still\s+being\s+retried|will\s+(?:be\s+)?retried|"
    r"will\s+(?:continue\s+to\s+|keep\s+)?(?:try|trying|retry|be\s+attempted|attempt)|"
    r"delivery\s+will\s+continue|(?:hasn't|has\s+not)\s+(?:been\s+delivered|yet\s+been\s+"
    r"delivered)\s+yet|delivery\s+(?:is\s+|has\s+been\s+)?delayed|delayed\s+mail|"
    r"warning:\s+could\s+not\s+send|no\s+action\s+is\s+required|you\s+do\s+not\s+need\s+to\s+"
    r"resend|leveransen\s+är\s+försenad|försenad\s+leverans|kommer\s+att\s+försöka\s+igen",
)
_FINAL_BODY = Wording(
    r"permanent(?:ly)?\s+(?:error|failure|fatal|failed)|giving\s+up|gave\s+up|"
    r"has\s+been\s+returned|could\s*n[o']t\s+be\s+delivered|delivery\s+(?:has\s+)?failed|"
    r"returned\s+to\s+sender|too\s+long\s+in\s+the\s+queue|retry\s+(?:time(?:out)?\s+)?"
    r"(?:exceeded|expired)|message\s+expired|undeliverable",
)
# The subject's own statement: the first words of a notice's subject in many locales.
_FAILED_SUBJECT = re.compile(
    r"undeliver(?:able|ed)|returned\s+mail|failure|failed|non[- ]?deliver|not\s+delivered|"
    r"could\s+not\s+be\s+delivered|kan\s+inte\s+levereras|olevererbar|misslyckades|"
    r"unzustellbar|nicht\s+zugestellt|non\s+remis|non\s+recapitabile|onbestelbaar|"
    r"returned\s+to\s+sender|(?:rejected|bounced?)\s+(?:mail|message)",
    _I,
)
_DELAYED_SUBJECT = re.compile(
    r"delay|warning|still\s+being\s+retried|försenad|fördröjd|verzögert|retard", _I
)
# SNS wraps the SES JSON as an escaped string, hence the optional backslashes.
_SES_TYPE = re.compile(r'\\?"notificationType\\?"\s*:\s*\\?"(\w+)')
_SES_BOUNCE_TYPE = re.compile(r'\\?"bounceType\\?"\s*:\s*\\?"(\w+)')

_ENHANCED_CODE = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SMTP_REPLY = re.compile(r"(?<![\d.\-/:])([45])[0-5]\d(?:[ -]|$)", re.MULTILINE)
_MAILBOX_FULL = Wording(
    r"mailbox\s+(?:is\s+)?full|over\s*quota|quota\s+exceeded|exceeded\s+(?:the\s+)?(?:storage|"
    r"quota)|insufficient\s+(?:system\s+)?storage|mailbox\s+size\s+limit|brevlådan\s+är\s+full|"
    r"postlådan\s+är\s+full|disk\s+quota|user\s+is\s+over|full\s+mailbox|mail\s+quota|"
    r"exceeds?\s+(?:the\s+)?allowed\s+size|mail\s?folder\s+is\s+full|mailbox\s+exceeds",
)
# The queue gave up: the address itself was never refused (RFC 3464 "failed" after 4.x.x).
_EXPIRED = Wording(
    r"retry\s+time(?:out)?\s+(?:exceeded|expired)|failing\s+for\s+a\s+long\s+time|"
    r"too\s+long\s+in\s+the\s+queue|message\s+expired|delivery\s+time\s+expired|"
    r"could\s+not\s+be\s+delivered\s+(?:within|for\s+\d)|queue\s+lifetime|gave\s+up\s+on|"
    r"in\s+the\s+queue\s+too\s+long|deleted\s+from\s+(?:the\s+)?queue|not\s+going\s+to\s+try\s+again|"
    r"undeliverable\s+for\s+\d",
)
_TEMPORARY = Wording(
    r"temporar(?:y|ily)|try\s+again\s+later|timed?\s+out|connection\s+(?:refused|reset)|"
    r"retry\s+timeout|too\s+long\s+in\s+the\s+queue|queue\s+(?:lifetime|time)|"
    r"message\s+expired|deferred|greylist",
)
_PERMANENT = Wording(
    r"user\s+unknown|unknown\s+user|no\s+such\s+(?:user|mailbox|recipient|address|domain)|"
    r"does\s+not\s+exist|doesn't\s+exist|(?:recipient|address)\s+(?:address\s+)?rejected|"
    r"not\s+found|invalid\s+(?:recipient|address|user|mailbox)|host\s+(?:or\s+domain\s+name\s+)?"
    r"not\s+found|host\s+unknown|permanent|unrouteable|relay(?:ing)?\s+denied|"
    r"mailbox\s+(?:unavailable|disabled)|account\s+(?:disabled|has\s+been\s+disabled)|"
    r"not\s+listed|no\s+mx\s+record|domain\s+not\s+found|unknown\s+domain",
)


def delivery_report(msg: ParsedMessage) -> DeliveryReport | None:
    """The delivery report this message is, or None when it is not one."""
    ses = _amazon_ses(msg)
    if ses is not None:
        return ses
    reason = _report_evidence(msg)
    return None if reason is None else _decide(msg, reason)


def is_bounce_sender(msg: ParsedMessage) -> bool:
    """Null envelope sender, MAILER-DAEMON/postmaster, or X-Failed-Recipients (RFC 3464 2.1)."""
    if msg.return_path == "" or msg.header("x-failed-recipients") is not None:
        return True
    local = (msg.from_address or "").split("@", 1)[0]
    return bool(_BOUNCE_LOCAL.match(local) or _BOUNCE_NAME.search(msg.from_name or ""))


def _report_evidence(msg: ParsedMessage) -> str | None:
    """Why the message is a delivery report (the first reason), or None when it is not."""
    if msg.report_type == "delivery-status" or msg.delivery_statuses:
        return "dsn-report"
    family = mta_family(msg)
    if family is not None:
        return f"notice:{family.name.split(' (')[0]}"
    subject_says = bool(_FAILURE_SUBJECT.search(msg.subject))
    if is_bounce_sender(msg) and (subject_says or _FAILURE_BODY.search(_head(msg))):
        return "bounce-sender"
    if subject_says and not msg.in_reply_to and not _ANSWER_PREFIX.match(msg.subject):
        return "bounce-wording" if _FAILURE_BODY.search(_head(msg)) else None
    return None


def mta_family(msg: ParsedMessage) -> MtaFamily | None:
    """The mail-system family whose notice template this message follows, if any.

    A subject that answers (SV:, Re:) is a person writing about a notice, unless the
    sender is a mail system itself. A forward (VB:, Fwd:) is still the notice: its text is
    the template, and the copy of the probe comes with it.
    """
    if _ANSWER_PREFIX.match(msg.subject) and not is_bounce_sender(msg):
        return None

    def hints() -> frozenset[MtaFamily]:
        names = frozenset(name for name, _ in msg.headers)
        sender = f"{msg.from_address or ''} {msg.from_name or ''} {msg.return_path or ''}"
        return hinted_families(sender, msg.subject, names)

    return notice_family(folded(_head(msg)), hints)  # folded once, reused by the ladder


def _decide(msg: ParsedMessage, reason: str) -> DeliveryReport:
    """Failed, delayed or delivered, each rung asked only when the one above is silent.

    1. the notice's own statement ("I've given up" / "this is a warning only");
    2. the RFC 3464 Action of the recipients;
    3. the subject's statement ("Undeliverable" / "Delivery delayed");
    4. the status class (5.x.x failed, 2.x.x delivered; 4.x.x goes on to the wording);
    5. weaker wording; a report that says nothing more is a failure.
    """
    rungs: tuple[tuple[str, Callable[[], ReportOutcome | None]], ...] = (
        ("says", lambda: _statement(folded(_head(msg)))),
        ("action", lambda: _by_action(msg)),
        ("subject", lambda: _subject_statement(msg.subject)),
        ("status-class", lambda: _by_status_class(msg)),
    )
    for rung, decided in rungs:
        outcome = decided()
        if outcome is not None:
            return _report(msg, outcome, (reason, f"{rung}-{outcome.value}"))
    return _by_wording(msg, reason)


def _report(msg: ParsedMessage, outcome: ReportOutcome, reasons: tuple[str, ...]) -> DeliveryReport:
    if outcome is ReportOutcome.FAILED:
        failed = [s for s in msg.delivery_statuses if s.action == "failed"]
        return _failed(msg, failed or list(msg.delivery_statuses), reasons)
    return DeliveryReport(outcome, None, reasons)


def _statement(text: str) -> ReportOutcome | None:
    """What the notice says of itself, when it says only one of "given up" and "still trying"."""
    gave_up = GAVE_UP.search(text) is not None
    still_trying = STILL_TRYING.search(text) is not None
    if gave_up == still_trying:
        return None
    return ReportOutcome.FAILED if gave_up else ReportOutcome.DELAYED


def _subject_statement(subject: str) -> ReportOutcome | None:
    failed = _FAILED_SUBJECT.search(subject) is not None
    delayed = _DELAYED_SUBJECT.search(subject) is not None
    if failed == delayed:
        return None
    return ReportOutcome.FAILED if failed else ReportOutcome.DELAYED


def _by_action(msg: ParsedMessage) -> ReportOutcome | None:
    actions = {s.action for s in msg.delivery_statuses}
    if "failed" in actions:
        return ReportOutcome.FAILED
    if "delayed" in actions:
        return ReportOutcome.DELAYED
    if actions and actions <= {"delivered", "relayed", "expanded"}:
        return ReportOutcome.DELIVERED
    return None


def _by_status_class(msg: ParsedMessage) -> ReportOutcome | None:
    """5.x.x failed; 2.x.x delivered, only from a DSN field, never from a transcript.

    A 4.x.x is no answer: a queue that gave up reports the last temporary error too, so
    whether it is still trying is left to the wording.
    """
    classes = {(s.status or "")[:1] for s in msg.delivery_statuses} - {""}
    if not classes:
        classes = {m.group(1) for m in _ENHANCED_CODE.finditer(_head(msg))} - {"2"}
    if "5" in classes:
        return ReportOutcome.FAILED
    if classes == {"2"}:
        return ReportOutcome.DELIVERED
    return None


def _by_wording(msg: ParsedMessage, reason: str) -> DeliveryReport:
    head = _head(msg)
    delayed = _DELAY_BODY.search(head) or _DELAY_BODY.search(msg.subject)
    if delayed and not _FINAL_BODY.search(head):
        return DeliveryReport(ReportOutcome.DELAYED, None, (reason, "delay-wording"))
    return _failed(msg, list(msg.delivery_statuses), (reason, "failed-by-default"))


def _failed(
    msg: ParsedMessage, statuses: list[DeliveryStatus], reasons: tuple[str, ...]
) -> DeliveryReport:
    permanent, why = failure_permanence(statuses, _head(msg))
    return DeliveryReport(ReportOutcome.FAILED, permanent, (*reasons, why))


def failure_permanence(statuses: list[DeliveryStatus], text: str) -> tuple[bool, str]:
    """(permanent, reason) for a failed delivery: status codes first, then wording.

    With several failed recipients one bad address is enough to call it permanent.
    """
    details = " ".join(f"{s.status or ''} {s.diagnostic or ''}" for s in statuses)
    evidence = f"{details}\n{text}"
    codes = [m.group(0) for m in _ENHANCED_CODE.finditer(details)] or [
        m.group(0) for m in _ENHANCED_CODE.finditer(text)
    ]
    if any(c.startswith("5") and not c.startswith("5.2.2") for c in codes):
        return True, "status-5xx"
    if _MAILBOX_FULL.search(evidence) or codes:
        return False, "mailbox-full" if _MAILBOX_FULL.search(evidence) else "status-4xx-given-up"
    return _permanence_by_wording(evidence)


def _permanence_by_wording(evidence: str) -> tuple[bool, str]:
    if _EXPIRED.search(evidence):
        return False, "queue-expired"
    replies = {m.group(1) for m in _SMTP_REPLY.finditer(evidence)}
    if "5" in replies:
        return True, "smtp-5xx"
    if _PERMANENT.search(evidence):
        return True, "permanent-wording"
    if "4" in replies or _TEMPORARY.search(evidence):
        return False, "temporary-wording"
    return True, "failed-unknown-cause"


def _amazon_ses(msg: ParsedMessage) -> DeliveryReport | None:
    """Amazon SES notifications forwarded by SNS as JSON in a plain-text body."""
    if "amazonses.com" not in (msg.return_path or "") and "amazonaws.com" not in (
        msg.from_address or ""
    ):
        return None
    kind = _SES_TYPE.search(msg.text)
    if kind is None:
        return None
    if kind.group(1) == "Delivery":
        return DeliveryReport(ReportOutcome.DELIVERED, None, ("ses-delivery",))
    if kind.group(1) != "Bounce":
        return None
    bounce_type = _SES_BOUNCE_TYPE.search(msg.text)
    permanent = bounce_type is None or bounce_type.group(1) != "Transient"
    return DeliveryReport(ReportOutcome.FAILED, permanent, ("ses-bounce",))


def ses_complaint(msg: ParsedMessage) -> bool:
    kind = _SES_TYPE.search(msg.text[:2000])
    return kind is not None and kind.group(1) == "Complaint"


def _head(msg: ParsedMessage) -> str:
    """The part of a bounce that speaks about the failure, before any returned copy."""
    return _head_of(msg.text[:6000], msg.returned_headers_text[:80])


@lru_cache(maxsize=4)
def _head_of(head: str, copy_start: str) -> str:
    cuts = []
    if copy_start.strip():
        found = head.find(copy_start)
        if found > 0:
            cuts.append(found)
    lowered = head.lower()
    if len(lowered) == len(head):  # positions in the lowered text are positions in head
        marker = returned_copy_start(lowered)
        if marker:
            cuts.append(marker)
    return head[: min(cuts)] if cuts else head


def failed_recipients(msg: ParsedMessage) -> tuple[str, ...]:
    """Recipients a delivery report says failed, lower-cased, without an address type prefix."""
    found: list[str] = []
    for status in msg.delivery_statuses:
        if status.recipient and (status.action or "failed").lower() == "failed":
            found.append(status.recipient.split(";")[-1].strip().strip("<>").lower())
    return tuple(found)


def blames_address(msg: ParsedMessage, address: str) -> bool:
    """Whether a bounce says ``address`` itself is bad.

    A list or group address expands to members; a report that names only other
    recipients (one member left the organisation) says nothing against the address we
    wrote to. A report that names no recipient at all is taken at its word.
    """
    failed = failed_recipients(msg)
    return not failed or address.lower() in failed

"""Delivery-report formats by mail-system family: how a notice starts, where the copy of
the returned message begins, and which of its sentences say "given up" or "still trying".

Every phrase is lower case and matched on the notice's text after lower-casing and folding
runs of white space into one space, because MTAs wrap their templates at different columns.
The phrases are the fixed sentences of each system's templates, not wording seen in one
sample. ``starts`` are specific enough to mark a delivery report on their own (no person
writes "Hi. This is the qmail-send program"); ``hinted_starts`` are plainer sentences that
count only when the family's own header, sender or subject is present as well.

``gave_up`` and ``still_trying`` are the notice's own statements about the outcome. They
are the first thing the outcome is decided by (see monitor/domain/bounce.py); conditional
sentences ("you'll be notified if the delivery fails permanently") are deliberately not in
either list.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class MtaFamily:
    name: str
    example: str  # the opening of a typical notice, for documentation and tests
    starts: tuple[str, ...] = ()
    hinted_starts: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()  # substrings of the From address or display name
    subjects: tuple[str, ...] = ()  # substrings of the subject
    headers: tuple[str, ...] = ()  # header names only this family sets on its notices
    returned: tuple[str, ...] = ()  # where the copy of the returned message begins
    gave_up: tuple[str, ...] = ()
    still_trying: tuple[str, ...] = ()


FAMILIES: tuple[MtaFamily, ...] = (
    MtaFamily(
        name="Postfix",
        example="This is the mail system at host mx.example.se. I'm sorry to have to inform "
        "you that your message could not be delivered to one or more recipients.",
        starts=("this is the mail system at host", "this is the postfix program at host"),
        subjects=("undelivered mail returned to sender", "delayed mail (still being retried)"),
        gave_up=("i'm sorry to have to inform you that your message could not be delivered",),
        still_trying=(
            "this is a warning only",
            "it will be retried until it is",
            "delayed mail (still being retried)",
        ),
    ),
    MtaFamily(
        name="Sendmail",
        example="The original message was received at Mon, 2 Jun 2025 10:00:00 +0200. "
        "----- The following addresses had permanent fatal errors -----",
        starts=(
            "----- transcript of session follows -----",
            "----- the following addresses had permanent fatal errors -----",
            "the original message was received at",
        ),
        subjects=("returned mail:", "see transcript for details", "warning: could not send"),
        returned=(
            "----- original message follows -----",
            "----- unsent message follows -----",
            "----- no message was collected -----",
            "----- message header follows -----",
        ),
        gave_up=(
            "the following addresses had permanent fatal errors",
            "message will be deleted from queue",
            "message could not be delivered for",
        ),
        still_trying=(
            "this is a warning message only",
            "will keep trying until message is",
            "warning: message still undelivered after",
            "warning: could not send message for past",
        ),
    ),
    MtaFamily(
        name="Exim (also GMX, 1&1, Mail.ru, Sophos, MXLogic)",
        example="This message was created automatically by mail delivery software. A message "
        "that you sent could not be delivered to one or more of its recipients. This is a "
        "permanent error.",
        starts=(
            "this message was created automatically by mail delivery software",
            "a message that you sent could not be delivered to one or more of its recipients",
            "a message that you sent has not yet been delivered to one or more of its",
            "a message that you sent could not be delivered to all of its recipients",
            "a message that you sent was rejected by the local scanning code",
            "a message that you sent contained one or more recipient addresses",
            "router encountered the following error(s)",
        ),
        senders=("mail delivery system",),
        subjects=("mail delivery failed", "mail failure", "message frozen", "warning: message"),
        returned=(
            "------ this is a copy of the message, including all the headers. ------",
            "------ this is a copy of the message's headers. ------",
            "--- the header of the original message is following. ---",
            "included is a copy of the message header:",
        ),
        gave_up=(
            "this is a permanent error",
            "retry timeout exceeded",
            "all hosts have been failing for a long time",
            "retry time not reached for any host after a long failure period",
        ),
        still_trying=(
            "has not yet been delivered to one or more of its recipients",
            "no action is required on your part",
            "delivery attempts will continue",
        ),
    ),
    MtaFamily(
        name="qmail (also Yahoo, mFILTER)",
        example="Hi. This is the qmail-send program at mx.example.se. I'm afraid I wasn't able "
        "to deliver your message to the following addresses. This is a permanent error; "
        "I've given up. Sorry it didn't work out.",
        starts=("hi. this is the qmail", "sorry, we were unable to deliver your message"),
        subjects=("failure notice",),
        headers=("x-ymailisg",),
        returned=(
            "--- below this line is a copy of the message.",
            "--- enclosed are the original headers of the message.",
        ),
        gave_up=("i've given up", "i'm not going to try again", "this is a permanent error"),
        still_trying=("i'm still trying", "this is not a permanent error"),
    ),
    MtaFamily(
        name="Exchange 2003-2013 (on premises)",
        example="Your message did not reach some or all of the intended recipients. "
        "The following recipient(s) cannot be reached:",
        starts=(
            "your message did not reach some or all of the intended recipients",
            "did not reach the following recipient(s)",
            "the following recipient(s) cannot be reached",
            "the following recipient(s) could not be reached",
            "delivery has failed to these recipients or groups",
            "delivery is delayed to these recipients or groups",
        ),
        hinted_starts=("diagnostic information for administrators",),
        subjects=("undeliverable:", "delivery delayed:", "non remis", "non recapitabile"),
        headers=("x-ms-embedded-report", "x-ms-exchange-message-is-ndr"),
        returned=("original message headers:",),
        gave_up=(
            "did not reach some or all of the intended recipients",
            "cannot be reached",
            "could not be reached",
            "delivery has failed to these recipients or groups",
        ),
        still_trying=(
            "delivery is delayed to these recipients or groups",
            "hasn't been delivered yet",
            "delivery will continue to be attempted",
            "the server will keep trying to deliver this message",
        ),
    ),
    MtaFamily(
        name="Microsoft 365 / Exchange Online (English)",
        example="Your message to kontakt@kommun.se couldn't be delivered. kontakt wasn't found "
        "at kommun.se.",
        starts=(
            "rejected your message to the following e-mail addresses",
            "rejected your message to the following email addresses",
            "more info for email admins",
            "original message details",
        ),
        hinted_starts=("couldn't be delivered", "wasn't found at"),
        senders=("microsoftexchange", "microsoft outlook"),
        subjects=("undeliverable:", "delivery delayed:"),
        headers=("x-ms-exchange-message-is-ndr",),
        returned=("original message headers:", "message hops"),
        gave_up=("couldn't be delivered", "rejected your message to the following"),
        still_trying=("hasn't been delivered yet", "will keep trying to deliver this message"),
    ),
    MtaFamily(
        name="Microsoft 365 / Exchange (Swedish)",
        example="Ditt meddelande till kontakt@kommun.se kunde inte levereras. Det gick inte att "
        "hitta kontakt på kommun.se.",
        starts=(
            "det gick inte att leverera till följande mottagare eller grupper",
            "leveransen har fördröjts till följande mottagare eller grupper",
            "leveransen till följande mottagare eller grupper är fördröjd",
            "mer information för e-postadministratörer",
            "diagnostikinformation för administratörer",
            "originalmeddelandets information",
        ),
        hinted_starts=("kunde inte levereras",),
        senders=("microsoftexchange", "microsoft outlook"),
        subjects=("kan inte levereras:", "olevererbart:", "leverans fördröjd:", "fördröjd:"),
        headers=("x-ms-exchange-message-is-ndr",),
        returned=("originalmeddelandets rubriker:", "ursprungliga meddelanderubriker:"),
        gave_up=(
            "kunde inte levereras",
            "det gick inte att leverera",
            "leveransen misslyckades",
        ),
        still_trying=(
            "har inte levererats än",
            "leveransförsöken fortsätter",
            "fortsätter att försöka leverera",
            "leveransen har fördröjts",
            "är fördröjd",
        ),
    ),
    MtaFamily(
        name="Gmail / Google Workspace",
        example="Delivery to the following recipient failed permanently: kontakt@kommun.se",
        starts=(
            "delivery to the following recipient failed permanently",
            "delivery to the following recipients failed permanently",
            "delivery to the following recipient has been delayed",
            "there was a problem delivering your message to",
            "we're writing to let you know that the group you tried to contact",
        ),
        hinted_starts=("your message wasn't delivered to", "your message has been delayed"),
        senders=("mailer-daemon@googlemail.com", "mailer-daemon@google.com"),
        subjects=("delivery status notification",),
        headers=("x-gm-message-state",),
        returned=("----- original message -----", "----- message header follows -----"),
        gave_up=("failed permanently", "your message wasn't delivered"),
        still_trying=(
            "has been delayed",
            "will be retried for",
            "will retry for",
            "you do not need to resend your message",
        ),
    ),
    MtaFamily(
        name="Outlook.com / Hotmail",
        example="This is an automatically generated Delivery Status Notification. "
        "Delivery to the following recipients failed.",
        starts=("this is an automatically generated delivery status notification",),
        headers=("x-message-delivery", "x-message-info"),
        subjects=("delivery status notification (failure)", "delivery status notification (delay)"),
        gave_up=(
            "delivery to the following recipients failed",
            "delivery status notification (failure)",
        ),
        still_trying=(
            "delivery to the following recipients has been delayed",
            "this is a warning message only",
            "delivery status notification (delay)",
        ),
    ),
    MtaFamily(
        name="Zoho",
        example="This message was created automatically by mail delivery. Host not reachable.",
        hinted_starts=("this message was created automatically by mail delivery",),
        headers=("x-zohomail",),
        returned=("received: from mail.zoho.com by mx.zohomail.com",),
    ),
    MtaFamily(
        name="Amazon SES / WorkMail",
        example="An error occurred while trying to deliver the mail to the following recipients:",
        starts=(
            "an error occurred while trying to deliver the mail to the following recipients",
            "the following message to <",
        ),
        hinted_starts=("this message could not be delivered.", "technical report:"),
        headers=("x-ses-outgoing", "x-amz-sns-message-id"),
        gave_up=("delivery expired",),
    ),
    MtaFamily(
        name="SendGrid",
        example="This is an automatically generated message from SendGrid.",
        starts=("this is an automatically generated message from sendgrid",),
        senders=("sendgrid.net",),
    ),
    MtaFamily(
        name="Mailgun",
        example="Delivery to the following recipient failed permanently (sent by Mailgun).",
        hinted_starts=("delivery to the following recipient failed",),
        senders=("mailgun",),
        headers=("x-mailgun-sid",),
    ),
    MtaFamily(
        name="Courier",
        example="This is a delivery status notification from mx.example.se, running the "
        "Courier mail server. UNDELIVERABLE MAIL: Your message to the following recipients "
        "cannot be delivered:",
        starts=("running the courier mail server",),
        hinted_starts=("undeliverable mail", "delays in delivering your message"),
        senders=("courier mail server at",),
        subjects=("notice: mail delivery status.", "warning: delayed mail."),
        gave_up=("undeliverable mail", "cannot be delivered:"),
        still_trying=("delays in delivering your message", "warning: delayed mail."),
    ),
    MtaFamily(
        name="HCL/IBM Domino (Lotus Notes)",
        example="Your message Subject: Fråga was not delivered to: kontakt@kommun.se because: "
        "User kontakt not listed in Domino Directory",
        starts=("------- failure reasons", "not listed in domino directory"),
        hinted_starts=("was not delivered to:", "your message"),
        subjects=("delivery failure:", "delivery_failure:", "undeliverable message"),
        returned=("------- returned message --------",),
        gave_up=("was not delivered to", "------- failure reasons"),
    ),
    MtaFamily(
        name="Novell/Micro Focus GroupWise",
        example="Message status - undeliverable. The message that you sent was undeliverable "
        "to the following: kontakt (Mailbox not found)",
        starts=(
            "the message that you sent was undeliverable to the following",
            "the message that you sent has been delayed",
        ),
        subjects=("message status - undeliverable", "message status - delayed"),
        gave_up=("was undeliverable to the following", "message status - undeliverable"),
        still_trying=("has been delayed", "message status - delayed"),
    ),
    MtaFamily(
        name="Mimecast",
        example="Your message couldn't be delivered to the recipients shown below. "
        "550 Envelope rejected (Mimecast)",
        hinted_starts=("your message couldn't be delivered", "envelope rejected"),
        senders=("mimecast",),
        headers=("x-mc-unique", "x-mimecast-spam-score"),
        gave_up=("couldn't be delivered",),
    ),
    MtaFamily(
        name="Proofpoint",
        example="(Sendmail-based) ----- The following addresses had permanent fatal errors "
        "----- <kontakt@kommun.se> (reason: 550 5.7.1 Message rejected by Proofpoint)",
        hinted_starts=("the following addresses had permanent fatal errors",),
        headers=("x-proofpoint-virus-version", "x-proofpoint-spam-details"),
        gave_up=("permanent fatal errors",),
    ),
    MtaFamily(
        name="Barracuda",
        example="Your message to: kontakt@kommun.se was blocked by our Spam Firewall.",
        hinted_starts=("your message to:",),
        subjects=("our bulk email filter",),
        headers=("x-barracuda-connect", "x-barracuda-spam-status"),
        gave_up=("blocked by our", "was not delivered"),
    ),
    MtaFamily(
        name="Sun/Oracle Messaging Server",
        example="This report relates to a message you sent with the following header fields:",
        starts=("this report relates to a message you sent with the following header fields",),
        subjects=("delivery notification:",),
        gave_up=("your message cannot be delivered",),
        still_trying=("delivery has been delayed", "enqueued and undeliverable for"),
    ),
    MtaFamily(
        name="OpenSMTPD",
        example="This is the MAILER-DAEMON, please DO NOT REPLY to this email. An error has "
        "occurred while attempting to deliver a message for the following list of recipients:",
        starts=("this is the mailer-daemon, please do not reply to this",),
        returned=("below is a copy of the original message:",),
        gave_up=("an error has occurred while attempting to deliver a message",),
        still_trying=(
            "a message is delayed for more than",
            "this is only a temporary failure report",
            "you do not need to re-send the message",
        ),
    ),
    MtaFamily(
        name="Other filters and gateways (McAfee, InterScan, MailMarshal, IMail, DragonFly, "
        "Facebook, Apache James, Activehunter, PowerMTA, MailFoundry)",
        example="--- The following addresses had delivery problems ---",
        starts=(
            "--- the following addresses had delivery problems ---",
            "----- the following addresses had delivery problems -----",
            "----- non-delivered information -----",
            "body of message generated response:",
            "the following recipients were affected:",
            "this is the dragonfly mail agent",
            "this message was created automatically by facebook",
            "hello, this is the mail server on",
            "unable to deliver message to the following address",
            "we had trouble delivering your message. full details follow:",
            "your message could not be sent.",
            "-------server message",
            "your mail message to the following address",
            "unfortunately, your mail was not delivered to the following address",
            "unable to deliver your message to the following addresses",
            "this is the mail delivery agent at",
            "this is the machine generated message from mail service",
        ),
        hinted_starts=("error message below:", "unable to deliver message to:"),
        subjects=("[bounce]", "undeliverable mail", "mail could not be delivered"),
        returned=("original message follows.", "message headers follow", "-------original message"),
        gave_up=("could not deliver for the last",),
    ),
    MtaFamily(
        name="Mobile carriers (au/EZweb, KDDI, NTT docomo, Verizon, Biglobe)",
        example="The user(s) account is disabled. <user@ezweb.ne.jp>: 550 user unknown",
        starts=(
            "the user(s) account is disabled",
            "the user(s) account is temporarily over quota",
            "the user(s) account is temporarily limited",
            "each of the following recipients was rejected by a remote mail server",
            "your mail sent on:",
            "your mail attempted to be delivered on:",
            "your message was not delivered within",
        ),
        hinted_starts=("message could not be delivered to mobile", "error message below:"),
        senders=(
            "ezweb.ne.jp",
            "au.com",
            "dion.ne.jp",
            "vtext.com",
            "vzwpix.com",
            "docomo.ne.jp",
            "biglobe",
        ),
        subjects=("mail system error - returned mail",),
        gave_up=("your message was not delivered within",),
    ),
)

# Statements every family's wording shares (RFC 3464 human-readable parts and their
# translations); kept apart so that the per-family entries stay about one family.
GENERIC_GAVE_UP: tuple[str, ...] = (
    "gave up",
    "giving up",
    "have given up",
    "has given up",
    "will not be retried",
    "no further attempts will be made",
    "permanently failed",
    "permanent failure",
    "permanent error",
    "delivery time expired",
    "message expired",
    "too long in the queue",
    "has been in the queue too long",
    "unable to deliver message after multiple retries",
    "was not reachable within the allowed queue period",
)
GENERIC_STILL_TRYING: tuple[str, ...] = (
    "this is a warning",
    "you do not need to resend",
    "will be retried",
    "will retry",
    "will continue to try",
    "will keep trying",
    "will try again",
    "still being retried",
    "delivery will continue",
    "not yet been delivered",
    "kommer att försöka igen",
    "leveransen är försenad",
    "försenad leverans",
)


def _alternation(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for many literal phrases, as a trie so each position is tried once.

    A flat alternation of some fifty phrases made the outcome ladder three times slower
    than the rest of classify; the trie form is as fast as a single literal. A longer
    phrase wins over its own prefix, like the flat alternation sorted by length.
    """
    trie: dict[str, dict[str, object]] = {}
    for phrase in set(phrases):
        node = trie
        for char in phrase:
            node = node.setdefault(char, {})  # type: ignore[assignment]
        node[""] = {}
    return re.compile(_trie_regex(trie))


def _trie_regex(node: dict[str, dict[str, object]]) -> str:
    branches = [re.escape(c) + _trie_regex(child) for c, child in node.items() if c]  # type: ignore[arg-type]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if "" in node else body


def _all(field: str) -> tuple[str, ...]:
    return tuple(p for family in FAMILIES for p in getattr(family, field))


STARTS = _alternation(_all("starts"))
HINTED_STARTS = _alternation(_all("hinted_starts"))
RETURNED = _alternation(_all("returned"))
GAVE_UP = _alternation(_all("gave_up") + GENERIC_GAVE_UP)
STILL_TRYING = _alternation(_all("still_trying") + GENERIC_STILL_TRYING)
_STARTED_BY = {p: f for f in reversed(FAMILIES) for p in f.starts}
_HINTED_BY: dict[str, tuple[MtaFamily, ...]] = {}
for _family in FAMILIES:
    for _phrase in _family.hinted_starts:
        _HINTED_BY[_phrase] = (*_HINTED_BY.get(_phrase, ()), _family)


def _index(field: str) -> dict[str, tuple[MtaFamily, ...]]:
    index: dict[str, tuple[MtaFamily, ...]] = {}
    for family in FAMILIES:
        for value in getattr(family, field):
            index[value] = (*index.get(value, ()), family)
    return index


_BY_SENDER = _index("senders")
_BY_SUBJECT = _index("subjects")
_BY_HEADER = _index("headers")
_SENDERS = _alternation(tuple(_BY_SENDER))
_SUBJECTS = _alternation(tuple(_BY_SUBJECT))


@lru_cache(maxsize=8)
def folded(text: str) -> str:
    """Lower case with every run of white space as one space: how phrases are matched."""
    return " ".join(text.lower().split())


def hinted_families(
    from_text: str, subject: str, header_names: frozenset[str]
) -> frozenset[MtaFamily]:
    """Families whose own sender, subject or header the message carries."""
    found = {f for m in _SENDERS.finditer(from_text.lower()) for f in _BY_SENDER[m.group(0)]}
    found |= {f for m in _SUBJECTS.finditer(subject.lower()) for f in _BY_SUBJECT[m.group(0)]}
    found |= {f for h in header_names & _BY_HEADER.keys() for f in _BY_HEADER[h]}
    return frozenset(found)


def notice_family(text: str, hints: Callable[[], frozenset[MtaFamily]]) -> MtaFamily | None:
    """The family whose notice this text opens with, or None when no template sentence is in it.

    A template sentence of ``starts`` decides alone; one of ``hinted_starts`` only for a
    family among ``hints()``, which is asked only then (it reads headers and subject).
    """
    found = STARTS.search(text)
    if found:
        return _STARTED_BY[found.group(0)]
    matches = [m.group(0) for m in HINTED_STARTS.finditer(text)]
    if not matches:
        return None
    hinted = hints()
    for phrase in matches:
        for family in _HINTED_BY[phrase]:
            if family in hinted:
                return family
    return None


def returned_copy_start(text: str) -> int | None:
    """Where a family's marker says the copy of the returned message begins, if anywhere."""
    found = RETURNED.search(text)
    return found.start() if found else None

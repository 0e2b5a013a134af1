"""Delivery reports by MTA family: notices written from each family's template sentences.

None of these is a copy of a real notice: each is built from the sentences the family's
templates use (how a notice starts, where the returned copy begins, what says given up
or still trying), with a probe-like original and made-up hosts. Most carry no RFC 3464
part, which is what makes them hard.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.domain.bounce import mta_family
from monitor.domain.classify import classify
from monitor.domain.mailparse import parse_message
from monitor.domain.model import MessageKind
from monitor.domain.mta_families import FAMILIES

K = MessageKind
PROBE = (
    "From: Anna Berg <svar+abcdefghij@kontroll.example.org>\n"
    "To: kontakt@kommun.example.se\n"
    "Subject: Fråga om bygglov\n"
    "Message-ID: <probe.abcdefghij@kontroll.example.org>\n\n"
    "Hej! Behöver jag bygglov för en altan? Vänliga hälsningar, Anna Berg\n"
)


def _mail(headers: str, body: str) -> bytes:
    text = headers.strip() + "\n\n" + body.strip() + "\n"
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


# (family, headers, body, kind, permanent)
CASES = [
    (
        "Postfix",
        "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
        "Subject: Undelivered Mail Returned to Sender",
        "This is the mail system at host mx.example.org.\n\nI'm sorry to have to inform you "
        "that your message could not\nbe delivered to one or more recipients.\n\n"
        "<kontakt@kommun.example.se>: host mx.kommun.example.se said: 550 5.1.1 "
        "<kontakt@kommun.example.se>: Recipient address rejected: User unknown\n\n" + PROBE,
        K.BOUNCE,
        True,
    ),
    (
        "Postfix",
        "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
        "Subject: Delayed Mail (still being retried)",
        "This is the mail system at host mx.example.org.\n\n####\n# THIS IS A WARNING ONLY. "
        "YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n####\n\nYour message could not be "
        "delivered for more than 4 hour(s).\nIt will be retried until it is 5 day(s) old.\n\n"
        "<kontakt@kommun.example.se>: connect to mx.kommun.example.se: Connection timed out\n",
        K.DELAY,
        None,
    ),
    (
        "Sendmail",
        "From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.net>\n"
        "Subject: Returned mail: see transcript for details",
        "The original message was received at Mon, 2 Jun 2025 10:00:00 +0200\n"
        "from kontroll.example.org [192.0.2.20]\n\n"
        "   ----- The following addresses had permanent fatal errors -----\n"
        "<kontakt@kommun.example.se>\n    (reason: 550 5.1.1 User unknown)\n\n"
        "   ----- Transcript of session follows -----\n... while talking to mx:\n"
        ">>> RCPT To:<kontakt@kommun.example.se>\n<<< 550 5.1.1 User unknown\n\n"
        "   ----- Original message follows -----\n" + PROBE,
        K.BOUNCE,
        True,
    ),
    (
        "Sendmail",
        "From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.net>\n"
        "Subject: Warning: could not send message for past 4 hours",
        "    **********************************************\n"
        "    **      THIS IS A WARNING MESSAGE ONLY      **\n"
        "    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n"
        "    **********************************************\n\n"
        "The original message was received at Mon, 2 Jun 2025 10:00:00 +0200\n\n"
        "   ----- Transcript of session follows -----\n"
        "<kontakt@kommun.example.se>... Deferred: Connection timed out\n"
        "Warning: message still undelivered after 4 hours\n"
        "Will keep trying until message is 5 days old\n",
        K.DELAY,
        None,
    ),
    (
        "Sendmail",  # a queue that gave up: 4.x.x, but the notice says it is deleted
        "From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.net>\n"
        "Subject: Returned mail: Cannot send message for 5 days",
        "The original message was received at Mon, 2 Jun 2025 10:00:00 +0200\n\n"
        "   ----- Transcript of session follows -----\n"
        "451 4.4.1 reply: read error from mx.kommun.example.se.\n"
        "Message could not be delivered for 5 days\nMessage will be deleted from queue\n",
        K.BOUNCE,
        False,
    ),
    (
        "Exim",  # no RFC 3464 part and Auto-Submitted: still a delivery report
        "From: Mail Delivery System <Mailer-Daemon@mx.kommun.example.se>\n"
        "Auto-Submitted: auto-replied\n"
        "Subject: Mail delivery failed: returning message to sender",
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        "  kontakt@kommun.example.se\n    retry timeout exceeded\n\n"
        "------ This is a copy of the message, including all the headers. ------\n" + PROBE,
        K.BOUNCE,
        False,
    ),
    (
        "Exim",
        "From: Mail Delivery System <Mailer-Daemon@mx.kommun.example.se>\n"
        "Auto-Submitted: auto-replied\n"
        "Subject: Warning: message 1uAbCd-000123-Xy delayed 24 hours",
        "This message was created automatically by mail delivery software.\n"
        "A message that you sent has not yet been delivered to one or more of its\n"
        "recipients after more than 24 hours on the queue on mx.kommun.example.se.\n\n"
        "  kontakt@kommun.example.se\n    Delay reason: SMTP error from remote mail server "
        "after RCPT TO: 451 4.7.1 Greylisted\n\n"
        "No action is required on your part. Delivery attempts will continue for\n"
        "some time, and this warning may be repeated at intervals if the message\n"
        "remains undelivered. Eventually the mail delivery software will give up,\n"
        "and when that happens, the message will be returned to you.\n",
        K.DELAY,
        None,
    ),
    (
        "qmail",
        "From: MAILER-DAEMON@mail.kommun.example.se\nSubject: failure notice",
        "Hi. This is the qmail-send program at mail.kommun.example.se.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        "<kontakt@kommun.example.se>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        "--- Below this line is a copy of the message.\n\n" + PROBE,
        K.BOUNCE,
        True,
    ),
    (
        "qmail",  # gave up after retrying: the words say so, no status code at all
        "From: MAILER-DAEMON@mail.kommun.example.se\nSubject: failure notice",
        "Hi. This is the qmail-send program at mail.kommun.example.se.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
        "<kontakt@kommun.example.se>:\nConnected to 192.0.2.9 but connection died.\n"
        "I'm not going to try again; this message has been in the queue too long.\n",
        K.BOUNCE,
        False,
    ),
    (
        "Exchange 2003",  # old Exchange: no DSN part, sender is a person-like display name
        "From: System Administrator <admin@kommun.example.se>\n"
        "Subject: Undeliverable: Fråga om bygglov\nX-MimeOLE: Produced By Microsoft Exchange",
        "Your message\n\n  To:      kontakt@kommun.example.se\n  Subject: Fråga om bygglov\n\n"
        "did not reach the following recipient(s):\n\n"
        "kontakt@kommun.example.se on Mon, 2 Jun 2025 10:00:00 +0200\n"
        "    The e-mail account does not exist at the organization this message was sent to.\n"
        "    <exch.kommun.example.se #5.1.1>\n",
        K.BOUNCE,
        True,
    ),
    (
        "Exchange 2003",
        "From: postmaster@kommun.example.se\nSubject: Delivery delayed:Fråga om bygglov",
        "Delivery is delayed to these recipients or groups:\n\n"
        "kontakt@kommun.example.se\n\nSubject: Fråga om bygglov\n\n"
        "This message hasn't been delivered yet. Delivery will continue to be attempted.\n\n"
        "The server will keep trying to deliver this message for the next 1 days. You'll "
        "be notified if the message can't be delivered by that time.\n",
        K.DELAY,
        None,
    ),
    (
        "Microsoft 365 / Exchange Online (English)",
        "From: Microsoft Outlook <MicrosoftExchange329e71ec88ae@kommun.example.se>\n"
        "Subject: Undeliverable: Fråga om bygglov",
        "Your message to kontakt@kommun.example.se couldn't be delivered.\n"
        "kontakt wasn't found at kommun.example.se.\n\nAction Required\nUnknown To address\n\n"
        "More Info for Email Admins\nStatus code: 550 5.1.10\n\nOriginal Message Headers:\n"
        + PROBE,
        K.BOUNCE,
        True,
    ),
    (
        "Microsoft 365 / Exchange (Swedish)",
        "From: Microsoft Outlook <MicrosoftExchange329e71ec88ae@kommun.example.se>\n"
        "Subject: Kan inte levereras: Fråga om bygglov",
        "Ditt meddelande till kontakt@kommun.example.se kunde inte levereras.\n"
        "Det gick inte att hitta kontakt på kommun.example.se.\n\nÅtgärd krävs\n\n"
        "Mer information för e-postadministratörer\nStatuskod: 550 5.1.10\n",
        K.BOUNCE,
        True,
    ),
    (
        "Microsoft 365 / Exchange (Swedish)",
        "From: postmaster@kommun.example.se\nSubject: Leverans fördröjd: Fråga om bygglov",
        "Leveransen har fördröjts till följande mottagare eller grupper:\n\n"
        "kontakt@kommun.example.se\n\nMeddelandet har inte levererats än. "
        "Leveransförsöken fortsätter.\n\nDiagnostikinformation för administratörer:\n"
        "Servern returnerade '400 4.4.7 Message delayed'\n",
        K.DELAY,
        None,
    ),
    (
        "Gmail / Google Workspace",
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
        "Subject: Delivery Status Notification (Failure)",
        "Delivery to the following recipient failed permanently:\n\n"
        "     kontakt@kommun.example.se\n\nTechnical details of permanent failure:\n"
        "The email account that you tried to reach does not exist. 550 5.1.1\n\n"
        "----- Original message -----\n" + PROBE,
        K.BOUNCE,
        True,
    ),
    (
        "Gmail / Google Workspace",
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
        "Subject: Delivery Status Notification (Delay)",
        "Message delayed\n\nThere was a temporary problem delivering your message to "
        "kontakt@kommun.example.se. Gmail will retry for 46 more hours. You'll be notified "
        "if the delivery fails permanently.\n\nYour message has been delayed.\n",
        K.DELAY,
        None,
    ),
    (
        "qmail",  # Yahoo: qmail-style copy marker, its own header
        "From: MAILER-DAEMON@yahoo.example.com\nSubject: Failure Notice\nX-YMailISG: abc",
        "Sorry, we were unable to deliver your message to the following address.\n\n"
        "<kontakt@kommun.example.se>:\nRemote host said: 550 5.1.1 unknown user\n\n"
        "--- Below this line is a copy of the message.\n" + PROBE,
        K.BOUNCE,
        True,
    ),
    (
        "Outlook.com / Hotmail",
        "From: postmaster@outlook.example.com\nSubject: Delivery Status Notification (Failure)\n"
        "X-Message-Delivery: Vj0xLjE7",
        "This is an automatically generated Delivery Status Notification.\n\n"
        "Delivery to the following recipients failed.\n\n       kontakt@kommun.example.se\n",
        K.BOUNCE,
        True,
    ),
    (
        "Zoho|Exim",  # Zoho's notice opens like Exim's
        "From: mailer-daemon@mx.zohomail.example.com\nSubject: Undelivered Mail\nX-ZohoMail: Si",
        "This message was created automatically by mail delivery software.\n"
        "A message that you sent could not be delivered to one or more of its recipients. "
        "This is a permanent error.\n\nkontakt@kommun.example.se, ERROR CODE :550 - "
        "Host not reachable\n",
        K.BOUNCE,
        True,
    ),
    (
        "Amazon SES / WorkMail",
        "From: MAILER-DAEMON@amazonses.example.com\nSubject: Delivery Status Notification "
        "(Failure)",
        "An error occurred while trying to deliver the mail to the following recipients:\n"
        "kontakt@kommun.example.se\n",
        K.BOUNCE,
        True,
    ),
    (
        "SendGrid",
        "From: Mail Delivery System <apps@sendgrid.example.net>\n"
        "Subject: Undelivered Mail Returned to Sender",
        "This is an automatically generated message from SendGrid.\n\n"
        "I'm sorry to have to tell you that your message was not able to be delivered to "
        "one of its intended recipients.\n\n550 5.1.1 kontakt@kommun.example.se: user unknown\n",
        K.BOUNCE,
        True,
    ),
    (
        "Mailgun",
        "From: Mailgun <postmaster@mailgun.example.org>\nSubject: Delivery failure\n"
        "X-Mailgun-Sid: WyIxYjQ0",
        "Delivery to the following recipient failed.\n kontakt@kommun.example.se"
        "\n550 5.1.1 mailbox does not exist\n",
        K.BOUNCE,
        True,
    ),
    (
        "Courier",
        "From: Courier mail server at mx.kommun.example.se <@>\n"
        "Subject: NOTICE: mail delivery status.",
        "This is a delivery status notification from mx.kommun.example.se, running the "
        "Courier mail server, version 1.1.\n\n"
        "UNDELIVERABLE MAIL\n\nYour message to the following recipients cannot be "
        "delivered:\n\n<kontakt@kommun.example.se>:\n<<< 550 5.1.1 No such user\n",
        K.BOUNCE,
        True,
    ),
    (
        "Courier",
        "From: Courier mail server at mx.kommun.example.se <@>\nSubject: WARNING: delayed mail.",
        "This is a delivery status notification from mx.kommun.example.se, running the "
        "Courier mail server, version 1.1.\n\nDELAYS IN DELIVERING YOUR MESSAGE\n\n"
        "This is an automatic notice. Delivery attempts will continue.\n",
        K.DELAY,
        None,
    ),
    (
        "HCL/IBM Domino",
        "From: Postmaster <postmaster@kommun.example.se>\n"
        "Subject: DELIVERY FAILURE: User kontakt not listed in Domino Directory",
        "Your message\n\n  Subject: Fråga om bygglov\n\nwas not delivered to:\n\n"
        "  kontakt@kommun.example.se\n\nbecause:\n\n  User kontakt (kontakt@kommun.example.se) "
        "not listed in Domino Directory\n",
        K.BOUNCE,
        True,
    ),
    (
        "Novell/Micro Focus GroupWise",
        "From: postmaster@gw.kommun.example.se\nSubject: Message status - undeliverable",
        "The message that you sent was undeliverable to the following:\n"
        "\tkontakt (Mailbox not found)\n\nPossible causes: the user does not exist.\n",
        K.BOUNCE,
        True,
    ),
    (
        "Mimecast",
        "From: postmaster@kommun.example.se\nSubject: Undeliverable Message\nX-MC-Unique: Ab12Cd34",
        "Your message couldn't be delivered to the recipients shown below.\n\n"
        "kontakt@kommun.example.se: 550 Envelope rejected - invalid recipient\n",
        K.BOUNCE,
        True,
    ),
    (
        "Sendmail",  # Proofpoint's appliance speaks through its Sendmail templates
        "From: Mail Delivery Subsystem <MAILER-DAEMON@pps.kommun.example.se>\n"
        "Subject: Returned mail: see transcript for details\n"
        "X-Proofpoint-Virus-Version: vendor=nai engine=6",
        "The original message was received at Mon, 2 Jun 2025 10:00:00 +0200\n\n"
        "   ----- The following addresses had permanent fatal errors -----\n"
        "<kontakt@kommun.example.se>\n    (reason: 550 5.7.1 Message rejected by policy)\n",
        K.BOUNCE,
        True,
    ),
    (
        "Barracuda",
        "From: postmaster@barracuda.kommun.example.se\n"
        "Subject: Message you sent blocked by our bulk email filter",
        "Your message to: kontakt@kommun.example.se\nwas blocked by our Spam Firewall. "
        "The email you sent with the following subject has NOT BEEN DELIVERED:\n\n"
        "Subject: Fråga om bygglov\n",
        K.BOUNCE,
        True,
    ),
    (
        "Exim",  # Sophos appliances run Exim templates
        "From: Mail Delivery System <Mailer-Daemon@sophos.kommun.example.se>\n"
        "Subject: Mail delivery failed: returning message to sender",
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        "  kontakt@kommun.example.se\n    550 5.1.1 Unknown recipient\n",
        K.BOUNCE,
        True,
    ),
    (
        "Sun/Oracle Messaging Server",
        "From: Internet Mail Delivery <postmaster@ms.kommun.example.se>\n"
        "Subject: Delivery Notification: Delivery has been delayed",
        "This report relates to a message you sent with the following header fields:\n\n"
        "  Subject: Fråga om bygglov\n\nYour message has been enqueued and undeliverable for "
        "1 day to the following recipients:\n\n  Recipient address: kontakt@kommun.example.se\n",
        K.DELAY,
        None,
    ),
    (
        "OpenSMTPD",
        "From: Mailer Daemon <MAILER-DAEMON@smtpd.example.net>\n"
        "Subject: Delivery status notification: error",
        "    Hi!\n\n    This is the MAILER-DAEMON, please DO NOT REPLY to this email.\n\n"
        "    An error has occurred while attempting to deliver a message for\n"
        "    the following list of recipients:\n\n"
        "kontakt@kommun.example.se: 550 5.1.1 Invalid recipient\n\n"
        "    Below is a copy of the original message:\n" + PROBE,
        K.BOUNCE,
        True,
    ),
    (
        "Mobile carriers",
        "From: Postmaster@ezweb.example.ne.jp\nSubject: Mail System Error - Returned Mail",
        "The user(s) account is disabled.\n\n<user@ezweb.example.ne.jp>: 550 user unknown\n",
        K.BOUNCE,
        True,
    ),
    (
        "Mobile carriers",
        "From: post_master@vtext.com\nSubject: Re: Fråga om bygglov",
        "Error: Invalid user address\nError message below:\n"
        "550 - Requested action not taken: no such user here\n",
        K.BOUNCE,
        True,
    ),
    (
        "Other filters and gateways",
        "From: MAILER-DAEMON@gw.example.net\nSubject: Delivery failure",
        "Unable to deliver message to the following address(es).\n\n"
        "<kontakt@kommun.example.se>:\n550 5.1.1 mailbox unavailable\n\n"
        "--- Original message follows.\n" + PROBE,
        K.BOUNCE,
        True,
    ),
]


@pytest.mark.parametrize(("family", "headers", "body", "kind", "permanent"), CASES)
def test_notice_written_from_a_familys_markers_is_classified_by_its_own_statement(
    family: str, headers: str, body: str, kind: MessageKind, permanent: bool | None
) -> None:
    msg = parse_message(_mail(headers, body))
    result = classify(msg)
    found = mta_family(msg)
    assert (result.kind, result.permanent) == (kind, permanent), result.reasons
    assert found is not None and found.name.startswith(tuple(family.split("|"))), found


def test_every_family_has_a_synthetic_notice() -> None:
    named = {name for case in CASES for name in case[0].split("|")}
    covered = {f.name for f in FAMILIES if f.name.startswith(tuple(named))}
    # Proofpoint's notices are Sendmail's (a case above carries its header)
    assert covered == {f.name for f in FAMILIES} - {"Proofpoint"}


@pytest.mark.parametrize(
    ("headers", "body", "kind"),
    [
        # a person answering a notice writes about it; the template sentence is quoted
        (
            "From: Lisa Ek <lisa.ek@kommun.example.se>\nSubject: SV: Undeliverable: Fråga",
            "Hej, vi kollar adressen.\n\nDelivery has failed to these recipients "
            "or groups:\nkontakt@kommun.example.se\n",
            K.HUMAN,
        ),
        # a forwarded notice is still the notice, with the probe's copy in it
        (
            "From: Lisa Ek <lisa.ek@kommun.example.se>\nSubject: VB: Undeliverable: Fråga",
            "Se nedan.\n\nDelivery has failed to these recipients "
            "or groups:\nkontakt@kommun.example.se\n550 5.1.1 User unknown\n",
            K.BOUNCE,
        ),
        # a person who mentions "this is the mail system" in passing is not a notice
        (
            "From: Lisa Ek <lisa.ek@kommun.example.se>\nSubject: Fråga om e-post",
            "Hej! Vi byter e-postsystem i höst, så ditt mejl kan dröja. /Lisa",
            K.HUMAN,
        ),
        # a plain sentence of one family counts only with that family's own signs
        (
            "From: Lisa Ek <lisa.ek@kommun.example.se>\nSubject: Paketet",
            "Hej! Your message couldn't be delivered, skrev posten. Vi hämtar det själva. /Lisa",
            K.HUMAN,
        ),
    ],
)
def test_template_sentences_make_a_notice_only_when_the_mail_is_not_an_answer(
    headers: str, body: str, kind: MessageKind
) -> None:
    assert classify(parse_message(_mail(headers, body))).kind == kind


@pytest.mark.parametrize(
    ("action", "body", "kind"),
    [
        # the notice's own statement outranks the Action it carries
        ("delayed", "This is a permanent error; I've given up.", K.BOUNCE),
        ("failed", "This is a warning only. You do not need to resend your message.", K.DELAY),
        # a statement on both sides says nothing: the Action decides
        ("delayed", "Envelope expired. This is only a temporary failure report.", K.DELAY),
        ("failed", "Message expired. This is a warning only.", K.BOUNCE),
        # no statement: the Action decides
        ("delayed", "Delivery report follows.", K.DELAY),
        ("failed", "Delivery report follows.", K.BOUNCE),
    ],
)
def test_failed_or_delayed_follows_the_statement_then_the_action(
    action: str, body: str, kind: MessageKind
) -> None:
    raw = (
        "From: MAILER-DAEMON@mx.example.org\nSubject: Delivery report\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain\n\n{body}\n\n--b\n"
        "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
        f"Final-Recipient: rfc822; kontakt@kommun.example.se\nAction: {action}\n"
        "Status: 4.4.7\n\n--b--\n"
    )
    assert classify(parse_message(raw.replace("\n", "\r\n").encode())).kind == kind


@pytest.mark.parametrize(
    ("subject", "body", "kind"),
    [
        ("Undeliverable: Fråga", "Remote server returned 451 4.4.0 temporary failure", K.BOUNCE),
        ("Delivery delayed: Fråga", "Remote server returned 451 4.4.0", K.DELAY),
        ("Delivery report", "Remote server returned 550 5.1.1 unknown", K.BOUNCE),
        # a 4.x.x alone does not say still trying; without delay wording it failed
        ("Delivery report", "Remote server returned 451 4.3.0 queue file write error", K.BOUNCE),
        ("Delivery report", "Remote server returned 451 4.4.1; delivery will continue", K.DELAY),
    ],
)
def test_without_statement_or_action_the_subject_then_the_status_class_decide(
    subject: str, body: str, kind: MessageKind
) -> None:
    headers = f"From: MAILER-DAEMON@mx.example.org\nReturn-Path: <>\nSubject: {subject}"
    assert classify(parse_message(_mail(headers, body))).kind == kind


def test_the_documented_family_table_names_every_family_with_its_example() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "classification.md").read_text(
        encoding="utf-8"
    )
    missing = [f.name for f in FAMILIES if f.name not in docs or f.example not in docs]
    assert missing == []

"""classify: one kind per message, decided by the signals that generalise."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from monitor.domain.bounce import blames_address
from monitor.domain.classify import classify, new_text, ticket_number
from monitor.domain.mailparse import parse_message
from monitor.domain.model import Classification, DeliveryStatus, MessageKind, ParsedMessage

MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"
K = MessageKind


def _classify_file(name: str) -> Classification:
    return classify(parse_message((MAIL / name).read_bytes()))


@pytest.mark.parametrize(
    ("name", "kind", "permanent", "ticket"),
    [
        ("human-outlook-sv-with-x-auto-response-suppress.eml", K.HUMAN, None, None),
        ("human-starts-tack-for-ditt-mejl-then-answers.eml", K.HUMAN, None, None),
        ("human-ticket-system-answer-keeps-arende-tag.eml", K.HUMAN, None, "2026-004512"),
        ("human-reply-through-ticket-system-with-precedence-bulk.eml", K.HUMAN, None, "48213"),
        ("auto-reply-exchange-automatiskt-svar.eml", K.AUTO_REPLY, None, None),
        ("auto-reply-franvaro-subject-without-headers.eml", K.AUTO_REPLY, None, None),
        ("auto-reply-noreply-ack-wording-without-headers.eml", K.AUTO_REPLY, None, None),
        ("auto-reply-re-subject-ack-body-only.eml", K.AUTO_REPLY, None, None),
        ("auto-reply-x-autoreply-header.eml", K.AUTO_REPLY, None, None),
        ("auto-reply-out-of-office-english.eml", K.AUTO_REPLY, None, None),
        ("auto-reply-sieve-vacation-with-precedence-bulk.eml", K.AUTO_REPLY, None, None),
        ("ticket-receipt-arende-tag-auto-submitted.eml", K.TICKET_RECEIPT, None, "2026-004512"),
        ("ticket-receipt-incident-inc-english.eml", K.TICKET_RECEIPT, None, "INC0012345"),
        (
            "ticket-receipt-re-subject-without-auto-headers.eml",
            K.TICKET_RECEIPT,
            None,
            "KS 2026/118",
        ),
        ("bounce-postfix-dsn-user-unknown-is-permanent.eml", K.BOUNCE, True, None),
        ("bounce-qmail-plain-text-is-permanent.eml", K.BOUNCE, True, None),
        ("bounce-mailbox-full-5.2.2-is-not-permanent.eml", K.BOUNCE, False, None),
        ("bounce-4xx-after-queue-lifetime-is-not-permanent.eml", K.BOUNCE, False, None),
        ("bounce-exim-retry-timeout-is-not-permanent.eml", K.BOUNCE, False, None),
        ("delay-postfix-action-delayed.eml", K.DELAY, None, None),
        ("delay-sendmail-plain-text-warning.eml", K.DELAY, None, None),
        ("delivered-success-dsn-is-classified-delay.eml", K.DELAY, None, None),
        ("read-receipt-mdn-disposition-notification.eml", K.READ_RECEIPT, None, None),
        ("read-receipt-outlook-last-subject-without-report.eml", K.READ_RECEIPT, None, None),
        ("complaint-arf-feedback-report.eml", K.COMPLAINT, None, None),
        ("bulk-newsletter-list-unsubscribe.eml", K.BULK, None, None),
        ("bulk-survey-precedence-bulk-auto-generated.eml", K.BULK, None, None),
        ("bulk-phishing-with-spam-verdict.eml", K.BULK, None, None),
    ],
)
def test_own_samples_are_classified_as_their_names_say(
    name: str, kind: MessageKind, permanent: bool | None, ticket: str | None
) -> None:
    result = _classify_file(name)
    assert (result.kind, result.permanent, result.ticket_number) == (kind, permanent, ticket)
    assert result.reasons


def test_every_own_sample_is_in_the_table() -> None:
    names = {p.name for p in MAIL.glob("*.eml")}
    assert len(names) == 28


def _mail(headers: str, body: str) -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body).encode("utf-8")


@pytest.mark.parametrize(
    ("headers", "body", "kind"),
    [
        # Sv:/SV:/Re:/VB: alone are replies, not auto replies
        ("From: a@lund.se\nSubject: Sv: Fråga", "Ja, det går bra att boka.", K.HUMAN),
        ("From: a@lund.se\nSubject: VB: Fråga", "Skickar vidare till rätt person.", K.HUMAN),
        # X-Auto-Response-Suppress is a request, not a sign
        ("From: a@lund.se\nSubject: SV: Fråga\nX-Auto-Response-Suppress: All", "Ja.", K.HUMAN),
        ("From: a@lund.se\nSubject: Fråga\nAuto-Submitted: no", "Ja, det går bra.", K.HUMAN),
        ("From: a@lund.se\nSubject: Autosvar: Fråga", "Hej", K.AUTO_REPLY),
        ("From: a@lund.se\nSubject: Frånvaromeddelande", "Hej", K.AUTO_REPLY),
        ("From: a@lund.se\nSubject: Automatic reply: Q", "Hi", K.AUTO_REPLY),
        ("From: a@lund.se\nSubject: SV: Fråga\nPrecedence: auto_reply", "Tack!", K.AUTO_REPLY),
        (
            "From: a@lund.se\nSubject: SV: Fråga\nX-MS-Exchange-Inbox-Rules-Loop: a@lund.se",
            "Hej",
            K.AUTO_REPLY,
        ),
        ("From: a@lund.se\nSubject: Fråga", "Jag är ledig till 3 mars.", K.AUTO_REPLY),
        ("From: a@lund.se\nSubject: Fråga", "Det här är ett automatiskt svar.", K.AUTO_REPLY),
        ("From: a@lund.se\nSubject: Read: Question", "Your message was read.", K.READ_RECEIPT),
        ("From: a@lund.se\nSubject: Nyheter\nPrecedence: list", "Veckans nyheter.", K.BULK),
        # a delivery report wins over its own Auto-Submitted header
        (
            "From: MAILER-DAEMON@x.se\nReturn-Path: <>\nAuto-Submitted: auto-replied\n"
            "Subject: Undeliverable: Fråga",
            "Delivery has failed to these recipients: kommun@x.se\n550 5.1.1 User unknown",
            K.BOUNCE,
        ),
        # a null sender alone (Sieve vacation) is not a bounce
        ("From: a@lund.se\nReturn-Path: <>\nSubject: Auto: Fråga", "Semester.", K.AUTO_REPLY),
        # a person reporting an undelivered letter is not a bounce
        ("From: a@lund.se\nSubject: SV: Brevet kom inte fram", "Vi skickar det igen.", K.HUMAN),
    ],
)
def test_rule_table(headers: str, body: str, kind: MessageKind) -> None:
    assert classify(parse_message(_mail(headers, body))).kind == kind


def test_long_human_answer_mentioning_vacation_stays_human() -> None:
    body = (
        "Hej! Jag svarar eftersom Maria är ledig den här veckan. "
        + "Vigseln kan hållas utomhus om ni bokar förrättaren i god tid. " * 15
    )
    result = classify(parse_message(_mail("From: lisa@are.se\nSubject: Vigsel", body)))
    assert result.kind == K.HUMAN


def test_human_under_receipt_subject_from_noreply_stays_human() -> None:
    body = "Hej Camilla! Ja, ni behöver en nybyggnadskarta. Den kostar 9 450 kronor.\n"
    headers = (
        "From: Daniel via Skövde <noreply.servicedesk@skovde.se>\n"
        "Subject: Anmälan I2511-034 registrerad"
    )
    result = classify(parse_message(_mail(headers, body)))
    assert (result.kind, result.ticket_number) == (K.HUMAN, "I2511-034")


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        ("[Ärende #2026-004512] Fråga", "", "2026-004512"),
        ("[Ärende-ID: 250408-0147] Fråga", "", "250408-0147"),
        ("Din förfrågan (#48213) har tagits emot", "", "48213"),
        ("Kvitto", "Ditt ärende har fått nummer BAB 2025-000871.", "BAB 2025-000871"),
        ("Kvitto", "Diarienummer: SBN 2025/412", "SBN 2025/412"),
        ("Kvitto", "registrerat det som ärende CAS-2025-118734-K9R2.", "CAS-2025-118734-K9R2"),
        ("Fråga", "Ange i så fall ärendenumret när du skriver.", None),
        ("Fråga", "Vi har tagit emot ditt ärende och det har fått ärende-ID 12.", None),
    ],
)
def test_ticket_number_table(subject: str, body: str, expected: str | None) -> None:
    msg = parse_message(_mail(f"From: a@b.se\nSubject: {subject}", body))
    assert ticket_number(msg) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Svar.\n\nFrån: A <a@b.se>\nSkickat: idag\n\nFråga", "Svar.\n\n"),
        ("Svar.\n-----Ursprungligt meddelande-----\nFråga", "Svar.\n"),
        ("Svar.\n\nDen 2025-02-10 kl. 13:05, skrev Linnea:\n> Fråga", "Svar.\n\n"),
        ("Bara text", "Bara text"),
    ],
)
def test_new_text_stops_at_first_quote_block(text: str, expected: str) -> None:
    assert new_text(text).strip() == expected.strip()


def _report_naming(recipients: tuple[str, ...]) -> ParsedMessage:
    statuses = tuple(
        DeliveryStatus(action="failed", status="5.1.1", recipient=f"rfc822; {r}", diagnostic=None)
        for r in recipients
    )
    return replace(parse_message(b"Subject: x\r\n\r\nx\r\n"), delivery_statuses=statuses)


@pytest.mark.parametrize(
    ("named", "blamed"),
    [
        ((), True),
        (("kontakt@lund.example.invalid",), True),
        (("KONTAKT@lund.example.invalid",), True),
        (("anna.svensson@lund.example.invalid",), False),
        (("anna.svensson@lund.example.invalid", "kontakt@lund.example.invalid"), True),
    ],
)
def test_group_member_bounce_does_not_blame_the_group_address(
    named: tuple[str, ...], blamed: bool
) -> None:
    assert blames_address(_report_naming(named), "kontakt@lund.example.invalid") is blamed


_CASE_SYSTEM_ANSWER = (
    "Hej Jonas!\n\nTack för din fråga. En altan lägre än 1,8 meter kräver normalt inte "
    "bygglov om den ligger minst 4,5 meter från tomtgränsen. Ligger den närmare behöver "
    "du grannens medgivande.\n\nMed vänlig hälsning\nSara Lind\nBygglovshandläggare\n\n"
    "Det här meddelandet har skickats från vårt ärendesystem och går inte att svara på.\n"
)


@pytest.mark.parametrize(
    ("headers", "body", "kind"),
    [
        # an officer's written answer through a case system's noreply address
        (
            "From: Kommunen <noreply@kommun.example.se>\nAuto-Submitted: auto-generated\n"
            "Subject: Nytt meddelande i ditt ärende BN 2026-000412",
            _CASE_SYSTEM_ANSWER,
            K.HUMAN,
        ),
        # a unit's personal holding reply about the question itself
        (
            "From: Kulturskolan <kulturskolan@kommun.example.se>\nSubject: SV: Fiollektioner",
            "Hej Nadia,\n\ntack för ditt mejl. Vi har tagit emot din fråga om fiollektioner "
            "för din dotter och återkommer när vi vet hur många platser som finns.\n\n"
            "Vänliga hälsningar\nKulturskolan\n",
            K.HUMAN,
        ),
        # the same holding wording without a word about the question stays automatic
        (
            "From: Kommunen <info@kommun.example.se>\nSubject: SV: Fiollektioner",
            "Hej Maja!\n\nTack för ditt mejl. Vi har tagit emot din fråga och den kommer att "
            "besvaras av en handläggare så snart som möjligt, senast inom fem arbetsdagar.\n\n"
            "Vänliga hälsningar\nKommunen\nMedborgarservice\n",
            K.AUTO_REPLY,
        ),
        # a personal greeting on a registered-case receipt keeps it a receipt
        (
            "From: Kommunen <noreply@kommun.example.se>\nAuto-Submitted: auto-generated\n"
            "Subject: Vi har tagit emot ditt ärende KC-2026-04471",
            "Hej Tomas Brandt!\n\nVi har registrerat ditt ärende om fiollektioner med nummer "
            "KC-2026-04471. Vi besvarar normalt e-post inom tre arbetsdagar.\n\n"
            "Vänliga hälsningar\nKontaktcenter\n",
            K.TICKET_RECEIPT,
        ),
        # an officer's own out-of-office, signed with the officer's name, stays automatic
        (
            "From: Sara Lind <sara.lind@kommun.example.se>\nSubject: Fiollektioner",
            "Hej Jonas!\n\nJag är ledig till och med den 3 augusti och läser inte min e-post. "
            "Frågor om fiollektioner besvaras av kollegorna via kulturskolan@kommun.se.\n\n"
            "Hälsningar\nSara Lind\n",
            K.AUTO_REPLY,
        ),
        # a person answering in the thread of their own auto reply
        (
            "From: Sara Lind <sara.lind@kommun.example.se>\n"
            "Subject: SV: Automatiskt svar: Fiollektioner\n"
            "Thread-Topic: Automatiskt svar: Fiollektioner\nIn-Reply-To: <auto.1@kommun>",
            "Nu är jag tillbaka: ja, det finns platser kvar på tisdagar. /Sara",
            K.HUMAN,
        ),
        # a short iPhone answer to a receipt whose text came along without quote marks
        (
            "From: Lotta <lotta@kommun.example.se>\nSubject: SV: Ärende 2026-0213 registrerat",
            "Ja, det går bra att komma på tisdag.\n/Lotta\n\nSkickat från min iPhone\n\n"
            "26 maj 2026 kl. 09:35 skrev Kommunen <noreply@kommun.example.se>:\n\n"
            "Ditt ärende har registrerats med nummer 2026-0213. Det här är ett automatiskt "
            "svar. Vi besvarar din fråga inom fem arbetsdagar.\n",
            K.HUMAN,
        ),
    ],
)
def test_a_reply_is_judged_by_what_it_says_not_by_sender_or_thread(
    headers: str, body: str, kind: MessageKind
) -> None:
    result = classify(parse_message(_mail(headers, body)))
    assert result.kind == kind, result.reasons

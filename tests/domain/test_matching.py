"""Matching a reply to its probe: every method, their precedence and the never-rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.domain.matching import (
    MatchPolicy,
    ProbeIndex,
    base_address,
    find_tokens,
    match_message,
)
from monitor.domain.model import (
    DeliveryStatus,
    MatchMethod,
    MessageKind,
    ParsedMessage,
    ProbeCandidate,
)
from monitor.domain.subjects import normalize_subject, subject_variants

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=2)


def probe(
    token: str,
    target: str,
    subject: str,
    body: str = "",
    sent_at: datetime = T0,
) -> ProbeCandidate:
    return ProbeCandidate(
        token=token,
        target_id=target,
        target_address=target,
        reply_address=f"fraga+{token}@kontroll.example.org",
        message_id=f"<probe.{token}@kontroll.example.org>",
        subject=subject,
        body=body or f"Hej!\n\nFråga om {subject.lower()}.\n\nHälsningar\nAnna",
        sent_at=sent_at,
    )


SKOLVAL_BODY = (
    "Hej!\n\nVi flyttar till Lund i sommar och vår dotter ska börja förskoleklass i höst. "
    "Hur gör vi för att välja skola när vi ännu inte är folkbokförda i kommunen? Kan vi "
    "söka redan nu, eller måste vi vänta tills flytten är klar?\n\nMed vänliga hälsningar\n"
    "Karin Holmberg\n"
)
LUND = probe(
    "jbukgzr4dv", "kontaktcenter@lund.se", "Fråga om skolval till förskoleklass", SKOLVAL_BODY
)
MALMO = probe("ernnckrt7h", "malmostad@malmo.se", "Fråga om avgift för fritidshem")
ARE = probe("kdijo2iak5", "kommun@are.se", "Vigsel utomhus på fjället")
# Same question to another municipality: identical subject, different target.
HUDDINGE_SKOLVAL = probe(
    "ua6bsf4445", "huddinge@huddinge.se", "Fråga om skolval till förskoleklass"
)
PROBES = (LUND, MALMO, ARE, HUDDINGE_SKOLVAL)


def message(**fields: object) -> ParsedMessage:
    base = ParsedMessage(
        message_id="<reply@example.se>",
        subject="",
        from_address="handlaggare@example.net",
        from_name=None,
        return_path=None,
        to=("fraga@kontroll.example.org",),
        cc=(),
        delivered_to=(),
        in_reply_to=(),
        references=(),
        thread_topic=None,
        date=LATER,
        received_at=LATER,
        content_type="text/plain",
        report_type=None,
        headers=(),
        text="",
        html=None,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def match(
    msg: ParsedMessage, kind: MessageKind = MessageKind.HUMAN, **kw: object
) -> tuple[str | None, MatchMethod]:
    result = match_message(msg, kind, PROBES, received_at=LATER, **kw)  # type: ignore[arg-type]
    return result.probe_token, result.method


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"to": ("fraga+jbukgzr4dv@kontroll.example.org",)},
            ("jbukgzr4dv", MatchMethod.ADDRESS),
            id="token_in_to",
        ),
        pytest.param(
            {"to": ("kontaktcenter@lund.se",), "cc": ("Fraga+JBUKGZR4DV@kontroll.example.org",)},
            ("jbukgzr4dv", MatchMethod.ADDRESS),
            id="token_in_cc_upper_case",
        ),
        pytest.param(
            {
                "to": ("fraga@kontroll.example.org",),
                "delivered_to": ("fraga+ernnckrt7h@kontroll.example.org",),
            },
            ("ernnckrt7h", MatchMethod.ADDRESS),
            id="token_in_delivered_to",
        ),
        pytest.param(
            {"to": ("fragaernnckrt7h@kontroll.example.org",)},
            ("ernnckrt7h", MatchMethod.ADDRESS),
            id="retyped_address_without_plus",
        ),
        pytest.param(
            {"to": ("fraga+aaaaaaaaaa@kontroll.example.org",)},
            (None, MatchMethod.NONE),
            id="unknown_token_is_not_a_match",
        ),
        pytest.param(
            {"in_reply_to": ("<PROBE.kdijo2iak5@KONTROLL.example.org>",)},
            ("kdijo2iak5", MatchMethod.IN_REPLY_TO),
            id="in_reply_to_case_insensitive",
        ),
        pytest.param(
            {
                "in_reply_to": ("<internal-forward@lund.se>",),
                "references": (
                    "<probe.jbukgzr4dv@kontroll.example.org>",
                    "<internal-forward@lund.se>",
                ),
            },
            ("jbukgzr4dv", MatchMethod.REFERENCES),
            id="in_reply_to_is_an_internal_forward_probe_only_in_references",
        ),
        pytest.param(
            {
                "subject": "SV: VB: Re: Fråga om avgift för fritidshem",
                "from_address": "josefin@malmo.se",
            },
            ("ernnckrt7h", MatchMethod.SUBJECT),
            id="nested_prefixes_subject",
        ),
        pytest.param(
            {
                "subject": "SV: [Ärende #2026-004512] Fråga om avgift för fritidshem",
                "from_address": "noreply@malmo.se",
            },
            ("ernnckrt7h", MatchMethod.SUBJECT),
            id="ticket_tag_subject",
        ),
        pytest.param(
            {"subject": "Ärende 2026-123: Vigsel utomhus på fjället", "from_address": "x@are.se"},
            ("kdijo2iak5", MatchMethod.SUBJECT),
            id="case_number_prefix_subject",
        ),
        pytest.param(
            {
                "subject": "Ärende mottaget",
                "thread_topic": "Vigsel utomhus på fjället",
                "from_address": "crm@example.com",
            },
            ("kdijo2iak5", MatchMethod.SUBJECT),
            id="thread_topic_unique_subject_from_another_domain",
        ),
        pytest.param(
            {
                "subject": "Automatiskt svar: Fråga om skolval till förskoleklass",
                "from_address": "kontaktcenter@lund.se",
            },
            ("jbukgzr4dv", MatchMethod.SUBJECT),
            id="shared_subject_resolved_by_sender_domain",
        ),
        pytest.param(
            {
                "subject": "SV: Fråga om skolval till förskoleklass",
                "from_address": "someone@example.com",
            },
            (None, MatchMethod.NONE),
            id="shared_subject_from_unrelated_domain_is_ambiguous",
        ),
        pytest.param(
            {
                "subject": "Svar på din fråga",
                "from_address": "x@example.com",
                "text": "Hej!\n\n> Vi flyttar till Lund i sommar och vår dotter ska börja\n"
                "> förskoleklass i höst. Hur gör vi för att välja skola när vi ännu\n"
                "> inte är folkbokförda i kommunen?",
            },
            ("jbukgzr4dv", MatchMethod.QUOTED_TEXT),
            id="quoted_question_rewrapped_with_quote_marks",
        ),
        pytest.param(
            {"subject": "Tack för din fråga", "from_address": "noreply@are.se"},
            ("kdijo2iak5", MatchMethod.SENDER_WINDOW),
            id="sender_domain_of_exactly_one_probe",
        ),
        pytest.param(
            {"subject": "Tack för din fråga", "from_address": "noreply@mail.are.se"},
            ("kdijo2iak5", MatchMethod.SENDER_WINDOW),
            id="sender_subdomain_of_target_domain",
        ),
        pytest.param(
            {"subject": "Tack för din fråga", "from_address": "x@example.com"},
            (None, MatchMethod.NONE),
            id="nothing_fits_no_match",
        ),
    ],
)
def test_each_matching_path(fields: dict[str, object], expected: tuple[object, object]) -> None:
    assert match(message(**fields)) == expected


def test_address_beats_thread_headers_and_subject() -> None:
    msg = message(
        to=("fraga+ernnckrt7h@kontroll.example.org",),
        in_reply_to=("<probe.kdijo2iak5@kontroll.example.org>",),
        subject="SV: Fråga om skolval till förskoleklass",
        from_address="kontaktcenter@lund.se",
    )
    assert match(msg) == ("ernnckrt7h", MatchMethod.ADDRESS)


def test_in_reply_to_beats_references_and_subject() -> None:
    msg = message(
        in_reply_to=("<probe.kdijo2iak5@kontroll.example.org>",),
        references=("<probe.ernnckrt7h@kontroll.example.org>",),
        subject="SV: Fråga om skolval till förskoleklass",
        from_address="kontaktcenter@lund.se",
    )
    assert match(msg) == ("kdijo2iak5", MatchMethod.IN_REPLY_TO)


def test_subject_beats_quoted_text_and_sender_window() -> None:
    msg = message(
        subject="SV: Vigsel utomhus på fjället",
        from_address="kontaktcenter@lund.se",
        text="> " + SKOLVAL_BODY.replace("\n", "\n> "),
    )
    assert match(msg) == ("kdijo2iak5", MatchMethod.SUBJECT)


def test_references_pick_the_newest_known_probe() -> None:
    msg = message(
        references=(
            "<probe.kdijo2iak5@kontroll.example.org>",
            "<probe.ernnckrt7h@kontroll.example.org>",
        )
    )
    assert match(msg) == ("ernnckrt7h", MatchMethod.REFERENCES)


@pytest.mark.parametrize(
    "kind", [MessageKind.HUMAN, MessageKind.AUTO_REPLY, MessageKind.TICKET_RECEIPT]
)
def test_bulk_is_never_matched_but_other_kinds_are(kind: MessageKind) -> None:
    msg = message(to=("fraga+jbukgzr4dv@kontroll.example.org",))
    assert match(msg, MessageKind.BULK) == (None, MatchMethod.NONE)
    assert match(msg, kind) == ("jbukgzr4dv", MatchMethod.ADDRESS)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"to": ("fraga+jbukgzr4dv@kontroll.example.org",)}, id="address"),
        pytest.param(
            {"in_reply_to": ("<probe.jbukgzr4dv@kontroll.example.org>",)}, id="in_reply_to"
        ),
        pytest.param(
            {
                "subject": "SV: Fråga om skolval till förskoleklass",
                "from_address": "kontaktcenter@lund.se",
            },
            id="subject",
        ),
        pytest.param({"from_address": "kontaktcenter@lund.se"}, id="sender_window"),
    ],
)
def test_never_matched_to_a_probe_sent_after_the_message_arrived(
    fields: dict[str, object],
) -> None:
    future = replace(LUND, sent_at=LATER + timedelta(minutes=1))
    result = match_message(message(**fields), MessageKind.HUMAN, (future,), received_at=LATER)
    assert result.probe_token is None


def test_probe_sent_at_the_same_instant_as_arrival_can_match() -> None:
    same = replace(LUND, sent_at=LATER)
    msg = message(to=("fraga+jbukgzr4dv@kontroll.example.org",))
    assert match_message(msg, MessageKind.HUMAN, (same,), received_at=LATER).matched


def test_sender_window_needs_exactly_one_probe_to_that_domain() -> None:
    second = probe("zzzzzzzzz2", "kommun@are.se", "Fiske i fjällsjöar", sent_at=T0)
    msg = message(from_address="noreply@are.se")
    result = match_message(msg, MessageKind.AUTO_REPLY, (*PROBES, second), received_at=LATER)
    assert result.probe_token is None


def test_sender_window_ignores_probes_older_than_the_window() -> None:
    msg = message(from_address="noreply@are.se")
    policy = MatchPolicy(sender_window=timedelta(days=1))
    result = match_message(msg, MessageKind.AUTO_REPLY, PROBES, received_at=LATER, policy=policy)
    assert result.probe_token is None


def test_subject_outside_its_window_does_not_match() -> None:
    msg = message(subject="SV: Vigsel utomhus på fjället", from_address="x@are.se")
    late = T0 + timedelta(days=61)
    result = match_message(msg, MessageKind.HUMAN, PROBES, received_at=late)
    assert result.method is not MatchMethod.SUBJECT


def test_same_subject_to_same_target_twice_picks_the_latest_sent_before_arrival() -> None:
    older = replace(
        MALMO, token="oldoldold2", message_id="<old@x>", sent_at=T0 - timedelta(days=20)
    )
    msg = message(subject="SV: Fråga om avgift för fritidshem", from_address="a@malmo.se")
    result = match_message(msg, MessageKind.HUMAN, (older, MALMO), received_at=LATER)
    assert (result.probe_token, result.method) == ("ernnckrt7h", MatchMethod.SUBJECT)


def test_quoted_question_shared_by_two_probes_resolved_by_sender_domain() -> None:
    lund_copy = replace(HUDDINGE_SKOLVAL, body=SKOLVAL_BODY)
    msg = message(subject="Svar", from_address="handlaggare@huddinge.se", text=SKOLVAL_BODY)
    result = match_message(msg, MessageKind.HUMAN, (LUND, lund_copy), received_at=LATER)
    assert (result.probe_token, result.method) == ("ua6bsf4445", MatchMethod.QUOTED_TEXT)


def test_a_short_common_phrase_is_not_a_quoted_question() -> None:
    msg = message(
        subject="Svar",
        from_address="x@example.com",
        text="Hej!\n\nMed vänliga hälsningar\nKarin Holmberg",
    )
    assert match(msg) == (None, MatchMethod.NONE)


BOUNCE_TEXT = (
    "Return-Path: <fraga+kdijo2iak5@kontroll.example.org>\n"
    "Message-ID: <probe.kdijo2iak5@kontroll.example.org>\n"
    "Subject: =?utf-8?q?Vigsel_utomhus_p=C3=A5_fj=C3=A4llet?=\n"
)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"returned_message_id": "<probe.kdijo2iak5@kontroll.example.org>"},
            "kdijo2iak5",
            id="returned_message_id",
        ),
        pytest.param({"returned_headers_text": BOUNCE_TEXT}, "kdijo2iak5", id="returned_headers"),
        pytest.param({"original_envelope_id": "ernnckrt7h"}, "ernnckrt7h", id="envelope_id"),
        pytest.param(
            {
                "returned_headers_text": "Subject: Vigsel utomhus på fjället\nTo: kommun@are.se\n",
                "delivery_statuses": (DeliveryStatus("failed", "5.1.1", "kommun@are.se", None),),
            },
            "kdijo2iak5",
            id="failed_recipient_plus_returned_subject",
        ),
    ],
)
@pytest.mark.parametrize("kind", [MessageKind.BOUNCE, MessageKind.DELAY, MessageKind.READ_RECEIPT])
def test_delivery_reports_match_through_the_returned_copy(
    fields: dict[str, object], expected: str, kind: MessageKind
) -> None:
    msg = message(
        from_address="mailer-daemon@mx.example.net", to=("fraga@kontroll.example.org",), **fields
    )
    assert match(msg, kind) == (expected, MatchMethod.DSN_ORIGINAL)


def test_returned_copy_is_not_searched_for_a_human_reply() -> None:
    msg = message(returned_headers_text=BOUNCE_TEXT, from_address="x@example.com")
    assert match(msg, MessageKind.HUMAN) == (None, MatchMethod.NONE)


def test_no_probes_no_match() -> None:
    msg = message(to=("fraga+jbukgzr4dv@kontroll.example.org",))
    assert not match_message(msg, MessageKind.HUMAN, (), received_at=LATER).matched


def test_probe_index_is_a_reusable_sequence() -> None:
    index = ProbeIndex(PROBES)
    assert len(index) == 4 and index[0] is LUND and list(index) == list(PROBES)
    msg = message(to=("fraga+kdijo2iak5@kontroll.example.org",))
    assert match_message(msg, MessageKind.HUMAN, index, received_at=LATER).probe_token == ARE.token


def test_quoted_question_found_among_five_thousand_probes() -> None:
    many = [
        probe(
            f"{i:010d}".replace("0", "a").replace("1", "b").replace("8", "c").replace("9", "d"),
            f"kommun@k{i % 290}.se",
            f"Fråga nummer {i}",
            f"Hej! Detta är fråga nummer {i} om "
            f"något helt eget ämne som bara finns i probe {i} och ingen annan.",
        )
        for i in range(5000)
    ]
    index = ProbeIndex(many)
    wanted = many[4321]
    quoted = message(subject="Svar", from_address="x@example.com", text=wanted.body)
    result = match_message(quoted, MessageKind.HUMAN, index, received_at=LATER)
    assert (result.probe_token, result.method) == (wanted.token, MatchMethod.QUOTED_TEXT)


@pytest.mark.parametrize(
    ("text", "known", "expected"),
    [
        ("fraga+abcdefgh23@x.org", {"abcdefgh23"}, ["abcdefgh23"]),
        ("FRAGA+ABCDEFGH23@X.ORG", {"abcdefgh23"}, ["abcdefgh23"]),
        ("fragaabcdefgh23@x.org", {"abcdefgh23"}, ["abcdefgh23"]),
        (
            "<probe.abcdefgh23@x> <probe.zzzzzzzz77@x>",
            {"zzzzzzzz77", "abcdefgh23"},
            ["abcdefgh23", "zzzzzzzz77"],
        ),
        ("fraga+abcdefgh24@x.org", {"abcdefgh23"}, []),
        ("anything", set(), []),
    ],
)
def test_find_tokens_finds_only_known_tokens(
    text: str, known: set[str], expected: list[str]
) -> None:
    assert find_tokens(text, known) == expected


@pytest.mark.parametrize(
    ("subject", "normalized"),
    [
        ("SV: VB: Re: Ansökan om färdtjänst", "ansökan om färdtjänst"),
        ("RE[2]: AW: Fw: Stöd till  kulturförening [#123]", "stöd till kulturförening"),
        ("Sv: Vs: FWD: Fwd: Strandbad", "strandbad"),
        ("Automatiskt svar: Autosvar: Vigsel", "vigsel"),
        ("Automatic reply: Låst cykelgarage", "låst cykelgarage"),
        ("Frånvaromeddelande: Vigsel", "vigsel"),
        ("SV: [Ärende-ID: 250408-0147] Fråga om taxa", "fråga om taxa"),
        ("[Ticket#2026031410000123] Re: Taxa", "taxa"),
        ("Taxa (Ärende 2026-77)", "taxa"),
        ("Re: Dagvattenavgift för obebyggd tomt [#48213]", "dagvattenavgift för obebyggd tomt"),
        ("Ärende 2026-123: Skolval – när kommer beskedet?", "skolval - när kommer beskedet"),
        ("Fråga om skolval (förskoleklass)", "fråga om skolval (förskoleklass)"),
    ],
)
def test_subject_normalisation_strips_prefixes_and_ticket_tags(
    subject: str, normalized: str
) -> None:
    assert normalize_subject(subject) == normalized


def test_subject_variants_include_every_tail_after_a_colon() -> None:
    assert subject_variants("Ärende mottaget: Påsar till matavfall") == (
        "ärende mottaget: påsar till matavfall",
        "påsar till matavfall",
    )


def test_base_address_drops_the_subaddress() -> None:
    assert base_address("Fraga+Tok@Kontroll.example.org") == "fraga@kontroll.example.org"


def test_quoted_question_shared_by_two_probes_resolved_by_the_quoted_target_address() -> None:
    huddinge_copy = replace(HUDDINGE_SKOLVAL, body=SKOLVAL_BODY)
    forwarded = (
        "Hej! Vi på VA-bolaget svarar.\n\n"
        "Från: Kontaktcenter <kontaktcenter@lund.se>\nSkickat: den 3 mars 2025\n"
        "Till: Kundservice <kundservice@example.net>\nÄmne: VB: Skolval\n\n" + SKOLVAL_BODY
    )
    msg = message(subject="Ny fråga", from_address="x@example.net", text=forwarded)
    result = match_message(msg, MessageKind.HUMAN, (LUND, huddinge_copy), received_at=LATER)
    assert (result.probe_token, result.method) == ("jbukgzr4dv", MatchMethod.QUOTED_TEXT)


def test_quoted_question_shared_by_two_probes_with_nothing_to_tell_them_apart_is_no_match() -> None:
    huddinge_copy = replace(HUDDINGE_SKOLVAL, body=SKOLVAL_BODY)
    msg = message(subject="Ny fråga", from_address="x@example.net", text=SKOLVAL_BODY)
    result = match_message(msg, MessageKind.HUMAN, (LUND, huddinge_copy), received_at=LATER)
    assert result.probe_token is None


def test_a_plain_list_and_a_repeated_tuple_give_the_same_answer_as_an_index() -> None:
    msg = message(subject="Tack för din fråga", from_address="noreply@are.se")
    answers = {
        match_message(msg, MessageKind.AUTO_REPLY, probes, received_at=LATER)
        for probes in (list(PROBES), PROBES, PROBES, ProbeIndex(PROBES))
    }
    assert answers == {match_message(msg, MessageKind.AUTO_REPLY, PROBES, received_at=LATER)}
    assert len(answers) == 1 and next(iter(answers)).probe_token == ARE.token

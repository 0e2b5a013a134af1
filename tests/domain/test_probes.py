from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.domain.model import Persona, Probe, ProbeState, Question, Target
from monitor.domain.probes import (
    TOKEN_ALPHABET,
    build_probe,
    is_token,
    new_token,
    probe_message_id,
    render_probe,
    reply_address,
    sign_body,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
PLANNED_AT = datetime(2026, 3, 10, 9, 41, tzinfo=STOCKHOLM)
PERSONA = Persona(id="asa", name="Åsa Öberg")
TARGET = Target(id="0180", name="Stockholm", address="kontaktcenter@stockholm.example.invalid")
QUESTION = Question(
    id="avfall-grovsopor",
    area="avfall",
    subject="Hämtning av grovsopor på Södermalm",
    body="Hej!\n\nNär hämtas grovsopor på Åsögatan nästa gång? Måste jag beställa?\n",
)
TOKEN = "abcde23456"


def _probe(**changes: str) -> Probe:
    arguments = {
        "reply_template": "svar+{token}@matning.example.se",
        "mailbox_address": "matning@matning.example.se",
        "token": TOKEN,
    } | changes
    return build_probe(
        token=arguments["token"],
        target=TARGET,
        question=QUESTION,
        persona=PERSONA,
        reply_template=arguments["reply_template"],
        mailbox_address=arguments["mailbox_address"],
        planned_at=PLANNED_AT,
    )


def _rendered(probe: Probe | None = None) -> EmailMessage:
    return render_probe(probe or _probe(), PERSONA, date=PLANNED_AT)


def _reparsed(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize(
    ("entropy", "expected"),
    [
        (bytes(8), "aaaaaaaaaa"),
        (b"\xff" * 8, "7777777777"),
        (bytes(7), "aaaaaaaaaa"),
        (b"\x00\x44\x32\x14\xc7\x42", None),  # 6 bytes: too few
        (b"", None),
    ],
)
def test_new_token_encodes_entropy_as_ten_base32_characters(
    entropy: bytes, expected: str | None
) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="at least 7"):
            new_token(entropy)
    else:
        assert new_token(entropy) == expected


def test_new_token_uses_only_the_token_alphabet_and_differs_for_different_entropy() -> None:
    # Vary the first 50 bits, the ones a token keeps.
    tokens = {new_token((index << 30).to_bytes(8, "big")) for index in range(1000)}
    assert len(tokens) == 1000
    assert all(len(token) == 10 and set(token) <= set(TOKEN_ALPHABET) for token in tokens)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abcde23456", True),
        ("aaaaaaaaaa", True),
        ("ABCDE23456", False),  # tokens are lower case
        ("abcde2345", False),
        ("abcde234567", False),
        ("abcde01891", False),  # 0, 1, 8, 9 are not base32
        ("abcde-2345", False),
        ("", False),
    ],
)
def test_is_token_accepts_exactly_ten_lowercase_base32_characters(
    text: str, expected: bool
) -> None:
    assert is_token(text) is expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("svar+{token}@matning.example.se", "svar+abcde23456@matning.example.se"),
        ("{token}@svar.example.se", "abcde23456@svar.example.se"),
        ("probe-{token}-x@example.se", "probe-abcde23456-x@example.se"),
    ],
)
def test_reply_address_puts_the_token_into_the_template(template: str, expected: str) -> None:
    assert reply_address(template, TOKEN) == expected


@pytest.mark.parametrize(
    ("template", "token"),
    [("svar@matning.example.se", TOKEN), ("svar+{token}@example.se", "NOT-A-TOKEN")],
)
def test_reply_address_refuses_a_template_without_placeholder_or_a_bad_token(
    template: str, token: str
) -> None:
    with pytest.raises(ValueError):
        reply_address(template, token)


@pytest.mark.parametrize(
    ("mailbox", "expected"),
    [
        ("matning@matning.example.se", "<probe.abcde23456@matning.example.se>"),
        ("Matning@Svar.Example.SE", "<probe.abcde23456@svar.example.se>"),
        ('"odd@local"@example.se', "<probe.abcde23456@example.se>"),
    ],
)
def test_probe_message_id_uses_the_domain_of_the_mailbox(mailbox: str, expected: str) -> None:
    assert probe_message_id(TOKEN, mailbox) == expected


@pytest.mark.parametrize("mailbox", ["matning", "matning@", ""])
def test_probe_message_id_refuses_an_address_without_domain(mailbox: str) -> None:
    with pytest.raises(ValueError):
        probe_message_id(TOKEN, mailbox)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Hej!\n\nFråga?", "Hej!\n\nFråga?\n\nVänliga hälsningar\nÅsa Öberg"),
        ("Hej!\n\nFråga?\n\n\n", "Hej!\n\nFråga?\n\nVänliga hälsningar\nÅsa Öberg"),
    ],
)
def test_sign_body_ends_the_question_with_greeting_and_persona_name(
    body: str, expected: str
) -> None:
    assert sign_body(body, PERSONA) == expected


def test_build_probe_is_planned_with_addresses_subject_and_signed_body() -> None:
    probe = _probe()
    assert probe == Probe(
        token=TOKEN,
        target_id="0180",
        target_address="kontaktcenter@stockholm.example.invalid",
        question_id="avfall-grovsopor",
        persona_id="asa",
        reply_address="svar+abcde23456@matning.example.se",
        message_id="<probe.abcde23456@matning.example.se>",
        subject="Hämtning av grovsopor på Södermalm",
        body=(
            "Hej!\n\nNär hämtas grovsopor på Åsögatan nästa gång? Måste jag beställa?"
            "\n\nVänliga hälsningar\nÅsa Öberg"
        ),
        state=ProbeState.PLANNED,
        planned_at=PLANNED_AT,
    )


def test_build_probe_refuses_a_naive_planned_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_probe(
            token=TOKEN,
            target=TARGET,
            question=QUESTION,
            persona=PERSONA,
            reply_template="svar+{token}@example.se",
            mailbox_address="m@example.se",
            planned_at=datetime(2026, 3, 10, 9, 0),
        )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("From", ("Åsa Öberg", "svar+abcde23456@matning.example.se")),
        ("Reply-To", ("Åsa Öberg", "svar+abcde23456@matning.example.se")),
        ("To", ("", "kontaktcenter@stockholm.example.invalid")),
    ],
)
def test_rendered_probe_addresses_come_from_persona_reply_address_and_target(
    header: str, expected: tuple[str, str]
) -> None:
    assert parseaddr(str(_reparsed(_rendered())[header])) == expected


def test_rendered_probe_carries_subject_date_message_id_and_mime_version() -> None:
    parsed = _reparsed(_rendered())
    assert parsed["Subject"] == "Hämtning av grovsopor på Södermalm"
    assert parsedate_to_datetime(str(parsed["Date"])) == PLANNED_AT
    assert parsed["Message-ID"] == "<probe.abcde23456@matning.example.se>"
    assert parsed["MIME-Version"] == "1.0"


def test_rendered_probe_is_plain_utf8_text_whose_body_survives_the_round_trip() -> None:
    parsed = _reparsed(_rendered())
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    text = parsed.get_content().replace("\r\n", "\n")
    assert text.rstrip("\n") == _probe().body


def test_rendered_probe_is_seven_bit_ascii_with_short_lines_and_crlf() -> None:
    long_body = "Hej! " + "Jag undrar över återvinningscentralens öppettider. " * 20
    probe = build_probe(
        token=TOKEN,
        target=TARGET,
        question=Question(id="q", area="avfall", subject="Öppettider på ÅVC", body=long_body),
        persona=PERSONA,
        reply_template="svar+{token}@matning.example.se",
        mailbox_address="matning@matning.example.se",
        planned_at=PLANNED_AT,
    )
    raw = _rendered(probe).as_bytes()
    raw.decode("ascii")  # no SMTPUTF8 or 8BITMIME needed
    lines = raw.split(b"\r\n")
    assert all(len(line) <= 78 for line in lines)
    assert b"\n" not in raw.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted",
        "Precedence",
        "X-Auto-Response-Suppress",
        "Disposition-Notification-To",
        "Return-Receipt-To",
        "List-Id",
        "List-Unsubscribe",
        "X-Mailer",
    ],
)
def test_rendered_probe_has_no_header_that_suppresses_replies_or_marks_it_automated(
    header: str,
) -> None:
    parsed = _reparsed(_rendered())
    assert header not in parsed
    names = {name.lower() for name in parsed}
    assert not any(name.startswith("list-") for name in names)
    assert b"monitor" not in _rendered().as_bytes().lower()


def test_rendered_probe_headers_are_exactly_the_citizen_mail_set() -> None:
    names = [name.lower() for name in _reparsed(_rendered())]
    assert sorted(names) == sorted(
        [
            "from",
            "reply-to",
            "to",
            "subject",
            "date",
            "message-id",
            "content-type",
            "content-transfer-encoding",
            "mime-version",
        ]
    )


def test_render_probe_refuses_a_naive_date() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_probe(_probe(), PERSONA, date=datetime(2026, 3, 10, 9, 0))


def test_rendered_date_keeps_the_given_offset() -> None:
    in_utc = render_probe(_probe(), PERSONA, date=datetime(2026, 3, 10, 8, 41, tzinfo=UTC))
    assert parsedate_to_datetime(str(in_utc["Date"])) == PLANNED_AT

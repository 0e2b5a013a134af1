"""The answer-quality rubric item by item, on short invented replies of many shapes."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from monitor.domain.lix import LixBand, band, lix
from monitor.domain.mailparse import parse_message
from monitor.domain.model import AnswerKind, MessageKind
from monitor.domain.quality import (
    WEIGHT_ANSWERED,
    WEIGHT_READABILITY,
    AnswerQuality,
    assess_answer,
    first_name_of,
    score,
)

QUESTION = (
    "Hej!\n\nVi vill bygga en friggebod i trädgården. Behöver vi bygglov, och hur nära "
    "tomtgränsen får den stå?\n\nVänliga hälsningar\nEva Lund\n"
)
ANSWER = "En friggebod på högst 15 kvadratmeter kräver inget bygglov."
SIGNED = "Med vänlig hälsning\nAnna Svensson\nBygglovsenheten\nMora kommun"


def _assess(text: str, question: str = QUESTION, first_name: str = "Eva") -> AnswerQuality:
    quality = assess_answer(
        text, kind=MessageKind.HUMAN, has_new_text=True, question=question, first_name=first_name
    )
    assert quality is not None
    return quality


# --- greeting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opening", "expected"),
    [
        ("Hej Eva!", True),
        ("Hej!", True),
        ("hej,", True),
        ("Hejsan Eva,", True),
        ("Hej hej!", True),
        ("God morgon!", True),
        ("God dag Eva Lund,", True),
        ("Hallå där!", True),
        ("Tack för ditt mejl!", True),
        ("Tack så mycket för din fråga.", True),
        ("Bästa Eva,", True),
        ("Kära Eva!", True),
        ("Ja, det går bra.", False),
        ("Eva, det går bra.", False),
        ("Bästa sättet är att ansöka i e-tjänsten.", False),
    ],
)
def test_a_reply_greets_when_its_first_line_is_a_salutation_or_thanks(
    opening: str, expected: bool
) -> None:
    assert _assess(f"{opening}\n\n{ANSWER}\n\n{SIGNED}").greeting is expected


def test_a_salutation_on_the_same_line_as_the_answer_still_greets_and_is_cut_from_lix() -> None:
    alone = _assess(f"Hej Eva!\n\n{ANSWER}\n\n{SIGNED}")
    joined = _assess(f"Hej Eva! {ANSWER}\n\n{SIGNED}")
    assert joined.greeting and joined.personal
    assert joined.lix == alone.lix == lix(ANSWER)


# --- personal --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first_name", "expected"),
    [
        (f"Hej Eva!\n\n{ANSWER}\n\n{SIGNED}", "Eva", True),
        (f"Hej Eva Lund,\n\n{ANSWER}\n\n{SIGNED}", "Eva", True),
        (f"hej eva!\n\n{ANSWER}\n\n{SIGNED}", "Eva", True),
        (f"Nej tyvärr, Eva – {ANSWER}\n\n{SIGNED}", "Eva", True),
        (f"Hej Anna-Karin!\n\n{ANSWER}\n\n{SIGNED}", "Anna-Karin", True),
        (f"Hej Anna-Karin!\n\n{ANSWER}\n\n{SIGNED}", "Anna", False),
        (f"Hej Evelina!\n\n{ANSWER}\n\n{SIGNED}", "Eva", False),
        (f"Hej!\n\n{ANSWER}\n\n{SIGNED}", "Eva", False),
        # The signer shares the asker's first name: signing is not addressing.
        (f"Hej!\n\n{ANSWER}\n\nMvh\nEva Svensson\nBygglov", "Eva", False),
        (f"Hej Eva!\n\n{ANSWER}\n\n{SIGNED}", "", False),
    ],
)
def test_a_reply_is_personal_when_it_addresses_the_asker_by_first_name(
    text: str, first_name: str, expected: bool
) -> None:
    assert _assess(text, first_name=first_name).personal is expected


def test_the_first_name_of_a_persona_is_its_first_word() -> None:
    assert first_name_of("Anna-Karin Berglund") == "Anna-Karin"
    assert first_name_of("  Eva Lund ") == "Eva"
    assert first_name_of("") == ""


# --- named_sender and sender_unit ------------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "named", "unit"),
    [
        ("Med vänlig hälsning\nAnna Svensson\nBygglovsenheten\nMora kommun", True, True),
        ("Mvh\nAnna Svensson\nMora kommun", True, False),
        ("Mvh\nAnna Svensson", True, False),
        ("Hälsningar, Anna Svensson", True, False),
        ("Vänliga hälsningar\n\nAnna Maria Ek Olsson\nHandläggare", True, True),
        ("Med vänliga hälsningar\nPer-Olof Ek, Miljöinspektör, Miljö- och hälsoskydd", True, True),
        ("Hälsningar\nAnna Svensson | Handläggare | Socialförvaltningen", True, True),
        ("Med vänlig hälsning\nLena Karlsson\nKontaktcenter\nMölndals stad", True, True),
        ("/Anna", False, False),
        ("Mvh /Anna", False, False),
        ("//Anna\nBygglov", False, True),
        ("Hälsningar\n\nCamilla\n\nBorås Simarena", False, True),
        ("Vänliga hälsningar\nKontaktcenter\nGöteborgs Stad", False, True),
        ("Med vänlig hälsning\nGator och parker\nUmeå kommun", False, True),
        ("Hälsningar\nKommunens kontaktcenter", False, True),
        ("Hälsningar\nTeam Bygglov", False, True),
        ("Mvh\nKostchef\nMora kommun", False, True),
        ("Hälsningar\nMora kommun", False, False),
        ("Med vänlig hälsning\nRegion Dalarna", False, False),
        ("Med vänlig hälsning\nMalmö stad\n040-628 04 00", False, False),
        ("", False, False),
        # No sign-off: the trailing lines sign when they read as name, unit or contact.
        ("Anna Svensson\nBygglovsenheten", True, True),
        ("Anna Svensson\nTel 070-174 06 12", True, False),
        ("Stadsbyggnadskontoret", False, True),
    ],
)
def test_the_signature_tells_a_named_sender_from_a_unit(
    signature: str, named: bool, unit: bool
) -> None:
    quality = _assess(f"Hej Eva!\n\n{ANSWER}\n\n{signature}")
    assert (quality.named_sender, quality.sender_unit) == (named, unit)


def test_a_full_name_in_the_from_header_does_not_make_a_first_name_signature_named() -> None:
    raw = _mail(f"{ANSWER}\n\n/Lotta\n\nSkickat från min iPhone\n", sender="Lotta Wiberg")
    quality = _assess_mail(raw)
    assert not quality.named_sender
    assert "first-name-only" in quality.reasons


def test_a_signature_carrying_a_functional_mailbox_name_names_the_unit() -> None:
    raw = _mail(
        f"Hej!\n\n{ANSWER}\n\nHälsningar\nStrandbadet Sandviken\n",
        sender="Strandbadet Sandviken",
        address="strandbadet@mora.se",
    )
    quality = _assess_mail(raw)
    assert (quality.named_sender, quality.sender_unit) == (False, True)


# --- contact_details -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{ANSWER}\n\nMvh\nAnna Svensson\nTelefon: 08-465 004 10", True),
        (f"{ANSWER}\n\nMvh\nAnna Svensson\n+46 8 465 004 10", True),
        (f"{ANSWER}\n\nMvh\nAnna Svensson\nMobil 0701740612", True),
        (f"{ANSWER}\n\nMvh\nAnna Svensson\n031 - 390 06 00", True),
        (f"{ANSWER}\n\nMvh\nAnna Svensson\nanna.svensson@mora.se", True),
        (f"{ANSWER} Ring oss gärna på 070-174 06 50.\n\nMvh\nBygglov", True),
        (f"{ANSWER}\n\nMvh\nBygglov\n\nMora kommun | Växel 08-465 004 00 | mora.se", True),
        (f"{ANSWER}\n\nMvh\nBygglov\n\nDetta mejl går inte att svara på: noreply@mora.se", False),
        (f"{ANSWER} Svara på det här mejlet om du har fler frågor.\n\nMvh\nBygglov", False),
        (f"{ANSWER} Ange ärende 2026-09-0213 och dnr SBN 2026-000412.\n\nMvh\nBygglov", False),
        (f"{ANSWER} Vi har öppet 08.00–16.30, besök oss på Storgatan 1, 792 80 Mora.", False),
    ],
)
def test_contact_details_are_a_phone_number_or_a_reply_able_address(
    text: str, expected: bool
) -> None:
    assert _assess(text).contact_details is expected


# --- more_info -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "reason"),
    [
        (f"{ANSWER} Läs mer på https://www.mora.se/friggebod.\n\n{SIGNED}", True, "body-link"),
        (f"{ANSWER}\n\nMer om bygglov: www.mora.se/bygglov\n\n{SIGNED}", True, "body-link"),
        (f"{ANSWER} Läs mer på mora.se under Bygga och bo.\n\n{SIGNED}", False, "bare-domain"),
        (f"{ANSWER}\n\n{SIGNED}\nwww.mora.se", False, "signature-link-ignored"),
        (
            f"{ANSWER}\n\n{SIGNED}\n\nMora kommun behandlar personuppgifter enligt GDPR, "
            "läs mer på https://www.mora.se/gdpr",
            False,
            "footer-link-ignored",
        ),
        (
            f"{ANSWER}\n\nFölj oss på Facebook<https://www.facebook.com/morakommun>",
            False,
            "footer-link-ignored",
        ),
        (f"{ANSWER}\n\n{SIGNED}", False, "no-link"),
    ],
)
def test_more_info_is_a_web_link_in_the_answer_itself(
    text: str, expected: bool, reason: str
) -> None:
    quality = _assess(text)
    assert quality.more_info is expected
    assert any(r.startswith(reason) for r in quality.reasons)


def test_a_link_behind_the_text_of_an_html_only_reply_counts() -> None:
    html = (
        "<html><body><p>Hej Eva!</p><p>En friggebod kräver inget bygglov. Mer finns "
        '<a href="https://www.mora.se/friggebod">på vår sida om friggebodar</a>.</p>'
        "<p>Hälsningar<br>Anna Svensson<br>Bygglov</p></body></html>"
    )
    quality = _assess_mail(_mail(None, html=html))
    assert quality.more_info
    assert quality.named_sender and quality.sender_unit and quality.personal


# --- answer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (ANSWER, AnswerKind.ANSWERED),
        ("Ja, det går bra utan lov om den är högst 15 kvadratmeter.", AnswerKind.ANSWERED),
        ("Nej tyvärr.", AnswerKind.ANSWERED),
        ("Tack för ditt mejl. Det går bra.", AnswerKind.ANSWERED),
        (
            "Friggeboden får stå 4,5 meter från tomtgränsen. Läs mer på vår webbplats.",
            AnswerKind.ANSWERED,
        ),
        (
            "Din fråga har skickats vidare till mig. En friggebod kräver inte bygglov.",
            AnswerKind.ANSWERED,
        ),
        ("Kontakta bygglovsenheten på 070-174 06 30.", AnswerKind.REFERRED),
        (
            "Sådana frågor besvaras av bygglovsenheten. Du når dem vardagar 9–11.",
            AnswerKind.REFERRED,
        ),
        ("Vänd dig till Miljö- och byggnämnden, så hjälper de dig.", AnswerKind.REFERRED),
        ("All information finns på vår webbplats under Bygga och bo.", AnswerKind.REFERRED),
        ("Se https://www.mora.se/bygglov och ring oss om något är oklart.", AnswerKind.REFERRED),
        (
            "Kontakta bygglov på 070-174 06 30. Ha gärna fastighetsbeteckningen till hands.",
            AnswerKind.REFERRED,
        ),
        (
            "Kontakta bygglovsenheten på 070-174 06 30. Återkom gärna om något är oklart.",
            AnswerKind.REFERRED,
        ),
        ("Friggebodar är en fråga för bygglovsenheten.", AnswerKind.REFERRED),
        ("Gör en anmälan här: https://www.mora.se/anmalan", AnswerKind.REFERRED),
        ("Jag har vidarebefordrat ditt mejl till bygglovsenheten.", AnswerKind.HOLDING),
        ("Din fråga om friggeboden har nu skickats till bygglov.", AnswerKind.HOLDING),
        ("En handläggare kommer att kontakta dig nästa vecka.", AnswerKind.HOLDING),
        ("Jag har bett en kollega på bygglov att svara dig.", AnswerKind.HOLDING),
        (
            "Ja, friggeboden får stå utan lov. Återkom gärna om du har fler frågor.",
            AnswerKind.ANSWERED,
        ),
        ("Vi har tagit emot din fråga och återkommer inom en vecka.", AnswerKind.HOLDING),
        ("Din fråga är registrerad. Du får svar inom fem arbetsdagar.", AnswerKind.HOLDING),
        (
            "Handläggaren är på semester, vi återkommer när hon är tillbaka. Under tiden kan du "
            "läsa mer på https://www.mora.se/bygglov",
            AnswerKind.HOLDING,
        ),
        (
            "Jag har skickat din fråga vidare till en bygglovshandläggare. Ange ärendenummer "
            "BN-2026-112 om du kontaktar oss igen.",
            AnswerKind.HOLDING,
        ),
    ],
)
def test_the_answer_is_answered_referred_or_holding(body: str, expected: AnswerKind) -> None:
    assert _assess(f"Hej Eva!\n\n{body}\n\n{SIGNED}").answer is expected


# --- quoting shapes: only the new text is judged ---------------------------------------

_QUOTED_QUESTION = QUESTION.replace("\n", "\n> ")


@pytest.mark.parametrize(
    "quote",
    [
        "Från: Eva Lund <svar+abcdefghij@kontroll.example.org>\nSkickat: den 3 mars 2026 10:14"
        "\nTill: Bygglov <bygglov@mora.se>\nÄmne: Friggebod\n\n" + QUESTION,
        "From: Eva Lund <svar+abcdefghij@kontroll.example.org>\nSent: Tuesday, March 3, 2026"
        "\nTo: Bygglov <bygglov@mora.se>\nSubject: Friggebod\n\n" + QUESTION,
        "________________________________\nFrån: Eva Lund <svar+abcdefghij@kontroll.example.org>"
        "\nSkickat: den 3 mars 2026 10:14\nTill: Bygglov\nÄmne: Friggebod\n\n" + QUESTION,
        "-----Ursprungligt meddelande-----\nFrån: Eva Lund\nSkickat: den 3 mars 2026\n\n"
        + QUESTION,
        "Den tis 3 mars 2026 kl 10:14 skrev Eva Lund <\nsvar+abcdefghij@kontroll.example.org>:"
        "\n\n> " + _QUOTED_QUESTION,
        "> 3 mars 2026 kl. 10:14 skrev Eva Lund <svar+abcdefghij@kontroll.example.org>:\n>\n> "
        + _QUOTED_QUESTION,
    ],
)
def test_quoted_questions_of_every_client_are_not_judged(quote: str) -> None:
    text = f"{ANSWER}\n\n/Anna\n\nSkickat från min iPhone\n\n{quote}"
    quality = _assess(text)
    # The quoted question greets, names Eva and signs with a full name: none of it counts.
    assert (quality.greeting, quality.personal, quality.named_sender) == (False, False, False)
    assert quality.lix == lix(ANSWER)


def test_a_case_system_notice_under_a_rule_is_a_footer_not_the_answer() -> None:
    text = (
        f"Hej Eva!\n\n{ANSWER}\n\nMed vänlig hälsning\nAnna Svensson\nBygglovshandläggare\n\n"
        + "-" * 40
        + "\nDet här meddelandet har skickats från Mora kommuns ärendesystem och går inte att "
        "svara på.\nÄrende: BN 2026-000412\nSe ditt ärende på Mina sidor: "
        "https://minasidor.mora.se/arenden\n"
    )
    quality = _assess(text)
    assert not quality.more_info
    assert "footer-link-ignored" in quality.reasons
    assert quality.named_sender and quality.sender_unit
    assert quality.lix == lix(ANSWER)


# --- kinds, LIX, score, JSON -----------------------------------------------------------


@pytest.mark.parametrize("kind", [k for k in MessageKind if k is not MessageKind.HUMAN])
def test_only_a_human_reply_has_a_quality(kind: MessageKind) -> None:
    assert assess_answer(f"Hej!\n\n{ANSWER}", kind=kind, has_new_text=True) is None


def test_a_human_reply_without_new_text_has_no_quality() -> None:
    assert assess_answer("", kind=MessageKind.HUMAN, has_new_text=False) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ja.", 1.0),
        ("Det går bra. Välkommen!", 4 / 2 + 100 * 1 / 4),
        ("Kommunen ansvarar för snöröjningen.", 4 / 1 + 100 * 3 / 4),
        ("Läs på https://www.mora.se/a. Sedan ansöker du.", 5 / 2 + 100 * 1 / 5),
        ("Klockan 08.30 öppnar mora.se sin e-tjänst", 7 / 1 + 100 * 1 / 7),
        ("Första stycket\nfortsätter här\n\nAndra stycket", 6 / 2 + 100 * 3 / 6),
        ("", 0.0),
        ("12 345", 0.0),
    ],
)
def test_lix_counts_words_sentences_and_long_words(text: str, expected: float) -> None:
    assert lix(text) == round(expected, 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (17.9, LixBand.VERY_EASY),
        (30.0, LixBand.EASY),
        (39.9, LixBand.EASY),
        (45.0, LixBand.MEDIUM),
        (55.8, LixBand.HARD),
        (60.0, LixBand.VERY_HARD),
        (68.8, LixBand.VERY_HARD),
    ],
)
def test_lix_bands_follow_the_customary_limits(value: float, expected: LixBand) -> None:
    assert band(value) is expected


def test_the_score_is_the_sum_of_the_weights_of_the_items_met() -> None:
    assert score(AnswerKind.ANSWERED, (True,) * 6, LixBand.EASY) == 100
    assert score(AnswerKind.HOLDING, (False,) * 6, LixBand.VERY_HARD) == 0
    assert (
        score(AnswerKind.ANSWERED, (False,) * 6, LixBand.MEDIUM)
        == WEIGHT_ANSWERED + WEIGHT_READABILITY[LixBand.MEDIUM]
    )


def test_a_referral_scores_below_the_same_reply_that_answers() -> None:
    answered = _assess(f"Hej Eva!\n\n{ANSWER}\n\n{SIGNED}")
    referred = _assess(f"Hej Eva!\n\nKontakta bygglovsenheten.\n\n{SIGNED}")
    assert referred.score < answered.score


def test_the_json_form_has_exactly_the_rubric_fields() -> None:
    data = _assess(f"Hej Eva!\n\n{ANSWER}\n\n{SIGNED}").to_json()
    assert list(data) == [
        "answer",
        "greeting",
        "personal",
        "named_sender",
        "sender_unit",
        "contact_details",
        "more_info",
        "lix",
        "band",
        "score",
        "reasons",
    ]
    assert data["answer"] == "answered"
    assert data["band"] == band(lix(ANSWER)).value
    assert isinstance(data["reasons"], list) and len(data["reasons"]) == 8


# --- helpers ---------------------------------------------------------------------------


def _mail(
    text: str | None,
    *,
    html: str | None = None,
    sender: str = "Anna Svensson",
    address: str = "anna.svensson@mora.se",
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{sender} <{address}>"
    msg["To"] = "svar+abcdefghij@kontroll.example.org"
    msg["Subject"] = "SV: Friggebod"
    if text is not None:
        msg.set_content(text)
    if html is not None:
        if text is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def _assess_mail(raw: bytes) -> AnswerQuality:
    quality = assess_answer(
        parse_message(raw),
        kind=MessageKind.HUMAN,
        has_new_text=True,
        question=QUESTION,
        first_name="Eva",
    )
    assert quality is not None
    return quality

"""New human text: quoted original, signature, disclaimer and copies of the probe removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.domain.model import ParsedMessage
from monitor.domain.newtext import extract_new_text, has_new_text

SAMPLES = Path(__file__).parent.parent / "data" / "match" / "newtext"
PROBE_BODY = (
    "Hej!\n\nVi flyttar till Lund i sommar och vår dotter ska börja förskoleklass i höst. "
    "Hur gör vi för att välja skola när vi ännu inte är folkbokförda i kommunen?\n\n"
    "Med vänliga hälsningar\nKarin Holmberg\n"
)
OUTLOOK_BLOCK = (
    "Från: Karin Holmberg <fraga+jbukgzr4dv@kontroll.example.org>\n"
    "Skickat: den 14 januari 2025 09:12\n"
    "Till: Kontaktcenter <kontaktcenter@lund.se>\n"
    "Ämne: Fråga om skolval till förskoleklass\n\n"
)
DASHES = "-" * 46


def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.txt"))


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.stem)
def test_client_samples_named_new_have_new_text_and_empty_ones_do_not(path: Path) -> None:
    expected = path.name.startswith("new-")
    text = path.read_text(encoding="utf-8")
    assert has_new_text(text) is expected
    assert has_new_text(text, PROBE_BODY) is expected


def test_the_samples_cover_both_outcomes() -> None:
    names = [p.name for p in sample_files()]
    assert sum(n.startswith("new-") for n in names) >= 5
    assert sum(n.startswith("empty-") for n in names) >= 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Ja, det går bra.\n\nMed vänliga hälsningar\nSanna\nKontaktcenter\n\n"
            + OUTLOOK_BLOCK
            + PROBE_BODY,
            "Ja, det går bra.",
            id="outlook_sv_top_posting",
        ),
        pytest.param(
            "Svar här.\n\n-----Original Message-----\nFrom: x\nSent: y\n\n" + PROBE_BODY,
            "Svar här.",
            id="original_message_separator",
        ),
        pytest.param(
            "Svar här.\nSkickat från min iPhone\n\n> 14 jan. 2025 kl. 09:12 skrev Karin <a@b>:\n"
            "> Hej!",
            "Svar här.",
            id="iphone_sent_from_line",
        ),
        pytest.param(
            "Svar här.\n\nDen tis 14 jan. 2025 kl 09:12 skrev Karin Holmberg <\nfraga@x.org>:\n\n"
            "> Hej!",
            "Svar här.",
            id="gmail_attribution_wrapped_over_two_lines",
        ),
        pytest.param(
            "> Fråga ett?\n\nSvar ett.\n\n> Fråga två?\n\nSvar två.\n",
            "Svar ett.\n\nSvar två.",
            id="interleaved_inline_answers_kept",
        ),
        pytest.param(
            "Svar här.\n\nVänliga hälsningar\nAnna\n\nBehandling av personuppgifter: vi "
            "behandlar dina uppgifter enligt GDPR.",
            "Svar här.",
            id="gdpr_notice_after_signature",
        ),
        pytest.param(
            "Svar här.\n\nBehandling av personuppgifter: vi behandlar dina uppgifter enligt GDPR.",
            "Svar här.",
            id="gdpr_notice_without_signature",
        ),
        pytest.param(
            "Svar här.\n-- \nAnna Andersson\n070-123 45 67",
            "Svar här.",
            id="dash_dash_signature",
        ),
        pytest.param(
            "##- Skriv ditt svar ovanför denna rad -##\n\nDitt ärende (48213) har uppdaterats.\n\n"
            f"{DASHES}\n\nElsa (Uppsala Vatten)\n\n"
            "22 okt. 2025 13:37 CEST\n\nHej Louise! Ja, det stämmer.\n\n"
            "Vänliga hälsningar\nElsa\n\n"
            f"{DASHES}\n\nLouise\n\n20 okt. 2025 07:58 CEST\n\n"
            "Hej! Stämmer det?",
            "Hej Louise! Ja, det stämmer.",
            id="helpdesk_newest_comment_only",
        ),
        pytest.param("\ufeffSvar\u00a0här.\r\n\r\n", "Svar här.", id="bom_nbsp_crlf"),
    ],
)
def test_extract_new_text_keeps_only_what_was_written(text: str, expected: str) -> None:
    assert extract_new_text(text) == expected


def test_a_copy_of_the_probe_without_quote_markers_is_not_new_text() -> None:
    forwarded_copy = "Hej!\n\n" + PROBE_BODY.split("\n\n")[1]
    assert has_new_text(forwarded_copy) is True  # without the probe it looks written
    assert has_new_text(forwarded_copy, PROBE_BODY) is False


def test_answers_inside_an_outlook_quote_of_the_probe_count_with_the_probe_body() -> None:
    text = (
        OUTLOOK_BLOCK
        + "Hej!\n\nVi flyttar till Lund i sommar och vår dotter ska börja förskoleklass i höst.\n"
        "Svar: Välkomna! Ni gör skolvalet på en pappersblankett.\n"
        "Hur gör vi för att välja skola när vi ännu inte är folkbokförda i kommunen?\n\n"
        "Med vänliga hälsningar\nKarin Holmberg\n"
    )
    assert has_new_text(text) is False
    assert has_new_text(text, PROBE_BODY) is True


def test_an_unchanged_outlook_quote_of_the_probe_is_not_new_text() -> None:
    assert has_new_text("\n\n" + OUTLOOK_BLOCK + PROBE_BODY, PROBE_BODY) is False


def test_parsed_message_objects_are_read_through_their_text() -> None:
    msg = ParsedMessage(
        message_id=None,
        subject="SV: Fråga om skolval till förskoleklass",
        from_address="sanna@lund.se",
        from_name=None,
        return_path=None,
        to=(),
        cc=(),
        delivered_to=(),
        in_reply_to=(),
        references=(),
        thread_topic=None,
        date=None,
        received_at=None,
        content_type="text/plain",
        report_type=None,
        headers=(),
        text="Ja, det går bra.\n\n" + OUTLOOK_BLOCK + PROBE_BODY,
        html=None,
    )
    assert extract_new_text(msg) == "Ja, det går bra."
    assert has_new_text(msg) is True


@pytest.mark.parametrize("text", ["", "   \n\n", "Hej!", "Hej Karin,\n\nMvh\nAnna"])
def test_greetings_and_blank_text_are_not_new_text(text: str) -> None:
    assert has_new_text(text) is False


@pytest.mark.parametrize(
    "answer",
    [
        "När du skickar in ansökan ska du bifoga ett läkarintyg.",
        "Information om hur du ansöker finns på lund.se.",
        "Detta gäller alla fritidsgårdar i kommunen.",
        "Hälsningar från oss alla på fritidsgården: välkomna i sommar!",
    ],
)
def test_answer_sentences_that_start_like_notices_or_sign_offs_are_kept(answer: str) -> None:
    text = f"Hej!\n\n{answer}\n\nMvh\nAnna\n\n" + OUTLOOK_BLOCK + PROBE_BODY
    assert extract_new_text(text) == f"Hej!\n\n{answer}"


@pytest.mark.parametrize(
    "notice",
    [
        "När du skickar e-post till Lunds kommun behandlar vi dina personuppgifter.",
        "När du kontaktar oss sparas dina uppgifter.",
        "Detta e-postmeddelande kan innehålla information som omfattas av sekretess.",
        "Information om hur vi behandlar personuppgifter finns på kommunens webbplats.",
        "This e-mail may contain confidential information.",
    ],
)
def test_notices_after_the_answer_are_removed_even_without_a_sign_off(notice: str) -> None:
    assert extract_new_text(f"Ja, det går bra.\n\n{notice}\nLäs mer på webben.") == (
        "Ja, det går bra."
    )

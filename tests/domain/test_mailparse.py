"""parse_message: header decoding, bodies, delivery reports, returned copies, robustness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.domain.mailparse import html_to_text, parse_delivery_status, parse_message
from monitor.domain.model import DeliveryStatus

DATA = Path(__file__).resolve().parents[1] / "data"
CEST = timezone(timedelta(hours=2))


def _mail(headers: str, body: str = "Hej!\r\n") -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body).encode("utf-8")


def test_encoded_words_in_subject_and_from_are_decoded() -> None:
    msg = parse_message(
        _mail(
            "From: =?utf-8?q?J=C3=B6rgen_=C3=85str=C3=B6m?= <Jorgen.Astrom@Lund.SE>\n"
            "Subject: =?iso-8859-1?q?SV:_Fr=E5ga_om_f=E4rdtj=E4nst?="
        )
    )
    assert msg.subject == "SV: Fråga om färdtjänst"
    assert msg.from_name == "Jörgen Åström"
    assert msg.from_address == "jorgen.astrom@lund.se"


def test_recipient_headers_give_lower_case_bare_addresses() -> None:
    msg = parse_message(
        _mail(
            "To: Kontaktcenter <Kontaktcenter@Lund.se>, fraga+ABC@kontroll.example.org\n"
            'Cc: "Sanna P" <sanna@lund.se>\n'
            "Delivered-To: fraga+abc@kontroll.example.org\n"
            "X-Original-To: Fraga+Abc@Kontroll.example.org\n"
            "Envelope-To: other@kontroll.example.org"
        )
    )
    assert msg.to == ("kontaktcenter@lund.se", "fraga+abc@kontroll.example.org")
    assert msg.cc == ("sanna@lund.se",)
    assert msg.delivered_to == ("fraga+abc@kontroll.example.org", "other@kontroll.example.org")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Return-Path: <>", ""),
        ("Return-Path: <MAILER-DAEMON@Example.org>", "mailer-daemon@example.org"),
        ("X-Other: 1", None),
    ],
)
def test_return_path_null_sender_is_empty_string(header: str, expected: str | None) -> None:
    assert parse_message(_mail(header)).return_path == expected


def test_message_ids_keep_brackets_and_references_are_split() -> None:
    msg = parse_message(
        _mail(
            "Message-ID: <abc@x.se>\n"
            "In-Reply-To: <probe.aaaa@kontroll.example.org>\n"
            "References: <one@x.se>\n <two@x.se> <probe.aaaa@kontroll.example.org>"
        )
    )
    assert msg.message_id == "<abc@x.se>"
    assert msg.in_reply_to == ("<probe.aaaa@kontroll.example.org>",)
    assert msg.references == ("<one@x.se>", "<two@x.se>", "<probe.aaaa@kontroll.example.org>")


def test_received_at_comes_from_topmost_received_header() -> None:
    msg = parse_message(
        _mail(
            "Received: from mx1 by mail with LMTP; Wed, 13 Aug 2025 09:31:49 +0200\n"
            "Received: from a by mx1; Wed, 13 Aug 2025 09:00:00 +0200\n"
            "Date: Wed, 13 Aug 2025 08:00:00 +0200"
        )
    )
    assert msg.received_at == datetime(2025, 8, 13, 9, 31, 49, tzinfo=CEST)
    assert msg.date == datetime(2025, 8, 13, 8, 0, tzinfo=CEST)


@pytest.mark.parametrize(
    "headers",
    [
        "Received: from mx1 by mail with LMTP",
        "Received: from mx1; not a date at all",
        "Subject: no received header",
    ],
)
def test_received_at_is_none_without_a_parsable_date(headers: str) -> None:
    assert parse_message(_mail(headers)).received_at is None


def test_date_with_unknown_zone_is_taken_as_utc() -> None:
    msg = parse_message(_mail("Date: Wed, 13 Aug 2025 08:00:00 -0000"))
    assert msg.date == datetime(2025, 8, 13, 8, 0, tzinfo=UTC)


def test_html_only_mail_gets_text_with_line_breaks_and_keeps_html() -> None:
    html = (
        "<html><head><style>p {color:red}</style><title>x</title></head><body>"
        "<p>Hej Sofia,</p><div>Avgiften&nbsp;är 100 kr.<br>Vänliga hälsningar</div>"
        "<script>alert(1)</script></body></html>"
    )
    msg = parse_message(_mail("Content-Type: text/html; charset=utf-8", html))
    assert msg.text == "Hej Sofia,\n\nAvgiften är 100 kr.\nVänliga hälsningar"
    assert msg.html == html


def test_html_to_text_drops_style_and_script() -> None:
    assert html_to_text("<style>a{}</style>Hej<script>x()</script> du") == "Hej du"


def test_plain_part_is_preferred_over_html_in_alternative() -> None:
    body = (
        "--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\nH=E4lsningar\r\n"
        "--b\r\nContent-Type: text/html\r\n\r\n<p>HTML</p>\r\n--b--\r\n"
    )
    msg = parse_message(_mail('Content-Type: multipart/alternative; boundary="b"', body))
    assert msg.text.strip() == "Hälsningar"
    assert msg.html is not None and "HTML" in msg.html


def test_unknown_charset_is_decoded_with_replacement_and_flagged() -> None:
    msg = parse_message(
        b"Subject: x\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nHej d\xe5\r\n"
    )
    assert msg.text.startswith("Hej d")
    assert "undecodable-charset:x-klingon" in msg.defects


def test_raw_eight_bit_utf8_header_is_decoded() -> None:
    msg = parse_message("Subject: Frånvaro\r\n\r\nx".encode())
    assert msg.subject == "Frånvaro"


def test_attachment_names_include_rfc2231_filenames() -> None:
    body = (
        "--b\r\nContent-Type: text/plain\r\n\r\nSe bilaga.\r\n"
        "--b\r\nContent-Type: application/pdf\r\n"
        "Content-Disposition: attachment; filename*=utf-8''Vigsel%20i%20Kiruna%20%C3%A5.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"
    )
    msg = parse_message(_mail('Content-Type: multipart/mixed; boundary="b"', body))
    assert msg.attachment_names == ("Vigsel i Kiruna å.pdf",)
    assert msg.text.strip() == "Se bilaga."


_DSN = """--r\r
Content-Type: text/plain\r
\r
Your message could not be delivered.\r
--r\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; smtp.kontroll.example.org\r
Original-Envelope-Id: probe-abc\r
\r
Final-Recipient: rfc822; Kommunen@Krokom.se\r
Action: failed\r
Status: 5.1.1\r
Diagnostic-Code: smtp; 550 5.1.1 <kommunen@krokom.se>: User unknown\r
  in virtual mailbox table\r
\r
Final-Recipient: rfc822; other@krokom.se\r
Action: delayed\r
Status: 4.4.1\r
--r\r
Content-Type: message/rfc822\r
\r
From: Probe <fraga+abc@kontroll.example.org>\r
Message-ID: <probe.abc@kontroll.example.org>\r
Subject: Fråga\r
\r
Hej! Frågan.\r
--r--\r
"""


def test_delivery_status_blocks_become_delivery_statuses() -> None:
    msg = parse_message(
        _mail('Content-Type: multipart/report; report-type="delivery-status"; boundary="r"', _DSN)
    )
    assert msg.content_type == "multipart/report"
    assert msg.report_type == "delivery-status"
    assert msg.original_envelope_id == "probe-abc"
    assert msg.delivery_statuses == (
        DeliveryStatus(
            action="failed",
            status="5.1.1",
            recipient="kommunen@krokom.se",
            diagnostic="550 5.1.1 <kommunen@krokom.se>: User unknown in virtual mailbox table",
        ),
        DeliveryStatus(
            action="delayed", status="4.4.1", recipient="other@krokom.se", diagnostic=None
        ),
    )
    assert msg.text.strip() == "Your message could not be delivered."


def test_returned_message_gives_message_id_and_header_text() -> None:
    msg = parse_message(
        _mail('Content-Type: multipart/report; report-type="delivery-status"; boundary="r"', _DSN)
    )
    assert msg.returned_message_id == "<probe.abc@kontroll.example.org>"
    assert "fraga+abc@kontroll.example.org" in msg.returned_headers_text
    assert "Hej! Frågan." in msg.returned_headers_text


def test_text_rfc822_headers_part_is_returned_text() -> None:
    body = (
        "--r\r\nContent-Type: text/plain\r\n\r\nDelayed.\r\n"
        "--r\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: fraga+xyz@kontroll.example.org\r\nMessage-Id: <probe.xyz@kontroll.example.org>\r\n"
        "--r--\r\n"
    )
    msg = parse_message(_mail('Content-Type: multipart/report; boundary="r"', body))
    assert msg.returned_message_id == "<probe.xyz@kontroll.example.org>"
    assert "fraga+xyz@" in msg.returned_headers_text


def test_exim_plain_text_bounce_returns_text_after_copy_marker() -> None:
    body = (
        "A message that you sent could not be delivered.\r\n\r\n"
        "------ This is a copy of the message, including all the headers. ------\r\n\r\n"
        "Message-Id: <probe.qqq@kontroll.example.org>\r\nFrom: fraga+qqq@kontroll.example.org\r\n"
    )
    msg = parse_message(
        _mail("Return-Path: <>\nFrom: Mail Delivery System <Mailer-Daemon@x.se>", body)
    )
    assert msg.returned_headers_text.startswith("Message-Id: <probe.qqq@")
    assert msg.returned_message_id == "<probe.qqq@kontroll.example.org>"


def test_human_reply_with_quote_has_no_returned_text() -> None:
    body = (
        "Hej!\r\n\r\n-----Original Message-----\r\nFrom: fraga+abc@kontroll.example.org\r\n"
        "Message-Id: <probe.abc@kontroll.example.org>\r\n"
    )
    msg = parse_message(_mail("From: Sanna <sanna@lund.se>\nSubject: SV: Fråga", body))
    assert msg.returned_headers_text == ""
    assert msg.returned_message_id is None


def test_broken_boundary_keeps_whole_body_as_text_and_flags_it() -> None:
    body = "--other\r\nContent-Type: text/plain\r\n\r\nUser unknown\r\n"
    msg = parse_message(_mail('Content-Type: multipart/report; boundary="missing"', body))
    assert "User unknown" in msg.text
    assert "truncated" in msg.defects


def test_too_many_parts_stops_walking_and_flags_it() -> None:
    parts = "".join("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(1200))
    msg = parse_message(_mail('Content-Type: multipart/mixed; boundary="b"', parts + "--b--\r\n"))
    assert "too-many-parts" in msg.defects


def test_large_text_is_capped_and_flagged() -> None:
    msg = parse_message(_mail("Subject: big", "a" * 1_200_000))
    assert len(msg.text) == 1_000_000
    assert "text-capped" in msg.defects
    assert msg.size > 1_200_000


def test_headers_keep_order_with_lower_case_names() -> None:
    msg = parse_message(_mail("Received: a; x\nReceived: b; y\nSubject: s"))
    assert [name for name, _ in msg.headers] == ["received", "received", "subject"]
    assert msg.header_all("received") == ("a; x", "b; y")


def test_malformed_address_header_does_not_raise() -> None:
    msg = parse_message(_mail('From: <<<@@@>>> ,,, "unterminated\nTo: ;;;;'))
    assert msg.to == ()


@pytest.mark.parametrize(
    ("text", "envelope_id", "statuses"),
    [
        (
            "Original-Envelope-Id: e1\n\nFinal-Recipient: rfc822;a@b.se\nAction: Failed\n"
            "Status: 5.2.2 (mailbox full)",
            "e1",
            (DeliveryStatus("failed", "5.2.2", "a@b.se", None),),
        ),
        (
            # missing blank line between per-message and per-recipient fields
            "Reporting-MTA: dns; x\nFinal-Recipient: rfc822; <A@B.se>\n"
            "Action: delivered\nStatus: 2.0.0",
            None,
            (DeliveryStatus("delivered", "2.0.0", "a@b.se", None),),
        ),
        ("Reporting-MTA: dns; x", None, ()),
    ],
)
def test_parse_delivery_status_table(
    text: str, envelope_id: str | None, statuses: tuple[DeliveryStatus, ...]
) -> None:
    found_id, found = parse_delivery_status(text)
    assert found_id == envelope_id
    assert tuple(found) == statuses


def test_m365_ndr_from_corpus_has_status_and_returned_probe() -> None:
    raw = (DATA / "replies-sv" / "017-osthammar-m365-ndr-en-mottagare-saknas.eml").read_bytes()
    msg = parse_message(raw)
    assert msg.delivery_statuses[0].action == "failed"
    assert msg.delivery_statuses[0].status == "5.1.10"
    assert msg.returned_message_id == "<probe.3hhc2a5mkv@kontroll.example.org>"
    assert msg.defects == ()


def _corpus_samples() -> list[bytes]:
    files = sorted((DATA / "bounces" / "eml").glob("*.eml"))[::12]
    files += sorted((DATA / "replies-sv").glob("*.eml"))[::6]
    return [f.read_bytes() for f in files]


_SAMPLES = _corpus_samples()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_parse_message_never_raises_on_random_bytes(raw: bytes) -> None:
    assert parse_message(raw).size == len(raw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_SAMPLES),
    st.lists(st.tuples(st.integers(0, 20_000), st.binary(min_size=0, max_size=8)), max_size=6),
    st.integers(0, 30_000),
)
def test_parse_message_never_raises_on_mutated_corpus_files(
    sample: bytes, edits: list[tuple[int, bytes]], cut: int
) -> None:
    raw = bytearray(sample)
    for position, replacement in edits:
        at = position % (len(raw) + 1)
        raw[at : at + len(replacement)] = replacement
    mutated = bytes(raw[: max(cut, len(raw) // 3)])
    parsed = parse_message(mutated)
    assert parsed.size == len(mutated)

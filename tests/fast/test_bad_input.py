"""Bad mail through the real ingest path into SQLite: stored, flagged, never dropped.

A 25 MB mail, a mail of 1,000 parts and mail in charsets nobody can decode each become a
stored row with its defects listed, the flagged counter moves, and where the mail carries
the probe's token it still counts for that probe.
"""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from daemon_support import LUND, insert_sent_probe, local_config, write_config

from monitor.adapters.imap import FetchedMail
from monitor.composition import Application, build
from monitor.config import load_config
from monitor.domain.classify import classify
from monitor.domain.mailparse import MAX_PARSED_BYTES, parse_message
from monitor.domain.model import MatchMethod, MessageKind

SENT = datetime(2026, 6, 2, 8, 30, tzinfo=UTC)  # Tuesday 10:30 in Stockholm
ARRIVED = SENT + timedelta(hours=1)
TOKEN = "badinput23"
REPLY_TO = f"svar+{TOKEN}@kontroll.example.se"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Application]:
    path = write_config(tmp_path, [LUND], local_config(tmp_path / "bad.db"))
    application = build(load_config(path, {}), clock=lambda: ARRIVED)
    await application.store.upgrade()
    await application.store.sync_targets(application.world.targets, SENT)
    await insert_sent_probe(application.store, TOKEN, SENT)
    yield application
    await application.store.close()


def _head(
    content_type: bytes, subject: bytes = b"SV: Bygglov f\xc3\xb6r f\xc3\xb6rr\xc3\xa5d?"
) -> bytes:
    return (
        b"From: Eva Lind <eva.lind@lund.example.invalid>\r\n"
        b"To: " + REPLY_TO.encode() + b"\r\n"
        b"Subject: " + subject + b"\r\n"
        b"Message-ID: <bad-answer@lund.example.invalid>\r\n"
        b"Date: Tue, 02 Jun 2026 11:30:00 +0200\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: " + content_type + b"\r\n"
    )


@cache
def mail_of_25_mb() -> bytes:
    """A short answer with a 25 MB attachment, as a scanned document would come."""
    attachment = base64.encodebytes(random.Random(7).randbytes(18_500_000))
    return (
        _head(b'multipart/mixed; boundary="b"')
        + b"\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "Hej! Ja, bygglov krävs. Se bifogad blankett.\r\n".encode()
        + b"--b\r\nContent-Type: application/pdf\r\n"
        + b'Content-Disposition: attachment; filename="blankett.pdf"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + attachment.replace(b"\n", b"\r\n")
        + b"--b--\r\n"
    )


def mail_of_1000_parts() -> bytes:
    parts = b"".join(
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDel %d av svaret.\r\n" % number
        for number in range(1000)
    )
    return _head(b'multipart/mixed; boundary="b"') + b"\r\n" + parts + b"--b--\r\n"


def mail_in_unknown_charsets() -> bytes:
    return (
        _head(b"text/plain; charset=x-no-such-charset", b"=?x-bogus?Q?SV:_Fr=E5ga?=")
        + b"\r\nHej! Bygglov kr\xe4vs inte f\xf6r 12 kvadratmeter.\r\n"
    )


def mail_with_invalid_utf8() -> bytes:
    return (
        _head(b"text/plain; charset=utf-8", b"=?utf-8?B?U1Y6IP//?=")
        + b"\r\nHej! Bygglov kr\xe4vs inte f\xf6r 12 kvadratmeter.\r\n"
    )


def mail_without_header_end() -> bytes:
    return _head(b"multipart/mixed; boundary=")[:-40]


BAD_MAIL = [
    pytest.param(mail_of_25_mb, "large-message", id="25-MB"),
    pytest.param(mail_of_1000_parts, "too-many-parts", id="1000-parts"),
    pytest.param(mail_in_unknown_charsets, "undecodable-charset:x-no-such-charset", id="charset"),
    pytest.param(mail_in_unknown_charsets, "undecodable-header:subject", id="header-charset"),
    pytest.param(mail_with_invalid_utf8, "undecodable-text:utf-8", id="invalid-utf-8"),
]


@pytest.mark.parametrize(("make", "defect"), BAD_MAIL)
async def test_bad_mail_is_stored_with_its_defect_and_still_counts_for_its_probe(
    app: Application, make: Callable[[], bytes], defect: str
) -> None:
    raw = make()
    stored = await app.inbox.ingest(FetchedMail("INBOX", 7, 101, ARRIVED, raw))

    row = await app.store.message(stored.message_key)
    assert row is not None
    assert defect in row.defects
    assert row.size == len(raw)
    assert row.raw == raw
    assert (row.probe_token, row.match_method) == (TOKEN, MatchMethod.ADDRESS)
    assert app.registry.get_sample_value("svarstid_messages_flagged_total") == 1.0
    checkpoint = await app.store.checkpoint("INBOX")
    assert checkpoint is not None and checkpoint.last_uid == 101


async def test_answer_with_a_25_mb_attachment_counts_as_an_answer(app: Application) -> None:
    stored = await app.inbox.ingest(FetchedMail("INBOX", 7, 101, ARRIVED, mail_of_25_mb()))
    assert stored.kind is MessageKind.HUMAN
    assert stored.has_new_text
    outcome = await app.store.outcome(TOKEN)
    assert outcome is not None and outcome.first_human_at == ARRIVED


async def test_mail_cut_off_inside_its_headers_is_stored_unmatched_and_flagged(
    app: Application,
) -> None:
    raw = b"From: someone@\xff\xfe\r\nTo: <<<\r\nContent-Type: multipart/mixed; bound"
    stored = await app.inbox.ingest(FetchedMail("INBOX", 7, 102, ARRIVED, raw))
    row = await app.store.message(stored.message_key)
    assert row is not None and row.defects
    assert row.probe_token is None


def test_a_parsed_large_mail_keeps_its_full_size_but_parses_only_the_head() -> None:
    raw = mail_of_25_mb()
    parsed = parse_message(raw)
    assert len(raw) > MAX_PARSED_BYTES
    assert parsed.size == len(raw)
    assert parsed.text.startswith("Hej! Ja, bygglov krävs.")
    assert parsed.attachment_names == ("blankett.pdf",)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("\r\n" * 20_000, id="empty-lines"),
        pytest.param(" \t\r\n" * 10_000, id="blank-lines"),
        pytest.param("x skrev\r\n" * 5_000, id="almost-attributions"),
        pytest.param("-" * 100_000, id="one-long-rule"),
    ],
)
def test_classifying_long_runs_of_blank_or_repeated_lines_finishes(body: str) -> None:
    # Regression: these took from one to several minutes when a quote regex was quadratic.
    raw = _head(b"text/plain; charset=utf-8") + b"\r\n" + body.encode()
    assert classify(parse_message(raw)).kind is MessageKind.HUMAN

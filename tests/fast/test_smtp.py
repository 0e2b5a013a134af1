"""SmtpSender against real SMTP servers on 127.0.0.1 (aiosmtpd, and a scripted one)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from monitor.adapters.smtp import (
    SendResult,
    SendStatus,
    SmtpSecurity,
    SmtpSender,
    SmtpSettings,
    SmtpUnavailable,
    wire_bytes,
)
from monitor.demo.mailservers import RecordingSmtpServer

SmtpServerFactory = Callable[..., Awaitable[RecordingSmtpServer]]
ACCEPTED_AT = datetime(2025, 3, 4, 9, 15, 0, 123456, tzinfo=UTC)
SENDER = "svar+abcdefghij@matning.example.se"
TARGET = "kontakt@kommun.example.se"


def fixed_clock() -> datetime:
    return ACCEPTED_AT


def probe_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Åsa Lind <{SENDER}>"
    message["To"] = TARGET
    message["Subject"] = "Fråga om sophämtning"
    message["Message-ID"] = "<probe.abcdefghij@matning.example.se>"
    message.set_content(
        "Hej!\n.punkt först på raden\nNär hämtas soporna?\n\nÅsa Lind\n", cte="8bit"
    )
    return message


def settings_for(
    port: int,
    security: SmtpSecurity = SmtpSecurity.NONE,
    *,
    username: str | None = None,
    password: str | None = None,
    ca_file: Path | None = None,
    timeout: float = 10,
) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1",
        port=port,
        security=security,
        username=username,
        password=password,
        timeout=timeout,
        ca_file=ca_file,
        helo_name="svarstid.test",
    )


@contextlib.asynccontextmanager
async def sender_for(settings: SmtpSettings) -> AsyncIterator[SmtpSender]:
    sender = SmtpSender(settings, fixed_clock)
    try:
        yield sender
    finally:
        await sender.close()


async def send_probe(settings: SmtpSettings, recipients: list[str] | None = None) -> SendResult:
    async with sender_for(settings) as sender:
        return await sender.send(probe_message(), sender=SENDER, recipients=recipients or [TARGET])


async def test_accepted_message_arrives_byte_for_byte_without_added_headers(
    smtp_server: RecordingSmtpServer,
) -> None:
    message = probe_message()

    result = await send_probe(settings_for(smtp_server.port))

    [received] = smtp_server.messages
    assert result == SendResult(
        SendStatus.ACCEPTED, ACCEPTED_AT, code=250, detail="Message accepted for delivery"
    )
    assert received.raw == wire_bytes(message)
    assert received.raw.startswith(b"From: ")
    header_block = received.raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in header_block.split(b"\r\n") if line[:1] != b" "]
    assert names == [name.encode() for name in message]
    assert (received.mail_from, received.rcpt_tos) == (SENDER, (TARGET,))


async def test_wire_bytes_keep_a_leading_dot_after_dot_stuffing(
    smtp_server: RecordingSmtpServer,
) -> None:
    await send_probe(settings_for(smtp_server.port))

    assert b"\r\n.punkt f" in smtp_server.messages[0].raw


@pytest.mark.parametrize(
    ("code", "text", "permanent"),
    [
        (550, "5.1.1 No such user", True),
        (553, "5.1.3 Bad address syntax", True),
        (450, "4.2.1 Mailbox busy, try later", False),
        (451, "4.3.0 Local error", False),
    ],
)
async def test_refused_recipient_fails_with_permanence_from_the_reply_code(
    smtp_server: RecordingSmtpServer, code: int, text: str, permanent: bool
) -> None:
    smtp_server.reject_recipients[TARGET] = (code, text)

    result = await send_probe(settings_for(smtp_server.port))

    assert result.status is SendStatus.FAILED
    assert (result.permanent, result.code) == (permanent, code)
    assert text in (result.detail or "")
    assert smtp_server.messages == []


async def test_one_refused_recipient_of_two_sends_nothing(
    smtp_server: RecordingSmtpServer,
) -> None:
    smtp_server.reject_recipients["gone@kommun.example.se"] = (550, "5.1.1 No such user")

    result = await send_probe(settings_for(smtp_server.port), [TARGET, "gone@kommun.example.se"])

    assert (result.status, result.permanent) == (SendStatus.FAILED, True)
    assert smtp_server.messages == []


async def test_connection_refused_is_a_transient_failure_without_code(
    smtp_server: RecordingSmtpServer,
) -> None:
    port = smtp_server.port
    await smtp_server.stop()

    result = await send_probe(settings_for(port))

    assert (result.status, result.permanent, result.code) == (SendStatus.FAILED, False, None)
    assert result.accepted_at is None


async def test_reused_connection_carries_consecutive_sends(
    smtp_server: RecordingSmtpServer,
) -> None:
    async with sender_for(settings_for(smtp_server.port)) as sender:
        for _ in range(3):
            result = await sender.send(probe_message(), sender=SENDER, recipients=[TARGET])
            assert result.status is SendStatus.ACCEPTED

    assert [m.connection for m in smtp_server.messages] == [1, 1, 1]


async def test_refusal_leaves_the_connection_usable_for_the_next_send(
    smtp_server: RecordingSmtpServer,
) -> None:
    smtp_server.reject_recipients["gone@kommun.example.se"] = (550, "5.1.1 No such user")
    async with sender_for(settings_for(smtp_server.port)) as sender:
        refused = await sender.send(
            probe_message(), sender=SENDER, recipients=["gone@kommun.example.se"]
        )
        accepted = await sender.send(probe_message(), sender=SENDER, recipients=[TARGET])

    assert (refused.status, accepted.status) == (SendStatus.FAILED, SendStatus.ACCEPTED)
    assert smtp_server.messages[0].rcpt_tos == (TARGET,)


async def test_sender_reconnects_after_the_server_restarted(
    smtp_server: RecordingSmtpServer,
) -> None:
    port = smtp_server.port
    async with sender_for(settings_for(port)) as sender:
        first = await sender.send(probe_message(), sender=SENDER, recipients=[TARGET])
        await smtp_server.stop()
        await smtp_server.start(port=port)
        second = await sender.send(probe_message(), sender=SENDER, recipients=[TARGET])

    assert (first.status, second.status) == (SendStatus.ACCEPTED, SendStatus.ACCEPTED)
    assert len(smtp_server.messages) == 2


async def test_starttls_with_trusted_ca_encrypts_the_session(
    smtp_server_factory: SmtpServerFactory, tls_certs: Any
) -> None:
    server = await smtp_server_factory(
        tls_context=tls_certs.server_context,
        require_starttls=True,
    )

    result = await send_probe(
        settings_for(server.port, SmtpSecurity.STARTTLS, ca_file=tls_certs.ca_file)
    )

    assert result.status is SendStatus.ACCEPTED
    assert server.messages[0].tls


async def test_starttls_required_but_not_offered_fails_instead_of_sending_in_clear(
    smtp_server: RecordingSmtpServer,
) -> None:
    result = await send_probe(settings_for(smtp_server.port, SmtpSecurity.STARTTLS))

    assert (result.status, result.permanent) == (SendStatus.FAILED, False)
    assert "STARTTLS" in (result.detail or "")
    assert smtp_server.messages == []


async def test_security_none_does_not_upgrade_when_starttls_is_offered(
    smtp_server_factory: SmtpServerFactory, tls_certs: Any
) -> None:
    server = await smtp_server_factory(tls_context=tls_certs.server_context)

    result = await send_probe(settings_for(server.port, SmtpSecurity.NONE))

    assert result.status is SendStatus.ACCEPTED
    assert not server.messages[0].tls


async def test_untrusted_certificate_is_a_transient_failure(
    smtp_server_factory: SmtpServerFactory, tls_certs: Any
) -> None:
    server = await smtp_server_factory(tls_context=tls_certs.server_context)

    result = await send_probe(settings_for(server.port, SmtpSecurity.STARTTLS))

    assert (result.status, result.permanent) == (SendStatus.FAILED, False)
    assert "SSLCertVerificationError" in (result.detail or "")
    assert server.messages == []


async def test_implicit_tls_with_trusted_ca(
    smtp_server_factory: SmtpServerFactory, tls_certs: Any
) -> None:
    server = await smtp_server_factory(
        tls_context=tls_certs.server_context,
        implicit_tls=True,
    )

    result = await send_probe(
        settings_for(server.port, SmtpSecurity.TLS, ca_file=tls_certs.ca_file)
    )

    assert result.status is SendStatus.ACCEPTED
    assert server.messages[0].tls


async def test_auth_with_username_over_starttls(
    smtp_server_factory: SmtpServerFactory, tls_certs: Any
) -> None:
    server = await smtp_server_factory(
        tls_context=tls_certs.server_context,
        auth=("matning", "hemligt-lösen"),
    )
    settings = settings_for(
        server.port,
        SmtpSecurity.STARTTLS,
        username="matning",
        password="hemligt-lösen",
        ca_file=tls_certs.ca_file,
    )

    result = await send_probe(settings)

    assert result.status is SendStatus.ACCEPTED
    assert server.messages[0].authenticated_as == "matning"


async def test_auth_plain_without_tls_on_a_plain_server(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = await smtp_server_factory(auth=("matning", "pw"))

    result = await send_probe(settings_for(server.port, username="matning", password="pw"))

    assert result.status is SendStatus.ACCEPTED
    assert server.messages[0].authenticated_as == "matning"


async def test_no_username_means_no_auth(smtp_server_factory: SmtpServerFactory) -> None:
    server = await smtp_server_factory(auth=("matning", "pw"))

    result = await send_probe(settings_for(server.port))

    assert (result.status, result.code) == (SendStatus.FAILED, 530)
    assert server.messages == []


async def test_wrong_password_fails_transiently_and_is_never_shown(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = await smtp_server_factory(auth=("matning", "pw"))
    settings = settings_for(server.port, username="matning", password="fel-lösen-123")

    result = await send_probe(settings)

    assert (result.status, result.permanent, result.code) == (SendStatus.FAILED, False, 535)
    assert "fel-lösen-123" not in repr(result)
    assert "fel-lösen-123" not in repr(settings)


async def test_check_passes_on_a_working_server_and_raises_when_refused(
    smtp_server: RecordingSmtpServer,
) -> None:
    async with sender_for(settings_for(smtp_server.port)) as sender:
        await sender.check()
    port = smtp_server.port
    await smtp_server.stop()

    async with sender_for(settings_for(port)) as sender:
        with pytest.raises(SmtpUnavailable, match=f"127.0.0.1:{port}"):
            await sender.check()


# A scripted SMTP peer for what aiosmtpd will not do: vanish or fall silent after the body.


@contextlib.asynccontextmanager
async def scripted_server(after_body: str) -> AsyncIterator[int]:
    """``after_body``: "drop" closes the socket, "silent" never answers, else a reply line."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-scripted\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await reader.readuntil(b"\r\n.\r\n")
                if after_body == "drop":
                    break
                if after_body == "silent":
                    await asyncio.Event().wait()
                writer.write(after_body.encode() + b"\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


async def test_connection_dropped_after_the_body_is_uncertain() -> None:
    async with scripted_server("drop") as port:
        result = await send_probe(settings_for(port))

    assert result.status is SendStatus.UNCERTAIN
    assert (result.accepted_at, result.permanent) == (None, None)


async def test_no_reply_after_the_body_within_timeout_is_uncertain() -> None:
    async with scripted_server("silent") as port:
        result = await send_probe(settings_for(port, timeout=0.2))

    assert result.status is SendStatus.UNCERTAIN


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("554 5.6.0 Message refused as spam", True), ("452 4.3.1 Out of storage", False)],
)
async def test_refusal_at_end_of_data_is_a_definite_failure(reply: str, permanent: bool) -> None:
    async with scripted_server(reply) as port:
        result = await send_probe(settings_for(port))

    assert (result.status, result.permanent, result.code) == (
        SendStatus.FAILED,
        permanent,
        int(reply[:3]),
    )

"""The in-process servers behave like real ones, seen through real protocol clients."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import aioimaplib
import aiosmtplib
import pytest

from monitor.demo.mailservers import InProcessImapServer, ReceivedSmtp, RecordingSmtpServer

ImapServerFactory = Callable[..., Awaitable[InProcessImapServer]]
IMAP_USER = "svar@matning.example.se"  # the imap_server fixture's one user
IMAP_PASSWORD = "imap-secret"
WAIT = 10  # upper bound so a broken server fails the test instead of hanging it
RAW = b"From: a@example.se\r\nTo: b@example.se\r\nSubject: Hej\r\n\r\nTack!\r\n"


async def send_plain(
    server: RecordingSmtpServer, recipients: list[str], sender: str = "a@example.se"
) -> None:
    """RAW through a real SMTP client, without STARTTLS."""
    await aiosmtplib.send(
        RAW,
        sender=sender,
        recipients=recipients,
        hostname=server.host,
        port=server.port,
        start_tls=False,
    )


async def _imap_login(server: InProcessImapServer, user: str, password: str) -> aioimaplib.IMAP4:
    client = aioimaplib.IMAP4(server.host, server.port, timeout=5)
    await client.wait_hello_from_server()
    response = await client.login(user, password)
    assert response.result == "OK"
    return client


async def test_smtp_server_records_envelope_and_exact_bytes(
    smtp_server: RecordingSmtpServer,
) -> None:
    await send_plain(smtp_server, ["b@example.se", "c@example.se"])

    [received] = smtp_server.messages
    assert received.mail_from == "a@example.se"
    assert received.rcpt_tos == ("b@example.se", "c@example.se")
    assert received.raw == RAW
    assert received.received_at.tzinfo is not None
    assert not received.tls
    assert received.authenticated_as is None


async def test_smtp_server_refuses_configured_recipient_with_its_code(
    smtp_server: RecordingSmtpServer,
) -> None:
    smtp_server.reject_recipients["gone@example.se"] = (550, "5.1.1 No such user")

    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await send_plain(smtp_server, ["Gone@example.se"])

    assert refused.value.recipients[0].code == 550
    assert smtp_server.messages == []


async def test_smtp_server_runs_on_message_hook_after_accepting(
    smtp_server: RecordingSmtpServer,
) -> None:
    hooked: asyncio.Queue[ReceivedSmtp] = asyncio.Queue()
    smtp_server.on_message = hooked.put

    await send_plain(smtp_server, ["b@example.se"])

    received = await asyncio.wait_for(hooked.get(), 10)
    assert received is smtp_server.messages[0]


async def test_smtp_server_counts_connections(smtp_server: RecordingSmtpServer) -> None:
    for _ in range(2):
        await send_plain(smtp_server, ["b@example.se"])

    assert [m.connection for m in await smtp_server.wait_for_messages(2)] == [1, 2]


async def test_imap_append_keeps_internaldate_and_returns_uid(
    imap_server: InProcessImapServer,
) -> None:
    when = datetime(2025, 1, 7, 16, 59, 58, tzinfo=timezone(timedelta(hours=1)))
    first = await imap_server.append(IMAP_USER, RAW, internaldate=when - timedelta(days=90))
    second = await imap_server.append(IMAP_USER, RAW, internaldate=when)
    client = await _imap_login(imap_server, IMAP_USER, IMAP_PASSWORD)
    await client.select("INBOX")

    response = await client.uid("fetch", f"{second}", "(INTERNALDATE)")

    assert (first, second) == (101, 102)
    assert b'INTERNALDATE "07-Jan-2025 16:59:58 +0100"' in response.lines[0]
    await client.logout()


async def test_imap_append_rejects_naive_internaldate(imap_server: InProcessImapServer) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await imap_server.append(IMAP_USER, RAW, internaldate=datetime(2025, 1, 7, 12, 0))


async def test_imap_users_have_separate_mailboxes_and_passwords(
    imap_server_factory: ImapServerFactory,
) -> None:
    server = await imap_server_factory(users={"anna@x.se": "pw-a", "bo@x.se": "pw-b"})
    await server.append("anna@x.se", RAW, internaldate=datetime.now(UTC))
    bo = await _imap_login(server, "bo@x.se", "pw-b")

    selected = await bo.select("INBOX")
    wrong = aioimaplib.IMAP4(server.host, server.port, timeout=5)
    await wrong.wait_hello_from_server()
    refused = await wrong.login("anna@x.se", "pw-b")

    assert b"0 EXISTS" in selected.lines
    assert refused.result == "NO"
    await bo.logout()
    await wrong.logout()


async def test_imap_append_to_other_folder_creates_it(imap_server: InProcessImapServer) -> None:
    uid = await imap_server.append(IMAP_USER, RAW, internaldate=datetime.now(UTC), folder="Svar")
    client = await _imap_login(imap_server, IMAP_USER, IMAP_PASSWORD)

    selected = await client.select("Svar")

    assert uid == 101
    assert b"1 EXISTS" in selected.lines
    await client.logout()


async def test_imap_restart_on_same_port_gives_new_uidvalidity_and_empty_mailbox(
    imap_server: InProcessImapServer,
) -> None:
    await imap_server.append(IMAP_USER, RAW, internaldate=datetime.now(UTC))
    before = await imap_server.uidvalidity(IMAP_USER)
    port = imap_server.port

    await imap_server.stop()
    await imap_server.start(port=port, users={IMAP_USER: IMAP_PASSWORD})
    client = await _imap_login(imap_server, IMAP_USER, IMAP_PASSWORD)
    selected = await client.select("INBOX")

    assert imap_server.port == port
    assert await imap_server.uidvalidity(IMAP_USER) != before
    assert f"[UIDVALIDITY {before}]".encode() not in b" ".join(selected.lines)
    assert b"0 EXISTS" in selected.lines
    await client.logout()


async def test_imap_server_without_idle_hides_the_capability(
    imap_server_factory: ImapServerFactory,
) -> None:
    server = await imap_server_factory(idle=False)
    client = await _imap_login(server, IMAP_USER, IMAP_PASSWORD)

    await client.protocol.capability()

    assert not client.has_capability("IDLE")
    await client.logout()


async def test_imap_stop_drops_connected_clients(imap_server: InProcessImapServer) -> None:
    lost = asyncio.Event()
    client = aioimaplib.IMAP4(
        imap_server.host, imap_server.port, timeout=5, conn_lost_cb=lambda _exc: lost.set()
    )
    await client.wait_hello_from_server()

    await imap_server.stop()

    await asyncio.wait_for(lost.wait(), 10)


async def test_smtp_hook_can_answer_into_the_imap_mailbox(
    smtp_server: RecordingSmtpServer, imap_server: InProcessImapServer
) -> None:
    """The demo's wiring: a probe accepted by SMTP makes a reply appear over IMAP."""

    async def municipality_answers(received: ReceivedSmtp) -> None:
        reply = b"From: kontakt@kommun.example.se\r\nSubject: Re: Hej\r\n\r\nSvar.\r\n"
        await imap_server.append(IMAP_USER, reply, internaldate=received.received_at)

    smtp_server.on_message = municipality_answers
    client = await _imap_login(imap_server, IMAP_USER, IMAP_PASSWORD)
    await client.select("INBOX")
    idle = await client.idle_start(timeout=WAIT)

    await send_plain(smtp_server, ["kontakt@kommun.example.se"], sender=IMAP_USER)
    pushed = await client.wait_server_push(timeout=WAIT)
    client.idle_done()
    await asyncio.wait_for(idle, WAIT)
    await client.logout()

    assert b"1 EXISTS" in pushed

"""Bursts of mail over real IMAP APPEND: no message waits for the IDLE renewal.

Servers may announce a new message (``* N EXISTS``) inside the answer to another command,
where the IMAP client library drops it, and never announce it again. The watcher must not
IDLE while the folder may hold unseen UIDs, whatever the server does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aioimaplib
import pytest

from monitor.adapters.imap import FetchedMail, ImapSecurity, ImapSettings, MailboxWatcher
from monitor.demo.mailservers import InProcessImapServer
from monitor.domain.model import Checkpoint

USER = "svar@matning.example.se"
PASSWORD = "imap-secret"
PROMPT = 1.0  # every mail of a burst is recorded within this long after the burst's end
RENEW = 600  # far beyond every bound here: only a fix, not a renewal, can pass these tests


def reply(n: int) -> bytes:
    return (
        f"From: kommun{n}@example.se\r\nTo: svar+tok{n}@matning.example.se\r\n"
        f"Subject: Svar {n}\r\nDate: Mon, 3 Feb 2025 09:00:00 +0100\r\n\r\nHej {n}.\r\n"
    ).encode()


@dataclass
class RecordingInbox:
    checkpoint: Checkpoint | None = None
    recorded: dict[bytes, float] = field(default_factory=dict)
    before_search: Callable[[], Awaitable[None]] | None = None
    during_commit: Callable[[], Awaitable[None]] | None = None

    async def load_checkpoint(self, folder: str) -> Checkpoint | None:
        if self.before_search is not None:
            hook, self.before_search = self.before_search, None
            await hook()
        return self.checkpoint

    async def handle(self, mail: FetchedMail) -> None:
        if self.during_commit is not None:
            hook, self.during_commit = self.during_commit, None
            await hook()
        self.recorded[mail.raw] = time.monotonic()
        self.checkpoint = Checkpoint(mail.folder, mail.uidvalidity, mail.uid)

    async def wait_for(self, count: int, bound: float) -> None:
        deadline = time.monotonic() + bound
        while len(self.recorded) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


async def appender(server: InProcessImapServer) -> aioimaplib.IMAP4:
    client = aioimaplib.IMAP4(host=server.host, port=server.port, timeout=5)
    await client.wait_hello_from_server()
    await client.login(USER, PASSWORD)
    return client


async def append(client: aioimaplib.IMAP4, raw: bytes) -> None:
    response = await client.append(raw, mailbox="INBOX", date=datetime.now(UTC))
    assert response.result == "OK", response


async def watching(server: InProcessImapServer, inbox: RecordingInbox) -> MailboxWatcher:
    settings = ImapSettings(
        host=server.host,
        port=server.port,
        security=ImapSecurity.NONE,
        username=USER,
        password=PASSWORD,
        timeout=5,
        idle_renew_seconds=RENEW,
        liveness_seconds=RENEW,
    )
    watcher = MailboxWatcher(settings, load_checkpoint=inbox.load_checkpoint, handle=inbox.handle)
    asyncio.get_running_loop().create_task(watcher.run())
    await inbox.wait_for(0, 0)
    for _ in range(200):  # until the first IDLE is under way
        await asyncio.sleep(0.01)
        if watcher._connection is not None and watcher._connection.client.has_pending_idle():
            break
    return watcher


@pytest.mark.parametrize("size", [1, 2, 5, 20, 200])
@pytest.mark.parametrize("connections", [1, 4])
async def test_every_mail_of_a_burst_is_recorded_promptly(
    imap_server: InProcessImapServer, size: int, connections: int
) -> None:
    inbox = RecordingInbox()
    watcher = await watching(imap_server, inbox)
    clients = [await appender(imap_server) for _ in range(connections)]
    try:
        mails = [reply(n) for n in range(size)]
        await asyncio.gather(
            *(_append_all(clients[k], mails[k::connections]) for k in range(connections))
        )
        burst_end = time.monotonic()
        # 200 mails are worked through one by one: allow ingest time per mail, not a renewal.
        await inbox.wait_for(size, PROMPT + 0.02 * size)
        late = [m for m in mails if m not in inbox.recorded]
        assert late == [], f"{len(late)} of {size} mails still waiting"
        slowest = max(inbox.recorded.values()) - burst_end
        assert slowest <= PROMPT + 0.02 * size
    finally:
        await watcher.stop()
        for client in clients:
            await client.logout()


async def _append_all(client: aioimaplib.IMAP4, mails: list[bytes]) -> None:
    for raw in mails:
        await append(client, raw)


async def test_a_mail_appended_while_the_watcher_searches_is_recorded(
    imap_server: InProcessImapServer,
) -> None:
    inbox = RecordingInbox()
    watcher = await watching(imap_server, inbox)
    client = await appender(imap_server)
    try:

        async def second() -> None:
            await append(client, reply(2))

        inbox.before_search = second
        await append(client, reply(1))
        await inbox.wait_for(2, PROMPT)
        assert set(inbox.recorded) == {reply(1), reply(2)}
    finally:
        await watcher.stop()
        await client.logout()


async def test_a_mail_appended_during_the_commit_of_another_is_recorded(
    imap_server: InProcessImapServer,
) -> None:
    inbox = RecordingInbox()
    watcher = await watching(imap_server, inbox)
    client = await appender(imap_server)
    try:

        async def second() -> None:
            await append(client, reply(2))
            await asyncio.sleep(0.05)  # the server's EXISTS lands while no command waits

        inbox.during_commit = second
        await append(client, reply(1))
        await inbox.wait_for(2, PROMPT)
        assert set(inbox.recorded) == {reply(1), reply(2)}
    finally:
        await watcher.stop()
        await client.logout()


@dataclass
class FreezableProxy:
    """A TCP relay on loopback that can stop forwarding, like a frozen or vanished server."""

    upstream_port: int
    frozen: bool = False
    port: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            while self.frozen:
                await asyncio.sleep(0.05)
            writer.write(data)
            await writer.drain()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_frozen_server_shows_as_disconnected_within_the_liveness_bound(
    imap_server: InProcessImapServer,
) -> None:
    proxy = FreezableProxy(imap_server.port)
    await proxy.start()
    changes: list[tuple[bool, float]] = []
    settings = ImapSettings(
        host="127.0.0.1",
        port=proxy.port,
        security=ImapSecurity.NONE,
        username=USER,
        password=PASSWORD,
        timeout=30,
        liveness_seconds=1,
        liveness_timeout=1,
    )
    inbox = RecordingInbox()
    watcher = MailboxWatcher(
        settings,
        load_checkpoint=inbox.load_checkpoint,
        handle=inbox.handle,
        on_connection_change=lambda up: changes.append((up, time.monotonic())),
    )
    task = asyncio.get_running_loop().create_task(watcher.run())
    try:
        for _ in range(300):
            await asyncio.sleep(0.01)
            if changes:
                break
        assert changes and changes[0][0] is True
        proxy.frozen = True
        frozen_at = time.monotonic()
        for _ in range(600):
            await asyncio.sleep(0.01)
            if len(changes) > 1:
                break
        assert len(changes) > 1 and changes[1][0] is False, changes
        # liveness_seconds + liveness_timeout, with room for a loaded machine
        assert changes[1][1] - frozen_at <= 2 + 2
    finally:
        proxy.frozen = False
        await watcher.stop()
        task.cancel()
        await proxy.stop()

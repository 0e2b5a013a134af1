"""MailboxWatcher against a real IMAP server (pymap in-process) on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aioimaplib
import pytest

from monitor.adapters.imap import (
    Backoff,
    FetchedItem,
    FetchedMail,
    ImapError,
    ImapSecurity,
    ImapSettings,
    MailboxWatcher,
    parse_fetch,
    parse_internaldate,
    parse_search,
    parse_select,
)
from monitor.demo.mailservers import InProcessImapServer
from monitor.domain.model import Checkpoint

ImapServerFactory = Callable[..., Awaitable[InProcessImapServer]]
USER = "svar@matning.example.se"  # the imap_server fixture's one user
PASSWORD = "imap-secret"
FAST_BACKOFF = Backoff(initial=0.02, maximum=0.1)
WAIT = 10  # upper bound so a broken watcher fails the test instead of hanging it


def raw_mail(n: int) -> bytes:
    return (
        f"From: kommun{n}@example.se\r\nTo: svar+tok{n}@matning.example.se\r\n"
        f"Subject: Svar {n}\r\n\r\nHej, svar nummer {n}.\r\n"
    ).encode()


@dataclass
class Inbox:
    """What the daemon's handler does, in memory: keep the mail, advance the checkpoint."""

    checkpoint: Checkpoint | None = None
    mails: list[FetchedMail] = field(default_factory=list)
    arrived: asyncio.Queue[FetchedMail] = field(default_factory=asyncio.Queue)
    fail_next: int = 0

    async def load_checkpoint(self, folder: str) -> Checkpoint | None:
        return self.checkpoint

    async def handle(self, mail: FetchedMail) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("database unavailable")
        self.mails.append(mail)
        self.checkpoint = Checkpoint(mail.folder, mail.uidvalidity, mail.uid)
        await self.arrived.put(mail)

    async def next_mail(self) -> FetchedMail:
        return await asyncio.wait_for(self.arrived.get(), WAIT)


def settings_for(server: InProcessImapServer, **overrides: Any) -> ImapSettings:
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "security": ImapSecurity.NONE,
        "username": USER,
        "password": PASSWORD,
        "timeout": 5,
    }
    values.update(overrides)
    return ImapSettings(**values)


def watcher_for(
    settings: ImapSettings, inbox: Inbox, connections: list[bool] | None = None
) -> MailboxWatcher:
    return MailboxWatcher(
        settings,
        load_checkpoint=inbox.load_checkpoint,
        handle=inbox.handle,
        on_connection_change=(connections if connections is not None else []).append,
        backoff=FAST_BACKOFF,
    )


async def fill(server: InProcessImapServer, count: int) -> list[datetime]:
    base = datetime(2025, 2, 3, 8, 30, tzinfo=timezone(timedelta(hours=1)))
    dates = [base + timedelta(hours=n) for n in range(count)]
    for n, when in enumerate(dates):
        await server.append(USER, raw_mail(n), internaldate=when)
    return dates


async def test_fetch_hands_over_existing_mail_in_uid_order_with_internaldate(
    imap_server: InProcessImapServer,
) -> None:
    dates = await fill(imap_server, 3)
    inbox = Inbox()
    watcher = watcher_for(settings_for(imap_server), inbox)

    count = await watcher.fetch_new_once()
    await watcher.stop()

    uidvalidity = await imap_server.uidvalidity(USER)
    assert count == 3
    assert [(m.uid, m.internaldate, m.raw) for m in inbox.mails] == [
        (101 + n, dates[n], raw_mail(n)) for n in range(3)
    ]
    assert {(m.folder, m.uidvalidity) for m in inbox.mails} == {("INBOX", uidvalidity)}


async def test_fetch_starts_after_the_checkpoint(imap_server: InProcessImapServer) -> None:
    await fill(imap_server, 3)
    inbox = Inbox(checkpoint=Checkpoint("INBOX", await imap_server.uidvalidity(USER), 101))
    watcher = watcher_for(settings_for(imap_server), inbox)

    count = await watcher.fetch_new_once()
    await watcher.stop()

    assert count == 2
    assert [m.uid for m in inbox.mails] == [102, 103]


async def test_checkpoint_at_the_last_uid_fetches_nothing_despite_star_range(
    imap_server: InProcessImapServer,
) -> None:
    await fill(imap_server, 2)
    inbox = Inbox(checkpoint=Checkpoint("INBOX", await imap_server.uidvalidity(USER), 102))
    watcher = watcher_for(settings_for(imap_server), inbox)

    count = await watcher.fetch_new_once()
    await watcher.stop()

    assert (count, inbox.mails) == (0, [])


async def test_changed_uidvalidity_rescans_from_the_first_uid(
    imap_server: InProcessImapServer,
) -> None:
    await fill(imap_server, 2)
    old = await imap_server.uidvalidity(USER)
    port = imap_server.port
    await imap_server.stop()
    await imap_server.start(port=port, users={USER: PASSWORD})
    await fill(imap_server, 2)
    inbox = Inbox(checkpoint=Checkpoint("INBOX", old, 102))
    watcher = watcher_for(settings_for(imap_server), inbox)

    count = await watcher.fetch_new_once()
    await watcher.stop()

    assert count == 2
    assert [(m.uid, m.uidvalidity) for m in inbox.mails] == [
        (101, await imap_server.uidvalidity(USER)),
        (102, await imap_server.uidvalidity(USER)),
    ]


async def test_fetching_does_not_mark_mail_as_seen(imap_server: InProcessImapServer) -> None:
    await fill(imap_server, 1)
    watcher = watcher_for(settings_for(imap_server), Inbox())
    await watcher.fetch_new_once()
    await watcher.stop()

    client = aioimaplib.IMAP4(imap_server.host, imap_server.port, timeout=5)
    await client.wait_hello_from_server()
    await client.login(USER, PASSWORD)
    await client.select("INBOX")
    flags = await client.uid("fetch", "101", "(FLAGS)")
    await client.logout()

    assert b"FLAGS" in flags.lines[0]
    assert b"\\Seen" not in flags.lines[0]


async def test_idle_hands_over_mail_appended_while_watching(
    imap_server: InProcessImapServer,
) -> None:
    inbox = Inbox()
    connections: list[bool] = []
    watcher = watcher_for(settings_for(imap_server), inbox, connections)
    running = asyncio.create_task(watcher.run())
    await fill(imap_server, 1)
    first = await inbox.next_mail()

    await imap_server.append(USER, raw_mail(7), internaldate=datetime.now(UTC))
    second = await inbox.next_mail()
    await watcher.stop()

    assert (first.uid, second.uid, second.raw) == (101, 102, raw_mail(7))
    assert running.done()
    assert connections == [True, False]


async def test_stop_ends_idle_and_returns_promptly(imap_server: InProcessImapServer) -> None:
    inbox = Inbox()
    connections: list[bool] = []
    watcher = watcher_for(settings_for(imap_server, timeout=WAIT), inbox, connections)
    running = asyncio.create_task(watcher.run())
    await imap_server.append(USER, raw_mail(1), internaldate=datetime.now(UTC))
    await inbox.next_mail()

    await asyncio.wait_for(watcher.stop(), WAIT)

    assert running.done() and not running.cancelled()
    assert connections == [True, False]


async def test_server_without_idle_is_polled(imap_server_factory: ImapServerFactory) -> None:
    server = await imap_server_factory(idle=False)
    inbox = Inbox()
    watcher = watcher_for(settings_for(server, poll_seconds=0.05), inbox)
    running = asyncio.create_task(watcher.run())
    await fill(server, 1)
    await inbox.next_mail()

    await server.append(USER, raw_mail(5), internaldate=datetime.now(UTC))
    polled = await inbox.next_mail()
    await watcher.stop()

    assert (polled.uid, polled.raw) == (102, raw_mail(5))
    assert running.done()


async def test_watcher_reconnects_after_server_restart_and_rescans(
    imap_server: InProcessImapServer,
) -> None:
    inbox = Inbox()
    connections: list[bool] = []
    watcher = watcher_for(settings_for(imap_server), inbox, connections)
    running = asyncio.create_task(watcher.run())
    await fill(imap_server, 1)
    before = await inbox.next_mail()
    port = imap_server.port

    await imap_server.stop()
    await imap_server.start(port=port, users={USER: PASSWORD})
    await imap_server.append(USER, raw_mail(9), internaldate=datetime.now(UTC))
    after = await inbox.next_mail()
    await watcher.stop()

    assert before.uidvalidity != after.uidvalidity
    assert (after.uid, after.raw) == (101, raw_mail(9))
    assert connections[:3] == [True, False, True]
    assert running.done()


async def test_watcher_keeps_retrying_while_the_server_is_down(
    imap_server: InProcessImapServer,
) -> None:
    port = imap_server.port
    await imap_server.stop()
    inbox = Inbox()
    connections: list[bool] = []
    watcher = watcher_for(settings_for(imap_server), inbox, connections)
    running = asyncio.create_task(watcher.run())
    await asyncio.sleep(0.1)  # let a few connection attempts fail

    await imap_server.start(port=port, users={USER: PASSWORD})
    await imap_server.append(USER, raw_mail(3), internaldate=datetime.now(UTC))
    mail = await inbox.next_mail()
    await watcher.stop()

    assert mail.raw == raw_mail(3)
    assert connections == [True, False]
    assert running.done()


async def test_failing_handler_gets_the_same_mail_again_after_reconnect(
    imap_server: InProcessImapServer,
) -> None:
    await fill(imap_server, 2)
    inbox = Inbox(fail_next=1)
    watcher = watcher_for(settings_for(imap_server), inbox)
    running = asyncio.create_task(watcher.run())

    first = await inbox.next_mail()
    second = await inbox.next_mail()
    await watcher.stop()

    assert (first.uid, second.uid) == (101, 102)
    assert running.done()


async def test_implicit_tls_with_trusted_ca(
    imap_server_factory: ImapServerFactory, tls_certs: Any
) -> None:
    server = await imap_server_factory(tls_context=tls_certs.server_context)
    await fill(server, 1)
    inbox = Inbox()
    settings = settings_for(server, security=ImapSecurity.TLS, ca_file=tls_certs.ca_file)
    watcher = watcher_for(settings, inbox)

    count = await watcher.fetch_new_once()
    await watcher.stop()

    assert (count, inbox.mails[0].raw) == (1, raw_mail(0))


async def test_implicit_tls_without_trusted_ca_fails(
    imap_server_factory: ImapServerFactory, tls_certs: Any
) -> None:
    server = await imap_server_factory(tls_context=tls_certs.server_context)
    watcher = watcher_for(settings_for(server, security=ImapSecurity.TLS), Inbox())

    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        await watcher.fetch_new_once()


async def test_wrong_password_raises_without_showing_it(imap_server: InProcessImapServer) -> None:
    settings = settings_for(imap_server, password="fel-lösen-42")
    watcher = watcher_for(settings, Inbox())

    with pytest.raises(ImapError, match="LOGIN") as failure:
        await watcher.fetch_new_once()

    assert "fel-lösen-42" not in str(failure.value)
    assert "fel-lösen-42" not in repr(settings)


async def test_missing_folder_raises(imap_server: InProcessImapServer) -> None:
    watcher = watcher_for(settings_for(imap_server, folder="Finns-inte"), Inbox())

    with pytest.raises(ImapError, match="SELECT"):
        await watcher.fetch_new_once()


async def test_other_folder_is_watched(imap_server: InProcessImapServer) -> None:
    await imap_server.append(USER, raw_mail(1), internaldate=datetime.now(UTC), folder="Svar")
    inbox = Inbox()
    watcher = watcher_for(settings_for(imap_server, folder="Svar"), inbox)

    await watcher.fetch_new_once()
    await watcher.stop()

    assert [(m.folder, m.raw) for m in inbox.mails] == [("Svar", raw_mail(1))]


# Wire parsing, table-driven.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "17-Jul-1996 02:44:25 -0700",
            datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7))),
        ),
        (" 3-Feb-2025 08:30:00 +0100", datetime(2025, 2, 3, 7, 30, tzinfo=UTC)),
        ("03-feb-2025 08:30:00 +0000", datetime(2025, 2, 3, 8, 30, tzinfo=UTC)),
        ("31-Dec-2024 23:59:59 +0530", datetime(2024, 12, 31, 18, 29, 59, tzinfo=UTC)),
        ("30-Mar-2025 03:00:00 +0200", datetime(2025, 3, 30, 1, 0, tzinfo=UTC)),
    ],
)
def test_internaldate_parses_to_an_aware_instant(text: str, expected: datetime) -> None:
    parsed = parse_internaldate(text)

    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["", "17-Jul-1996", "17-Foo-1996 02:44:25 -0700", "garbage"])
def test_malformed_internaldate_is_an_imap_error(text: str) -> None:
    with pytest.raises(ImapError):
        parse_internaldate(text)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [
                b'1 FETCH (UID 101 INTERNALDATE "03-Feb-2025 08:30:00 +0100" BODY[] {3}',
                bytearray(b"abc"),
                b")",
                b"UID FETCH completed.",
            ],
            [FetchedItem(101, datetime(2025, 2, 3, 7, 30, tzinfo=UTC), b"abc")],
        ),
        (  # items after the literal, as some servers order them
            [
                b'4 FETCH (INTERNALDATE "03-Feb-2025 08:30:00 +0000" RFC822.SIZE 2 BODY[] {2}',
                bytearray(b"hi"),
                b" UID 7)",
                b"OK done",
            ],
            [FetchedItem(7, datetime(2025, 2, 3, 8, 30, tzinfo=UTC), b"hi")],
        ),
        (  # an unsolicited flag update in the same response is no message
            [
                b"2 FETCH (FLAGS (\\Seen))",
                b'3 FETCH (UID 9 INTERNALDATE "03-Feb-2025 08:30:00 +0000" BODY[] {1}',
                bytearray(b"x"),
                b")",
                b"UID FETCH completed. UID 99",
            ],
            [FetchedItem(9, datetime(2025, 2, 3, 8, 30, tzinfo=UTC), b"x")],
        ),
        ([b"UID FETCH completed."], []),
    ],
)
def test_fetch_response_parsing(lines: list[bytes], expected: list[FetchedItem]) -> None:
    assert parse_fetch(lines) == expected


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b"101 102 105", b"UID SEARCH completed."], [101, 102, 105]),
        ([b"SEARCH 7 3", b"OK"], [3, 7]),
        ([b"", b"UID SEARCH completed."], []),
        ([b"UID SEARCH completed 12."], []),
    ],
)
def test_search_response_parsing(lines: list[bytes], expected: list[int]) -> None:
    assert parse_search(lines) == expected


def test_select_response_gives_uidvalidity_and_uidnext() -> None:
    lines = [b"2 EXISTS", b"OK [UIDNEXT 103] Predicted", b"OK [UIDVALIDITY 3096219205] ok", b"x"]

    selected = parse_select(lines)

    assert (selected.uidvalidity, selected.uidnext) == (3096219205, 103)


def test_select_response_without_uidvalidity_is_an_imap_error() -> None:
    with pytest.raises(ImapError, match="UIDVALIDITY"):
        parse_select([b"2 EXISTS", b"[READ-WRITE] Selected."])


@pytest.mark.parametrize(
    ("attempt", "unit_random", "expected"),
    [
        (0, 0.0, 1.0),
        (1, 0.0, 2.0),
        (3, 0.0, 8.0),
        (3, 0.5, 6.0),
        (20, 0.0, 300.0),
        (10_000, 0.0, 300.0),
    ],
)
def test_backoff_grows_exponentially_with_jitter_up_to_the_maximum(
    attempt: int, unit_random: float, expected: float
) -> None:
    assert Backoff(initial=1, maximum=300).delay(attempt, unit_random) == expected


async def test_idle_renewal_keeps_the_session_and_still_sees_new_mail(
    imap_server: InProcessImapServer,
) -> None:
    inbox = Inbox()
    connections: list[bool] = []
    watcher = watcher_for(settings_for(imap_server, idle_renew_seconds=0.02), inbox, connections)
    running = asyncio.create_task(watcher.run())
    await fill(imap_server, 1)
    await inbox.next_mail()
    await asyncio.sleep(0.2)  # several IDLE renewals (DONE + IDLE) happen meanwhile

    await imap_server.append(USER, raw_mail(4), internaldate=datetime.now(UTC))
    mail = await inbox.next_mail()
    await watcher.stop()

    assert mail.raw == raw_mail(4)
    assert connections == [True, False]
    assert running.done()

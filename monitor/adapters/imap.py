"""IMAP adapter: watches one mailbox folder and hands every new message to a callback.

aioimaplib has no STARTTLS: TLS here means implicit TLS (IMAPS, port 993). The watcher keeps
no cursor of its own: before each round it asks ``load_checkpoint`` how far the mailbox was
read, and the ``handle`` callback advances that checkpoint when it commits a message. So a
crash between fetch and commit re-fetches the message, and nothing is ever skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import aioimaplib

from monitor.domain.model import Checkpoint

log = logging.getLogger(__name__)

# aioimaplib logs every received byte at DEBUG, message bodies included: keep it quiet
# whatever the root level is (privacy: bodies never go to a log).
logging.getLogger("aioimaplib.aioimaplib").setLevel(logging.WARNING)

_T = TypeVar("_T")

# RFC 3501 section 9: date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time
# SP zone, where date-day-fixed may start with a space.
_INTERNALDATE = re.compile(
    r"\s*(?P<day>\d{1,2})-(?P<month>[A-Za-z]{3})-(?P<year>\d{4}) "
    r"(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2}) (?P<sign>[+-])(?P<zh>\d{2})(?P<zm>\d{2})"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_FETCH_ITEMS = "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[])"  # PEEK: never set \Seen


class ImapSecurity(StrEnum):
    TLS = "tls"  # implicit TLS (IMAPS)
    NONE = "none"  # plain text: only for loopback or a trusted private network


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: ImapSecurity
    username: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    idle_renew_seconds: float = 1740  # RFC 2177: re-issue IDLE before 29 minutes
    poll_seconds: float = 60
    # A frozen server or a silently dropped connection answers nothing during IDLE: end IDLE
    # this often and require the server's answer to DONE within liveness_timeout.
    liveness_seconds: float = 25
    liveness_timeout: float = 20
    timeout: float = 30
    ca_file: Path | None = None
    # XOAUTH2 (Microsoft 365, Gmail): an access token for ``username`` instead of a password.
    oauth2_token: Callable[[], Awaitable[str]] | None = field(
        default=None, repr=False, compare=False
    )


@dataclass(frozen=True)
class FetchedMail:
    folder: str
    uidvalidity: int
    uid: int
    internaldate: datetime  # when our server received it: the reply time
    raw: bytes


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt 0 waits about ``initial`` seconds."""

    initial: float = 1
    maximum: float = 300
    factor: float = 2
    jitter: float = 0.5  # share of the delay that is random, so restarts don't synchronise

    def delay(self, attempt: int, unit_random: float) -> float:
        """Seconds to wait before reconnect ``attempt`` (0-based); unit_random in [0, 1)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return float(base * (1 - self.jitter * unit_random))


class ImapError(Exception):
    """The server refused a command or broke the protocol (infrastructure, not mail)."""


class ImapDisconnected(ImapError, ConnectionError):
    """The connection is gone (closed, BYE, or reset)."""


@dataclass(frozen=True)
class _SelectedFolder:
    uidvalidity: int
    uidnext: int | None


def parse_internaldate(text: str) -> datetime:
    """'17-Jul-1996 02:44:25 -0700' -> aware datetime (locale-independent)."""
    match = _INTERNALDATE.fullmatch(text)
    if match is None:
        raise ImapError(f"unparseable INTERNALDATE {text!r}")
    offset = timedelta(hours=int(match["zh"]), minutes=int(match["zm"]))
    zone = timezone(-offset if match["sign"] == "-" else offset)
    month = _MONTHS.get(match["month"].lower())
    if month is None:
        raise ImapError(f"unparseable INTERNALDATE {text!r}")
    return datetime(
        int(match["year"]),
        month,
        int(match["day"]),
        int(match["h"]),
        int(match["m"]),
        int(match["s"]),
        tzinfo=zone,
    )


def parse_select(lines: Sequence[bytes | bytearray]) -> _SelectedFolder:
    """UIDVALIDITY and UIDNEXT from the untagged lines of a SELECT response."""
    uidvalidity: int | None = None
    uidnext: int | None = None
    for line in lines:
        if found := _UIDVALIDITY.search(line):
            uidvalidity = int(found[1])
        if found := _UIDNEXT.search(line):
            uidnext = int(found[1])
    if uidvalidity is None:
        raise ImapError("SELECT response without UIDVALIDITY")
    return _SelectedFolder(uidvalidity=uidvalidity, uidnext=uidnext)


def parse_search(lines: Sequence[bytes | bytearray]) -> list[int]:
    """UIDs of a UID SEARCH response; aioimaplib strips the '* SEARCH' prefix."""
    uids: set[int] = set()
    for line in lines[:-1]:  # the last line is the tagged completion text
        text = bytes(line).removeprefix(b"SEARCH")
        uids.update(int(token) for token in text.split() if token.isdigit())
    return sorted(uids)


@dataclass(frozen=True)
class FetchedItem:
    uid: int
    internaldate: datetime
    raw: bytes


def parse_fetch(lines: Sequence[bytes | bytearray]) -> list[FetchedItem]:
    """Messages in a UID FETCH response as aioimaplib returns it.

    Each message is a ``N FETCH (...`` line, the body literal as a bytearray, and the rest
    of the line (``)`` or more items such as `` UID 7)``) as bytes. Unsolicited FETCH
    responses (flag updates) carry no literal and no INTERNALDATE and are skipped.
    """
    items: list[FetchedItem] = []
    for text, literal in _fetch_records(lines[:-1]):
        uid = _FETCH_UID.search(text)
        date = _FETCH_INTERNALDATE.search(text)
        if uid is None or date is None:
            continue
        raw = literal if literal is not None else b""
        items.append(FetchedItem(int(uid[1]), parse_internaldate(date[1].decode("ascii")), raw))
    return items


def _fetch_records(lines: Sequence[bytes | bytearray]) -> list[tuple[bytes, bytes | None]]:
    records: list[tuple[bytes, bytes | None]] = []
    text = b""
    literal: bytes | None = None
    for line in lines:
        if isinstance(line, bytearray):
            literal = bytes(line) if literal is None else literal
        elif _FETCH_START.match(line):
            if text:
                records.append((text, literal))
            text, literal = line, None
        else:
            text += b" " + line
    if text:
        records.append((text, literal))
    return records


def _tls_context(settings: ImapSettings) -> ssl.SSLContext | None:
    if settings.security is ImapSecurity.NONE:
        return None
    cafile = str(settings.ca_file) if settings.ca_file is not None else None
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)


def _check(response: Any, what: str) -> Any:
    if response.result != "OK":
        last = response.lines[-1] if response.lines else b""
        reason = bytes(last).decode("ascii", "replace")[:200]
        raise ImapError(f"{what} failed: {response.result} {reason}")
    return response


_EXISTS = re.compile(rb"^\d+ (EXISTS|RECENT)\b", re.IGNORECASE)
# After this many empty SEARCH rounds in a row that still saw EXISTS, IDLE anyway: a server
# that announces EXISTS on every command must not keep the watcher searching forever.
_MAX_QUIET_ROUNDS = 5


class _ObservingProtocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    """Notes every untagged EXISTS/RECENT, also those aioimaplib drops.

    RFC 3501 7.3.1 lets a server send EXISTS inside any command's response (pymap does so
    within UID FETCH); aioimaplib hands such a line to no one, and the server does not
    announce that message again during the next IDLE.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mailbox_changed = False

    def _untagged_response(self, line: bytes) -> Any:
        if _EXISTS.match(line.removeprefix(b"* ")):
            self.mailbox_changed = True
        return super()._untagged_response(line)


class _ObservingClient(aioimaplib.IMAP4):  # type: ignore[misc]
    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Callable[[Exception | None], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _ObservingProtocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context)
        )


def _enable_keepalive(transport: Any) -> None:
    """TCP keepalive, so a peer that vanished without a FIN is noticed by the kernel too."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


class _Connection:
    """One logged-in IMAP session with a folder selected."""

    def __init__(self, settings: ImapSettings, tls: ssl.SSLContext | None) -> None:
        self.settings = settings
        self.lost = asyncio.Event()
        self.client = _ObservingClient(
            host=settings.host,
            port=settings.port,
            timeout=settings.timeout,
            conn_lost_cb=lambda _exc: self.lost.set(),
            ssl_context=tls,
        )
        self.folder = _SelectedFolder(uidvalidity=0, uidnext=None)
        self.idle_supported = False

    async def open(self) -> None:
        await self.call(self.client.wait_hello_from_server())
        _enable_keepalive(self.client.protocol.transport)
        await self._sign_in()
        # RFC 3501 6.2.3: capabilities may change after login; ask again.
        await self.call(asyncio.wait_for(self.client.protocol.capability(), self.settings.timeout))
        self.idle_supported = self.client.has_capability("IDLE")
        selected = _check(await self.call(self.client.select(self.settings.folder)), "SELECT")
        self.folder = parse_select(selected.lines)

    async def _sign_in(self) -> None:
        username, token_source = self.settings.username, self.settings.oauth2_token
        if token_source is None:
            response = await self.call(self.client.login(username, self.settings.password))
            _check(response, f"LOGIN as {username}")
            return
        token = await token_source()
        # aioimaplib scrubs the token from its own logs; the protocol call takes a str.
        sign_in = asyncio.wait_for(
            self.client.protocol.xoauth2(username, token), self.settings.timeout
        )
        _check(await self.call(sign_in), f"AUTHENTICATE XOAUTH2 as {username}")

    async def call(self, awaitable: Awaitable[_T]) -> _T:
        """Await a client call, failing fast if the connection drops meanwhile.

        aioimaplib leaves pending commands waiting when the socket closes; without this an
        IDLE or a FETCH would hang until its timeout.
        """
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
        if task.cancelled():
            raise ImapDisconnected("connection lost")
        return task.result()

    def take_mailbox_changed(self) -> bool:
        """Whether an EXISTS or RECENT arrived since the last call."""
        protocol = self.client.protocol
        changed = bool(protocol.mailbox_changed)
        protocol.mailbox_changed = False
        return changed

    async def search_above(self, last_uid: int) -> list[int]:
        response = await self.call(self.client.uid_search("UID", f"{last_uid + 1}:*", charset=None))
        # RFC 3501: "N:*" also matches the highest UID when it is below N; filter it out.
        return [uid for uid in parse_search(_check(response, "UID SEARCH").lines) if uid > last_uid]

    async def fetch(self, uid: int) -> FetchedMail | None:
        response = await self.call(self.client.uid("fetch", str(uid), _FETCH_ITEMS))
        for item in parse_fetch(_check(response, "UID FETCH").lines):
            if item.uid == uid:
                return FetchedMail(
                    folder=self.settings.folder,
                    uidvalidity=self.folder.uidvalidity,
                    uid=uid,
                    internaldate=item.internaldate,
                    raw=item.raw,
                )
        return None  # expunged between SEARCH and FETCH

    async def idle(self, stop: asyncio.Event) -> None:
        """IDLE until the server reports a change, renewal or liveness is due, or stop is set.

        Ending IDLE every ``liveness_seconds`` and requiring the tagged answer to DONE within
        ``liveness_timeout`` bounds how long a frozen server looks connected.
        """
        renew = min(self.settings.idle_renew_seconds, self.settings.liveness_seconds)
        try:
            idle_done = await self.call(self.client.idle_start(timeout=renew))
        except aioimaplib.Abort as exc:
            # Advertised but refused (seen behind some proxies): poll on this connection.
            log.warning("imap server refused IDLE (%s); polling instead", exc)
            self.idle_supported = False
            return
        pushed = [] if self._changed_before_idle() else await self._wait_push(stop, renew)
        if self.lost.is_set() or any(line.startswith(b"BYE") for line in pushed):
            raise ImapDisconnected("server closed the connection during IDLE")
        self.client.idle_done()
        timed = asyncio.wait_for(
            idle_done, min(self.settings.timeout, self.settings.liveness_timeout)
        )
        _check(await self.call(timed), "IDLE")
        self._drain_pushes()

    def _changed_before_idle(self) -> bool:
        # An EXISTS between the last empty SEARCH and the server's IDLE continuation reached
        # no command: end this IDLE at once, the caller searches again.
        return bool(self.client.protocol.mailbox_changed)

    async def _wait_push(self, stop: asyncio.Event, renew: float) -> list[bytes]:
        push = asyncio.ensure_future(self.client.wait_server_push(timeout=renew))
        stopped = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({push, stopped, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (push, stopped, lost):
                waiter.cancel()
        return _pushed_lines(push)

    async def poll_wait(self, stop: asyncio.Event) -> None:
        stopped = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait(
                {stopped, lost},
                timeout=self.settings.poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopped.cancel()
            lost.cancel()
        if self.lost.is_set():
            raise ImapDisconnected("connection lost")
        if not stop.is_set():
            noop = asyncio.wait_for(
                self.client.noop(), min(self.settings.timeout, self.settings.liveness_timeout)
            )
            _check(await self.call(noop), "NOOP")

    async def close(self) -> None:
        if not self.lost.is_set():
            try:
                await asyncio.wait_for(
                    self.call(self.client.logout()), min(5, self.settings.timeout)
                )
            except (OSError, TimeoutError, aioimaplib.AioImapException, ImapError) as exc:
                log.debug("imap logout failed: %s", type(exc).__name__)
        if not self.client._client_task.done():
            self.client._client_task.cancel()  # a connect still in flight would leak a socket
        transport = self.client.protocol.transport
        if transport is not None:
            transport.close()

    def _drain_pushes(self) -> None:
        queue = self.client.protocol.idle_queue
        while not queue.empty():
            queue.get_nowait()


def _pushed_lines(push: asyncio.Future[Any]) -> list[bytes]:
    if not push.done() or push.cancelled() or push.exception() is not None:
        return []
    result = push.result()
    return [bytes(line) for line in result] if isinstance(result, list) else []


DEFAULT_BACKOFF = Backoff(initial=1, maximum=300)
_SESSION_ERRORS = (OSError, TimeoutError, aioimaplib.AioImapException, ImapError)


class MailboxWatcher:
    """Fetches new mail from one folder, then waits with IDLE (or polls) for more.

    Messages go to ``handle`` one at a time in UID order; the next one is fetched only after
    ``handle`` returned. Not to be used concurrently: either run() or fetch_new_once().
    """

    def __init__(
        self,
        settings: ImapSettings,
        *,
        load_checkpoint: Callable[[str], Awaitable[Checkpoint | None]],
        handle: Callable[[FetchedMail], Awaitable[None]],
        on_connection_change: Callable[[bool], None] = lambda _: None,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self._settings = settings
        self._load_checkpoint = load_checkpoint
        self._handle = handle
        self._on_connection_change = on_connection_change
        self._backoff = backoff
        self._tls = _tls_context(settings)
        self._connection: _Connection | None = None
        self._stopping = asyncio.Event()
        self._run_task: asyncio.Task[Any] | None = None
        self._failures = 0

    async def run(self) -> None:
        """Watch until stop(); reconnects with exponential backoff and jitter.

        A stopped watcher stays stopped: run() after stop() returns at once.
        """
        self._run_task = asyncio.current_task()
        while not self._stopping.is_set():
            await self._one_session()
            if self._stopping.is_set():
                break
            delay = self._backoff.delay(self._failures, random.random())
            self._failures += 1
            log.info("imap reconnect in %.1f s", delay)
            await self._sleep_unless_stopped(delay)

    async def stop(self) -> None:
        """End IDLE (DONE), log out and return; a handler call in progress may finish."""
        self._stopping.set()
        task = self._run_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            _, pending = await asyncio.wait({task}, timeout=self._settings.timeout)
            for still_running in pending:
                still_running.cancel()
                await asyncio.gather(still_running, return_exceptions=True)
        await self._disconnect()

    async def fetch_new_once(self) -> int:
        """Connect if needed, hand over everything above the checkpoint, return the count."""
        try:
            connection = await self._connected()
            return await self._fetch_new(connection)
        except BaseException:
            await self._disconnect()
            raise

    async def _one_session(self) -> None:
        try:
            connection = await self._connected()
            while not self._stopping.is_set():
                await self._fetch_until_quiet(connection)
                # Reset only now: a handler that fails every time must still back off.
                self._failures = 0
                if self._stopping.is_set():
                    break
                if connection.idle_supported:
                    await connection.idle(self._stopping)
                else:
                    await connection.poll_wait(self._stopping)
        except _SESSION_ERRORS as exc:
            log.warning("imap session ended: %s: %s", type(exc).__name__, exc)
        except Exception:
            log.exception("imap session failed")
        finally:
            await self._disconnect()

    async def _connected(self) -> _Connection:
        if self._connection is not None and not self._connection.lost.is_set():
            return self._connection
        await self._disconnect()
        connection = _Connection(self._settings, self._tls)
        try:
            await connection.open()
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        log.info(
            "imap connected to %s:%s, folder %s (UIDVALIDITY %s, %s)",
            self._settings.host,
            self._settings.port,
            self._settings.folder,
            connection.folder.uidvalidity,
            "IDLE" if connection.idle_supported else "polling",
        )
        self._on_connection_change(True)
        return connection

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Report first: logging out of a frozen server can take the whole logout timeout.
            self._on_connection_change(False)
            await connection.close()

    async def _fetch_until_quiet(self, connection: _Connection) -> None:
        """Search and fetch until a round finds nothing and no EXISTS came meanwhile.

        Only then may the watcher IDLE: a message announced inside an earlier response, or
        delivered while a round was running, is never left waiting for the IDLE renewal.
        """
        quiet_rounds = 0
        while not self._stopping.is_set() and quiet_rounds < _MAX_QUIET_ROUNDS:
            connection.take_mailbox_changed()
            handed_over = await self._fetch_new(connection)
            if handed_over == 0 and not connection.take_mailbox_changed():
                return
            quiet_rounds = quiet_rounds + 1 if handed_over == 0 else 0

    async def _fetch_new(self, connection: _Connection) -> int:
        last_uid = await self._last_uid(connection.folder.uidvalidity)
        count = 0
        for uid in await connection.search_above(last_uid):
            if self._stopping.is_set():
                break
            mail = await connection.fetch(uid)
            if mail is None:
                continue
            await self._handle(mail)
            count += 1
        return count

    async def _last_uid(self, uidvalidity: int) -> int:
        checkpoint = await self._load_checkpoint(self._settings.folder)
        if checkpoint is None:
            return 0
        if checkpoint.uidvalidity != uidvalidity:
            # RFC 3501 2.3.1.1: old UIDs mean nothing now; rescan, the handler dedupes.
            log.warning(
                "UIDVALIDITY of %s changed from %s to %s: rescanning the folder",
                self._settings.folder,
                checkpoint.uidvalidity,
                uidvalidity,
            )
            return 0
        return checkpoint.last_uid

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

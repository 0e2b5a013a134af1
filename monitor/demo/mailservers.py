"""In-process mail servers on real loopback sockets, for the fast tests and `svarstid demo`.

RecordingSmtpServer is aiosmtpd behind ``loop.create_server`` (its Controller cannot bind
port 0). InProcessImapServer is pymap's in-memory dict backend behind
``asyncio.start_server``. Both close their client connections on stop(), so a client sees a
real disconnect, as it would when a production server restarts.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import warnings
from argparse import Namespace
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from proxyprotocol.reader import ProxyProtocolReader
from proxyprotocol.sock import SocketInfo
from pymap.backend.dict import Config as DictConfig
from pymap.backend.dict import Identity, Login
from pymap.backend.dict.mailbox import MailboxData
from pymap.concurrent import Subsystem
from pymap.config import BackendCapability
from pymap.imap import IMAPServer
from pymap.parsing.message import AppendMessage
from pymap.user import Passwords, UserMetadata
from pysasl.hashing import BuiltinHash

log = logging.getLogger(__name__)

_SERVER_NAME = "svarstid-demo.localhost"


@dataclass(frozen=True)
class ReceivedSmtp:
    """One message the SMTP server accepted (after its 250 to DATA)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    received_at: datetime
    tls: bool
    authenticated_as: str | None
    connection: int  # 1 for the server's first SMTP connection, 2 for the next…


class _RecordingHandler:
    """aiosmtpd handler: the hooks aiosmtpd finds by name (handle_RCPT, handle_DATA)."""

    def __init__(self, owner: RecordingSmtpServer) -> None:
        self._owner = owner

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        rejection = self._owner.reject_recipients.get(address.lower())
        if rejection is not None:
            code, text = rejection
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        auth_data = session.auth_data
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None
        received = ReceivedSmtp(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=envelope.original_content or b"",
            received_at=self._owner.clock(),
            tls=session.ssl is not None or self._owner.implicit_tls,
            authenticated_as=login,
            connection=self._owner.connection_number(server),
        )
        await self._owner.record(received)
        return "250 Message accepted for delivery"


class RecordingSmtpServer:
    """An SMTP server on 127.0.0.1 that records every message it accepts.

    ``reject_recipients`` maps a lower-case address to the (code, text) given to its RCPT.
    ``on_message`` runs as a background task after each accept, so a slow hook never delays
    the 250 (the demo uses it to make simulated municipalities answer).
    """

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock
        self.messages: list[ReceivedSmtp] = []
        self.on_message: Callable[[ReceivedSmtp], Awaitable[None]] | None = None
        self.reject_recipients: dict[str, tuple[int, str]] = {}
        self.implicit_tls = False
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._sessions: dict[SMTP, int] = {}
        self._connection_count = 0
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        auth: tuple[str, str] | None = None,
        implicit_tls: bool = False,
    ) -> int:
        """Listen and return the port. With implicit_tls the whole session is TLS (port 465
        style); otherwise a tls_context is offered through STARTTLS."""
        self.implicit_tls = implicit_tls
        handler = _RecordingHandler(self)
        starttls_context = None if implicit_tls else tls_context

        def new_session() -> SMTP:
            with warnings.catch_warnings():
                # AUTH without TLS is deliberate on loopback (tests, demo)
                warnings.simplefilter("ignore", UserWarning)
                session = self._new_smtp(handler, starttls_context, require_starttls, auth)
            self._connection_count += 1
            self._forget_closed_sessions()
            self._sessions[session] = self._connection_count
            return session

        loop = asyncio.get_running_loop()
        server_ssl = tls_context if implicit_tls else None
        self._server = await loop.create_server(new_session, host, port, ssl=server_ssl)
        self.host = host
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def _forget_closed_sessions(self) -> None:
        for session in [s for s in self._sessions if s.transport is None]:
            del self._sessions[session]

    def connection_number(self, session: SMTP) -> int:
        return self._sessions.get(session, 0)

    def _new_smtp(
        self,
        handler: _RecordingHandler,
        starttls_context: ssl.SSLContext | None,
        require_starttls: bool,
        auth: tuple[str, str] | None,
    ) -> SMTP:
        return SMTP(
            handler,
            hostname=_SERVER_NAME,
            tls_context=starttls_context,
            require_starttls=require_starttls,
            authenticator=_authenticator(auth) if auth is not None else None,
            auth_required=auth is not None,
            auth_require_tls=starttls_context is not None,
        )

    async def record(self, received: ReceivedSmtp) -> None:
        async with self._changed:
            self.messages.append(received)
            self._changed.notify_all()
        if self.on_message is not None:
            task = asyncio.create_task(self._run_hook(self.on_message, received))
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)

    async def wait_for_messages(self, count: int) -> list[ReceivedSmtp]:
        """Wait until at least ``count`` messages were accepted (tests bound it themselves)."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= count)
            return list(self.messages)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for session in list(self._sessions):
                if session.transport is not None:
                    session.transport.close()
            self._sessions.clear()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._hook_tasks):
            task.cancel()
        await asyncio.gather(*self._hook_tasks, return_exceptions=True)

    @staticmethod
    async def _run_hook(
        hook: Callable[[ReceivedSmtp], Awaitable[None]], received: ReceivedSmtp
    ) -> None:
        try:
            await hook(received)
        except Exception:
            log.exception("on_message hook failed")


def _authenticator(credentials: tuple[str, str]) -> Callable[..., AuthResult]:
    username, password = credentials

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        if auth_data.login.decode() == username and auth_data.password.decode() == password:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)  # handled=False: aiosmtpd sends 535

    return authenticate


_pymap_update_selected = MailboxData.update_selected


async def _update_selected_without_lost_wakeup(
    self: MailboxData, selected: Any, *, wait_on: Any = None
) -> Any:
    # pymap's IDLE waits for the *next* change before reporting any, so a message appended
    # between a client's last command and its IDLE stayed unannounced until another change
    # (up to 29 minutes). Real servers (Dovecot) report such changes when IDLE starts.
    seen = selected.mod_sequence
    if wait_on is not None and seen is not None and self._mod_sequences.highest > seen:
        wait_on = None
    return await _pymap_update_selected(self, selected, wait_on=wait_on)


MailboxData.update_selected = _update_selected_without_lost_wakeup  # type: ignore[method-assign]


class _ImapConfig(DictConfig):
    """pymap dict config that can hide IDLE and skips the per-connection FQDN lookup.

    pymap 0.36 accepts ``disable_idle`` but never reads it, so the capability is hidden here.
    """

    def __init__(self, args: Namespace, *, idle: bool, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self._idle = idle

    @property
    def backend_capability(self) -> BackendCapability:
        return BackendCapability(idle=self._idle, object_id=True, multi_append=True)

    @property
    def greeting(self) -> bytes:
        return b"Server ready " + _SERVER_NAME.encode("ascii")


def _imap_config(host: str, port: int, *, idle: bool) -> _ImapConfig:
    args = Namespace(
        host=host,
        port=port,
        debug=False,
        cert=None,
        key=None,
        tls=False,
        passlib_cfg=None,
        proxy_protocol=None,
    )
    return _ImapConfig(
        args,
        idle=idle,
        host=host,
        port=port,
        tls_enabled=False,  # no STARTTLS: aioimaplib cannot use it; TLS here is implicit
        demo_data=False,
        demo_user="",
        demo_password="",
        # pbkdf2 with few rounds: a login costs ~17 ms instead of ~190 ms
        hash_context=BuiltinHash(rounds=1000),
        invalid_user_sleep=0.0,
        cpu_subsystem=Subsystem.for_asyncio(),
        reject_dnsbl=False,
    )


class InProcessImapServer:
    """An IMAP server on 127.0.0.1 backed by pymap's in-memory dict backend.

    Every start() begins with empty mailboxes and a new UIDVALIDITY, as pymap's dict
    backend does; first UID is 101. ``idle=False`` hides the IDLE capability.
    """

    def __init__(self, *, idle: bool = True) -> None:
        self.idle = idle
        self.host = "127.0.0.1"
        self.port = 0
        self.users: dict[str, str] = {}
        self._login: Login | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._past_uidvalidities: dict[tuple[str, str], set[int]] = {}

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        users: Mapping[str, str],
        tls_context: ssl.SSLContext | None = None,
    ) -> int:
        config = _imap_config(host, port, idle=self.idle)
        login = Login(config)
        passwords = Passwords(config)
        for name, password in users.items():
            hashed = await passwords.hash_password(password)
            await _identity(login, name).set(UserMetadata(config, name, password=hashed))
        imap = IMAPServer(login, config)
        callback = ProxyProtocolReader(config.proxy_protocol).get_callback(self._tracked(imap))
        self._server = await asyncio.start_server(callback, host, port, ssl=tls_context)
        self._login = login
        self.users = dict(users)
        for name in users:
            self._ensure_new_uidvalidity(name, "INBOX", await self._mailbox(name, "INBOX"))
        self.host = host
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def append(
        self, user: str, raw: bytes, *, internaldate: datetime, folder: str = "INBOX"
    ) -> int:
        """Deliver a message straight into a mailbox, keeping the given INTERNALDATE.

        Returns the new UID. Selected clients are told (EXISTS, also during IDLE).
        """
        if internaldate.tzinfo is None:
            raise ValueError("internaldate must be timezone-aware")
        mailbox = await self._mailbox(user, folder)
        message = await mailbox.append(AppendMessage(raw, internaldate, frozenset()), recent=True)
        return int(message.uid)

    async def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        return int((await self._mailbox(user, folder)).uid_validity)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        self._login = None

    def _tracked(
        self, imap: IMAPServer
    ) -> Callable[
        [asyncio.StreamReader, asyncio.StreamWriter, SocketInfo], Coroutine[Any, Any, None]
    ]:
        async def serve(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: SocketInfo
        ) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            self._writers.add(writer)
            try:
                await imap(reader, writer, info)
            finally:
                self._connections.discard(task)
                self._writers.discard(writer)

        return serve

    async def _mailbox(self, user: str, folder: str) -> Any:
        if self._login is None:
            raise RuntimeError("IMAP server is not running")
        async with _identity(self._login, user).new_session() as session:
            mailbox_set = session.mailbox_set
            if folder.upper() != "INBOX" and folder not in await _mailbox_names(mailbox_set):
                await mailbox_set.add_mailbox(folder)
                mailbox = await mailbox_set.get_mailbox(folder)
                self._ensure_new_uidvalidity(user, folder, mailbox)
            return await mailbox_set.get_mailbox(folder)

    def _ensure_new_uidvalidity(self, user: str, folder: str, mailbox: Any) -> None:
        # pymap draws UIDVALIDITY from the clock's seconds plus 16 random bits, so two starts
        # within a second could collide; a restarted server must look like a new mailbox.
        seen = self._past_uidvalidities.setdefault((user, folder.upper()), set())
        if mailbox.uid_validity in seen:
            mailbox._uid_validity = max(seen) + 1
        seen.add(int(mailbox.uid_validity))


def _identity(login: Login, name: str) -> Identity:
    return Identity(name, login, None, frozenset())


async def _mailbox_names(mailbox_set: Any) -> set[str]:
    tree = await mailbox_set.list_mailboxes()
    return {entry.name for entry in tree.list()}

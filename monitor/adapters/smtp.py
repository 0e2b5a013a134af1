"""SMTP adapter: hands one message to the submission server and says what became of it.

The outcome is a value, never an exception, and distinguishes the three cases the send
state machine needs (RFC 5321 section 4.1.1.4 and RFC 1047):

- FAILED: the server refused, or the session broke before the message body was handed
  over. Nothing was delivered, so the caller may retry a transient failure.
- UNCERTAIN: the body was handed over but the final reply never came (connection lost or
  timeout). The server may have taken responsibility; the caller must not resend.
- ACCEPTED: 250 to the end of data; ``accepted_at`` is read right after that reply.

``permanent`` speaks about the recipient and the message (5xx to MAIL, RCPT or DATA). A
failure to set up our own session (connect, EHLO, STARTTLS, AUTH) is never permanent and
has ``code`` None unless the server replied with one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from enum import StrEnum
from pathlib import Path

import aiosmtplib

log = logging.getLogger(__name__)

_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_CONNECTION_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"  # plain connect, then STARTTLS is required (port 587)
    TLS = "tls"  # implicit TLS from the first byte (port 465)
    NONE = "none"  # no TLS at all: loopback or a trusted relay only


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: SmtpSecurity
    username: str | None  # None: no AUTH
    password: str | None = field(repr=False)
    timeout: float
    ca_file: Path | None = None  # None: the system's trusted CAs
    helo_name: str | None = None  # EHLO name; None: this host's FQDN
    # XOAUTH2 (Microsoft 365, Gmail): an access token for ``username`` instead of a password.
    oauth2_token: Callable[[], Awaitable[str]] | None = field(
        default=None, repr=False, compare=False
    )


class SendStatus(StrEnum):
    ACCEPTED = "accepted"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    accepted_at: datetime | None = None
    permanent: bool | None = None  # only for FAILED
    code: int | None = None  # the SMTP reply code, when there was one
    detail: str | None = None  # server reply text or error; never message content


class SmtpUnavailable(Exception):
    """check() could not open a working session (for readiness and diagnostics)."""


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as it goes on the wire: CRLF line ends, nothing added or removed."""
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    data = _LINE_ENDINGS.sub(b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _data_block(data: bytes) -> bytes:
    # RFC 5321 4.5.2: dot-stuff lines that start with ".", then end with <CRLF>.<CRLF>.
    return _LEADING_DOT.sub(b"..", data) + b".\r\n"


def _refused(code: int, message: str, stage: str) -> SendResult:
    return SendResult(
        status=SendStatus.FAILED,
        permanent=code >= 500,
        code=code,
        detail=f"{stage}: {code} {message}".strip(),
    )


def _unreachable(stage: str, exc: BaseException) -> SendResult:
    code = exc.code if isinstance(exc, aiosmtplib.SMTPResponseException) else None
    return SendResult(
        status=SendStatus.FAILED,
        permanent=False,
        code=code if code is not None and code > 0 else None,
        detail=f"{stage}: {_describe(exc)}",
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if settings.security is SmtpSecurity.NONE:
        return None
    cafile = str(settings.ca_file) if settings.ca_file is not None else None
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)


def _mail_options(client: aiosmtplib.SMTP, data: bytes, addresses: Sequence[str]) -> list[str]:
    options: list[str] = []
    if not data.isascii() and client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")  # RFC 6152
    if not all(address.isascii() for address in addresses) and client.supports_extension(
        "smtputf8"
    ):
        options.append("SMTPUTF8")  # RFC 6531
    return options


class SmtpSender:
    """Sends messages over one reused SMTP session, reconnecting when it went away."""

    def __init__(self, settings: SmtpSettings, clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._clock = clock
        self._tls = _tls_context(settings)  # built once: loading CAs costs ~28 ms
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    async def send(
        self, message: EmailMessage, *, sender: str, recipients: Sequence[str]
    ) -> SendResult:
        """Send one message; all recipients must be accepted or nothing is sent."""
        data = wire_bytes(message)
        async with self._lock:
            try:
                client = await self._session()
            except _CONNECTION_ERRORS as exc:
                result = _unreachable("session", exc)
            else:
                try:
                    result = await self._transaction(client, data, sender, recipients)
                except asyncio.CancelledError:
                    self._drop(client)  # mid-transaction: the session is out of step
                    raise
        self._log(result, len(recipients))
        return result

    async def check(self) -> None:
        """Open a fresh session (connect, EHLO, STARTTLS, AUTH) and QUIT; raise if it fails."""
        try:
            client = await self._open()
        except _CONNECTION_ERRORS as exc:
            where = f"{self._settings.host}:{self._settings.port}"
            raise SmtpUnavailable(f"SMTP {where}: {_describe(exc)}") from exc
        await self._quit(client)

    async def close(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is not None:
                await self._quit(client)

    async def _session(self) -> aiosmtplib.SMTP:
        client = self._client
        if client is not None and client.is_connected:
            try:
                await client.rset()  # proves the reused session is alive and clean
                return client
            except _CONNECTION_ERRORS as exc:
                log.info("smtp session went away (%s); reconnecting", type(exc).__name__)
                client.close()
        self._client = None
        self._client = await self._open()
        return self._client

    async def _open(self) -> aiosmtplib.SMTP:
        settings = self._settings
        # start_tls=False: aiosmtplib would otherwise upgrade on its own whenever offered;
        # here the configured security decides, and STARTTLS is done explicitly below.
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            timeout=settings.timeout,
            use_tls=settings.security is SmtpSecurity.TLS,
            start_tls=False,
            tls_context=self._tls,
            local_hostname=settings.helo_name,
        )
        try:
            await client.connect()
            await client.ehlo()
            if settings.security is SmtpSecurity.STARTTLS:
                await client.starttls()
                await client.ehlo()  # RFC 3207 4.2: forget pre-TLS capabilities
            if settings.username is not None:
                await self._authenticate(client, settings.username)
        except BaseException:
            client.close()
            raise
        return client

    async def _authenticate(self, client: aiosmtplib.SMTP, username: str) -> None:
        token_source = self._settings.oauth2_token
        if token_source is None:
            await client.login(username, self._settings.password or "")
        else:
            # Fetched per session: a cached token is reused by the source until near expiry.
            await client.auth_xoauth2(username, await token_source())

    async def _transaction(
        self, client: aiosmtplib.SMTP, data: bytes, sender: str, recipients: Sequence[str]
    ) -> SendResult:
        try:
            options = _mail_options(client, data, [sender, *recipients])
            await client.mail(sender, options=options, encoding="utf-8")
            for recipient in recipients:
                await client.rcpt(recipient, encoding="utf-8")
            start = await client.execute_command(b"DATA")
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset_quietly(client)
            return _refused(exc.code, exc.message, "envelope")
        except _CONNECTION_ERRORS as exc:
            self._drop(client)
            return _unreachable("envelope", exc)
        if start.code != 354:
            await self._reset_quietly(client)
            return _refused(start.code, start.message, "DATA")
        return await self._transfer(client, data)

    async def _transfer(self, client: aiosmtplib.SMTP, data: bytes) -> SendResult:
        # aiosmtplib's data() sends DATA and the body in one call, so a lost connection
        # could not be told apart before and after the body; hence the protocol directly.
        protocol = client.protocol
        try:
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("connection lost before the body")
            protocol.write(_data_block(data))
        except _CONNECTION_ERRORS as exc:
            self._drop(client)
            return _unreachable("DATA", exc)
        try:
            reply = await protocol.read_response(timeout=self._settings.timeout)
        except _CONNECTION_ERRORS as exc:
            self._drop(client)
            detail = f"no reply after the message body: {_describe(exc)}"
            return SendResult(status=SendStatus.UNCERTAIN, detail=detail)
        if reply.code == 250:
            accepted_at = self._clock()
            return SendResult(SendStatus.ACCEPTED, accepted_at, code=250, detail=reply.message)
        return _refused(reply.code, reply.message, "end of data")

    async def _reset_quietly(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.rset()
        except _CONNECTION_ERRORS:
            self._drop(client)

    def _drop(self, client: aiosmtplib.SMTP) -> None:
        client.close()
        if self._client is client:
            self._client = None

    async def _quit(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.quit()
        except _CONNECTION_ERRORS:
            pass
        finally:
            client.close()

    @staticmethod
    def _log(result: SendResult, recipient_count: int) -> None:
        if result.status is SendStatus.ACCEPTED:
            log.info("smtp accepted a message for %d recipient(s)", recipient_count)
        else:
            log.warning("smtp send %s: %s", result.status.value, result.detail)

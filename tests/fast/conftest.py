"""Real mail servers on 127.0.0.1 for the fast tests (no protocol mocks).

Fixtures:
- ``tls_certs``: a throw-away trustme CA and a server certificate for 127.0.0.1/localhost.
- ``smtp_server``: a started plain RecordingSmtpServer (``.host``, ``.port``, ``.messages``).
- ``imap_server``: a started InProcessImapServer with one user, IMAP_USER / IMAP_PASSWORD.
- ``smtp_server_factory`` / ``imap_server_factory``: start more, or with TLS/AUTH/no IDLE;
  every server they start is stopped after the test.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer

IMAP_USER = "svar@matning.example.se"
IMAP_PASSWORD = "imap-secret"


@dataclass(frozen=True)
class TlsCerts:
    ca_file: Path  # PEM of the CA: what a client is configured with (ca_file settings)
    server_context: ssl.SSLContext  # for the servers, certificate for 127.0.0.1 and localhost
    client_context: ssl.SSLContext  # trusts the CA


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> TlsCerts:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TlsCerts(ca_file=ca_file, server_context=server_context, client_context=client_context)


SmtpServerFactory = Callable[..., Awaitable[RecordingSmtpServer]]
ImapServerFactory = Callable[..., Awaitable[InProcessImapServer]]


@pytest.fixture
async def smtp_server_factory() -> AsyncIterator[SmtpServerFactory]:
    """``await smtp_server_factory(tls_context=..., auth=(user, pw), implicit_tls=True)``."""
    started: list[RecordingSmtpServer] = []

    async def start(**options: Any) -> RecordingSmtpServer:
        server = RecordingSmtpServer()
        started.append(server)
        await server.start(**options)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def imap_server_factory() -> AsyncIterator[ImapServerFactory]:
    """``await imap_server_factory(idle=False, tls_context=..., users={...}, port=...)``."""
    started: list[InProcessImapServer] = []

    async def start(
        *,
        idle: bool = True,
        users: Mapping[str, str] | None = None,
        **options: Any,
    ) -> InProcessImapServer:
        server = InProcessImapServer(idle=idle)
        started.append(server)
        await server.start(users=users or {IMAP_USER: IMAP_PASSWORD}, **options)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def smtp_server(smtp_server_factory: SmtpServerFactory) -> RecordingSmtpServer:
    return await smtp_server_factory()


@pytest.fixture
async def imap_server(imap_server_factory: ImapServerFactory) -> InProcessImapServer:
    return await imap_server_factory()

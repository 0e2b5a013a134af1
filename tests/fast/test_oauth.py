"""XOAUTH2: tokens from a real command, SMTP and IMAP sign-in against real loopback servers.

SMTP: aiosmtpd with an ``auth_XOAUTH2`` mechanism that checks the bearer token. IMAP:
pymap cannot take SASL-IR (an initial response on the AUTHENTICATE line, which aioimaplib
always sends, as Gmail and Outlook accept), so the IMAP test uses aioimaplib's own
in-memory test server, with its AUTHENTICATE replaced by one that checks the token.
"""

from __future__ import annotations

import re
import sys
import warnings
from base64 import b64decode
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from monitor.adapters.imap import ImapError, ImapSecurity, ImapSettings, MailboxWatcher
from monitor.adapters.oauth import AccessToken, TokenCommand, TokenUnavailable, parse_token_output
from monitor.adapters.smtp import SendStatus, SmtpSecurity, SmtpSender, SmtpSettings
from monitor.composition import build
from monitor.config import ConfigError, load_config
from monitor.demo.mailservers import RecordingSmtpServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from aioimaplib.imap_testing_server import (  # type: ignore[import-untyped]
        CAPABILITIES,
        ImapProtocol,
        Mail,
        ServerState,
        critical_section,
    )

USER = "matning@kontroll.example.se"
TOKEN = "ya29.a0-svarstid-test-token"
XOAUTH2 = re.compile(r"user=([^\x01]*)\x01auth=Bearer ([^\x01]*)\x01\x01")


# -- the token command -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "value", "expires_at"),
    [
        (b"tok123\n", "tok123", None),
        (b'{"access_token": "tok123", "expires_in": 3599}', "tok123", 1000.0 + 3599),
        (
            b'{"access_token": "tok123", "expires_in": "600", "token_type": "Bearer"}',
            "tok123",
            1600.0,
        ),
        (b'  {"access_token": " tok123 "}\n', "tok123", None),
    ],
)
def test_token_output_is_a_bare_token_or_token_endpoint_json(
    output: bytes, value: str, expires_at: float | None
) -> None:
    assert parse_token_output(output, now=1000.0) == AccessToken(value, expires_at)


@pytest.mark.parametrize(
    "output",
    [b"", b"\n", b"two words", b"{not json", b'{"token_type": "Bearer"}', b'["tok"]'],
)
def test_output_without_one_token_is_refused(output: bytes) -> None:
    with pytest.raises(TokenUnavailable):
        parse_token_output(output, now=0.0)


def test_a_token_never_shows_in_a_repr() -> None:
    assert TOKEN not in repr(AccessToken(TOKEN, 5.0))
    assert TOKEN not in repr(SmtpSettings("h", 1, SmtpSecurity.NONE, USER, None, 5))


def helper(tmp_path: Path, body: str) -> str:
    """A token helper script; each run appends a line to runs.txt."""
    script = tmp_path / "token-helper.py"
    script.write_text(
        "import pathlib, sys\n"
        f"pathlib.Path({str(tmp_path / 'runs.txt')!r}).open('a').write('run\\n')\n" + body
    )
    return f"{sys.executable} '{script}'"


def runs(tmp_path: Path) -> int:
    path = tmp_path / "runs.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


async def test_token_with_expiry_is_cached_until_near_expiry(tmp_path: Path) -> None:
    body = f'print(\'{{"access_token": "{TOKEN}", "expires_in": 3599}}\')\n'
    now = [0.0]
    command = TokenCommand(helper(tmp_path, body), clock=lambda: now[0], margin=120)
    assert await command.token() == TOKEN
    now[0] = 3599 - 121
    assert await command.token() == TOKEN
    assert runs(tmp_path) == 1
    now[0] = 3599 - 119
    assert await command.token() == TOKEN
    assert runs(tmp_path) == 2


async def test_bare_token_is_fetched_again_for_every_connection(tmp_path: Path) -> None:
    command = TokenCommand(helper(tmp_path, f"print({TOKEN!r})\n"))
    assert [await command.token(), await command.token()] == [TOKEN, TOKEN]
    assert runs(tmp_path) == 2


async def test_failing_command_says_how_without_its_output(tmp_path: Path) -> None:
    body = f"print({TOKEN!r}); sys.exit(3)\n"
    command = TokenCommand(helper(tmp_path, body))
    with pytest.raises(TokenUnavailable, match="exited with status 3") as raised:
        await command.token()
    assert TOKEN not in str(raised.value)


async def test_hanging_command_is_killed_after_the_timeout(tmp_path: Path) -> None:
    command = TokenCommand(helper(tmp_path, "import time; time.sleep(30)\n"), timeout=0.5)
    with pytest.raises(TokenUnavailable, match="timed out"):
        await command.token()


async def test_missing_command_is_token_unavailable(tmp_path: Path) -> None:
    command = TokenCommand(str(tmp_path / "no-such-helper"))
    with pytest.raises(TokenUnavailable, match="no-such-helper"):
        await command.token()


def test_token_unavailable_is_a_connection_error_so_sessions_retry() -> None:
    assert issubclass(TokenUnavailable, ConnectionError)


# -- SMTP ----------------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


class XOAuth2Smtp(SMTP):  # type: ignore[misc]
    """aiosmtpd offering AUTH XOAUTH2 (RFC 4954 initial response) for one user and token."""

    async def auth_XOAUTH2(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        found = XOAUTH2.fullmatch(b64decode(args[1]).decode("utf-8", "replace"))
        if found is None or (found[1], found[2]) != (USER, TOKEN):
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword(found[1].encode(), b""))


class XOAuth2SmtpServer(RecordingSmtpServer):
    def _new_smtp(self, handler: Any, starttls_context: Any, *_: Any) -> SMTP:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return XOAuth2Smtp(
                handler,
                hostname="oauth.localhost",
                auth_required=True,
                auth_require_tls=False,
                auth_exclude_mechanism=["LOGIN", "PLAIN"],
            )


@pytest.fixture
async def oauth_smtp() -> AsyncIterator[XOAuth2SmtpServer]:
    server = XOAuth2SmtpServer()
    await server.start()
    yield server
    await server.stop()


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = "Fråga"
    mail.set_content("Hej!")
    return mail


def smtp_settings(port: int, command: TokenCommand) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1",
        port=port,
        security=SmtpSecurity.NONE,
        username=USER,
        password=None,
        timeout=5,
        oauth2_token=command,
    )


async def test_smtp_signs_in_with_the_token_from_the_command(
    oauth_smtp: XOAuth2SmtpServer, tmp_path: Path
) -> None:
    command = TokenCommand(helper(tmp_path, f"print({TOKEN!r})\n"))
    sender = SmtpSender(smtp_settings(oauth_smtp.port, command), clock=now)
    result = await sender.send(message(), sender=USER, recipients=["info@kommun.example.se"])
    await sender.close()
    assert result.status is SendStatus.ACCEPTED
    assert [m.authenticated_as for m in oauth_smtp.messages] == [USER]


async def test_smtp_with_a_wrong_token_fails_transiently_and_never_shows_it(
    oauth_smtp: XOAuth2SmtpServer, tmp_path: Path
) -> None:
    wrong = "ya29.wrong-token"
    command = TokenCommand(helper(tmp_path, f"print({wrong!r})\n"))
    sender = SmtpSender(smtp_settings(oauth_smtp.port, command), clock=now)
    result = await sender.send(message(), sender=USER, recipients=["info@kommun.example.se"])
    assert (result.status, result.permanent) == (SendStatus.FAILED, False)
    assert wrong not in (result.detail or "")
    assert oauth_smtp.messages == []


async def test_smtp_whose_token_command_fails_is_a_transient_session_failure(
    oauth_smtp: XOAuth2SmtpServer, tmp_path: Path
) -> None:
    command = TokenCommand(helper(tmp_path, "sys.exit(1)\n"))
    sender = SmtpSender(smtp_settings(oauth_smtp.port, command), clock=now)
    result = await sender.send(message(), sender=USER, recipients=["info@kommun.example.se"])
    assert (result.status, result.permanent) == (SendStatus.FAILED, False)
    assert "TokenUnavailable" in (result.detail or "")


# -- IMAP ----------------------------------------------------------------------------------------


class XOAuth2ImapProtocol(ImapProtocol):  # type: ignore[misc]
    """aioimaplib's test server, with AUTHENTICATE XOAUTH2 checking user and token."""

    @critical_section(next_state="AUTH")
    def authenticate(self, tag: str, method: str, sasl: str) -> None:
        found = XOAUTH2.fullmatch(b64decode(sasl).decode("utf-8", "replace"))
        if method != "XOAUTH2" or found is None or (found[1], found[2]) != (USER, TOKEN):
            self.send_tagged_line(tag, "NO [AUTHENTICATIONFAILED] Invalid credentials")
            return
        self.user_login = found[1]
        self.server_state.login(self.user_login, self)
        self.send_tagged_line(tag, "OK AUTHENTICATE completed")


@pytest.fixture
async def oauth_imap_port() -> AsyncIterator[int]:
    import asyncio

    loop = asyncio.get_running_loop()
    state = ServerState()
    state.add_mail(USER, Mail.create([USER], mail_from="info@kommun.example.se", content="Svar"))
    server = await loop.create_server(
        lambda: XOAuth2ImapProtocol(state, 0, CAPABILITIES, loop), "127.0.0.1", 0
    )
    yield int(server.sockets[0].getsockname()[1])
    server.close()


def watcher(port: int, command: TokenCommand, connected: list[bool]) -> MailboxWatcher:
    settings = ImapSettings(
        host="127.0.0.1",
        port=port,
        security=ImapSecurity.NONE,
        username=USER,
        password="",
        timeout=5,
        oauth2_token=command,
    )

    async def no_checkpoint(_folder: str) -> None:
        return None

    async def ignore(_mail: object) -> None:
        return None

    return MailboxWatcher(
        settings,
        load_checkpoint=no_checkpoint,
        handle=ignore,
        on_connection_change=connected.append,
    )


async def test_imap_signs_in_with_the_token_and_selects_the_folder(
    oauth_imap_port: int, tmp_path: Path
) -> None:
    connected: list[bool] = []
    command = TokenCommand(helper(tmp_path, f"print({TOKEN!r})\n"))
    mailbox = watcher(oauth_imap_port, command, connected)
    await mailbox.fetch_new_once()
    await mailbox.stop()
    assert connected == [True, False]
    assert runs(tmp_path) == 1


async def test_imap_with_a_wrong_token_is_refused_without_showing_it(
    oauth_imap_port: int, tmp_path: Path
) -> None:
    wrong = "ya29.wrong-token"
    command = TokenCommand(helper(tmp_path, f"print({wrong!r})\n"))
    mailbox = watcher(oauth_imap_port, command, [])
    with pytest.raises(ImapError, match="AUTHENTICATE XOAUTH2") as raised:
        await mailbox.fetch_new_once()
    assert wrong not in str(raised.value)


# -- configuration -------------------------------------------------------------------------------


def write_config(folder: Path, smtp: dict[str, object], imap: dict[str, object]) -> Path:
    (folder / "targets.yaml").write_text("targets: []\n")
    text = {
        "mailbox": {"address": USER, "reply_address": "svar+{token}@kontroll.example.se"},
        "smtp": {"host": "smtp.office365.com", "port": 587, **smtp},
        "imap": {"host": "outlook.office365.com", "username": USER, **imap},
        "targets_file": "targets.yaml",
    }
    import yaml

    path = folder / "svarstid.yaml"
    path.write_text(yaml.safe_dump(text))
    return path


OAUTH = {"auth": "xoauth2", "oauth2_token_command": "/usr/local/bin/m365-token --scope smtp"}


def test_xoauth2_config_needs_no_password_and_wires_a_token_command(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"username": USER, **OAUTH}, OAUTH)
    app = build(load_config(path, {}))
    smtp_token = app.smtp._settings.oauth2_token
    assert isinstance(smtp_token, TokenCommand)
    assert isinstance(app.daemon.watcher._settings.oauth2_token, TokenCommand)


@pytest.mark.parametrize(
    ("smtp", "imap", "error"),
    [
        (
            {"username": USER, "auth": "xoauth2"},
            OAUTH,
            "smtp.oauth2_token_command: is required with auth: xoauth2 (got nothing)",
        ),
        (
            OAUTH,
            OAUTH,
            "smtp.username: is required with auth: xoauth2 (got nothing)",
        ),
        (
            {"username": USER, "password": "pw", **OAUTH},
            OAUTH,
            "smtp.password: is not used with auth: xoauth2; remove it (got '***')",
        ),
        (
            {"oauth2_token_command": "x"},
            OAUTH,
            "smtp.oauth2_token_command: is only used with auth: xoauth2 (got 'x')",
        ),
        (
            {},
            {"auth": "xoauth2", "oauth2_token_command": "helper 'unclosed"},
            "imap.oauth2_token_command: not a command line: No closing quotation "
            "(got 'helper 'unclosed')",
        ),
        (
            {},
            {"auth": "kerberos"},
            "imap.auth: must be one of password, xoauth2 (got 'kerberos')",
        ),
    ],
)
def test_xoauth2_config_mistakes_are_one_line_each(
    tmp_path: Path, smtp: dict[str, object], imap: dict[str, object], error: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write_config(tmp_path, smtp, imap), {})
    assert error in raised.value.errors

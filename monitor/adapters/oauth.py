"""OAuth2 access tokens for XOAUTH2 sign-in, from an operator-supplied command.

Microsoft 365 and Gmail refuse passwords over IMAP and SMTP; they want an OAuth2 access
token (about an hour valid). svarstid does not do the OAuth2 dance itself: a configured
command (a small helper around MSAL, google-auth, oauth2l, …) prints a fresh token on
stdout, either as the bare token or as the token endpoint's JSON
(``{"access_token": "…", "expires_in": 3599}``). With ``expires_in`` the token is cached
until shortly before it expires; a bare token is fetched again for every connection.

The token is a secret: it is never logged, never part of an exception message, and the
command's stderr goes straight to svarstid's stderr (the journal) without being read here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

EXPIRY_MARGIN_SECONDS = 120.0  # a token this close to expiry is fetched anew
MAX_OUTPUT_BYTES = 64 * 1024
# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class TokenUnavailable(ConnectionError):
    """The token command failed, so no session can be opened.

    A ConnectionError on purpose: the SMTP and IMAP adapters treat it like a server they
    cannot reach (the send fails as transient, the watcher reconnects with backoff).
    """


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: float | None = None  # on the monotonic clock; None: use once


def parse_token_output(output: bytes, now: float) -> AccessToken:
    """The token in a command's stdout: JSON with access_token (+ expires_in) or bare text."""
    text = output.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        return _from_json(text, now)
    if _B64TOKEN.fullmatch(text) is None:
        raise TokenUnavailable("token command printed no single token on stdout")
    return AccessToken(text)


def _from_json(text: str, now: float) -> AccessToken:
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError:
        raise TokenUnavailable("token command printed invalid JSON") from None
    token = document.get("access_token") if isinstance(document, dict) else None
    if not isinstance(token, str) or _B64TOKEN.fullmatch(token.strip()) is None:
        raise TokenUnavailable("token command printed JSON without a usable access_token")
    expires_in = document.get("expires_in")
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        return AccessToken(token.strip(), now + float(expires_in))
    return AccessToken(token.strip())


class TokenCommand:
    """Runs ``command`` (split like a shell would, but no shell) to get an access token."""

    def __init__(
        self,
        command: str,
        *,
        timeout: float = 30.0,
        margin: float = EXPIRY_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._argv = shlex.split(command)
        if not self._argv:
            raise ValueError("empty token command")
        self._timeout = timeout
        self._margin = margin
        self._clock = clock
        self._cached: AccessToken | None = None
        self._lock = asyncio.Lock()
        self.runs = 0  # how often the command ran (for tests and diagnostics)

    def __repr__(self) -> str:
        return f"TokenCommand({self._argv[0]!r})"

    async def __call__(self) -> str:
        return await self.token()

    async def token(self) -> str:
        """A token valid for at least ``margin`` seconds more, when the command said so."""
        async with self._lock:
            cached = self._cached
            if cached is not None and self._still_fresh(cached):
                return cached.value
            fresh = await self._run()
            self._cached = fresh if fresh.expires_at is not None else None
            return fresh.value

    def _still_fresh(self, token: AccessToken) -> bool:
        return token.expires_at is not None and token.expires_at - self._margin > self._clock()

    async def _run(self) -> AccessToken:
        self.runs += 1
        try:
            process = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=None,  # the helper's own diagnostics go to our stderr, unread
            )
        except OSError as error:
            raise TokenUnavailable(f"token command {self._argv[0]!r}: {error.strerror}") from None
        try:
            output, _ = await asyncio.wait_for(process.communicate(), self._timeout)
        except TimeoutError:
            await _kill(process)
            raise TokenUnavailable(
                f"token command {self._argv[0]!r} timed out after {self._timeout:g} s"
            ) from None
        if process.returncode != 0:
            raise TokenUnavailable(
                f"token command {self._argv[0]!r} exited with status {process.returncode}"
            )
        token = parse_token_output(output[:MAX_OUTPUT_BYTES], self._clock())
        log.info("obtained an OAuth2 access token from %s", self._argv[0])
        return token


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()

"""Logins for the status page: sessions, CSRF tokens, basic auth for scripts, throttling.

``install_auth(app, accounts, settings)`` adds to an aiohttp application:

- a session in an encrypted cookie (aiohttp-session, Fernet): ``HttpOnly``,
  ``SameSite=Strict``, ``Secure`` when served over TLS, valid for ``session_max_age``;
- ``GET``/``POST /login`` and ``POST /logout``;
- a middleware in front of every handler: pages without a session redirect to /login, /api/…
  and anything but GET answer 401. /login, /-/healthy, /-/ready and /static/… are open, and
  /metrics unless ``protect_metrics``; ``public_overview`` opens ``GET /``. /api/… and a
  protected /metrics also take HTTP basic auth;
- a CSRF token per session, required (form field ``csrf_token`` or header ``X-CSRF-Token``)
  on every request that is not GET, HEAD or OPTIONS; a request signed with basic auth may not
  send a form body instead, since a browser that cached the credentials would attach them to
  another site's form too.

An unknown name and a wrong password get the same answer after the same work (a check
against a dummy hash), and both count towards throttling, per name and per client address.
Logs name the client address, and the user only once signed in: what is typed into the
name field may be a password.

Handlers read ``current_user(request)``: the signed-in user, ``PUBLIC`` on an open page, or
``UNRESTRICTED`` when no accounts are set up.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import html
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp_session
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from monitor.adapters.passwords import Passwords
from monitor.domain.access import PUBLIC, UNRESTRICTED, User
from monitor.interfaces.web.throttle import (
    LoginThrottle,
    ThrottlePolicy,
    account_key,
    address_key,
)
from monitor.users_file import Account

log = logging.getLogger(__name__)

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
OPEN_PATHS = frozenset({LOGIN_PATH, "/-/healthy", "/-/ready"})
STATIC_PREFIX = "/static/"
METRICS_PATH = "/metrics"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Content types a page on another site can POST without the browser asking first (CORS).
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
_LONGEST_PASSWORD = 1024  # characters; longer input is refused without hashing it
_LONGEST_NAME = 64
_USER_KEY = "svarstid.user"
_CSRF_KEY = "svarstid.csrf"
_SESSION_USER = "user"
_SESSION_CSRF = "csrf"
_SESSION_ID = "sid"
_MOST_SESSIONS = 10_000
LOGIN_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class AuthSettings:
    secure_cookie: bool = True  # false only for plain http on loopback (tests, a local proxy)
    public_overview: bool = False  # GET / without login (the aggregate table, no message text)
    protect_metrics: bool = False  # /metrics needs basic auth (http.metrics_auth: basic)
    session_max_age: int = 12 * 3600  # seconds from sign-in
    account_throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    # Looser per address: several people may sit behind one office NAT.
    address_throttle: ThrottlePolicy = field(
        default_factory=lambda: ThrottlePolicy(free_failures=20)
    )
    session_key: bytes | None = None  # Fernet key; None: a new one each start (sign in again)
    parallel_checks: int = 2  # password checks at once: each takes ~64 MiB with argon2id


@dataclass(frozen=True)
class Verdict:
    """What a sign-in attempt came to: the user, or none, or a wait."""

    user: User | None
    retry_after: float = 0.0


class Authenticator:
    """Checks a name and password against the accounts, throttled, without telling names."""

    def __init__(
        self,
        accounts: Sequence[Account],
        settings: AuthSettings,
        passwords: Passwords,
        clock: Callable[[], float],
    ) -> None:
        self._accounts: Mapping[str, Account] = {a.name.casefold(): a for a in accounts}
        self._passwords = passwords
        self._clock = clock
        self._by_account = LoginThrottle(settings.account_throttle)
        self._by_address = LoginThrottle(settings.address_throttle)
        self._checks = asyncio.Semaphore(settings.parallel_checks)

    def user(self, name: object) -> User | None:
        """The current account of a signed-in name; None once it was removed."""
        account = self._accounts.get(name.casefold()) if isinstance(name, str) else None
        return None if account is None else account.user

    async def check(self, name: str, password: str, address: str | None) -> Verdict:
        keys = (account_key(name), address_key(address))
        wait = self._wait(keys)
        if wait > 0:
            return Verdict(None, wait)
        async with self._checks:
            wait = self._wait(keys)  # attempts queued behind the semaphore see new failures
            if wait > 0:
                return Verdict(None, wait)
            account = self._account(name, password)
            if account is None:
                await asyncio.to_thread(
                    self._passwords.verify_unknown, password[:_LONGEST_PASSWORD]
                )
                matches = False
            else:
                matches = await asyncio.to_thread(
                    self._passwords.verify, account.password_hash, password
                )
        if account is not None and matches:
            self._by_account.succeeded(keys[0])
            return Verdict(account.user)
        now = self._clock()
        self._by_account.failed(keys[0], now)
        self._by_address.failed(keys[1], now)
        return Verdict(None, 0.0)

    def _account(self, name: str, password: str) -> Account | None:
        if len(name) > _LONGEST_NAME or len(password) > _LONGEST_PASSWORD:
            return None
        return self._accounts.get(name.strip().casefold())

    def _wait(self, keys: tuple[str, str]) -> float:
        now = self._clock()
        return max(
            self._by_account.retry_after(keys[0], now), self._by_address.retry_after(keys[1], now)
        )


# ---------------------------------------------------------------------------------------------
# What handlers call


def current_user(request: web.Request) -> User:
    """Whose rights this request has: the signed-in user, else PUBLIC or UNRESTRICTED."""
    user = request.get(_USER_KEY)
    if isinstance(user, User):
        return user
    return PUBLIC if _GATE in request.app else UNRESTRICTED


def signed_in_user(request: web.Request) -> User | None:
    user = request.get(_USER_KEY)
    return user if isinstance(user, User) else None


def csrf_token(request: web.Request) -> str | None:
    """The token a form on this page must send back in its ``csrf_token`` field."""
    token = request.get(_CSRF_KEY)
    return token if isinstance(token, str) else None


def auth_installed(app: web.Application) -> bool:
    return _GATE in app


def install_auth(
    app: web.Application,
    accounts: Sequence[Account],
    settings: AuthSettings,
    *,
    passwords: Passwords | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Require a login for ``app``'s pages and API (see the module docstring)."""
    if _GATE in app:
        raise RuntimeError("install_auth: already installed")
    authenticator = Authenticator(accounts, settings, passwords or Passwords(), clock)
    gate = Gate(authenticator, settings, LiveSessions(settings.session_max_age, clock))
    app[_GATE] = gate
    key = settings.session_key or Fernet.generate_key()
    storage = EncryptedCookieStorage(
        Fernet(key),
        cookie_name="__Host-svarstid" if settings.secure_cookie else "svarstid",
        max_age=settings.session_max_age,
        path="/",
        secure=settings.secure_cookie,
        httponly=True,
        samesite="Strict",
    )
    aiohttp_session.setup(app, storage)
    app.middlewares.append(_middleware(gate))
    app.router.add_get(LOGIN_PATH, gate.login_page)
    app.router.add_post(LOGIN_PATH, gate.login)
    app.router.add_post(LOGOUT_PATH, gate.logout)


# ---------------------------------------------------------------------------------------------
# The middleware and the login handlers


class Gate:
    """The middleware and the login handlers over one Authenticator."""

    def __init__(
        self, authenticator: Authenticator, settings: AuthSettings, live: LiveSessions
    ) -> None:
        self._auth = authenticator
        self._settings = settings
        self._live = live

    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._is_open(request):
            return await handler(request)
        user = await self._session_user(request)
        by_session = user is not None
        if user is None and self._takes_basic_auth(request.path):
            found = await self._basic_user(request)
            if isinstance(found, web.Response):
                return found
            user = found
        if user is None:
            if self._is_public(request):
                return await handler(request)
            return self._refuse(request)
        refusal = await self._unsafe_refusal(request, by_session)
        if refusal is not None:
            return refusal
        request[_USER_KEY] = user
        return await handler(request)

    def _is_open(self, request: web.Request) -> bool:
        path = request.path
        if path in OPEN_PATHS or path.startswith(STATIC_PREFIX):
            return True
        return path == METRICS_PATH and not self._settings.protect_metrics

    def _is_public(self, request: web.Request) -> bool:
        return (
            self._settings.public_overview
            and request.path == "/"
            and request.method in SAFE_METHODS
        )

    def _takes_basic_auth(self, path: str) -> bool:
        return path == "/api" or path.startswith("/api/") or path == METRICS_PATH

    async def _session_user(self, request: web.Request) -> User | None:
        session = await aiohttp_session.get_session(request)
        if not self._live.alive(session.get(_SESSION_ID)):
            return None
        user = self._auth.user(session.get(_SESSION_USER))
        if user is not None:
            request[_CSRF_KEY] = session.get(_SESSION_CSRF)
        return user

    async def _basic_user(self, request: web.Request) -> User | web.Response | None:
        header = request.headers.get(hdrs.AUTHORIZATION)
        if not header:
            return None
        credentials = basic_credentials(header)
        if credentials is None:
            return _unauthorized(request)
        verdict = await self._auth.check(*credentials, request.remote)
        if verdict.retry_after > 0:
            log.warning("basic auth throttled for %s", request.remote)
            return _too_many(verdict.retry_after, json=True)
        if verdict.user is None:
            log.warning("basic auth failed from %s", request.remote)
            return _unauthorized(request)
        return verdict.user

    def _refuse(self, request: web.Request) -> web.Response:
        if self._takes_basic_auth(request.path) or request.method not in SAFE_METHODS:
            return _unauthorized(request)
        target = LOGIN_PATH + "?" + urlencode({"next": request.path_qs})
        return web.Response(status=303, headers={hdrs.LOCATION: target})

    async def _unsafe_refusal(self, request: web.Request, by_session: bool) -> web.Response | None:
        if request.method in SAFE_METHODS:
            return None
        if not by_session:
            if request.content_type in FORM_TYPES:
                return _forbidden("a form cannot be sent with basic auth; send JSON")
            return None
        expected = request.get(_CSRF_KEY)
        if isinstance(expected, str) and _same(await _sent_csrf(request), expected):
            return None
        log.warning(
            "request without a valid CSRF token refused: %s %s", request.method, request.path
        )
        return _forbidden("the form's CSRF token is missing or stale; reload the page")

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        session = await aiohttp_session.get_session(request)
        next_path = safe_next(request.query.get("next"))
        if await self._session_user(request) is not None:
            return web.Response(status=303, headers={hdrs.LOCATION: next_path})
        return _login_response(_session_csrf(session), next_path)

    async def login(self, request: web.Request) -> web.StreamResponse:
        session = await aiohttp_session.get_session(request)
        form = await request.post()
        next_path = safe_next(_text(form.get("next")))
        expected = session.get(_SESSION_CSRF)
        if not isinstance(expected, str) or not _same(_text(form.get(CSRF_FIELD)), expected):
            message = "The form had expired. Please sign in again."
            return _login_response(_session_csrf(session), next_path, message, status=403)
        name, password = _text(form.get("name")), _text(form.get("password"))
        verdict = await self._auth.check(name, password, request.remote)
        if verdict.retry_after > 0:
            log.warning("login throttled for %s", request.remote)
            return _too_many(verdict.retry_after, json=False, csrf=expected, next_path=next_path)
        if verdict.user is None:
            log.warning("login failed from %s", request.remote)
            return _login_response(expected, next_path, "Wrong name or password.")
        session = await aiohttp_session.new_session(request)
        session[_SESSION_ID] = self._live.start()
        session[_SESSION_USER] = verdict.user.name
        session[_SESSION_CSRF] = secrets.token_urlsafe(32)
        log.info("login: %s from %s", verdict.user.name, request.remote)
        return web.Response(status=303, headers={hdrs.LOCATION: next_path})

    async def logout(self, request: web.Request) -> web.StreamResponse:
        # Reached only through the middleware: signed in, with a valid CSRF token.
        session = await aiohttp_session.get_session(request)
        user = signed_in_user(request)
        self._live.end(session.get(_SESSION_ID))
        session.invalidate()
        if user is not None:
            log.info("logout: %s", user.name)
        return web.Response(status=303, headers={hdrs.LOCATION: LOGIN_PATH})


class LiveSessions:
    """Which signed-in sessions are still on: a logout ends one even if its cookie is replayed.

    Kept in memory; a restart ends every session (the cookie key is new then anyway). At
    most ``limit`` are kept, the oldest dropped first.
    """

    def __init__(
        self, max_age: float, clock: Callable[[], float], limit: int = _MOST_SESSIONS
    ) -> None:
        self._max_age = max_age
        self._clock = clock
        self._limit = limit
        self._ends: OrderedDict[str, float] = OrderedDict()

    def start(self) -> str:
        now = self._clock()
        while self._ends and (
            len(self._ends) >= self._limit or next(iter(self._ends.values())) <= now
        ):
            self._ends.popitem(last=False)
        session_id = secrets.token_urlsafe(24)
        self._ends[session_id] = now + self._max_age
        return session_id

    def alive(self, session_id: object) -> bool:
        if not isinstance(session_id, str):
            return False
        end = self._ends.get(session_id)
        return end is not None and end > self._clock()

    def end(self, session_id: object) -> None:
        if isinstance(session_id, str):
            self._ends.pop(session_id, None)


_GATE = web.AppKey("svarstid_auth_gate", Gate)


def _middleware(gate: Gate) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await gate.guard(request, handler)

    return guard


def _session_csrf(session: aiohttp_session.Session) -> str:
    token = session.get(_SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_SESSION_CSRF] = token
    return token


async def _sent_csrf(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _text((await request.post()).get(CSRF_FIELD))
    return ""


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(name, password) from an ``Authorization: Basic …`` header (RFC 7617), else None."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        return None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        text = decoded.decode("latin-1")
    name, colon, password = text.partition(":")
    return (name, password) if colon else None


def _same(sent: str, expected: str) -> bool:
    return bool(sent) and hmac.compare_digest(sent.encode(), expected.encode())


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def safe_next(text: str | None) -> str:
    """Where to go after signing in: a path on this site only, never another host."""
    if not text or not text.startswith("/") or text.startswith(("//", "/\\")):
        return "/"
    if any(ord(char) < 0x20 or char == "\\" for char in text):
        return "/"
    if text.split("?", 1)[0] in (LOGIN_PATH, LOGOUT_PATH):
        return "/"
    return text


# ---------------------------------------------------------------------------------------------
# Answers


def _unauthorized(request: web.Request) -> web.Response:
    headers = {}
    if request.path.startswith("/api") or request.path == METRICS_PATH:
        headers[hdrs.WWW_AUTHENTICATE] = 'Basic realm="svarstid", charset="UTF-8"'
    return web.json_response({"error": "login required"}, status=401, headers=headers)


def _forbidden(detail: str) -> web.Response:
    return web.json_response({"error": "forbidden", "detail": detail}, status=403)


def _too_many(
    retry_after: float, *, json: bool, csrf: str = "", next_path: str = "/"
) -> web.Response:
    seconds = max(1, int(retry_after + 0.999))
    headers = {hdrs.RETRY_AFTER: str(seconds)}
    if json:
        body = {"error": "too many failed logins", "retry_after": seconds}
        return web.json_response(body, status=429, headers=headers)
    message = f"Too many failed attempts. Try again in {seconds} seconds."
    response = _login_response(csrf, next_path, message, status=429)
    response.headers.update(headers)
    return response


def _login_response(csrf: str, next_path: str, error: str = "", status: int = 200) -> web.Response:
    return web.Response(
        text=render_login(csrf, next_path, error),
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": LOGIN_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Referrer-Policy": "same-origin",
        },
    )


def render_login(csrf: str, next_path: str, error: str = "") -> str:
    """The sign-in page; every value in it is escaped."""
    alert = f'<p class="error" role="alert">{_esc(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · svarstid</title>
<style>
body{{font:15px/1.45 system-ui,sans-serif;background:#f5f7f9;color:#1d2733;margin:0}}
form{{max-width:22rem;margin:4rem auto;background:#fff;border:1px solid #dde3e9;
border-radius:8px;padding:1.2rem}}
label{{display:block;margin:.6rem 0 .2rem}}input{{width:100%;padding:.4rem;font:inherit}}
button{{margin-top:1rem;padding:.45rem 1rem;font:inherit}}.error{{color:#a11d1d}}
</style></head>
<body><form method="post" action="{LOGIN_PATH}">
<h1>svarstid</h1>{alert}
<input type="hidden" name="{CSRF_FIELD}" value="{_esc(csrf)}">
<input type="hidden" name="next" value="{_esc(next_path)}">
<label for="name">Name</label>
<input id="name" name="name" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></body></html>
"""


def _esc(value: str) -> str:
    return html.escape(value, quote=True)

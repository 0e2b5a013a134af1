"""Logins on the daemon's real HTTP server, over real sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import argon2
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from yarl import URL

from monitor.adapters.http import HttpServer, Readiness
from monitor.adapters.passwords import Passwords
from monitor.domain.access import Role, Scope, User
from monitor.interfaces.web.auth import (
    CSRF_HEADER,
    AuthSettings,
    csrf_token,
    current_user,
    install_auth,
)
from monitor.users_file import Account

# Cheap parameters keep the tests quick; production uses argon2-cffi's defaults.
PASSWORDS = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
ANNA_PASSWORD = "anna-lösen-4711"
BERTIL_PASSWORD = "bertil-lösen-0815"
ANNA = Account(User("anna", Role.REVIEWER), PASSWORDS.hash(ANNA_PASSWORD))
BERTIL = Account(
    User("bertil", Role.VIEWER, Scope.parse(["lund"])), PASSWORDS.hash(BERTIL_PASSWORD)
)
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(name, password)}


async def ready() -> Readiness:
    return Readiness(ready=True)


async def page(request: web.Request) -> web.Response:
    return web.Response(text=f"page for {current_user(request).name}")


async def api(request: web.Request) -> web.Response:
    user = current_user(request)
    return web.json_response({"user": user.name, "role": user.role.value})


async def save(request: web.Request) -> web.Response:
    return web.Response(text=f"saved by {current_user(request).name}")


async def form_page(request: web.Request) -> web.Response:
    return web.Response(text=f"token {csrf_token(request)}")


ROUTES = [
    web.get("/", page),
    web.get("/targets/{target_id}", page),
    web.get("/form", form_page),
    web.post("/notes", save),
    web.get("/api/targets", api),
    web.post("/api/reviews", api),
]


@dataclass
class Site:
    url: str
    client: aiohttp.ClientSession

    async def login_form(self, next_path: str = "/") -> tuple[str, str]:
        async with self.client.get(f"{self.url}/login", params={"next": next_path}) as response:
            body = await response.text()
        found = CSRF_INPUT.search(body)
        assert found is not None, body
        return found[1], body

    async def login(self, name: str, password: str) -> aiohttp.ClientResponse:
        token, _ = await self.login_form()
        form = {"csrf_token": token, "name": name, "password": password, "next": "/"}
        async with self.client.post(
            f"{self.url}/login", data=form, allow_redirects=False
        ) as response:
            await response.read()
            return response

    async def csrf(self) -> str:
        async with self.client.get(f"{self.url}/form") as response:
            return (await response.text()).removeprefix("token ")


SiteFactory = Callable[..., Awaitable[Site]]


@pytest.fixture
async def site_factory() -> AsyncIterator[SiteFactory]:
    servers: list[HttpServer] = []
    clients: list[aiohttp.ClientSession] = []

    async def start(**settings: Any) -> Site:
        options = {"secure_cookie": False, **settings}

        def install(app: web.Application) -> None:
            install_auth(app, [ANNA, BERTIL], AuthSettings(**options), passwords=PASSWORDS)

        server = HttpServer(
            "127.0.0.1:0", CollectorRegistry(), readiness=ready, routes=ROUTES, setup=[install]
        )
        servers.append(server)
        url = await server.start()
        # unsafe: the jar keeps cookies of an IP-address host such as 127.0.0.1.
        client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        clients.append(client)
        return Site(url, client)

    yield start
    for client in clients:
        await client.close()
    for server in servers:
        await server.stop()


@pytest.fixture
async def site(site_factory: SiteFactory) -> Site:
    return await site_factory()


async def status_of(site: Site, method: str, path: str, **options: Any) -> int:
    async with site.client.request(
        method, site.url + path, allow_redirects=False, **options
    ) as response:
        await response.read()
        return response.status


async def test_without_a_session_pages_redirect_to_the_login_and_the_api_answers_401(
    site: Site,
) -> None:
    async with site.client.get(f"{site.url}/targets/lund?x=1", allow_redirects=False) as page:
        assert page.status == 303
        assert page.headers["Location"] == "/login?next=%2Ftargets%2Flund%3Fx%3D1"
    async with site.client.get(f"{site.url}/api/targets") as api_answer:
        assert api_answer.status == 401
        assert api_answer.headers["WWW-Authenticate"].startswith("Basic ")
    assert await status_of(site, "POST", "/notes", data={"text": "x"}) == 401
    assert await status_of(site, "GET", "/") == 303
    for open_path in ("/login", "/-/healthy", "/-/ready", "/metrics"):
        assert await status_of(site, "GET", open_path) == 200, open_path


async def test_the_login_page_escapes_what_it_is_given(site: Site) -> None:
    _, body = await site.login_form('/"><script>alert(1)</script>')

    assert "<script>" not in body
    assert "&lt;script&gt;" in body


async def test_the_right_password_signs_in_with_a_strict_httponly_cookie(site: Site) -> None:
    response = await site.login("anna", ANNA_PASSWORD)

    assert response.status == 303
    assert response.headers["Location"] == "/"
    cookie = response.cookies["svarstid"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    async with site.client.get(f"{site.url}/targets/lund") as page:
        assert (page.status, await page.text()) == (200, "page for anna")
    async with site.client.get(f"{site.url}/api/targets") as api_answer:
        assert await api_answer.json() == {"user": "anna", "role": "reviewer"}


async def test_signing_in_returns_to_the_page_asked_for_but_never_to_another_site(
    site: Site,
) -> None:
    for wanted, landing in [("/targets/lund", "/targets/lund"), ("//evil.example/", "/")]:
        await site.client.post(f"{site.url}/logout")  # refused without a session: harmless
        site.client.cookie_jar.clear()
        token, _ = await site.login_form()
        form = {"csrf_token": token, "name": "anna", "password": ANNA_PASSWORD, "next": wanted}
        async with site.client.post(f"{site.url}/login", data=form, allow_redirects=False) as r:
            assert r.headers["Location"] == landing


async def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(site: Site) -> None:
    answers = []
    for name, password in [("anna", "fel-lösen"), ("nobody", "fel-lösen"), ("ANNA", "x")]:
        token, _ = await site.login_form()
        form = {"csrf_token": token, "name": name, "password": password}
        async with site.client.post(f"{site.url}/login", data=form) as response:
            answers.append(
                (response.status, await response.text(), "Set-Cookie" in response.headers)
            )

    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 200
    assert "Wrong name or password." in answers[0][1]
    assert await status_of(site, "GET", "/") == 303


async def test_a_form_posted_without_its_csrf_token_is_refused(site: Site) -> None:
    await site.login("anna", ANNA_PASSWORD)
    token = await site.csrf()

    assert await status_of(site, "POST", "/notes", data={"text": "x"}) == 403
    assert await status_of(site, "POST", "/notes", data={"text": "x", "csrf_token": "x"}) == 403
    assert await status_of(site, "POST", "/notes", data={"text": "x", "csrf_token": token}) == 200
    assert await status_of(site, "POST", "/api/reviews", json={}) == 403
    assert await status_of(site, "POST", "/api/reviews", json={}, headers={CSRF_HEADER: token}) == (
        200
    )


async def test_a_login_form_without_its_csrf_token_is_refused(site: Site) -> None:
    form = {"name": "anna", "password": ANNA_PASSWORD}
    async with site.client.post(f"{site.url}/login", data=form, allow_redirects=False) as response:
        assert response.status == 403
    assert await status_of(site, "GET", "/") == 303


async def test_ten_wrong_passwords_throttle_the_account_even_for_the_right_one(
    site: Site,
) -> None:
    statuses = []
    for attempt in range(10):
        statuses.append((await site.login("anna", f"gissning-{attempt}")).status)
    refused = await site.login("anna", ANNA_PASSWORD)

    assert statuses[:6] == [200] * 6
    assert statuses[6:] == [429] * 4
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    # Another account from the same address is not locked out by anna's attacker.
    assert (await site.login("bertil", BERTIL_PASSWORD)).status == 303


async def test_basic_auth_opens_the_api_but_not_the_pages(site: Site) -> None:
    anna = basic("anna", ANNA_PASSWORD)
    wrong = basic("anna", "fel")

    async with site.client.get(f"{site.url}/api/targets", headers=anna) as response:
        assert await response.json() == {"user": "anna", "role": "reviewer"}
    assert await status_of(site, "GET", "/api/targets", headers=wrong) == 401
    assert await status_of(site, "GET", "/api/targets", headers={"Authorization": "Basic %%%"}) == (
        401
    )
    assert await status_of(site, "GET", "/", headers=anna) == 303
    assert await status_of(site, "POST", "/api/reviews", json={"a": 1}, headers=anna) == 200
    # A form body could come from another site's page in a browser that cached the login.
    assert await status_of(site, "POST", "/api/reviews", data={"a": "1"}, headers=anna) == 403


async def test_logout_ends_the_session_even_for_a_replayed_cookie(site: Site) -> None:
    await site.login("anna", ANNA_PASSWORD)
    token = await site.csrf()
    cookie = site.client.cookie_jar.filter_cookies(URL(site.url))["svarstid"].value
    replayed = {"Cookie": f"svarstid={cookie}"}
    assert await replay_status(site.url, replayed) == 200

    async with site.client.post(
        f"{site.url}/logout", data={"csrf_token": token}, allow_redirects=False
    ) as response:
        assert (response.status, response.headers["Location"]) == (303, "/login")
    assert await status_of(site, "GET", "/") == 303
    assert await replay_status(site.url, replayed) == 303


async def replay_status(url: str, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as stranger,
        stranger.get(f"{url}/", headers=headers, allow_redirects=False) as response,
    ):
        return response.status


async def test_the_public_overview_opens_only_the_overview(site_factory: SiteFactory) -> None:
    site = await site_factory(public_overview=True)

    async with site.client.get(f"{site.url}/") as response:
        assert (response.status, await response.text()) == (200, "page for (public)")
    assert await status_of(site, "GET", "/targets/lund") == 303
    assert await status_of(site, "GET", "/api/targets") == 401


async def test_protected_metrics_need_basic_auth(site_factory: SiteFactory) -> None:
    site = await site_factory(protect_metrics=True)

    assert await status_of(site, "GET", "/metrics") == 401
    assert await status_of(site, "GET", "/metrics", headers=basic("anna", "x")) == 401
    ok = basic("bertil", BERTIL_PASSWORD)
    assert await status_of(site, "GET", "/metrics", headers=ok) == 200
    assert await status_of(site, "GET", "/-/healthy") == 200


async def test_no_password_or_hash_reaches_the_logs(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    typed_into_the_name_field = "mitt-hemliga-lösen"

    await site.login("anna", "fel-lösen-1")
    await site.login(typed_into_the_name_field, ANNA_PASSWORD)
    await site.login("anna", ANNA_PASSWORD)
    await status_of(site, "GET", "/api/targets", headers=basic("anna", "fel-lösen-2"))
    site.client.cookie_jar.clear()
    for attempt in range(8):
        await site.login("bertil", f"fel-lösen-{attempt}x")

    logged = caplog.text
    assert "login: anna from 127.0.0.1" in logged
    assert "login failed from 127.0.0.1" in logged
    assert "login throttled" in logged
    for secret in (ANNA_PASSWORD, "fel-lösen", typed_into_the_name_field, "$argon2"):
        assert secret not in logged
    assert ANNA.password_hash.split("$")[-1] not in logged

"""Accounts and HTTPS through the configuration: the new http keys, the daemon's real HTTP
server built by the composition root, and `svarstid user add|list` as real processes."""

from __future__ import annotations

import logging
import re
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from daemon_support import LUND, local_config, write_config
from yarl import URL

from monitor.adapters.passwords import Passwords
from monitor.composition import build, utc_now
from monitor.config import ConfigError, load_config
from monitor.domain.access import Role, Scope
from monitor.interfaces.web.access_setup import exposure_warning, warn_if_exposed
from monitor.users_file import read_accounts

PASSWORD = "rätt-lösen-4711"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def config_file(folder: Path, http: dict[str, Any]) -> Path:
    config = local_config(folder / "svarstid.db")
    config["http"] = {"listen": "127.0.0.1:0", **http}
    return write_config(folder, [LUND], config)


def svarstid(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ---------------------------------------------------------------------------------------------
# The configuration keys


@pytest.mark.parametrize(
    ("http", "error"),
    [
        ({"metrics_auth": "basic"}, "http.metrics_auth: needs http.users_file"),
        (
            {"metrics_auth": "digest"},
            "http.metrics_auth: must be one of none, basic (got 'digest')",
        ),
        ({"public_overview": True}, "http.public_overview: is only used with http.users_file"),
        ({"public_overview": "ja"}, "http.public_overview: must be true or false (got 'ja')"),
        ({"users_file": ""}, "http.users_file: must be a file path (got '')"),
        ({"tls": {"cert_file": "svarstid.yaml"}}, "http.tls.key_file: is required when cert_file"),
        (
            {"tls": {"cert_fil": "x.pem"}},
            "http.tls.cert_fil: unknown key, did you mean 'cert_file'?",
        ),
        ({"tls": {"cert_file": "nowhere.pem", "key_file": "svarstid.yaml"}}, "http.tls.cert_file"),
    ],
)
def test_a_bad_http_access_setting_names_its_key(
    tmp_path: Path, http: dict[str, Any], error: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_file(tmp_path, http), {})

    assert any(line.startswith(error) for line in caught.value.errors), caught.value.errors


def test_the_users_file_is_relative_to_the_config_and_need_not_exist_yet(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, {"users_file": "users.yaml"}), {})

    assert config.http.users_file == tmp_path / "users.yaml"
    assert config.http.metrics_auth.value == "none"
    assert config.http.public_overview is False
    assert config.http.tls.enabled is False


@pytest.mark.parametrize(
    ("listen", "users_file", "warned"),
    [
        ("127.0.0.1:9180", None, False),
        ("[::1]:9180", None, False),
        ("localhost:9180", None, False),
        ("0.0.0.0:9180", None, True),
        ("192.0.2.10:9180", None, True),
        ("status.example.se:9180", None, True),
        ("0.0.0.0:9180", "users.yaml", False),
    ],
)
def test_run_warns_when_the_pages_are_reachable_from_other_hosts_without_accounts(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    listen: str,
    users_file: str | None,
    warned: bool,
) -> None:
    path = config_file(tmp_path, {"users_file": users_file} if users_file else {})
    config = load_config(path, {"SVARSTID_HTTP__LISTEN": listen})

    with caplog.at_level(logging.WARNING):
        warn_if_exposed(config)

    assert (exposure_warning(config) is not None) is warned
    assert ("no http.users_file is set" in caplog.text) is warned


# ---------------------------------------------------------------------------------------------
# `svarstid user`


def test_user_add_from_stdin_then_list_shows_the_user_without_its_hash(tmp_path: Path) -> None:
    path = config_file(tmp_path, {"users_file": "users.yaml"})

    added = svarstid(
        "user", "add", "anna", "--role", "reviewer", "--scope", "lund", "tag:skane",
        "--password-stdin", "--config", str(path), stdin=PASSWORD + "\n",
    )  # fmt: skip
    listed = svarstid("user", "list", "--config", str(path))

    assert added.returncode == 0, added.stderr
    assert "user anna (reviewer, scope: lund, tag:skane) written to" in added.stdout
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "NAME  ROLE      SCOPE",
        "anna  reviewer  lund, tag:skane",
    ]
    (account,) = read_accounts(tmp_path / "users.yaml")
    assert account.user.role is Role.REVIEWER
    assert account.user.scope == Scope.parse(["lund", "tag:skane"])
    assert Passwords().verify(account.password_hash, PASSWORD)
    for output in (added.stdout, added.stderr, listed.stdout, listed.stderr):
        assert PASSWORD not in output and "$argon2" not in output


def test_user_add_refuses_a_taken_name_a_short_password_and_a_config_without_users_file(
    tmp_path: Path,
) -> None:
    path = config_file(tmp_path, {"users_file": "users.yaml"})
    first = svarstid("user", "add", "anna", "--role", "viewer", "--password-stdin",
                     "--config", str(path), stdin=PASSWORD)  # fmt: skip
    again = svarstid("user", "add", "Anna", "--role", "admin", "--password-stdin",
                     "--config", str(path), stdin=PASSWORD)  # fmt: skip
    short = svarstid("user", "add", "bertil", "--role", "viewer", "--password-stdin",
                     "--config", str(path), stdin="kort")  # fmt: skip
    bad_scope = svarstid("user", "add", "cecilia", "--role", "viewer", "--scope", "tag:",
                         "--password-stdin", "--config", str(path), stdin=PASSWORD)  # fmt: skip
    (tmp_path / "other").mkdir()
    no_file = svarstid("user", "list", "--config", str(config_file(tmp_path / "other", {})))

    assert first.returncode == 0, first.stderr
    assert (again.returncode, again.stderr.strip()) == (
        1,
        "svarstid user add: user 'anna' exists already; use --replace to change it",
    )
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    assert bad_scope.returncode == 1 and "needs a name after tag:" in bad_scope.stderr
    assert no_file.returncode == 2 and "http.users_file is not set" in no_file.stderr
    assert [a.name for a in read_accounts(tmp_path / "users.yaml")] == ["anna"]


# ---------------------------------------------------------------------------------------------
# The daemon's HTTP server as the composition root builds it


async def add_user(path: Path) -> None:
    added = svarstid("user", "add", "anna", "--role", "admin", "--password-stdin",
                     "--config", str(path), stdin=PASSWORD)  # fmt: skip
    assert added.returncode == 0, added.stderr


async def sign_in(client: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    async with client.get(f"{url}/login") as form_page:
        found = CSRF_INPUT.search(await form_page.text())
    assert found is not None
    form = {"csrf_token": found[1], "name": "anna", "password": PASSWORD}
    async with client.post(f"{url}/login", data=form, allow_redirects=False) as response:
        await response.read()
        return response


async def test_with_a_users_file_the_status_page_needs_a_login(tmp_path: Path) -> None:
    path = config_file(tmp_path, {"users_file": "users.yaml"})
    await add_user(path)
    app = build(load_config(path, {}))
    await app.store.upgrade()
    await app.store.sync_targets(app.world.targets, utc_now())
    url = await app.daemon.http.start()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            async with client.get(f"{url}/", allow_redirects=False) as page:
                assert page.status == 303
            async with client.get(f"{url}/api/targets") as api:
                assert api.status == 401
            assert (await sign_in(client, url)).status == 303
            async with client.get(f"{url}/targets/lund") as page:
                assert page.status == 200
                assert "Lund" in await page.text()
    finally:
        await app.daemon.http.stop()
        await app.store.close()


async def test_without_a_users_file_the_status_page_is_open_as_before(tmp_path: Path) -> None:
    app = build(load_config(config_file(tmp_path, {}), {}))
    await app.store.upgrade()
    url = await app.daemon.http.start()
    try:
        async with aiohttp.ClientSession() as client, client.get(f"{url}/") as page:
            assert page.status == 200
            assert "svarstid" in await page.text()
    finally:
        await app.daemon.http.stop()
        await app.store.close()


def tls_files(folder: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(cert_file), append=True)
    issued.private_key_pem.write_to_path(str(key_file))
    return ca, cert_file, key_file


async def test_https_serves_the_pages_and_the_session_cookie_is_secure(tmp_path: Path) -> None:
    ca, cert_file, key_file = tls_files(tmp_path)
    tls = {"cert_file": str(cert_file), "key_file": str(key_file)}
    path = config_file(tmp_path, {"users_file": "users.yaml", "tls": tls})
    await add_user(path)
    app = build(load_config(path, {}))
    await app.store.upgrade()
    url = await app.daemon.http.start()
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    try:
        assert url.startswith("https://127.0.0.1:")
        connector = aiohttp.TCPConnector(ssl=trusting)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as client:
            async with client.get(f"{url}/-/healthy") as healthy:
                assert healthy.status == 200
            signed_in = await sign_in(client, url)
            assert signed_in.status == 303
            cookie = signed_in.cookies["__Host-svarstid"]
            assert (cookie["secure"], cookie["httponly"], cookie["samesite"]) == (
                True,
                True,
                "Strict",
            )
            assert "__Host-svarstid" in jar.filter_cookies(URL(url))
            async with client.get(f"{url}/api/targets") as api:
                assert api.status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with aiohttp.ClientSession() as untrusting:
                await untrusting.get(f"{url}/-/healthy")
    finally:
        await app.daemon.http.stop()
        await app.store.close()

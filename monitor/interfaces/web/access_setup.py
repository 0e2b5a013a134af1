"""From the ``http`` settings to logins and HTTPS on the daemon's HTTP server."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from aiohttp import web

from monitor.adapters.http import server_ssl_context
from monitor.config import Config, ConfigError, HttpConfig, MetricsAuth, line
from monitor.interfaces.web.auth import AuthSettings, install_auth
from monitor.users_file import read_accounts

log = logging.getLogger(__name__)

AppSetup = Callable[[web.Application], None]


def auth_settings(http: HttpConfig) -> AuthSettings:
    return AuthSettings(
        # A browser drops a Secure cookie it got over plain http: Secure needs our TLS.
        secure_cookie=http.tls.enabled,
        public_overview=http.public_overview,
        protect_metrics=http.metrics_auth is MetricsAuth.BASIC,
    )


def http_setup(config: Config) -> list[AppSetup]:
    """What the HTTP server installs: logins when ``http.users_file`` is set, else nothing."""
    path = config.http.users_file
    if path is None:
        return []
    accounts = read_accounts(path)
    if not accounts:
        raise ConfigError([line(("users",), "lists nobody; add one with svarstid user add")], path)
    settings = auth_settings(config.http)

    def install(app: web.Application) -> None:
        install_auth(app, accounts, settings)

    return [install]


def server_tls(config: Config) -> ssl.SSLContext | None:
    """The HTTPS context of ``http.tls``, or None for plain http."""
    tls = config.http.tls
    if tls.cert_file is None or tls.key_file is None:
        return None
    try:
        return server_ssl_context(tls.cert_file, tls.key_file)
    except (ssl.SSLError, OSError) as error:
        problem = f"cannot be used with http.tls.key_file: {error.strerror or error}"
        raise ConfigError([line(("http", "tls", "cert_file"), problem, tls.cert_file)]) from None


def exposure_warning(config: Config) -> str | None:
    """A warning when the status page, mail text included, is open to other hosts."""
    if config.http.users_file is not None or config.http.is_loopback:
        return None
    return (
        f"http.listen {config.http.listen} is reachable from other hosts and no "
        "http.users_file is set: anyone who reaches it sees every page, message text included"
    )


def warn_if_exposed(config: Config) -> None:
    warning = exposure_warning(config)
    if warning is not None:
        log.warning(warning)

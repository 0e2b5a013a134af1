"""The daemon's HTTP endpoints (aiohttp): /metrics, /-/healthy, /-/ready, plus extra routes.

Probes of liveness and readiness follow the Prometheus convention (/-/healthy, /-/ready), so
systemd, container health checks and Prometheus itself can watch svarstid the same way.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    """Whether the daemon can do its work, with one boolean per dependency checked."""

    ready: bool
    checks: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class ListenAddress:
    host: str | None  # None: every interface
    port: int


def parse_listen(listen: str) -> ListenAddress:
    """Read "host:port", "[v6-address]:port" or ":port" (every interface)."""
    host, sep, port_text = listen.strip().rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address must be host:port, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 listen address needs brackets, e.g. [::1]:9180, got {listen!r}")
    return ListenAddress(host=host or None, port=int(port_text))


def server_ssl_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """HTTPS with the certificate chain in ``cert_file`` (PEM) and its key in ``key_file``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def _url_for(sockname: object, scheme: str = "http") -> str:
    if not isinstance(sockname, tuple) or len(sockname) < 2:
        raise RuntimeError(f"HTTP server bound to an unexpected address {sockname!r}")
    host, port = str(sockname[0]), int(sockname[1])
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


class Exposition:
    """The registry in Prometheus text format, rendered again only after a sample changed.

    With 1,000 targets a render is some 20,000 series and takes hundreds of milliseconds of
    Python, so it runs in a worker thread (the event loop keeps serving) and its bytes are
    reused while ``generation`` reports no change. Without ``generation`` every scrape renders.
    """

    def __init__(self, registry: CollectorRegistry, generation: Callable[[], int] | None) -> None:
        self._registry = registry
        self._generation = generation
        self._cached: tuple[int, bytes] | None = None
        self._lock = asyncio.Lock()

    async def render(self) -> bytes:
        if self._generation is None:
            return await asyncio.to_thread(generate_latest, self._registry)
        async with self._lock:
            wanted = self._generation()
            if self._cached is None or self._cached[0] != wanted:
                # Read the generation before rendering: a change during the render only
                # makes the next scrape render again.
                body = await asyncio.to_thread(generate_latest, self._registry)
                self._cached = (wanted, body)
            return self._cached[1]


class HttpServer:
    """Serves the metrics of one registry and the health endpoints on ``listen``."""

    def __init__(
        self,
        listen: str,
        registry: CollectorRegistry,
        *,
        readiness: Callable[[], Awaitable[Readiness]],
        routes: Sequence[web.RouteDef] = (),
        readiness_timeout: float = 5.0,
        generation: Callable[[], int] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        setup: Sequence[Callable[[web.Application], None]] = (),
    ) -> None:
        self._address = parse_listen(listen)
        self._registry = registry
        self._exposition = Exposition(registry, generation)
        self._readiness = readiness
        self._readiness_timeout = readiness_timeout
        self._app = web.Application()
        self._app.router.add_get("/metrics", self._metrics)
        self._app.router.add_get("/-/healthy", self._healthy)
        self._app.router.add_get("/-/ready", self._ready)
        self._app.router.add_routes(routes)
        for install in setup:  # e.g. logins: middlewares and routes of their own
            install(self._app)
        self._ssl_context = ssl_context
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Bind and serve; returns the base URL actually bound (port 0 gives a free port)."""
        if self._runner is not None:
            raise RuntimeError("HTTP server already started")
        # No access log: a scrape every 15 s would drown the daemon's own events.
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(
                runner, self._address.host, self._address.port, ssl_context=self._ssl_context
            )
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        return _url_for(runner.addresses[0], "https" if self._ssl_context else "http")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await self._exposition.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _ready(self, request: web.Request) -> web.Response:
        readiness = await self._check_readiness()
        payload = {"ready": readiness.ready, "checks": dict(readiness.checks)}
        return web.json_response(payload, status=200 if readiness.ready else 503)

    async def _check_readiness(self) -> Readiness:
        # A hanging or crashing check must answer "not ready", not hang the prober.
        try:
            async with asyncio.timeout(self._readiness_timeout):
                return await self._readiness()
        except TimeoutError:
            log.warning("readiness check timed out after %.1f s", self._readiness_timeout)
            return Readiness(ready=False, checks={"readiness_check": False})
        except Exception:
            log.exception("readiness check failed")
            return Readiness(ready=False, checks={"readiness_check": False})

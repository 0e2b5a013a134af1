"""HTTP adapter: a real aiohttp server on a free loopback port, queried by a real client."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.adapters.http import HttpServer, ListenAddress, Readiness, parse_listen
from monitor.adapters.metrics import Metrics

ReadinessCheck = Callable[[], Awaitable[Readiness]]


class SwitchableReadiness:
    """A readiness source whose answer the test flips, like the daemon does after start-up."""

    def __init__(self) -> None:
        self.checks = {"database": True, "imap": False, "smtp": True}

    async def __call__(self) -> Readiness:
        return Readiness(ready=all(self.checks.values()), checks=dict(self.checks))


async def always_ready() -> Readiness:
    return Readiness(ready=True, checks={"database": True})


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


async def started(server: HttpServer) -> AsyncIterator[str]:
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def base_url(registry: CollectorRegistry) -> AsyncIterator[str]:
    async for url in started(HttpServer("127.0.0.1:0", registry, readiness=always_ready)):
        yield url


async def test_metrics_endpoint_exposes_the_injected_registry_with_labels(
    registry: CollectorRegistry, base_url: str, client: aiohttp.ClientSession
) -> None:
    metrics = Metrics(registry, version="1.2.3")
    metrics.probe_sent("nacka")
    metrics.message_processed("human", matched=True)
    async with client.get(f"{base_url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await response.text()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("svarstid_probes_sent_total", (("target", "nacka"),))] == 1
    key = ("svarstid_messages_total", (("kind", "human"), ("matched", "true")))
    assert samples[key] == 1


async def test_metrics_endpoint_shows_later_changes(
    registry: CollectorRegistry, base_url: str, client: aiohttp.ClientSession
) -> None:
    metrics = Metrics(registry, version="1.2.3")
    async with client.get(f"{base_url}/metrics") as response:
        assert 'target="solna"' not in await response.text()
    metrics.set_outstanding("solna", 2)
    async with client.get(f"{base_url}/metrics") as response:
        assert 'svarstid_probes_outstanding{target="solna"} 2.0' in await response.text()


async def test_healthy_answers_ok_while_the_process_runs(
    base_url: str, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"{base_url}/-/healthy") as response:
        assert response.status == 200
        assert await response.text() == "OK"


async def test_ready_is_503_until_every_check_passes_then_200(
    registry: CollectorRegistry, client: aiohttp.ClientSession
) -> None:
    readiness = SwitchableReadiness()
    async for url in started(HttpServer("127.0.0.1:0", registry, readiness=readiness)):
        async with client.get(f"{url}/-/ready") as response:
            assert response.status == 503
            body = await response.json()
        assert body == {"ready": False, "checks": {"database": True, "imap": False, "smtp": True}}
        readiness.checks["imap"] = True
        async with client.get(f"{url}/-/ready") as response:
            assert response.status == 200
            assert (await response.json())["ready"] is True


async def failing_check() -> Readiness:
    raise ConnectionError("database unreachable")


async def hanging_check() -> Readiness:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("check", [failing_check, hanging_check])
async def test_ready_is_503_when_the_check_itself_breaks_or_hangs(
    registry: CollectorRegistry, client: aiohttp.ClientSession, check: ReadinessCheck
) -> None:
    server = HttpServer("127.0.0.1:0", registry, readiness=check, readiness_timeout=0.05)
    async for url in started(server):
        async with client.get(f"{url}/-/ready") as response:
            assert response.status == 503
            assert (await response.json())["ready"] is False


async def test_extra_routes_are_served_beside_the_built_in_ones(
    registry: CollectorRegistry, client: aiohttp.ClientSession
) -> None:
    async def status_page(request: web.Request) -> web.Response:
        return web.Response(text="status page")

    server = HttpServer(
        "127.0.0.1:0", registry, readiness=always_ready, routes=[web.get("/", status_page)]
    )
    async for url in started(server):
        async with client.get(f"{url}/") as response:
            assert await response.text() == "status page"
        async with client.get(f"{url}/-/healthy") as response:
            assert response.status == 200


async def test_unknown_path_is_404(base_url: str, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{base_url}/nope") as response:
        assert response.status == 404


async def test_start_returns_the_actually_bound_port(base_url: str) -> None:
    assert base_url.startswith("http://127.0.0.1:")
    assert int(base_url.rsplit(":", 1)[1]) > 0


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
async def test_serves_on_ipv6_loopback_with_a_bracketed_url(
    registry: CollectorRegistry, client: aiohttp.ClientSession
) -> None:
    async for url in started(HttpServer("[::1]:0", registry, readiness=always_ready)):
        assert url.startswith("http://[::1]:")
        async with client.get(f"{url}/-/healthy") as response:
            assert response.status == 200


async def test_port_in_use_fails_start_and_leaves_nothing_running(
    registry: CollectorRegistry, base_url: str
) -> None:
    busy = HttpServer(base_url.removeprefix("http://"), registry, readiness=always_ready)
    with pytest.raises(OSError):
        await busy.start()
    await busy.stop()


async def test_starting_twice_is_an_error_and_stop_is_idempotent(
    registry: CollectorRegistry,
) -> None:
    server = HttpServer("127.0.0.1:0", registry, readiness=always_ready)
    await server.start()
    with pytest.raises(RuntimeError, match="already started"):
        await server.start()
    await server.stop()
    await server.stop()


async def test_stopped_server_refuses_connections(
    registry: CollectorRegistry, client: aiohttp.ClientSession
) -> None:
    server = HttpServer("127.0.0.1:0", registry, readiness=always_ready)
    url = await server.start()
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with client.get(f"{url}/-/healthy"):
            pass


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9180", ListenAddress("127.0.0.1", 9180)),
        ("0.0.0.0:80", ListenAddress("0.0.0.0", 80)),
        ("localhost:9180", ListenAddress("localhost", 9180)),
        ("[::1]:9180", ListenAddress("::1", 9180)),
        ("[::]:0", ListenAddress("::", 0)),
        (":9180", ListenAddress(None, 9180)),
    ],
)
def test_listen_strings_are_read_as_host_and_port(listen: str, expected: ListenAddress) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    "listen", ["9180", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "::1:9180", "host:70000"]
)
def test_malformed_listen_strings_are_rejected(listen: str) -> None:
    with pytest.raises(ValueError, match="listen address"):
        parse_listen(listen)

"""Leader election on one SQLite host (file lock), the send gate, and the daemon's roles.

The PostgreSQL advisory lock with two real processes is in
tests/integration/test_ha_postgres.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from daemon_support import eventually, local_config, write_config

from monitor.adapters.leader import (
    NOT_LEADER_DETAIL,
    AlwaysLeader,
    FileLeaderLock,
    GatedSender,
    Leadership,
    PostgresAdvisoryLock,
    Role,
    asyncpg_dsn,
    lock_for,
    session_settings,
)
from monitor.adapters.smtp import SendStatus, SmtpSecurity, SmtpSettings
from monitor.composition import Application, build
from monitor.config import load_config
from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer
from monitor.domain.model import ProbeState

STOCKHOLM = ZoneInfo("Europe/Stockholm")
USER, PASSWORD = "svarstid", "imap-pw"
TUESDAY_10 = datetime(2026, 6, 2, 10, 0, tzinfo=STOCKHOLM)


# -- the locks ---------------------------------------------------------------------------------


async def test_file_lock_admits_one_holder_until_it_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite.leader.lock"
    first, second = FileLeaderLock(path), FileLeaderLock(path)
    assert await first.try_acquire()
    assert not await second.try_acquire()
    assert await first.holds() and not await second.holds()
    await first.release()
    assert await second.try_acquire()
    assert not await first.try_acquire()
    await second.release()


async def test_file_lock_names_its_holder_for_the_operator(tmp_path: Path) -> None:
    import os

    lock = FileLeaderLock(tmp_path / "x.lock")
    assert await lock.try_acquire()
    assert (tmp_path / "x.lock").read_text().strip() == str(os.getpid())
    await lock.release()


@pytest.mark.parametrize(
    ("url", "kind", "lock_file"),
    [
        ("postgresql+asyncpg://svarstid:pw@db:5432/svarstid", PostgresAdvisoryLock, None),
        ("sqlite+aiosqlite:////var/lib/svarstid/svarstid.db", FileLeaderLock, "svarstid.db"),
        ("sqlite+aiosqlite:///relative.db", FileLeaderLock, "relative.db"),
        ("sqlite+aiosqlite://", AlwaysLeader, None),
        ("sqlite+aiosqlite:///:memory:", AlwaysLeader, None),
    ],
)
def test_the_lock_fits_the_database(url: str, kind: type, lock_file: str | None) -> None:
    lock = lock_for(url)
    assert isinstance(lock, kind)
    if lock_file is not None:
        assert isinstance(lock, FileLeaderLock)
        assert lock.path.name == f"{lock_file}.leader.lock"


def test_postgres_lock_description_never_shows_the_password() -> None:
    lock = lock_for("postgresql+asyncpg://svarstid:s3cret@db:5432/svarstid")
    assert "s3cret" not in lock.description


def test_asyncpg_dsn_drops_the_sqlalchemy_driver_name() -> None:
    dsn = asyncpg_dsn("postgresql+asyncpg://u:p%40ss@db.example:5433/svarstid")
    assert dsn == "postgresql://u:p%40ss@db.example:5433/svarstid"


@pytest.mark.parametrize("timeout", [3, 15, 60, 600])
def test_a_vanished_leader_session_is_dropped_by_the_server_within_the_timeout(
    timeout: int,
) -> None:
    settings = session_settings(timeout)
    detection = int(settings["tcp_keepalives_idle"]) + int(
        settings["tcp_keepalives_interval"]
    ) * int(settings["tcp_keepalives_count"])
    assert detection <= timeout
    assert int(settings["tcp_user_timeout"]) == timeout * 1000


# -- Leadership and the send gate ----------------------------------------------------------------


class RevocableLock(FileLeaderLock):
    """A file lock the test can take away for good, as a dropped database session would."""

    revoked = False

    async def try_acquire(self) -> bool:
        return not self.revoked and await super().try_acquire()

    async def revoke(self) -> None:
        self.revoked = True
        await self.release()


async def test_without_a_daemon_sends_are_not_gated(tmp_path: Path) -> None:
    leadership = Leadership(FileLeaderLock(tmp_path / "l"))
    assert leadership.role is Role.UNMANAGED
    assert await leadership.permits_send()


async def test_a_standby_may_not_send(tmp_path: Path) -> None:
    holder = FileLeaderLock(tmp_path / "l")
    assert await holder.try_acquire()
    leadership = Leadership(FileLeaderLock(tmp_path / "l"))
    assert not await leadership.acquire()
    assert leadership.role is Role.STANDBY
    assert not await leadership.permits_send()


async def test_a_leader_whose_lock_is_gone_steps_down_and_says_so(tmp_path: Path) -> None:
    lock = RevocableLock(tmp_path / "l")
    leadership = Leadership(lock)
    lost: list[bool] = []
    leadership.on_lost = lambda: lost.append(True)
    assert await leadership.acquire()
    assert await leadership.permits_send()
    await lock.revoke()
    assert not await leadership.permits_send()
    assert leadership.role is Role.STANDBY
    assert lost == [True]


async def test_gated_sender_sends_nothing_when_the_gate_says_no(
    smtp_server: RecordingSmtpServer,
) -> None:
    from email.message import EmailMessage

    settings = SmtpSettings(
        host="127.0.0.1",
        port=smtp_server.port,
        security=SmtpSecurity.NONE,
        username=None,
        password=None,
        timeout=5,
    )
    sender = GatedSender(settings, lambda: TUESDAY_10)
    message = EmailMessage()
    message["Subject"] = "Fråga"
    message.set_content("Hej")
    allowed = [False]

    async def gate() -> bool:
        return allowed[0]

    sender.gate = gate
    refused = await sender.send(message, sender="a@x.example", recipients=["b@y.example"])
    assert (refused.status, refused.permanent, refused.detail) == (
        SendStatus.FAILED,
        False,
        NOT_LEADER_DETAIL,
    )
    assert smtp_server.messages == []
    allowed[0] = True
    sent = await sender.send(message, sender="a@x.example", recipients=["b@y.example"])
    assert sent.status is SendStatus.ACCEPTED
    assert len(smtp_server.messages) == 1
    await sender.close()


# -- two daemons on one SQLite database ----------------------------------------------------------


TARGETS = [
    {"id": "lund", "name": "Lund", "address": "info@lund.example.invalid", "kommunkod": "1281"},
    {"id": "malmo", "name": "Malmö", "address": "info@malmo.example.invalid", "kommunkod": "1280"},
]


def write_instance_config(folder: Path, name: str, smtp_port: int, imap_port: int) -> Path:
    """The config file of instance ``name``; every instance shares one SQLite database."""
    config = local_config(folder / "shared.db", smtp_port, imap_port, login=(USER, PASSWORD))
    config["http"] = {"listen": "127.0.0.1:0"}
    config["schedule"] = {"jitter_minutes": 0, "tick_seconds": 3600}
    config["leader"] = {"poll_seconds": 0.05}
    return write_config(folder, TARGETS, config, name=name)


@dataclass
class Instance:
    app: Application
    task: asyncio.Task[None]
    urls: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.urls[0]

    async def stop(self) -> None:
        self.app.daemon.stop()
        await self.task


@dataclass
class Pair:
    smtp: RecordingSmtpServer
    imap: InProcessImapServer
    start: Callable[..., object]
    instances: list[Instance]


@pytest.fixture
async def servers() -> AsyncIterator[tuple[RecordingSmtpServer, InProcessImapServer]]:
    smtp, imap = RecordingSmtpServer(), InProcessImapServer()
    await smtp.start()
    await imap.start(users={USER: PASSWORD})
    yield smtp, imap
    await smtp.stop()
    await imap.stop()


@pytest.fixture
async def launch(
    tmp_path: Path, servers: tuple[RecordingSmtpServer, InProcessImapServer]
) -> AsyncIterator[Callable[[str], object]]:
    smtp, imap = servers
    started: list[Instance] = []

    async def start(name: str, lock: FileLeaderLock | None = None) -> Instance:
        config = load_config(write_instance_config(tmp_path, name, smtp.port, imap.port), {})
        app = build(config, clock=lambda: TUESDAY_10)
        if lock is not None:
            app.daemon.leadership.lock = lock
        instance = Instance(app, asyncio.create_task(asyncio.sleep(0)))
        app.daemon.on_ready = instance.urls.append
        instance.task = asyncio.create_task(app.daemon.run())
        await eventually(lambda: instance.urls)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        if not instance.task.done():
            await instance.stop()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def leader_sample(instance: Instance) -> str:
    _, text = await get(f"{instance.url}/metrics")
    return next(line for line in text.splitlines() if line.startswith("svarstid_leader "))


async def leads_fully(instance: Instance) -> bool:
    """The lock is taken and the term begun (recovery done): the metric says 1."""
    return await leader_sample(instance) == "svarstid_leader 1.0"


async def test_second_instance_stands_by_healthy_but_not_ready(
    launch: Callable[..., object],
) -> None:
    a = await launch("a")  # type: ignore[misc]
    b = await launch("b")  # type: ignore[misc]
    assert a.app.daemon.leading and not b.app.daemon.leading
    assert await leader_sample(a) == "svarstid_leader 1.0"
    assert await leader_sample(b) == "svarstid_leader 0.0"
    assert (await get(f"{b.url}/-/healthy"))[0] == 200
    status, body = await get(f"{b.url}/-/ready")
    assert status == 503
    assert '"leader": false' in body
    await eventually(lambda: a.app.daemon.imap_connected())
    status, body = await get(f"{a.url}/-/ready")
    assert status == 200 and '"leader": true' in body


async def test_standby_takes_over_when_the_leader_stops_and_sends_then(
    launch: Callable[..., object], servers: tuple[RecordingSmtpServer, InProcessImapServer]
) -> None:
    smtp, _ = servers
    a = await launch("a")  # type: ignore[misc]
    b = await launch("b")  # type: ignore[misc]
    first = await a.app.probing.tick()
    assert [p.target_id for p in first] == ["lund", "malmo"]
    await a.stop()
    await eventually(lambda: leads_fully(b))
    await eventually(lambda: b.app.daemon.imap_connected())
    # Both targets have a probe outstanding: the new leader sends nothing twice.
    assert await b.app.probing.tick() == []
    assert len(smtp.messages) == 2


async def test_leader_that_loses_its_lock_stops_sending_and_reading_and_the_standby_leads(
    launch: Callable[..., object],
    servers: tuple[RecordingSmtpServer, InProcessImapServer],
    tmp_path: Path,
) -> None:
    smtp, _ = servers
    lock = RevocableLock(tmp_path / "shared.db.leader.lock")
    a = await launch("a", lock)  # type: ignore[misc]
    b = await launch("b")  # type: ignore[misc]
    await eventually(lambda: a.app.daemon.imap_connected())
    await lock.revoke()
    await eventually(lambda: leads_fully(b))
    assert not a.app.daemon.leading
    assert await leader_sample(a) == "svarstid_leader 0.0"
    # A's gate refuses: the probe it tries is FAILED, never handed to the SMTP server.
    refused = await a.app.probing.tick()
    assert [p.state for p in refused] == [ProbeState.FAILED]
    assert smtp.messages == []
    # B sends; lund waits out the retry delay of A's failed (never delivered) probe.
    sent = await b.app.probing.tick()
    assert [(p.target_id, p.state) for p in sent] == [("malmo", ProbeState.SENT)]
    assert [m.rcpt_tos for m in smtp.messages] == [("info@malmo.example.invalid",)]

"""Outages of what the daemon depends on: its SMTP relay, its IMAP server, its database.

Each is taken away for a while during a run and given back. The daemon must keep running,
say so in its metrics and /-/ready, reconnect by itself, send what fell due afterwards within
the politeness limits, and time a reply that arrived during the outage by the server's
INTERNALDATE, so that no municipality's figures move because of our outage.

SMTP and IMAP are in-process servers behind a TCP proxy that is cut (connections reset, then
ECONNREFUSED) and restored on the same port: the servers keep their state, as a real server
behind a broken network path does. The database is a PostgreSQL cluster of the test's own,
stopped with pg_ctl and started again on its port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mailservers import (
    MONITOR_DOMAIN,
    DaemonConfig,
    PostgresCluster,
    TcpProxy,
    eventually,
    metric_value,
)

from monitor.composition import Application, build
from monitor.config import load_config
from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer
from monitor.demo.replies import human_answer, read_probe
from monitor.domain.model import OutcomeState, Probe, ProbeOutcome, ProbeState
from monitor.service import probing

pytestmark = pytest.mark.integration

USER, PASSWORD = f"svar@{MONITOR_DOMAIN}", "imap-secret"
OUTAGE_SECONDS = 4.0
RECOVERY_TIMEOUT = 30.0  # IMAP reconnects back off 1, 2, 4, 8 s (with jitter): well inside


@pytest.fixture(autouse=True)
def short_relay_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # Production waits 30 s after a relay failure, doubling up to 15 min; the same behaviour
    # with a 1 s start keeps the test short.
    monkeypatch.setattr(probing, "INFRASTRUCTURE_BACKOFF", (1.0, 4.0))


@dataclass
class Rig:
    app: Application
    url: str
    daemon: asyncio.Task[None]
    smtp: RecordingSmtpServer
    imap: InProcessImapServer
    smtp_path: TcpProxy
    imap_path: TcpProxy

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}{path}") as response:
            return response.status, await response.text()

    async def metric(self, name: str, labels: str = "") -> float | None:
        _, exposition = await self.get("/metrics")
        return metric_value(exposition, name, labels)

    async def ready(self) -> int:
        return (await self.get("/-/ready"))[0]

    async def probes(self) -> list[Probe]:
        records = await self.app.store.probe_records(datetime(2000, 1, 1, tzinfo=UTC))
        found = [await self.app.store.probe(r.token) for r in records]
        return [p for p in found if p is not None]

    async def answer(self, probe: Probe) -> datetime:
        """The municipality's answer lands in our mailbox now; returns its INTERNALDATE."""
        delivered = next(m for m in self.smtp.messages if probe.token in m.mail_from)
        at = datetime.now(UTC)
        reply = human_answer(
            read_probe(delivered.raw),
            officer="Eva Lind",
            sender=probe.target_address,
            answer="Ansökan om bygglov gör ni i vår e-tjänst.",
            at=at,
        )
        await self.imap.append(USER, reply, internaldate=at)
        return at.replace(microsecond=0)  # IMAP INTERNALDATE has whole seconds

    async def outcome_reaching(self, token: str, state: OutcomeState) -> ProbeOutcome:
        async def reached() -> ProbeOutcome | None:
            outcome = await self.app.store.outcome(token)
            return outcome if outcome is not None and outcome.state is state else None

        found: ProbeOutcome = await eventually(
            reached, timeout=RECOVERY_TIMEOUT, what=f"probe {token} {state.value}"
        )
        return found


@asynccontextmanager
async def running_daemon(
    folder: Path,
    *,
    database_url: str,
    targets: Sequence[str],
    schedule: Mapping[str, Any],
    smtp_down: bool = False,
) -> AsyncIterator[Rig]:
    smtp, imap = RecordingSmtpServer(), InProcessImapServer()
    await smtp.start()
    await imap.start(users={USER: PASSWORD})
    smtp_path, imap_path = TcpProxy(smtp.port), TcpProxy(imap.port)
    await smtp_path.start()
    await imap_path.start()
    if smtp_down:
        await smtp_path.cut()
    config = DaemonConfig(
        folder=folder,
        smtp_port=smtp_path.port,
        imap_port=imap_path.port,
        imap_user=USER,
        imap_password=PASSWORD,
        database_url=database_url,
        targets=[
            {"id": name, "name": name.title(), "address": f"kontakt@{name}.example.se"}
            for name in targets
        ],
        mailbox_address=USER,
        reply_address=f"svar+{{token}}@{MONITOR_DOMAIN}",
        schedule=schedule,
        imap={"timeout": 5},
        smtp={"timeout": 5},
    )
    app = build(load_config(config.write(), {}))
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    app.daemon.on_ready = ready.set_result
    daemon = asyncio.create_task(app.daemon.run())
    try:
        url = await asyncio.wait_for(ready, 60)
        yield Rig(app, url, daemon, smtp, imap, smtp_path, imap_path)
        assert not daemon.done(), "the daemon stopped by itself"
    finally:
        app.daemon.stop()
        await asyncio.wait_for(daemon, 60)
        for server in (smtp_path, imap_path, smtp, imap):
            await server.stop()


def sqlite_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'svarstid.db'}"


async def test_smtp_outage_costs_no_probe_and_what_fell_due_goes_out_within_the_limits(
    tmp_path: Path,
) -> None:
    schedule = {"max_probes_per_hour": 2}
    async with running_daemon(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        targets=["ale", "bollnas", "kiruna"],
        schedule=schedule,
        smtp_down=True,
    ) as rig:

        async def errors_counted() -> bool:
            return (await rig.metric("svarstid_smtp_errors_total") or 0) >= 2

        await eventually(errors_counted, timeout=RECOVERY_TIMEOUT, what="relay failures counted")
        assert await rig.probes() == []  # no probe was spent on our own outage
        assert not rig.daemon.done()

        await rig.smtp_path.restore()
        await eventually(
            lambda: len(rig.smtp.messages) >= 2, timeout=RECOVERY_TIMEOUT, what="sends resumed"
        )
        await asyncio.sleep(3)  # several more ticks: the hourly limit must still hold
        assert len(rig.smtp.messages) == 2
        probes = await rig.probes()
        assert sorted(p.state for p in probes) == [ProbeState.SENT, ProbeState.SENT]
        assert await rig.metric("svarstid_last_probe_sent_timestamp_seconds") != 0


async def test_imap_outage_is_reported_and_a_reply_during_it_is_timed_by_internaldate(
    tmp_path: Path,
) -> None:
    async with running_daemon(
        tmp_path, database_url=sqlite_url(tmp_path), targets=["lund"], schedule={}
    ) as rig:
        await eventually(lambda: len(rig.smtp.messages) == 1, timeout=30, what="probe sent")
        (probe,) = await rig.probes()
        await eventually(_connected(rig, 1.0), timeout=RECOVERY_TIMEOUT, what="IMAP up")
        assert await rig.ready() == 200

        await rig.imap_path.cut()
        await eventually(_connected(rig, 0.0), timeout=RECOVERY_TIMEOUT, what="IMAP down shown")
        assert await rig.ready() == 503
        answered_at = await rig.answer(probe)  # lands while we cannot see it
        await asyncio.sleep(OUTAGE_SECONDS)
        restored_at = datetime.now(UTC)
        await rig.imap_path.restore()

        outcome = await rig.outcome_reaching(probe.token, OutcomeState.ANSWERED)
        assert outcome.first_human_at == answered_at  # not the time we fetched it
        assert restored_at.timestamp() - answered_at.timestamp() >= OUTAGE_SECONDS
        assert probe.sent_at is not None
        assert outcome.wall_seconds == (answered_at - probe.sent_at).total_seconds()
        await eventually(_connected(rig, 1.0), timeout=RECOVERY_TIMEOUT, what="IMAP up again")
        assert await rig.ready() == 200


def _connected(rig: Rig, value: float) -> Any:
    async def check() -> bool:
        return await rig.metric("svarstid_imap_connected") == value

    return check


@pytest.fixture
def own_postgres() -> Any:
    cluster = PostgresCluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()


async def test_database_outage_keeps_the_daemon_up_and_loses_no_reply(
    tmp_path: Path, own_postgres: PostgresCluster
) -> None:
    schedule = {"min_spacing_days": 0, "question_repeat_days": 0, "max_probes_per_hour": 2}
    async with running_daemon(
        tmp_path, database_url=own_postgres.url, targets=["umea"], schedule=schedule
    ) as rig:
        await eventually(lambda: len(rig.smtp.messages) == 1, timeout=30, what="probe sent")
        (probe,) = await rig.probes()
        await eventually(lambda: _ready_is(rig, 200), timeout=RECOVERY_TIMEOUT, what="ready")

        await asyncio.to_thread(own_postgres.stop)
        await eventually(lambda: _ready_is(rig, 503), timeout=RECOVERY_TIMEOUT, what="503")
        answered_at = await rig.answer(probe)  # arrives while nothing can be stored
        await asyncio.sleep(OUTAGE_SECONDS)
        assert not rig.daemon.done()
        await asyncio.to_thread(own_postgres.restart)

        outcome = await rig.outcome_reaching(probe.token, OutcomeState.ANSWERED)
        assert outcome.first_human_at == answered_at
        await eventually(lambda: _ready_is(rig, 200), timeout=RECOVERY_TIMEOUT, what="ready")
        # Answered, the target is due again: one more probe, and no third (2 per hour).
        await eventually(
            lambda: len(rig.smtp.messages) == 2, timeout=RECOVERY_TIMEOUT, what="next probe"
        )
        await asyncio.sleep(3)
        assert len(rig.smtp.messages) == 2
        states = sorted(p.state for p in await rig.probes())
        assert states == [ProbeState.SENT, ProbeState.SENT]


async def _ready_is(rig: Rig, status: int) -> bool:
    return await rig.ready() == status

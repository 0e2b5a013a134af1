"""High availability with two real `svarstid run` processes on one real PostgreSQL.

The mail servers run in this test process (aiosmtpd, pymap) on 127.0.0.1. Instance A leads
and sends; B stands by. A is SIGKILLed in the middle of a sending round; B must take over
within the documented bound (leader.poll_seconds + leader.session_timeout_seconds), recover
the probe A left in flight as UNCERTAIN, and send the rest. Counted at the SMTP server: no
probe and no target is delivered twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest
import yaml
from mailservers import eventually as poll_until
from mailservers import free_port

from monitor.adapters.leader import LOCK_KEY, asyncpg_dsn
from monitor.demo.mailservers import InProcessImapServer, ReceivedSmtp, RecordingSmtpServer
from monitor.domain.calendar import build_calendar

pytestmark = pytest.mark.integration

USER, PASSWORD = "svarstid", "imap-ha-pw"
TARGETS = 24
POLL_SECONDS = 1.0
SESSION_TIMEOUT_SECONDS = 3
SMTP_DELAY = 0.25  # seconds the SMTP server takes per message: a sending round takes a while
TOKEN = re.compile(r"svar\+([a-z0-9]+)@")
REPO = Path(__file__).resolve().parents[2]


class SlowSmtpServer(RecordingSmtpServer):
    """Takes SMTP_DELAY before it accepts each message, so a kill lands mid-round."""

    async def record(self, received: ReceivedSmtp) -> None:
        await asyncio.sleep(SMTP_DELAY)
        await super().record(received)


def open_calendar() -> tuple[str, str]:
    """A (country, time zone) where today and tomorrow are no holiday and it is not near
    midnight, so that a calendar open around the clock lets probes go out right now."""
    for zone in ("UTC", "Asia/Tokyo", "America/New_York"):
        local = datetime.now(ZoneInfo(zone))
        if not 1 <= local.hour <= 22:
            continue
        for country in ("SE", "US", "JP", "DE", "FR", "IN", "BR"):
            closed = build_calendar(country=country, timezone=zone).closed_dates
            if local.date() not in closed and (local + timedelta(days=1)).date() not in closed:
                return country, zone
    pytest.skip("no open calendar found for today")
    raise AssertionError("unreachable")


def write_config(folder: Path, name: str, database_url: str, ports: dict[str, int]) -> Path:
    if not (folder / "targets.yaml").exists():
        targets = [
            {"id": f"t{i:02d}", "name": f"Kommun {i}", "address": f"info@k{i:02d}.example.invalid"}
            for i in range(TARGETS)
        ]
        (folder / "targets.yaml").write_text(yaml.safe_dump({"targets": targets}))
    country, zone = open_calendar()
    all_day = "00:00-23:59"
    config = {
        "mailbox": {
            "address": "matning@kontroll.example.se",
            "reply_address": "svar+{token}@kontroll.example.se",
        },
        "smtp": {"host": "127.0.0.1", "port": ports["smtp"], "security": "none"},
        "imap": {
            "host": "127.0.0.1",
            "port": ports["imap"],
            "security": "none",
            "username": USER,
            "password": PASSWORD,
        },
        "database": {"url": database_url},
        "http": {"listen": f"127.0.0.1:{ports[name]}"},
        "schedule": {
            "tick_seconds": 1,
            "send_window": all_day,
            "min_spacing_days": 1,
            "max_probes_per_target_per_30_days": 2,
            "max_probes_per_hour": 1000,
            "question_repeat_days": 0,
            "jitter_minutes": 0,
        },
        "calendar": {
            "country": country,
            "timezone": zone,
            "office_hours": {
                day: all_day for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
            },
        },
        "leader": {
            "poll_seconds": POLL_SECONDS,
            "session_timeout_seconds": SESSION_TIMEOUT_SECONDS,
        },
        "logging": {"format": "json", "level": "info"},
        "targets_file": "targets.yaml",
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Instance:
    name: str
    process: asyncio.subprocess.Process
    url: str
    log: Path

    def events(self) -> list[dict[str, object]]:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@dataclass
class Rig:
    smtp: SlowSmtpServer
    imap: InProcessImapServer
    database_url: str
    start: Callable[[str], object]


async def eventually(check: Callable[[], object], timeout: float, what: str) -> None:
    # Polled often: the takeover time measured after a wait is checked against a bound.
    await poll_until(check, timeout=timeout, what=what, interval=0.05)


async def metric(instance: Instance, name: str) -> float | None:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{instance.url}/metrics") as response:
            text = await response.text()
    except aiohttp.ClientError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


async def is_leader(instance: Instance) -> bool:
    return await metric(instance, "svarstid_leader") == 1.0


async def is_standby(instance: Instance) -> bool:
    return await metric(instance, "svarstid_leader") == 0.0


@pytest.fixture
async def rig(tmp_path: Path, fresh_postgres_url: str) -> AsyncIterator[Rig]:
    smtp, imap = SlowSmtpServer(), InProcessImapServer()
    ports = {"smtp": await smtp.start(), "imap": await imap.start(users={USER: PASSWORD})}
    ports.update(a=free_port(), b=free_port())
    started: list[Instance] = []

    async def start(name: str) -> Instance:
        config = write_config(tmp_path, name, fresh_postgres_url, ports)
        log = tmp_path / f"{name}.log"
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor", "run", "--config", str(config),
                stdout=sink, stderr=sink, cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        instance = Instance(name, process, f"http://127.0.0.1:{ports[name]}", log)
        started.append(instance)
        return instance

    yield Rig(smtp, imap, fresh_postgres_url, start)
    for instance in started:
        if instance.process.returncode is None:
            instance.process.kill()
            await instance.process.wait()
    await smtp.stop()
    await imap.stop()


async def probe_states(database_url: str) -> dict[str, list[str]]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch("SELECT target_id, state FROM probes ORDER BY planned_at")
    finally:
        await connection.close()
    states: dict[str, list[str]] = {}
    for row in rows:
        states.setdefault(row["target_id"], []).append(row["state"])
    return states


async def lock_holder(database_url: str) -> int | None:
    """The backend pid holding svarstid's leader lock, if any."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        pid = await connection.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1",
            LOCK_KEY,
        )
    finally:
        await connection.close()
    return int(pid) if pid is not None else None


async def leader_and_standby(rig: Rig) -> tuple[Instance, Instance]:
    """A started first and leading, then B started and standing by."""
    a = await rig.start("a")  # type: ignore[misc]
    await eventually(lambda: is_leader(a), 60, "A leads")
    b = await rig.start("b")  # type: ignore[misc]
    await eventually(lambda: is_standby(b), 60, "B stands by")
    return a, b


def tokens(messages: list[ReceivedSmtp]) -> list[str]:
    found = [TOKEN.search(message.mail_from) for message in messages]
    return [match[1] for match in found if match is not None]


async def test_standby_takes_over_after_the_leader_is_killed_and_no_probe_goes_twice(
    rig: Rig,
) -> None:
    a, b = await leader_and_standby(rig)
    await eventually(lambda: len(rig.smtp.messages) >= 5, 60, "A sends")

    a_lock_pid = await lock_holder(rig.database_url)
    a.process.send_signal(signal.SIGKILL)
    await a.process.wait()
    killed_at = time.monotonic()
    killed_wall = datetime.now(UTC)
    bound = POLL_SECONDS + SESSION_TIMEOUT_SECONDS

    async def lock_moved() -> bool:
        holder = await lock_holder(rig.database_url)
        return holder is not None and holder != a_lock_pid

    await eventually(lock_moved, bound + 5, "B takes the lock")
    lock_taken = time.monotonic() - killed_at
    await eventually(lambda: is_leader(b), 30, "B leads (recovery done)")
    takeover = time.monotonic() - killed_at

    async def every_target_probed() -> bool:
        states = await probe_states(rig.database_url)
        settled = {"sent", "uncertain"}
        return len(states) == TARGETS and all(set(s) & settled for s in states.values())

    await eventually(every_target_probed, 120, "B probes the remaining targets")
    await asyncio.sleep(2 * POLL_SECONDS)  # B's next ticks: nothing more may go out

    messages = list(rig.smtp.messages)
    sent_tokens = tokens(messages)
    assert len(sent_tokens) == len(messages)
    assert len(set(sent_tokens)) == len(sent_tokens), "a probe was delivered twice"
    recipients = [message.rcpt_tos for message in messages]
    assert len(set(recipients)) == len(recipients), "a target got two probes"
    assert any(message.received_at > killed_wall for message in messages), "B never sent"
    states = await probe_states(rig.database_url)
    assert not any("sending" in s for s in states.values()), "an in-flight probe was left"
    uncertain = _uncertain(states)
    print(f"\nafter SIGKILL: lock taken in {lock_taken:.2f} s (bound {bound} s), B leading")
    print(f"in {takeover:.2f} s; {len(messages)} probes, A's in-flight now uncertain: {uncertain}")
    assert lock_taken <= bound + 0.5  # +0.5 s: the polling granularity of this test
    assert any(event.get("msg") == "leading" for event in b.events())
    b.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(b.process.wait(), 60) == 0


def _uncertain(states: dict[str, list[str]]) -> int:
    return sum(s.count("uncertain") for s in states.values())


async def test_leader_whose_database_session_is_killed_steps_down_and_the_standby_leads(
    rig: Rig,
) -> None:
    a, b = await leader_and_standby(rig)
    connection = await asyncpg.connect(asyncpg_dsn(rig.database_url))
    try:
        # The lock session of A: what a database failover or a network cut does to it.
        pid = await connection.fetchval(
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND a.application_name = 'svarstid-leader'"
        )
        assert pid is not None
        assert await connection.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await connection.close()
    await eventually(lambda: is_leader(b), POLL_SECONDS * 2 + 5, "B takes over")
    await eventually(lambda: is_standby(a), POLL_SECONDS * 2 + 5, "A steps down")
    assert any("leadership lost" in str(event.get("msg")) for event in a.events())
    at_takeover = len(rig.smtp.messages)
    if at_takeover < TARGETS - 1:
        await eventually(lambda: len(rig.smtp.messages) > at_takeover, 60, "B sends")
    await asyncio.sleep(2 * POLL_SECONDS)
    recipients = [message.rcpt_tos for message in rig.smtp.messages]
    assert len(set(recipients)) == len(recipients), "a target got two probes"
    for instance in (a, b):
        instance.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(instance.process.wait(), 60) == 0

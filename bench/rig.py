"""Shared pieces of the benchmarks that run the real daemon against real servers.

A config file for N targets, probes inserted as already sent (so that a benchmark measures
the inbound path, not the scheduler), reply mails that carry a probe's token, a bare IMAP
client for APPEND, and a bare IDLE client that timestamps the server's own EXISTS push.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from asyncio.subprocess import DEVNULL
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import aioimaplib
import yaml

from monitor.adapters.sql import Store
from monitor.adapters.sql_schema import outcomes as outcomes_table
from monitor.adapters.sql_schema import probes as probes_table
from monitor.composition import load_world
from monitor.config import load_config
from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer
from monitor.domain.model import OutcomeState, Probe, ProbeState

REPLY_DOMAIN = "kontroll.example.se"
TARGET_DOMAIN = "kommun.example.invalid"


def target_id(number: int) -> str:
    return f"t{number:04d}"


def write_config(
    folder: Path,
    *,
    smtp_port: int,
    imap: tuple[int, str, str],
    db_url: str,
    targets: int = 1,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A config with ``targets`` targets; ``imap`` is (port, user, password)."""
    listed = [
        {"id": target_id(n), "name": f"Kommun {n}", "address": f"kc@{target_id(n)}.{TARGET_DOMAIN}"}
        for n in range(targets)
    ]
    (folder / "targets.yaml").write_text(yaml.safe_dump({"targets": listed}))
    port, user, password = imap
    config: dict[str, Any] = {
        "mailbox": {
            "address": f"matning@{REPLY_DOMAIN}",
            "reply_address": "svar+{token}@" + REPLY_DOMAIN,
        },
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
        "imap": {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "username": user,
            "password": password,
        },
        "database": {"url": db_url},
        "http": {"listen": "127.0.0.1:0"},
        "targets_file": "targets.yaml",
        "logging": {"level": "warning"},
    } | (extra or {})
    path = folder / "svarstid.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def probe(token: str, number: int, sent_at: datetime) -> Probe:
    return Probe(
        token=token,
        target_id=target_id(number),
        target_address=f"kc@{target_id(number)}.{TARGET_DOMAIN}",
        question_id="bygglov-1",
        persona_id="anna",
        reply_address=f"svar+{token}@{REPLY_DOMAIN}",
        message_id=f"<probe.{token}@{REPLY_DOMAIN}>",
        subject="Fråga om bygglov",
        body="Hej! Behöver jag bygglov för ett plank som är 1,8 meter högt?",
        state=ProbeState.PLANNED,
        planned_at=sent_at,
    )


async def insert_sent(store: Store, probes: list[Probe], sent_at: datetime) -> None:
    for item in probes:
        await store.insert_probe(item)
        await store.transition_probe(item.token, ProbeState.SENDING, sent_at)
        await store.transition_probe(item.token, ProbeState.SENT, sent_at, sent_at=sent_at)


def reply(item: Probe, at: datetime, number: int = 0) -> bytes:
    """A short human answer to the probe, addressed to its token address."""
    return (
        f"From: Eva Lind <eva.lind@{item.target_id}.{TARGET_DOMAIN}>\r\n"
        f"To: {item.reply_address}\r\n"
        f"Subject: SV: {item.subject}\r\n"
        f"Message-ID: <answer.{item.token}.{number}@{item.target_id}.{TARGET_DOMAIN}>\r\n"
        f"In-Reply-To: {item.message_id}\r\n"
        f"Date: {format_datetime(at)}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "Hej! Ett plank på 1,8 meter kräver bygglov inom detaljplanerat område.\r\n\r\n"
        "Med vänlig hälsning\r\nEva Lind\r\n"
    ).encode()


async def imap_client(port: int, user: str, password: str) -> aioimaplib.IMAP4:
    client = aioimaplib.IMAP4(host="127.0.0.1", port=port, timeout=30)
    await client.wait_hello_from_server()
    response = await client.login(user, password)
    if response.result != "OK":
        raise RuntimeError(f"IMAP login failed: {response.lines}")
    await client.select("INBOX")
    return client


async def append(client: aioimaplib.IMAP4, raw: bytes, date: datetime | None = None) -> None:
    response = await client.append(raw, mailbox="INBOX", date=date)
    if response.result != "OK":
        raise RuntimeError(f"APPEND failed: {response.lines}")


class IdleProbe:
    """A bare IDLE client: when did the server itself announce the new message?"""

    def __init__(self, client: aioimaplib.IMAP4) -> None:
        self.client = client
        self._idle: asyncio.Future[Any] | None = None

    async def arm(self) -> None:
        self._idle = await self.client.idle_start(timeout=600)

    async def wait_exists(self, timeout: float = 30) -> float:
        """perf_counter() time of the first EXISTS push, then leave IDLE."""
        deadline = time.perf_counter() + timeout
        seen: float | None = None
        while seen is None and time.perf_counter() < deadline:
            lines = await self.client.wait_server_push(timeout=timeout)
            if isinstance(lines, list) and any(b"EXISTS" in bytes(line) for line in lines):
                seen = time.perf_counter()
        self.client.idle_done()
        if self._idle is not None:
            await asyncio.wait_for(self._idle, 10)
        if seen is None:
            raise TimeoutError("no EXISTS push from the IMAP server")
        return seen


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# --- a daemon as a separate process, for footprint and /metrics --------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def seed_history(config: Path, per_target: int, now: datetime) -> int:
    """Answered probes spread over the last 90 days for every target; returns the count."""
    world = load_world(load_config(config, {}))
    store = Store.from_url(load_config(config, {}).database.url)
    await store.upgrade()
    await store.sync_targets(world.targets, now)
    rows, results = [], []
    for number in range(len(world.targets)):
        for index in range(per_target):
            sent = now - timedelta(days=1 + (number * 7 + index * 13) % 89, hours=3)
            token = f"h{number:04d}x{index:03d}"
            rows.append(_history_probe(probe(token, number, sent), sent))
            results.append(_history_outcome(token, sent, hours=1 + (number + index) % 30))
    async with store.engine.begin() as conn:
        await conn.execute(probes_table.insert(), rows)
        await conn.execute(outcomes_table.insert(), results)
    await store.close()
    return len(rows)


def _history_probe(item: Probe, sent: datetime) -> dict[str, Any]:
    return {
        "token": item.token,
        "target_id": item.target_id,
        "target_address": item.target_address,
        "question_id": item.question_id,
        "persona_id": item.persona_id,
        "reply_address": item.reply_address,
        "message_id": item.message_id,
        "subject": item.subject,
        "body": item.body,
        "state": ProbeState.SENT.value,
        "planned_at": sent,
        "sent_at": sent,
        "updated_at": sent,
        "outcome_state": OutcomeState.ANSWERED.value,
    }


def _history_outcome(token: str, sent: datetime, hours: float) -> dict[str, Any]:
    return {
        "token": token,
        "state": OutcomeState.ANSWERED.value,
        "clock_start": sent,
        "first_human_at": sent + timedelta(hours=hours * 2),
        "wall_seconds": hours * 2 * 3600,
        "working_seconds": hours * 3600,
        "within_one_working_day": hours <= 9,
        "within_two_working_days": hours <= 18,
        "bounced": False,
        "message_keys": [],
        "computed_at": sent + timedelta(hours=hours * 2),
    }


@dataclass(frozen=True)
class DaemonProcess:
    pid: int
    metrics_url: str
    started_seconds: float  # from spawn to ready with a settled /metrics


@contextlib.asynccontextmanager
async def daemon_process(
    targets: int, per_target: int, folder: Path
) -> AsyncIterator[DaemonProcess]:
    """svarstid run as a child process with ``targets`` targets, pymap and an SMTP sink."""
    imap, smtp = InProcessImapServer(), RecordingSmtpServer()
    imap_port = await imap.start(users={"svar@kontroll.example.se": "bench"})
    smtp_port = await smtp.start()
    port = free_port()
    config = write_config(
        folder,
        smtp_port=smtp_port,
        imap=(imap_port, "svar@kontroll.example.se", "bench"),
        db_url=f"sqlite+aiosqlite:///{folder / 'daemon.db'}",
        targets=targets,
        extra={"http": {"listen": f"127.0.0.1:{port}"}},
    )
    await seed_history(config, per_target, datetime.now(UTC))
    started = time.perf_counter()
    command = [sys.executable, "-m", "monitor", "run", "--config", str(config)]
    child = await asyncio.create_subprocess_exec(*command, stdout=DEVNULL, stderr=DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        await _wait_answering(url, child)
        yield DaemonProcess(child.pid, url, time.perf_counter() - started)
    finally:
        child.terminate()
        await asyncio.wait_for(child.wait(), 60)
        await smtp.stop()
        await imap.stop()


async def _wait_answering(url: str, child: asyncio.subprocess.Process) -> None:
    """Until /-/ready says ready and /metrics stopped growing: start-up work is done."""
    ready_url = url.replace("/metrics", "/-/ready")
    previous = -1
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if child.returncode is not None:
                raise RuntimeError(f"svarstid run exited with {child.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(ready_url) as ready, session.get(url) as metrics:
                    size = len(await metrics.text())
                    if ready.status == 200 and size == previous:
                        return
                    previous = size
            await asyncio.sleep(0.5)
    raise TimeoutError("svarstid run did not settle within 300 s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat (fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found

"""Detection latency: APPEND on the IMAP server -> outcome committed and metric updated.

The daemon (started in this process, SQLite in a temp folder) watches the mailbox with IDLE.
For each sample a reply to a different sent probe is APPENDed by a separate IMAP client
while a third, bare IDLE client waits: its EXISTS time is the server's own notification
delay, measured in the same run. "Done" is the moment the outcome service has saved the
answered outcome and updated svarstid_reply_* (Metrics.reply_measured is wrapped to
timestamp that call). Figures are milliseconds from the start of the APPEND command.

Servers: pymap in-process (always) and a private Dovecot from scripts/mail-servers when it
starts on this machine (Dovecot's IDLE notifies with its own delay of up to a second).

Run: python -m bench.bench_latency [--samples N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aioimaplib

from bench.rig import IdleProbe, append, imap_client, insert_sent, percentile, probe, reply
from bench.rig import write_config as rig_config
from monitor.composition import Application, build
from monitor.config import load_config
from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer
from monitor.domain.model import Probe

ROOT = Path(__file__).resolve().parents[1]
MAIL_SERVERS = ROOT / "scripts" / "mail-servers"
PYMAP_USER, PYMAP_PASSWORD = "svar@kontroll.example.se", "bench"


@dataclass(frozen=True)
class Imap:
    port: int
    user: str
    password: str


@dataclass(frozen=True)
class Sample:
    exists_ms: float  # the bare IDLE client saw EXISTS
    done_ms: float  # outcome saved and metric updated


async def measure(imap: Imap, samples: int, folder: Path) -> list[Sample]:
    smtp = RecordingSmtpServer()
    smtp_port = await smtp.start()
    db_url = f"sqlite+aiosqlite:///{folder / 'latency.db'}"
    config = rig_config(
        folder, smtp_port=smtp_port, imap=(imap.port, imap.user, imap.password), db_url=db_url
    )
    app = build(load_config(config, {}))
    try:
        return await _with_daemon(app, imap, samples)
    finally:
        await smtp.stop()


async def _with_daemon(app: Application, imap: Imap, samples: int) -> list[Sample]:
    sent_at = datetime.now(UTC) - timedelta(minutes=10)
    await app.store.upgrade()
    await app.store.sync_targets(app.world.targets, sent_at)
    probes = [probe(f"lat{n:07d}", 0, sent_at) for n in range(samples + 1)]
    await insert_sent(app.store, probes, sent_at)
    done: asyncio.Queue[float] = asyncio.Queue()
    measured = app.metrics.reply_measured

    def timed_reply_measured(target: str, wall_seconds: float, working_seconds: float) -> None:
        measured(target, wall_seconds, working_seconds)
        done.put_nowait(time.perf_counter())

    app.metrics.reply_measured = timed_reply_measured  # type: ignore[method-assign]
    await app.daemon.start()
    try:
        async with _clients(imap) as (appender, idle):
            await _one(appender, idle, done, probes[-1])  # warm-up: connections, caches
            return [await _one(appender, idle, done, item) for item in probes[:-1]]
    finally:
        await app.daemon.shutdown()


@contextlib.asynccontextmanager
async def _clients(imap: Imap) -> AsyncIterator[tuple[aioimaplib.IMAP4, IdleProbe]]:
    appender = await imap_client(imap.port, imap.user, imap.password)
    watcher = await imap_client(imap.port, imap.user, imap.password)
    await asyncio.sleep(0.5)  # let the daemon connect and enter IDLE
    try:
        yield appender, IdleProbe(watcher)
    finally:
        for client in (appender, watcher):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.logout(), 5)


async def _one(
    appender: aioimaplib.IMAP4, idle: IdleProbe, done: asyncio.Queue[float], item: Probe
) -> Sample:
    await idle.arm()
    raw = reply(item, datetime.now(UTC))
    started = time.perf_counter()
    await append(appender, raw)
    exists = await idle.wait_exists()
    finished = await asyncio.wait_for(done.get(), 30)
    return Sample((exists - started) * 1e3, (finished - started) * 1e3)


async def _pymap(samples: int) -> list[Sample]:
    server = InProcessImapServer()
    port = await server.start(users={PYMAP_USER: PYMAP_PASSWORD})
    try:
        with tempfile.TemporaryDirectory() as folder:
            return await measure(Imap(port, PYMAP_USER, PYMAP_PASSWORD), samples, Path(folder))
    finally:
        await server.stop()


def _start_dovecot(folder: Path) -> Imap | None:
    if not MAIL_SERVERS.exists() or shutil.which("bash") is None:
        return None
    command = [str(MAIL_SERVERS), "start", str(folder / "servers")]
    command += ["--domain", "kontroll.example.se", "--user", PYMAP_USER]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        print(f"dovecot: {result.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return Imap(int(values["IMAP_PORT"]), PYMAP_USER, values["PASSWORD"])


async def _dovecot(samples: int) -> list[Sample] | None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        folder.chmod(0o755)  # Postfix and Dovecot drop root and must reach their folders
        imap = _start_dovecot(folder)
        if imap is None:
            return None
        try:
            return await measure(imap, samples, folder)
        finally:
            stop = [str(MAIL_SERVERS), "stop", str(folder / "servers")]
            subprocess.run(stop, capture_output=True, timeout=60, check=False)


def _figures(prefix: str, found: list[Sample]) -> dict[str, float]:
    over = [s.done_ms - s.exists_ms for s in found]
    return {
        f"{prefix}_samples": float(len(found)),
        f"{prefix}_server_idle_notify_p50_ms": percentile([s.exists_ms for s in found], 0.5),
        f"{prefix}_server_idle_notify_p99_ms": percentile([s.exists_ms for s in found], 0.99),
        f"{prefix}_detect_p50_ms": percentile([s.done_ms for s in found], 0.5),
        f"{prefix}_detect_p99_ms": percentile([s.done_ms for s in found], 0.99),
        f"{prefix}_over_server_p50_ms": percentile(over, 0.5),
        f"{prefix}_over_server_p99_ms": percentile(over, 0.99),
    }


def run(samples: int = 50) -> dict[str, float]:
    figures = _figures("pymap", asyncio.run(_pymap(samples)))
    dovecot = asyncio.run(_dovecot(samples))
    if dovecot is None:
        figures["dovecot_available"] = 0.0
    else:
        figures |= {"dovecot_available": 1.0} | _figures("dovecot", dovecot)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50)
    for key, value in run(parser.parse_args().samples).items():
        print(f"{key:40}{value:12.1f}")

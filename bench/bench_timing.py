"""Timing accuracy: the reply time svarstid measures versus the true one, in seconds.

Three groups of replies, all to probes stored as sent, through pymap and the real daemon:
- live: the daemon runs; a reply is APPENDed now and the server stamps INTERNALDATE. The
  true arrival is the wall clock around the APPEND; IMAP dates have whole seconds, so up to
  one second of error is the protocol's, not ours.
- stopped, live arrival: the daemon is stopped, replies are APPENDed (server-stamped), and
  the daemon starts again a few seconds later: the measured time must be the arrival, not
  the moment it was read.
- stopped, past arrival: replies APPENDed with an INTERNALDATE weeks ago while the daemon
  was stopped, to probes sent then; measured working seconds are compared with a table of
  office-hour sums worked out by hand (08:00-17:00 Europe/Stockholm, weekdays).

Run: python -m bench.bench_timing
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aioimaplib

from bench.rig import append, imap_client, insert_sent, probe, reply
from bench.rig import write_config as rig_config
from monitor.composition import Application, build
from monitor.config import Config, load_config
from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer
from monitor.domain.model import OutcomeState, Probe, ProbeOutcome

STOCKHOLM = ZoneInfo("Europe/Stockholm")
USER, PASSWORD = "svar@kontroll.example.se", "bench"
STOPPED_SECONDS = 3.0


def _at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, second, tzinfo=STOCKHOLM)


# (sent, replied, working seconds by hand). 5-9 and 12 October 2026 are plain weekdays.
PAST_CASES: tuple[tuple[datetime, datetime, float], ...] = (
    (_at(6, 9), _at(6, 13, 30), 4.5 * 3600),  # same day
    (_at(6, 16), _at(7, 9), 2 * 3600),  # 1 h Tuesday + 1 h Wednesday
    (_at(9, 16, 30), _at(12, 8, 30), 3600),  # over a weekend
    (_at(6, 7), _at(6, 8, 0, 30), 30),  # sent before opening: clock starts 08:00
    (_at(6, 10), _at(6, 10, 0, 7), 7),  # seconds
    (_at(10, 10), _at(12, 8, 15), 900),  # sent on a Saturday
    (_at(8, 16, 59, 59), _at(9, 8, 0, 1), 2),  # one second either side of the night
)


@dataclass(frozen=True)
class Expected:
    token: str
    sent_at: datetime
    arrived_earliest: datetime  # the true arrival lies in [earliest, latest]
    arrived_latest: datetime
    working_seconds: float | None  # by hand; None when now's calendar decides


@dataclass(frozen=True)
class Servers:
    imap: InProcessImapServer
    smtp_port: int
    config: Config


async def _append_now(client: aioimaplib.IMAP4, item: Probe) -> tuple[datetime, datetime]:
    before = datetime.now(UTC)
    await append(client, reply(item, before))
    return before, datetime.now(UTC)


async def _live(app: Application, client: aioimaplib.IMAP4, count: int) -> list[Expected]:
    sent_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    probes = [probe(f"live{n:06d}", 0, sent_at) for n in range(count)]
    await insert_sent(app.store, probes, sent_at)
    app.inbox.candidates.invalidate()
    expected = []
    for item in probes:
        earliest, latest = await _append_now(client, item)
        expected.append(Expected(item.token, sent_at, earliest, latest, None))
        await asyncio.sleep(0.2)
    return expected


async def _while_stopped(app: Application, client: aioimaplib.IMAP4, count: int) -> list[Expected]:
    sent_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    live = [probe(f"down{n:06d}", 0, sent_at) for n in range(count)]
    past = [probe(f"past{n:06d}", 0, sent) for n, (sent, _r, _w) in enumerate(PAST_CASES)]
    await insert_sent(app.store, live, sent_at)
    for item, (sent, _replied, _working) in zip(past, PAST_CASES, strict=True):
        await insert_sent(app.store, [item], sent)
    expected = []
    for item in live:
        earliest, latest = await _append_now(client, item)
        expected.append(Expected(item.token, sent_at, earliest, latest, None))
    for item, (sent, replied, working) in zip(past, PAST_CASES, strict=True):
        await append(client, reply(item, replied), date=replied)
        expected.append(Expected(item.token, sent, replied, replied, working))
    return expected


async def _outcomes(app: Application, tokens: list[str]) -> dict[str, ProbeOutcome]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        found = {t: await app.store.outcome(t) for t in tokens}
        if all(o is not None and o.state is OutcomeState.ANSWERED for o in found.values()):
            return {t: o for t, o in found.items() if o is not None}
        if loop.time() > deadline:
            raise TimeoutError("replies were not all measured within 60 s")
        await asyncio.sleep(0.1)


def _errors(expected: list[Expected], outcomes: dict[str, ProbeOutcome]) -> dict[str, float]:
    arrival, working = [], []
    for item in expected:
        measured = outcomes[item.token].first_human_at
        assert measured is not None
        early = (item.arrived_earliest - measured).total_seconds()
        late = (measured - item.arrived_latest).total_seconds()
        arrival.append(max(0.0, early, late))
        if item.working_seconds is not None:
            got = outcomes[item.token].working_seconds or 0.0
            working.append(abs(got - item.working_seconds))
    return {
        "replies": float(len(expected)),
        "max_arrival_error_s": max(arrival, default=0.0),
        "max_working_error_s": max(working, default=0.0),
    }


async def _measure(folder: Path, live: int, stopped: int) -> dict[str, float]:
    imap = InProcessImapServer()
    imap_port = await imap.start(users={USER: PASSWORD})
    smtp = RecordingSmtpServer()
    smtp_port = await smtp.start()
    db_url = f"sqlite+aiosqlite:///{folder / 'timing.db'}"
    path = rig_config(folder, smtp_port=smtp_port, imap=(imap_port, USER, PASSWORD), db_url=db_url)
    config = load_config(path, {})
    client = await imap_client(imap_port, USER, PASSWORD)
    try:
        return await _phases(config, client, live, stopped)
    finally:
        await client.logout()
        await smtp.stop()
        await imap.stop()


async def _phases(
    config: Config, client: aioimaplib.IMAP4, live: int, stopped: int
) -> dict[str, float]:
    app = build(config)
    await app.daemon.start()
    running = await _live(app, client, live)
    live_outcomes = await _outcomes(app, [e.token for e in running])
    await app.daemon.shutdown()
    app = build(config)
    await app.store.upgrade()
    offline = await _while_stopped(app, client, stopped)
    await asyncio.sleep(STOPPED_SECONDS)
    await app.daemon.start()
    try:
        offline_outcomes = await _outcomes(app, [e.token for e in offline])
    finally:
        await app.daemon.shutdown()
    live_errors = _errors(running, live_outcomes)
    offline_errors = _errors(offline, offline_outcomes)
    return {f"live_{k}": v for k, v in live_errors.items()} | {
        f"stopped_{k}": v for k, v in offline_errors.items()
    }


def run(samples: int = 20) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(_measure(Path(folder), samples, max(1, samples // 2)))


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:40}{value:12.3f}")

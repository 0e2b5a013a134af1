"""`svarstid demo`: the real daemon against in-process mail servers and simulated municipalities.

Nothing leaves the process: probes go to an in-process SMTP server, where each simulated
municipality reacts by appending its replies to the daemon's in-process IMAP mailbox.

First the last ``history_days`` are replayed in virtual time through the real pipeline (see
``monitor.demo.history``), so the status page opens on months of data; then the clock goes
live and a probe goes out every few seconds, answered within seconds to minutes.

Calendars: every target uses the normal Swedish calendar (Mon–Fri 08:00–17:00, Swedish
holidays) for sending in the history and for all measurement. Live demo probes are sent
through the manual send-now path, which ignores the send window, so the demo also moves at
night and at weekends; their replies are still measured on the Swedish calendar.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
import time as wallclock
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from monitor.composition import Application, build
from monitor.config import load_config
from monitor.demo.behaviours import (
    AcknowledgesOnly,
    Behaviour,
    Bounces,
    HumanAnswers,
    LivePace,
    NeverAnswers,
    OutOfOfficeThenHuman,
    ReadReceiptThenHuman,
    Staff,
    TicketFlow,
)
from monitor.demo.history import (
    DemoClock,
    HistoryReplay,
    LiveResponders,
    LiveSender,
    Reactor,
    ReplaySummary,
    Simulated,
    aligned,
)
from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer

MAILBOX_USER = "svarstid"
MAILBOX_PASSWORD = "demo"  # an in-process mailbox on loopback, not a secret
MAILBOX_ADDRESS = "matning@svarstid-demo.example.invalid"
REPLY_TEMPLATE = "svar+{token}@svarstid-demo.example.invalid"
SERVICE_CENTRE = "servicecenter@sydnarke-servicecenter.example.invalid"
HISTORY_DAYS = 90
LIVE_SEND_SECONDS = 30.0
DEFAULT_SEED = 5


@dataclass(frozen=True)
class Municipality:
    id: str
    kommunkod: str
    name: str
    officer: str
    behaviour: Behaviour
    mailbox: str = "kontaktcenter"

    @property
    def domain(self) -> str:
        return f"{self.id}.example.invalid"

    @property
    def address(self) -> str:
        return f"{self.mailbox}@{self.domain}"

    def simulated(self) -> Simulated:
        staff = Staff(self.domain, self.officer, f"{self.name}s kommun")
        return Simulated(self.id, self.address, staff, self.behaviour)


def municipalities() -> tuple[Municipality, ...]:
    """Real municipalities (kommunkod from SCB) with made-up inboxes on example.invalid."""
    return (
        Municipality("lund", "1281", "Lund", "Eva Lind", HumanAnswers("snabba svar", (0.2, 5))),
        Municipality("umea", "2480", "Umeå", "Johan Berg", HumanAnswers("snabba svar", (0.3, 8))),
        Municipality(
            "vasteras", "1980", "Västerås", "Maria Nyström", HumanAnswers("blandat", (1, 30))
        ),
        Municipality(
            "jonkoping", "0680", "Jönköping", "Ali Hassan", HumanAnswers("blandat", (2, 40))
        ),
        Municipality(
            "gavle", "2180", "Gävle", "Karin Sjöberg", HumanAnswers("svarar efter dagar", (20, 60))
        ),
        Municipality(
            "are", "2321", "Åre", "Per Ek", OutOfOfficeThenHuman("frånvaro, sedan svar", (2, 6))
        ),
        Municipality("kiruna", "2584", "Kiruna", "Sara Holm", TicketFlow("ärendesystem", (6, 30))),
        Municipality(
            "sundsvall", "2281", "Sundsvall", "Anders Lund", AcknowledgesOnly("bara autosvar")
        ),
        Municipality("bjurholm", "2403", "Bjurholm", "Lena Ek", NeverAnswers("svarar aldrig")),
        Municipality(
            "ljusnarsberg",
            "1864",
            "Ljusnarsberg",
            "Nils Ek",
            Bounces("fel adress, studsar"),
            mailbox="kommunen",
        ),
        Municipality(
            "lekeberg",
            "1814",
            "Lekeberg",
            "Ida Svensson",
            HumanAnswers(
                "svar från servicecenter",
                (1, 12),
                sender=SERVICE_CENTRE,
                sender_name="Sydnärkes servicecenter",
            ),
        ),
        Municipality(
            "tanum",
            "1435",
            "Tanum",
            "Olle Andersson",
            HumanAnswers("svar utan trådhuvuden", (1, 14), threaded=False),
        ),
        Municipality(
            "karlskrona",
            "1080",
            "Karlskrona",
            "Petra Dahl",
            ReadReceiptThenHuman("läskvitto, sedan svar", (0.2, 3), (2, 12)),
        ),
        Municipality("nacka", "0182", "Nacka", "Sofia Ali", HumanAnswers("snabba svar", (0.5, 9))),
    )


def demo_config(
    folder: Path,
    *,
    smtp_port: int,
    imap_port: int,
    database: str,
    listen: str,
    world: tuple[Municipality, ...],
) -> Path:
    """Write the config a user would write, pointing at the in-process servers."""
    targets = [
        {
            "id": m.id,
            "name": m.name,
            "address": m.address,
            "kommunkod": m.kommunkod,
            "tags": ["demo", m.behaviour.label],
        }
        for m in world
    ]
    (folder / "targets.yaml").write_text(yaml.safe_dump({"targets": targets}, allow_unicode=True))
    config = {
        "mailbox": {"address": MAILBOX_ADDRESS, "reply_address": REPLY_TEMPLATE},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": 10},
        "imap": {
            "host": "127.0.0.1",
            "port": imap_port,
            "security": "none",
            "username": MAILBOX_USER,
            "password": MAILBOX_PASSWORD,
            "poll_seconds": 5,
        },
        # Bodies of the oldest month of history are dropped, to show retention at work.
        "database": {"url": database, "body_retention_days": 60},
        "http": {"listen": listen},
        # Denser than production so that 90 days give up to ~20 probes per municipality.
        "schedule": {
            "tick_seconds": 30,
            "send_window": "08:30-16:00",
            "min_spacing_days": 4,
            "max_probes_per_target_per_30_days": 7,
            "max_probes_per_hour": 40,
            "question_repeat_days": 60,
            "jitter_minutes": 60,
        },
        "measurement": {"unanswered_final_after_working_days": 5},
        "logging": {"level": "warning", "format": "text"},
        "targets_file": "targets.yaml",
    }
    path = folder / "svarstid.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


@dataclass
class DemoRig:
    """A demo world with its history replayed, ready to go live (also used by the tests)."""

    app: Application
    smtp: RecordingSmtpServer
    imap: InProcessImapServer
    clock: DemoClock
    reactor: Reactor
    folder: Path
    database: str
    summary: ReplaySummary | None = None

    async def stop_servers(self) -> None:
        await self.smtp.stop()
        await self.imap.stop()


async def prepare(
    *,
    database: str | None = None,
    listen: str = "127.0.0.1:0",
    history_days: int = HISTORY_DAYS,
    world: tuple[Municipality, ...] | None = None,
    seed: int = DEFAULT_SEED,
    end: datetime | None = None,
    folder: Path | None = None,
    token_seed: int | None = None,
) -> DemoRig:
    """Start the mail servers, build the app on a demo clock and replay the history.

    ``end`` fixes the replay's last instant (default: now) and ``token_seed`` makes probe
    tokens reproducible; tests use both. A reused ``database`` keeps its history.
    """
    folder = folder or Path(tempfile.mkdtemp(prefix="svarstid-demo-"))
    database = database or f"sqlite+aiosqlite:///{folder / 'svarstid-demo.db'}"
    world = world or municipalities()
    end = end or datetime.now(UTC)
    start = aligned(end - timedelta(days=history_days))
    clock = DemoClock(start)
    smtp, imap = RecordingSmtpServer(clock=clock), InProcessImapServer()
    smtp_port = await smtp.start()
    imap_port = await imap.start(users={MAILBOX_USER: MAILBOX_PASSWORD})
    path = demo_config(
        folder,
        smtp_port=smtp_port,
        imap_port=imap_port,
        database=database,
        listen=listen,
        world=world,
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SVARSTID_")}
    config = load_config(path, environ)
    if token_seed is None:
        app = build(config, clock=clock)
    else:
        app = build(config, clock=clock, entropy=random.Random(token_seed).randbytes)
    reactor = Reactor([m.simulated() for m in world], seed)
    rig = DemoRig(app, smtp, imap, clock, reactor, folder, database)
    if history_days > 0 and not await _has_history(app):
        replay = HistoryReplay(app, smtp, imap, MAILBOX_USER, reactor, clock)
        rig.summary = await replay.run(start, end)
    return rig


async def _has_history(app: Application) -> bool:
    """A reused --database keeps its history; replaying again would double it."""
    await app.store.upgrade()
    return bool(await app.store.probe_records(datetime(2000, 1, 1, tzinfo=UTC)))


async def run_demo(
    stop: asyncio.Event,
    *,
    database: str | None,
    listen: str,
    duration: float | None,
    history_days: int = HISTORY_DAYS,
) -> int:
    from monitor import logs

    # The replay's own events (a bounce marking an address failing…) are history, not news.
    logs.configure("error", "text")
    started = wallclock.monotonic()
    print(
        f"svarstid demo: replaying the last {history_days} days through the real pipeline…",
        flush=True,
    )
    rig = await prepare(database=database, listen=listen, history_days=history_days)
    logs.configure("warning", "text")
    rig.clock.go_live()
    responders = LiveResponders(rig.imap, MAILBOX_USER, rig.reactor, LivePace())
    rig.smtp.on_message = responders.on_probe
    ready = asyncio.Event()

    def on_ready(url: str) -> None:
        _announce(url, rig, wallclock.monotonic() - started)
        ready.set()

    rig.app.daemon.on_ready = on_ready
    daemon = asyncio.create_task(rig.app.daemon.run())
    # Live probes only once the daemon has started: its start-up recovery marks any probe
    # caught mid-send as uncertain, and a live send racing it would be cut in two.
    await asyncio.wait(
        {daemon, asyncio.create_task(ready.wait())}, return_when=asyncio.FIRST_COMPLETED
    )
    if daemon.done():
        await daemon  # start-up failed: raise its error
    sender = asyncio.create_task(LiveSender(rig.app, LIVE_SEND_SECONDS).run(stop))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=duration)
    stop.set()
    await sender
    rig.app.daemon.stop()
    await daemon
    await responders.stop()
    await rig.stop_servers()
    return 0


def _announce(url: str, rig: DemoRig, seconds: float) -> None:
    summary = rig.summary
    history = (
        f"  history     : {summary.days} days replayed, {summary.probes_sent} probes, "
        f"{summary.replies_delivered} replies ({seconds:.1f} s)\n"
        if summary is not None
        else ""
    )
    print(
        "\nsvarstid demo is running (nothing leaves this process).\n"
        f"  status page : {url}/\n"
        f"  metrics     : {url}/metrics\n"
        f"  JSON        : {url}/api/targets\n"
        f"{history}"
        f"  database    : {rig.database}\n"
        f"  config      : {rig.folder / 'svarstid.yaml'}\n"
        "Live: a probe goes out every half minute and is answered within seconds to minutes.\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )

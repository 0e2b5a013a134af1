"""`svarstid demo`: the real daemon against in-process mail servers and simulated municipalities.

Nothing leaves the process: probes go to an in-process SMTP server, where each simulated
municipality reacts by appending its replies to the daemon's in-process IMAP mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from monitor.composition import build
from monitor.config import load_config
from monitor.demo.mailservers import InProcessImapServer, ReceivedSmtp, RecordingSmtpServer
from monitor.demo.replies import (
    ReceivedProbe,
    human_answer,
    out_of_office,
    permanent_bounce,
    read_probe,
    ticket_answer,
    ticket_receipt,
)

MAILBOX_USER = "svarstid"
MAILBOX_PASSWORD = "demo"  # an in-process mailbox on loopback, not a secret
MAILBOX_ADDRESS = "matning@svarstid-demo.example.invalid"
REPLY_TEMPLATE = "svar+{token}@svarstid-demo.example.invalid"

Reply = Callable[[ReceivedProbe, bytes, datetime], bytes]


@dataclass(frozen=True)
class Step:
    after_seconds: float
    reply: Reply


@dataclass(frozen=True)
class Municipality:
    id: str
    kommunkod: str
    name: str
    behaviour: tuple[Step, ...]

    @property
    def domain(self) -> str:
        return f"{self.id}.example.invalid"

    @property
    def address(self) -> str:
        return f"kontaktcenter@{self.domain}"


ANSWERS = (
    "Tack för din fråga. Du hittar svaret på kommunens webbplats under rubriken, "
    "och du är välkommen att ringa oss om något är oklart.",
    "Det stämmer att det går bra. Ansökan gör du via e-tjänsten, handläggningstiden är "
    "ungefär två veckor.",
    "Vi har kontrollerat saken med förvaltningen och det gäller från och med nästa månad.",
)


def _answer(officer: str, domain: str, *, threaded: bool = True) -> Reply:
    def reply(probe: ReceivedProbe, _raw: bytes, at: datetime) -> bytes:
        text = random.choice(ANSWERS)
        return human_answer(
            probe,
            officer=officer,
            sender=f"{officer.split()[0].lower()}@{domain}",
            answer=text,
            at=at,
            threaded=threaded,
        )

    return reply


def _out_of_office(officer: str, domain: str) -> Reply:
    def reply(probe: ReceivedProbe, _raw: bytes, at: datetime) -> bytes:
        return out_of_office(probe, officer=officer, sender=f"kontaktcenter@{domain}", at=at)

    return reply


def _ticket(domain: str) -> tuple[Reply, Reply]:
    case = f"2026-{random.randint(1000, 99999):06d}"

    def receipt(probe: ReceivedProbe, _raw: bytes, at: datetime) -> bytes:
        return ticket_receipt(
            probe, system="Ärendesystemet", sender=f"noreply@{domain}", case_number=case, at=at
        )

    def answer(probe: ReceivedProbe, _raw: bytes, at: datetime) -> bytes:
        return ticket_answer(
            probe,
            officer="Sara Holm",
            sender=f"noreply@{domain}",
            case_number=case,
            answer=random.choice(ANSWERS),
            at=at,
        )

    return receipt, answer


def _bounce(domain: str) -> Reply:
    def reply(probe: ReceivedProbe, raw: bytes, at: datetime) -> bytes:
        return permanent_bounce(probe, raw_probe=raw, mta=f"mx.{domain}", at=at)

    return reply


def municipalities() -> tuple[Municipality, ...]:
    receipt, ticket_reply = _ticket("kiruna.example.invalid")
    return (
        Municipality(
            "lund", "1281", "Lund", (Step(6, _answer("Eva Lind", "lund.example.invalid")),)
        ),
        Municipality(
            "are",
            "2321",
            "Åre",
            (
                Step(2, _out_of_office("Per Ek", "are.example.invalid")),
                Step(25, _answer("Per Ek", "are.example.invalid")),
            ),
        ),
        Municipality("kiruna", "2584", "Kiruna", (Step(1, receipt), Step(15, ticket_reply))),
        Municipality(
            "ljusnarsberg",
            "1864",
            "Ljusnarsberg",
            (Step(3, _bounce("ljusnarsberg.example.invalid")),),
        ),
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
            "calendar": "dygnet-runt",
            "tags": ["demo"],
        }
        for m in world
    ]
    (folder / "targets.yaml").write_text(yaml.safe_dump({"targets": targets}, allow_unicode=True))
    always = {day: ["00:00-23:59"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
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
        "database": {"url": database},
        "http": {"listen": listen},
        "schedule": {
            "tick_seconds": 2,
            "send_window": "00:00-23:59",
            "min_spacing_days": 0,
            "max_probes_per_target_per_30_days": 100000,
            "max_probes_per_hour": 600,
            "question_repeat_days": 0,
            "jitter_minutes": 0,
        },
        "calendars": {"dygnet-runt": {"office_hours": always, "closed_dates": []}},
        "logging": {"level": "info", "format": "text"},
        "targets_file": "targets.yaml",
    }
    path = folder / "svarstid.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


class Responders:
    """Plays each municipality's behaviour when a probe reaches its address."""

    def __init__(self, imap: InProcessImapServer, world: tuple[Municipality, ...]) -> None:
        self._imap = imap
        self._by_address = {m.address: m for m in world}
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_probe(self, received: ReceivedSmtp) -> None:
        for recipient in received.rcpt_tos:
            municipality = self._by_address.get(recipient.lower())
            if municipality is not None:
                self._spawn(self._play(municipality, received.raw))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play(self, municipality: Municipality, raw: bytes) -> None:
        probe = read_probe(raw)
        waited = 0.0
        for step in municipality.behaviour:
            await asyncio.sleep(step.after_seconds - waited)
            waited = step.after_seconds
            now = datetime.now(UTC)
            await self._imap.append(MAILBOX_USER, step.reply(probe, raw, now), internaldate=now)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def run_demo(
    stop: asyncio.Event, *, database: str | None, listen: str, duration: float | None
) -> int:
    folder = Path(tempfile.mkdtemp(prefix="svarstid-demo-"))
    database = database or f"sqlite+aiosqlite:///{folder / 'svarstid-demo.db'}"
    world = municipalities()
    smtp, imap = RecordingSmtpServer(), InProcessImapServer()
    smtp_port = await smtp.start()
    imap_port = await imap.start(users={MAILBOX_USER: MAILBOX_PASSWORD})
    responders = Responders(imap, world)
    smtp.on_message = responders.on_probe
    config = load_config(
        demo_config(
            folder,
            smtp_port=smtp_port,
            imap_port=imap_port,
            database=database,
            listen=listen,
            world=world,
        ),
        {k: v for k, v in os.environ.items() if not k.startswith("SVARSTID_")},
    )
    from monitor import logs

    logs.configure("info", "text")
    app = build(config)
    app.daemon.on_ready = lambda url: _announce(url, database, folder)
    daemon = asyncio.create_task(app.daemon.run())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=duration)
    app.daemon.stop()
    await daemon
    await responders.stop()
    await smtp.stop()
    await imap.stop()
    return 0


def _announce(url: str, database: str, folder: Path) -> None:
    print(
        "\nsvarstid demo is running (nothing leaves this process).\n"
        f"  status page : {url}/\n"
        f"  metrics     : {url}/metrics\n"
        f"  database    : {database}\n"
        f"  config      : {folder / 'svarstid.yaml'}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )

"""Crash safety: a campaign of hundreds of probes while the daemon is SIGKILLed over and over.

The daemon runs as its own OS process (see PreloadedDaemons) against an in-process SMTP
server and an in-process IMAP server (pymap, behind a TCP proxy that watches FETCH replies).
Municipal responders answer every delivered probe by appending a reply to the monitor's
mailbox, as a real municipality's mail would arrive. The daemon is killed with SIGKILL at
chosen moments: at random, while it starts, while it waits for the reply to SMTP DATA (the
server holds DATA), and just after the IMAP server handed it a message body (between fetch
and commit). Each time it is started again. Afterwards the SMTP server's record and the
database must agree: no probe delivered twice, every reply stored exactly once and tied to
its probe, every outcome right, no uncertain probe sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from mailservers import (
    MONITOR_DOMAIN,
    DaemonConfig,
    DaemonProcess,
    PreloadedDaemons,
    TcpProxy,
    eventually,
    free_port,
    http_get,
)

from monitor.adapters.sql import Store
from monitor.demo.mailservers import InProcessImapServer, ReceivedSmtp, RecordingSmtpServer
from monitor.demo.replies import human_answer, out_of_office, read_probe
from monitor.domain.model import OutcomeState, ProbeState

pytestmark = pytest.mark.integration

SEED = 20261122
TARGETS = 100
KILL_PLAN = ("data",) * 10 + ("fetch",) * 10 + ("random",) * 8 + ("startup",) * 4
MIN_PROBES = 200
EXTRA_CYCLES = 30  # at most, beyond the kill plan, to reach MIN_PROBES on a slow machine
OOF_SHARE = 0.05  # replies that are only an out-of-office: the probe stays unanswered
SLOW_DATA_SHARE = 0.25  # DATA replies held back, so random kills land there too
REPLY_DELAY = (1.0, 2.0)  # seconds from delivery to the reply: after the 250 even under load
USER, PASSWORD = f"svar@{MONITOR_DOMAIN}", "imap-secret"
_FETCHED_UID = re.compile(rb"FETCH \(UID (\d+)")


@dataclass(frozen=True)
class Reply:
    kind: str  # "human" or "oof"
    key: str  # sha256 of the raw bytes: the daemon's message_key
    internaldate: datetime  # whole seconds, as IMAP reports it


class KillSwitch:
    """Kills the daemon when the armed kind of moment comes for the n-th time."""

    def __init__(self, daemons: PreloadedDaemons) -> None:
        self.daemons = daemons
        self.armed: str | None = None
        self.countdown = 0
        self.fired = asyncio.Event()
        self.kills: Counter[str] = Counter()

    def arm(self, kind: str, nth: int) -> None:
        self.armed = kind
        self.countdown = nth
        self.fired.clear()

    def fire(self, kind: str) -> None:
        if self.armed != kind or self.daemons.pid is None:
            return
        self.countdown -= 1
        if self.countdown > 0:
            return
        self.daemons.kill()
        self.armed = None
        self.kills[kind] += 1
        self.fired.set()

    def kill_now(self, kind: str) -> None:
        self.armed = None
        if self.daemons.pid is not None:
            self.daemons.kill()
            self.kills[kind] += 1


class CampaignSmtp(RecordingSmtpServer):
    """Records what it accepts; may kill the daemon, or be slow, while the client waits for
    the reply to DATA. A message whose sender died meanwhile may or may not be kept (aiosmtpd
    drops the transaction when the connection goes during a slow DATA): both happen on the
    Internet, and neither may lead to a second send."""

    def __init__(self, switch: KillSwitch, rng: random.Random) -> None:
        super().__init__()
        self.switch = switch
        self.rng = rng

    async def record(self, received: ReceivedSmtp) -> None:
        self.switch.fire("data")
        if self.rng.random() < SLOW_DATA_SHARE:
            await asyncio.sleep(self.rng.uniform(0.1, 0.5))
        await super().record(received)


@dataclass
class Responder:
    """Every municipality answers each probe it receives a moment later."""

    imap: InProcessImapServer
    rng: random.Random
    active: bool = True
    in_flight: int = 0
    replies: dict[str, Reply] = field(default_factory=dict)

    async def __call__(self, received: ReceivedSmtp) -> None:
        if not self.active:
            return
        self.in_flight += 1
        try:
            await asyncio.sleep(self.rng.uniform(*REPLY_DELAY))
            await self._answer(received)
        finally:
            self.in_flight -= 1

    async def _answer(self, received: ReceivedSmtp) -> None:
        probe = read_probe(received.raw)
        token = probe.reply_to.split("@")[0].split("+", 1)[1]
        officer, sender = "Eva Lind", received.rcpt_tos[0]
        at = datetime.now(UTC)
        if self.rng.random() < OOF_SHARE:
            kind, raw = "oof", out_of_office(probe, officer=officer, sender=sender, at=at)
        else:
            answer = "Ni hittar blanketten på vår webbplats under Bygga och bo."
            raw = human_answer(probe, officer=officer, sender=sender, answer=answer, at=at)
            kind = "human"
        await self.imap.append(USER, raw, internaldate=at)
        key = hashlib.sha256(raw).hexdigest()
        self.replies[token] = Reply(kind, key, at.replace(microsecond=0))


@dataclass
class Campaign:
    smtp: CampaignSmtp
    imap: InProcessImapServer
    proxy: TcpProxy
    responder: Responder
    daemons: PreloadedDaemons
    switch: KillSwitch
    config_path: Path
    database_url: str
    http_port: int
    log_path: Path
    rng: random.Random
    fetched: Counter[int] = field(default_factory=Counter)

    def watch_fetches(self, chunk: bytes) -> None:
        """Called with what the IMAP server sends: a message body just went to the daemon."""
        uids = [int(uid) for uid in _FETCHED_UID.findall(chunk)]
        if not uids or b"BODY[]" not in chunk:
            return
        self.fetched.update(uids)
        if self.switch.armed == "fetch":
            delay = self.rng.uniform(0, 0.02)  # before the commit, mostly
            asyncio.get_running_loop().call_later(delay, self.switch.fire, "fetch")

    def log_tail(self, problems: Sequence[str] = ()) -> str:
        """The daemon log's end, and its lines about the probes named in ``problems``."""
        text = self.log_path.read_text(errors="replace")
        tokens = set(re.findall(r"probe (\w+)", " ".join(problems)))
        about = [line for line in text.splitlines() if any(t in line for t in tokens)]
        return "\n".join([*about[-40:], "...", text[-3000:]])


@pytest.fixture
async def campaign(tmp_path: Path) -> AsyncIterator[Campaign]:
    rng = random.Random(SEED)
    imap = InProcessImapServer()
    await imap.start(users={USER: PASSWORD})
    proxy = TcpProxy(imap.port)
    await proxy.start()
    http_port = free_port()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'svarstid.db'}"
    config = DaemonConfig(
        folder=tmp_path,
        smtp_port=0,  # set below, once the server listens
        imap_port=proxy.port,
        imap_user=USER,
        imap_password=PASSWORD,
        database_url=database_url,
        targets=[
            {"id": f"kommun-{n:02d}", "name": f"Kommun {n}", "address": f"info@k{n:02d}.example.se"}
            for n in range(TARGETS)
        ],
        mailbox_address=USER,
        reply_address=f"svar+{{token}}@{MONITOR_DOMAIN}",
        http_listen=f"127.0.0.1:{http_port}",
        schedule={
            "min_spacing_days": 0,
            "max_probes_per_target_per_30_days": 100_000,
            "max_probes_per_hour": 100_000,
            "question_repeat_days": 0,
        },
        imap={"poll_seconds": 5},
    )
    log_path = tmp_path / "daemon.log"
    daemons = PreloadedDaemons(tmp_path / "svarstid.yaml", log_path)
    switch = KillSwitch(daemons)
    smtp = CampaignSmtp(switch, rng)
    config.smtp_port = await smtp.start()
    config_path = config.write()
    responder = Responder(imap, random.Random(SEED + 1))
    smtp.on_message = responder
    run = Campaign(
        smtp,
        imap,
        proxy,
        responder,
        daemons,
        switch,
        config_path,
        database_url,
        http_port,
        log_path,
        rng,
    )
    proxy.on_downstream = run.watch_fetches
    try:
        yield run
    finally:
        daemons.close()
        await smtp.stop()
        await proxy.stop()
        await imap.stop()


async def healthy(port: int) -> bool:
    status, _ = await asyncio.to_thread(http_get, port, "/-/healthy")
    return status == 200


async def crash_cycle(run: Campaign, mode: str) -> None:
    run.daemons.start()
    if mode == "startup":  # during migrations, recovery, the first connects
        await asyncio.sleep(run.rng.uniform(0.1, 1.0))
        run.switch.kill_now("startup")
        return
    await eventually(lambda: healthy(run.http_port), timeout=30, what="daemon up", interval=0.05)
    if mode == "random":
        await asyncio.sleep(run.rng.uniform(0.2, 3.0))
        run.switch.kill_now("random")
        return
    # Not always the first one: the campaign must get on between the crashes.
    run.switch.arm(mode, run.rng.randint(2, 15))
    try:
        await asyncio.wait_for(run.switch.fired.wait(), 6)
    except TimeoutError:
        run.switch.kill_now(f"{mode} (not reached: random)")


def delivered_message_ids(smtp: RecordingSmtpServer) -> Counter[str]:
    parser = BytesHeaderParser()
    return Counter(str(parser.parsebytes(m.raw)["Message-ID"]).strip() for m in smtp.messages)


async def campaign_problems(run: Campaign, store: Store, *, stopped: bool) -> list[str]:
    """Everything the SMTP record, the appended replies and the database disagree on; while
    the daemon runs (not ``stopped``) a probe may be on its way."""
    problems: list[str] = []
    delivered = delivered_message_ids(run.smtp)
    problems += [f"{mid} delivered {n} times" for mid, n in delivered.items() if n > 1]
    records = await store.probe_records(datetime(2000, 1, 1, tzinfo=UTC))
    probes = {r.token: await store.probe(r.token) for r in records}
    by_message_id = {p.message_id: p for p in probes.values() if p is not None}
    for message_id in delivered:
        probe = by_message_id.get(message_id)
        if probe is None or probe.state not in (ProbeState.SENT, ProbeState.UNCERTAIN):
            problems.append(f"{message_id} delivered but {probe.state if probe else 'unknown'}")
    for token, probe in probes.items():
        assert probe is not None
        if stopped and probe.state in (ProbeState.PLANNED, ProbeState.SENDING):
            problems.append(f"probe {token} left {probe.state.value}")
    problems += await _reply_problems(run, store, probes.keys())
    return problems


async def _reply_problems(run: Campaign, store: Store, tokens: Iterable[str]) -> list[str]:
    problems: list[str] = []
    stored: dict[str, str | None] = {}
    for token in tokens:
        for message in await store.messages_for_probe(token):
            if message.message_key in stored:
                problems.append(f"reply {message.message_key[:12]} stored twice")
            stored[message.message_key] = message.probe_token
    for message in await store.unmatched_messages(limit=100_000):
        stored[message.message_key] = None
    for token, reply in run.responder.replies.items():
        if reply.key not in stored:
            problems.append(f"reply to {token} missing")
        elif stored[reply.key] != token:
            problems.append(f"reply to {token} tied to {stored[reply.key]}")
        else:
            problems += await _outcome_problems(store, token, reply)
    expected = {reply.key for reply in run.responder.replies.values()}
    problems += [f"unexpected message {key[:12]}" for key in set(stored) - expected]
    return problems


async def _outcome_problems(store: Store, token: str, reply: Reply) -> list[str]:
    probe, outcome = await store.probe(token), await store.outcome(token)
    assert probe is not None
    if outcome is None:
        return [f"probe {token} ({probe.state.value}) has a reply but no outcome"]
    if probe.state is ProbeState.UNCERTAIN:
        wanted, at = OutcomeState.NOT_MEASURABLE, None
    elif reply.kind == "human":
        wanted, at = OutcomeState.ANSWERED, outcome.first_human_at
    else:
        wanted, at = OutcomeState.UNANSWERED_SO_FAR, outcome.first_ack_at
    if outcome.state is not wanted:
        return [f"probe {token} ({probe.state.value}, {reply.kind}) is {outcome.state.value}"]
    if at is not None and at != reply.internaldate:
        return [f"probe {token} timed at {at}, reply arrived {reply.internaldate}"]
    return []


async def test_sigkill_at_any_moment_never_sends_twice_nor_loses_or_doubles_a_reply(
    campaign: Campaign,
) -> None:
    run = campaign
    plan = list(KILL_PLAN)
    run.rng.shuffle(plan)
    for mode in plan:
        await crash_cycle(run, mode)
    # A loaded machine sends less per cycle: crash on until the campaign is big enough.
    for _ in range(EXTRA_CYCLES):
        if len(run.smtp.messages) >= MIN_PROBES:
            break
        await crash_cycle(run, "random")

    # The last run is the `python -m monitor run` command itself, stopped with SIGTERM.
    run.responder.active = False
    await eventually(lambda: run.responder.in_flight == 0, timeout=10, what="responders done")
    final = DaemonProcess(run.config_path, run.http_port, run.log_path)
    final.start()
    store = Store.from_url(run.database_url)
    try:
        await eventually(lambda: healthy(run.http_port), timeout=60, what="final daemon up")

        async def settled() -> bool:
            return not await campaign_problems(run, store, stopped=False)

        with contextlib.suppress(AssertionError):  # the assertions below say what is wrong
            await eventually(settled, timeout=30, what="campaign settled", interval=0.5)
        # Wait in a thread: this event loop serves the daemon's SMTP and IMAP servers, and a
        # blocking wait would starve the send or logout the daemon finishes before exiting.
        assert await asyncio.to_thread(final.terminate) == 0, run.log_tail()
        problems = await campaign_problems(run, store, stopped=True)
    finally:
        final.kill()
        await store.close()

    assert problems == [], f"{problems[:20]}\n{run.log_tail(problems)}"
    kills = run.switch.kills
    assert sum(kills.values()) >= 30, kills
    assert kills["data"] >= 5 and kills["fetch"] >= 5, kills
    assert len(run.smtp.messages) >= MIN_PROBES, (len(run.smtp.messages), kills)
    # A kill between fetch and commit shows as the same UID handed over again after restart.
    refetched = [uid for uid, times in run.fetched.items() if times > 1]
    assert refetched, "no kill landed between fetch and commit"

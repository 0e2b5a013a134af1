"""The whole path on real sockets: probe out over SMTP, reply in over IMAP, outcome and metric."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from daemon_support import LUND, eventually, local_config, write_config

from monitor.composition import Application, build
from monitor.config import load_config
from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer
from monitor.demo.replies import human_answer, out_of_office, read_probe
from monitor.domain.model import MatchMethod, MessageKind, OutcomeState, ProbeState

STOCKHOLM = ZoneInfo("Europe/Stockholm")
USER, PASSWORD = "svarstid", "pw"


class SteppingClock:
    """A clock the test moves by hand; every reader sees the same instant."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    app: Application
    smtp: RecordingSmtpServer
    imap: InProcessImapServer
    clock: SteppingClock
    url: str


def write_e2e_config(folder: Path, smtp_port: int, imap_port: int) -> Path:
    lund = {**LUND, "address": "kontaktcenter@lund.example.invalid", "kommunkod": "1281"}
    config = local_config(folder / "e2e.db", smtp_port, imap_port, login=(USER, PASSWORD))
    config["http"] = {"listen": "127.0.0.1:0"}
    config["schedule"] = {"jitter_minutes": 0}
    return write_config(folder, [lund], config)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    smtp, imap = RecordingSmtpServer(), InProcessImapServer()
    smtp_port = await smtp.start()
    imap_port = await imap.start(users={USER: PASSWORD})
    # Tuesday 2 June 2026, 10:00 in Stockholm: inside the default send window.
    clock = SteppingClock(datetime(2026, 6, 2, 10, 0, tzinfo=STOCKHOLM))
    config = load_config(write_e2e_config(tmp_path, smtp_port, imap_port), {})
    app = build(config, clock=clock)
    url = await app.daemon.start()
    yield Rig(app, smtp, imap, clock, url)
    await app.daemon.shutdown()
    await smtp.stop()
    await imap.stop()


async def test_probe_answered_by_a_human_is_measured_in_working_time(rig: Rig) -> None:
    sent = await rig.app.probing.tick()
    assert [p.state for p in sent] == [ProbeState.SENT]
    probe = sent[0]
    delivered = await rig.smtp.wait_for_messages(1)
    assert delivered[0].rcpt_tos == ("kontaktcenter@lund.example.invalid",)
    assert probe.token in delivered[0].mail_from

    # The human answer arrives at 13:30 the same day: 3.5 office hours later.
    answered_at = datetime(2026, 6, 2, 13, 30, tzinfo=STOCKHOLM)
    received = read_probe(delivered[0].raw)
    reply = human_answer(
        received,
        officer="Eva Lind",
        sender="eva.lind@lund.example.invalid",
        answer="Soporna hämtas varannan tisdag.",
        at=answered_at,
    )
    rig.clock.now = answered_at + timedelta(minutes=1)
    await rig.imap.append(USER, reply, internaldate=answered_at)

    await eventually(lambda: rig.app.store.outcome(probe.token))
    outcome = await rig.app.store.outcome(probe.token)
    assert outcome is not None
    assert outcome.state is OutcomeState.ANSWERED
    assert outcome.working_seconds == pytest.approx(3.5 * 3600)
    assert outcome.within_one_working_day is True

    messages = await rig.app.store.messages_for_probe(probe.token)
    assert [(m.kind, m.match_method) for m in messages] == [
        (MessageKind.HUMAN, MatchMethod.ADDRESS)
    ]
    async with aiohttp.ClientSession() as http, http.get(f"{rig.url}/metrics") as response:
        exposition = await response.text()
    assert 'svarstid_reply_working_seconds_sum{target="lund"} 12600.0' in exposition
    assert 'svarstid_probes_sent_total{target="lund"} 1.0' in exposition


async def test_out_of_office_alone_leaves_the_probe_unanswered(rig: Rig) -> None:
    (probe,) = await rig.app.probing.tick()
    delivered = await rig.smtp.wait_for_messages(1)
    at = rig.clock.now + timedelta(seconds=30)
    oof = out_of_office(
        read_probe(delivered[0].raw),
        officer="Per Ek",
        sender="per.ek@lund.example.invalid",
        at=at,
    )
    await rig.imap.append(USER, oof, internaldate=at)

    await eventually(lambda: rig.app.store.outcome(probe.token))
    outcome = await rig.app.store.outcome(probe.token)
    assert outcome is not None
    assert outcome.state is OutcomeState.UNANSWERED_SO_FAR
    assert outcome.first_ack_at == at
    assert outcome.first_human_at is None


async def test_second_tick_does_not_probe_a_target_with_an_outstanding_probe(rig: Rig) -> None:
    first = await rig.app.probing.tick()
    rig.clock.now += timedelta(hours=1)
    second = await rig.app.probing.tick()
    assert len(first) == 1
    assert second == []
    assert len(rig.smtp.messages) == 1

"""A reply whose server date (INTERNALDATE) lies far in the future, through the real inbox
pipeline and the real status pages: it is stored, its probe's page answers normally."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from monitor.adapters.http import HttpServer, Readiness
from monitor.adapters.imap import FetchedMail
from monitor.adapters.metrics import Metrics
from monitor.adapters.sql import Store
from monitor.adapters.web import StatusPages
from monitor.demo.replies import human_answer, read_probe
from monitor.domain.calendar import swedish_default_calendar
from monitor.domain.model import OutcomeState, Persona, ProbeState, Question, Target
from monitor.domain.outcome import OutcomeRules
from monitor.domain.probes import build_probe, render_probe
from monitor.domain.scheduling import Politeness
from monitor.service.context import MailboxIdentity, World
from monitor.service.dashboard import Dashboard
from monitor.service.ingest import InboxService
from monitor.service.outcomes import OutcomeService

STOCKHOLM = ZoneInfo("Europe/Stockholm")
NOW = datetime(2026, 3, 18, 15, 0, tzinfo=STOCKHOLM)
SENT = datetime(2026, 3, 16, 9, 0, tzinfo=STOCKHOLM)
MAILBOX = MailboxIdentity("matning@kontroll.example.se", "svar+{token}@kontroll.example.se")
PERSONA = Persona("eva", "Eva Lund")
QUESTION = Question("avfall-1", "avfall", "Fråga om sophämtning", "Hej!\nNär hämtas soporna?")
LUND = Target("lund", "Lund", "kontakt@lund.example.invalid", "1281", "Skåne län")
TOKEN = "aaaaaaaaaa"


def world() -> World:
    return World(
        targets=(LUND,),
        questions=(QUESTION,),
        personas=(PERSONA,),
        default_calendar=swedish_default_calendar(),
        calendars={},
        politeness=Politeness(),
        outcome_rules=OutcomeRules(),
        mailbox=MAILBOX,
        opted_out=lambda _address: False,
    )


async def ready() -> Readiness:
    return Readiness(ready=True)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'future.db'}")
    await opened.upgrade()
    await opened.sync_targets([LUND], NOW - timedelta(days=10))
    yield opened
    await opened.close()


async def ingest_reply(store: Store, metrics: Metrics, received: datetime) -> None:
    outcomes = OutcomeService(store, metrics, world(), lambda: NOW)
    inbox = InboxService(store, metrics, world(), outcomes, lambda: NOW)
    probe = build_probe(
        token=TOKEN,
        target=LUND,
        question=QUESTION,
        persona=PERSONA,
        reply_template=MAILBOX.reply_template,
        mailbox_address=MAILBOX.address,
        planned_at=SENT,
    )
    await store.insert_probe(probe)
    await store.transition_probe(TOKEN, ProbeState.SENDING, SENT)
    await store.transition_probe(TOKEN, ProbeState.SENT, SENT, sent_at=SENT)
    raw = render_probe(probe, PERSONA, date=SENT).as_bytes()
    answer = human_answer(
        read_probe(raw),
        officer="Eva Lind",
        sender="eva.lind@lund.example.invalid",
        answer="Soporna hämtas på tisdagar.",
        at=SENT + timedelta(hours=2),
    )
    await inbox.ingest(FetchedMail("INBOX", 7, 101, received, answer))


@pytest.mark.parametrize(
    "received",
    [
        datetime(9999, 12, 31, 23, 30, tzinfo=UTC),  # its Stockholm time is in year 10000
        datetime(9000, 1, 1, 12, tzinfo=UTC),
        datetime(2100, 1, 1, 12, tzinfo=UTC),
    ],
)
async def test_probe_page_of_a_reply_with_a_far_future_server_date_answers_normally(
    store: Store, received: datetime
) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, version="test")
    await ingest_reply(store, metrics, received)
    assert [m.received_at for m in await store.messages_for_probe(TOKEN)] == [received]
    outcome = await store.outcome(TOKEN)
    assert outcome is not None and outcome.state is not OutcomeState.ANSWERED
    pages = StatusPages(Dashboard(store, world(), registry, lambda: NOW), lambda: NOW)
    server = HttpServer("127.0.0.1:0", registry, readiness=ready, routes=pages.routes())
    url = await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            for path in (f"/probes/{TOKEN}", f"/api/probes/{TOKEN}", "/targets/lund", "/"):
                async with http.get(f"{url}{path}") as response:
                    assert response.status == 200, path
                    body = await response.text()
                    if path == f"/probes/{TOKEN}":
                        assert str(received.year) in body
    finally:
        await server.stop()

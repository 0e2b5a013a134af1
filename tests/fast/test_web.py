"""Status page and JSON twins: a real aiohttp server on port 0 over a store seeded through the
real inbox pipeline (parse, classify, match, store, outcome)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.adapters.http import HttpServer, Readiness
from monitor.adapters.imap import FetchedMail
from monitor.adapters.metrics import Metrics
from monitor.adapters.sql import Store
from monitor.adapters.web import SORT_SCRIPT, StatusPages
from monitor.demo.replies import (
    ReceivedProbe,
    human_answer,
    out_of_office,
    permanent_bounce,
    read_probe,
    ticket_answer,
    ticket_receipt,
)
from monitor.domain.calendar import swedish_default_calendar
from monitor.domain.model import Persona, Probe, ProbeState, Question, Target
from monitor.domain.outcome import OutcomeRules
from monitor.domain.probes import build_probe, render_probe
from monitor.domain.scheduling import Politeness
from monitor.service.context import MailboxIdentity, World
from monitor.service.dashboard import Dashboard
from monitor.service.ingest import InboxService
from monitor.service.outcomes import OutcomeService

STOCKHOLM = ZoneInfo("Europe/Stockholm")
NOW = datetime(2026, 3, 18, 15, 0, tzinfo=STOCKHOLM)  # a Wednesday afternoon
HOSTILE = "<script>alert(1)</script>"
MAILBOX = MailboxIdentity("matning@kontroll.example.se", "svar+{token}@kontroll.example.se")
PERSONA = Persona("eva", "Eva Lund")
QUESTION = Question("avfall-1", "avfall", "Fråga om sophämtning", "Hej!\nNär hämtas soporna?")

TARGETS = (
    Target("lund", "Lund", "kontakt@lund.example.invalid", "1281", "Skåne län"),
    Target("kiruna", "Kiruna", "kontakt@kiruna.example.invalid", "2584", "Norrbottens län"),
    Target(
        "ljusnarsberg",
        "Ljusnarsberg",
        "kommunen@ljusnarsberg.example.invalid",
        "1864",
        "Örebro län",
    ),
    Target("bjurholm", "Bjurholm", "kontakt@bjurholm.example.invalid", "2403", "Västerbottens län"),
)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=STOCKHOLM)


def demo_world() -> World:
    return World(
        targets=TARGETS,
        questions=(QUESTION,),
        personas=(PERSONA,),
        default_calendar=swedish_default_calendar(),
        calendars={},
        politeness=Politeness(),
        outcome_rules=OutcomeRules(),
        mailbox=MAILBOX,
        opted_out=lambda _address: False,
    )


@dataclass
class Site:
    url: str
    store: Store
    metrics: Metrics
    tokens: dict[str, str]  # name in this test -> probe token
    registry: CollectorRegistry


class Seeder:
    """Sends probes the way ProbeService records them and ingests replies like the watcher."""

    def __init__(self, store: Store, inbox: InboxService) -> None:
        self.store = store
        self.inbox = inbox
        self.uid = 100

    async def probe(self, token: str, target: Target, sent_at: datetime) -> tuple[Probe, bytes]:
        probe = build_probe(
            token=token,
            target=target,
            question=QUESTION,
            persona=PERSONA,
            reply_template=MAILBOX.reply_template,
            mailbox_address=MAILBOX.address,
            # As in the daemon: the SMTP accept time has whole seconds, so it can read a
            # fraction of a second earlier than the planned time of the same send.
            planned_at=sent_at + timedelta(microseconds=349_841),
        )
        await self.store.insert_probe(probe)
        await self.store.transition_probe(token, ProbeState.SENDING, probe.planned_at)
        await self.store.transition_probe(token, ProbeState.SENT, sent_at, sent_at=sent_at)
        self.inbox.candidates.invalidate()
        return probe, render_probe(probe, PERSONA, date=sent_at).as_bytes()

    async def reply(self, raw: bytes, received_at: datetime) -> None:
        self.uid += 1
        await self.inbox.ingest(FetchedMail("INBOX", 7, self.uid, received_at, raw))


async def seed(store: Store, world: World, metrics: Metrics) -> dict[str, str]:
    outcomes = OutcomeService(store, metrics, world, lambda: NOW)
    seeder = Seeder(store, InboxService(store, metrics, world, outcomes, lambda: NOW))
    lund, kiruna, ljusnarsberg = TARGETS[0], TARGETS[1], TARGETS[2]

    _, raw = await seeder.probe("aaaaaaaaaa", lund, at(16, 9))
    answer = human_answer(
        _hostile(read_probe(raw)),
        officer="Eva Lind",
        sender="eva.lind@lund.example.invalid",
        answer=f"Soporna hämtas på tisdagar. {HOSTILE}",
        at=at(16, 10, 30),
    )
    await seeder.reply(answer, at(16, 10, 30))

    _, raw = await seeder.probe("bbbbbbbbbb", lund, at(17, 9))
    oof = out_of_office(
        read_probe(raw), officer="Per Ek", sender="per@lund.example.invalid", at=at(17, 9, 1)
    )
    await seeder.reply(oof, at(17, 9, 1))

    _, raw = await seeder.probe("cccccccccc", kiruna, at(16, 10))
    received = read_probe(raw)
    receipt = ticket_receipt(
        received,
        system="Kiruna kommun",
        sender="noreply@kiruna.example.invalid",
        case_number="2026-12345",
        at=at(16, 10, 1),
    )
    await seeder.reply(receipt, at(16, 10, 1))
    reply = ticket_answer(
        received,
        officer="Sara Holm",
        sender="noreply@kiruna.example.invalid",
        case_number="2026-12345",
        answer="Ja, det går bra.",
        at=at(17, 14),
    )
    await seeder.reply(reply, at(17, 14))

    _, raw = await seeder.probe("dddddddddd", ljusnarsberg, at(16, 11))
    bounce = permanent_bounce(
        read_probe(raw), raw_probe=raw, mta="mx.ljusnarsberg.example.invalid", at=at(16, 11, 1)
    )
    await seeder.reply(bounce, at(16, 11, 1))

    await outcomes.publish_gauges()
    return {
        "answered": "aaaaaaaaaa",
        "oof": "bbbbbbbbbb",
        "ticket": "cccccccccc",
        "bounce": "dddddddddd",
    }


def _hostile(probe: ReceivedProbe) -> ReceivedProbe:
    return ReceivedProbe(
        message_id=probe.message_id,
        subject=f"{HOSTILE} {probe.subject}",
        reply_to=probe.reply_to,
        from_name=probe.from_name,
        to=probe.to,
        body=probe.body,
        date=probe.date,
    )


async def ready() -> Readiness:
    return Readiness(ready=True)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'web.db'}")
    await store.upgrade()
    world = demo_world()
    await store.sync_targets(world.targets, NOW - timedelta(days=10))
    registry = CollectorRegistry()
    metrics = Metrics(registry, version="test")
    tokens = await seed(store, world, metrics)
    pages = StatusPages(Dashboard(store, world, registry, lambda: NOW), lambda: NOW)
    server = HttpServer("127.0.0.1:0", registry, readiness=ready, routes=pages.routes())
    url = await server.start()
    yield Site(url, store, metrics, tokens, registry)
    await server.stop()
    await store.close()


async def get(url: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text(), dict(response.headers)


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.json()


def row_order(page: str) -> list[str]:
    return re.findall(r'<tr data-target="([^"]+)"', page)


async def test_overview_has_one_row_per_configured_target_with_county(site: Site) -> None:
    status, page, headers = await get(f"{site.url}/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert row_order(page) == ["bjurholm", "kiruna", "ljusnarsberg", "lund"]
    assert "Norrbottens län" in page
    assert '<meta name=viewport content="width=device-width,initial-scale=1">' in page


async def test_overview_sorts_on_the_server_so_it_works_without_javascript(site: Site) -> None:
    _, by_share, _ = await get(f"{site.url}/?sort=share&dir=desc")
    _, by_name_desc, _ = await get(f"{site.url}/?sort=name&dir=desc")
    # lund 1/2 within a day, kiruna 0/1, bjurholm and ljusnarsberg without a decided probe.
    assert row_order(by_share)[:2] == ["lund", "kiruna"]
    assert row_order(by_name_desc) == ["lund", "ljusnarsberg", "kiruna", "bjurholm"]


async def test_overview_headers_are_sort_links_and_the_sort_script_is_inline(site: Site) -> None:
    _, page, _ = await get(f"{site.url}/?sort=share&dir=desc")
    assert '<th data-col="3" data-type="num" class="num" aria-sort="descending">' in page
    assert 'href="/?sort=share&amp;dir=asc"' in page
    assert 'href="/?sort=county&amp;dir=asc"' in page
    assert f"<script>{SORT_SCRIPT}</script>" in page
    assert '<td class="num" data-v="0.5"><span class="low">50 %</span>' in page  # n < 5


async def test_csp_allows_only_the_sort_script_by_its_hash(site: Site) -> None:
    _, _, headers = await get(f"{site.url}/")
    digest = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/probes/aaaaaaaaaa", "/targets/lund", "/"])
async def test_hostile_subject_is_shown_as_text_never_as_markup(site: Site, path: str) -> None:
    _, page, _ = await get(f"{site.url}{path}")
    assert "<script>alert" not in page
    assert page.count("<script>") == 1  # the page's own sorting snippet
    if path == "/probes/aaaaaaaaaa":
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_probe_page_timeline_keeps_send_states_in_order_then_replies_by_time(
    site: Site,
) -> None:
    _, page, _ = await get(f"{site.url}/probes/cccccccccc")
    timeline = page.split('id="timeline">')[1].split("</ol>")[0]
    events = re.findall(r'<li class="([a-z_]+)">', timeline)
    assert events == ["planned", "sending", "sent", "ticket_receipt", "human"]
    assert "case 2026-12345" in timeline
    assert "2026-03-17 14:00" in timeline


async def test_probe_page_shows_headers_and_new_text_of_the_human_answer(site: Site) -> None:
    _, page, _ = await get(f"{site.url}/probes/aaaaaaaaaa")
    assert "<h3>New text</h3><pre>Hej Eva!\n\nSoporna hämtas på tisdagar." in page
    assert "<td>in-reply-to</td><td>&lt;probe.aaaaaaaaaa@kontroll.example.se&gt;</td>" in page
    assert "När hämtas soporna?" not in page.split("New text")[1]  # the quote is not new text
    assert "answered after 1.5 working hours" in page


async def test_purged_body_keeps_the_facts_and_says_the_text_is_gone(site: Site) -> None:
    await site.store.purge_bodies(NOW)
    _, page, _ = await get(f"{site.url}/probes/aaaaaaaaaa")
    assert "deleted after the retention period" in page
    assert "Soporna hämtas" not in page
    assert "Human answer" in page and "eva.lind@lund.example.invalid" in page


async def test_failing_address_is_flagged_on_the_overview_and_its_page(site: Site) -> None:
    _, overview, _ = await get(f"{site.url}/")
    row = overview.split('<tr data-target="ljusnarsberg">')[1].split("</tr>")[0]
    assert "pill failing" in row
    _, page, _ = await get(f"{site.url}/targets/ljusnarsberg")
    assert "address failing" in page and "permanent bounce" in page
    assert "not measurable" in page


async def test_target_page_lists_its_probes_newest_first_with_links(site: Site) -> None:
    _, page, _ = await get(f"{site.url}/targets/lund")
    assert re.findall(r'href="/probes/([a-z2-7]+)"', page) == ["bbbbbbbbbb", "aaaaaaaaaa"]
    assert "kommunkod 1281" in page


@pytest.mark.parametrize(
    "path",
    ["/targets/nowhere", "/probes/zzzzzzzzzz", "/api/targets/nowhere", "/api/probes/zzzzzzzzzz"],
)
async def test_unknown_target_or_probe_is_404(site: Site, path: str) -> None:
    status, body, _ = await get(f"{site.url}{path}")
    assert status == 404
    assert "not found" in body.lower()


async def test_api_targets_carries_the_table_figures_and_health(site: Site) -> None:
    data = await get_json(f"{site.url}/api/targets")
    by_id = {t["id"]: t for t in data["targets"]}
    lund = by_id["lund"]["last_30_days"]
    assert lund["probes"] == 2
    assert lund["within_one_working_day"]["successes"] == 1
    assert lund["within_one_working_day"]["total"] == 2
    assert by_id["ljusnarsberg"]["address_failing"] is True
    assert by_id["bjurholm"]["last_30_days"]["probes"] == 0
    assert data["health"]["imap_connected"] is False
    # The metric records when the inbox committed the last message: the seeding clock's now.
    assert data["health"]["last_message_processed"] == NOW.isoformat()


async def test_api_target_and_probe_are_json_twins_of_their_pages(site: Site) -> None:
    target = await get_json(f"{site.url}/api/targets/kiruna")
    assert [p["token"] for p in target["probes"]] == ["cccccccccc"]
    assert target["probes"][0]["outcome"]["ack_ticket_number"] == "2026-12345"
    probe = await get_json(f"{site.url}/api/probes/aaaaaaaaaa")
    assert probe["outcome"]["state"] == "answered"
    assert probe["outcome"]["working_seconds"] == 1.5 * 3600
    (message,) = probe["messages"]
    assert message["kind"] == "human"
    assert HOSTILE in message["subject"]  # JSON carries the raw text; escaping is the page's job


async def test_page_figures_equal_the_metrics_exposition(site: Site) -> None:
    _, exposition, _ = await get(f"{site.url}/metrics")
    ratios = {
        sample.labels["target"]: sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "svarstid_target_within_one_working_day_ratio"
        and sample.labels["window"] == "30d"
    }
    data = await get_json(f"{site.url}/api/targets")
    shown = {
        t["id"]: t["last_30_days"]["within_one_working_day"]["ratio"]
        for t in data["targets"]
        if t["last_30_days"]["within_one_working_day"]["ratio"] is not None
    }
    assert shown == ratios == {"lund": 0.5, "kiruna": 0.0}


async def test_health_shows_imap_state_from_the_metrics(site: Site) -> None:
    _, down, _ = await get(f"{site.url}/")
    site.metrics.set_imap_connected(True)
    _, up, _ = await get(f"{site.url}/")
    assert 'IMAP: <b class="bad">down</b>' in down
    assert 'IMAP: <b class="ok">connected</b>' in up


async def test_weekly_chart_draws_a_bar_for_the_week_with_decided_probes(site: Site) -> None:
    _, page, _ = await get(f"{site.url}/")
    svg = page.split("<svg")[1].split("</svg>")[0]
    assert svg.count("<rect") == 1
    assert "<title>week of 2026-03-16: 1/3</title>" in svg
    assert ">v12</text>" in svg

"""The demo world: a short history replayed through the real pipeline, judged by its outcomes.

Nothing here is hard-coded: each behaviour's expected outcome kinds are read back from what
the daemon stored after real SMTP sends, IMAP APPENDs and ingestion by the real watcher.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from daemon_support import eventually

from monitor.demo.behaviours import LivePace
from monitor.demo.history import LiveResponders, LiveSender
from monitor.demo.world import MAILBOX_USER, SERVICE_CENTRE, DemoRig, municipalities, prepare
from monitor.domain.calendar import swedish_default_calendar
from monitor.domain.model import (
    MatchMethod,
    MessageKind,
    OutcomeState,
    Probe,
    ProbeOutcome,
    StoredMessage,
)
from monitor.domain.worktime import is_open

pytestmark = pytest.mark.asyncio(loop_scope="module")

STOCKHOLM = ZoneInfo("Europe/Stockholm")
END = datetime(2026, 3, 20, 18, 0, tzinfo=STOCKHOLM)  # 14 days back: no Swedish holiday
DAYS = 14
KEPT = {
    "lund",
    "gavle",
    "are",
    "kiruna",
    "sundsvall",
    "bjurholm",
    "ljusnarsberg",
    "lekeberg",
    "tanum",
    "karlskrona",
}
NINE_HOURS = 9 * 3600


@dataclass(frozen=True)
class Seen:
    probe: Probe
    outcome: ProbeOutcome | None
    messages: tuple[StoredMessage, ...]

    def kinds(self) -> set[MessageKind]:
        return {m.kind for m in self.messages}

    @property
    def answered(self) -> bool:
        return self.outcome is not None and self.outcome.state is OutcomeState.ANSWERED


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def replayed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DemoRig]:
    world = tuple(m for m in municipalities() if m.id in KEPT)
    rig = await prepare(
        history_days=DAYS,
        world=world,
        end=END,
        token_seed=7,
        folder=tmp_path_factory.mktemp("demo"),
    )
    yield rig
    await rig.app.daemon.watcher.stop()
    await rig.app.store.close()
    await rig.stop_servers()


async def seen(rig: DemoRig, target_id: str) -> list[Seen]:
    store = rig.app.store
    out = []
    for record in await store.probe_records(datetime(2000, 1, 1, tzinfo=UTC)):
        if record.target_id != target_id:
            continue
        probe = await store.probe(record.token)
        assert probe is not None
        messages = tuple(await store.messages_for_probe(record.token))
        out.append(Seen(probe, await store.outcome(record.token), messages))
    return out


def answered(history: list[Seen]) -> list[ProbeOutcome]:
    return [s.outcome for s in history if s.outcome is not None and s.answered]


async def test_every_appended_reply_is_fetched_over_imap_and_stored(replayed: DemoRig) -> None:
    summary = replayed.summary
    assert summary is not None and summary.days == DAYS
    assert summary.probes_sent >= 2 * len(KEPT) - 2
    assert summary.messages_ingested == summary.replies_delivered
    stored = await replayed.app.store.unmatched_messages(limit=1000)
    assert stored == []  # every simulated reply was tied to its probe


async def test_fast_office_answers_fall_within_one_working_day(replayed: DemoRig) -> None:
    outcomes = answered(await seen(replayed, "lund"))
    assert len(outcomes) >= 3
    assert all(o.within_one_working_day for o in outcomes)


async def test_slow_answers_come_days_later(replayed: DemoRig) -> None:
    outcomes = answered(await seen(replayed, "gavle"))
    assert outcomes
    assert all((o.working_seconds or 0) > 2 * NINE_HOURS for o in outcomes)
    assert not any(o.within_one_working_day for o in outcomes)


async def test_out_of_office_first_then_a_human_after_the_holiday(replayed: DemoRig) -> None:
    history = await seen(replayed, "are")
    assert all(MessageKind.AUTO_REPLY in s.kinds() for s in history)
    outcomes = answered(history)
    assert outcomes
    for outcome in outcomes:
        assert outcome.first_ack_at is not None and outcome.first_human_at is not None
        assert outcome.first_ack_at < outcome.first_human_at
        assert (outcome.working_seconds or 0) >= 2 * NINE_HOURS


async def test_ticket_receipt_then_answer_from_the_case_system_without_threading(
    replayed: DemoRig,
) -> None:
    history = [s for s in await seen(replayed, "kiruna") if s.answered]
    assert history
    for item in history:
        assert item.outcome is not None and item.outcome.ack_ticket_number is not None
        human = next(m for m in item.messages if m.kind is MessageKind.HUMAN)
        assert human.subject.startswith(f"Svar i ärende {item.outcome.ack_ticket_number}")
        assert human.raw is not None and b"In-Reply-To" not in human.raw
        assert human.match_method is MatchMethod.ADDRESS


async def test_auto_acknowledgement_alone_is_never_an_answer(replayed: DemoRig) -> None:
    history = await seen(replayed, "sundsvall")
    assert len(history) >= 2
    assert not any(s.answered for s in history)
    assert all(s.kinds() == {MessageKind.AUTO_REPLY} for s in history)
    assert all(s.outcome is not None and s.outcome.first_ack_at for s in history)


async def test_silent_municipality_gets_nothing_back_and_its_probes_go_final(
    replayed: DemoRig,
) -> None:
    history = await seen(replayed, "bjurholm")
    assert len(history) >= 2
    assert all(s.messages == () for s in history)
    states = [s.outcome.state for s in history if s.outcome is not None]
    assert OutcomeState.UNANSWERED_FINAL in states
    assert OutcomeState.ANSWERED not in states


async def test_wrong_address_bounces_once_and_is_marked_failing(replayed: DemoRig) -> None:
    (only,) = await seen(replayed, "ljusnarsberg")
    assert only.outcome is not None
    assert only.outcome.state is OutcomeState.NOT_MEASURABLE
    assert only.outcome.bounced and only.outcome.bounce_permanent
    assert "ljusnarsberg" in await replayed.app.store.failing_targets()


async def test_answers_from_the_shared_service_centre_are_matched(replayed: DemoRig) -> None:
    history = [s for s in await seen(replayed, "lekeberg") if s.answered]
    assert history
    for item in history:
        human = next(m for m in item.messages if m.kind is MessageKind.HUMAN)
        assert human.from_address == SERVICE_CENTRE


async def test_answer_without_threading_headers_is_matched_by_address(replayed: DemoRig) -> None:
    history = [s for s in await seen(replayed, "tanum") if s.answered]
    assert history
    for item in history:
        (human,) = [m for m in item.messages if m.kind is MessageKind.HUMAN]
        assert human.raw is not None
        assert b"In-Reply-To" not in human.raw and b"References" not in human.raw
        assert human.match_method is MatchMethod.ADDRESS


async def test_read_receipt_before_the_answer(replayed: DemoRig) -> None:
    history = [s for s in await seen(replayed, "karlskrona") if s.answered]
    assert history
    for item in history:
        receipt = next(m for m in item.messages if m.kind is MessageKind.READ_RECEIPT)
        human = next(m for m in item.messages if m.kind is MessageKind.HUMAN)
        assert receipt.received_at < human.received_at


async def test_people_write_only_in_office_hours(replayed: DemoRig) -> None:
    calendar = swedish_default_calendar()
    humans = []
    for target_id in KEPT:
        for item in await seen(replayed, target_id):
            humans += [m for m in item.messages if m.kind is MessageKind.HUMAN]
    assert len(humans) >= 10
    # add_working_seconds may land exactly on a closing time (17:00), which is_open excludes.
    assert all(
        is_open(calendar, m.received_at) or m.received_at.astimezone(STOCKHOLM).time() == time(17)
        for m in humans
    )


async def test_probes_go_out_only_in_the_send_window_on_working_days(replayed: DemoRig) -> None:
    calendar = swedish_default_calendar()
    opening, closing = replayed.app.world.politeness.send_window
    for target_id in KEPT:
        for item in await seen(replayed, target_id):
            sent = item.probe.sent_at
            assert sent is not None
            local = sent.astimezone(STOCKHOLM)
            assert opening <= local.time() < closing
            assert is_open(calendar, sent)


async def test_live_probe_is_answered_while_the_daemon_runs(tmp_path: Path) -> None:
    world = tuple(m for m in municipalities() if m.id == "lund")
    rig = await prepare(history_days=0, world=world, folder=tmp_path)
    rig.clock.go_live()
    # IMAP INTERNALDATE has whole seconds: an answer within the same second as the send would
    # look older than the probe, so even the test's fast pace waits over a second.
    pace = LivePace(0.05, shortest_seconds=1.5)
    responders = LiveResponders(rig.imap, MAILBOX_USER, rig.reactor, pace)
    rig.smtp.on_message = responders.on_probe
    await rig.app.daemon.start()
    try:
        assert await LiveSender(rig.app, every=60).send_one() == "lund"
        (record,) = await rig.app.store.probe_records(datetime(2000, 1, 1, tzinfo=UTC))

        async def answered_now() -> bool:
            outcome = await rig.app.store.outcome(record.token)
            return outcome is not None and outcome.state is OutcomeState.ANSWERED

        await eventually(answered_now, timeout=15.0)
    finally:
        await rig.app.daemon.shutdown()
        await responders.stop()
        await rig.stop_servers()

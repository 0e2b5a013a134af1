"""Store.report_facts and Store.probes_without_outcome on a real SQLite database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.adapters.sql import Store
from monitor.domain.model import OutcomeState, Probe, ProbeOutcome, ProbeState, Target
from monitor.domain.reporting import OutcomeFact

STOCKHOLM = ZoneInfo("Europe/Stockholm")


def at(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=STOCKHOLM)


def probe(token: str, planned: datetime) -> Probe:
    return Probe(
        token=token,
        target_id="lund",
        target_address="info@lund.example.invalid",
        question_id="q",
        persona_id="p",
        reply_address=f"svar+{token}@kontroll.example.se",
        message_id=f"<{token}@kontroll.example.se>",
        subject="Fråga",
        body="Hej",
        state=ProbeState.PLANNED,
        planned_at=planned,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    await store.upgrade()
    await store.sync_targets([Target("lund", "Lund", "info@lund.example.invalid")], at(1, 1, 0))
    yield store
    await store.close()


async def sent(store: Store, token: str, when: datetime) -> None:
    await store.insert_probe(probe(token, when))
    await store.transition_probe(token, ProbeState.SENDING, when)
    await store.transition_probe(token, ProbeState.SENT, when, sent_at=when)


async def all_facts(store: Store, since: datetime, until: datetime) -> list[OutcomeFact]:
    ends = [at(9, 1, 0), at(10, 1, 0)]
    return [f async for batch in store.report_facts(since, until, ends, batch=2) for f in batch]


async def test_report_facts_carry_month_and_only_the_columns_each_state_needs(
    store: Store,
) -> None:
    await sent(store, "answered", at(8, 31, 23))
    await store.save_outcome(
        ProbeOutcome(
            token="answered",
            state=OutcomeState.ANSWERED,
            clock_start=at(9, 1, 8),
            first_ack_at=at(9, 1, 8),
            first_human_at=at(9, 1, 10),
            working_seconds=7200.0,
            within_one_working_day=True,
            within_two_working_days=True,
        ),
        at(9, 2, 0),
    )
    await sent(store, "waiting", at(9, 15, 10))
    await store.save_outcome(
        ProbeOutcome(
            token="waiting", state=OutcomeState.UNANSWERED_SO_FAR, clock_start=at(9, 15, 10)
        ),
        at(9, 16, 0),
    )
    await sent(store, "outside", at(10, 1, 0))
    await store.save_outcome(
        ProbeOutcome(
            token="outside", state=OutcomeState.UNANSWERED_SO_FAR, clock_start=at(10, 1, 8)
        ),
        at(10, 2, 0),
    )
    facts = sorted(await all_facts(store, at(8, 1, 0), at(10, 1, 0)))
    assert facts == [
        OutcomeFact(
            "answered", "lund", 0, OutcomeState.ANSWERED, None, None,
            7200.0, True, True, True, False,
        ),
        OutcomeFact(
            "waiting", "lund", 1, OutcomeState.UNANSWERED_SO_FAR,
            at(9, 15, 10).astimezone(UTC), at(9, 15, 10).astimezone(UTC),
            None, None, None, False, False,
        ),
    ]  # fmt: skip


async def test_probes_without_outcome_include_failed_sends_by_planned_time(store: Store) -> None:
    await sent(store, "pending", at(9, 2, 10))
    await store.insert_probe(probe("failed", at(9, 3, 10)))
    await store.transition_probe("failed", ProbeState.SENDING, at(9, 3, 10))
    await store.transition_probe("failed", ProbeState.FAILED, at(9, 3, 10), permanent=True)
    await store.insert_probe(probe("planned", at(9, 4, 10)))
    found = await store.probes_without_outcome(at(9, 1, 0), at(10, 1, 0))
    assert [(p.token, p.state) for p in found] == [
        ("failed", ProbeState.FAILED),
        ("pending", ProbeState.SENT),
    ]

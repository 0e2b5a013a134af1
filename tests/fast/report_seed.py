"""A seeded database for the report tests: three municipalities, hand-checked figures.

The seed (all in Europe/Stockholm, no holidays in August/September 2025; office 08-17):

Lund (1281, Skåne län), 2025-09:
  l1 Mon 09-01 10:00, answer 13:30 the same day            3.5 h  within one
  l2 Tue 09-02 16:00, answer Wed 15:00                     1 + 7 = 8 h  within one
  l3 Wed 09-03 09:00, answer Fri 09:00                     8 + 9 + 1 = 18 h  within two only
  l4 Thu 09-04 10:00, auto-reply 10:01, never answered     final, censored
Lund 2025-08: l0 Mon 08-04 10:00, answer 11:00             1 h (previous period: 1/1)
Malmö (1280, Skåne län), 2025-09:
  m1 Mon 09-08 08:30, answer 09:30                          1 h  within one
  m2 Tue 09-09 10:00, permanent bounce                      not measurable, 1 bounce
Stockholm (0180, Stockholms län), 2025-09:
  s1 Wed 09-10 10:00, answer Fri 09-12 10:00               7 + 9 + 2 = 18 h
  s2 Thu 09-11 10:00, send failed (no outcome stored)      not measurable
  s3 Mon 09-15 10:00, answer 11:00, no outcome stored      computed on the spot: 1 h
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from monitor.adapters.sql import Store
from monitor.domain.calendar import swedish_default_calendar
from monitor.domain.model import (
    MatchMethod,
    MessageKind,
    ObservedMessage,
    Probe,
    ProbeState,
    StoredMessage,
    Target,
)
from monitor.domain.outcome import compute_outcome

STOCKHOLM = ZoneInfo("Europe/Stockholm")
COMPUTED_AT = datetime(2025, 11, 3, 12, 0, tzinfo=STOCKHOLM)
TARGETS: list[dict[str, object]] = [
    {"id": "lund", "name": "Lund", "address": "info@lund.example.invalid", "kommunkod": "1281"},
    {"id": "malmo", "name": "Malmö", "address": "info@malmo.example.invalid", "kommunkod": "1280"},
    {
        "id": "stockholm",
        "name": "Stockholm",
        "address": "info@stockholm.example.invalid",
        "kommunkod": "0180",
        "tags": ["storstad"],
    },
]


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=STOCKHOLM)


@dataclass(frozen=True)
class Seed:
    token: str
    target: str
    sent: datetime
    replies: tuple[tuple[datetime, MessageKind], ...] = ()
    failed: bool = False
    store_outcome: bool = True


SEEDS = (
    Seed("l0", "lund", at(8, 4, 10), ((at(8, 4, 11), MessageKind.HUMAN),)),
    Seed("l1", "lund", at(9, 1, 10), ((at(9, 1, 13, 30), MessageKind.HUMAN),)),
    Seed("l2", "lund", at(9, 2, 16), ((at(9, 3, 15), MessageKind.HUMAN),)),
    Seed("l3", "lund", at(9, 3, 9), ((at(9, 5, 9), MessageKind.HUMAN),)),
    Seed("l4", "lund", at(9, 4, 10), ((at(9, 4, 10, 1), MessageKind.AUTO_REPLY),)),
    Seed("m1", "malmo", at(9, 8, 8, 30), ((at(9, 8, 9, 30), MessageKind.HUMAN),)),
    Seed("m2", "malmo", at(9, 9, 10), ((at(9, 9, 10, 2), MessageKind.BOUNCE),)),
    Seed("s1", "stockholm", at(9, 10, 10), ((at(9, 12, 10), MessageKind.HUMAN),)),
    Seed("s2", "stockholm", at(9, 11, 10), failed=True, store_outcome=False),
    Seed(
        "s3",
        "stockholm",
        at(9, 15, 10),
        ((at(9, 15, 11), MessageKind.HUMAN),),
        store_outcome=False,
    ),
)


def probe_of(seed: Seed) -> Probe:
    target = next(t for t in TARGETS if t["id"] == seed.target)
    return Probe(
        token=seed.token,
        target_id=seed.target,
        target_address=str(target["address"]),
        question_id="q1",
        persona_id="p1",
        reply_address=f"svar+{seed.token}@kontroll.example.se",
        message_id=f"<{seed.token}@kontroll.example.se>",
        subject="Fråga om bygglov",
        body="Hej!",
        state=ProbeState.PLANNED,
        planned_at=seed.sent,
    )


def message_of(seed: Seed, index: int, received: datetime, kind: MessageKind) -> StoredMessage:
    return StoredMessage(
        message_key=f"{seed.token}-{index}",
        message_id=f"<{seed.token}-{index}@kommun.example.invalid>",
        folder="INBOX",
        uidvalidity=1,
        uid=100 + index,
        received_at=received,
        from_address="info@kommun.example.invalid",
        subject="Sv: Fråga om bygglov",
        size=100,
        kind=kind,
        permanent=True if kind is MessageKind.BOUNCE else None,
        ticket_number=None,
        has_new_text=kind is MessageKind.HUMAN,
        probe_token=seed.token,
        match_method=MatchMethod.ADDRESS,
    )


async def seed_database(url: str) -> None:
    store = Store.from_url(url)
    await store.upgrade()
    targets = [
        Target(id=str(t["id"]), name=str(t["name"]), address=str(t["address"])) for t in TARGETS
    ]
    await store.sync_targets(targets, COMPUTED_AT)
    for number, seed in enumerate(SEEDS):
        await store_seed(store, seed, number)
    await store.close()


async def store_seed(store: Store, seed: Seed, number: int) -> None:
    await store.insert_probe(probe_of(seed))
    await store.transition_probe(seed.token, ProbeState.SENDING, seed.sent)
    if seed.failed:
        await store.transition_probe(seed.token, ProbeState.FAILED, seed.sent, permanent=False)
        return
    await store.transition_probe(seed.token, ProbeState.SENT, seed.sent, sent_at=seed.sent)
    for index, (received, kind) in enumerate(seed.replies):
        await store.record_message(message_of(seed, number * 10 + index, received, kind), None)
    if seed.store_outcome:
        outcome = compute_outcome(
            token=seed.token,
            sent_at=seed.sent,
            send_failed=False,
            messages=[
                ObservedMessage(
                    message_key=f"{seed.token}-{number * 10 + i}",
                    kind=kind,
                    received_at=received,
                    has_new_text=kind is MessageKind.HUMAN,
                    permanent=True if kind is MessageKind.BOUNCE else None,
                )
                for i, (received, kind) in enumerate(seed.replies)
            ],
            cal=swedish_default_calendar(),
            now=COMPUTED_AT,
        )
        await store.save_outcome(outcome, COMPUTED_AT.astimezone(UTC))

"""Store behaviour on a temporary SQLite file.

The same test bodies run on a real PostgreSQL in tests/integration/test_sql_postgres.py, which
loads this module and overrides the ``database_url`` fixture. Tests whose name starts with
``test_sqlite_`` are about SQLite itself and are not run there.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import TextClause, bindparam, inspect, text
from sqlalchemy.engine import Connection

from monitor.adapters.sql import (
    HEAD_REVISION,
    IllegalTransition,
    Store,
    TargetStatus,
    UnknownMessage,
    UnknownProbe,
    UnknownTarget,
    alembic_config,
)
from monitor.adapters.sql_schema import UtcDateTime, metadata
from monitor.domain.model import (
    Checkpoint,
    MatchMethod,
    MessageKind,
    OutcomeState,
    Probe,
    ProbeCandidate,
    ProbeOutcome,
    ProbeState,
    StoredMessage,
    Target,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
STOCKHOLM_WINTER = timezone(timedelta(hours=1))
TABLES = {
    "targets",
    "probes",
    "probe_events",
    "messages",
    "outcomes",
    "mailbox_checkpoints",
    "monitor_runs",
    "alembic_version",
}


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database migrated once per session; tests get copies (migrating costs ~0.1 s)."""
    path = tmp_path_factory.mktemp("sql-template") / "migrated.db"

    async def migrate() -> None:
        store = Store.from_url(f"sqlite+aiosqlite:///{path}")
        await store.upgrade()
        await store.close()

    asyncio.run(migrate())
    return path


@pytest.fixture
def empty_database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def database_url(tmp_path: Path, migrated_sqlite_file: Path) -> str:
    """A migrated database of its own for each test."""
    path = tmp_path / "svarstid.db"
    shutil.copyfile(migrated_sqlite_file, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = Store.from_url(database_url)
    try:
        yield store
    finally:
        await store.close()


def make_target(target_id: str = "t-0180", **changes: Any) -> Target:
    target = Target(
        id=target_id,
        name=f"Kommun {target_id}",
        address=f"kontakt@{target_id}.example.invalid",
        kommunkod="0180",
        county="Stockholms län",
        tags=("storstad", "pilot"),
        calendar=None,
        paused=False,
    )
    return replace(target, **changes)


def make_probe(token: str, target_id: str = "t-0180", **changes: Any) -> Probe:
    probe = Probe(
        token=token,
        target_id=target_id,
        target_address=f"kontakt@{target_id}.example.invalid",
        question_id="avfall-01",
        persona_id="anna",
        reply_address=f"svar+{token}@matning.example.se",
        message_id=f"<probe.{token}@matning.example.se>",
        subject="Fråga om sophämtning",
        body="Hej! När hämtas soporna på Storgatan? Vänliga hälsningar, Anna",
        state=ProbeState.PLANNED,
        planned_at=T0,
    )
    return replace(probe, **changes)


def make_message(key: str, **changes: Any) -> StoredMessage:
    message = StoredMessage(
        message_key=key.ljust(64, "0"),
        message_id=f"<{key}@kommun.example.invalid>",
        folder="INBOX",
        uidvalidity=3_000_000_000,  # above 2**31: UIDVALIDITY is unsigned 32-bit
        uid=101,
        received_at=T0 + timedelta(hours=2),
        from_address="handlaggare@kommun.example.invalid",
        subject="SV: Fråga om sophämtning",
        size=2048,
        kind=MessageKind.HUMAN,
        permanent=None,
        ticket_number=None,
        has_new_text=True,
        probe_token=None,
        match_method=MatchMethod.NONE,
        defects=(),
        raw=b"Subject: SV: Fr\xc3\xa5ga\r\n\r\nHej!\r\n",
    )
    return replace(message, **changes)


def make_outcome(token: str, state: OutcomeState = OutcomeState.ANSWERED, **changes: Any) -> Any:
    outcome = ProbeOutcome(
        token=token,
        state=state,
        clock_start=T0,
        first_ack_at=T0 + timedelta(minutes=1),
        ack_ticket_number="2026-004512",
        ack_wall_seconds=60.0,
        ack_working_seconds=60.0,
        first_human_at=T0 + timedelta(hours=3),
        wall_seconds=10_800.0,
        working_seconds=10_800.0,
        within_one_working_day=True,
        within_two_working_days=True,
        bounced=False,
        bounce_permanent=None,
        message_keys=("a" * 64, "b" * 64),
    )
    return replace(outcome, **changes)


def sent_at_for(state: ProbeState) -> datetime | None:
    return T0 if state is ProbeState.SENT else None


async def sent_probe(
    store: Store, token: str, sent_at: datetime, target_id: str = "t-0180"
) -> None:
    await store.insert_probe(make_probe(token, target_id, planned_at=sent_at))
    await store.transition_probe(token, ProbeState.SENDING, sent_at)
    await store.transition_probe(token, ProbeState.SENT, sent_at, sent_at=sent_at)


async def seeded(store: Store, *target_ids: str) -> Store:
    await store.sync_targets([make_target(t) for t in (target_ids or ("t-0180",))], T0)
    return store


# -- migrations and engine ---------------------------------------------------------------


def _schema_diffs(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_on_empty_database_creates_every_table(empty_database_url: str) -> None:
    store = Store.from_url(empty_database_url)
    try:
        await store.upgrade()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_table_names) == TABLES
    finally:
        await store.close()


async def test_upgrade_twice_keeps_one_head_revision_and_the_data(
    empty_database_url: str,
) -> None:
    store = Store.from_url(empty_database_url)
    try:
        await store.upgrade()
        await store.sync_targets([make_target()], T0)
        await store.upgrade()
        async with store.engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [tuple(v) for v in versions] == [(HEAD_REVISION,)]
        assert await store.targets() == [make_target()]
    finally:
        await store.close()


async def test_migrated_schema_equals_table_metadata(empty_database_url: str) -> None:
    store = Store.from_url(empty_database_url)
    try:
        await store.upgrade()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_schema_diffs) == []
    finally:
        await store.close()


async def test_migration_0002_copies_existing_outcome_states_onto_probes(
    empty_database_url: str,
) -> None:
    store = Store.from_url(empty_database_url)
    try:
        async with store.engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0001")
            await conn.execute(at_t0(INSERT_0001_TARGET))
            for token, state in (("answered01", "answered"), ("nooutcome1", None)):
                probe = {"token": token, "message_id": f"<{token}@x>"}
                await conn.execute(at_t0(INSERT_0001_PROBE), probe)
                if state is not None:
                    outcome = {"token": token, "state": state}
                    await conn.execute(at_t0(INSERT_0001_OUTCOME), outcome)
        await store.upgrade()
        assert await store.open_probe_tokens() == ["nooutcome1"]
        records = {r.token: r.outstanding for r in await store.probe_records(T0)}
        assert records == {"answered01": False, "nooutcome1": True}
    finally:
        await store.close()


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def at_t0(statement: str) -> TextClause:
    """Raw SQL of the 0001 schema, with :t0 bound as the store binds instants."""
    return text(statement).bindparams(bindparam("t0", T0, type_=UtcDateTime()))


INSERT_0001_TARGET = (
    "INSERT INTO targets (id, name, address, tags, paused, active, address_failing, updated_at)"
    " VALUES ('t-0180', 'K', 'k@x.invalid', '[]', false, true, false, :t0)"
)
INSERT_0001_PROBE = (
    "INSERT INTO probes (token, target_id, target_address, question_id, persona_id,"
    " reply_address, message_id, subject, body, state, planned_at, sent_at, updated_at)"
    " VALUES (:token, 't-0180', 'k@x.invalid', 'q', 'p', 'r@x', :message_id, 's', 'b',"
    " 'sent', :t0, :t0, :t0)"
)
INSERT_0001_OUTCOME = (
    "INSERT INTO outcomes (token, state, bounced, message_keys, computed_at)"
    " VALUES (:token, :state, false, '[]', :t0)"
)


async def test_schema_check_sees_a_column_missing_from_the_migrations(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE targets ADD COLUMN stray INTEGER"))
    async with store.engine.connect() as conn:
        diffs = await conn.run_sync(_schema_diffs)
    assert [(d[0], d[2], d[3].name) for d in diffs] == [("remove_column", "targets", "stray")]


async def test_ping_succeeds_on_a_reachable_database(store: Store) -> None:
    await store.ping()


async def test_sqlite_ping_raises_when_the_file_is_not_a_database(tmp_path: Path) -> None:
    # Not a missing directory: aiosqlite 0.22 leaks a worker thread on a failed open.
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"plain text, not SQLite " * 100)
    store = Store.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        with pytest.raises(Exception, match="file is not a database"):
            await store.ping()
    finally:
        await store.close()


async def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(store: Store) -> None:
    async with store.engine.connect() as conn:
        pragmas = [
            (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        ]
    assert pragmas == ["wal", 1, 10_000]


async def test_a_probe_for_an_unknown_target_is_refused_by_the_foreign_key(store: Store) -> None:
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await store.insert_probe(make_probe("aaaaaaaaaa", target_id="nowhere"))


async def test_database_errors_do_not_carry_message_text(store: Store) -> None:
    secret = "Personnummer 19121212-1212 i brödtexten"
    with pytest.raises(Exception) as raised:
        await store.insert_probe(make_probe("aaaaaaaaaa", target_id="nowhere", body=secret))
    assert "19121212" not in str(raised.value)
    assert "hidden due to hide_parameters" in str(raised.value)


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        Store.from_url("mysql+aiomysql://user@localhost/db")


# -- time zones ------------------------------------------------------------------------------


async def test_times_come_back_as_the_same_instant_in_aware_utc(store: Store) -> None:
    await seeded(store)
    local = datetime(2026, 3, 2, 10, 15, 30, 123456, tzinfo=STOCKHOLM_WINTER)
    await store.insert_probe(make_probe("aaaaaaaaaa", planned_at=local))
    probe = await store.probe("aaaaaaaaaa")
    assert probe is not None
    assert probe.planned_at == local
    assert probe.planned_at.tzinfo == UTC
    assert probe.planned_at.hour == 9


async def test_a_naive_datetime_is_refused(store: Store) -> None:
    await seeded(store)
    with pytest.raises(Exception, match="naive datetime"):
        await store.insert_probe(make_probe("aaaaaaaaaa", planned_at=datetime(2026, 3, 2, 9)))


# -- targets ---------------------------------------------------------------------------------


async def test_synced_targets_round_trip(store: Store) -> None:
    wanted = [make_target("t-1"), make_target("t-2", tags=(), kommunkod=None, paused=True)]
    await store.sync_targets(wanted, T0)
    assert await store.targets() == wanted


async def test_resync_updates_and_hides_targets_no_longer_configured(store: Store) -> None:
    await store.sync_targets([make_target("t-1"), make_target("t-2")], T0)
    renamed = make_target("t-1", name="Nytt namn", calendar="norrland")
    await store.sync_targets([renamed], T0 + timedelta(days=1))
    assert await store.targets() == [renamed]
    await store.sync_targets([renamed, make_target("t-2")], T0 + timedelta(days=2))
    assert [t.id for t in await store.targets()] == ["t-1", "t-2"]


async def test_removed_target_keeps_its_probe_history(store: Store) -> None:
    await seeded(store, "t-1")
    await sent_probe(store, "aaaaaaaaaa", T0, "t-1")
    await store.sync_targets([], T0 + timedelta(days=1))
    assert await store.targets() == []
    assert await store.probe("aaaaaaaaaa") is not None


async def test_address_failing_keeps_its_first_date_and_clears_with_none(store: Store) -> None:
    await seeded(store, "t-1", "t-2")
    first = datetime(2026, 3, 2, 10, 0, tzinfo=STOCKHOLM_WINTER)
    await store.set_address_failing("t-1", "5.1.1 user unknown", first)
    await store.set_address_failing("t-1", "5.1.1 still unknown", first + timedelta(days=1))
    assert await store.failing_targets() == {"t-1": "5.1.1 still unknown"}
    rows = {row.target_id: row for row in await store.status_rows()}
    assert (rows["t-1"].address_failing, rows["t-1"].address_failing_since) == (True, T0)
    assert (rows["t-2"].address_failing, rows["t-2"].address_failing_since) == (False, None)
    await store.set_address_failing("t-1", None, T0 + timedelta(days=2))
    assert await store.failing_targets() == {}


async def test_address_failing_survives_resync_unless_the_address_changes(store: Store) -> None:
    await seeded(store, "t-1", "t-2")
    await store.set_address_failing("t-1", "5.1.1", T0)
    await store.set_address_failing("t-2", "5.1.1", T0)
    moved = make_target("t-2", address="ny@t-2.example.invalid")
    await store.sync_targets([make_target("t-1"), moved], T0 + timedelta(days=1))
    assert await store.failing_targets() == {"t-1": "5.1.1"}


async def test_marking_an_unknown_target_failing_raises(store: Store) -> None:
    with pytest.raises(UnknownTarget):
        await store.set_address_failing("nowhere", "5.1.1", T0)


# -- probes and the send state machine -------------------------------------------------------


async def test_inserted_probe_round_trips_with_a_planned_event(store: Store) -> None:
    await seeded(store)
    probe = make_probe("aaaaaaaaaa")
    await store.insert_probe(probe)
    assert await store.probe("aaaaaaaaaa") == probe
    assert await store.probe_events("aaaaaaaaaa") == [(ProbeState.PLANNED, T0, None)]


async def test_unknown_probe_reads_as_none(store: Store) -> None:
    assert await store.probe("zzzzzzzzzz") is None
    assert await store.probe_events("zzzzzzzzzz") == []


async def test_inserting_a_probe_not_in_planned_state_is_illegal(store: Store) -> None:
    await seeded(store)
    with pytest.raises(IllegalTransition):
        await store.insert_probe(make_probe("aaaaaaaaaa", state=ProbeState.SENT, sent_at=T0))


async def test_inserting_a_planned_probe_with_an_accept_time_is_refused(store: Store) -> None:
    await seeded(store)
    with pytest.raises(ValueError, match="no sent_at"):
        await store.insert_probe(make_probe("aaaaaaaaaa", sent_at=T0))


async def test_sent_probe_records_its_accept_time_and_every_event(store: Store) -> None:
    await seeded(store)
    await store.insert_probe(make_probe("aaaaaaaaaa"))
    sending_at, accepted_at = T0 + timedelta(seconds=5), T0 + timedelta(seconds=6)
    await store.transition_probe("aaaaaaaaaa", ProbeState.SENDING, sending_at)
    await store.transition_probe(
        "aaaaaaaaaa", ProbeState.SENT, accepted_at, sent_at=accepted_at, detail="250 2.0.0 Ok"
    )
    probe = await store.probe("aaaaaaaaaa")
    assert probe is not None
    assert (probe.state, probe.sent_at, probe.failure_detail) == (
        ProbeState.SENT,
        accepted_at,
        None,
    )
    assert await store.probe_events("aaaaaaaaaa") == [
        (ProbeState.PLANNED, T0, None),
        (ProbeState.SENDING, sending_at, None),
        (ProbeState.SENT, accepted_at, "250 2.0.0 Ok"),
    ]


@pytest.mark.parametrize(
    ("path", "then"),
    [
        ((), ProbeState.SENT),
        ((), ProbeState.UNCERTAIN),
        ((), ProbeState.PLANNED),
        ((ProbeState.SENDING,), ProbeState.SENDING),
        ((ProbeState.SENDING,), ProbeState.PLANNED),
        ((ProbeState.SENDING, ProbeState.SENT), ProbeState.SENDING),
        ((ProbeState.SENDING, ProbeState.SENT), ProbeState.FAILED),
        ((ProbeState.FAILED,), ProbeState.SENDING),
        ((ProbeState.SENDING, ProbeState.UNCERTAIN), ProbeState.SENDING),
        ((ProbeState.SENDING, ProbeState.UNCERTAIN), ProbeState.PLANNED),
        ((ProbeState.SENDING, ProbeState.UNCERTAIN, ProbeState.SENT), ProbeState.UNCERTAIN),
    ],
)
async def test_transition_outside_the_state_machine_is_refused(
    store: Store, path: tuple[ProbeState, ...], then: ProbeState
) -> None:
    await seeded(store)
    await store.insert_probe(make_probe("aaaaaaaaaa"))
    for state in path:
        await store.transition_probe("aaaaaaaaaa", state, T0, sent_at=sent_at_for(state))
    with pytest.raises(IllegalTransition):
        await store.transition_probe("aaaaaaaaaa", then, T0, sent_at=sent_at_for(then))
    probe = await store.probe("aaaaaaaaaa")
    assert probe is not None and probe.state == (path[-1] if path else ProbeState.PLANNED)
    assert len(await store.probe_events("aaaaaaaaaa")) == len(path) + 1


@pytest.mark.parametrize(
    "path",
    [
        (ProbeState.FAILED,),
        (ProbeState.SENDING, ProbeState.FAILED),
        (ProbeState.SENDING, ProbeState.UNCERTAIN),
        (ProbeState.SENDING, ProbeState.SENT),
        (ProbeState.SENDING, ProbeState.UNCERTAIN, ProbeState.SENT),
        (ProbeState.SENDING, ProbeState.UNCERTAIN, ProbeState.FAILED),
    ],
)
async def test_every_legal_path_of_the_state_machine_is_accepted(
    store: Store, path: tuple[ProbeState, ...]
) -> None:
    await seeded(store)
    await store.insert_probe(make_probe("aaaaaaaaaa"))
    for state in path:
        await store.transition_probe("aaaaaaaaaa", state, T0, sent_at=sent_at_for(state))
    assert [e[0] for e in await store.probe_events("aaaaaaaaaa")] == [ProbeState.PLANNED, *path]


async def test_sent_without_accept_time_is_refused(store: Store) -> None:
    await seeded(store)
    await store.insert_probe(make_probe("aaaaaaaaaa"))
    await store.transition_probe("aaaaaaaaaa", ProbeState.SENDING, T0)
    with pytest.raises(ValueError, match="sent_at"):
        await store.transition_probe("aaaaaaaaaa", ProbeState.SENT, T0)


async def test_accept_time_on_a_state_other_than_sent_is_refused(store: Store) -> None:
    await seeded(store)
    await store.insert_probe(make_probe("aaaaaaaaaa"))
    await store.transition_probe("aaaaaaaaaa", ProbeState.SENDING, T0)
    with pytest.raises(ValueError, match="sent_at belongs to SENT only"):
        await store.transition_probe("aaaaaaaaaa", ProbeState.UNCERTAIN, T0, sent_at=T0)


async def test_transition_of_an_unknown_probe_raises(store: Store) -> None:
    with pytest.raises(UnknownProbe):
        await store.transition_probe("zzzzzzzzzz", ProbeState.SENDING, T0)


async def test_failed_probe_keeps_permanence_and_smtp_reply(store: Store) -> None:
    await seeded(store)
    await store.insert_probe(make_probe("aaaaaaaaaa"))
    await store.transition_probe("aaaaaaaaaa", ProbeState.SENDING, T0)
    await store.transition_probe(
        "aaaaaaaaaa", ProbeState.FAILED, T0, permanent=True, detail="550 5.1.1 no such user"
    )
    probe = await store.probe("aaaaaaaaaa")
    assert probe is not None
    assert (probe.state, probe.failure_permanent, probe.failure_detail) == (
        ProbeState.FAILED,
        True,
        "550 5.1.1 no such user",
    )


async def test_recover_in_flight_turns_only_sending_probes_uncertain(store: Store) -> None:
    await seeded(store)
    for token in ("aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"):
        await store.insert_probe(make_probe(token))
    await store.transition_probe("bbbbbbbbbb", ProbeState.SENDING, T0)
    await store.transition_probe("cccccccccc", ProbeState.SENDING, T0)
    restart = T0 + timedelta(minutes=3)
    assert await store.recover_in_flight(restart) == ["bbbbbbbbbb", "cccccccccc"]
    states = [(await store.probe(t)) for t in ("aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc")]
    assert [p.state for p in states if p] == [
        ProbeState.PLANNED,
        ProbeState.UNCERTAIN,
        ProbeState.UNCERTAIN,
    ]
    last_event = (await store.probe_events("bbbbbbbbbb"))[-1]
    assert last_event[:2] == (ProbeState.UNCERTAIN, restart)
    assert await store.recover_in_flight(restart) == []


# -- probe records and match candidates ------------------------------------------------------


async def _probe_in_state(store: Store, token: str, state: ProbeState, at: datetime) -> None:
    await store.insert_probe(make_probe(token, planned_at=at))
    path = {
        ProbeState.PLANNED: (),
        ProbeState.SENDING: (ProbeState.SENDING,),
        ProbeState.SENT: (ProbeState.SENDING, ProbeState.SENT),
        ProbeState.FAILED: (ProbeState.FAILED,),
        ProbeState.UNCERTAIN: (ProbeState.SENDING, ProbeState.UNCERTAIN),
    }[state]
    for step in path:
        await store.transition_probe(
            token, step, at, sent_at=at if step is ProbeState.SENT else None
        )


@pytest.mark.parametrize(
    ("state", "outcome", "outstanding"),
    [
        (ProbeState.PLANNED, None, True),
        (ProbeState.SENDING, None, True),
        (ProbeState.SENT, None, True),
        (ProbeState.SENT, OutcomeState.UNANSWERED_SO_FAR, True),
        (ProbeState.SENT, OutcomeState.ANSWERED, False),
        (ProbeState.SENT, OutcomeState.UNANSWERED_FINAL, False),
        (ProbeState.SENT, OutcomeState.NOT_MEASURABLE, False),
        (ProbeState.FAILED, None, False),
        (ProbeState.UNCERTAIN, None, False),
    ],
)
async def test_probe_record_is_outstanding_while_in_flight_or_awaiting_an_answer(
    store: Store, state: ProbeState, outcome: OutcomeState | None, outstanding: bool
) -> None:
    await seeded(store)
    await _probe_in_state(store, "aaaaaaaaaa", state, T0)
    if outcome is not None:
        await store.save_outcome(make_outcome("aaaaaaaaaa", outcome), T0)
    [record] = await store.probe_records(T0 - timedelta(days=1))
    assert (record.token, record.state, record.outstanding) == ("aaaaaaaaaa", state, outstanding)
    assert record.sent_at == (T0 if state is ProbeState.SENT else None)


async def test_probe_records_since_keep_old_outstanding_probes(store: Store) -> None:
    await seeded(store)
    old = T0 - timedelta(days=200)
    await _probe_in_state(store, "oldansweed", ProbeState.SENT, old)
    await store.save_outcome(make_outcome("oldansweed"), old)
    await _probe_in_state(store, "oldwaiting", ProbeState.SENT, old + timedelta(hours=1))
    await _probe_in_state(store, "newplanned", ProbeState.PLANNED, T0)
    records = await store.probe_records(T0 - timedelta(days=30))
    assert [(r.token, r.outstanding) for r in records] == [
        ("oldwaiting", True),
        ("newplanned", True),
    ]
    assert records[0].question_id == "avfall-01" and records[0].persona_id == "anna"


async def test_match_candidates_are_sent_and_uncertain_probes_since(store: Store) -> None:
    await seeded(store)
    await _probe_in_state(store, "sentrecent", ProbeState.SENT, T0)
    await _probe_in_state(store, "sentbefore", ProbeState.SENT, T0 - timedelta(days=60))
    await _probe_in_state(store, "uncertain2", ProbeState.UNCERTAIN, T0 + timedelta(hours=1))
    await _probe_in_state(store, "plannednow", ProbeState.PLANNED, T0)
    await _probe_in_state(store, "failednow2", ProbeState.FAILED, T0)
    candidates = await store.match_candidates(T0 - timedelta(days=30))
    assert [(c.token, c.sent_at) for c in candidates] == [
        ("sentrecent", T0),
        ("uncertain2", T0 + timedelta(hours=1)),
    ]


async def test_candidate_by_token_carries_what_the_matcher_needs(store: Store) -> None:
    await seeded(store)
    await _probe_in_state(store, "aaaaaaaaaa", ProbeState.SENT, T0)
    probe = make_probe("aaaaaaaaaa")
    assert await store.candidate_by_token("aaaaaaaaaa") == ProbeCandidate(
        token=probe.token,
        target_id=probe.target_id,
        target_address=probe.target_address,
        reply_address=probe.reply_address,
        message_id=probe.message_id,
        subject=probe.subject,
        body=probe.body,
        sent_at=T0,
    )


@pytest.mark.parametrize("state", [ProbeState.PLANNED, ProbeState.SENDING, ProbeState.FAILED])
async def test_probe_never_sent_is_no_candidate(store: Store, state: ProbeState) -> None:
    await seeded(store)
    await _probe_in_state(store, "aaaaaaaaaa", state, T0)
    assert await store.candidate_by_token("aaaaaaaaaa") is None
    assert await store.match_candidates(T0 - timedelta(days=1)) == []


async def test_unknown_token_is_no_candidate(store: Store) -> None:
    assert await store.candidate_by_token("zzzzzzzzzz") is None


# -- messages and checkpoints ----------------------------------------------------------------


async def test_recorded_message_round_trips_with_raw_bytes_and_defects(store: Store) -> None:
    await seeded(store)
    await _probe_in_state(store, "aaaaaaaaaa", ProbeState.SENT, T0)
    message = make_message(
        "m1",
        kind=MessageKind.BOUNCE,
        permanent=True,
        ticket_number="INC0012345",
        probe_token="aaaaaaaaaa",
        match_method=MatchMethod.DSN_ORIGINAL,
        defects=("missing Date", "bad charset"),
        message_id=None,
        from_address=None,
    )
    assert await store.record_message(message, Checkpoint("INBOX", 3_000_000_000, 101)) is True
    assert await store.message(message.message_key) == message
    assert await store.message("f" * 64) is None


async def test_rescanned_message_is_not_stored_twice_but_checkpoint_advances(
    store: Store,
) -> None:
    message = make_message("m1")
    assert await store.record_message(message, Checkpoint("INBOX", 7, 101)) is True
    again = replace(message, uidvalidity=8, uid=5)
    assert await store.record_message(again, Checkpoint("INBOX", 8, 5)) is False
    assert await store.checkpoint("INBOX") == Checkpoint("INBOX", 8, 5)
    assert await store.message(message.message_key) == message


@pytest.mark.parametrize(
    ("first", "then", "kept"),
    [
        (Checkpoint("INBOX", 7, 101), Checkpoint("INBOX", 7, 150), Checkpoint("INBOX", 7, 150)),
        (Checkpoint("INBOX", 7, 150), Checkpoint("INBOX", 7, 101), Checkpoint("INBOX", 7, 150)),
        (Checkpoint("INBOX", 7, 150), Checkpoint("INBOX", 7, 150), Checkpoint("INBOX", 7, 150)),
        (Checkpoint("INBOX", 7, 150), Checkpoint("INBOX", 9, 3), Checkpoint("INBOX", 9, 3)),
        (
            Checkpoint("INBOX", 4_294_967_295, 4_294_967_294),
            Checkpoint("INBOX", 4_294_967_295, 4_294_967_295),
            Checkpoint("INBOX", 4_294_967_295, 4_294_967_295),
        ),
    ],
)
async def test_checkpoint_moves_forward_or_resets_on_new_uidvalidity(
    store: Store, first: Checkpoint, then: Checkpoint, kept: Checkpoint
) -> None:
    await store.record_message(make_message("m1", uid=first.last_uid), first)
    await store.record_message(make_message("m2", uid=then.last_uid), then)
    assert await store.checkpoint("INBOX") == kept


async def test_checkpoints_are_per_folder_and_optional(store: Store) -> None:
    await store.record_message(make_message("m1"), None)
    assert await store.checkpoint("INBOX") is None
    await store.record_message(make_message("m2", folder="Junk"), Checkpoint("Junk", 1, 9))
    assert await store.checkpoint("Junk") == Checkpoint("Junk", 1, 9)
    assert await store.checkpoint("INBOX") is None


async def test_messages_for_probe_come_in_arrival_order(store: Store) -> None:
    await seeded(store)
    await _probe_in_state(store, "aaaaaaaaaa", ProbeState.SENT, T0)
    for key, hours in (("late", 5), ("early", 1), ("middle", 3)):
        received = T0 + timedelta(hours=hours)
        message = make_message(key, received_at=received, probe_token="aaaaaaaaaa")
        await store.record_message(message, None)
    await store.record_message(make_message("other"), None)
    found = await store.messages_for_probe("aaaaaaaaaa")
    assert [m.message_key[:6] for m in found] == ["early0", "middle", "late00"]


async def test_unmatched_messages_are_newest_first_and_limited(store: Store) -> None:
    await seeded(store)
    await _probe_in_state(store, "aaaaaaaaaa", ProbeState.SENT, T0)
    for n in range(4):
        received = T0 + timedelta(hours=n)
        await store.record_message(make_message(f"u{n}", received_at=received), None)
    matched = make_message("mm", probe_token="aaaaaaaaaa", match_method=MatchMethod.ADDRESS)
    await store.record_message(matched, None)
    found = await store.unmatched_messages(limit=3)
    assert [m.message_key[:2] for m in found] == ["u3", "u2", "u1"]


async def test_concurrent_writers_from_several_tasks_all_commit(store: Store) -> None:
    # The daemon writes from its IMAP task and its send task at once; on SQLite each
    # write transaction must wait for the lock (BEGIN IMMEDIATE + busy_timeout), not fail.
    await seeded(store)
    tokens = [f"conc{n:06d}" for n in range(12)]
    await asyncio.gather(*(store.insert_probe(make_probe(t)) for t in tokens))
    writes = [store.transition_probe(t, ProbeState.SENDING, T0) for t in tokens]
    writes += [store.record_message(make_message(f"c{n:02d}"), None) for n in range(12)]
    writes += [store.heartbeat("run-1", T0 + timedelta(seconds=n)) for n in range(6)]
    await asyncio.gather(*writes)
    assert sorted(await store.recover_in_flight(T0)) == tokens
    assert await store.count_unmatched() == 12


async def test_count_unmatched_counts_messages_tied_to_no_probe(store: Store) -> None:
    await seeded(store)
    await _probe_in_state(store, "aaaaaaaaaa", ProbeState.SENT, T0)
    assert await store.count_unmatched() == 0
    for key in ("u1", "u2"):
        await store.record_message(make_message(key), None)
    await store.record_message(make_message("mm", probe_token="aaaaaaaaaa"), None)
    assert await store.count_unmatched() == 2


async def test_message_by_message_id_finds_the_earliest_copy(store: Store) -> None:
    early = make_message("copy1", message_id="<same@x>", received_at=T0)
    late = make_message("copy2", message_id="<same@x>", received_at=T0 + timedelta(hours=1))
    await store.record_message(late, None)
    await store.record_message(early, None)
    assert await store.message_by_message_id("<same@x>") == early
    assert await store.message_by_message_id("<other@x>") is None


async def test_assigning_a_message_ties_it_to_the_probe_and_none_unties_it(store: Store) -> None:
    await seeded(store)
    await _probe_in_state(store, "aaaaaaaaaa", ProbeState.SENT, T0)
    message = make_message("m1")
    await store.record_message(message, None)
    await store.assign_message(message.message_key, "aaaaaaaaaa", MatchMethod.MANUAL)
    assert await store.messages_for_probe("aaaaaaaaaa") == [
        replace(message, probe_token="aaaaaaaaaa", match_method=MatchMethod.MANUAL)
    ]
    assert await store.unmatched_messages() == []
    await store.assign_message(message.message_key, None, MatchMethod.NONE)
    assert await store.unmatched_messages() == [message]


async def test_assigning_to_an_unknown_message_or_probe_raises(store: Store) -> None:
    await store.record_message(make_message("m1"), None)
    with pytest.raises(UnknownMessage):
        await store.assign_message("f" * 64, None, MatchMethod.NONE)
    with pytest.raises(UnknownProbe):
        await store.assign_message(make_message("m1").message_key, "zzzzzzzzzz", MatchMethod.MANUAL)


async def test_purge_drops_old_bodies_only_and_keeps_the_messages(store: Store) -> None:
    for key, days in (("old1", 40), ("old2", 31), ("new1", 1)):
        message = make_message(key, received_at=T0 - timedelta(days=days))
        await store.record_message(message, None)
    await store.record_message(
        make_message("noraw", raw=None, received_at=T0 - timedelta(90)), None
    )
    assert await store.purge_bodies(T0 - timedelta(days=30)) == 2
    assert await store.purge_bodies(T0 - timedelta(days=30)) == 0
    kept = {k: await store.message(make_message(k).message_key) for k in ("old1", "new1")}
    assert kept["old1"] is not None and kept["old1"].raw is None
    assert kept["new1"] is not None and kept["new1"].raw == make_message("new1").raw


# -- outcomes ----------------------------------------------------------------------------------


async def test_saved_outcome_round_trips_and_a_second_save_replaces_it(store: Store) -> None:
    await seeded(store)
    await _probe_in_state(store, "aaaaaaaaaa", ProbeState.SENT, T0)
    waiting = ProbeOutcome("aaaaaaaaaa", OutcomeState.UNANSWERED_SO_FAR, clock_start=T0)
    await store.save_outcome(waiting, T0)
    assert await store.outcome("aaaaaaaaaa") == waiting
    answered = make_outcome("aaaaaaaaaa")
    await store.save_outcome(answered, T0 + timedelta(hours=4))
    assert await store.outcome("aaaaaaaaaa") == answered
    assert await store.outcome("zzzzzzzzzz") is None


async def test_outcomes_are_selected_by_send_time_with_their_probes(store: Store) -> None:
    await seeded(store)
    for token, days in (("before0000", -40), ("inside0001", -20), ("inside0002", -10)):
        await _probe_in_state(store, token, ProbeState.SENT, T0 + timedelta(days=days))
        await store.save_outcome(make_outcome(token), T0)
    await _probe_in_state(store, "nooutcome0", ProbeState.SENT, T0 - timedelta(days=15))
    found = await store.outcomes(T0 - timedelta(days=30))
    assert [(o.token, p.token, p.sent_at) for o, p in found] == [
        ("inside0001", "inside0001", T0 - timedelta(days=20)),
        ("inside0002", "inside0002", T0 - timedelta(days=10)),
    ]
    assert found[0][0] == make_outcome("inside0001")
    bounded = await store.outcomes(T0 - timedelta(days=50), T0 - timedelta(days=10))
    assert [o.token for o, _ in bounded] == ["before0000", "inside0001"]


async def test_open_probe_tokens_are_sent_probes_without_a_final_outcome(store: Store) -> None:
    await seeded(store)
    cases = [
        ("noresult01", ProbeState.SENT, None),
        ("waiting001", ProbeState.SENT, OutcomeState.UNANSWERED_SO_FAR),
        ("answered01", ProbeState.SENT, OutcomeState.ANSWERED),
        ("final00001", ProbeState.SENT, OutcomeState.UNANSWERED_FINAL),
        ("planned001", ProbeState.PLANNED, None),
        ("uncertain1", ProbeState.UNCERTAIN, None),
    ]
    for n, (token, state, outcome) in enumerate(cases):
        await _probe_in_state(store, token, state, T0 + timedelta(minutes=n))
        if outcome is not None:
            await store.save_outcome(make_outcome(token, outcome), T0)
    assert await store.open_probe_tokens() == ["noresult01", "waiting001"]


async def test_status_rows_summarise_each_active_target(store: Store) -> None:
    await seeded(store, "t-0180", "t-1", "t-2", "t-3")
    await _probe_in_state(store, "first00001", ProbeState.SENT, T0)
    await store.save_outcome(make_outcome("first00001"), T0)
    await store.insert_probe(make_probe("second0001", planned_at=T0 + timedelta(days=7)))
    second_at = T0 + timedelta(days=7)
    await store.transition_probe("second0001", ProbeState.SENDING, second_at)
    await store.transition_probe("second0001", ProbeState.SENT, second_at, sent_at=second_at)
    waiting = ProbeOutcome("second0001", OutcomeState.UNANSWERED_SO_FAR, clock_start=second_at)
    await store.save_outcome(waiting, second_at)
    await store.sync_targets([make_target(t) for t in ("t-0180", "t-1", "t-2")], T0)
    await store.insert_probe(make_probe("planned001", target_id="t-1"))
    await store.set_address_failing("t-2", "5.1.1", T0)
    rows = await store.status_rows()
    assert rows == [
        TargetStatus(
            target_id="t-0180",
            name="Kommun t-0180",
            address="kontakt@t-0180.example.invalid",
            paused=False,
            probes_sent=2,
            last_sent_at=second_at,
            last_outcome=OutcomeState.UNANSWERED_SO_FAR,
            last_reply_at=T0 + timedelta(hours=3),
            address_failing=False,
            address_failing_reason=None,
            address_failing_since=None,
        ),
        quiet_status("t-1", failing=None),
        quiet_status("t-2", failing=("5.1.1", T0)),
    ]


def quiet_status(target_id: str, failing: tuple[str, datetime] | None) -> TargetStatus:
    return TargetStatus(
        target_id=target_id,
        name=f"Kommun {target_id}",
        address=f"kontakt@{target_id}.example.invalid",
        paused=False,
        probes_sent=0,
        last_sent_at=None,
        last_outcome=None,
        last_reply_at=None,
        address_failing=failing is not None,
        address_failing_reason=failing[0] if failing else None,
        address_failing_since=failing[1] if failing else None,
    )


# -- heartbeats and downtime -------------------------------------------------------------------


async def test_downtime_is_the_gap_between_a_runs_last_heartbeat_and_the_next_start(
    store: Store,
) -> None:
    minute = timedelta(minutes=1)
    beats = [
        ("run-1", T0),
        ("run-1", T0 + 1 * minute),
        ("run-1", T0 + 2 * minute),  # crash after this beat
        ("run-2", T0 + 60 * minute),
        ("run-2", T0 + 61 * minute),  # clean restart: next run starts within stale_after
        ("run-3", T0 + 62 * minute),
        ("run-3", T0 + 63 * minute),
    ]
    for run_id, at in beats:
        await store.heartbeat(run_id, at)
    gaps = await store.downtime(T0 - timedelta(days=1), stale_after=5 * minute)
    assert gaps == [(T0 + 2 * minute, T0 + 60 * minute)]
    assert await store.downtime(T0 + 61 * minute, stale_after=5 * minute) == []


async def test_overlapping_runs_leave_no_downtime(store: Store) -> None:
    await store.heartbeat("run-a", T0)
    await store.heartbeat("run-b", T0 + timedelta(minutes=10))
    await store.heartbeat("run-a", T0 + timedelta(minutes=30))
    await store.heartbeat("run-c", T0 + timedelta(minutes=31))
    assert await store.downtime(T0, stale_after=timedelta(minutes=5)) == []


def test_head_revision_constant_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


async def test_upgrade_of_a_database_at_an_older_revision_reaches_head(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        async with store.engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0001")
        await store.upgrade()
        async with store.engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    finally:
        await store.close()
    assert [v for (v,) in versions] == [HEAD_REVISION]

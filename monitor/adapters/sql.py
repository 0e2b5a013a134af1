"""SQL storage: translates domain values to rows and back (SQLite by default, PostgreSQL).

The store holds no business rules: it never decides kinds, matches, outcomes or schedules.
The one rule it enforces is the persisted send state machine (see ``TRANSITIONS``), because
a probe must never be sent twice after a crash and only the database can guarantee that.

Every public method is one transaction. On SQLite, write transactions open with
``BEGIN IMMEDIATE`` so that a writer waits (busy_timeout) instead of failing with
SQLITE_BUSY when it would have to upgrade a read snapshot.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Row,
    and_,
    bindparam,
    case,
    event,
    func,
    inspect,
    literal,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

from monitor.adapters.sql_schema import (
    UtcDateTime,
    mailbox_checkpoints,
    messages,
    monitor_runs,
    outcomes,
    probe_events,
    probes,
    targets,
)
from monitor.domain.model import (
    Checkpoint,
    MatchMethod,
    MessageKind,
    OutcomeState,
    Probe,
    ProbeCandidate,
    ProbeOutcome,
    ProbeRecord,
    ProbeState,
    StoredMessage,
    Target,
)
from monitor.domain.reporting import OutcomeFact, SettledTargetCounts

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
SQLITE_BUSY_TIMEOUT_MS = 10_000
_WRITE_OPTION = "svarstid_write"

# The send state machine of model.ProbeState; every other move is a bug in the caller.
TRANSITIONS: Mapping[ProbeState, frozenset[ProbeState]] = {
    ProbeState.PLANNED: frozenset({ProbeState.SENDING, ProbeState.FAILED}),
    ProbeState.SENDING: frozenset({ProbeState.SENT, ProbeState.FAILED, ProbeState.UNCERTAIN}),
    # Recovery marks a probe it finds mid-send UNCERTAIN; if the process that was sending it
    # is alive after all (a CLI send-now while the daemon restarts), its SMTP verdict is
    # better knowledge and settles the probe. Nothing ever goes back to SENDING.
    ProbeState.UNCERTAIN: frozenset({ProbeState.SENT, ProbeState.FAILED}),
}
RECOVERED_DETAIL = "monitor restarted while sending: delivery unknown, never resent"


class IllegalTransition(Exception):
    """A probe was asked to move to a state its current state does not lead to."""

    def __init__(self, token: str, current: ProbeState | None, wanted: ProbeState) -> None:
        shown = current.value if current is not None else "(new)"
        super().__init__(f"probe {token}: {shown} -> {wanted.value} is not allowed")
        self.token = token
        self.current = current
        self.wanted = wanted


class UnknownProbe(LookupError):
    """No probe with that token."""


class UnknownMessage(LookupError):
    """No stored message with that key."""


class UnknownTarget(LookupError):
    """No target with that id."""


@dataclass(frozen=True)
class TargetStatus:
    """One line of ``svarstid status``."""

    target_id: str
    name: str
    address: str
    paused: bool
    probes_sent: int
    last_sent_at: datetime | None
    last_outcome: OutcomeState | None  # outcome of the most recently sent probe, if computed
    last_reply_at: datetime | None  # latest first human answer of any probe of the target
    address_failing: bool
    address_failing_reason: str | None
    address_failing_since: datetime | None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Async storage of targets, probes, messages, outcomes, checkpoints and heartbeats."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        if engine.dialect.name not in SUPPORTED_DIALECTS:
            raise ValueError(
                f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL"
            )
        self._engine = engine
        self._write_engine = engine.execution_options(**{_WRITE_OPTION: True})
        self._clock = clock

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Store:
        backend = make_url(url).get_backend_name()
        if backend not in SUPPORTED_DIALECTS:
            raise ValueError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")
        # hide_parameters: bound values (message bodies, subjects, addresses) must never
        # reach logs, neither through echo nor through the text of a database error.
        engine = create_async_engine(
            url,
            echo=echo,
            # A server connection can die between uses; a SQLite file cannot, and the
            # ping would cost a thread round trip on every checkout.
            pool_pre_ping=backend == "postgresql",
            hide_parameters=True,
            connect_args=_connect_args(backend),
        )
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine.sync_engine)
        return cls(engine)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # -- lifecycle -------------------------------------------------------------------------

    async def upgrade(self) -> None:
        """Apply every Alembic migration up to head; a no-op on an up-to-date database.

        Alembic (with Mako) costs ~11 MB of resident memory for the life of the process, so
        it is only imported when the stored revision is not already HEAD_REVISION.
        """
        async with self._write_engine.begin() as conn:
            if await conn.run_sync(_stored_revision) == HEAD_REVISION:
                return
            await conn.run_sync(_run_alembic_upgrade)

    async def schema_revision(self) -> str | None:
        """The migration the database is at (None: no svarstid schema); changes nothing."""
        async with self._engine.connect() as conn:
            return await conn.run_sync(_stored_revision)

    async def close(self) -> None:
        try:
            if self._engine.dialect.name == "sqlite":
                await self._optimize_sqlite()
        finally:
            await self._engine.dispose()

    async def _optimize_sqlite(self) -> None:
        # SQLite keeps no planner statistics by itself; its docs advise this at close.
        # Best effort: an unusable database must not stop the shutdown.
        with contextlib.suppress(DBAPIError):
            async with self._engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA optimize")

    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # -- targets ---------------------------------------------------------------------------

    async def sync_targets(self, targets_: Sequence[Target], now: datetime) -> None:
        """Upsert the configured targets; those no longer configured become inactive.

        A changed address clears the address-failing mark, which belonged to the old address.
        """
        async with self._write_engine.begin() as conn:
            for target in targets_:
                await conn.execute(_target_upsert(conn, target, now))
            ids = [t.id for t in targets_]
            await conn.execute(
                update(targets)
                .where(targets.c.active.is_(True), targets.c.id.not_in(ids))
                .values(active=False, updated_at=now)
            )

    async def targets(self) -> list[Target]:
        """Active (configured) targets, by id."""
        query = select(*TARGET_COLUMNS).where(targets.c.active.is_(True)).order_by(targets.c.id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_target_from_row(row) for row in rows]

    async def failing_targets(self) -> dict[str, str]:
        """Active targets whose address is marked failing: id -> reason."""
        query = select(targets.c.id, targets.c.address_failing_reason).where(
            targets.c.active.is_(True), targets.c.address_failing.is_(True)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {row.id: row.address_failing_reason or "" for row in rows}

    async def set_address_failing(self, target_id: str, reason: str | None, at: datetime) -> None:
        """Mark the target's address failing since ``at`` (kept if already failing); None clears."""
        if reason is None:
            values: dict[str, Any] = {
                "address_failing": False,
                "address_failing_reason": None,
                "address_failing_since": None,
            }
        else:
            at_param = bindparam("failing_at", at, type_=UtcDateTime())
            since = func.coalesce(targets.c.address_failing_since, at_param)
            values = {
                "address_failing": True,
                "address_failing_reason": reason,
                "address_failing_since": since,
            }
        statement = update(targets).where(targets.c.id == target_id)
        async with self._write_engine.begin() as conn:
            result = await conn.execute(statement.values(updated_at=at, **values))
            if result.rowcount == 0:
                raise UnknownTarget(target_id)

    # -- probes ----------------------------------------------------------------------------

    async def insert_probe(self, probe: Probe) -> None:
        """Store a new PLANNED probe and its first event (at ``planned_at``)."""
        if probe.state is not ProbeState.PLANNED:
            raise IllegalTransition(probe.token, None, probe.state)
        if probe.sent_at is not None:  # invariant: sent_at is set exactly on SENT probes
            raise ValueError(f"probe {probe.token}: a planned probe has no sent_at")
        async with self._write_engine.begin() as conn:
            await conn.execute(probes.insert().values(_probe_values(probe)))
            await conn.execute(_event_insert(probe.token, probe.state, probe.planned_at, None))

    async def transition_probe(
        self,
        token: str,
        state: ProbeState,
        at: datetime,
        *,
        sent_at: datetime | None = None,
        permanent: bool | None = None,
        detail: str | None = None,
    ) -> None:
        """Move a probe along the send state machine and record the event.

        Raises UnknownProbe, IllegalTransition, or ValueError when ``sent_at`` is missing for
        SENT or given for another state.
        ``detail`` is kept in the event; for FAILED and UNCERTAIN also as failure_detail.
        """
        if state is ProbeState.SENT and sent_at is None:
            raise ValueError(f"probe {token}: SENT needs sent_at (the SMTP accept time)")
        if state is not ProbeState.SENT and sent_at is not None:
            raise ValueError(f"probe {token}: sent_at belongs to SENT only, not {state.value}")
        values = _transition_values(state, at, sent_at, permanent, detail)
        async with self._write_engine.begin() as conn:
            current = await _probe_state(conn, token)
            if state not in TRANSITIONS.get(current, frozenset()):
                raise IllegalTransition(token, current, state)
            result = await conn.execute(
                update(probes)
                .where(probes.c.token == token, probes.c.state == current.value)
                .values(values)
            )
            if result.rowcount != 1:  # another writer moved it between our read and write
                raise IllegalTransition(token, current, state)
            await conn.execute(_event_insert(token, state, at, detail))

    async def recover_in_flight(self, at: datetime) -> list[str]:
        """Crash recovery: every SENDING probe becomes UNCERTAIN. Returns their tokens."""
        async with self._write_engine.begin() as conn:
            query = select(probes.c.token).where(probes.c.state == ProbeState.SENDING.value)
            tokens = sorted((await conn.execute(query)).scalars())
            if not tokens:
                return []
            await conn.execute(
                update(probes)
                .where(probes.c.token.in_(tokens))
                .values(
                    state=ProbeState.UNCERTAIN.value,
                    failure_detail=RECOVERED_DETAIL,
                    updated_at=at,
                )
            )
            await conn.execute(
                probe_events.insert(),
                [_event_values(t, ProbeState.UNCERTAIN, at, RECOVERED_DETAIL) for t in tokens],
            )
        return tokens

    async def probe(self, token: str) -> Probe | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(*PROBE_COLUMNS).where(probes.c.token == token))
            ).first()
        return _probe_from_row(row) if row is not None else None

    async def probe_events(self, token: str) -> list[tuple[ProbeState, datetime, str | None]]:
        """The state history of a probe, oldest first."""
        query = (
            select(probe_events.c.state, probe_events.c.at, probe_events.c.detail)
            .where(probe_events.c.token == token)
            .order_by(probe_events.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(ProbeState(row.state), row.at, row.detail) for row in rows]

    async def probe_records(self, since: datetime) -> list[ProbeRecord]:
        """Probes planned at or after ``since``, plus every outstanding probe however old.

        Outstanding: PLANNED or SENDING, or SENT with no outcome or one unanswered so far.
        """
        outstanding = _outstanding_clause()
        query = (
            select(*RECORD_COLUMNS, outstanding.label("outstanding"))
            .where(or_(probes.c.planned_at >= since, outstanding))
            .order_by(probes.c.planned_at, probes.c.token)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_record_from_row(row) for row in rows]

    async def match_candidates(self, since: datetime) -> list[ProbeCandidate]:
        """SENT probes sent at or after ``since`` and UNCERTAIN ones (by sent_at or planned_at)."""
        # sent_at is set exactly on SENT probes (see transition_probe): no state test, so
        # that SQLite, without statistics, takes the sent_at index and not the state one.
        sent = probes.c.sent_at >= since
        uncertain = and_(
            probes.c.state == ProbeState.UNCERTAIN.value,
            func.coalesce(probes.c.sent_at, probes.c.planned_at) >= since,
        )
        query = select(*PROBE_COLUMNS).where(or_(sent, uncertain)).order_by(probes.c.token)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_candidate_from_row(row) for row in rows]

    async def candidate_by_token(self, token: str) -> ProbeCandidate | None:
        """The probe as a match candidate, or None if unknown or never (possibly) sent."""
        query = select(*PROBE_COLUMNS).where(
            probes.c.token == token,
            probes.c.state.in_([ProbeState.SENT.value, ProbeState.UNCERTAIN.value]),
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _candidate_from_row(row) if row is not None else None

    # -- mailbox ---------------------------------------------------------------------------

    async def checkpoint(self, folder: str) -> Checkpoint | None:
        query = select(mailbox_checkpoints).where(mailbox_checkpoints.c.folder == folder)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return Checkpoint(folder=row.folder, uidvalidity=row.uidvalidity, last_uid=row.last_uid)

    async def record_message(self, message: StoredMessage, checkpoint: Checkpoint | None) -> bool:
        """Store the message unless its key exists (then False) and advance the checkpoint.

        Both in one transaction, so the checkpoint never passes an uncommitted message. The
        checkpoint only moves forward within a UIDVALIDITY; a new UIDVALIDITY replaces it.
        """
        now = self._clock()
        async with self._write_engine.begin() as conn:
            insert = _dialect_insert(conn, messages).values(_message_values(message, now))
            result = await conn.execute(insert.on_conflict_do_nothing())
            if checkpoint is not None:
                await conn.execute(_checkpoint_upsert(conn, checkpoint, now))
        return result.rowcount == 1

    async def messages_for_probe(self, token: str) -> list[StoredMessage]:
        """Messages tied to the probe, by received_at."""
        query = (
            select(*MESSAGE_COLUMNS)
            .where(messages.c.probe_token == token)
            .order_by(messages.c.received_at, messages.c.message_key)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_message_from_row(row) for row in rows]

    async def message(self, message_key: str) -> StoredMessage | None:
        query = select(*MESSAGE_COLUMNS).where(messages.c.message_key == message_key)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _message_from_row(row) if row is not None else None

    async def message_by_message_id(self, message_id: str) -> StoredMessage | None:
        """The first stored message with this Message-ID header (angle brackets included)."""
        query = (
            select(*MESSAGE_COLUMNS)
            .where(messages.c.message_id == message_id)
            .order_by(messages.c.received_at, messages.c.message_key)
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _message_from_row(row) if row is not None else None

    async def unmatched_messages(self, limit: int = 100) -> list[StoredMessage]:
        """Messages tied to no probe, newest first."""
        query = (
            select(*MESSAGE_COLUMNS)
            .where(messages.c.probe_token.is_(None))
            .order_by(messages.c.received_at.desc(), messages.c.message_key)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_message_from_row(row) for row in rows]

    async def count_unmatched(self) -> int:
        """How many messages are tied to no probe (cheaper than loading them)."""
        query = select(func.count()).select_from(messages).where(messages.c.probe_token.is_(None))
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def assign_message(
        self, message_key: str, token: str | None, method: MatchMethod
    ) -> None:
        """Tie a message to a probe (or untie it with None). Raises UnknownMessage/UnknownProbe."""
        async with self._write_engine.begin() as conn:
            if token is not None:
                await _probe_state(conn, token)
            result = await conn.execute(
                update(messages)
                .where(messages.c.message_key == message_key)
                .values(probe_token=token, match_method=method.value)
            )
            if result.rowcount == 0:
                raise UnknownMessage(message_key)

    async def purge_bodies(self, older_than: datetime) -> int:
        """Drop the raw bytes of messages received before ``older_than``; returns how many."""
        statement = (
            update(messages)
            .where(messages.c.raw.is_not(None), messages.c.received_at < older_than)
            .values(raw=None)
        )
        async with self._write_engine.begin() as conn:
            result = await conn.execute(statement)
        return int(result.rowcount)

    # -- outcomes --------------------------------------------------------------------------

    async def save_outcome(self, outcome: ProbeOutcome, computed_at: datetime) -> None:
        """Insert or replace the outcome of a probe."""
        values = _outcome_values(outcome, computed_at)
        async with self._write_engine.begin() as conn:
            insert = _dialect_insert(conn, outcomes).values(values)
            changes = {key: insert.excluded[key] for key in values if key != "token"}
            await conn.execute(
                insert.on_conflict_do_update(index_elements=[outcomes.c.token], set_=changes)
            )
            await conn.execute(
                update(probes)
                .where(probes.c.token == outcome.token)
                .values(outcome_state=outcome.state.value)
            )

    async def outcomes(
        self, since: datetime, until: datetime | None = None
    ) -> list[tuple[ProbeOutcome, Probe]]:
        """Outcomes with their probes, for probes sent in [since, until), by sent_at."""
        query = select(*OUTCOME_COLUMNS, *PROBE_COLUMNS).join(
            probes, probes.c.token == outcomes.c.token
        )
        query = query.where(probes.c.sent_at >= since)
        if until is not None:
            query = query.where(probes.c.sent_at < until)
        query = query.order_by(probes.c.sent_at, probes.c.token)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        split = len(OUTCOME_COLUMNS)
        return [(_outcome_from_row(row), _probe_from_row(row[split:])) for row in rows]

    async def outcome(self, token: str) -> ProbeOutcome | None:
        query = select(*OUTCOME_COLUMNS).where(outcomes.c.token == token)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _outcome_from_row(row) if row is not None else None

    async def open_probe_tokens(self) -> list[str]:
        """SENT probes whose outcome is missing or unanswered so far, by sent_at."""
        query = (
            select(probes.c.token)
            .where(_awaiting_outcome_clause())
            .order_by(probes.c.sent_at, probes.c.token)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def status_rows(self) -> list[TargetStatus]:
        """Per active target: probes sent, last send and its outcome, last reply, failing mark.

        The last reply is the first human answer to the most recently sent answered probe.
        """
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_status_query())).all()
        return [_status(row) for row in rows]

    # -- monitor liveness ------------------------------------------------------------------

    async def heartbeat(self, run_id: str, now: datetime) -> None:
        """Record that monitor run ``run_id`` is alive at ``now`` (starts the run if new)."""
        async with self._write_engine.begin() as conn:
            insert = _dialect_insert(conn, monitor_runs).values(
                run_id=run_id, started_at=now, last_seen_at=now
            )
            await conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[monitor_runs.c.run_id],
                    set_={"last_seen_at": insert.excluded.last_seen_at},
                )
            )

    async def downtime(
        self, since: datetime, stale_after: timedelta
    ) -> list[tuple[datetime, datetime]]:
        """Periods no run was alive: from a last heartbeat to the next run's start.

        A gap counts when it is longer than ``stale_after`` (the heartbeat interval plus
        slack). Gaps ending after ``since`` are returned whole (not clipped), oldest first.
        """
        query = select(monitor_runs.c.started_at, monitor_runs.c.last_seen_at).order_by(
            monitor_runs.c.started_at
        )
        async with self._engine.connect() as conn:
            runs = [(r[0], r[1]) for r in (await conn.execute(query)).all()]
        gaps = _gaps(runs, stale_after)
        return [(start, end) for start, end in gaps if end > since]

    # -- reports ---------------------------------------------------------------------------

    async def report_facts(
        self,
        since: datetime,
        until: datetime,
        month_ends: Sequence[datetime],
        *,
        batch: int = 50_000,
        unsettled_only: bool = False,
    ) -> AsyncIterator[list[OutcomeFact]]:
        """Compact facts of the stored outcomes of probes sent in [since, until), in batches.

        A probe never sent counts by its planned_at. ``month`` is the index of the first of
        ``month_ends`` the send is before (-1: none). Rows are streamed, never all in memory.
        ``unsettled_only``: just the outcomes ``report_settled`` leaves out.
        """
        query = _report_facts_query(self._engine.dialect.name, since, until, month_ends)
        if unsettled_only:
            query = query.where(~_settled_clause())
        async with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # A cursor is planned for its first 10 % of rows by default: index lookups in
                # a nested loop, 30 s for a million. All rows are wanted: plan for them.
                await conn.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
            result = await conn.stream(query.execution_options(yield_per=batch))
            async for partition in result.partitions(batch):
                yield [_fact_from_row(row) for row in partition]

    async def report_settled(
        self, since: datetime, until: datetime, month_ends: Sequence[datetime]
    ) -> list[SettledTargetCounts]:
        """Per target, the settled outcomes of probes sent in [since, until), counted.

        Settled: answered with a working time, final, not measurable; with
        ``report_facts(unsettled_only=True)`` this covers every stored outcome in the period.
        PostgreSQL counts and collects in SQL (one row per target); SQLite streams the rows.
        """
        dialect = self._engine.dialect.name
        async with self._engine.connect() as conn:
            if dialect == "postgresql":
                # The join of a million probes to their outcomes spills to disk at the
                # default 4 MB; this transaction may use more.
                await conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
                query = _settled_counts_query(since, until, month_ends)
                rows = (await conn.execute(query)).all()
                return [_settled_from_row(row, len(month_ends)) for row in rows]
            facts = _report_facts_query(dialect, since, until, month_ends).where(_settled_clause())
            result = await conn.stream(facts.execution_options(yield_per=50_000))
            found = [_fact_from_row(row) async for row in result]
        return _counted_settled(found, len(month_ends))

    async def probes_without_outcome(self, since: datetime, until: datetime) -> list[Probe]:
        """Sent (or failed, or uncertain) probes in [since, until) that have no stored outcome."""
        # outcome_state is save_outcome's copy of the outcome (migration 0002): no anti-join.
        query = (
            select(*PROBE_COLUMNS)
            .where(probes.c.outcome_state.is_(None))
            .where(_sent_between(self._engine.dialect.name, since, until))
            .where(probes.c.state.in_([s.value for s in _REPORTED_PROBE_STATES]))
            .order_by(probes.c.token)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_probe_from_row(row) for row in rows]


# -- engine setup ------------------------------------------------------------------------------


def _connect_args(backend: str) -> dict[str, Any]:
    if backend == "postgresql":
        # PostgreSQL's JIT compiles the per-target status query for 2.5 s to save
        # milliseconds (measured on 300,000 probes): off for these short queries.
        return {"server_settings": {"jit": "off"}}
    return {}


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module: its legacy mode does not begin a
        # transaction before SELECT or DDL, which breaks repeatable reads and migrations.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            "PRAGMA synchronous=NORMAL",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# The newest migration in migrations/versions; a test checks it against Alembic's head.
HEAD_REVISION = "0002"


def _stored_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def alembic_config() -> Config:
    """The Alembic configuration of svarstid, built in code (there is no alembic.ini)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def _run_alembic_upgrade(connection: Connection) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _dialect_insert(conn: AsyncConnection, table: Any) -> sqlite.Insert | postgresql.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# -- statements --------------------------------------------------------------------------------


def _target_upsert(conn: AsyncConnection, target: Target, now: datetime) -> Any:
    insert = _dialect_insert(conn, targets).values(
        id=target.id,
        name=target.name,
        address=target.address,
        kommunkod=target.kommunkod,
        county=target.county,
        tags=list(target.tags),
        calendar=target.calendar,
        paused=target.paused,
        active=True,
        address_failing=False,
        updated_at=now,
    )
    new = insert.excluded
    same_address = targets.c.address == new.address
    changes: dict[str, Any] = {
        key: new[key]
        for key in ("name", "address", "kommunkod", "county", "tags", "calendar", "paused")
    }
    changes |= {
        "active": True,
        "updated_at": new.updated_at,
        "address_failing": case((same_address, targets.c.address_failing), else_=False),
        "address_failing_reason": case((same_address, targets.c.address_failing_reason)),
        "address_failing_since": case((same_address, targets.c.address_failing_since)),
    }
    return insert.on_conflict_do_update(index_elements=[targets.c.id], set_=changes)


def _checkpoint_upsert(conn: AsyncConnection, checkpoint: Checkpoint, now: datetime) -> Any:
    table = mailbox_checkpoints
    insert = _dialect_insert(conn, table).values(
        folder=checkpoint.folder,
        uidvalidity=checkpoint.uidvalidity,
        last_uid=checkpoint.last_uid,
        updated_at=now,
    )
    new = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[table.c.folder],
        set_={"uidvalidity": new.uidvalidity, "last_uid": new.last_uid, "updated_at": now},
        where=or_(table.c.uidvalidity != new.uidvalidity, table.c.last_uid < new.last_uid),
    )


async def _probe_state(conn: AsyncConnection, token: str) -> ProbeState:
    query = select(probes.c.state).where(probes.c.token == token)
    state = (await conn.execute(query)).scalar_one_or_none()
    if state is None:
        raise UnknownProbe(token)
    return ProbeState(state)


def _transition_values(
    state: ProbeState,
    at: datetime,
    sent_at: datetime | None,
    permanent: bool | None,
    detail: str | None,
) -> dict[str, Any]:
    values: dict[str, Any] = {"state": state.value, "updated_at": at}
    if sent_at is not None:
        values["sent_at"] = sent_at
    if permanent is not None:
        values["failure_permanent"] = permanent
    if detail is not None and state in (ProbeState.FAILED, ProbeState.UNCERTAIN):
        values["failure_detail"] = detail
    return values


def _event_values(
    token: str, state: ProbeState, at: datetime, detail: str | None
) -> dict[str, Any]:
    return {"token": token, "state": state.value, "at": at, "detail": detail}


def _event_insert(token: str, state: ProbeState, at: datetime, detail: str | None) -> Any:
    return probe_events.insert().values(_event_values(token, state, at, detail))


def _awaiting_outcome_clause() -> ColumnElement[bool]:
    """SENT with no outcome or one unanswered so far; each branch is an index range."""
    sent = probes.c.state == ProbeState.SENT.value
    return or_(
        and_(sent, probes.c.outcome_state.is_(None)),
        and_(sent, probes.c.outcome_state == OutcomeState.UNANSWERED_SO_FAR.value),
    )


def _outstanding_clause() -> ColumnElement[bool]:
    in_flight = probes.c.state.in_([ProbeState.PLANNED.value, ProbeState.SENDING.value])
    return or_(in_flight, _awaiting_outcome_clause())


def _status_query() -> Any:
    """One row per active target; each figure is an index lookup on (target_id, sent_at)."""
    of_target = probes.c.target_id == targets.c.id
    was_sent = probes.c.sent_at.is_not(None)
    # No tie-breaker after sent_at: the index order then serves LIMIT 1 without a sort.
    latest_first = (probes.c.sent_at.desc(),)
    probes_sent = select(func.count(probes.c.sent_at)).where(of_target).scalar_subquery()
    last_sent = select(probes.c.sent_at).where(of_target, was_sent).order_by(*latest_first)
    last_state = select(probes.c.outcome_state).where(of_target, was_sent).order_by(*latest_first)
    last_reply = (
        select(outcomes.c.first_human_at)
        .join(probes, probes.c.token == outcomes.c.token)
        .where(of_target, was_sent, outcomes.c.first_human_at.is_not(None))
        .order_by(*latest_first)
    )
    return (
        select(
            targets,
            probes_sent.label("probes_sent"),
            last_sent.limit(1).scalar_subquery().label("last_sent_at"),
            last_state.limit(1).scalar_subquery().label("last_outcome"),
            last_reply.limit(1).scalar_subquery().label("last_reply_at"),
        )
        .where(targets.c.active.is_(True))
        .order_by(targets.c.id)
    )


def _gaps(
    runs: list[tuple[datetime, datetime]], stale_after: timedelta
) -> list[tuple[datetime, datetime]]:
    gaps: list[tuple[datetime, datetime]] = []
    covered_until: datetime | None = None
    for started_at, last_seen_at in runs:  # ordered by started_at; runs may overlap
        if covered_until is not None and started_at - covered_until > stale_after:
            gaps.append((covered_until, started_at))
        if covered_until is None or last_seen_at > covered_until:
            covered_until = last_seen_at
    return gaps


# -- rows <-> values ---------------------------------------------------------------------------


# Rows are read by position: name lookups on Row cost more than the query on large reads.
# Each *_COLUMNS tuple lists the columns of a value's fields, in the field order.
TARGET_COLUMNS = tuple(targets.c[f.name] for f in fields(Target))
PROBE_COLUMNS = tuple(probes.c[f.name] for f in fields(Probe))
MESSAGE_COLUMNS = tuple(messages.c[f.name] for f in fields(StoredMessage))
OUTCOME_COLUMNS = tuple(outcomes.c[f.name] for f in fields(ProbeOutcome))
RECORD_COLUMNS = tuple(probes.c[f.name] for f in fields(ProbeRecord) if f.name != "outstanding")
_PROBE_STATES = {state.value: state for state in ProbeState}


def _target_from_row(v: Sequence[Any]) -> Target:
    return Target(v[0], v[1], v[2], v[3], v[4], tuple(v[5]), v[6], v[7])


def _probe_values(probe: Probe) -> dict[str, Any]:
    return {
        "token": probe.token,
        "target_id": probe.target_id,
        "target_address": probe.target_address,
        "question_id": probe.question_id,
        "persona_id": probe.persona_id,
        "reply_address": probe.reply_address,
        "message_id": probe.message_id,
        "subject": probe.subject,
        "body": probe.body,
        "state": probe.state.value,
        "planned_at": probe.planned_at,
        "sent_at": probe.sent_at,
        "failure_permanent": probe.failure_permanent,
        "failure_detail": probe.failure_detail,
        "updated_at": probe.planned_at,
    }


def _probe_from_row(v: Sequence[Any]) -> Probe:
    """A Probe from the first len(PROBE_COLUMNS) values of a row."""
    return Probe(
        v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8],
        _PROBE_STATES[v[9]], v[10], v[11], v[12], v[13],
    )  # fmt: skip


def _record_from_row(v: Sequence[Any]) -> ProbeRecord:
    """From a row of RECORD_COLUMNS followed by the outstanding flag."""
    return ProbeRecord(v[0], v[1], v[2], v[3], _PROBE_STATES[v[4]], v[5], v[6], bool(v[7]))


def _candidate_from_row(v: Sequence[Any]) -> ProbeCandidate:
    """From a row of PROBE_COLUMNS."""
    planned_at, sent_at = v[10], v[11]
    return ProbeCandidate(
        token=v[0],
        target_id=v[1],
        target_address=v[2],
        reply_address=v[5],
        message_id=v[6],
        subject=v[7],
        body=v[8],
        # An UNCERTAIN probe may have gone out at any time after it was planned.
        sent_at=sent_at if sent_at is not None else planned_at,
    )


def _message_values(message: StoredMessage, stored_at: datetime) -> dict[str, Any]:
    return {
        "message_key": message.message_key,
        "message_id": message.message_id,
        "folder": message.folder,
        "uidvalidity": message.uidvalidity,
        "uid": message.uid,
        "received_at": message.received_at,
        "from_address": message.from_address,
        "subject": message.subject,
        "size": message.size,
        "kind": message.kind.value,
        "permanent": message.permanent,
        "ticket_number": message.ticket_number,
        "has_new_text": message.has_new_text,
        "probe_token": message.probe_token,
        "match_method": message.match_method.value,
        "defects": list(message.defects),
        "raw": message.raw,
        "stored_at": stored_at,
    }


def _message_from_row(v: Sequence[Any]) -> StoredMessage:
    """From a row of MESSAGE_COLUMNS."""
    return StoredMessage(
        v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8],
        MessageKind(v[9]), v[10], v[11], v[12], v[13],
        MatchMethod(v[14]), tuple(v[15]), v[16],
    )  # fmt: skip


def _outcome_values(outcome: ProbeOutcome, computed_at: datetime) -> dict[str, Any]:
    return {
        "token": outcome.token,
        "state": outcome.state.value,
        "clock_start": outcome.clock_start,
        "first_ack_at": outcome.first_ack_at,
        "ack_ticket_number": outcome.ack_ticket_number,
        "ack_wall_seconds": outcome.ack_wall_seconds,
        "ack_working_seconds": outcome.ack_working_seconds,
        "first_human_at": outcome.first_human_at,
        "wall_seconds": outcome.wall_seconds,
        "working_seconds": outcome.working_seconds,
        "within_one_working_day": outcome.within_one_working_day,
        "within_two_working_days": outcome.within_two_working_days,
        "bounced": outcome.bounced,
        "bounce_permanent": outcome.bounce_permanent,
        "message_keys": list(outcome.message_keys),
        "computed_at": computed_at,
    }


def _outcome_from_row(v: Sequence[Any]) -> ProbeOutcome:
    """From the first len(OUTCOME_COLUMNS) values of a row."""
    return ProbeOutcome(
        v[0], _OUTCOME_STATES[v[1]], v[2], v[3], v[4], v[5], v[6], v[7],
        v[8], v[9], v[10], v[11], v[12], v[13], tuple(v[14]),
    )  # fmt: skip


def _status(row: Row[Any]) -> TargetStatus:
    state = row.last_outcome
    return TargetStatus(
        target_id=row.id,
        name=row.name,
        address=row.address,
        paused=row.paused,
        probes_sent=row.probes_sent,
        last_sent_at=row.last_sent_at,
        last_outcome=OutcomeState(state) if state is not None else None,
        last_reply_at=row.last_reply_at,
        address_failing=row.address_failing,
        address_failing_reason=row.address_failing_reason,
        address_failing_since=row.address_failing_since,
    )


# -- report queries ----------------------------------------------------------------------------

_REPORTED_PROBE_STATES = (ProbeState.SENT, ProbeState.FAILED, ProbeState.UNCERTAIN)
_OUTCOME_STATES = {state.value: state for state in OutcomeState}


def _sent_between(dialect: str, since: datetime, until: datetime) -> ColumnElement[bool]:
    """Sent in [since, until), or for a probe never sent, planned in it."""
    if dialect == "sqlite":
        # A scan: driven by the sent_at index SQLite visits a million probes in random order
        # (28 s instead of 7 s).
        sent = func.coalesce(probes.c.sent_at, probes.c.planned_at)
        return and_(sent >= since, sent < until)
    # PostgreSQL cannot estimate a coalesce and would plan a nested loop for a million rows.
    in_period = and_(probes.c.sent_at >= since, probes.c.sent_at < until)
    never_sent = and_(
        probes.c.sent_at.is_(None), probes.c.planned_at >= since, probes.c.planned_at < until
    )
    return or_(in_period, never_sent)


def _report_facts_query(
    dialect: str, since: datetime, until: datetime, month_ends: Sequence[datetime]
) -> Any:
    sent = func.coalesce(probes.c.sent_at, probes.c.planned_at)
    state = outcomes.c.state
    month = (
        case(*[(sent < end, index) for index, end in enumerate(month_ends)], else_=-1)
        if month_ends
        else literal(-1)
    )
    # Only what the figures need per state: the send time of probes still open, the clock
    # start of measurable unanswered ones. Everything else stays NULL (cheap to read).
    open_sent_at = case((state == OutcomeState.UNANSWERED_SO_FAR.value, probes.c.sent_at))
    waiting = and_(
        state != OutcomeState.NOT_MEASURABLE.value,
        or_(state != OutcomeState.ANSWERED.value, outcomes.c.working_seconds.is_(None)),
    )
    return (
        select(
            probes.c.token,
            probes.c.target_id,
            month,
            state,
            type_coerce(open_sent_at, UtcDateTime()),
            type_coerce(case((waiting, outcomes.c.clock_start)), UtcDateTime()),
            outcomes.c.working_seconds,
            outcomes.c.within_one_working_day,
            outcomes.c.within_two_working_days,
            type_coerce(outcomes.c.first_ack_at.is_not(None), Boolean()),
            outcomes.c.bounced,
        )
        .join(outcomes, outcomes.c.token == probes.c.token)
        .where(_sent_between(dialect, since, until))
    )


def _fact_from_row(row: Sequence[Any]) -> OutcomeFact:
    return OutcomeFact(
        row[0],
        row[1],
        row[2],
        _OUTCOME_STATES[row[3]],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        bool(row[9]),
        row[10],
    )


def _settled_clause() -> ColumnElement[bool]:
    state = outcomes.c.state
    return or_(
        and_(state == OutcomeState.ANSWERED.value, outcomes.c.working_seconds.is_not(None)),
        state.in_([OutcomeState.UNANSWERED_FINAL.value, OutcomeState.NOT_MEASURABLE.value]),
    )


def _settled_counts_query(since: datetime, until: datetime, month_ends: Sequence[datetime]) -> Any:
    state, within_one = outcomes.c.state, outcomes.c.within_one_working_day
    measurable = state != OutcomeState.NOT_MEASURABLE.value
    sent = func.coalesce(probes.c.sent_at, probes.c.planned_at)

    def counted(condition: ColumnElement[bool]) -> Any:
        return func.count().filter(condition)

    months = []
    for start, end in zip([since, *month_ends[:-1]], month_ends, strict=True):
        in_month = and_(sent >= start, sent < end)
        months += [
            counted(and_(measurable, in_month)),
            counted(and_(within_one.is_(True), in_month)),
        ]
    return (
        select(
            probes.c.target_id,
            func.count(),
            counted(outcomes.c.bounced.is_(True)),
            counted(measurable),
            counted(and_(measurable, outcomes.c.first_ack_at.is_not(None))),
            counted(state == OutcomeState.ANSWERED.value),
            counted(and_(measurable, within_one.is_(True))),
            counted(and_(measurable, outcomes.c.within_two_working_days.is_(True))),
            *months,
            func.array_agg(outcomes.c.working_seconds).filter(state == OutcomeState.ANSWERED.value),
            func.array_agg(outcomes.c.clock_start).filter(
                state == OutcomeState.UNANSWERED_FINAL.value
            ),
        )
        .join(outcomes, outcomes.c.token == probes.c.token)
        .where(_sent_between("postgresql", since, until), _settled_clause())
        .group_by(probes.c.target_id)
    )


def _settled_from_row(row: Sequence[Any], months: int) -> SettledTargetCounts:
    by_month = row[8 : 8 + 2 * months]
    return SettledTargetCounts(
        target_id=row[0],
        probes=row[1],
        bounces=row[2],
        measurable=row[3],
        acknowledged=row[4],
        answered=row[5],
        within_one=row[6],
        within_two=row[7],
        month_decided=list(by_month[0::2]),
        month_within=list(by_month[1::2]),
        working_seconds=row[8 + 2 * months] or (),
        clock_starts=row[9 + 2 * months] or (),
    )


def _counted_settled(facts: Sequence[OutcomeFact], months: int) -> list[SettledTargetCounts]:
    """The per-target counts _settled_counts_query gives, from rows (for SQLite)."""
    by_target: dict[str, list[OutcomeFact]] = {}
    for fact in facts:
        by_target.setdefault(fact.target_id, []).append(fact)
    return [_counts_of(target, found, months) for target, found in by_target.items()]


def _counts_of(target: str, facts: Sequence[OutcomeFact], months: int) -> SettledTargetCounts:
    measurable = [f for f in facts if f.state is not OutcomeState.NOT_MEASURABLE]
    decided, within = [0] * months, [0] * months
    for fact in measurable:
        if 0 <= fact.month < months:
            decided[fact.month] += 1
            within[fact.month] += fact.within_one is True
    return SettledTargetCounts(
        target_id=target,
        probes=len(facts),
        bounces=sum(f.bounced is True for f in facts),
        measurable=len(measurable),
        acknowledged=sum(f.acknowledged for f in measurable),
        answered=sum(f.state is OutcomeState.ANSWERED for f in facts),
        within_one=sum(f.within_one is True for f in measurable),
        within_two=sum(f.within_two is True for f in measurable),
        month_decided=decided,
        month_within=within,
        working_seconds=[
            f.working_seconds
            for f in facts
            if f.state is OutcomeState.ANSWERED and f.working_seconds is not None
        ],
        clock_starts=[f.clock_start for f in facts if f.state is OutcomeState.UNANSWERED_FINAL],
    )

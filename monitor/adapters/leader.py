"""Leader election: of several svarstid instances on one database, exactly one sends and reads.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a dedicated
connection that stays open. The server drops the lock the moment that session ends: at once
when the leader process dies (the kernel closes its socket), and within the TCP keepalive /
``tcp_user_timeout`` bound set below when its host vanishes from the network. Advisory lock
keys are per database, so one constant key is enough.

SQLite: one host only; an exclusive ``flock`` on a file beside the database. The kernel drops
it when the holder dies, so a second instance on the same host stands by and takes over too.
An in-memory database is always its own leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from email.message import EmailMessage
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from monitor.adapters.smtp import SendResult, SendStatus, SmtpSender

log = logging.getLogger(__name__)

# "svarstid" in ASCII: a fixed key every instance of one database agrees on.
LOCK_KEY = 0x7376617273746964
NOT_LEADER_DETAIL = "not sent: this instance is not the leader"
_PG_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
_HELD_QUERY = """
SELECT EXISTS (
  SELECT 1 FROM pg_locks
  WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() AND objsubid = 1
    AND ((classid::bigint << 32) | objid::bigint) = $1
)
"""


class LeaderLock(Protocol):
    """A lock that at most one instance holds; acquiring never blocks."""

    description: str

    async def try_acquire(self) -> bool: ...

    async def holds(self) -> bool: ...

    async def release(self) -> None: ...


class AlwaysLeader:
    """Nothing to share (an in-memory database): this instance always leads."""

    description = "always leader (in-memory database)"

    async def try_acquire(self) -> bool:
        return True

    async def holds(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class FileLeaderLock:
    """An exclusive flock(2) on ``path``; held as long as the file stays open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"file lock {path}"
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for the operator: who leads
        self._fd = fd
        return True

    async def holds(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the flock


class PostgresAdvisoryLock:
    """pg_try_advisory_lock on a dedicated asyncpg connection (not the SQLAlchemy pool).

    ``session_timeout`` bounds how long a vanished leader host keeps the lock: the server
    probes an idle lock connection with TCP keepalives (idle T/3, then 2 probes T/6 apart)
    and gives up on unacknowledged data after T (tcp_user_timeout). The leader's own check
    query times out after T/3, so it steps down before the server could hand the lock on.
    """

    def __init__(self, url: str, *, key: int = LOCK_KEY, session_timeout: float = 15.0) -> None:
        self._dsn = asyncpg_dsn(url)
        self._key = key
        self._timeout = session_timeout
        self._connection: Any = None
        # One asyncpg connection runs one query at a time; the main loop's check and the send
        # gate's check may come at once.
        self._busy = asyncio.Lock()
        self.description = f"PostgreSQL advisory lock {key} on {_masked(url)}"

    async def try_acquire(self) -> bool:
        async with self._busy:
            return await self._try_acquire()

    async def holds(self) -> bool:
        """Ask on the lock's own session; any failure means the lock may be gone."""
        async with self._busy:
            return await self._holds()

    async def release(self) -> None:
        async with self._busy:
            await self._release()

    async def _try_acquire(self) -> bool:
        try:
            connection = await self._connected()
            got = await connection.fetchval(
                "SELECT pg_try_advisory_lock($1)", self._key, timeout=self._check_timeout
            )
        except _PG_ERRORS as error:
            log.warning("leader lock: database unreachable: %s", type(error).__name__)
            await self._drop()
            return False
        return bool(got)

    async def _holds(self) -> bool:
        connection = self._connection
        if connection is None or connection.is_closed():
            return False
        try:
            held = await connection.fetchval(_HELD_QUERY, self._key, timeout=self._check_timeout)
        except _PG_ERRORS as error:
            log.warning("leader lock check failed: %s", type(error).__name__)
            await self._drop()
            return False
        return bool(held)

    async def _release(self) -> None:
        connection = self._connection
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(*_PG_ERRORS):
                await connection.fetchval(
                    "SELECT pg_advisory_unlock($1)", self._key, timeout=self._check_timeout
                )
        await self._drop()

    @property
    def _check_timeout(self) -> float:
        return max(1.0, self._timeout / 3)

    async def _connected(self) -> Any:
        if self._connection is not None and not self._connection.is_closed():
            return self._connection
        self._connection = await asyncpg.connect(
            self._dsn,
            timeout=self._timeout,
            server_settings=session_settings(self._timeout),
        )
        return self._connection

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(*_PG_ERRORS):
                await asyncio.wait_for(connection.close(), self._check_timeout)
            connection.terminate()


def session_settings(session_timeout: float) -> dict[str, str]:
    """Server-side settings of the lock session: how soon the server notices a dead leader."""
    seconds = max(3, round(session_timeout))
    return {
        "application_name": "svarstid-leader",
        "tcp_keepalives_idle": str(max(1, seconds // 3)),
        "tcp_keepalives_interval": str(max(1, seconds // 6)),
        "tcp_keepalives_count": "2",
        "tcp_user_timeout": str(seconds * 1000),
        # The lock session never opens a transaction; should a bug ever leave one open, the
        # server ends the session (and so the lock) instead of keeping it forever.
        "idle_in_transaction_session_timeout": str(seconds * 1000),
    }


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL ``postgresql+asyncpg://…`` as a libpq-style DSN for asyncpg."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def _masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def lock_for(database_url: str, *, session_timeout: float = 15.0) -> LeaderLock:
    """The leader lock that fits the database: advisory lock, file lock, or none needed."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return PostgresAdvisoryLock(database_url, session_timeout=session_timeout)
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return AlwaysLeader()
    return FileLeaderLock(Path(database).with_name(Path(database).name + ".leader.lock"))


class Role(StrEnum):
    UNMANAGED = "unmanaged"  # no daemon runs (a CLI command): nothing to guard
    LEADER = "leader"
    STANDBY = "standby"


class Leadership:
    """What this instance knows about leading; the daemon drives it, the send gate asks it."""

    def __init__(self, lock: LeaderLock) -> None:
        self.lock = lock
        self.role = Role.UNMANAGED
        self.on_lost: Callable[[], None] = lambda: None

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    async def acquire(self) -> bool:
        """Try once to become the leader; the instance stands by when it cannot."""
        self.role = Role.LEADER if await self.lock.try_acquire() else Role.STANDBY
        return self.is_leader

    async def confirm(self) -> bool:
        """True while still the leader; on a lost lock step down at once and say so."""
        if self.role is not Role.LEADER:
            return False
        if await self.lock.holds():
            return True
        self.role = Role.STANDBY
        log.warning("leadership lost (%s)", self.lock.description)
        self.on_lost()
        return False

    async def permits_send(self) -> bool:
        """Checked right before each SMTP send: only the leader sends (or no daemon at all)."""
        return self.role is Role.UNMANAGED or await self.confirm()

    async def resign(self) -> None:
        if self.role is not Role.UNMANAGED:
            self.role = Role.STANDBY
        await self.lock.release()


class GatedSender(SmtpSender):
    """An SmtpSender that asks ``gate`` right before each send and refuses when it says no.

    The probe is already recorded as SENDING when the gate is asked, so a leader that lost
    its lock after the check and died leaves a SENDING probe that the next leader marks
    UNCERTAIN (never resent); a refusal here is a plain FAILED (nothing left).
    """

    gate: Callable[[], Awaitable[bool]] | None = None

    async def send(
        self, message: EmailMessage, *, sender: str, recipients: Sequence[str]
    ) -> SendResult:
        if self.gate is not None and not await self.gate():
            return SendResult(SendStatus.FAILED, permanent=False, detail=NOT_LEADER_DETAIL)
        return await super().send(message, sender=sender, recipients=recipients)

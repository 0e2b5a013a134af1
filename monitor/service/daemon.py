"""The long-running monitor: wakes the use cases up and shuts down cleanly.

APScheduler only wakes the daemon; every decision is made by the services.

Several instances may share one PostgreSQL database: the one holding the leader lock sends
and reads the mailbox, the others serve HTTP (not ready, ``svarstid_leader`` 0) and try the
lock every ``leader_poll_seconds``. A standby that gets the lock runs crash recovery (probes
caught SENDING become UNCERTAIN, never resent) and starts sending and reading; a leader that
finds its lock gone stops both at once and stands by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.adapters.http import HttpServer, Readiness
from monitor.adapters.imap import MailboxWatcher
from monitor.adapters.leader import AlwaysLeader, Leadership
from monitor.adapters.metrics import Metrics
from monitor.adapters.sql import Store
from monitor.adapters.systemd import Notifier
from monitor.logs import event
from monitor.service.context import Clock, World
from monitor.service.ingest import InboxService
from monitor.service.outcomes import OutcomeService
from monitor.service.probing import HISTORY_SPAN, ProbeService

log = logging.getLogger(__name__)

SHUTDOWN_SEND_GRACE = 30.0  # seconds an in-flight SMTP send may take to finish
HEARTBEAT_SECONDS = 30
MAINTENANCE_SECONDS = 300
READY_IMAP_WAIT = 60.0  # READY=1 waits this long for the IMAP login (TimeoutStartSec is 120)


def _always_leader() -> Leadership:
    return Leadership(AlwaysLeader())


@dataclass
class Daemon:
    store: Store
    world: World
    metrics: Metrics
    probing: ProbeService
    inbox: InboxService
    outcomes: OutcomeService
    watcher: MailboxWatcher
    http: HttpServer
    clock: Clock
    tick_seconds: float
    body_retention: timedelta | None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    on_ready: Callable[[str], None] = lambda _url: None
    leadership: Leadership = field(default_factory=_always_leader)
    notifier: Notifier = field(default_factory=Notifier)
    # A stopped watcher stays stopped; a new leadership term needs a fresh one.
    new_watcher: Callable[[], MailboxWatcher] | None = None
    imap_connected: Callable[[], bool] = lambda: True
    leader_poll_seconds: float = 5.0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _watcher_task: asyncio.Task[None] | None = None
    _watcher_spent: bool = False
    _scheduler: AsyncIOScheduler | None = None
    _lost: asyncio.Event = field(default_factory=asyncio.Event)
    _running_jobs: set[asyncio.Task[object]] = field(default_factory=set)

    def stop(self) -> None:
        self._stop.set()

    @property
    def leading(self) -> bool:
        return self.leadership.is_leader

    async def start(self) -> str:
        """Bind HTTP, then lead (migrate, recover, watch) or stand by; returns the HTTP URL."""
        url = await self.http.start()
        self.leadership.on_lost = self._lost.set
        try:
            if await self.leadership.acquire():
                await self._lead()
            else:
                self._stand_by()
        except BaseException:
            await self.leadership.resign()
            await self.http.stop()
            raise
        role = self.leadership.role.value
        event(
            log,
            logging.INFO,
            "svarstid started",
            url=url,
            targets=len(self.world.targets),
            role=role,
        )
        self.on_ready(url)
        return url

    async def _lead(self) -> None:
        """Begin a leadership term: the database is ours to change and the mailbox to read."""
        self.run_id = uuid.uuid4().hex  # a new term is a new run: downtime gaps stay visible
        self._lost.clear()
        await self.store.upgrade()
        await self.store.sync_targets(self.world.targets, self.clock())
        await self.store.heartbeat(self.run_id, self.clock())
        await self.probing.recover()
        await self._publish_start_state()
        self.probing.on_sent = lambda _probe: self.inbox.candidates.invalidate()
        self._watcher_task = asyncio.create_task(self._fresh_watcher().run(), name="imap-watcher")
        await self.outcomes.refresh_open()
        await self.outcomes.publish_gauges()
        self.metrics.set_leader(True)
        event(log, logging.INFO, "leading", lock=self.leadership.lock.description)

    def _stand_by(self) -> None:
        self.metrics.set_leader(False)
        event(log, logging.INFO, "standing by", lock=self.leadership.lock.description)

    def _fresh_watcher(self) -> MailboxWatcher:
        if self._watcher_spent and self.new_watcher is not None:
            self.watcher = self.new_watcher()
            self._watcher_spent = False
        return self.watcher

    async def _publish_start_state(self) -> None:
        for target in self.world.targets:
            self.metrics.track_target(target.id)
        await self._publish_failing()
        last_sent = await self._last_sent_at()
        self.metrics.set_last_probe_sent(last_sent)
        self.metrics.smtp_succeeded(last_sent)

    async def _last_sent_at(self) -> datetime:
        """The newest send in the history, or now: a restart must not look like a silence."""
        now = self.clock()
        records = await self.store.probe_records(now - HISTORY_SPAN)
        sent = [record.sent_at for record in records if record.sent_at is not None]
        return max(sent, default=now)

    async def _publish_failing(self) -> None:
        failing = await self.store.failing_targets()
        for target in self.world.targets:
            self.metrics.set_address_failing(target.id, target.id in failing)

    async def run(self) -> None:
        await self.start()
        try:
            if self.leading:
                self._start_scheduler()
                await self._wait_for_imap()
            self.notifier.ready(self._status())
            await self._supervise()
        finally:
            self.notifier.stopping()
            # Before the scheduler goes: APScheduler's shutdown cancels the jobs under way,
            # which cut a send between DATA and its reply (a needless UNCERTAIN probe).
            self.probing.stop_sending()
            await self._wait_for_send()
            self._stop_scheduler()
            await self.shutdown()

    async def _wait_for_imap(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_IMAP_WAIT
        while not self.imap_connected() and loop.time() < deadline and not self._stop.is_set():
            await asyncio.sleep(0.05)

    def _status(self) -> str:
        if not self.leading:
            return "standby: another instance leads; trying the lock"
        imap = "IMAP connected" if self.imap_connected() else "IMAP not connected, retrying"
        return f"leader: sending and reading mail ({imap})"

    async def _supervise(self) -> None:
        """The main loop: watchdog pings, lock checks, taking over and stepping down."""
        interval = self.leader_poll_seconds
        if self.notifier.watchdog_interval is not None:
            interval = min(interval, self.notifier.watchdog_interval)
        while not self._stop.is_set():
            self.notifier.watchdog()
            if self.leading:
                await self.leadership.confirm()
            if self._lost.is_set():
                await self._step_down()
            elif not self.leading:
                await self._try_take_over()
            await self._sleep_unless_stopped(interval)

    async def _try_take_over(self) -> None:
        if not await self.leadership.acquire():
            return
        try:
            await self._lead()
        except Exception:
            log.exception("taking over failed; standing by again")
            await self._end_term()
            return
        self._start_scheduler()
        self.notifier.status(self._status())

    async def _step_down(self) -> None:
        event(log, logging.WARNING, "leadership lost: stopped sending and reading; standing by")
        await self._end_term()

    async def _end_term(self) -> None:
        self._stop_scheduler()
        self.metrics.set_leader(False)
        await self._wait_for_send()
        await self._stop_watcher()
        await self.leadership.resign()
        self._lost.clear()
        self.notifier.status(self._status())

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({stop, lost}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            lost.cancel()

    def _start_scheduler(self) -> None:
        scheduler = AsyncIOScheduler()
        # APScheduler runs on the wall clock whatever self.clock says; a first run time taken
        # from an injected (test) clock months away makes it walk every missed run.
        soon = datetime.now(UTC) + timedelta(seconds=1)
        jobs: list[tuple[Callable[[], Awaitable[object]], float]] = [
            (self._tick, self.tick_seconds),
            (self._heartbeat, HEARTBEAT_SECONDS),
            (self._maintenance, MAINTENANCE_SECONDS),
        ]
        for job, seconds in jobs:
            # APScheduler 3 treats next_run_time=None as "paused": give every job a first run.
            scheduler.add_job(
                _guarded(job, self._running_jobs),
                "interval",
                seconds=seconds,
                max_instances=1,
                coalesce=True,
                next_run_time=soon,
            )
        scheduler.start()
        self._scheduler = scheduler

    def _stop_scheduler(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)

    async def _tick(self) -> None:
        # A cheap check per round; the send gate checks again right before each SMTP send.
        if await self.leadership.confirm():
            await self.probing.tick()

    async def _heartbeat(self) -> None:
        await self.store.heartbeat(self.run_id, self.clock())

    async def _maintenance(self) -> None:
        await self.outcomes.refresh_open()
        await self.outcomes.publish_gauges()
        self.metrics.set_unmatched(await self.store.count_unmatched())
        if self.body_retention is not None:
            await self.store.purge_bodies(self.clock() - self.body_retention)

    async def shutdown(self) -> None:
        """Stop scheduling, let an in-flight send finish (bounded), close IMAP, close HTTP,
        and only then give the lock to a standby."""
        was_leading = self.leading
        self.probing.stop_sending()  # else a round of due sends runs on for up to the grace
        await self._wait_for_send()
        await self._stop_watcher()
        await self.http.stop()
        if was_leading:
            await self.store.heartbeat(self.run_id, self.clock())
        await self.leadership.resign()
        await self.store.close()
        event(log, logging.INFO, "svarstid stopped")

    async def _stop_watcher(self) -> None:
        self._watcher_spent = True
        await self.watcher.stop()
        task, self._watcher_task = self._watcher_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _wait_for_send(self) -> None:
        """Let a send and the scheduled jobs under way finish (bounded) before going on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_SEND_GRACE
        while self.probing.sending and loop.time() < deadline:
            await asyncio.sleep(0.05)
        jobs = set(self._running_jobs)
        if jobs:
            await asyncio.wait(jobs, timeout=max(0.0, deadline - loop.time()))


def with_leadership(
    readiness: Callable[[], Awaitable[Readiness]], leadership: Leadership
) -> Callable[[], Awaitable[Readiness]]:
    """Readiness plus a "leader" check: a standby is alive (/-/healthy) but not ready."""

    async def check() -> Readiness:
        base = await readiness()
        checks = {**base.checks, "leader": leadership.is_leader}
        return Readiness(ready=base.ready and leadership.is_leader, checks=checks)

    return check


def _guarded(
    job: Callable[[], Awaitable[object]], running: set[asyncio.Task[object]]
) -> Callable[[], Awaitable[None]]:
    """A failing job is logged and retried at its next run; it never stops the daemon.

    Running jobs are listed in ``running`` so that a shutdown can wait for them: a job cut
    off by a closed database would log its failure after the daemon said it stopped.
    """

    async def run() -> None:
        task = asyncio.current_task()
        if task is not None:
            running.add(task)
        try:
            await job()
        except Exception:
            log.exception("scheduled job failed", extra={"fields": {"job": job.__qualname__}})
        finally:
            if task is not None:
                running.discard(task)

    return run

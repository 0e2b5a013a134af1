"""The long-running monitor: wakes the use cases up and shuts down cleanly.

APScheduler only wakes the daemon; every decision is made by the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.adapters.http import HttpServer
from monitor.adapters.imap import MailboxWatcher
from monitor.adapters.metrics import Metrics
from monitor.adapters.sql import Store
from monitor.logs import event
from monitor.service.context import Clock, World
from monitor.service.ingest import InboxService
from monitor.service.outcomes import OutcomeService
from monitor.service.probing import ProbeService

log = logging.getLogger(__name__)

SHUTDOWN_SEND_GRACE = 30.0  # seconds an in-flight SMTP send may take to finish
HEARTBEAT_SECONDS = 30
MAINTENANCE_SECONDS = 300


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
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _watcher_task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        self._stop.set()

    async def start(self) -> str:
        """Migrate, recover, bind HTTP and begin watching; returns the HTTP base URL."""
        await self.store.upgrade()
        await self.store.sync_targets(self.world.targets, self.clock())
        await self.store.heartbeat(self.run_id, self.clock())
        await self.probing.recover()
        await self._publish_failing()
        self.probing.on_sent = lambda _probe: self.inbox.candidates.invalidate()
        url = await self.http.start()
        self._watcher_task = asyncio.create_task(self.watcher.run(), name="imap-watcher")
        await self.outcomes.refresh_open()
        await self.outcomes.publish_gauges()
        event(log, logging.INFO, "svarstid started", url=url, targets=len(self.world.targets))
        self.on_ready(url)
        return url

    async def _publish_failing(self) -> None:
        failing = await self.store.failing_targets()
        for target in self.world.targets:
            self.metrics.set_address_failing(target.id, target.id in failing)

    async def run(self) -> None:
        await self.start()
        scheduler = self._scheduler()
        scheduler.start()
        try:
            await self._stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            await self.shutdown()

    def _scheduler(self) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler()
        soon = self.clock() + timedelta(seconds=1)
        jobs: list[tuple[Callable[[], Awaitable[object]], float]] = [
            (self.probing.tick, self.tick_seconds),
            (self._heartbeat, HEARTBEAT_SECONDS),
            (self._maintenance, MAINTENANCE_SECONDS),
        ]
        for job, seconds in jobs:
            # APScheduler 3 treats next_run_time=None as "paused": give every job a first run.
            scheduler.add_job(
                _guarded(job),
                "interval",
                seconds=seconds,
                max_instances=1,
                coalesce=True,
                next_run_time=soon,
            )
        return scheduler

    async def _heartbeat(self) -> None:
        await self.store.heartbeat(self.run_id, self.clock())

    async def _maintenance(self) -> None:
        await self.outcomes.refresh_open()
        await self.outcomes.publish_gauges()
        self.metrics.set_unmatched(len(await self.store.unmatched_messages(limit=10_000)))
        if self.body_retention is not None:
            await self.store.purge_bodies(self.clock() - self.body_retention)

    async def shutdown(self) -> None:
        """Stop scheduling, let an in-flight send finish (bounded), close IMAP, close HTTP."""
        await self._wait_for_send()
        await self.watcher.stop()
        if self._watcher_task is not None:
            self._watcher_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher_task
        await self.http.stop()
        await self.store.heartbeat(self.run_id, self.clock())
        await self.store.close()
        event(log, logging.INFO, "svarstid stopped")

    async def _wait_for_send(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_SEND_GRACE
        while self.probing.sending and loop.time() < deadline:
            await asyncio.sleep(0.05)


def _guarded(job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    """A failing job is logged and retried at its next run; it never stops the daemon."""

    async def run() -> None:
        try:
            await job()
        except Exception:
            log.exception("scheduled job failed", extra={"fields": {"job": job.__qualname__}})

    return run

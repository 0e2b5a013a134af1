"""Months of demo history played through the real pipeline in virtual time, then live.

The replay steps a virtual clock (the one handed to ``build``) through the past days. At each
step the daemon's own ProbeService.tick() decides and sends probes over real SMTP to the
in-process server; each simulated municipality computes when it answers (people in office
hours on Swedish working days) and its replies are APPENDed to the in-process IMAP mailbox
with that true INTERNALDATE once the clock passes it; the daemon's real MailboxWatcher
fetches them and the real classifier, matcher, store and outcome computation take over.
Once a virtual day the maintenance the daemon would run (refresh of open outcomes) runs.

Then the clock goes live (real time) and ``LiveResponders``/``LiveSender`` keep the demo
moving while the user watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitor.composition import Application
from monitor.demo.behaviours import Behaviour, OfficePace, Pace, Staff
from monitor.demo.mailservers import InProcessImapServer, ReceivedSmtp, RecordingSmtpServer
from monitor.demo.replies import read_probe
from monitor.domain.calendar import OfficeCalendar
from monitor.domain.model import Probe
from monitor.domain.worktime import is_working_day, working_days_deadline

log = logging.getLogger(__name__)

HISTORY_STEP = timedelta(hours=2)


class DemoClock:
    """Virtual time for the replay, real time once ``go_live`` was called."""

    def __init__(self, start: datetime) -> None:
        self.virtual = start
        self.live = False

    def __call__(self) -> datetime:
        return datetime.now(UTC) if self.live else self.virtual

    def go_live(self) -> None:
        self.live = True


@dataclass(frozen=True)
class Simulated:
    """One simulated municipality: its address, who writes back, and how it behaves."""

    target_id: str
    address: str
    staff: Staff
    behaviour: Behaviour


@dataclass(order=True)
class _Pending:
    at: datetime
    sequence: int
    raw: bytes = field(compare=False)


@dataclass(frozen=True)
class ReplaySummary:
    days: int
    probes_sent: int
    replies_delivered: int
    messages_ingested: int


class Reactor:
    """Turns probes accepted by the demo SMTP server into timed replies."""

    def __init__(self, world: Sequence[Simulated], seed: int) -> None:
        self._by_address = {m.address.lower(): m for m in world}
        self._rngs = {m.target_id: random.Random(f"{seed}:{m.target_id}") for m in world}

    def replies(self, received: ReceivedSmtp, pace: Pace) -> list[tuple[datetime, bytes]]:
        out: list[tuple[datetime, bytes]] = []
        for recipient in received.rcpt_tos:
            municipality = self._by_address.get(recipient.lower())
            if municipality is None:
                continue
            probe = read_probe(received.raw)
            rng = self._rngs[municipality.target_id]
            reactions = municipality.behaviour.react(
                municipality.staff, received.received_at, rng, pace
            )
            out += [(r.at, r.write(probe, received.raw, r.at)) for r in reactions]
        return out


class HistoryReplay:
    """Steps the virtual clock from ``start`` to ``end`` through the real pipeline."""

    def __init__(
        self,
        app: Application,
        smtp: RecordingSmtpServer,
        imap: InProcessImapServer,
        mailbox_user: str,
        reactor: Reactor,
        clock: DemoClock,
    ) -> None:
        self._app = app
        self._smtp = smtp
        self._imap = imap
        self._user = mailbox_user
        self._reactor = reactor
        self._clock = clock
        self._pending: list[_Pending] = []
        self._deadlines: list[tuple[datetime, str]] = []
        self._rng = random.Random(0)
        self._sequence = itertools.count()
        self._seen_smtp = len(smtp.messages)
        self._sent = 0
        self._delivered = 0
        self._ingested = 0

    async def run(self, start: datetime, end: datetime) -> ReplaySummary:
        app = self._app
        self._clock.virtual = start
        await app.store.upgrade()
        await app.store.sync_targets(app.world.targets, start)
        # One monitor run spans the replay and the live daemon: no downtime gap in between.
        await app.store.heartbeat(app.daemon.run_id, start)
        app.probing.on_sent = lambda _probe: app.inbox.candidates.invalidate()
        moment = start
        while moment < end:
            await self._step(moment)
            moment += HISTORY_STEP
        self._clock.virtual = end
        await self._deliver_until(end)
        await app.outcomes.refresh_open()
        await app.store.heartbeat(app.daemon.run_id, end)
        return ReplaySummary((end - start).days, self._sent, self._delivered, self._ingested)

    async def _step(self, step_start: datetime) -> None:
        # Wake-ups fall anywhere in the step, so send times do not all read hh:00.
        moment = step_start + self._rng.random() * HISTORY_STEP
        self._clock.virtual = moment
        await self._deliver_until(moment)
        await self._settle_overdue(moment)
        if self._may_send(moment):
            for probe in await self._app.probing.tick():
                self._watch_deadline(probe)
            self._react_to_new_probes()

    def _watch_deadline(self, probe: Probe) -> None:
        """The daemon's maintenance turns a probe unanswered for good after N working days;
        the replay runs that refresh for exactly the probes whose deadline passed."""
        if probe.sent_at is None:
            return
        days = self._app.world.outcome_rules.final_after_working_days
        calendar = self._app.world.calendar_for_id(probe.target_id)
        deadline = working_days_deadline(calendar, probe.sent_at, days)
        heapq.heappush(self._deadlines, (deadline, probe.token))

    async def _settle_overdue(self, moment: datetime) -> None:
        overdue: list[str] = []
        while self._deadlines and self._deadlines[0][0] <= moment:
            overdue.append(heapq.heappop(self._deadlines)[1])
        if not overdue:
            return
        still_open = set(await self._app.store.open_probe_tokens())
        for token in overdue:
            if token in still_open:
                await self._app.outcomes.recompute(token)

    def _may_send(self, moment: datetime) -> bool:
        """Skip ticks that cannot send (nights, weekends, holidays); plan_sends still decides."""
        calendar = self._app.world.default_calendar
        local = moment.astimezone(calendar.timezone)
        opening, closing = self._app.world.politeness.send_window
        return is_working_day(calendar, local.date()) and opening <= local.time() < closing

    def _react_to_new_probes(self) -> None:
        new = self._smtp.messages[self._seen_smtp :]
        self._seen_smtp = len(self._smtp.messages)
        for received in new:
            self._sent += 1
            pace = OfficePace(self._calendar_of(received))
            for at, raw in self._reactor.replies(received, pace):
                heapq.heappush(self._pending, _Pending(at, next(self._sequence), raw))

    def _calendar_of(self, received: ReceivedSmtp) -> OfficeCalendar:
        world = self._app.world
        by_address = {t.address.lower(): t for t in world.targets}
        target = next(
            (by_address[r.lower()] for r in received.rcpt_tos if r.lower() in by_address), None
        )
        return world.default_calendar if target is None else world.calendar_for(target)

    async def _deliver_until(self, moment: datetime) -> None:
        delivered = 0
        while self._pending and self._pending[0].at <= moment:
            reply = heapq.heappop(self._pending)
            await self._imap.append(self._user, reply.raw, internaldate=reply.at)
            delivered += 1
        if delivered:
            self._delivered += delivered
            watcher = self._app.daemon.watcher
            # pymap refreshes a selected mailbox's view only between commands, so the first
            # search after an APPEND may not see it yet; the second always does.
            self._ingested += await watcher.fetch_new_once() + await watcher.fetch_new_once()


class LiveResponders:
    """After the replay: municipalities answer new probes within seconds to minutes."""

    def __init__(
        self, imap: InProcessImapServer, mailbox_user: str, reactor: Reactor, pace: Pace
    ) -> None:
        self._imap = imap
        self._user = mailbox_user
        self._reactor = reactor
        self._pace = pace
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_probe(self, received: ReceivedSmtp) -> None:
        for at, raw in self._reactor.replies(received, self._pace):
            self._spawn(self._deliver_at(at, raw))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_at(self, at: datetime, raw: bytes) -> None:
        await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
        await self._imap.append(self._user, raw, internaldate=datetime.now(UTC))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class LiveSender:
    """Sends one probe every ``every`` seconds, round robin, whatever the hour.

    The live demo must show answers at night and at weekends too, so it sends through the
    manual send-now path (which ignores the send window and spacing but keeps pause, opt-out
    and "one outstanding probe per target"). Measurement keeps the Swedish calendar: a reply
    at 23:00 to a probe sent at 22:59 counts 0 working hours, exactly as KKiK counts it.
    """

    def __init__(self, app: Application, every: float) -> None:
        self._app = app
        self._every = every
        self._turn = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.send_one()
            except Exception:  # a demo send failing must not end the demo
                log.exception("live demo send failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._every)

    async def send_one(self) -> str | None:
        """Send to the next target that is neither failing nor waiting; its id, or None."""
        targets = self._app.world.targets
        failing = await self._app.store.failing_targets()
        for _ in range(len(targets)):
            target = targets[self._turn % len(targets)]
            self._turn += 1
            if target.id in failing:
                continue
            result = await self._app.probing.send_now(target.id)
            if result.probe is not None:
                return target.id
        return None


def aligned(moment: datetime, step: timedelta = HISTORY_STEP) -> datetime:
    """``moment`` rounded down to a whole step (UTC), so replay steps fall on :00 and :30."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step

"""Use case: (re)compute the measured outcome of probes and publish the rolling figures."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from monitor.adapters.metrics import Metrics
from monitor.adapters.sql import Store
from monitor.domain.calendar import OfficeCalendar
from monitor.domain.model import (
    ObservedMessage,
    OutcomeState,
    Probe,
    ProbeOutcome,
    ProbeState,
    StoredMessage,
)
from monitor.domain.outcome import compute_outcome
from monitor.domain.stats import GroupStats, summarise
from monitor.logs import event
from monitor.service.context import Clock, World

log = logging.getLogger(__name__)

DOWNTIME_STALE_AFTER = timedelta(minutes=5)
ROLLING_WINDOWS_DAYS = (30, 90)
UNCERTAIN_SPAN = timedelta(days=120)  # as far back as replies are matched (ingest)


def observed(message: StoredMessage) -> ObservedMessage:
    return ObservedMessage(
        message_key=message.message_key,
        kind=message.kind,
        received_at=message.received_at,
        has_new_text=message.has_new_text,
        permanent=message.permanent,
        ticket_number=message.ticket_number,
    )


class OutcomeService:
    def __init__(self, store: Store, metrics: Metrics, world: World, clock: Clock) -> None:
        self._store = store
        self._metrics = metrics
        self._world = world
        self._clock = clock

    async def recompute(self, token: str) -> ProbeOutcome | None:
        """Recompute one probe's outcome from its stored messages; None for an unknown token."""
        probe = await self._store.probe(token)
        return None if probe is None else await self.recompute_probe(probe)

    async def recompute_probe(self, probe: Probe) -> ProbeOutcome:
        """recompute() for a probe the caller has already loaded."""
        token = probe.token
        now = self._clock()
        messages = [observed(m) for m in await self._store.messages_for_probe(token)]
        since = probe.sent_at or probe.planned_at
        downtime = await self._store.downtime(since, DOWNTIME_STALE_AFTER)
        outcome = compute_outcome(
            token=token,
            sent_at=probe.sent_at,
            send_failed=probe.state in (ProbeState.FAILED, ProbeState.UNCERTAIN),
            messages=messages,
            cal=self._world.calendar_for_id(probe.target_id),
            now=now,
            rules=self._world.outcome_rules,
            monitor_down=downtime,
        )
        previous = await self._store.outcome(token)
        await self._store.save_outcome(outcome, now)
        self._publish_answer(probe.target_id, previous, outcome)
        return outcome

    def _publish_answer(
        self, target_id: str, previous: ProbeOutcome | None, outcome: ProbeOutcome
    ) -> None:
        newly_answered = outcome.state is OutcomeState.ANSWERED and (
            previous is None or previous.first_human_at != outcome.first_human_at
        )
        if newly_answered and outcome.wall_seconds is not None:
            self._metrics.reply_measured(
                target_id, outcome.wall_seconds, outcome.working_seconds or 0.0
            )
            event(
                log,
                logging.INFO,
                "probe answered",
                probe=outcome.token,
                target=target_id,
                working_seconds=round(outcome.working_seconds or 0.0),
            )

    async def refresh_open(self) -> int:
        """Move probes along as time passes (unanswered so far → final); returns how many.

        Also computes the missing outcome of an UNCERTAIN probe: a crash between storing its
        reply and recomputing would otherwise leave it without one for good.
        """
        tokens = await self._store.open_probe_tokens() + await self._uncertain_without_outcome()
        for token in tokens:
            await self.recompute(token)
        return len(tokens)

    async def _uncertain_without_outcome(self) -> list[str]:
        records = await self._store.probe_records(self._clock() - UNCERTAIN_SPAN)
        uncertain = [r.token for r in records if r.state is ProbeState.UNCERTAIN]
        return [token for token in uncertain if await self._store.outcome(token) is None]

    async def publish_gauges(self) -> None:
        """Rolling 30/90-day figures per target and county, the same definitions as reports."""
        now = self._clock()
        for days in ROLLING_WINDOWS_DAYS:
            rows = await self._store.outcomes(now - timedelta(days=days), now)
            self._publish_window(days, rows, now)
        await self._publish_outstanding()

    def _publish_window(
        self, days: int, rows: list[tuple[ProbeOutcome, Probe]], now: datetime
    ) -> None:
        target_of = {outcome.token: probe.target_id for outcome, probe in rows}
        by_target: dict[str, list[ProbeOutcome]] = defaultdict(list)
        for outcome, probe in rows:
            by_target[probe.target_id].append(outcome)
        by_county: dict[str, list[ProbeOutcome]] = defaultdict(list)
        for target in self._world.targets:
            county = target.county or ""
            by_county[county].extend(by_target.get(target.id, []))
            stats = self._summarise(target.id, by_target.get(target.id, []), now, target_of)
            self._metrics.set_window_stats(
                target.id,
                county,
                days,
                stats.within_one.ratio,
                stats.median_working_hours,
                stats.measurable,
                auto_ack_ratio=stats.auto_ack_share.ratio,
            )
        for county, outcomes in by_county.items():
            if not county:
                continue  # targets without a county have no county series (an empty label)
            stats = self._summarise(county, outcomes, now, target_of)
            self._metrics.set_county_stats(
                county,
                days,
                stats.within_one.ratio,
                stats.median_working_hours,
                stats.measurable,
                auto_ack_ratio=stats.auto_ack_share.ratio,
            )

    def _summarise(
        self, key: str, outcomes: list[ProbeOutcome], now: datetime, target_of: dict[str, str]
    ) -> GroupStats:
        def calendar_of(token: str) -> OfficeCalendar:
            return self._world.calendar_for_id(target_of.get(token, ""))

        return summarise(key, outcomes, now=now, cal_for=calendar_of, min_probes=self._min_probes)

    @property
    def _min_probes(self) -> int:
        return self._world.low_confidence_below

    async def _publish_outstanding(self) -> None:
        now = self._clock()
        records = await self._store.probe_records(now - timedelta(days=120))
        counts = {target.id: 0 for target in self._world.targets}
        for record in records:
            if record.outstanding and record.target_id in counts:
                counts[record.target_id] += 1
        for target_id, count in counts.items():
            self._metrics.set_outstanding(target_id, count)

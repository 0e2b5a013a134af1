"""Use case: the KKiK report over a period, per group, compared with the previous period.

Settled outcomes are read in groups (per target, month and verdict, with their reply times;
PostgreSQL groups them in SQL), the others as compact facts in batches, and both are counted
straight into per-target tallies (see ``domain.reporting``). Stored outcomes are taken as they
are, except:

- "unanswered so far" outcomes that have since passed the final deadline are re-judged as of
  ``now`` (the daemon may not have run to move them on), our downtime included;
- probes with no stored outcome at all are computed on the spot from their messages.

Nothing is written: a report never changes the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from monitor.adapters.report_formats import ReportFormat, render
from monitor.adapters.sql import Store
from monitor.domain.model import OutcomeState, Probe, ProbeState
from monitor.domain.outcome import compute_outcome
from monitor.domain.periods import Period, choose_period
from monitor.domain.reporting import (
    Grouping,
    OutcomeFact,
    Report,
    ReportInput,
    Tally,
    TallyBook,
    build_report,
    fact_from_outcome,
    month_index,
    parse_grouping,
    refreshed,
)
from monitor.service.context import World
from monitor.service.outcomes import DOWNTIME_STALE_AFTER, observed

Progress = Callable[[str], None]
Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class ReportRequest:
    period: Period
    grouping: Grouping


async def make_report(
    store: Store,
    world: World,
    request: ReportRequest,
    *,
    now: datetime,
    progress: Progress | None = None,
) -> Report:
    """The report for ``request`` as of ``now``."""
    previous = request.period.previous()
    reader = _PeriodReader(store, world, now, progress or (lambda _text: None))
    current = await reader.tallies(request.period)
    before = await reader.tallies(previous)
    return build_report(
        ReportInput(
            period=request.period,
            previous_period=previous,
            grouping=request.grouping,
            targets=world.targets,
            current=current,
            before=before,
            as_of=now,
            min_probes=world.low_confidence_below,
        )
    )


class _PeriodReader:
    def __init__(self, store: Store, world: World, now: datetime, progress: Progress) -> None:
        self._store = store
        self._world = world
        self._now = now
        self._progress = progress

    async def tallies(self, period: Period) -> dict[str, Tally]:
        zone = self._world.default_calendar.timezone
        since, until = period.bounds(zone)
        month_ends = [month.bounds(zone)[1] for month in period.months()]
        book = TallyBook(len(month_ends), self._world.calendar_for_id, self._now)
        downtime = await self._store.downtime(since, DOWNTIME_STALE_AFTER)
        read = book.add_settled(await self._store.report_settled(since, until, month_ends))
        self._progress(f"{period.label}: {read:,} settled probes read")
        facts = self._store.report_facts(since, until, month_ends, unsettled_only=True)
        async for batch in facts:
            read += book.add(self._fresh(batch, downtime))
            self._progress(f"{period.label}: {read:,} probes read")
        missing = await self._store.probes_without_outcome(since, until)
        for probe in missing:
            book.add([await self._computed(probe, month_ends, downtime)])
        if missing:
            self._progress(f"{period.label}: {len(missing):,} outcomes computed on the spot")
        return book.by_target

    def _fresh(
        self, facts: Sequence[OutcomeFact], downtime: Sequence[Interval]
    ) -> Iterable[OutcomeFact]:
        for fact in facts:
            if fact.state is OutcomeState.UNANSWERED_SO_FAR:
                yield refreshed(
                    fact,
                    cal=self._world.calendar_for_id(fact.target_id),
                    now=self._now,
                    rules=self._world.outcome_rules,
                    monitor_down=downtime,
                )
            else:
                yield fact

    async def _computed(
        self, probe: Probe, month_ends: Sequence[datetime], downtime: Sequence[Interval]
    ) -> OutcomeFact:
        sent = probe.sent_at or probe.planned_at
        failed = probe.state is not ProbeState.SENT
        messages = [] if failed else await self._store.messages_for_probe(probe.token)
        outcome = compute_outcome(
            token=probe.token,
            sent_at=probe.sent_at,
            send_failed=failed,
            messages=[observed(message) for message in messages],
            cal=self._world.calendar_for_id(probe.target_id),
            now=self._now,
            rules=self._world.outcome_rules,
            monitor_down=downtime,
        )
        return fact_from_outcome(
            outcome,
            target_id=probe.target_id,
            sent_at=probe.sent_at,
            month=month_index(month_ends, sent),
        )


@dataclass(frozen=True)
class ReportOptions:
    """What ``svarstid report`` was asked for, checked."""

    request: ReportRequest
    form: ReportFormat

    @classmethod
    def parse(
        cls,
        *,
        period: str | None,
        first_day: str | None,
        last_day: str | None,
        group_by: str,
        form: str,
        today: date,
    ) -> ReportOptions:
        """Raises ValueError with a one-line message for a bad period, group or format."""
        chosen = choose_period(period=period, first=first_day, last=last_day, today=today)
        return cls(ReportRequest(chosen, parse_grouping(group_by)), ReportFormat(form))


async def report_text(
    store: Store,
    world: World,
    options: ReportOptions,
    *,
    now: datetime,
    progress: Progress | None = None,
) -> str:
    """Build the report and render it. Reads only: the caller checks the schema first and
    closes the store."""
    report = await make_report(store, world, options.request, now=now, progress=progress)
    return render(report, options.form)

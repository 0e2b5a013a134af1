"""Use case: gather what the status page and its JSON twins show.

The figures are computed exactly as the metrics are (OutcomeService.publish_gauges):
``summarise`` over the outcomes of probes sent in the last 30 days, with the same low-
confidence threshold, so the page and /metrics agree. The monitor's own health is read
back from the Prometheus registry the daemon already writes, not tracked a second time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from prometheus_client import CollectorRegistry

from monitor.adapters.sql import Store, TargetStatus
from monitor.domain.mailparse import parse_message
from monitor.domain.model import (
    MessageKind,
    OutcomeState,
    Probe,
    ProbeOutcome,
    ProbeState,
    StoredMessage,
    Target,
)
from monitor.domain.newtext import extract_new_text
from monitor.domain.stats import GroupStats, Proportion, summarise
from monitor.service.context import Clock, World

WINDOW = timedelta(days=30)
HISTORY = timedelta(days=90)
CHART_WEEKS = 13
SHOWN_HEADERS = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-autoreply",
    "precedence",
    "content-type",
)


@dataclass(frozen=True)
class TargetRow:
    """One line of the overview table: the last 30 days of one target."""

    target: Target
    stats: GroupStats
    last_outcome: OutcomeState | None
    last_sent_at: datetime | None
    address_failing: bool
    failing_reason: str | None


@dataclass(frozen=True)
class WeekShare:
    """Share answered within one working day of the probes sent in one ISO week."""

    week_start: date  # Monday, local time of the default calendar
    within_one: Proportion


@dataclass(frozen=True)
class MonitorHealth:
    smtp_last_success: datetime | None
    imap_connected: bool
    last_message_processed: datetime | None
    last_probe_sent: datetime | None
    scheduler_last_run: datetime | None


@dataclass(frozen=True)
class Overview:
    now: datetime
    rows: tuple[TargetRow, ...]
    all_targets: GroupStats
    weeks: tuple[WeekShare, ...]
    health: MonitorHealth


@dataclass(frozen=True)
class ProbeLine:
    """A probe as listed on its target's page."""

    probe: Probe
    outcome: ProbeOutcome | None


@dataclass(frozen=True)
class TargetDetail:
    row: TargetRow
    stats_90_days: GroupStats
    probes: tuple[ProbeLine, ...]  # newest first


@dataclass(frozen=True)
class MessageDetail:
    """A matched message: stored facts always, headers and new text while the raw is kept."""

    message: StoredMessage
    headers: tuple[tuple[str, str], ...]
    new_text: str | None
    body_kept: bool


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    event: str  # planned, sending, sent, failed, uncertain, or a MessageKind value
    detail: str | None
    message_key: str | None = None


@dataclass(frozen=True)
class ProbeDetail:
    probe: Probe
    target: Target | None
    outcome: ProbeOutcome | None
    timeline: tuple[TimelineEntry, ...]
    messages: tuple[MessageDetail, ...]


class Dashboard:
    def __init__(
        self, store: Store, world: World, registry: CollectorRegistry, clock: Clock
    ) -> None:
        self._store = store
        self._world = world
        self._registry = registry
        self._clock = clock

    async def overview(self) -> Overview:
        now = self._clock()
        statuses = {s.target_id: s for s in await self._store.status_rows()}
        window = await self._store.outcomes(now - WINDOW, now)
        by_target: dict[str, list[ProbeOutcome]] = defaultdict(list)
        for outcome, probe in window:
            by_target[probe.target_id].append(outcome)
        rows = tuple(
            self._row(target, by_target.get(target.id, []), statuses.get(target.id), now)
            for target in self._world.targets
        )
        return Overview(
            now=now,
            rows=rows,
            all_targets=self._summary("all", [o for o, _ in window], now),
            weeks=await self._weeks(now),
            health=self.health(),
        )

    async def target(self, target_id: str) -> TargetDetail | None:
        target = self._world.target(target_id)
        if target is None:
            return None
        now = self._clock()
        history = [
            (o, p)
            for o, p in await self._store.outcomes(now - HISTORY, now)
            if p.target_id == target_id
        ]
        recent = [o for o, p in history if p.sent_at is not None and p.sent_at >= now - WINDOW]
        statuses = {s.target_id: s for s in await self._store.status_rows()}
        lines = await self._probe_lines(target_id, history, now)
        return TargetDetail(
            row=self._row(target, recent, statuses.get(target_id), now),
            stats_90_days=self._summary(target_id, [o for o, _ in history], now),
            probes=lines,
        )

    async def probe(self, token: str) -> ProbeDetail | None:
        probe = await self._store.probe(token)
        if probe is None:
            return None
        messages = await self._store.messages_for_probe(token)
        events = await self._store.probe_events(token)
        timeline = _state_entries(events) + [(m.received_at, _message_entry(m)) for m in messages]
        return ProbeDetail(
            probe=probe,
            target=self._world.target(probe.target_id),
            outcome=await self._store.outcome(token),
            timeline=tuple(entry for _, entry in sorted(timeline, key=lambda pair: pair[0])),
            messages=tuple(_message_detail(m) for m in messages),
        )

    def health(self) -> MonitorHealth:
        return MonitorHealth(
            smtp_last_success=self._timestamp("svarstid_smtp_last_success_timestamp_seconds"),
            imap_connected=self._sample("svarstid_imap_connected") == 1.0,
            last_message_processed=self._timestamp(
                "svarstid_last_message_processed_timestamp_seconds"
            ),
            last_probe_sent=self._timestamp("svarstid_last_probe_sent_timestamp_seconds"),
            scheduler_last_run=self._timestamp("svarstid_scheduler_last_run_timestamp_seconds"),
        )

    def _row(
        self,
        target: Target,
        outcomes: Sequence[ProbeOutcome],
        status: TargetStatus | None,
        now: datetime,
    ) -> TargetRow:
        return TargetRow(
            target=target,
            stats=self._summary(target.id, outcomes, now),
            last_outcome=status.last_outcome if status else None,
            last_sent_at=status.last_sent_at if status else None,
            address_failing=bool(status and status.address_failing),
            failing_reason=status.address_failing_reason if status else None,
        )

    def _summary(self, key: str, outcomes: Sequence[ProbeOutcome], now: datetime) -> GroupStats:
        # The same call as OutcomeService._publish_window, so page and /metrics agree.
        return summarise(key, outcomes, now=now, min_probes=self._world.low_confidence_below)

    async def _weeks(self, now: datetime) -> tuple[WeekShare, ...]:
        zone = self._world.default_calendar.timezone
        this_monday = _monday(now.astimezone(zone).date())
        first = this_monday - timedelta(weeks=CHART_WEEKS - 1)
        since = datetime.combine(first, datetime.min.time(), zone)
        by_week: dict[date, list[ProbeOutcome]] = defaultdict(list)
        for outcome, probe in await self._store.outcomes(since, now):
            if probe.sent_at is not None:
                by_week[_monday(probe.sent_at.astimezone(zone).date())].append(outcome)
        weeks = [first + timedelta(weeks=i) for i in range(CHART_WEEKS)]
        return tuple(
            WeekShare(week, self._summary(str(week), by_week.get(week, []), now).within_one)
            for week in weeks
        )

    async def _probe_lines(
        self, target_id: str, history: list[tuple[ProbeOutcome, Probe]], now: datetime
    ) -> tuple[ProbeLine, ...]:
        """Sent probes with their outcomes, plus probes never sent (failed, in flight)."""
        measured = {p.token: ProbeLine(p, o) for o, p in history}
        records = await self._store.probe_records(now - HISTORY)
        for record in records:
            if record.target_id == target_id and record.token not in measured:
                probe = await self._store.probe(record.token)
                if probe is not None:
                    measured[record.token] = ProbeLine(probe, None)
        return tuple(sorted(measured.values(), key=_probe_moment, reverse=True))

    def _sample(self, name: str) -> float | None:
        return self._registry.get_sample_value(name)

    def _timestamp(self, name: str) -> datetime | None:
        value = self._sample(name)
        if not value:
            return None
        return datetime.fromtimestamp(value, tz=self._world.default_calendar.timezone)


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _probe_moment(line: ProbeLine) -> datetime:
    return line.probe.sent_at or line.probe.planned_at


def _state_entries(
    events: Sequence[tuple[ProbeState, datetime, str | None]],
) -> list[tuple[datetime, TimelineEntry]]:
    """State events keep their stored order: the SMTP accept time has whole seconds and may
    read earlier than the planned time of the same send, so they sort by a running maximum."""
    entries: list[tuple[datetime, TimelineEntry]] = []
    latest: datetime | None = None
    for state, at, detail in events:
        latest = at if latest is None or at > latest else latest
        entries.append((latest, TimelineEntry(at, state.value, detail)))
    return entries


def _message_entry(message: StoredMessage) -> TimelineEntry:
    detail = message.ticket_number and f"case {message.ticket_number}"
    if message.kind is MessageKind.BOUNCE:
        detail = "permanent" if message.permanent else "temporary"
    return TimelineEntry(message.received_at, message.kind.value, detail, message.message_key)


def _message_detail(message: StoredMessage) -> MessageDetail:
    if message.raw is None:
        return MessageDetail(message, (), None, body_kept=False)
    parsed = parse_message(message.raw)
    headers = tuple((name, value) for name, value in parsed.headers if name in SHOWN_HEADERS)
    new_text = extract_new_text(parsed) if message.kind is MessageKind.HUMAN else None
    return MessageDetail(message, headers, new_text, body_kept=True)

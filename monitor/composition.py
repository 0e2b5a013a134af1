"""Composition root: turns a validated Config into wired adapters and services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.adapters.http import HttpServer
from monitor.adapters.imap import ImapSecurity, ImapSettings, MailboxWatcher
from monitor.adapters.metrics import Metrics
from monitor.adapters.smtp import SmtpSecurity, SmtpSender, SmtpSettings
from monitor.adapters.sql import Store
from monitor.catalog import load_kommuner, load_optout, load_question_bank, load_targets
from monitor.config import CalendarConfig, Config, read_secret
from monitor.domain.calendar import OfficeCalendar, build_calendar
from monitor.domain.outcome import OutcomeRules
from monitor.domain.scheduling import Politeness
from monitor.service.context import Clock, MailboxIdentity, World
from monitor.service.daemon import Daemon
from monitor.service.health import Health
from monitor.service.ingest import InboxService
from monitor.service.outcomes import OutcomeService
from monitor.service.probing import ProbeService


def utc_now() -> datetime:
    return datetime.now(UTC)


def calendar_from(name: str, section: CalendarConfig) -> OfficeCalendar:
    return build_calendar(
        name=name,
        country=section.country,
        subdivision=section.subdivision,
        timezone=section.timezone,
        hours={day: section.office_hours[day] for day in range(7)},
        extra_closed=section.closed_dates,
    )


def politeness_from(config: Config) -> Politeness:
    schedule = config.schedule
    window: tuple[time, time] = (schedule.send_window[0], schedule.send_window[1])
    return Politeness(
        send_window=window,
        min_spacing=timedelta(days=schedule.min_spacing_days),
        max_per_target_per_30_days=schedule.max_probes_per_target_per_30_days,
        max_per_hour=schedule.max_probes_per_hour,
        question_repeat_span=timedelta(days=schedule.question_repeat_days),
        jitter=timedelta(minutes=schedule.jitter_minutes),
    )


def load_world(config: Config) -> World:
    """Targets, questions, calendars and limits from the config and the files it names."""
    calendars = {name: calendar_from(name, section) for name, section in config.calendars.items()}
    targets = load_targets(config.targets_file, load_kommuner(), calendars.keys())
    bank = load_question_bank(config.questions_file)
    optout = load_optout(config.optout_file)
    return World(
        targets=tuple(targets),
        questions=bank.questions,
        personas=bank.personas,
        default_calendar=calendar_from("default", config.calendar),
        calendars=calendars,
        politeness=politeness_from(config),
        outcome_rules=OutcomeRules(
            final_after_working_days=config.measurement.unanswered_final_after_working_days
        ),
        mailbox=MailboxIdentity(config.mailbox.address, config.mailbox.reply_address),
        opted_out=optout.covers,
        low_confidence_below=config.measurement.low_confidence_below,
    )


def smtp_settings(config: Config) -> SmtpSettings:
    section = config.smtp
    return SmtpSettings(
        host=section.host,
        port=section.port,
        security=SmtpSecurity(section.security.value),
        username=section.username,
        password=read_secret(section.password, section.password_file),
        timeout=section.timeout,
        ca_file=section.ca_file,
    )


def imap_settings(config: Config) -> ImapSettings:
    section = config.imap
    return ImapSettings(
        host=section.host,
        port=section.port,
        security=ImapSecurity(section.security.value),
        username=section.username,
        password=read_secret(section.password, section.password_file) or "",
        folder=section.folder,
        idle_renew_seconds=section.idle_renew_seconds,
        poll_seconds=section.poll_seconds,
        timeout=section.timeout,
        ca_file=section.ca_file,
    )


@dataclass
class Application:
    """Everything a running svarstid consists of; the CLI picks what a command needs."""

    config: Config
    world: World
    registry: CollectorRegistry
    metrics: Metrics
    store: Store
    smtp: SmtpSender
    outcomes: OutcomeService
    probing: ProbeService
    inbox: InboxService
    daemon: Daemon


def build(
    config: Config,
    *,
    world: World | None = None,
    clock: Clock = utc_now,
    entropy: Callable[[int], bytes] | None = None,
) -> Application:
    world = world or load_world(config)
    registry = CollectorRegistry()
    metrics = Metrics(registry, version=__version__)
    store = Store.from_url(config.database.url)
    smtp = SmtpSender(smtp_settings(config), clock)
    outcomes = OutcomeService(store, metrics, world, clock)
    probing = (
        ProbeService(store, smtp, metrics, world, clock)
        if entropy is None
        else ProbeService(store, smtp, metrics, world, clock, entropy)
    )
    retention_days = config.database.body_retention_days
    inbox = InboxService(store, metrics, world, outcomes, clock, keep_bodies=retention_days > 0)
    daemon = _daemon(config, world, store, metrics, registry, (probing, inbox, outcomes), clock)
    return Application(
        config, world, registry, metrics, store, smtp, outcomes, probing, inbox, daemon
    )


def _daemon(
    config: Config,
    world: World,
    store: Store,
    metrics: Metrics,
    registry: CollectorRegistry,
    services: tuple[ProbeService, InboxService, OutcomeService],
    clock: Clock,
) -> Daemon:
    probing, inbox, outcomes = services
    health = Health(store, metrics)
    watcher = MailboxWatcher(
        imap_settings(config),
        load_checkpoint=inbox.checkpoint,
        handle=inbox.handle,
        on_connection_change=health.imap_changed,
    )
    return Daemon(
        store=store,
        world=world,
        metrics=metrics,
        probing=probing,
        inbox=inbox,
        outcomes=outcomes,
        watcher=watcher,
        http=HttpServer(config.http.listen, registry, readiness=health.readiness),
        clock=clock,
        tick_seconds=config.schedule.tick_seconds,
        body_retention=_retention(config),
    )


def _retention(config: Config) -> timedelta | None:
    days = config.database.body_retention_days
    return timedelta(days=days) if days > 0 else None


def config_dir(path: Path) -> Path:
    return path.resolve().parent

"""Composition root: turns a validated Config into wired adapters and services."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics
from sqlalchemy.engine import make_url

from monitor import __version__
from monitor.adapters.http import HttpServer
from monitor.adapters.imap import ImapSecurity, ImapSettings, MailboxWatcher
from monitor.adapters.leader import GatedSender, Leadership, lock_for
from monitor.adapters.metrics import Metrics
from monitor.adapters.oauth import TokenCommand
from monitor.adapters.smtp import SmtpSecurity, SmtpSender, SmtpSettings
from monitor.adapters.sql import Store
from monitor.adapters.systemd import Notifier
from monitor.adapters.web import StatusPages
from monitor.catalog import load_kommuner, load_optout, load_question_bank, load_targets
from monitor.config import CalendarConfig, Config, ConfigError, MailAuth, read_secret
from monitor.domain.calendar import OfficeCalendar, build_calendar
from monitor.domain.outcome import OutcomeRules
from monitor.domain.scheduling import Politeness
from monitor.interfaces.web.access_setup import http_setup, server_tls
from monitor.service.context import Clock, MailboxIdentity, World
from monitor.service.daemon import Daemon, with_leadership
from monitor.service.dashboard import Dashboard
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
        oauth2_token=_token_source(section.auth, section.oauth2_token_command, section.timeout),
    )


def _token_source(
    auth: MailAuth, command: str | None, timeout: float
) -> Callable[[], Awaitable[str]] | None:
    if auth is not MailAuth.XOAUTH2 or command is None:
        return None
    return TokenCommand(command, timeout=timeout)


def database_url(config: Config) -> str:
    """The database URL every command and the daemon use: ``database.url`` (after the
    SVARSTID_DATABASE__* overrides) with the password from ``database.password_file``.

    A password file that has become unreadable since validation is a ConfigError.
    """
    section = config.database
    try:
        password = read_secret(None, section.password_file)
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        problem = f"cannot read {section.password_file}: {reason}"
        raise ConfigError([f"database.password_file: {problem}"]) from None
    if password is None:
        return section.url
    return make_url(section.url).set(password=password).render_as_string(hide_password=False)


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
        liveness_seconds=section.liveness_seconds,
        timeout=section.timeout,
        ca_file=section.ca_file,
        oauth2_token=_token_source(section.auth, section.oauth2_token_command, section.timeout),
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
    # The *_created twin of every counter and histogram adds a fifth of the series at
    # 1,000 targets and nothing a dashboard or alert here reads.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    metrics = Metrics(registry, version=__version__)
    url = database_url(config)
    store = Store.from_url(url)
    leadership = Leadership(lock_for(url, session_timeout=config.leader.session_timeout_seconds))
    smtp = GatedSender(smtp_settings(config), clock)
    smtp.gate = leadership.permits_send  # only the leader sends; CLI commands are unmanaged
    outcomes = OutcomeService(store, metrics, world, clock)
    probing = (
        ProbeService(store, smtp, metrics, world, clock)
        if entropy is None
        else ProbeService(store, smtp, metrics, world, clock, entropy)
    )
    retention_days = config.database.body_retention_days
    inbox = InboxService(store, metrics, world, outcomes, clock, keep_bodies=retention_days > 0)
    services = (probing, inbox, outcomes)
    daemon = _daemon(config, world, store, metrics, registry, services, clock, leadership)
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
    leadership: Leadership | None = None,
) -> Daemon:
    probing, inbox, outcomes = services
    health = Health(store, metrics, relay_ok=lambda: probing.relay_ok)
    leadership = leadership or Leadership(lock_for(database_url(config)))
    settings = imap_settings(config)

    def new_watcher() -> MailboxWatcher:
        return MailboxWatcher(
            settings,
            load_checkpoint=inbox.checkpoint,
            handle=inbox.handle,
            on_connection_change=health.imap_changed,
        )

    readiness = with_leadership(health.readiness, leadership)
    return Daemon(
        store=store,
        world=world,
        metrics=metrics,
        probing=probing,
        inbox=inbox,
        outcomes=outcomes,
        watcher=new_watcher(),
        http=HttpServer(
            config.http.listen,
            registry,
            readiness=readiness,
            routes=_status_pages(store, world, registry, clock),
            generation=lambda: metrics.generation,
            ssl_context=server_tls(config),
            setup=http_setup(config),
        ),
        clock=clock,
        tick_seconds=config.schedule.tick_seconds,
        body_retention=_retention(config),
        leadership=leadership,
        notifier=Notifier.from_environment(os.environ),
        new_watcher=new_watcher,
        imap_connected=lambda: health.imap_connected,
        leader_poll_seconds=config.leader.poll_seconds,
    )


def _status_pages(
    store: Store, world: World, registry: CollectorRegistry, clock: Clock
) -> list[web.RouteDef]:
    """The status page and its JSON twins, served next to /metrics on http.listen."""
    return StatusPages(Dashboard(store, world, registry, clock), clock).routes()


def _retention(config: Config) -> timedelta | None:
    days = config.database.body_retention_days
    return timedelta(days=days) if days > 0 else None


def config_dir(path: Path) -> Path:
    return path.resolve().parent

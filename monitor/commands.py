"""What each `svarstid` subcommand does, on top of the composition root."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from monitor import logs
from monitor.adapters.sql import Store
from monitor.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    format_time,
    load,
    run_until_signalled,
)
from monitor.composition import Application, build, database_url, load_world, utc_now
from monitor.config import Config
from monitor.domain.model import ProbeRecord, Target
from monitor.domain.scheduling import Blocked, BlockReason, SendDecision, explain, next_send_time
from monitor.interfaces.web.access_setup import warn_if_exposed
from monitor.service.context import World
from monitor.service.probing import HISTORY_SPAN


def _configure_logs(config: Config) -> None:
    logs.configure(config.logging.level.value, config.logging.format.value)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    _configure_logs(config)
    warn_if_exposed(config)
    app = build(config)

    async def main(stop: asyncio.Event) -> int:
        daemon = asyncio.create_task(app.daemon.run())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({daemon, stopped}, return_when=asyncio.FIRST_COMPLETED)
        app.daemon.stop()
        await daemon
        stopped.cancel()
        return EXIT_OK

    return run_until_signalled(main)


def check_config(args: argparse.Namespace) -> int:
    config = load(args)
    world = load_world(config)
    history, note = asyncio.run(_history_if_reachable(config))
    print(describe(config, world, history, note))
    return EXIT_OK


async def _history_if_reachable(config: Config) -> tuple[list[ProbeRecord], str]:
    """Probe history for next-send times; check-config must work without a database too,
    and never creates one."""
    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return [], "no database yet: assuming no history"
    store = Store.from_url(database_url(config))
    try:
        async with asyncio.timeout(5):
            records = await store.probe_records(utc_now() - HISTORY_SPAN)
    except Exception as error:  # any database problem only weakens the summary
        return [], f"database not reachable ({type(error).__name__}): assuming no history"
    finally:
        await store.close()
    return records, f"{len(records)} probes in the database's history"


def describe(config: Config, world: World, history: Sequence[ProbeRecord], note: str) -> str:
    """A readable summary: where things go, the limits, and each target's next send time."""
    schedule = config.schedule
    window = "–".join(t.strftime("%H:%M") for t in schedule.send_window)
    lines = [
        f"mailbox      {config.mailbox.address} (replies to {config.mailbox.reply_address})",
        f"smtp         {config.smtp.host}:{config.smtp.port} ({config.smtp.security.value})",
        f"imap         {config.imap.host}:{config.imap.port} ({config.imap.security.value}), "
        f"folder {config.imap.folder}",
        f"database     {_masked(config.database.url)}; {note}",
        f"http         {config.http.listen}",
        f"schedule     send {window} on working days, every {schedule.min_spacing_days} days "
        f"at most, ≤ {schedule.max_probes_per_target_per_30_days} per target per 30 days, "
        f"≤ {schedule.max_probes_per_hour} per hour",
        f"questions    {len(world.questions)} questions, {len(world.personas)} personas",
        f"targets      {len(world.targets)}",
        "",
        *_target_table(world, history),
    ]
    return "\n".join(lines)


def _masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _target_table(world: World, history: Sequence[ProbeRecord]) -> list[str]:
    now = utc_now()
    verdicts = explain(
        now=now,
        targets=world.targets,
        history=history,
        questions=world.questions,
        personas=world.personas,
        calendar_for=world.calendar_for,
        politeness=world.politeness,
        opted_out=world.opted_out,
        failing_targets=(),
    )
    rows = [("ID", "NAME", "COUNTY", "ADDRESS", "NEXT SEND")]
    for target, verdict in zip(world.targets, verdicts, strict=True):
        next_send = _next_send(world, target, verdict, history, now)
        rows.append((target.id, target.name, target.county or "-", target.address, next_send))
    return table(rows)


def _next_send(
    world: World,
    target: Target,
    verdict: SendDecision | Blocked,
    history: Sequence[ProbeRecord],
    now: datetime,
) -> str:
    if isinstance(verdict, SendDecision):
        return "due now"
    if verdict.until is None and verdict.reason is not BlockReason.OUTSTANDING:
        return f"never ({verdict.reason.value})"
    calendar = world.calendar_for(target)
    when = next_send_time(
        target=target, history=history, calendar=calendar, politeness=world.politeness, now=now
    )
    if when is None:
        return f"after the outstanding probe ({verdict.reason.value})"
    return when.astimezone(calendar.timezone).strftime("%Y-%m-%d %H:%M %Z")


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _with_app(args: argparse.Namespace) -> Application:
    config = load(args)
    _configure_logs(config)
    return build(config)


def send_now(args: argparse.Namespace) -> int:
    app = _with_app(args)

    async def go() -> int:
        await app.store.upgrade()
        await app.store.sync_targets(app.world.targets, utc_now())
        result = await app.probing.send_now(args.target_id, force=args.force)
        await app.smtp.close()
        await app.store.close()
        if result.probe is None:
            print(f"svarstid: not sent to {args.target_id}: {result.refusal}", file=sys.stderr)
            return EXIT_FAILURE
        probe = result.probe
        print(f"probe {probe.token} to {probe.target_address}: {probe.state.value}")
        return EXIT_OK if probe.state.value == "sent" else EXIT_FAILURE

    return asyncio.run(go())


def status(args: argparse.Namespace) -> int:
    app = _with_app(args)

    async def go() -> int:
        await app.store.upgrade()
        rows = await app.store.status_rows()
        await app.store.close()
        header = ("TARGET", "NAME", "SENT", "LAST SENT", "LAST OUTCOME", "LAST REPLY", "ADDRESS")
        lines = [header]
        for row in rows:
            outcome = row.last_outcome.value if row.last_outcome else "-"
            address = "FAILING" if row.address_failing else ("paused" if row.paused else "ok")
            lines.append(
                (
                    row.target_id,
                    row.name,
                    str(row.probes_sent),
                    format_time(row.last_sent_at),
                    outcome,
                    format_time(row.last_reply_at),
                    address,
                )
            )
        print("\n".join(table(lines)))
        return EXIT_OK

    return asyncio.run(go())


def db_upgrade(args: argparse.Namespace) -> int:
    app = _with_app(args)

    async def go() -> int:
        await app.store.upgrade()
        await app.store.close()
        print("database schema is up to date")
        return EXIT_OK

    return asyncio.run(go())


def inspect(args: argparse.Namespace) -> int:
    from monitor.service.inspection import run_inspect

    return run_inspect(args.files, args.probes, args.json, sys.stdout)


def unmatched(args: argparse.Namespace) -> int:
    app = _with_app(args)

    async def go() -> int:
        await app.store.upgrade()
        held = await app.store.unmatched_messages(limit=1000)
        await app.store.close()
        rows = [("RECEIVED", "KIND", "FROM", "SUBJECT", "MESSAGE-ID")]
        for message in held:
            rows.append(
                (
                    format_time(message.received_at),
                    message.kind.value,
                    message.from_address or "-",
                    message.subject[:60],
                    message.message_id or message.message_key,
                )
            )
        print("\n".join(table(rows)))
        return EXIT_OK

    return asyncio.run(go())


def assign(args: argparse.Namespace) -> int:
    app = _with_app(args)

    async def go() -> int:
        await app.store.upgrade()
        if await app.store.probe(args.probe_token) is None:
            print(f"svarstid: no probe with token {args.probe_token}", file=sys.stderr)
            return EXIT_FAILURE
        stored = await app.inbox.assign(args.message_id, args.probe_token)
        outcome = await app.store.outcome(args.probe_token)
        await app.store.close()
        if stored is None:
            print(f"svarstid: no stored message {args.message_id}", file=sys.stderr)
            return EXIT_FAILURE
        state = outcome.state.value if outcome else "-"
        print(f"message assigned to probe {args.probe_token}; outcome now {state}")
        return EXIT_OK

    return asyncio.run(go())


def demo(args: argparse.Namespace) -> int:
    from monitor.demo.world import run_demo

    return run_until_signalled(
        lambda stop: run_demo(
            stop,
            database=args.database,
            listen=args.listen,
            duration=args.duration,
            history_days=args.history_days,
        )
    )


def report(args: argparse.Namespace) -> int:
    from monitor.adapters.report_formats import ProgressLine
    from monitor.adapters.sql import Store
    from monitor.service.reporting import ReportOptions, report_text

    config = load(args)
    _configure_logs(config)
    world = load_world(config)
    now = utc_now()
    try:
        options = ReportOptions.parse(
            period=args.period,
            first_day=args.first_day,
            last_day=args.last_day,
            group_by=args.group_by,
            form=args.format,
            today=now.astimezone(world.default_calendar.timezone).date(),
        )
    except ValueError as error:
        print(f"svarstid report: {error}", file=sys.stderr)
        return 2
    progress = ProgressLine(sys.stderr, enabled=args.progress or sys.stderr.isatty())
    store = Store.from_url(config.database.url)
    text = asyncio.run(report_text(store, world, options, now=now, progress=progress))
    progress.done()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return EXIT_OK

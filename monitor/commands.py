"""What each `svarstid` subcommand does, on top of the composition root."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor import logs
from monitor.adapters.sql import HEAD_REVISION, Store
from monitor.cli import (
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_FAILURE,
    EXIT_FILE,
    EXIT_OK,
    CommandError,
    format_time,
    load,
    printable,
    run_until_signalled,
)
from monitor.composition import Application, build, database_url, load_world, utc_now
from monitor.config import Config, masked_url
from monitor.domain.model import ProbeRecord, Target
from monitor.domain.scheduling import Blocked, BlockReason, SendDecision, explain, next_send_time
from monitor.interfaces.web.access_setup import warn_if_exposed
from monitor.service.context import World
from monitor.service.probing import HISTORY_SPAN

if TYPE_CHECKING:
    from monitor.service.reporting import ReportOptions


def _configure_logs(config: Config) -> None:
    logs.configure(config.logging.level.value, config.logging.format.value)


T = TypeVar("T")
UPGRADE_HINT = "create or migrate it with `svarstid db upgrade`"


# -- the database, opened the same way by every command -----------------------------------


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL and in-memory SQLite."""
    parsed = make_url(url)
    name = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or name in ("", ":memory:") or "memory" in name:
        return None
    return Path(name)


def require_database_folder(url: str) -> None:
    """SQLite creates a missing file but not a missing folder: say so before it fails."""
    path = sqlite_file(url)
    if path is not None and not path.parent.is_dir():
        raise CommandError(f"database folder {path.parent} does not exist", EXIT_DATABASE)


def require_database_file(url: str) -> None:
    require_database_folder(url)
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise CommandError(f"no database at {path}; {UPGRADE_HINT}", EXIT_DATABASE)


async def require_schema(store: Store, url: str) -> None:
    """Read-only commands never create or migrate the schema: they refuse without it."""
    revision = await store.schema_revision()
    if revision is None:
        problem = "has no svarstid schema"
    elif revision != HEAD_REVISION:
        problem = f"is at schema revision {revision}, this svarstid needs {HEAD_REVISION}"
    else:
        return
    raise CommandError(f"database {masked_url(url)} {problem}; {UPGRADE_HINT}", EXIT_DATABASE)


def is_database_error(error: BaseException) -> bool:
    # asyncpg raises OSError for a refused connection and its own errors around connecting.
    module = type(error).__module__
    return isinstance(error, SQLAlchemyError | OSError) or module.startswith("asyncpg")


@contextlib.contextmanager
def database_errors(url: str) -> Iterator[None]:
    """A database that cannot be used becomes one line naming it (password masked)."""
    try:
        yield
    except CommandError:
        raise
    except Exception as error:
        if not is_database_error(error):
            raise
        raise database_failure(url, error) from None


def database_failure(url: str, error: BaseException) -> CommandError:
    problem = "is not reachable" if isinstance(error, OSError) else "cannot be used"
    reason = failure_reason(error)
    return CommandError(f"database {masked_url(url)} {problem}: {reason}", EXIT_DATABASE)


async def check_reachable(url: str) -> None:
    store = Store.from_url(url)
    try:
        with database_errors(url):
            await store.ping()
    finally:
        await store.close()


def failure_reason(error: BaseException) -> str:
    """The first line of what went wrong, without SQLAlchemy's statement and link."""
    cause = getattr(error, "orig", None) or error
    cause = cause.__cause__ or cause  # the driver's own error behind SQLAlchemy's adapter
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    name = type(cause).__name__
    return f"{name}: {text}" if text else name


def with_read_only_store(config: Config, use: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``use`` on a store that must already hold the current schema; always closed."""
    url = database_url(config)
    require_database_file(url)

    async def go() -> T:
        store = Store.from_url(url)
        try:
            with database_errors(url):
                await require_schema(store, url)
                return await use(store)
        finally:
            await store.close()

    return asyncio.run(go())


def with_app(args: argparse.Namespace, use: Callable[[Application], Awaitable[int]]) -> int:
    """Run ``use`` on the wired application, schema migrated; SMTP and store always closed."""
    config = load(args)
    _configure_logs(config)
    url = database_url(config)
    require_database_folder(url)
    app = build(config)

    async def go() -> int:
        try:
            with database_errors(url):
                await app.store.upgrade()
                return await use(app)
        finally:
            try:
                await app.smtp.close()
            finally:
                await app.store.close()

    return asyncio.run(go())


# -- commands -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    config = load(args)
    _configure_logs(config)
    warn_if_exposed(config)
    url = database_url(config)
    require_database_folder(url)
    app = build(config)

    async def main(stop: asyncio.Event) -> int:
        daemon = asyncio.create_task(app.daemon.run())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({daemon, stopped}, return_when=asyncio.FIRST_COMPLETED)
        app.daemon.stop()
        await daemon
        stopped.cancel()
        return EXIT_OK

    asyncio.run(check_reachable(url))  # a one-line error rather than a failed start
    try:
        return run_until_signalled(main)
    except OSError as error:  # the database was reachable: a lock file, the HTTP address
        raise start_failure(error) from None
    except Exception as error:
        if is_database_error(error):
            raise database_failure(url, error) from None
        raise


def start_failure(error: OSError) -> CommandError:
    reason = error.strerror or str(error)
    if error.filename is not None:
        return CommandError(f"cannot open {error.filename}: {reason}", EXIT_FILE)
    return CommandError(f"cannot start: {reason}", EXIT_FAILURE)


def check_config(args: argparse.Namespace) -> int:
    config = load(args)
    world = load_world(config)
    history, note = asyncio.run(_history_if_reachable(config))
    print(describe(config, world, history, note))
    return EXIT_OK


async def _history_if_reachable(config: Config) -> tuple[list[ProbeRecord], str]:
    """Probe history for next-send times; check-config must work without a database too,
    and never creates or migrates one."""
    url = database_url(config)
    path = sqlite_file(url)
    if path is not None and not path.parent.is_dir():
        return [], f"database folder {path.parent} does not exist: `svarstid run` would fail"
    if path is not None and not path.exists():
        return [], "no database yet: assuming no history"
    store = Store.from_url(url)
    try:
        async with asyncio.timeout(5):
            if await store.schema_revision() is None:
                return [], "database has no schema yet: assuming no history"
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
    return masked_url(url)


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
    """Aligned columns; every cell made terminal-safe (cells may hold mail data)."""
    cells = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]


def send_now(args: argparse.Namespace) -> int:
    async def go(app: Application) -> int:
        await app.store.sync_targets(app.world.targets, utc_now())
        result = await app.probing.send_now(args.target_id, force=args.force)
        if result.probe is None:
            refusal = printable(f"{args.target_id}: {result.refusal}")
            print(f"svarstid send-now: not sent to {refusal}", file=sys.stderr)
            return EXIT_FAILURE
        probe = result.probe
        print(f"probe {probe.token} to {printable(probe.target_address)}: {probe.state.value}")
        return EXIT_OK if probe.state.value == "sent" else EXIT_FAILURE

    return with_app(args, go)


STATUS_HEADER = ("TARGET", "NAME", "SENT", "LAST SENT", "LAST OUTCOME", "LAST REPLY", "ADDRESS")


def status(args: argparse.Namespace) -> int:
    config = load(args)
    _configure_logs(config)

    async def go(store: Store) -> int:
        lines: list[Sequence[str]] = [STATUS_HEADER]
        for row in await store.status_rows():
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

    return with_read_only_store(config, go)


def db_upgrade(args: argparse.Namespace) -> int:
    async def go(_app: Application) -> int:  # with_app has migrated it
        print("database schema is up to date")
        return EXIT_OK

    return with_app(args, go)


def inspect(args: argparse.Namespace) -> int:
    from monitor.service.inspection import run_inspect

    return run_inspect(args.files, args.probes, args.json, sys.stdout)


UNMATCHED_HEADER = ("RECEIVED", "KIND", "FROM", "SUBJECT", "MESSAGE-ID")


def unmatched(args: argparse.Namespace) -> int:
    config = load(args)
    _configure_logs(config)

    async def go(store: Store) -> int:
        rows: list[Sequence[str]] = [UNMATCHED_HEADER]
        for message in await store.unmatched_messages(limit=1000):
            rows.append(
                (
                    format_time(message.received_at),
                    message.kind.value,
                    message.from_address or "-",
                    printable(message.subject)[:60],
                    message.message_id or message.message_key,
                )
            )
        print("\n".join(table(rows)))
        return EXIT_OK

    return with_read_only_store(config, go)


def assign(args: argparse.Namespace) -> int:
    async def go(app: Application) -> int:
        token = printable(args.probe_token)
        if await app.store.probe(args.probe_token) is None:
            print(f"svarstid assign: no probe with token {token}", file=sys.stderr)
            return EXIT_FAILURE
        stored = await app.inbox.assign(args.message_id, args.probe_token)
        if stored is None:
            message = printable(args.message_id)
            print(f"svarstid assign: no stored message {message}", file=sys.stderr)
            return EXIT_FAILURE
        outcome = await app.store.outcome(args.probe_token)
        state = outcome.state.value if outcome else "-"
        print(f"message assigned to probe {token}; outcome now {state}")
        return EXIT_OK

    return with_app(args, go)


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
    from monitor.service.reporting import report_text

    config = load(args)
    _configure_logs(config)
    world = load_world(config)
    now = utc_now()
    options = _report_options(args, world, now)
    if args.output is not None and not args.output.parent.is_dir():
        folder = args.output.parent
        raise CommandError(f"cannot write {args.output}: no folder {folder}", EXIT_FILE)
    progress = ProgressLine(sys.stderr, enabled=args.progress or sys.stderr.isatty())

    async def go(store: Store) -> str:
        return await report_text(store, world, options, now=now, progress=progress)

    try:
        text = with_read_only_store(config, go)
    finally:
        progress.done()
    _write_report(text, args.output)
    return EXIT_OK


def _report_options(args: argparse.Namespace, world: World, now: datetime) -> ReportOptions:
    from monitor.service.reporting import ReportOptions

    try:
        return ReportOptions.parse(
            period=args.period,
            first_day=args.first_day,
            last_day=args.last_day,
            group_by=args.group_by,
            form=args.format,
            today=now.astimezone(world.default_calendar.timezone).date(),
        )
    except ValueError as error:
        raise CommandError(str(error), EXIT_CONFIG) from None


def _write_report(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot write {output}: {error.strerror or error}", EXIT_FILE) from None

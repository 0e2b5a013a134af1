"""The `svarstid` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from monitor import __version__
from monitor.config import Config, ConfigError, default_config_path, load_config

# The documented exit codes (README, "Commands").
EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran and did not succeed: not sent, no such probe, a bad file
EXIT_CONFIG = 2  # the configuration or the command line is wrong
EXIT_DATABASE = 3  # the database is missing, not migrated, or cannot be reached
EXIT_FILE = 4  # a file or folder the command must write cannot be used


class CommandError(Exception):
    """A failure a command reports as one line on stderr, with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def printable(text: str) -> str:
    """``text`` safe for a terminal: control and format characters (ESC of cursor moves and
    OSC-8 links, bidi overrides, line breaks) shown as escapes, never interpreted."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


Handler = Callable[[argparse.Namespace], int]


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="configuration file (default: $SVARSTID_CONFIG, else ./svarstid.yaml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svarstid", description="Measures how fast and how well inboxes answer e-mail."
    )
    parser.add_argument("--version", action="version", version=f"svarstid {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _daemon_commands(commands)
    _message_commands(commands)
    _demo_command(commands)
    _report_command(commands)
    from monitor import user_commands

    user_commands.add_arguments(commands.add_parser("user", help="status page accounts"))
    return parser


def _daemon_commands(commands: Any) -> None:
    run = commands.add_parser("run", help="run the monitor daemon")
    _add_config(run)
    check = commands.add_parser("check-config", help="validate the config and show a summary")
    _add_config(check)
    send = commands.add_parser("send-now", help="send one probe to a target now")
    send.add_argument("target_id")
    send.add_argument("--force", action="store_true", help="send even with a probe outstanding")
    _add_config(send)
    status = commands.add_parser("status", help="a table of targets and their last outcome")
    _add_config(status)
    database = commands.add_parser("db", help="database maintenance")
    db_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="apply schema migrations")
    _add_config(upgrade)


def _message_commands(commands: Any) -> None:
    inspect = commands.add_parser(
        "inspect", help="classify and match .eml files without a daemon or database"
    )
    inspect.add_argument("files", nargs="+", type=Path, metavar="MESSAGE.eml")
    inspect.add_argument("--probes", type=Path, help="JSON list of probes to match against")
    inspect.add_argument("--json", action="store_true", help="one JSON object per message")
    unmatched = commands.add_parser("unmatched", help="list messages no probe claimed")
    _add_config(unmatched)
    assign = commands.add_parser("assign", help="tie a held message to a probe by hand")
    assign.add_argument("message_id", help="Message-ID or stored message key")
    assign.add_argument("probe_token")
    _add_config(assign)


def _demo_command(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="run the monitor against simulated municipalities, in-process"
    )
    demo.add_argument("--database", help="database URL (default: a temporary SQLite file)")
    demo.add_argument("--listen", default="127.0.0.1:9180", help="HTTP host:port")
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    demo.add_argument(
        "--history-days",
        type=int,
        default=90,
        help="days of history to replay in virtual time before going live (0: none)",
    )


def _report_command(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="KKiK figures per target, county or tag over a period"
    )
    report.add_argument("--period", help="2026 | 2026-Q3 | 2026-09 (default: this year)")
    report.add_argument("--from", dest="first_day", metavar="DATE", help="first day, YYYY-MM-DD")
    report.add_argument("--to", dest="last_day", metavar="DATE", help="last day (included)")
    report.add_argument(
        "--group-by", default="target", help="target | county | tag:NAME | tag:PREFIX* | all"
    )
    report.add_argument(
        "--format",
        default="table",
        choices=("table", "csv", "json", "markdown", "html"),
    )
    report.add_argument("--output", type=Path, help="write to this file instead of stdout")
    report.add_argument("--progress", action="store_true", help="show progress on stderr")
    _add_config(report)


def load(args: argparse.Namespace) -> Config:
    path = args.config or default_config_path(os.environ, Path.cwd())
    return load_config(path, os.environ)


def _print_config_error(error: ConfigError, out: TextIO) -> None:
    where = f" in {error.file}" if error.file else ""
    print(f"svarstid: configuration error{where}:", file=out)
    for message in error.errors:
        print(f"  {printable(message)}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name = _command_name(args)
    handler = _handlers()[name]
    try:
        return handler(args)
    except ConfigError as error:
        _print_config_error(error, sys.stderr)
        return EXIT_CONFIG
    except CommandError as error:
        print(f"svarstid {name}: {printable(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return EXIT_OK


def _command_name(args: argparse.Namespace) -> str:
    return "db upgrade" if args.command == "db" else str(args.command)


def _handlers() -> dict[str, Handler]:
    from monitor import commands, user_commands

    return {
        "run": commands.run,
        "check-config": commands.check_config,
        "send-now": commands.send_now,
        "status": commands.status,
        "db upgrade": commands.db_upgrade,
        "inspect": commands.inspect,
        "unmatched": commands.unmatched,
        "assign": commands.assign,
        "demo": commands.demo,
        "report": commands.report,
        "user": user_commands.run,
    }


def run_until_signalled(
    main_coro: Callable[[asyncio.Event], Coroutine[Any, Any, int]],
) -> int:
    """Run a coroutine that stops when SIGTERM/SIGINT sets the event it is given."""

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        return await main_coro(stop)

    return asyncio.run(runner())


def format_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    try:
        return value.astimezone().strftime("%Y-%m-%d %H:%M")
    except OverflowError:  # a mail dated at the end of time has no local time
        return value.strftime("%Y-%m-%d %H:%M %Z")

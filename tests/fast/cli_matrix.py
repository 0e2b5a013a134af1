"""Every `svarstid` subcommand as a real process, against one database configured one way.

``python -m monitor`` runs in a child process with only the environment the test gives it,
so a command that resolved the database differently from the daemon (the bare URL instead
of password_file, the file's URL instead of an SVARSTID_DATABASE__ override) fails here.

Used by tests/fast/test_cli_processes.py (SQLite, the path only in an env override) and
tests/integration/test_cli_postgres.py (PostgreSQL, the password only in a file).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from monitor.adapters.imap import FetchedMail
from monitor.composition import build
from monitor.config import load_config
from monitor.demo.mailservers import RecordingSmtpServer

COMMAND_TIMEOUT = 90.0
LUND = {"id": "lund", "name": "Lund", "address": "kc@lund.example.invalid", "kommunkod": "1281"}
# A held answer whose subject carries a terminal escape: an OSC-8 link and a screen clear.
HOSTILE_SUBJECT = "Besked \x1b]8;;http://evil.example.invalid\x1b\\klicka\x1b]8;;\x1b\\ \x1b[2J"
HELD_ANSWER = (
    "From: Handläggare <registrator@servicecenter.example.net>\r\n"
    "To: matning@kontroll.example.se\r\n"
    f"Subject: {HOSTILE_SUBJECT}\r\n"
    "Message-ID: <besked-42@lund.example.invalid>\r\n"
    "Date: Tue, 02 Jun 2026 12:30:00 +0200\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    "Hej! Bygglov krävs för förrådet.\r\n"
).encode()


@dataclass(frozen=True)
class Finished:
    code: int
    out: str
    err: str

    def one_error_line(self, command: str) -> str:
        """The single stderr line of a failed command (no traceback, no log lines)."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"svarstid {command}: "), self.err
        return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any SVARSTID_ setting, plus ``extra``."""
    kept = {k: v for k, v in os.environ.items() if not k.upper().startswith("SVARSTID_")}
    kept.pop("NOTIFY_SOCKET", None)
    return {**kept, **extra}


@dataclass
class Cli:
    """Runs subcommands of one configuration as child processes."""

    config: Path
    environ: dict[str, str] = field(default_factory=dict)

    async def __call__(self, *argv: str) -> Finished:
        process = await asyncio.create_subprocess_exec(
            *self._argv(argv),
            env=child_environment(self.environ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
        assert process.returncode is not None
        return Finished(process.returncode, out.decode(), err.decode())

    def _argv(self, argv: tuple[str, ...]) -> list[str]:
        if argv[0] in ("inspect", "demo"):
            return [sys.executable, "-m", "monitor", *argv]
        return [sys.executable, "-m", "monitor", *argv, "--config", str(self.config)]

    async def run_daemon_until_healthy_then_sigterm(self, listen_port: int) -> Finished:
        """`svarstid run`: started, answering /-/healthy, stopped by SIGTERM."""
        process = await asyncio.create_subprocess_exec(
            *self._argv(("run",)),
            env=child_environment(self.environ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            healthy = await _wait_healthy(listen_port, process)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
        assert healthy, f"svarstid run never answered /-/healthy: {err.decode()[-2000:]}"
        assert process.returncode is not None
        return Finished(process.returncode, out.decode(), err.decode())

    async def ingest_held_answer(self) -> None:
        """Store a mail no probe claims, the way the daemon's inbox does."""
        config = load_config(self.config, self.environ)
        app = build(config, clock=lambda: datetime(2026, 6, 2, 11, 0, tzinfo=UTC))
        try:
            stored = await app.inbox.ingest(
                FetchedMail("INBOX", 7, 101, datetime(2026, 6, 2, 10, 30, tzinfo=UTC), HELD_ANSWER)
            )
            assert stored.probe_token is None
        finally:
            await app.store.close()


async def _wait_healthy(port: int, process: asyncio.subprocess.Process) -> bool:
    url = f"http://127.0.0.1:{port}/-/healthy"
    async with aiohttp.ClientSession() as http:
        for _ in range(int(COMMAND_TIMEOUT * 10)):
            if process.returncode is not None:
                return False
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    return False


def base_config(
    smtp_port: int, listen_port: int, database: Mapping[str, object]
) -> dict[str, object]:
    """SMTP on loopback, IMAP on a closed loopback port (the daemon retries), quiet logs."""
    return {
        "mailbox": {
            "address": "matning@kontroll.example.se",
            "reply_address": "svar+{token}@kontroll.example.se",
        },
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
        "imap": {
            "host": "127.0.0.1",
            "port": 1,
            "security": "none",
            "username": "u",
            "password": "p",
        },
        "database": dict(database),
        "http": {"listen": f"127.0.0.1:{listen_port}"},
        "logging": {"level": "warning", "format": "text"},
        "targets_file": "targets.yaml",
    }


async def every_subcommand(cli: Cli, smtp: RecordingSmtpServer, listen_port: int) -> None:
    """The whole life of an installation, each subcommand as a process, on one database.

    The database starts absent (SQLite) or empty (PostgreSQL).
    """
    checked = await cli("check-config")
    assert checked.code == 0, checked.err
    for read_only in ("status", "unmatched", "report"):
        refused = await cli(read_only)
        assert refused.code == 3, (read_only, refused.err)
        assert "svarstid db upgrade" in refused.one_error_line(read_only)

    upgraded = await cli("db", "upgrade")
    assert (upgraded.code, upgraded.out.strip()) == (0, "database schema is up to date"), upgraded
    for read_only in ("status", "unmatched", "report"):
        shown = await cli(read_only)
        assert shown.code == 0, (read_only, shown.err)

    sent = await cli("send-now", "lund")
    assert sent.code == 0, sent.err
    token = sent.out.split()[1]
    assert len(smtp.messages) == 1

    await cli.ingest_held_answer()
    held = await cli("unmatched")
    assert held.code == 0, held.err
    assert "<besked-42@lund.example.invalid>" in held.out
    assert "\x1b" not in held.out and "\\x1b]8;;" in held.out

    assigned = await cli("assign", "besked-42@lund.example.invalid", token)
    assert assigned.code == 0, assigned.err
    assert f"message assigned to probe {token}" in assigned.out

    status = await cli("status")
    assert status.code == 0 and "lund" in status.out and " 1 " in status.out, status

    report = await cli("report", "--period", "2026", "--format", "csv")
    assert report.code == 0, report.err
    assert report.out.splitlines()[-1].startswith("total,total,Alla,,")

    again = await cli("check-config")
    assert again.code == 0 and "1 probes in the database's history" in again.out, again

    stopped = await cli.run_daemon_until_healthy_then_sigterm(listen_port)
    assert stopped.code == 0, stopped.err

"""Helpers for the integration tier: private Postfix + Dovecot, a cuttable TCP proxy, a
PostgreSQL cluster that can be stopped and restarted on its port, daemon configs and a
daemon run as a real process.

Nothing here mocks a protocol: the proxy forwards bytes, the servers are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import holidays
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MAIL_SERVERS = REPO / "scripts" / "mail-servers"
PG_TMP = REPO / "scripts" / "pg-tmp"

MUNICIPAL_DOMAIN = "kommun.example.se"
MONITOR_DOMAIN = "matning.example.se"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def servers_unavailable(reason: str) -> None:
    """Skip, or fail in CI, because Postfix/Dovecot cannot run here."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: integration servers are required)")
    pytest.skip(
        f"{reason}. To run it: as root on Debian/Ubuntu, `bash scripts/mail-servers install` "
        "(apt-get install postfix dovecot-imapd dovecot-lmtpd dovecot-sieve), then "
        "`pytest -m integration`"
    )


def installed_by(setup: Path, tool: str, *, package: str, timeout: float) -> str:
    """The path of ``tool`` that the script ``setup`` prints last, installing it if need be.

    When the script fails the test is skipped, or fails where CI=true.
    """
    result = subprocess.run(
        ["bash", str(setup)], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode == 0:
        return result.stdout.strip().splitlines()[-1]
    message = (
        f"{tool} is not available and scripts/{setup.name} could not install it "
        f"({result.stderr.strip()[-300:]}). Enable with: sudo scripts/{setup.name} "
        f"(or apt-get install --no-install-recommends {package})"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- Postfix + Dovecot ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PostfixDovecot:
    """A running private Postfix (SMTP) in front of a private Dovecot (IMAP, LMTP, Sieve)."""

    directory: Path
    smtp_port: int
    imap_port: int
    password: str
    postfix_log: Path
    dovecot_log: Path

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(MAIL_SERVERS), "stop", str(self.directory)],
            capture_output=True,
            check=False,
            timeout=60,
        )

    def logs(self) -> str:
        """Both servers' logs, for a failing test's message."""
        texts = []
        for path in (self.postfix_log, self.dovecot_log):
            with contextlib.suppress(OSError):
                texts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(texts)


def start_postfix_dovecot(
    *, users: Sequence[str], domains: Sequence[str], vacation: str | None = None
) -> PostfixDovecot:
    if os.geteuid() != 0:
        servers_unavailable("Postfix needs root to run a private instance")
    directory = Path(tempfile.mkdtemp(prefix="svarstid-mail-"))  # in /tmp: daemons must reach it
    command = ["bash", str(MAIL_SERVERS), "start", str(directory)]
    for domain in domains:
        command += ["--domain", domain]
    for user in users:
        command += ["--user", user]
    if vacation is not None:
        command += ["--vacation", vacation]
    try:
        started = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        servers_unavailable(f"scripts/mail-servers could not run: {error}")
        raise
    if started.returncode != 0:
        servers_unavailable(f"scripts/mail-servers failed: {started.stderr.strip()[-600:]}")
    values = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    return PostfixDovecot(
        directory=directory,
        smtp_port=int(values["SMTP_PORT"]),
        imap_port=int(values["IMAP_PORT"]),
        password=values["PASSWORD"],
        postfix_log=Path(values["POSTFIX_LOG"]),
        dovecot_log=Path(values["DOVECOT_LOG"]),
    )


# -- a TCP proxy that can be cut, to take a server away without losing its state ------------------


class TcpProxy:
    """Forwards 127.0.0.1:port to an upstream; ``cut()`` closes every connection and the
    listener (clients get ECONNREFUSED), ``restore()`` listens on the same port again.

    ``on_downstream`` sees each chunk the upstream sends to the client (after forwarding).
    """

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.on_downstream: Callable[[bytes], None] = lambda _chunk: None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    @property
    def up(self) -> bool:
        return self._server is not None

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def restore(self) -> None:
        for _ in range(50):
            try:
                await self.start()
                return
            except OSError:  # the old socket may linger for a moment
                await asyncio.sleep(0.1)
        raise RuntimeError(f"proxy could not listen on {self.port} again")

    async def stop(self) -> None:
        await self.cut()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            self._forget(task, writer)
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(
                _pump(reader, up_writer, lambda _chunk: None),
                _pump(up_reader, writer, self.on_downstream),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for end in (writer, up_writer):
                end.transport.abort()
                self._writers.discard(end)
            self._forget(task, writer)

    def _forget(self, task: asyncio.Task[None], writer: asyncio.StreamWriter) -> None:
        self._tasks.discard(task)
        self._writers.discard(writer)


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Callable[[bytes], None]
) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
        seen(chunk)
    writer.transport.abort()


# -- PostgreSQL that can be stopped and started again on the same port ---------------------------


@dataclass
class PostgresCluster:
    """A throw-away cluster of this test's own (scripts/pg-tmp), so stopping it hurts no other."""

    directory: Path
    url: str

    @classmethod
    def start(cls) -> PostgresCluster:
        directory = Path(tempfile.mkdtemp(prefix="svarstid-pgdown-"))
        result = _pg_tmp("start", directory)
        if result.returncode != 0:
            reason = f"scripts/pg-tmp could not start PostgreSQL: {result.stderr.strip()[-400:]}"
            if in_ci():
                pytest.fail(reason)
            pytest.skip(f"{reason}. Install the PostgreSQL server (apt-get install postgresql).")
        return cls(directory, result.stdout.strip().splitlines()[-1])

    @property
    def port(self) -> int:
        return int((self.directory / "port").read_text().strip())

    def stop(self) -> None:
        _pg_tmp("stop", self.directory)

    def restart(self) -> None:
        """Start again on the same port (pg-tmp would pick a new one)."""
        options = (
            f"-p {self.port} -k {self.directory}/socket -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        command = [
            _pg_ctl(),
            "-D",
            f"{self.directory}/data",
            "-l",
            f"{self.directory}/server.log",
            "-w",
            "-t",
            "30",
            "start",
            "-o",
            options,
        ]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, capture_output=True, check=True, timeout=60)

    def remove(self) -> None:
        self.stop()
        subprocess.run(["rm", "-rf", str(self.directory)], check=False)


def _pg_tmp(action: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PG_TMP), action, str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _pg_ctl() -> str:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return str(found[-1]) if found else "pg_ctl"


# -- configuration ------------------------------------------------------------------------------

_FALLBACK_COUNTRIES = ("SE", "NO", "FI", "DK", "IS", "DE", "US")


def always_open_calendar(now: datetime | None = None) -> dict[str, Any]:
    """A calendar open every day 00:00-23:59, in a zone where it is now around midday (so a
    short run never crosses the closed minute before midnight) and in a country where
    today and tomorrow are not holidays."""
    now = now or datetime.now(UTC)
    offset = 12 - now.hour  # hours east of UTC that make it about noon
    offset = max(-12, min(14, offset))
    zone = "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # POSIX signs are inverted
    local_day = (now + timedelta(hours=offset)).date()
    return {
        "country": _open_country(local_day),
        "timezone": zone,
        "office_hours": {day: "00:00-23:59" for day in _WEEKDAYS},
    }


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _open_country(day: date) -> str:
    for country in _FALLBACK_COUNTRIES:
        closed = holidays.country_holidays(country, years=day.year, categories=_categories(country))
        if day not in closed and day + timedelta(days=1) not in closed:
            return country
    return "SE"


def _categories(country: str) -> tuple[str, ...]:
    return ("public", "de_facto") if country == "SE" else ("public",)


@dataclass
class DaemonConfig:
    """What a test varies in a daemon's YAML configuration."""

    folder: Path
    smtp_port: int
    imap_port: int
    imap_user: str
    imap_password: str
    database_url: str
    targets: Sequence[Mapping[str, str]]
    mailbox_address: str
    reply_address: str
    http_listen: str = "127.0.0.1:0"
    schedule: Mapping[str, Any] = field(default_factory=dict)
    imap: Mapping[str, Any] = field(default_factory=dict)
    smtp: Mapping[str, Any] = field(default_factory=dict)

    def write(self) -> Path:
        (self.folder / "targets.yaml").write_text(yaml.safe_dump({"targets": list(self.targets)}))
        config = {
            "mailbox": {"address": self.mailbox_address, "reply_address": self.reply_address},
            "smtp": {
                "host": "127.0.0.1",
                "port": self.smtp_port,
                "security": "none",
                "timeout": 10,
                **self.smtp,
            },
            "imap": {
                "host": "127.0.0.1",
                "port": self.imap_port,
                "security": "none",
                "username": self.imap_user,
                "password": self.imap_password,
                "timeout": 10,
                **self.imap,
            },
            "database": {"url": self.database_url},
            "http": {"listen": self.http_listen},
            "schedule": {
                "tick_seconds": 1,
                "send_window": "00:00-23:59",
                "jitter_minutes": 0,
                **self.schedule,
            },
            "calendar": always_open_calendar(),
            "logging": {"level": "info", "format": "json"},
            "targets_file": "targets.yaml",
        }
        path = self.folder / "svarstid.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True))
        return path


# -- the daemon as a real process ----------------------------------------------------------------


class DaemonProcess:
    """`python -m monitor run --config PATH`, its log appended to ``log_path``."""

    def __init__(self, config_path: Path, http_port: int, log_path: Path) -> None:
        self.config_path = config_path
        self.http_port = http_port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--config", str(self.config_path)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a power cut of the process."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def get(self, path: str) -> tuple[int, str]:
        return http_get(self.http_port, path)


def http_get(port: int, path: str) -> tuple[int, str]:
    """HTTP GET on a daemon: (status, body), (0, reason) when nothing answers. Blocking:
    call it through asyncio.to_thread in async code."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()
    except OSError as error:
        return 0, str(error)


_PRELOADER = """
import os, sys
import monitor.cli, monitor.commands  # the whole daemon, imported once
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    if command == "spawn":
        config, log = argument.split(" ", 1)
        pid = os.fork()
        if pid == 0:
            out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            code = 1
            try:
                code = monitor.cli.main(["run", "--config", config])
            finally:
                os._exit(code or 0)
        print(pid, flush=True)
    elif command == "reap":
        os.waitpid(int(argument), 0)
        print("reaped", flush=True)
"""


class PreloadedDaemons:
    """Starts daemon processes that run ``monitor.cli.main(["run", "--config", PATH])``,
    forked from one process that imported svarstid once.

    Each daemon is its own OS process (own sockets, database connections and memory; SIGKILL
    ends it as abruptly as any), but starts in ~0.3 s instead of the 2-5 s that importing
    svarstid takes on a loaded 2-core machine: what lets a test crash it 30 times in a minute.
    """

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.pid: int | None = None
        self.starts = 0
        self._parent = subprocess.Popen(
            [sys.executable, "-c", _PRELOADER],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def _ask(self, line: str) -> str:
        assert self._parent.stdin is not None and self._parent.stdout is not None
        self._parent.stdin.write(line + "\n")
        self._parent.stdin.flush()
        return self._parent.stdout.readline().strip()

    def start(self) -> None:
        assert self.pid is None, "one daemon at a time"
        self.pid = int(self._ask(f"spawn {self.config_path} {self.log_path}"))
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL, at once and synchronously (the zombie keeps the pid until reaped)."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            self._ask(f"reap {self.pid}")
            self.pid = None

    def close(self) -> None:
        self.kill()
        if self._parent.stdin is not None:
            self._parent.stdin.close()
        self._parent.wait(10)


async def eventually(
    check: Callable[[], Awaitable[object]] | Callable[[], object],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f} s: {what}")
        await asyncio.sleep(interval)


def metric_value(exposition: str, name: str, labels: str = "") -> float | None:
    """The value of one sample in a Prometheus text exposition, e.g. ('x_total', 'a="b"')."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in exposition.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return None

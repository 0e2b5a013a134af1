"""sd_notify on a real AF_UNIX datagram socket, and the daemon's READY/WATCHDOG/STOPPING."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_support import LUND, local_config, write_config

from monitor.adapters.systemd import Notifier, watchdog_interval
from monitor.composition import build
from monitor.config import load_config
from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer

USER, PASSWORD = "svarstid", "imap-pw"


class NotifySocket:
    """What systemd listens on: a datagram socket; each datagram is one notification."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name  # the value of $NOTIFY_SOCKET

    def receive(self, timeout: float = 10.0) -> list[str]:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode("utf-8").split("\n")

    async def receive_async(self, timeout: float = 10.0) -> list[str]:
        return await asyncio.to_thread(self.receive, timeout)


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifySocket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        path = str(tmp_path / "notify.sock")
        sock.bind(path)
        name = path
    else:
        abstract = f"svarstid-test-{uuid.uuid4().hex}"
        sock.bind(b"\0" + abstract.encode())
        name = "@" + abstract
    yield NotifySocket(sock, name)
    sock.close()


def test_ready_with_status_arrives_as_one_datagram(notify_socket: NotifySocket) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": notify_socket.name})
    assert notifier.ready("leader: sending\nand reading")
    assert notify_socket.receive() == ["READY=1", "STATUS=leader: sending and reading"]


def test_stopping_and_status_are_sent(notify_socket: NotifySocket) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": notify_socket.name})
    notifier.status("standby")
    notifier.stopping()
    assert notify_socket.receive() == ["STATUS=standby"]
    assert notify_socket.receive() == ["STOPPING=1", "STATUS=stopping"]


def test_watchdog_ping_is_sent_only_when_systemd_asked_for_one(
    notify_socket: NotifySocket,
) -> None:
    without = Notifier.from_environment({"NOTIFY_SOCKET": notify_socket.name})
    with_watchdog = Notifier.from_environment(
        {"NOTIFY_SOCKET": notify_socket.name, "WATCHDOG_USEC": "60000000"}
    )
    assert not without.watchdog()
    assert with_watchdog.watchdog()
    assert notify_socket.receive() == ["WATCHDOG=1"]


def test_outside_systemd_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert not notifier.ready("x")
    assert not notifier.watchdog()


def test_a_vanished_notify_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert not notifier.ready("x")


@pytest.mark.parametrize(
    ("environ", "pid", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 42, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "42"}, 42, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "41"}, 42, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "x"}, 42, None),
        ({"WATCHDOG_USEC": "0"}, 42, None),
        ({"WATCHDOG_USEC": "soon"}, 42, None),
        ({}, 42, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_for_this_process_only(
    environ: dict[str, str], pid: int, expected: float | None
) -> None:
    assert watchdog_interval(environ, pid) == expected


def test_a_notify_socket_name_that_is_neither_path_nor_abstract_is_ignored() -> None:
    assert not Notifier.from_environment({"NOTIFY_SOCKET": "relative/name"}).enabled


def write_notify_config(folder: Path, smtp_port: int, imap_port: int) -> Path:
    lund = {**LUND, "address": "info@lund.example.invalid", "kommunkod": "1281"}
    config = local_config(folder / "notify.db", smtp_port, imap_port, login=(USER, PASSWORD))
    config["http"] = {"listen": "127.0.0.1:0"}
    config["leader"] = {"poll_seconds": 0.1}
    return write_config(folder, [lund], config)


async def test_daemon_says_ready_after_imap_login_pings_the_watchdog_and_says_stopping(
    notify_socket: NotifySocket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smtp, imap = RecordingSmtpServer(), InProcessImapServer()
    smtp_port = await smtp.start()
    imap_port = await imap.start(users={USER: PASSWORD})
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.name)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    app = build(load_config(write_notify_config(tmp_path, smtp_port, imap_port), {}))
    running = asyncio.create_task(app.daemon.run())
    try:
        ready = await notify_socket.receive_async()
        assert ready[0] == "READY=1"
        assert ready[1].startswith("STATUS=leader") and "IMAP connected" in ready[1]
        # READY means migrated, logged in to IMAP and bound: all three are true right now.
        assert (await app.store.targets())[0].id == "lund"
        assert app.daemon.imap_connected()
        pings = [await notify_socket.receive_async() for _ in range(3)]
        assert pings == [["WATCHDOG=1"]] * 3
    finally:
        app.daemon.stop()
        await running
        await smtp.stop()
        await imap.stop()
    rest = []
    while "STOPPING=1" not in rest:
        rest = await notify_socket.receive_async()
    assert rest == ["STOPPING=1", "STATUS=stopping"]

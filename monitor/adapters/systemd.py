"""systemd service notifications (sd_notify) without libsystemd.

The protocol is a datagram of ``KEY=VALUE`` lines sent to the AF_UNIX socket named in
$NOTIFY_SOCKET (sd_notify(3)); a name starting with ``@`` is in the abstract namespace. With
Type=notify systemd waits for READY=1; with WatchdogSec it kills and restarts the service when
no WATCHDOG=1 arrives within $WATCHDOG_USEC. Outside systemd every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notifier:
    """Where notifications go and how often the watchdog wants a ping."""

    address: str | bytes | None = None  # None: not started by systemd (or NotifyAccess off)
    watchdog_interval: float | None = None  # seconds between WATCHDOG=1; None: no watchdog

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], pid: int | None = None) -> Notifier:
        """The notifier systemd configured for process ``pid`` (default: this process)."""
        return cls(
            address=_socket_address(environ.get("NOTIFY_SOCKET", "")),
            watchdog_interval=watchdog_interval(environ, os.getpid() if pid is None else pid),
        )

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; False when not sent (never raises)."""
        if self.address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(payload, self.address)
        except OSError as error:
            log.warning("sd_notify to %r failed: %s", self.address, error)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", _status(status))

    def status(self, text: str) -> bool:
        return self.notify(_status(text))

    def watchdog(self) -> bool:
        return self.watchdog_interval is not None and self.notify("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify("STOPPING=1", _status(status))


def _status(text: str) -> str:
    # One datagram line per assignment: a line break would start a new (bogus) assignment.
    return "STATUS=" + " ".join(text.split())


def _socket_address(name: str) -> str | bytes | None:
    if not name:
        return None
    if name.startswith("@"):
        return b"\0" + name[1:].encode("utf-8")  # Linux abstract namespace
    if name.startswith("/"):
        return name
    log.warning("ignoring NOTIFY_SOCKET %r: neither a path nor an abstract name", name)
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Half of $WATCHDOG_USEC in seconds (sd_watchdog_enabled(3) advice), or None.

    None when the variable is missing or invalid, or when $WATCHDOG_PID names another process
    (the watchdog was meant for a parent or child).
    """
    usec_text = environ.get("WATCHDOG_USEC", "").strip()
    if not usec_text.isdigit() or int(usec_text) == 0:
        return None
    pid_text = environ.get("WATCHDOG_PID", "").strip()
    if pid_text and (not pid_text.isdigit() or int(pid_text) != pid):
        return None
    return int(usec_text) / 1_000_000 / 2

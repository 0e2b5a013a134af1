"""Structured logging: one event per line, JSON off a TTY, readable on one.

Log calls pass facts as ``extra={"fields": {...}}``; only those fields and the message
are written. Message bodies and secrets are never passed to a logger anywhere in
svarstid, and the formatter additionally refuses field names that would carry them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_FORBIDDEN_FIELDS = frozenset({"password", "body", "raw", "secret", "token_secret"})


def event(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with structured ``fields`` (probe token, target, …)."""
    logger.log(level, message, extra={"fields": fields})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    raw = getattr(record, "fields", None)
    if not isinstance(raw, dict):
        return {}
    return {key: value for key, value in raw.items() if key not in _FORBIDDEN_FIELDS}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        document.update(_fields(record))
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        pairs = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        if pairs:
            line = f"{line}  {pairs}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of each record, not at set-up time:
    a stream replaced after set-up (by a test runner, a daemoniser) may be closed by now."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send every svarstid log line to ``stream`` (default: stderr) in the chosen format."""
    target = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not target.isatty())
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log protocol traffic at DEBUG, which would include message bodies; pymap
    # (the demo's in-process IMAP server) logs LOGIN with the password, aiosqlite every call.
    noisy_loggers = ("aioimaplib", "aiosmtplib", "mail.log", "apscheduler", "aiohttp.access")
    for noisy in (*noisy_loggers, "pymap", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

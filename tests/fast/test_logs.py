"""Logs: JSON lines off a TTY, one event per line with probe and target, never a secret or a body.

A real probe goes out over SMTP (with AUTH) and a real reply comes back over IMAP through the
daemon while every logger runs at DEBUG; the captured output is then searched for the
passwords of both accounts and for text of both message bodies.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from daemon_support import LUND, eventually, local_config, write_config

from monitor import logs
from monitor.composition import build
from monitor.config import load_config
from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer
from monitor.demo.replies import human_answer, read_probe
from monitor.domain.model import OutcomeState

STOCKHOLM = ZoneInfo("Europe/Stockholm")
SMTP_USER, SMTP_PASSWORD = "sandare", "smtp-L0sen-7fq2"
IMAP_USER, IMAP_PASSWORD = "svarstid", "imap-L0sen-9xk4"
ANSWER = "Hej! Biblioteket har öppet till klockan nitton på torsdagar. Välkommen!"


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_by_default_off_a_tty_one_object_per_line(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("info", "auto", stream)
    logs.event(
        logging.getLogger("monitor.test"), logging.INFO, "probe sent", probe="abc", target="lund"
    )
    logging.getLogger("monitor.test").info("line one\nline two")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert (first["msg"], first["probe"], first["target"], first["level"]) == (
        "probe sent",
        "abc",
        "lund",
        "info",
    )
    assert json.loads(lines[1])["msg"] == "line one\nline two"


def test_readable_text_on_a_tty(restore_logging: None) -> None:
    stream = TtyStringIO()
    logs.configure("info", "auto", stream)
    logs.event(
        logging.getLogger("monitor.test"), logging.INFO, "probe sent", probe="abc", target="lund"
    )
    (line,) = stream.getvalue().splitlines()
    assert not line.startswith("{")
    assert "probe sent" in line and "probe=abc" in line and "target=lund" in line


@pytest.mark.parametrize("field", ["password", "body", "raw", "secret"])
def test_fields_that_would_carry_secrets_or_bodies_are_dropped(
    restore_logging: None, field: str
) -> None:
    stream = io.StringIO()
    logs.configure("debug", "json", stream)
    logs.event(logging.getLogger("monitor.test"), logging.INFO, "x", **{field: "SECRET-VALUE"})
    assert "SECRET-VALUE" not in stream.getvalue()


def write_logs_config(folder: Path, smtp_port: int, imap_port: int) -> Path:
    lund = {**LUND, "address": "kontaktcenter@lund.example.invalid"}
    (folder / "smtp-password").write_text(SMTP_PASSWORD + "\n")
    config = local_config(
        folder / "logs.db", smtp_port, imap_port, login=(IMAP_USER, IMAP_PASSWORD)
    )
    config["smtp"] |= {"username": SMTP_USER, "password_file": "smtp-password"}
    config["http"] = {"listen": "127.0.0.1:0"}
    config["schedule"] = {"jitter_minutes": 0}
    config["logging"] = {"level": "debug"}
    return write_config(folder, [lund], config)


def body_lines(text: str) -> list[str]:
    """Distinctive lines of a message body (long enough not to match by chance)."""
    return [line.strip() for line in text.splitlines() if len(line.strip()) >= 25]


async def test_a_real_send_and_ingest_at_debug_logs_no_password_and_no_body(
    tmp_path: Path, restore_logging: None
) -> None:
    smtp, imap = RecordingSmtpServer(), InProcessImapServer()
    smtp_port = await smtp.start(auth=(SMTP_USER, SMTP_PASSWORD))
    imap_port = await imap.start(users={IMAP_USER: IMAP_PASSWORD})
    config = load_config(write_logs_config(tmp_path, smtp_port, imap_port), {})
    stream = io.StringIO()
    logs.configure(config.logging.level.value, config.logging.format.value, stream)
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    clock_now = [datetime(2026, 6, 2, 10, 0, tzinfo=STOCKHOLM)]
    app = build(config, clock=lambda: clock_now[0])
    await app.daemon.start()
    try:
        (probe,) = await app.probing.tick()
        (delivered,) = await smtp.wait_for_messages(1)
        question = read_probe(delivered.raw)
        at = clock_now[0] + timedelta(hours=2)
        reply = human_answer(
            question, officer="Eva Lind", sender="eva@lund.example.invalid", answer=ANSWER, at=at
        )
        clock_now[0] = at + timedelta(minutes=1)
        await imap.append(IMAP_USER, reply, internaldate=at)
        await eventually(lambda: app.store.outcome(probe.token))
        outcome = await app.store.outcome(probe.token)
        assert outcome is not None and outcome.state is OutcomeState.ANSWERED
    finally:
        await app.daemon.shutdown()
        await smtp.stop()
        await imap.stop()

    output = stream.getvalue()
    records = [json.loads(line) for line in output.splitlines()]  # every line one JSON object
    sent = [r for r in records if r["msg"] == "probe sent"]
    assert [(r["probe"], r["target"]) for r in sent] == [(probe.token, "lund")]
    answered = [r for r in records if r["msg"] == "probe answered"]
    assert [(r["probe"], r["target"]) for r in answered] == [(probe.token, "lund")]
    for secret in (SMTP_PASSWORD, IMAP_PASSWORD):
        assert secret not in output
    body_text = body_lines(question.body) + body_lines(ANSWER)
    assert body_text, "the bodies have distinctive lines to look for"
    for line in body_text:
        assert line not in output, f"body text in the log: {line[:30]}…"
    assert question.subject not in output

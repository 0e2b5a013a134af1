"""`svarstid unmatched` and `svarstid assign`: the holding pen for mail no probe claimed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from daemon_support import LUND, insert_sent_probe, local_config, write_config

from monitor.adapters.imap import FetchedMail
from monitor.cli import main
from monitor.composition import build
from monitor.config import load_config
from monitor.domain.model import MatchMethod, MessageKind, OutcomeState

SENT = datetime(2026, 6, 2, 8, 30, tzinfo=UTC)  # Tuesday 10:30 in Stockholm
ANSWERED = SENT + timedelta(hours=2)

# A human answer from a shared service centre: no token, no thread headers, another domain,
# a rewritten subject and no quote: nothing ties it to the probe but a person's judgement.
UNTHREADED_ANSWER = (
    b"From: Handl\xc3\xa4ggare <registrator@servicecenter.example.net>\r\n"
    b"To: matning@kontroll.example.se\r\n"
    b"Subject: Besked i ditt \xc3\xa4rende\r\n"
    b"Message-ID: <besked-42@lund.example.invalid>\r\n"
    b"Date: Tue, 02 Jun 2026 12:30:00 +0200\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Hej! Tomten ligger inom detaljplan, s\xc3\xa5 bygglov kr\xc3\xa4vs f\xc3\xb6r "
    b"f\xc3\xb6rr\xc3\xa5det.\r\n\r\nMed v\xc3\xa4nlig h\xc3\xa4lsning\r\nHandl\xc3\xa4ggaren\r\n"
)


def write_pen_config(folder: Path) -> Path:
    return write_config(folder, [LUND], local_config(folder / "pen.db"))


async def seed(config_path: Path) -> None:
    app = build(load_config(config_path, {}), clock=lambda: ANSWERED + timedelta(minutes=5))
    await app.store.upgrade()
    await app.store.sync_targets(app.world.targets, SENT)
    await insert_sent_probe(app.store, "abcdefgh23", SENT)
    mail = FetchedMail("INBOX", 7, 101, ANSWERED, UNTHREADED_ANSWER)
    stored = await app.inbox.ingest(mail)
    assert stored.probe_token is None
    await app.store.close()


async def test_held_answer_assigned_by_hand_counts_as_answered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_pen_config(tmp_path)
    await seed(config_path)

    assert await _cli(["unmatched", "--config", str(config_path)]) == 0
    listing = capsys.readouterr().out
    assert "<besked-42@lund.example.invalid>" in listing

    command = ["assign", "besked-42@lund.example.invalid", "abcdefgh23", "--config"]
    assert await _cli([*command, str(config_path)]) == 0
    assert "outcome now answered" in capsys.readouterr().out

    app = build(load_config(config_path, {}))
    stored = await app.store.message_by_message_id("<besked-42@lund.example.invalid>")
    outcome = await app.store.outcome("abcdefgh23")
    await app.store.close()
    assert stored is not None and stored.match_method is MatchMethod.MANUAL
    assert stored.kind is MessageKind.HUMAN
    assert outcome is not None and outcome.state is OutcomeState.ANSWERED
    assert outcome.working_seconds == pytest.approx(2 * 3600)


async def test_assign_to_an_unknown_probe_is_refused(tmp_path: Path) -> None:
    config_path = write_pen_config(tmp_path)
    await seed(config_path)
    command = ["assign", "besked-42@lund.example.invalid", "zzzzzzzzzz", "--config"]
    assert await _cli([*command, str(config_path)]) == 1


async def _cli(argv: list[str]) -> int:
    import asyncio

    # The CLI runs its own event loop; keep it off this test's loop.
    return await asyncio.to_thread(main, argv)

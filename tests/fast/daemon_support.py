"""Shared helpers for the fast tests that run the daemon or the command line on a config file.

Tests are not a package: pytest puts this folder on sys.path (as it does tests/integration for
mailservers.py), so the tests here import it by its bare name, ``from daemon_support import``.

- ``local_config``: the settings of a daemon whose SMTP and IMAP servers are on 127.0.0.1
  without TLS and whose database is one SQLite file; a test adds or changes sections.
- ``write_config``: targets.yaml and the config file in a folder, as ``load_config`` reads them.
- ``insert_sent_probe``: a probe stored as sent, the way the daemon leaves it after a send.
- ``eventually``: poll a condition (a plain or async check) until it holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from monitor.adapters.sql import Store
from monitor.domain.model import Probe, ProbeState

MAILBOX = {
    "address": "matning@kontroll.example.se",
    "reply_address": "svar+{token}@kontroll.example.se",
}
LUND = {"id": "lund", "name": "Lund", "address": "kc@lund.example.invalid"}


def local_config(
    database: Path,
    smtp_port: int = 2525,
    imap_port: int = 1143,
    *,
    login: tuple[str, str] = ("u", "p"),
) -> dict[str, Any]:
    """Settings for servers on 127.0.0.1 without TLS, SQLite in ``database``, targets.yaml.

    ``login`` is the IMAP (user, password).
    """
    imap_user, imap_password = login
    return {
        "mailbox": dict(MAILBOX),
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
        "imap": {
            "host": "127.0.0.1",
            "port": imap_port,
            "security": "none",
            "username": imap_user,
            "password": imap_password,
        },
        "database": {"url": f"sqlite+aiosqlite:///{database}"},
        "targets_file": "targets.yaml",
    }


def write_config(
    folder: Path,
    targets: Sequence[Mapping[str, object]],
    config: Mapping[str, object],
    *,
    name: str = "svarstid",
) -> Path:
    """Write ``targets`` to folder/targets.yaml and ``config`` to folder/<name>.yaml."""
    listed = {"targets": [dict(target) for target in targets]}
    (folder / "targets.yaml").write_text(yaml.safe_dump(listed, allow_unicode=True))
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(dict(config)))
    return path


async def insert_sent_probe(store: Store, token: str, sent: datetime) -> Probe:
    """A probe to Lund (``LUND``) stored as sent at ``sent``: planned, sending, then sent."""
    probe = Probe(
        token=token,
        target_id="lund",
        target_address="kc@lund.example.invalid",
        question_id="q",
        persona_id="p",
        reply_address=f"svar+{token}@kontroll.example.se",
        message_id=f"<probe.{token}@kontroll.example.se>",
        subject="Bygglov för förråd?",
        body="Behöver jag bygglov för ett förråd på 12 kvadratmeter?",
        state=ProbeState.PLANNED,
        planned_at=sent,
    )
    await store.insert_probe(probe)
    await store.transition_probe(token, ProbeState.SENDING, sent)
    await store.transition_probe(token, ProbeState.SENT, sent, sent_at=sent)
    return probe


async def eventually(
    check: Callable[[], object], timeout: float = 10.0, interval: float = 0.05
) -> None:
    """Poll ``check`` (its result is awaited if it is a coroutine) until it is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(interval)

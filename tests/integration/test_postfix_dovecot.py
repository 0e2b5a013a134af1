"""The daemon against the mail servers people run: Postfix in, Dovecot (LMTP, Sieve, IMAP) out.

The daemon runs in-process with the real clock and its own scheduler. Its probes go through
a private Postfix to municipal mailboxes on a private Dovecot. A test responder reads the
probe from the municipal mailbox and answers through Postfix; Dovecot's IDLE tells the
daemon. A probe to a mailbox that does not exist draws Postfix's own DSN, and a mailbox with
a Sieve vacation rule sends Pigeonhole's RFC 3834 auto-reply: real peers, not fixtures.
The same run is made on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib
import pytest
from mailservers import (
    MONITOR_DOMAIN,
    MUNICIPAL_DOMAIN,
    DaemonConfig,
    PostfixDovecot,
    eventually,
    metric_value,
)

from monitor.composition import Application, build
from monitor.config import load_config
from monitor.demo.replies import human_answer, read_probe
from monitor.domain.model import (
    MatchMethod,
    MessageKind,
    OutcomeState,
    Probe,
    ProbeOutcome,
    ProbeState,
    StoredMessage,
)

pytestmark = pytest.mark.integration

HUMAN, VACATION = "kontakt", "semester"
DELIVERY_TIMEOUT = 30.0  # Postfix queue runs and Dovecot's IDLE delay are well below this


@dataclass
class Run:
    app: Application
    url: str
    servers: PostfixDovecot
    targets: dict[str, str]  # target id -> address


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'svarstid.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
async def run(
    postfix_dovecot: PostfixDovecot, monitor_mailbox: str, database_url: str, tmp_path: Path
) -> AsyncIterator[Run]:
    missing = f"finnsinte-{uuid.uuid4().hex[:8]}@{MUNICIPAL_DOMAIN}"
    targets = {
        HUMAN: f"kontakt@{MUNICIPAL_DOMAIN}",
        VACATION: f"semester@{MUNICIPAL_DOMAIN}",
        "finnsinte": missing,
    }
    local = monitor_mailbox.split("@")[0]
    config = DaemonConfig(
        folder=tmp_path,
        smtp_port=postfix_dovecot.smtp_port,
        imap_port=postfix_dovecot.imap_port,
        imap_user=monitor_mailbox,
        imap_password=postfix_dovecot.password,
        database_url=database_url,
        targets=[{"id": key, "name": key.title(), "address": a} for key, a in targets.items()],
        mailbox_address=monitor_mailbox,
        reply_address=f"{local}+{{token}}@{MONITOR_DOMAIN}",
    )
    app = build(load_config(config.write(), {}))
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    app.daemon.on_ready = ready.set_result
    daemon = asyncio.create_task(app.daemon.run())
    url = await asyncio.wait_for(ready, 30)
    try:
        yield Run(app, url, postfix_dovecot, targets)
    finally:
        app.daemon.stop()
        await asyncio.wait_for(daemon, 60)


async def sent_probes(app: Application, count: int) -> dict[str, Probe]:
    async def all_sent() -> dict[str, Probe] | None:
        records = await app.store.probe_records(datetime(2000, 1, 1, tzinfo=UTC))
        if len(records) < count or any(r.state is not ProbeState.SENT for r in records):
            return None
        probes = [await app.store.probe(r.token) for r in records]
        return {p.target_id: p for p in probes if p is not None}

    found: dict[str, Probe] = await eventually(
        all_sent, timeout=DELIVERY_TIMEOUT, what=f"{count} probes sent"
    )
    return found


def fetch_by_message_id(servers: PostfixDovecot, user: str, message_id: str) -> bytes | None:
    """The raw message with this Message-ID in a Dovecot mailbox (stdlib IMAP, test side)."""
    with imaplib.IMAP4("127.0.0.1", servers.imap_port) as client:
        client.login(user, servers.password)
        client.select("INBOX", readonly=True)
        _, found = client.uid("SEARCH", "HEADER", "Message-ID", message_id.strip("<>"))
        uids = found[0].split() if found and found[0] else []
        if not uids:
            return None
        _, data = client.uid("FETCH", uids[-1], "(BODY.PEEK[])")
        first = data[0]
        return first[1] if isinstance(first, tuple) else None


async def answer_as_officer(run: Run, probe: Probe) -> None:
    """The municipality reads the probe from its Dovecot mailbox and answers via Postfix."""
    address = run.targets[HUMAN]

    async def delivered() -> bytes | None:
        return await asyncio.to_thread(fetch_by_message_id, run.servers, address, probe.message_id)

    raw: bytes = await eventually(
        delivered, timeout=DELIVERY_TIMEOUT, what="the probe in the municipal mailbox"
    )
    received = read_probe(raw)
    assert received.reply_to == probe.reply_address
    reply = human_answer(
        received,
        officer="Eva Lind",
        sender=address,
        answer="Soporna hämtas varannan tisdag i ert område.",
        at=datetime.now(UTC),
    )
    await aiosmtplib.send(
        reply,
        sender=address,
        recipients=[received.reply_to],
        hostname="127.0.0.1",
        port=run.servers.smtp_port,
        start_tls=False,
        use_tls=False,
    )


async def settled_outcome(run: Run, token: str, state: OutcomeState) -> ProbeOutcome:
    async def reached() -> ProbeOutcome | None:
        outcome = await run.app.store.outcome(token)
        return outcome if outcome is not None and outcome.state is state else None

    try:
        found: ProbeOutcome = await eventually(
            reached, timeout=DELIVERY_TIMEOUT, what=f"probe {token} {state.value}"
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{await diagnosis(run, token)}") from None
    return found


async def diagnosis(run: Run, token: str) -> str:
    """What the daemon stored for a probe, then the servers' logs: for a failing test."""
    probe = await run.app.store.probe(token)
    messages = await run.app.store.messages_for_probe(token)
    stored = [(m.kind.value, m.match_method.value, m.received_at) for m in messages]
    unmatched = [(m.kind.value, m.subject) for m in await run.app.store.unmatched_messages()]
    outcome = await run.app.store.outcome(token)
    return (
        f"probe sent_at={probe.sent_at if probe else None} messages={stored} "
        f"unmatched={unmatched} outcome={outcome}\n{run.servers.logs()}"
    )


async def only_message(run: Run, token: str) -> StoredMessage:
    messages = await run.app.store.messages_for_probe(token)
    assert len(messages) == 1, [(m.kind, m.subject) for m in messages]
    return messages[0]


async def test_human_answer_through_postfix_is_seen_by_idle_and_measured(run: Run) -> None:
    probes = await sent_probes(run.app, 3)
    probe = probes[HUMAN]
    await answer_as_officer(run, probe)

    outcome = await settled_outcome(run, probe.token, OutcomeState.ANSWERED)
    message = await only_message(run, probe.token)
    assert (message.kind, message.match_method) == (MessageKind.HUMAN, MatchMethod.ADDRESS)
    assert message.has_new_text
    assert probe.sent_at is not None and outcome.first_human_at == message.received_at
    assert 0 <= (message.received_at - probe.sent_at).total_seconds() < DELIVERY_TIMEOUT
    assert outcome.within_one_working_day is True


async def test_probe_to_a_missing_mailbox_draws_a_real_dsn_that_fails_the_address(
    run: Run,
) -> None:
    probes = await sent_probes(run.app, 3)
    probe = probes["finnsinte"]

    outcome = await settled_outcome(run, probe.token, OutcomeState.NOT_MEASURABLE)
    message = await only_message(run, probe.token)
    assert message.kind is MessageKind.BOUNCE
    assert message.permanent is True
    assert message.from_address is not None and message.from_address.startswith("mailer-daemon@")
    assert outcome.bounced and outcome.bounce_permanent is True
    failing = await eventually(
        run.app.store.failing_targets, timeout=5, what="the missing address marked failing"
    )
    assert set(failing) == {"finnsinte"}
    exposition = await _metrics(run)
    assert metric_value(exposition, "svarstid_target_address_failing", 'target="finnsinte"') == 1.0


async def test_sieve_vacation_reply_is_an_acknowledgement_not_an_answer(run: Run) -> None:
    probes = await sent_probes(run.app, 3)
    probe = probes[VACATION]

    async def acknowledged() -> ProbeOutcome | None:
        outcome = await run.app.store.outcome(probe.token)
        return outcome if outcome is not None and outcome.first_ack_at is not None else None

    try:
        outcome: ProbeOutcome = await eventually(
            acknowledged, timeout=DELIVERY_TIMEOUT, what="the vacation reply counted"
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{await diagnosis(run, probe.token)}") from None
    message = await only_message(run, probe.token)
    assert message.kind is MessageKind.AUTO_REPLY
    assert message.match_method is MatchMethod.ADDRESS
    raw = message.raw or b""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["Auto-Submitted"]).startswith("auto-replied")  # RFC 3834, from Pigeonhole
    assert outcome.state is OutcomeState.UNANSWERED_SO_FAR
    assert outcome.first_human_at is None
    assert outcome.first_ack_at == message.received_at


async def test_daemon_reports_its_imap_connection_to_dovecot(run: Run) -> None:
    exposition = await eventually(
        lambda: _connected_metrics(run), timeout=10, what="svarstid_imap_connected 1"
    )
    assert metric_value(exposition, "svarstid_imap_connected") == 1.0


async def _connected_metrics(run: Run) -> str | None:
    exposition = await _metrics(run)
    return exposition if metric_value(exposition, "svarstid_imap_connected") == 1.0 else None


async def _metrics(run: Run) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{run.url}/metrics") as response:
        return await response.text()

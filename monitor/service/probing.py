"""Use case: decide which probes are due and send them through the persisted state machine."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from monitor.adapters.metrics import Metrics
from monitor.adapters.smtp import SendResult, SendStatus, SmtpSender, SmtpUnavailable
from monitor.adapters.sql import Store
from monitor.domain.model import Probe, ProbeState
from monitor.domain.probes import build_probe, new_token, render_probe
from monitor.domain.scheduling import Blocked, BlockReason, SendDecision, plan_sends, send_now
from monitor.domain.smtp_replies import rejects_address
from monitor.logs import event
from monitor.service.context import Clock, World

log = logging.getLogger(__name__)

HISTORY_SPAN = timedelta(days=400)
INFRASTRUCTURE_BACKOFF = (30.0, 900.0)  # seconds: first wait and ceiling after SMTP errors
UNSENT_DETAIL = "monitor stopped before sending: never left, not resent"


@dataclass(frozen=True)
class SendNowResult:
    """The probe sent, or why none was: a value, never an exception."""

    probe: Probe | None
    refusal: str | None = None


REFUSALS = {
    BlockReason.PAUSED: "the target is paused",
    BlockReason.OPTED_OUT: "the target's address is on the opt-out list",
    BlockReason.OUTSTANDING: "the target already has an outstanding probe (--force sends anyway)",
    BlockReason.NO_QUESTION_LEFT: "every question was sent to this target within the repeat span",
}


class ProbeService:
    def __init__(
        self,
        store: Store,
        smtp: SmtpSender,
        metrics: Metrics,
        world: World,
        clock: Clock,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._store = store
        self._smtp = smtp
        self._metrics = metrics
        self._world = world
        self._clock = clock
        self._entropy = entropy
        self._send_lock = asyncio.Lock()
        self._pause_until = 0.0
        self._backoff = INFRASTRUCTURE_BACKOFF[0]
        self._stopping = False
        self.on_sent: Callable[[Probe], None] = lambda _probe: None

    @property
    def sending(self) -> bool:
        return self._send_lock.locked()

    @property
    def relay_ok(self) -> bool:
        """False while backing off after our relay failed (connect, TLS, AUTH, lost session)."""
        return self._clock().timestamp() >= self._pause_until

    def stop_sending(self) -> None:
        """Shutting down: the send under way finishes, a round under way sends nothing more."""
        self._stopping = True

    async def recover(self) -> list[str]:
        """After a crash: a probe caught between SENDING and a reply may have left; never resend.

        A probe still PLANNED never reached SMTP: it is FAILED, else its target would count
        as having a probe in flight forever. Returns the tokens made UNCERTAIN.
        """
        await self._fail_unsent()
        tokens = await self._store.recover_in_flight(self._clock())
        for token in tokens:
            probe = await self._store.probe(token)
            if probe is not None:
                self._metrics.probe_uncertain(probe.target_id)
            event(log, logging.WARNING, "probe state uncertain after restart", probe=token)
        return tokens

    async def _fail_unsent(self) -> None:
        now = self._clock()
        for record in await self._store.probe_records(now - HISTORY_SPAN):
            if record.state is ProbeState.PLANNED:
                await self._store.transition_probe(
                    record.token, ProbeState.FAILED, now, permanent=False, detail=UNSENT_DETAIL
                )
                event(log, logging.WARNING, "planned probe never sent", probe=record.token)

    async def tick(self) -> list[Probe]:
        """Send every probe that is due now; the decision itself is a pure function."""
        now = self._clock()
        self._metrics.probe_tick(now)
        if now.timestamp() < self._pause_until:
            return []
        decisions = await self._plan()
        if decisions and not await self._relay_answers():
            return []
        sent: list[Probe] = []
        for decision in decisions:
            if self._stopping:
                break
            probe = await self._send(decision)
            sent.append(probe)
            if self._clock().timestamp() < self._pause_until:
                break  # our relay is in trouble: stop this round, back off
        return sent

    async def _relay_answers(self) -> bool:
        """Before a round of sends, prove our relay takes a session (connect, EHLO, TLS, AUTH).

        While it is down no probe is created: a send that fails makes a FAILED probe, and
        that holds its target back for hours, so an outage of our own would delay them.
        """
        try:
            await self._smtp.check()
        except SmtpUnavailable as error:
            event(log, logging.WARNING, "smtp relay unavailable", error=str(error)[:300])
            self._infrastructure_trouble()
            return False
        return True

    async def _plan(self) -> list[SendDecision]:
        now = self._clock()
        history = await self._store.probe_records(now - HISTORY_SPAN)
        failing = await self._store.failing_targets()
        return plan_sends(
            now=now,
            targets=self._world.targets,
            history=history,
            questions=self._world.questions,
            personas=self._world.personas,
            calendar_for=self._world.calendar_for,
            politeness=self._world.politeness,
            opted_out=self._world.opted_out,
            failing_targets=set(failing),
        )

    async def send_now(self, target_id: str, *, force: bool = False) -> SendNowResult:
        """Send one probe now; pause and opt-out always hold, an outstanding probe unless forced."""
        target = self._world.target(target_id)
        if target is None:
            return SendNowResult(probe=None, refusal="unknown target")
        now = self._clock()
        verdict = send_now(
            now=now,
            target=target,
            history=await self._store.probe_records(now - HISTORY_SPAN),
            questions=self._world.questions,
            personas=self._world.personas,
            calendar=self._world.calendar_for(target),
            politeness=self._world.politeness,
            opted_out=self._world.opted_out,
            force=force,
        )
        if isinstance(verdict, Blocked):
            return SendNowResult(probe=None, refusal=REFUSALS.get(verdict.reason, verdict.reason))
        return SendNowResult(probe=await self._send(verdict))

    async def _send(self, decision: SendDecision) -> Probe:
        async with self._send_lock:
            probe = await self._persist_planned(decision)
            await self._store.transition_probe(probe.token, ProbeState.SENDING, self._clock())
            persona = self._world.persona(decision.persona_id)
            message = render_probe(probe, persona, date=self._clock())
            result = await self._smtp.send(
                message, sender=probe.reply_address, recipients=[probe.target_address]
            )
            return await self._record_result(probe, result)

    async def _persist_planned(self, decision: SendDecision) -> Probe:
        target = self._world.target(decision.target_id)
        assert target is not None, decision
        probe = build_probe(
            token=new_token(self._entropy(8)),
            target=target,
            question=self._world.question(decision.question_id),
            persona=self._world.persona(decision.persona_id),
            reply_template=self._world.mailbox.reply_template,
            mailbox_address=self._world.mailbox.address,
            planned_at=self._clock().replace(microsecond=0),  # as sent_at: see _accepted
        )
        await self._store.insert_probe(probe)
        return probe

    async def _record_result(self, probe: Probe, result: SendResult) -> Probe:
        now = self._clock()
        if result.status is SendStatus.ACCEPTED:
            await self._accepted(probe, result)
        elif result.status is SendStatus.UNCERTAIN:
            await self._store.transition_probe(
                probe.token, ProbeState.UNCERTAIN, now, detail=result.detail
            )
            self._metrics.probe_uncertain(probe.target_id)
            self._infrastructure_trouble()
        else:
            await self._failed(probe, result)
        stored = await self._store.probe(probe.token)
        assert stored is not None
        return stored

    async def _accepted(self, probe: Probe, result: SendResult) -> None:
        # Whole seconds, like the IMAP INTERNALDATE of a reply (RFC 3501 date-time): else an
        # auto-reply or DSN landing in the same second as the send looks older than the probe
        # and is neither matched nor counted (seen with Postfix + Dovecot Sieve on loopback).
        sent_at = (result.accepted_at or self._clock()).replace(microsecond=0)
        await self._store.transition_probe(probe.token, ProbeState.SENT, sent_at, sent_at=sent_at)
        self._metrics.probe_sent(probe.target_id)
        self._metrics.smtp_succeeded(sent_at)
        self._metrics.set_last_probe_sent(sent_at)
        self._backoff = INFRASTRUCTURE_BACKOFF[0]
        self.on_sent(probe)
        event(log, logging.INFO, "probe sent", probe=probe.token, target=probe.target_id)

    async def _failed(self, probe: Probe, result: SendResult) -> None:
        now = self._clock()
        await self._store.transition_probe(
            probe.token, ProbeState.FAILED, now, permanent=result.permanent, detail=result.detail
        )
        self._metrics.probe_send_failed(probe.target_id, bool(result.permanent))
        if rejects_address(result.code, result.detail):
            reason = f"SMTP {result.code} at send: {(result.detail or '')[:200]}"
            await self._store.set_address_failing(probe.target_id, reason, now)
            self._metrics.set_address_failing(probe.target_id, True)
        else:
            self._infrastructure_trouble()
        event(
            log,
            logging.WARNING,
            "probe send failed",
            probe=probe.token,
            target=probe.target_id,
            permanent=result.permanent,
            code=result.code,
        )

    def _infrastructure_trouble(self) -> None:
        self._metrics.smtp_failed()
        self._pause_until = self._clock().timestamp() + self._backoff
        self._backoff = min(self._backoff * 2, INFRASTRUCTURE_BACKOFF[1])

"""Use case: take one fetched mail, decide what it is and which probe it answers, store it."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from monitor.adapters.imap import FetchedMail
from monitor.adapters.metrics import Metrics
from monitor.adapters.sql import Store
from monitor.domain.bounce import blames_address
from monitor.domain.classify import classify
from monitor.domain.mailparse import parse_message
from monitor.domain.matching import ProbeIndex, match_message
from monitor.domain.model import (
    Checkpoint,
    Classification,
    Match,
    MatchMethod,
    MessageKind,
    ParsedMessage,
    StoredMessage,
)
from monitor.domain.newtext import has_new_text
from monitor.logs import event
from monitor.service.context import Clock, World
from monitor.service.outcomes import OutcomeService

log = logging.getLogger(__name__)

CANDIDATE_SPAN = timedelta(days=120)
SUBJECT_LIMIT = 300


def message_key(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class CandidateCache:
    """Probes a message may answer, indexed once and rebuilt only after a send."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._loaded: ProbeIndex | None = None

    def invalidate(self) -> None:
        self._loaded = None

    async def get(self, now: datetime) -> ProbeIndex:
        if self._loaded is None:
            self._loaded = ProbeIndex(await self._store.match_candidates(now - CANDIDATE_SPAN))
        return self._loaded


class InboxService:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        world: World,
        outcomes: OutcomeService,
        clock: Clock,
        *,
        keep_bodies: bool = True,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._world = world
        self._outcomes = outcomes
        self._clock = clock
        self._keep_bodies = keep_bodies
        self.candidates = CandidateCache(store)

    async def checkpoint(self, folder: str) -> Checkpoint | None:
        return await self._store.checkpoint(folder)

    async def handle(self, mail: FetchedMail) -> None:
        """The watcher's callback: ingest, then let it fetch the next mail."""
        await self.ingest(mail)

    async def ingest(self, mail: FetchedMail) -> StoredMessage:
        """Classify, match and store one mail, advancing the checkpoint in the same commit."""
        parsed = parse_message(mail.raw)
        verdict = classify(parsed)
        candidates = await self.candidates.get(self._clock())
        match = match_message(parsed, verdict.kind, candidates, received_at=mail.internaldate)
        stored = self._stored(mail, parsed, verdict, match, candidates)
        checkpoint = Checkpoint(mail.folder, mail.uidvalidity, mail.uid)
        inserted = await self._store.record_message(stored, checkpoint)
        if inserted:
            await self._after_insert(stored, parsed)
        return stored

    def _stored(
        self,
        mail: FetchedMail,
        parsed: ParsedMessage,
        verdict: Classification,
        match: Match,
        candidates: ProbeIndex,
    ) -> StoredMessage:
        return StoredMessage(
            message_key=message_key(mail.raw),
            message_id=parsed.message_id,
            folder=mail.folder,
            uidvalidity=mail.uidvalidity,
            uid=mail.uid,
            received_at=mail.internaldate,
            from_address=parsed.from_address,
            subject=parsed.subject[:SUBJECT_LIMIT],
            size=len(mail.raw),
            kind=verdict.kind,
            permanent=verdict.permanent,
            ticket_number=verdict.ticket_number,
            has_new_text=_new_text(parsed, verdict, match, candidates),
            probe_token=match.probe_token,
            match_method=match.method,
            defects=parsed.defects,
            raw=mail.raw if self._keep_bodies else None,
        )

    async def _after_insert(self, stored: StoredMessage, parsed: ParsedMessage) -> None:
        self._metrics.message_processed(stored.kind.value, stored.probe_token is not None)
        self._metrics.message_ingested(self._clock())
        if stored.defects:
            self._metrics.message_flagged()
        event(
            log,
            logging.INFO,
            "message stored",
            kind=stored.kind.value,
            probe=stored.probe_token,
            match=stored.match_method.value,
            uid=stored.uid,
        )
        if stored.probe_token is not None:
            await self._tie_to_probe(stored, stored.probe_token, parsed)

    async def _tie_to_probe(self, stored: StoredMessage, token: str, parsed: ParsedMessage) -> None:
        probe = await self._store.probe(token)
        if probe is None:
            return
        if stored.kind is MessageKind.BOUNCE:
            self._metrics.probe_bounced(probe.target_id, bool(stored.permanent))
            if stored.permanent and blames_address(parsed, probe.target_address):
                await self._mark_failing(probe.target_id, token, stored)
        await self._outcomes.recompute_probe(probe)

    async def _mark_failing(self, target_id: str, token: str, stored: StoredMessage) -> None:
        reason = f"permanent bounce {stored.message_id or stored.message_key[:12]}"
        await self._store.set_address_failing(target_id, reason, stored.received_at)
        self._metrics.set_address_failing(target_id, True)
        event(log, logging.WARNING, "target address failing", target=target_id, probe=token)

    async def assign(self, key_or_message_id: str, token: str) -> StoredMessage | None:
        """Tie a held message to a probe by hand and recompute that probe's outcome."""
        stored = await self._find(key_or_message_id)
        if stored is None:
            return None
        previous = stored.probe_token
        await self._store.assign_message(stored.message_key, token, MatchMethod.MANUAL)
        for affected in {previous, token} - {None}:
            assert affected is not None
            await self._outcomes.recompute(affected)
        return await self._store.message(stored.message_key)

    async def _find(self, key_or_message_id: str) -> StoredMessage | None:
        found = await self._store.message(key_or_message_id)
        if found is not None:
            return found
        wanted = key_or_message_id.strip()
        if not wanted.startswith("<"):
            wanted = f"<{wanted}>"
        return await self._store.message_by_message_id(wanted)


def _new_text(
    parsed: ParsedMessage, verdict: Classification, match: Match, candidates: ProbeIndex
) -> bool:
    if verdict.kind is not MessageKind.HUMAN:
        return False
    probe = candidates.by_token.get(match.probe_token or "")
    body = probe.body if probe is not None else None
    return has_new_text(parsed, body)

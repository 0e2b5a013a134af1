"""What one fuzz case runs: the whole pure pipeline an incoming mail goes through."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from monitor.domain.bounce import blames_address
from monitor.domain.classify import classify
from monitor.domain.mailparse import parse_message
from monitor.domain.matching import ProbeIndex, match_message
from monitor.domain.model import ProbeCandidate
from monitor.domain.newtext import extract_new_text, has_new_text

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
# Later than every probe in the corpus, so that every matching rule is tried.
RECEIVED_AT = datetime(2031, 1, 1, tzinfo=UTC)


@cache
def corpus() -> tuple[bytes, ...]:
    """Every real message in tests/data, in a stable order."""
    return tuple(path.read_bytes() for path in sorted(DATA.rglob("*.eml")))


@cache
def probe_index() -> ProbeIndex:
    """The probes the corpus replies answer, so that mutated replies reach every match rule."""
    candidates: list[ProbeCandidate] = []
    for path in sorted(DATA.rglob("probes.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            candidates.append(
                ProbeCandidate(
                    token=item["token"],
                    target_id=item.get("target_id", item["target_address"]),
                    target_address=item["target_address"],
                    reply_address=item["reply_address"],
                    message_id=item["message_id"],
                    subject=item["subject"],
                    body=item["body"],
                    sent_at=datetime.fromisoformat(item["sent_at"]),
                )
            )
    return ProbeIndex(candidates)


def exercise(raw: bytes, index: ProbeIndex) -> None:
    """Parse, classify, match and read the new text of one message; raises only on a bug."""
    parsed = parse_message(raw)
    verdict = classify(parsed)
    match = match_message(parsed, verdict.kind, index, received_at=RECEIVED_AT)
    probe = index.by_token.get(match.probe_token or "")
    has_new_text(parsed, probe.body if probe is not None else None)
    extract_new_text(parsed)
    if probe is not None:
        blames_address(parsed, probe.target_address)

"""Throughput of the pure inbound work on the bounce corpus, beside the bare stdlib parse.

Per message, what InboxService.ingest does before touching the database: parse_message,
classify, match_message against an index of 1,000 probes (plus the corpus probes) and the
new-text check. Measured in the same run: the bare stdlib parse (compat32, which
parse_message uses underneath) of the same files, and parse + classify alone. Figures are
messages per CPU second (time.process_time, best of the rounds, one core).

Run: python -m bench.bench_throughput [--rounds 5]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.domain.classify import classify
from monitor.domain.mailparse import parse_message
from monitor.domain.matching import ProbeIndex, match_message
from monitor.domain.model import MessageKind, ProbeCandidate
from monitor.domain.newtext import has_new_text

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "bounces" / "eml"
RECEIVED_AT = datetime(2031, 1, 1, tzinfo=UTC)


def _probe_index(count: int = 1000) -> ProbeIndex:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from fuzz.target import probe_index  # the corpus probes, so that replies find theirs

    start = datetime(2030, 1, 1, tzinfo=UTC)
    synthetic = [
        ProbeCandidate(
            token=f"s{number:09d}",
            target_id=f"t{number % 290:03d}",
            target_address=f"kontakt@k{number % 290:03d}.example.invalid",
            reply_address=f"fraga+s{number:09d}@kontroll.example.org",
            message_id=f"<probe.s{number:09d}@kontroll.example.org>",
            subject=f"Fråga nummer {number} om bygglov",
            body=f"Hej! Jag undrar över bygglov för plank nummer {number} i kommunen.",
            sent_at=start + timedelta(minutes=number),
        )
        for number in range(count)
    ]
    return ProbeIndex([*synthetic, *probe_index()])


def _pipeline(index: ProbeIndex) -> Callable[[bytes], object]:
    def ingest_work(raw: bytes) -> object:
        parsed = parse_message(raw)
        verdict = classify(parsed)
        found = match_message(parsed, verdict.kind, index, received_at=RECEIVED_AT)
        if verdict.kind is MessageKind.HUMAN:
            probe = index.by_token.get(found.probe_token or "")
            has_new_text(parsed, probe.body if probe is not None else None)
        return found

    return ingest_work


def _per_second(messages: list[bytes], work: Callable[[bytes], object], rounds: int) -> float:
    """Messages per CPU second of this process, best round: other processes on a shared
    machine slow the wall clock, not the work done per CPU second."""
    for raw in messages:  # warm regex, codec and boundary caches
        work(raw)
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for raw in messages:
            work(raw)
        best = min(best, time.process_time() - started)
    return len(messages) / best


def _stdlib(raw: bytes) -> object:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def run(rounds: int = 5) -> dict[str, float]:
    messages = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    index = _probe_index()
    return {
        "messages": float(len(messages)),
        "probes_indexed": float(len(index)),
        "stdlib_parse_per_s": _per_second(messages, _stdlib, rounds),
        "parse_classify_per_s": _per_second(messages, lambda r: classify(parse_message(r)), rounds),
        "parse_classify_match_per_s": _per_second(messages, _pipeline(index), rounds),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    for key, value in run(parser.parse_args().rounds).items():
        print(f"{key:30}{value:12.1f}")

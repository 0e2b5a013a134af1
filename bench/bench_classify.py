"""Throughput of parse_message + classify over the bounce corpus, beside the bare stdlib parse;
and over 1,000 replies (the quality-sv corpus cycled) without and with the answer-quality
pass, which must keep at least half of the throughput (issue 12).

Run: python -m bench.bench_classify
"""

from __future__ import annotations

import email
import email.policy
import json
import time
from collections.abc import Callable
from pathlib import Path

from monitor.domain.classify import classify
from monitor.domain.mailparse import parse_message
from monitor.domain.model import MessageKind
from monitor.domain.newtext import has_new_text
from monitor.domain.quality import assess_answer, first_name_of

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
CORPUS = DATA / "bounces" / "eml"
REPLIES = DATA / "quality-sv"
REPLY_COUNT = 1000
ROUNDS = 5


def _messages_per_second(messages: list[bytes], work: Callable[[bytes], object]) -> float:
    for raw in messages[:20]:  # warm regex and codec caches
        work(raw)
    started = time.perf_counter()
    for _ in range(ROUNDS):
        for raw in messages:
            work(raw)
    return ROUNDS * len(messages) / (time.perf_counter() - started)


Reply = tuple[bytes, str, str]  # raw mail, the probe's body, the persona's first name


def _replies() -> list[Reply]:
    """REPLY_COUNT replies: the quality-sv messages, each with its probe, cycled."""
    labels = json.loads((REPLIES / "labels.json").read_text(encoding="utf-8"))
    probes = {
        probe["token"]: probe["body"]
        for probe in json.loads((REPLIES / "probes.json").read_text(encoding="utf-8"))
    }
    corpus = []
    for label in labels:
        body = probes[label["probe_token"]]
        signer = [line for line in body.splitlines() if line.strip()][-1]
        corpus.append(((REPLIES / label["file"]).read_bytes(), body, first_name_of(signer)))
    return [corpus[i % len(corpus)] for i in range(REPLY_COUNT)]


def _classify_reply(reply: Reply) -> object:
    """What ingest does to a reply today: parse, classify, look for new text."""
    raw, question, _ = reply
    parsed = parse_message(raw)
    verdict = classify(parsed)
    return verdict.kind is MessageKind.HUMAN and has_new_text(parsed, question)


def _classify_and_assess_reply(reply: Reply) -> object:
    raw, question, first_name = reply
    parsed = parse_message(raw)
    verdict = classify(parsed)
    new_text = verdict.kind is MessageKind.HUMAN and has_new_text(parsed, question)
    return assess_answer(
        parsed, kind=verdict.kind, has_new_text=new_text, question=question, first_name=first_name
    )


def _one_round(replies: list[Reply], work: Callable[[Reply], object]) -> float:
    started = time.process_time()
    for reply in replies:
        work(reply)
    return len(replies) / max(time.process_time() - started, 1e-9)


def quality_figures(rounds: int = ROUNDS) -> dict[str, float]:
    """Replies per CPU second without and with the quality pass, and their ratio.

    The two alternate round by round and each keeps its best round, so that a neighbour's
    load on a shared machine does not fall on one of them only.
    """
    replies = _replies()
    for reply in replies[:40]:  # warm regex, stemmer and codec caches
        _classify_and_assess_reply(reply)
    without = with_quality = 0.0
    for _ in range(rounds):
        without = max(without, _one_round(replies, _classify_reply))
        with_quality = max(with_quality, _one_round(replies, _classify_and_assess_reply))
    return {
        "replies": float(len(replies)),
        "replies_classify_per_s": without,
        "replies_classify_quality_per_s": with_quality,
        "quality_throughput_ratio": with_quality / without,
    }


def run() -> dict[str, float]:
    """Messages per second for each way of reading the corpus."""
    messages = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    return quality_figures() | {
        "messages": float(len(messages)),
        "parse_and_classify_per_s": _messages_per_second(
            messages, lambda raw: classify(parse_message(raw))
        ),
        "parse_message_per_s": _messages_per_second(messages, parse_message),
        "stdlib_compat32_per_s": _messages_per_second(
            messages, lambda raw: email.message_from_bytes(raw, policy=email.policy.compat32)
        ),
        "stdlib_default_policy_per_s": _messages_per_second(
            messages, lambda raw: email.message_from_bytes(raw, policy=email.policy.default)
        ),
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name:30}{value:12.1f}")

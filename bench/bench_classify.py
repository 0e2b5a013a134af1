"""Throughput of parse_message + classify over the bounce corpus, beside the bare stdlib parse.

Run: python -m bench.bench_classify
"""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Callable
from pathlib import Path

from monitor.domain.classify import classify
from monitor.domain.mailparse import parse_message

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "bounces" / "eml"
ROUNDS = 5


def _messages_per_second(messages: list[bytes], work: Callable[[bytes], object]) -> float:
    for raw in messages[:20]:  # warm regex and codec caches
        work(raw)
    started = time.perf_counter()
    for _ in range(ROUNDS):
        for raw in messages:
            work(raw)
    return ROUNDS * len(messages) / (time.perf_counter() - started)


def run() -> dict[str, float]:
    """Messages per second for each way of reading the corpus."""
    messages = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    return {
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

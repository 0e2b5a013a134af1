"""Per-kind precision and recall on both corpora, with floors just below what is achieved.

Run with ``pytest -s`` to see the tables. The bounce corpus labels map to kinds as follows:
``delivered`` (a success DSN) is expected as DELAY, the kind the classifier gives to delivery
reports that are neither failures nor answers; ``not_bounce`` is right when the kind is
anything but BOUNCE or DELAY.

Permanence: the monitor's policy (see monitor/domain/bounce.py) expects ``permanent`` False
for a full mailbox and for a queue that expired, True for other 5.x.x failures. Accuracy is
reported against that policy and against the bare status class (5.x.x => True).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from monitor.domain.classify import classify
from monitor.domain.mailparse import parse_message
from monitor.domain.model import Classification

DATA = Path(__file__).resolve().parents[1] / "data"
NOT_BOUNCE = "not_bounce"


@dataclass(frozen=True)
class Scored:
    file: str
    expected: str
    got: Classification
    label: dict[str, object]


def _expected_bounce_corpus_kind(label: str) -> str:
    return {"delivered": "delay"}.get(label, label)


def _is_right(expected: str, got: Classification) -> bool:
    if expected == NOT_BOUNCE:
        return got.kind.value not in ("bounce", "delay")
    return got.kind.value == expected


@cache
def _scored(corpus: str) -> tuple[Scored, ...]:
    base = DATA / corpus
    labels = json.loads((base / "labels.json").read_text(encoding="utf-8"))
    scored = []
    for label in labels:
        got = classify(parse_message((base / label["file"]).read_bytes()))
        expected = _expected_bounce_corpus_kind(label["kind"])
        scored.append(Scored(label["file"], expected, got, label))
    return tuple(scored)


def precision_recall(scored: tuple[Scored, ...]) -> dict[str, tuple[float, float, int]]:
    """kind -> (precision, recall, support); NOT_BOUNCE counts any non-report kind as right."""
    table: dict[str, tuple[float, float, int]] = {}
    for kind in sorted({s.expected for s in scored}):
        support = [s for s in scored if s.expected == kind]
        true_pos = sum(_is_right(kind, s.got) for s in support)
        predicted = [s for s in scored if _is_right(kind, s.got)] if kind != NOT_BOUNCE else support
        false_pos = sum(1 for s in predicted if s.expected != kind)
        precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
        table[kind] = (precision, true_pos / len(support), len(support))
    return table


def _print_table(title: str, table: dict[str, tuple[float, float, int]]) -> None:
    print(f"\n{title}\n{'kind':16}{'precision':>10}{'recall':>8}{'n':>5}")
    for kind, (precision, recall, support) in table.items():
        print(f"{kind:16}{precision:10.3f}{recall:8.3f}{support:5d}")


BOUNCE_FLOORS = {
    "bounce": (0.99, 0.98),
    "delay": (0.80, 1.0),
    "complaint": (1.0, 1.0),
    "auto_reply": (1.0, 1.0),
    NOT_BOUNCE: (0.0, 0.0),
}
REPLIES_FLOORS = {
    "human": (0.95, 0.95),
    "auto_reply": (0.90, 0.90),
    "ticket_receipt": (0.85, 0.85),
    "bounce": (1.0, 1.0),
    "delay": (1.0, 1.0),
    "read_receipt": (1.0, 1.0),
    "bulk": (1.0, 1.0),
}


@pytest.mark.parametrize(
    ("corpus", "floors"), [("bounces", BOUNCE_FLOORS), ("replies-sv", REPLIES_FLOORS)]
)
def test_per_kind_precision_and_recall_stay_above_floors(
    corpus: str, floors: dict[str, tuple[float, float]]
) -> None:
    table = precision_recall(_scored(corpus))
    _print_table(corpus, table)
    for kind, (precision, recall, _n) in table.items():
        floor_p, floor_r = floors[kind]
        assert precision >= floor_p, f"{kind} precision {precision:.3f} < {floor_p}"
        assert recall >= floor_r, f"{kind} recall {recall:.3f} < {floor_r}"


def test_bounce_corpus_overall_accuracy_stays_above_floor() -> None:
    scored = _scored("bounces")
    right = sum(_is_right(s.expected, s.got) for s in scored)
    wrong = [
        (s.file, s.expected, s.got.kind.value) for s in scored if not _is_right(s.expected, s.got)
    ]
    print(f"\nbounces: {right}/{len(scored)} right; wrong: {wrong}")
    assert right / len(scored) >= 0.985


def _policy_permanent(label: dict[str, object]) -> bool:
    statuses = [str(s) for s in label["statuses"] if s]  # type: ignore[attr-defined]
    reasons = {str(r) for r in label["reasons"]}  # type: ignore[attr-defined]
    if statuses and all(s.startswith("4") for s in statuses):
        return False
    return not reasons <= {"mailboxfull", "expired"}


def _class_permanent(label: dict[str, object]) -> bool:
    return any(str(s).startswith("5") for s in label["statuses"])  # type: ignore[attr-defined]


def test_bounce_permanence_accuracy_on_bounce_corpus() -> None:
    bounces = [
        s for s in _scored("bounces") if s.expected == "bounce" and s.got.kind.value == "bounce"
    ]
    policy = sum(s.got.permanent == _policy_permanent(s.label) for s in bounces) / len(bounces)
    by_class = sum(s.got.permanent == _class_permanent(s.label) for s in bounces) / len(bounces)
    print(
        f"\npermanent accuracy on {len(bounces)} bounces: policy {policy:.3f}, class {by_class:.3f}"
    )
    assert policy >= 0.96
    assert by_class >= 0.90


def test_bounce_permanence_matches_every_replies_label() -> None:
    bounces = [s for s in _scored("replies-sv") if s.expected == "bounce"]
    assert [s.got.permanent for s in bounces] == [s.label["permanent"] for s in bounces]


def test_ticket_receipts_in_replies_corpus_carry_a_ticket_number() -> None:
    receipts = [s for s in _scored("replies-sv") if s.got.kind.value == "ticket_receipt"]
    assert receipts and all(s.got.ticket_number for s in receipts)


def test_reasons_are_never_empty() -> None:
    kinds = Counter(
        s.got.kind for s in _scored("bounces") + _scored("replies-sv") if not s.got.reasons
    )
    assert kinds == Counter()

"""The answer-quality rubric scored on the labelled quality-sv corpus (40 messages).

Run with ``pytest -s`` to see per-field accuracy for all messages and for two folds (odd and
even file numbers). The floors sit a little under what is reached, so that a regression
fails; the aim on unseen messages is 95 % for every item and LIX within ±5 on 95 %.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from monitor.domain.mailparse import parse_message
from monitor.domain.model import MessageKind
from monitor.domain.quality import AnswerQuality, assess_answer, first_name_of

CORPUS = Path(__file__).resolve().parents[1] / "data" / "quality-sv"
BOOLEAN_ITEMS = (
    "greeting",
    "personal",
    "named_sender",
    "sender_unit",
    "contact_details",
    "more_info",
)
FIELDS = ("answer", *BOOLEAN_ITEMS, "lix")
LIX_TOLERANCE = 5.0
# Per-field floor on all 32 human replies (share right; LIX within ±5): every field is
# right on every reply today, and one miss in 32 (96.9 %) still passes.
FLOOR = 0.96


@dataclass(frozen=True)
class Scored:
    file: str
    expected: dict[str, object] | None
    got: AnswerQuality | None


def _persona_name(probe_body: str) -> str:
    """The persona signs the probe on its last non-empty line."""
    return [line for line in probe_body.splitlines() if line.strip()][-1].strip()


@cache
def _scored() -> tuple[Scored, ...]:
    labels = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
    probes = {
        probe["token"]: probe
        for probe in json.loads((CORPUS / "probes.json").read_text(encoding="utf-8"))
    }
    scored = []
    for label in labels:
        probe = probes[label["probe_token"]]
        got = assess_answer(
            parse_message((CORPUS / label["file"]).read_bytes()),
            kind=MessageKind(label["kind"]),
            has_new_text=label["has_new_text"],
            question=probe["body"],
            first_name=first_name_of(_persona_name(probe["body"])),
        )
        scored.append(Scored(label["file"], label["quality"], got))
    return tuple(scored)


def _right(field: str, expected: dict[str, object], got: AnswerQuality) -> bool:
    if field == "lix":
        wanted = expected["lix"]
        assert isinstance(wanted, int | float)
        return abs(got.lix - wanted) <= LIX_TOLERANCE
    value = got.to_json()[field]
    return bool(value == expected[field])


def _accuracy(scored: Sequence[Scored], field: str) -> float:
    humans = [s for s in scored if s.expected is not None and s.got is not None]
    return sum(_right(field, s.expected, s.got) for s in humans if s.expected and s.got) / len(
        humans
    )


def _fold(scored: Sequence[Scored], odd: bool) -> list[Scored]:
    return [s for s in scored if (int(s.file[:3]) % 2 == 1) == odd]


def _misses(scored: Sequence[Scored]) -> list[str]:
    lines = []
    for s in scored:
        if s.expected is None or s.got is None:
            continue
        wrong = [f for f in FIELDS if not _right(f, s.expected, s.got)]
        if wrong:
            got = s.got.to_json()
            detail = ", ".join(f"{f}={got[f]} (label {s.expected[f]})" for f in wrong)
            lines.append(f"  {s.file}: {detail}; reasons {', '.join(s.got.reasons)}")
    return lines


def test_print_per_field_accuracy() -> None:
    scored = _scored()
    groups = {
        "all": list(scored),
        "fold A (odd)": _fold(scored, True),
        "fold B (even)": _fold(scored, False),
    }
    print()
    print(f"{'field':16}" + "".join(f"{name:>16}" for name in groups))
    for field in FIELDS:
        row = "".join(f"{_accuracy(group, field):16.1%}" for group in groups.values())
        print(f"{field:16}{row}")
    print("\n".join(_misses(scored)) or "  no misses")


def test_every_message_other_than_a_human_reply_has_no_quality() -> None:
    for s in _scored():
        assert (s.got is None) == (s.expected is None), s.file


@pytest.mark.parametrize("field", FIELDS)
def test_each_rubric_field_is_right_on_the_development_corpus(field: str) -> None:
    assert _accuracy(_scored(), field) >= FLOOR

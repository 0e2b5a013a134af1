"""Cross-fold check: the labelled corpora split in two by file hash, figures per fold.

The rules are written from each mail system's template sentences and from general signs of
a person's reply, not fitted to files; the folds show whether the figures hold on each
half alone, so that a rule that only explains a handful of files shows up as a gap between
folds. The split is by the SHA-256 of the raw bytes, so it is stable and owes nothing to
file names (which group files by MTA).

Run ``pytest -s`` on this file for the table, or run it as a script with more labelled
corpus folders (each with labels.json and the same label format) to score them too:
``python tests/domain/test_classification_folds.py path/to/corpus ...``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.domain.classify import classify
from monitor.domain.mailparse import parse_message

DATA = Path(__file__).resolve().parents[1] / "data"
FOLDS = 2
REPORT_KINDS = frozenset({"bounce", "delay"})


@dataclass(frozen=True)
class Scored:
    fold: int
    expected: str  # the label's kind
    got: str


@dataclass(frozen=True)
class FoldFigures:
    fold: int
    messages: int
    kind_right: float  # share whose kind is right (see _kind_right)
    report_kind_right: float | None  # delivery reports only: bounce vs delay right
    human_vs_not_right: float


def fold_of(raw: bytes) -> int:
    return hashlib.sha256(raw).digest()[0] % FOLDS


def score(corpus: Path) -> list[Scored]:
    labels = json.loads((corpus / "labels.json").read_text(encoding="utf-8"))
    scored = []
    for label in labels:
        raw = (corpus / label["file"]).read_bytes()
        got = classify(parse_message(raw)).kind.value
        scored.append(Scored(fold_of(raw), label["kind"], got))
    return scored


def _kind_right(s: Scored) -> bool:
    """A success DSN is expected as DELAY; "not_bounce" is right for any non-report kind."""
    expected = {"delivered": "delay"}.get(s.expected, s.expected)
    if expected == "not_bounce":
        return s.got not in REPORT_KINDS
    return s.got == expected


def _share(hits: list[bool]) -> float:
    return sum(hits) / len(hits)


def figures(scored: list[Scored]) -> list[FoldFigures]:
    table = []
    for fold in range(FOLDS):
        part = [s for s in scored if s.fold == fold]
        reports = [s for s in part if s.expected in REPORT_KINDS]
        table.append(
            FoldFigures(
                fold=fold,
                messages=len(part),
                kind_right=_share([_kind_right(s) for s in part]),
                report_kind_right=_share([_kind_right(s) for s in reports]) if reports else None,
                human_vs_not_right=_share(
                    [(s.got == "human") == (s.expected == "human") for s in part]
                ),
            )
        )
    return table


def print_figures(name: str, table: list[FoldFigures]) -> None:
    print(f"\n{name}\n{'fold':>4}{'n':>6}{'kind':>8}{'report':>8}{'human?':>8}")
    for f in table:
        report = "-" if f.report_kind_right is None else f"{f.report_kind_right:.3f}"
        print(
            f"{f.fold:>4}{f.messages:>6}{f.kind_right:8.3f}{report:>8}{f.human_vs_not_right:8.3f}"
        )


# Floors just below what each fold achieves; a rule that only fits one half fails here.
FLOORS = {"bounces": 0.97, "replies-sv": 0.98}


@pytest.mark.parametrize("corpus", sorted(FLOORS))
def test_each_fold_keeps_the_kind_and_human_figures(corpus: str) -> None:
    table = figures(score(DATA / corpus))
    print_figures(corpus, table)
    assert len(table) == FOLDS and all(f.messages > 10 for f in table)
    for f in table:
        assert f.kind_right >= FLOORS[corpus], f
        assert f.human_vs_not_right >= FLOORS[corpus], f


if __name__ == "__main__":
    for path in [DATA / "bounces", DATA / "replies-sv", *map(Path, sys.argv[1:])]:
        print_figures(path.name, figures(score(path)))

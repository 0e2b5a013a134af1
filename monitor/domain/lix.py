"""LIX, the Swedish readability index, and its customary bands.

LIX = words/sentences + 100·long/words, where a word is a run of letters (digits and URLs
are not words), a long word has more than six letters, and a sentence ends at ".", "!", "?"
or ":" followed by white space, or at the end of a paragraph. Where the definition is
silent the choices are the usual ones, so that figures compare with other tools:

* a URL is a token starting with http://, https:// or www.; trailing ".,:;!?)" belongs to
  the text, so a sentence that ends with a link still ends;
* an end mark counts only before white space or the paragraph's end, so "08.30", "mora.se",
  an e-mail address or the inner dot of "t.ex." end nothing, and "?!" counts once;
* a paragraph is a block of lines between blank lines: the soft line breaks of wrapped text
  do not end sentences;
* a stretch without a word is not a sentence; a text without words has LIX 0.
"""

from __future__ import annotations

import re
from enum import StrEnum

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_URL_TAIL = re.compile(r"[.,:;!?)]+$")
_WORD = re.compile(r"[^\W\d_]+")
_END = re.compile(r"[.!?:]+(?=\s|$)")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
LONG_WORD_LETTERS = 6  # a long word has more letters than this


class LixBand(StrEnum):
    """The customary LIX bands (Björnsson); the value is stable, ``label_sv`` is for people."""

    VERY_EASY = "very_easy"  # < 30: mycket lättläst
    EASY = "easy"  # 30–40: lättläst
    MEDIUM = "medium"  # 40–50: medelsvår
    HARD = "hard"  # 50–60: svår
    VERY_HARD = "very_hard"  # > 60: mycket svår

    @property
    def label_sv(self) -> str:
        return _LABELS_SV[self]


_LABELS_SV = {
    LixBand.VERY_EASY: "mycket lättläst",
    LixBand.EASY: "lättläst",
    LixBand.MEDIUM: "medelsvår",
    LixBand.HARD: "svår",
    LixBand.VERY_HARD: "mycket svår",
}
# Upper bounds (exclusive) of each band but the last.
_BAND_LIMITS = (
    (30.0, LixBand.VERY_EASY),
    (40.0, LixBand.EASY),
    (50.0, LixBand.MEDIUM),
    (60.0, LixBand.HARD),
)


def _without_urls(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        tail = _URL_TAIL.search(match.group(0))
        return " " + (tail.group(0) if tail else "")

    return _URL.sub(replace, text)


def sentences(text: str) -> list[str]:
    """The text's sentences as LIX counts them (stretches with at least one word)."""
    found: list[str] = []
    for paragraph in _PARAGRAPH.split(text.replace("\r\n", "\n")):
        for piece in _END.split(paragraph):
            if _WORD.search(_without_urls(piece)):
                found.append(" ".join(piece.split()))
    return found


def lix(text: str) -> float:
    """LIX of a text, rounded to one decimal; 0.0 for a text without words."""
    clean = _without_urls(text.replace("\r\n", "\n"))
    words: list[str] = []
    count = 0
    for paragraph in _PARAGRAPH.split(clean):
        for piece in _END.split(paragraph):
            found = _WORD.findall(piece)
            if found:
                words += found
                count += 1
    if not words:
        return 0.0
    long_words = sum(1 for word in words if len(word) > LONG_WORD_LETTERS)
    return round(len(words) / count + 100 * long_words / len(words), 1)


def band(value: float) -> LixBand:
    for limit, name in _BAND_LIMITS:
        if value < limit:
            return name
    return LixBand.VERY_HARD

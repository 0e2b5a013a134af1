"""Subject normalisation: strip reply/forward prefixes and ticket tags, the way mail clients
and case systems add them, so that a reply's subject can be compared with the probe's.

Clients add localised prefixes (Outlook: "SV:", "VB:"; German: "AW:", "WG:"; Norwegian and
Danish: "Vs:", "Fw:"), auto-responders add "Automatiskt svar:", case systems add tags such as
"[Ärende #2026-004512]" or "(Ärende 123)". They nest ("SV: VB: Re: …") and repeat.
"""

from __future__ import annotations

import re
import unicodedata

# Dashes and quotes that clients and case systems swap for each other.
_TRANSLATE = str.maketrans(
    {
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u00a0": " ",
        "\ufeff": "",
        "\u200b": "",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u00ab": '"',
        "\u00bb": '"',
    }
)

_SPACE = re.compile(r"\s+")

# A bracketed tag: [#123], [Ticket#2026…], [Ärende-ID: 250408-0147], [EXTERN], [SPAM?]…
# Every [...] group goes: a probe subject never carries one, case systems and gateways do.
_BRACKET_TAG = re.compile(r"\[[^\[\]]{0,80}\]")

# A parenthesised tag only when it names a case or carries a number: "(Ärende 2026-123)",
# "(#48213)". "(förskoleklass)" in a probe subject must survive.
_PAREN_TAG = re.compile(
    r"\((?:[^()]{0,40}?(?:ärende|arende|ticket|case|incident|diarie|dnr|ref)[^()]{0,40}"
    r"|[^()]{0,40}?\d[^()]{0,40})\)",
    re.IGNORECASE,
)

# Reply, forward and auto-reply prefixes, with an optional counter "RE[2]:" / "SV (2):".
_PREFIX_WORDS = (
    r"re|sv|svar|aw|antw|vb|vs|wg|tr|rv|fwd|fw|vl|ang|ang\.|angående|"
    r"automatiskt\s+svar|autosvar|automatic\s+reply|auto\s*reply|auto|"
    r"frånvaro\w*|out\s+of\s+(?:the\s+)?office|abwesend|"
    r"läst|read|oläst|unread|"
    r"ärende|ticket|case|incident"
)
_PREFIX = re.compile(
    rf"^\s*(?:{_PREFIX_WORDS})\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
# "Ärende 2026-123:", "Ticket #4711:", "Case 12:" before the real subject.
_CASE_PREFIX = re.compile(
    r"^\s*(?:ärende|arende|ticket|case|incident|diarienummer|dnr)[\s\-#:]*[\w\-/.]*\d[\w\-/.]*\s*[:\-]\s*",
    re.IGNORECASE,
)
_EDGE_PUNCT = " \t-–—:.,;!?\"'"


def fold(text: str) -> str:
    """Case-fold, unify dashes and quotes, collapse whitespace: the comparison form."""
    text = unicodedata.normalize("NFC", text).translate(_TRANSLATE)
    return _SPACE.sub(" ", text.casefold()).strip()


def strip_tags(text: str) -> str:
    """Remove ticket tags in brackets and case-numbered parentheses, anywhere."""
    previous = None
    while previous != text:
        previous = text
        text = _BRACKET_TAG.sub(" ", text)
        text = _PAREN_TAG.sub(" ", text)
    return text


def strip_prefixes(text: str) -> str:
    """Remove leading reply/forward/auto-reply/case prefixes, repeated and nested."""
    previous = None
    while previous != text:
        previous = text
        text = _PREFIX.sub("", text)
        text = _CASE_PREFIX.sub("", text)
    return text


def normalize_subject(subject: str) -> str:
    """The comparison form of a subject: prefixes and tags stripped, folded."""
    text = fold(subject)
    previous = None
    while previous != text:
        previous = text
        text = strip_prefixes(strip_tags(text)).strip(_EDGE_PUNCT)
    return _SPACE.sub(" ", text)


def subject_variants(subject: str) -> tuple[str, ...]:
    """The normalised subject and every tail after a colon, most complete first.

    Case systems invent their own prefixes ("Ärende mottaget: …", "Kvittens: …"); any tail
    that equals a probe subject exactly is as good as a known prefix, and a probe subject
    that itself contains a colon still matches in full.
    """
    variants: list[str] = []
    text = normalize_subject(subject)
    while text:
        if text not in variants:
            variants.append(text)
        _head, sep, tail = text.partition(":")
        if not sep:
            break
        text = normalize_subject(tail)
    return tuple(variants)
